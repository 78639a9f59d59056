#include "core/node.h"

#include <algorithm>
#include <utility>

#include "core/auth.h"
#include "core/election.h"
#include "core/node_name.h"

namespace freeha {

std::string_view to_string(NoQuorumPolicy p) { return p == NoQuorumPolicy::Stop ? "stop" : "ignore"; }

std::optional<NoQuorumPolicy> no_quorum_policy_from_string(std::string_view s) {
    if (s == "stop") return NoQuorumPolicy::Stop;
    if (s == "ignore") return NoQuorumPolicy::Ignore;
    return std::nullopt;
}

bool quorum_rules_apply(const NodeSettings& s) {
    return s.expected_nodes > 2 && s.no_quorum_policy == NoQuorumPolicy::Stop;
}

Usec takeover_delay(const NodeSettings& s) { return s.dead_time + s.fence_timeout + s.interval; }

std::uint64_t next_incarnation(std::optional<std::uint64_t> previous, std::uint64_t realtime_usec) {
    return previous ? std::max(*previous + 1, realtime_usec) : realtime_usec;
}

Node::Node(NodeSettings settings)
    : settings_(std::move(settings)),
      cluster_id_(cluster_id(settings_.cluster_name)),
      own_id_(node_id(settings_.node_name)),
      membership_(settings_.channel_count),
      quorate_(live_votes() >= quorum_votes_needed(settings_.expected_nodes)) {}

std::optional<HookKind> Node::running_hook() const {
    if (!hook_) return std::nullopt;
    return hook_->kind;
}

// --- the chokepoint -------------------------------------------------------

void Node::set_state(NodeState to, std::string reason, Usec now, Effects& out) {
    if (to == state_) return;
    NodeState from = state_;
    state_ = to;
    if (to != NodeState::Running) next_monitor_.reset();
    out.push_back(effect::StateChanged{from, to, std::move(reason), term_, active_node()});
    // Peers learn of every change at once rather than at the next interval.
    send_heartbeat(now, out);
}

std::uint16_t Node::own_flags() const {
    std::uint16_t flags = 0;
    if (error_latched_) flags |= wire::kFlagErrorLatched;
    if (standby_) flags |= wire::kFlagStandby;
    return flags;
}

void Node::send_heartbeat(Usec now, Effects& out) {
    wire::Heartbeat hb;
    hb.cluster_id = cluster_id_;
    hb.incarnation = settings_.incarnation;
    hb.sequence = ++sequence_;
    // A claim announces its own term; any other state the newest term this
    // node knows of, so that news of a claim spreads to nodes its claimant
    // cannot reach.
    if (holds_services(state_)) {
        hb.term = term_;
    } else {
        hb.term = max_term_seen_;
        hb.claimant = best_claimant_;
    }
    hb.state = state_;
    hb.role = settings_.role;
    hb.flags = own_flags();
    hb.node = settings_.node_name;
    hb.handover_to = handover_to_;
    for (const auto& [name, p] : membership_.peers())
        if (p.reachable()) hb.heard.push_back(node_id(name));
    auto datagram = wire::encode(hb);
    if (!settings_.auth_keys.empty()) settings_.auth_keys.sign(datagram);
    out.push_back(effect::SendHeartbeat{std::move(hb), std::move(datagram)});
    next_heartbeat_ = now + settings_.interval;
}

// --- hooks ------------------------------------------------------------------

void Node::run_hook(HookKind kind, Effects& out) {
    hook_ = RunningHook{kind};
    out.push_back(effect::RunHook{kind});
}

void Node::after_current_hook(AfterHook next, Usec now, Effects& out) {
    if (hook_) {
        after_cancel_ = next;
        if (!hook_->canceled) {
            hook_->canceled = true;
            out.push_back(effect::CancelHook{hook_->kind});
        }
        return;
    }
    if (next == AfterHook::StopServices) run_hook(HookKind::Stop, out);
    if (next == AfterHook::StartServices) begin_start("forced start: other nodes not checked", true, now, out);
}

void Node::begin_start(std::string reason, bool forced, Usec now, Effects& out) {
    term_ = max_term_seen_ + 1;
    max_term_seen_ = term_;
    best_claimant_ = settings_.node_name;
    if (!forced && quorum_rules_apply(settings_))
        reason += "; starting the services " + format_timespan(takeover_delay(settings_)) +
                  " after a majority knows of this claim, once any former holder has stopped";
    out.push_back(effect::Notice{NoticeKind::Takeover, settings_.node_name, reason});
    set_state(NodeState::Starting, std::move(reason), now, out);
    if (forced) {
        run_hook(HookKind::Start, out);
        return;
    }
    // evaluate(), which elected this node, runs the start next if it may.
    start_pending_ = true;
    claim_acknowledged_.reset();
}

bool Node::reachable_peer_holds_services() const {
    for (const auto& [name, p] : membership_.peers())
        if (p.reachable() && holds_services(p.announced)) return true;
    return false;
}

unsigned Node::claim_supporters() const {
    unsigned n = 1;
    for (const auto& [name, p] : membership_.peers())
        if (p.reachable() && p.hears(own_id_) && p.term == term_ && p.claimant == settings_.node_name) ++n;
    return n;
}

bool Node::claim_unanimous() const {
    if (membership_.peers().size() + 1 < settings_.expected_nodes) return false;
    return claim_supporters() == membership_.peers().size() + 1;
}

void Node::maybe_run_pending_start(Usec now, Effects& out) {
    if (!start_pending_ || state_ != NodeState::Starting || hook_) return;
    if (quorum_rules_apply(settings_)) {
        if (!claim_acknowledged_ && claim_supporters() >= quorum_votes_needed(settings_.expected_nodes))
            claim_acknowledged_ = now;
        // A planned move (a stop, a switchover, failed services) is seen by every
        // node: nobody can still hold the services, and no delay is needed.
        bool waited = claim_acknowledged_ && now >= *claim_acknowledged_ + takeover_delay(settings_);
        if (!waited && !claim_unanimous()) return;
    }
    if (reachable_peer_holds_services()) return;
    start_pending_ = false;
    run_hook(HookKind::Start, out);
}

void Node::stop_services(std::string reason, Usec now, Effects& out) {
    set_state(NodeState::Stopping, std::move(reason), now, out);
    if (start_pending_) {  // starthasrv never ran: nothing to stop
        start_pending_ = false;
        services_stopped(now, out);
        return;
    }
    after_current_hook(AfterHook::StopServices, now, out);
}

void Node::fence(std::string reason, Usec now, Effects& out) {
    if (!fence_deadline_) fence_deadline_ = now + settings_.fence_timeout;
    if (state_ != NodeState::Stopping) stop_services(std::move(reason), now, out);
}

void Node::kill_overrunning_stop(Usec now, Effects& out) {
    if (!fence_deadline_ || now < *fence_deadline_ || !hook_ || hook_->killed || state_ != NodeState::Stopping) return;
    hook_->killed = true;
    out.push_back(effect::KillServices{hook_->kind});
}

void Node::fail_services(std::string error, Usec now, Effects& out) {
    error_latched_ = true;
    last_error_ = error;
    // Announce STOPPING (not ERRORED) while stophasrv runs so that no peer
    // starts the services before they are down here.
    stop_services(std::move(error), now, out);
}

void Node::services_stopped(Usec now, Effects& out) {
    fence_deadline_.reset();
    if (shutting_down_) {
        // FreeHA: exit still announcing STOPPING; peers wait out the dead time.
        send_heartbeat(now, out);
        out.push_back(effect::Exit{0});
        return;
    }
    if (!handover_to_.empty()) handover_until_ = now + 2 * settings_.dead_time;
    if (start_after_stop_) {
        start_after_stop_ = false;
        begin_start("forced start after the stop: other nodes not checked", true, now, out);
        return;
    }
    if (error_latched_)
        set_state(NodeState::Errored, last_error_, now, out);
    else
        set_state(NodeState::Standby, "services stopped", now, out);
}

Effects Node::on_hook_finished(HookKind kind, const HookOutcome& outcome, Usec now) {
    Effects out;
    if (!hook_ || hook_->kind != kind) return out;  // not ours to judge
    bool canceled = hook_->canceled;
    bool killed = hook_->killed;
    hook_.reset();
    if (killed) {
        out.push_back(effect::Notice{NoticeKind::HookFailed, settings_.node_name,
                                     std::string(hook_name(kind)) + " killed with the services: the stop overran FenceTimeout=" +
                                         format_timespan(settings_.fence_timeout)});
        after_cancel_ = AfterHook::Nothing;
        if (state_ == NodeState::Stopping) services_stopped(now, out);
        evaluate(now, out);
        return out;
    }
    if (!outcome.success && !canceled && kind != HookKind::Monitor)
        out.push_back(effect::Notice{NoticeKind::HookFailed, settings_.node_name,
                                     std::string(hook_name(kind)) + " " + outcome.description});

    if (canceled) {
        // The result of a canceled hook means nothing; do what was asked instead.
        AfterHook next = std::exchange(after_cancel_, AfterHook::Nothing);
        after_current_hook(next, now, out);
        evaluate(now, out);
        return out;
    }

    switch (kind) {
    case HookKind::Start:
        if (outcome.success) {
            set_state(NodeState::Running, "starthasrv succeeded", now, out);
            next_monitor_ = now + settings_.monitor_interval;
        } else {
            fail_services("starthasrv " + outcome.description, now, out);
        }
        break;
    case HookKind::Monitor:
        if (state_ == NodeState::Initial) {
            if (outcome.success) {
                // FreeHA: a successful monitor at start-up means the services
                // already run here. Term 0 yields to any node that took over.
                startup_probe_done_ = true;
                set_state(NodeState::Running, "monitorhasrv at start-up: services already running here", now, out);
                next_monitor_ = now + settings_.monitor_interval;
            } else {
                run_hook(HookKind::Stop, out);  // clean-up
            }
        } else if (state_ == NodeState::Running) {
            if (outcome.success) {
                next_monitor_ = now + settings_.monitor_interval;
            } else {
                out.push_back(effect::Notice{NoticeKind::HookFailed, settings_.node_name,
                                             "monitorhasrv " + outcome.description});
                fail_services("monitorhasrv " + outcome.description, now, out);
            }
        }
        break;
    case HookKind::Stop:
        if (state_ == NodeState::Initial) {
            startup_probe_finished(now, out);
        } else if (state_ == NodeState::Stopping) {
            services_stopped(now, out);
        }
        break;
    }
    evaluate(now, out);
    return out;
}

void Node::startup_probe_finished(Usec now, Effects& out) {
    startup_probe_done_ = true;
    maybe_finish_startup(now, out);
}

// --- start-up, quorum and election -----------------------------------------

Effects Node::start(Usec now, bool force_start) {
    Effects out;
    if (started_) return out;
    started_ = true;
    init_deadline_ = now + settings_.init_dead;
    listen_until_ = now + settings_.dead_time;
    send_heartbeat(now, out);
    if (settings_.role == Role::Arbitrator) {
        startup_probe_done_ = true;  // an arbitrator has no services to probe
    } else if (force_start) {
        startup_probe_done_ = true;
        begin_start("forced start at launch (-m): other nodes not checked", true, now, out);
        return out;
    } else {
        run_hook(HookKind::Monitor, out);  // is anything already running here?
    }
    evaluate(now, out);
    return out;
}

void Node::maybe_finish_startup(Usec now, Effects& out) {
    // Listen for a whole dead time first: every live node is heard within it
    // (else it would count as dead), so a node joining a running cluster
    // cannot miss the active node and elect itself beside it.
    if (state_ != NodeState::Initial || !startup_probe_done_ || hook_ || now < listen_until_) return;
    unsigned needed = startup_votes_needed(settings_.expected_nodes);
    if (live_votes() >= needed) {
        set_state(NodeState::Standby, "start-up complete", now, out);
    } else if (now >= init_deadline_) {
        out.push_back(effect::Notice{NoticeKind::StartupWaitExpired, settings_.node_name,
                                     "InitDead passed having seen " + std::to_string(live_votes()) + " of " +
                                         std::to_string(needed) + " nodes"});
        set_state(NodeState::Standby, "start-up wait expired", now, out);
    }
}

void Node::update_quorum(Usec now, Effects& out) {
    bool quorate = live_votes() >= quorum_votes_needed(settings_.expected_nodes);
    if (quorate == quorate_) return;
    quorate_ = quorate;
    std::string text = std::to_string(live_votes()) + " of " + std::to_string(settings_.expected_nodes) +
                       " nodes reachable, " + std::to_string(quorum_votes_needed(settings_.expected_nodes)) +
                       " needed";
    out.push_back(effect::Notice{quorate ? NoticeKind::QuorumGained : NoticeKind::QuorumLost,
                                 settings_.node_name, text});
    // Back from a partition: listen a whole dead time again, as at start-up,
    // so that the first peers heard do not hide the node that holds the services.
    if (quorate && state_ != NodeState::Initial) listen_until_ = std::max(listen_until_, now + settings_.dead_time);
    if (!quorate && settings_.no_quorum_policy == NoQuorumPolicy::Stop && holds_services(state_))
        fence("quorum lost: " + text, now, out);
}

void Node::maybe_elect(Usec now, Effects& out) {
    if (state_ != NodeState::Standby || settings_.role != Role::Member || error_latched_ || standby_ || !quorate_ ||
        shutting_down_ || !handover_to_.empty() || now < listen_until_)
        return;
    std::vector<Candidate> view;
    view.push_back(Candidate{settings_.node_name, state_, settings_.role, standby_, error_latched_, handover_to_});
    for (const auto& [name, p] : membership_.peers())
        if (p.reachable())
            view.push_back(Candidate{name, p.state(), p.role, p.standby_flag(), p.error_latched(), p.handover_to});
    auto elected = elected_node(view);
    if (elected && *elected == settings_.node_name)
        begin_start("elected: first eligible node, no node holds the services", false, now, out);
}

bool Node::claim_beats_mine(std::uint64_t term, const std::string& name) const {
    return term > term_ || (term == term_ && node_name_before(name, settings_.node_name));
}

bool Node::learn_claim(std::uint64_t term, const std::string& claimant) {
    if (term > max_term_seen_) {
        max_term_seen_ = term;
        best_claimant_ = claimant;
        return true;
    }
    if (term == max_term_seen_ && !claimant.empty() &&
        (best_claimant_.empty() || node_name_before(claimant, best_claimant_))) {
        best_claimant_ = claimant;
        return true;
    }
    return false;
}

// A claim loses to a peer's claim with a higher term (or the same term and an
// earlier name), and to any peer that knows of a claim newer than it.
void Node::check_rival(const Peer& peer, Usec now, Effects& out) {
    bool i_hold = state_ == NodeState::Running || state_ == NodeState::Starting;
    if (!i_hold || !peer.reachable()) return;
    bool it_claims = peer.announced == NodeState::Running || peer.announced == NodeState::Starting;
    // A peer that holds nothing announces the best claim it knows of.
    bool outranked = it_claims ? claim_beats_mine(peer.term, peer.name)
                               : peer.term > term_ || (peer.term == term_ && !peer.claimant.empty() &&
                                                       claim_beats_mine(peer.term, peer.claimant));
    if (!outranked) return;
    std::string text = it_claims ? peer.name + " runs the services with term " + std::to_string(peer.term) +
                                       " (ours " + std::to_string(term_) + "); stepping down"
                                 : peer.name + " knows of a better claim (term " + std::to_string(peer.term) +
                                       (peer.claimant.empty() ? "" : " by " + peer.claimant) + ", ours " +
                                       std::to_string(term_) + "); stepping down";
    out.push_back(effect::Notice{NoticeKind::DualActiveResolved, peer.name, text});
    fence(std::move(text), now, out);
}

// A switchover is over once another node holds the services, or when nobody
// has taken them within two dead times of our stop (then we are eligible again).
void Node::end_handover_when_done(Usec now) {
    if (handover_to_.empty()) return;
    bool taken = false;
    for (const auto& [name, p] : membership_.peers())
        if (p.reachable() && holds_services(p.announced)) taken = true;
    if (taken || (handover_until_ && now >= *handover_until_)) {
        handover_to_.clear();
        handover_until_.reset();
    }
}

std::optional<std::string> Node::next_eligible_peer() const {
    // Only peers that could be elected once we are down count; INITIAL or
    // STOPPING peers would block the whole election here.
    std::vector<Candidate> view;
    for (const auto& [name, p] : membership_.peers())
        if (p.reachable() && p.announced == NodeState::Standby)
            view.push_back(Candidate{name, p.announced, p.role, p.standby_flag(), p.error_latched(), p.handover_to});
    return elected_node(view);
}

void Node::evaluate(Usec now, Effects& out) {
    if (!started_) return;
    end_handover_when_done(now);
    update_quorum(now, out);
    maybe_finish_startup(now, out);
    maybe_elect(now, out);
    maybe_run_pending_start(now, out);
    kill_overrunning_stop(now, out);
}

// --- inputs -----------------------------------------------------------------

Effects Node::on_datagram(std::span<const std::uint8_t> datagram, std::size_t channel, Usec now) {
    auto result = wire::decode(datagram);
    if (!result.decoded) {
        ++counters_.malformed[static_cast<std::size_t>(result.reject)];
        return {};
    }
    const wire::Heartbeat& hb = result.decoded->heartbeat;
    if (hb.cluster_id != cluster_id_) {
        ++counters_.foreign_cluster;
        return {};
    }
    if (!settings_.auth_keys.empty()) {
        if (result.decoded->auth_tag.empty()) {
            ++counters_.unauthenticated;
            return {};
        }
        if (!settings_.auth_keys.verify(*result.decoded)) {
            ++counters_.bad_signature;
            return {};
        }
    }
    return on_heartbeat(hb, channel, now);
}

Effects Node::on_heartbeat(const wire::Heartbeat& hb, std::size_t channel, Usec now) {
    Effects out;
    if (hb.node == settings_.node_name) {
        if (hb.incarnation == settings_.incarnation) {
            ++counters_.own;
            return out;
        }
        ++counters_.duplicate_name;
        if (duplicate_incarnation_seen_ != hb.incarnation) {
            duplicate_incarnation_seen_ = hb.incarnation;
            out.push_back(effect::Notice{NoticeKind::DuplicateNodeName, hb.node,
                                         "another daemon announces this node's name; its heartbeats are ignored"});
        }
        return out;
    }
    Observation obs = membership_.observe(hb, channel, now);
    if (obs.stale) {
        ++counters_.stale_incarnation;
        return out;
    }
    if (obs.replayed) {
        ++counters_.replayed;
        return out;
    }
    ++counters_.accepted;
    if (obs.redundant) return out;
    if (obs.restarted && !obs.joined)
        out.push_back(effect::Notice{NoticeKind::PeerRestarted, hb.node, "new incarnation"});
    if (obs.joined) out.push_back(effect::Notice{NoticeKind::PeerJoined, hb.node, std::string(to_string(hb.state))});
    if (obs.previous_state != hb.state)
        out.push_back(effect::PeerStateChanged{hb.node, obs.previous_state.value_or(NodeState::Initial), hb.state,
                                               hb.term});
    bool newer_claim = learn_claim(hb.term, holds_services(hb.state) ? hb.node : hb.claimant);
    if (started_) check_rival(membership_.peers().at(hb.node), now, out);
    evaluate(now, out);
    // Pass news of a newer claim on at once: a node holding the services that
    // cannot hear the claimant may hear this node.
    if (started_ && newer_claim && !holds_services(state_)) send_heartbeat(now, out);
    return out;
}

Effects Node::on_command(Command command, Usec now) {
    Effects out;
    if (!started_ || shutting_down_) return out;
    switch (command) {
    case Command::Stop:
        if (state_ == NodeState::Running || state_ == NodeState::Starting)
            stop_services("stop requested", now, out);
        break;
    case Command::Shutdown:
        shutting_down_ = true;
        if (state_ == NodeState::Stopping) break;  // exits when the stop ends
        if (state_ == NodeState::Running || state_ == NodeState::Starting || hook_) {
            stop_services("daemon shutting down", now, out);
        } else {
            set_state(NodeState::Stopping, "daemon shutting down", now, out);
            services_stopped(now, out);
        }
        break;
    case Command::ForceStart:
        error_latched_ = false;
        last_error_.clear();
        if (state_ == NodeState::Running || state_ == NodeState::Starting) break;
        if (state_ == NodeState::Stopping)
            start_after_stop_ = true;  // the stop finishes first
        else
            after_current_hook(AfterHook::StartServices, now, out);  // cancels a start-up probe
        break;
    case Command::ClearError:
        if (!error_latched_) break;
        error_latched_ = false;
        last_error_.clear();
        if (state_ == NodeState::Errored) set_state(NodeState::Standby, "error cleared", now, out);
        break;
    case Command::Standby:
        if (standby_) break;
        standby_ = true;
        if (state_ == NodeState::Running || state_ == NodeState::Starting)
            stop_services("standby requested", now, out);
        else
            send_heartbeat(now, out);  // peers learn of it at once
        break;
    case Command::Unstandby:
        if (!standby_) break;
        standby_ = false;
        send_heartbeat(now, out);
        break;
    }
    evaluate(now, out);
    return out;
}

Effects Node::switchover(const std::string& target, Usec now, std::string* error) {
    Effects out;
    if (state_ != NodeState::Running) {
        std::string active = active_node();
        *error = "this node does not run the services (active node: " + (active.empty() ? "none" : active) +
                 "); run the switchover there";
        return out;
    }
    std::string to = target;
    if (to.empty()) {
        auto next = next_eligible_peer();
        if (!next) {
            *error = "no other node can take the services now";
            return out;
        }
        to = *next;
    } else if (to == settings_.node_name) {
        *error = "node " + to + " already runs the services";
        return out;
    } else {
        auto it = membership_.peers().find(to);
        if (it == membership_.peers().end() || !it->second.reachable()) {
            *error = "node " + to + " is not a reachable node of this cluster";
            return out;
        }
        const Peer& p = it->second;
        if (p.role != Role::Member || p.announced != NodeState::Standby || p.standby_flag() || p.error_latched()) {
            *error = "node " + to + " cannot take the services (" + std::string(to_string(p.state())) +
                     (p.role != Role::Member ? ", arbitrator" : "") + (p.standby_flag() ? ", in standby" : "") +
                     (p.error_latched() ? ", errored" : "") + ")";
            return out;
        }
    }
    handover_to_ = to;
    handover_until_.reset();
    stop_services("switchover to " + to + " requested", now, out);
    return out;
}

Effects Node::on_services_failed(const std::string& description, Usec now) {
    Effects out;
    if (state_ != NodeState::Running || shutting_down_) return out;
    out.push_back(effect::Notice{NoticeKind::HookFailed, settings_.node_name, description});
    fail_services(description, now, out);
    evaluate(now, out);
    return out;
}

Effects Node::reconfigure(const NodeSettings& settings, Usec now) {
    Effects out;
    settings_.expected_nodes = settings.expected_nodes;
    settings_.no_quorum_policy = settings.no_quorum_policy;
    settings_.interval = settings.interval;
    settings_.dead_time = settings.dead_time;
    settings_.init_dead = settings.init_dead;
    settings_.monitor_interval = settings.monitor_interval;
    settings_.fence_timeout = settings.fence_timeout;
    settings_.auth_keys = settings.auth_keys;
    next_heartbeat_ = std::min(next_heartbeat_, now + settings_.interval);
    evaluate(now, out);
    return out;
}

Effects Node::on_timer(Usec now) {
    Effects out;
    if (!started_) return out;
    if (now >= next_heartbeat_) send_heartbeat(now, out);
    for (const auto& name : membership_.expire(now, settings_.dead_time)) {
        const Peer& p = membership_.peers().at(name);
        out.push_back(effect::Notice{NoticeKind::PeerTimedOut, name,
                                     "not heard for " + format_timespan(settings_.dead_time) + " (was " +
                                         std::string(to_string(p.announced)) + ")"});
        out.push_back(effect::PeerStateChanged{name, p.announced, NodeState::TimedOut, p.term});
    }
    if (next_monitor_ && now >= *next_monitor_ && !hook_ && state_ == NodeState::Running) {
        next_monitor_.reset();
        run_hook(HookKind::Monitor, out);
    }
    evaluate(now, out);
    return out;
}

Usec Node::next_wakeup(Usec now) const {
    Usec next = next_heartbeat_;
    if (auto expiry = membership_.next_expiry(settings_.dead_time)) next = std::min(next, *expiry);
    if (next_monitor_ && !hook_) next = std::min(next, *next_monitor_);
    if (state_ == NodeState::Initial && startup_probe_done_ && !hook_)
        next = std::min(next, now < listen_until_ ? listen_until_ : init_deadline_);
    if (state_ == NodeState::Standby && now < listen_until_) next = std::min(next, listen_until_);
    if (handover_until_) next = std::min(next, std::max(*handover_until_, now));
    // Past deadlines need no wake-up: a pending start then waits for a
    // heartbeat, and a killed stop for its hook to end.
    if (start_pending_ && claim_acknowledged_ && *claim_acknowledged_ + takeover_delay(settings_) > now)
        next = std::min(next, *claim_acknowledged_ + takeover_delay(settings_));
    if (fence_deadline_ && hook_ && !hook_->killed && state_ == NodeState::Stopping)
        next = std::min(next, std::max(*fence_deadline_, now));
    return next;
}

// --- views ------------------------------------------------------------------

std::string Node::active_node() const {
    const std::string* best = nullptr;
    std::uint64_t best_term = 0;
    auto consider = [&](const std::string& name, NodeState s, std::uint64_t term) {
        if (s != NodeState::Running && s != NodeState::Starting) return;
        if (best == nullptr || term > best_term || (term == best_term && node_name_before(name, *best))) {
            best = &name;
            best_term = term;
        }
    };
    consider(settings_.node_name, state_, term_);
    for (const auto& [name, p] : membership_.peers()) consider(name, p.state(), p.term);
    return best ? *best : std::string();
}

Status Node::status(Usec now) const {
    Status s;
    s.cluster = settings_.cluster_name;
    s.node = settings_.node_name;
    s.state = state_;
    s.role = settings_.role;
    s.term = term_;
    s.quorate = quorate_;
    s.expected_nodes = settings_.expected_nodes;
    s.dead_time = settings_.dead_time;
    s.active_node = active_node();
    s.errored = error_latched_;
    s.standby = standby_;
    s.last_error = last_error_;
    s.counters = counters_;
    NodeStatus self;
    self.name = settings_.node_name;
    self.state = state_;
    self.role = settings_.role;
    self.reachable = true;
    self.term = term_;
    self.errored = error_latched_;
    self.standby = standby_;
    self.self = true;
    self.channel_heard_usec_ago.resize(settings_.channel_count, Usec{0});
    s.nodes.push_back(std::move(self));
    for (const auto& [name, p] : membership_.peers()) {
        NodeStatus n;
        n.name = name;
        n.state = p.state();
        n.role = p.role;
        n.reachable = p.reachable();
        n.last_heard_usec_ago = now > p.last_heard ? now - p.last_heard : 0;
        n.term = p.term;
        n.standby = p.standby_flag();
        n.errored = p.error_latched();
        for (const auto& heard : p.channel_last_heard)
            n.channel_heard_usec_ago.push_back(heard ? std::optional<Usec>(now > *heard ? now - *heard : 0)
                                                     : std::nullopt);
        s.nodes.push_back(std::move(n));
    }
    std::sort(s.nodes.begin(), s.nodes.end(),
              [](const NodeStatus& a, const NodeStatus& b) { return node_name_before(a.name, b.name); });
    return s;
}

}  // namespace freeha
