#include "core/node.h"

#include <algorithm>
#include <utility>

#include "core/auth.h"
#include "core/config.h"
#include "core/election.h"
#include "core/node_name.h"

namespace freeha {

// ExpectedNodes= may name as many nodes as the peer table holds peers (plus
// this node), the heard list ids (every peer, plus the version-3 marker) and
// the wire's expected-nodes field.
static_assert(kMaxNodes <= Membership::kMaxPeers + 1);
static_assert(kMaxNodes - 1 + 1 <= wire::kMaxHeard);
static_assert(kMaxNodes <= wire::kMaxExpectedNodes);

std::string_view to_string(NoQuorumPolicy p) { return kNoQuorumPolicyNames(p); }

bool quorum_rules_apply(unsigned expected_nodes, NoQuorumPolicy policy) {
    return expected_nodes > 2 && policy == NoQuorumPolicy::Stop;
}

bool quorum_rules_apply(const NodeSettings& s) { return quorum_rules_apply(s.expected_nodes, s.no_quorum_policy); }

LeaseTimings lease_timings(const NodeSettings& s) { return LeaseTimings{s.interval, s.dead_time, s.fence_timeout}; }

std::uint64_t next_incarnation(std::optional<std::uint64_t> previous, std::uint64_t realtime_usec,
                               bool authenticated) {
    if (!previous) return realtime_usec;
    bool refused_as_forged = *previous > realtime_usec &&
                             *previous - realtime_usec > static_cast<std::uint64_t>(Node::kIncarnationFuture.count());
    if (refused_as_forged && !authenticated) return realtime_usec;
    return std::max(*previous + 1, realtime_usec);
}

Node::Node(NodeSettings settings)
    : settings_(std::move(settings)),
      cluster_id_(cluster_id(settings_.cluster_name)),
      own_id_(node_id(settings_.node_name)),
      membership_(settings_.channel_count, !settings_.auth_keys.empty()),
      expected_nodes_(settings_.expected_nodes),
      quorate_(live_votes() >= quorum_votes_needed(settings_.expected_nodes)) {}

std::optional<HookKind> Node::running_hook() const {
    if (!hook_) return std::nullopt;
    return hook_->kind;
}

bool Node::holding() const { return holds_services(state()); }

bool Node::services_started() const { return holding() && phase_ != Phase::StartingPending; }

void Node::count_expected_nodes() {
    expected_nodes_ = settings_.expected_nodes;
    for (const auto& [name, p] : membership_.peers()) expected_nodes_ = std::max(expected_nodes_, p.expected_nodes);
}

std::uint64_t Node::wall_estimate(Usec now) const { return settings_.incarnation + (now - started_at_).count(); }

// --- the chokepoint -------------------------------------------------------

void Node::set_phase(Phase to, std::string reason, Usec now, Effects& out) {
    if (to == phase_) return;
    Phase from = phase_;
    bool was_pending = from == Phase::StartingPending;
    phase_ = to;
    if (to != Phase::Running) {
        next_monitor_.reset();
        probe_after_maintenance_ = false;
    }
    if (to != Phase::StoppingFenced && to != Phase::StoppingKilled) fence_deadline_.reset();
    if (to != Phase::StoppingKilled && to != Phase::StoppingCleanup) self_fenced_ = false;
    out.push_back(effect::StateChanged{state_of(from), state_of(to), std::move(reason), cluster_term(), active_node(),
                                       from, to});
    // Peers learn of every change of what they see (the state, and whether a
    // claim has started) at once rather than at the next interval.
    if (state_of(from) != state_of(to) || was_pending != (to == Phase::StartingPending)) send_heartbeat(now, out);
}

std::uint16_t Node::own_flags() const {
    std::uint16_t flags = 0;
    if (error_latched_) flags |= wire::kFlagErrorLatched;
    if (standby_ || !unavailable_.empty() || leaving_) flags |= wire::kFlagStandby;  // peers elect another node
    if (phase_ == Phase::StartingPending) flags |= wire::kFlagClaimPending;
    if (maintenance_.on) flags |= wire::kFlagMaintenance;
    if (leaving_ && exited_) flags |= wire::kFlagLeaving;  // the last heartbeat of a leaving node
    return flags;
}

void Node::send_heartbeat(Usec now, Effects& out) {
    wire::Heartbeat hb;
    hb.version = wire_version();
    hb.release = settings_.release;
    hb.maintenance_epoch = maintenance_.epoch;
    hb.cluster_id = cluster_id_;
    hb.incarnation = settings_.incarnation;
    hb.sequence = ++sequence_;
    hb.sent_at = now.count();
    // A claim announces its own term. Any other node announces the claim it
    // backs (with the grant of its promise), or else the best claim it
    // knows of, so that news of a claim spreads to nodes its claimant cannot reach.
    if (holding()) {
        hb.term = holder_.term();
    } else if (voter_.live(now)) {
        hb.term = voter_.term();
        hb.claimant = voter_.claimant();
        hb.grant = voter_.grant();
        hb.claimant_incarnation = voter_.claimant_incarnation();
    } else {
        hb.term = terms_.max_term();
        hb.claimant = terms_.best_claimant();
        auto claimant = membership_.peers().find(hb.claimant);
        hb.claimant_incarnation = claimant != membership_.peers().end() ? claimant->second.incarnation : 0;
    }
    hb.state = state();
    hb.role = settings_.role;
    hb.flags = own_flags();
    hb.node = settings_.node_name;
    hb.handover_to = handover_to_;
    // Our own ExpectedNodes= (never the larger one we count with, else a
    // lowered count could never take effect). In version 2, only while every
    // peer we hear states its own: it may be a release that rejects the
    // field (and likewise for the claimant's incarnation).
    hb.expected_nodes = settings_.expected_nodes;
    bool previous = hb.version == wire::kPreviousVersion;
    for (const auto& [name, p] : membership_.peers()) {
        if (!p.reachable()) continue;
        hb.heard.push_back(node_id(name));
        if (previous && !p.states_expected) hb.expected_nodes = 0;
    }
    if (previous && !peers_state_claimant_incarnation()) hb.claimant_incarnation.reset();
    if (!previous && !hb.claimant_incarnation) hb.claimant_incarnation = 0;
    auto datagram = wire::encode(hb);
    if (!settings_.auth_keys.empty()) settings_.auth_keys.sign(datagram);
    out.push_back(effect::SendHeartbeat{std::move(hb), std::move(datagram)});
    last_sent_ = now;
}

// --- stopping ---------------------------------------------------------------

void Node::count_stop(StopCause cause) {
    if (state() != NodeState::Stopping) ++history_.stops.at(static_cast<std::size_t>(cause));
}

void Node::stop_services(StopCause cause, std::string reason, Usec now, Effects& out) {
    count_stop(cause);
    if (phase_ == Phase::StartingPending) {  // starthasrv never ran: nothing to stop
        set_phase(Phase::StoppingHook, std::move(reason), now, out);
        services_stopped(now, out);
        return;
    }
    if (state() != NodeState::Stopping) set_phase(Phase::StoppingHook, std::move(reason), now, out);
    drive_hooks(now, out);
}

void Node::fence(StopCause cause, std::string reason, Usec deadline, Usec now, Effects& out) {
    if (phase_ == Phase::StoppingKilled || phase_ == Phase::StoppingCleanup) return;
    if (phase_ == Phase::StartingPending) {  // a claim that never started: just drop it
        stop_services(cause, std::move(reason), now, out);
        return;
    }
    count_stop(cause);
    if (phase_ == Phase::StoppingFenced) {
        fence_deadline_ = std::min(*fence_deadline_, deadline);
    } else {
        set_phase(Phase::StoppingFenced, std::move(reason), now, out);
        fence_deadline_ = deadline;
    }
    // A deadline already past (a node that wakes up frozen past its lease):
    // kill first, clean up after, rather than start a graceful stop now.
    kill_at_deadline(now, out);
    drive_hooks(now, out);
}

void Node::kill_at_deadline(Usec now, Effects& out) {
    if (phase_ != Phase::StoppingFenced || !fence_deadline_ || now < *fence_deadline_) return;
    kill_services("the stop did not end by its deadline: killing the services", now, out);
}

void Node::kill_services(std::string reason, Usec now, Effects& out) {
    set_phase(Phase::StoppingKilled, std::move(reason), now, out);
    if (hook_) hook_->killed = true;  // its result means nothing now
    out.push_back(effect::KillServices{});
}

Effects Node::on_services_killed(Usec now) {
    Effects out;
    if (phase_ != Phase::StoppingKilled) return out;
    set_phase(Phase::StoppingCleanup, "services killed; stophasrv cleans up what they left", now, out);
    evaluate(now, out);
    return out;
}

std::optional<Node::SelfFenceDue> Node::self_fence_due() const {
    if (phase_ != Phase::StoppingKilled && phase_ != Phase::StoppingCleanup) return std::nullopt;
    if (self_fenced_ || !lease_enforced_ || !quorum_rules()) return std::nullopt;
    std::optional<Usec> lease_end = lease();
    return SelfFenceDue{lease_end ? self_fence_at(*lease_end, lease_timings(settings_)) : Usec(), lease_end};
}

void Node::self_fence_if_late(Usec now, Effects& out) {
    std::optional<SelfFenceDue> due = self_fence_due();
    if (!due || now < due->at) return;
    self_fenced_ = true;
    const std::optional<Usec>& lease_end = due->lease_end;
    std::string what = phase_ == Phase::StoppingKilled ? "the kill of the services is not confirmed"
                                                       : step_name(HookKind::Stop) + "'s clean-up after the kill still runs";
    std::string when = lease_end && *lease_end > now ? "the lease ends in " + format_timespan(*lease_end - now)
                                                     : "the lease has ended";
    out.push_back(effect::SelfFence{what + " and " + when +
                                        ": what the services left (addresses, mounts) could outlive it",
                                    lease_end.value_or(now)});
}

void Node::fail_services(std::string error, Usec now, Effects& out) {
    error_latched_ = true;
    last_error_ = error;
    // Announce STOPPING (not ERRORED) while stophasrv runs so that no peer
    // starts the services before they are down here.
    stop_services(StopCause::Failed, std::move(error), now, out);
}

void Node::services_stopped(Usec now, Effects& out) {
    lease_enforced_ = false;
    if (leaving_) {
        // The machine shuts down: hand over as a switchover does (the
        // handover target starts once it hears this), and leave once it has
        // taken the services (leave_when_handed_over()).
        if (!handover_to_.empty()) handover_until_ = now + settings_.dead_time;
        set_phase(Phase::Standby, handover_to_.empty() ? "services stopped; the machine shuts down"
                                                       : "services stopped; handing them to " + handover_to_ +
                                                             " as the machine shuts down",
                  now, out);
        leave_when_handed_over(now, out);
        return;
    }
    if (shutting_down_) {
        // FreeHA: exit still announcing STOPPING; peers wait out the dead time.
        send_heartbeat(now, out);
        out.push_back(effect::Exit{0});
        exited_ = true;
        return;
    }
    if (!handover_to_.empty()) handover_until_ = now + 2 * settings_.dead_time;
    if (start_after_stop_) {
        start_after_stop_ = false;
        set_phase(Phase::Standby, "services stopped", now, out);
        claim("forced start after the stop: other nodes not checked", true, now, out);
        return;
    }
    if (error_latched_)
        set_phase(Phase::Errored, last_error_, now, out);
    else
        set_phase(Phase::Standby, "services stopped", now, out);
}

// --- start-up, quorum and election -----------------------------------------

Effects Node::start(Usec now, bool force_start) {
    Effects out;
    if (started_) return out;
    started_ = true;
    started_at_ = now;
    init_deadline_ = now + settings_.init_dead;
    listen_until_ = now + settings_.dead_time;
    backing_allowed_at_ = now + std::max(settings_.dead_time, settings_.previous_dead_time);
    send_heartbeat(now, out);
    if (settings_.role == Role::Arbitrator) {
        set_phase(Phase::InitialListening, "an arbitrator has no services to probe", now, out);
    } else if (maintenance_.on && !force_start) {
        set_phase(Phase::InitialListening, "maintenance mode: no start-up probe, the services are left as they are",
                  now, out);
    } else if (force_start) {
        claim("forced start at launch (-m): other nodes not checked", true, now, out);
        return out;
    }
    evaluate(now, out);  // runs the start-up probe (monitorhasrv): is anything already running here?
    return out;
}

void Node::finish_listening(Usec now, Effects& out) {
    // Listen for a whole dead time first: every live node is heard within it
    // (else it would count as dead), so a node joining a running cluster
    // cannot miss the active node and elect itself beside it.
    if (phase_ != Phase::InitialListening || hook_ || now < listen_until_) return;
    unsigned needed = startup_votes_needed(expected_nodes());
    if (live_votes() >= needed) {
        set_phase(Phase::Standby, "start-up complete", now, out);
    } else if (now >= init_deadline_) {
        out.push_back(effect::Notice{NoticeKind::StartupWaitExpired, settings_.node_name,
                                     "InitDead passed having seen " + std::to_string(live_votes()) + " of " +
                                         std::to_string(needed) + " nodes"});
        set_phase(Phase::Standby, "start-up wait expired", now, out);
    }
}

void Node::update_quorum(Usec now, Effects& out) {
    unsigned expected = expected_nodes();
    bool quorate = live_votes() >= quorum_votes_needed(expected);
    if (quorate == quorate_) return;
    quorate_ = quorate;
    std::string text = std::to_string(live_votes()) + " of " + std::to_string(expected) + " nodes reachable, " +
                       std::to_string(quorum_votes_needed(expected)) + " needed";
    out.push_back(effect::Notice{quorate ? NoticeKind::QuorumGained : NoticeKind::QuorumLost,
                                 settings_.node_name, text});
    // Back from a partition: listen a whole dead time again, as at start-up,
    // so that the first peers heard do not hide the node that holds the services.
    if (quorate && state() != NodeState::Initial) listen_until_ = std::max(listen_until_, now + settings_.dead_time);
    // A claim that has not started cannot win a majority now: drop it. Running
    // services stop when their lease runs out (NoQuorumPolicy=stop), which
    // happens as the majority falls silent, not when one peer restarts.
    if (!quorate && phase_ == Phase::StartingPending)
        stop_services(StopCause::QuorumLost, "quorum lost: " + text, now, out);
}

void Node::maybe_elect(Usec now, Effects& out) {
    if (phase_ != Phase::Standby || settings_.role != Role::Member || error_latched_ || standby_ ||
        !unavailable_.empty() || !quorate_ || shutting_down_ || !handover_to_.empty() || now < listen_until_ ||
        maintenance_.on)
        return;
    // Someone backs a live claim: a holder exists, even if this node cannot
    // hear it. And our own promise to another claimant still binds us.
    if (peer_backs_other_live_claim()) return;
    if (voter_.live(now) && voter_.claimant() != settings_.node_name) return;
    if (unwatched_holder(now)) return;
    std::vector<Candidate> view;
    view.push_back(Candidate{settings_.node_name, state(), settings_.role, standby_, error_latched_, handover_to_});
    for (const auto& [name, p] : membership_.peers())
        if (p.reachable())
            view.push_back(Candidate{name, p.state(), p.role, p.standby_flag(), p.error_latched(), p.handover_to});
    auto elected = elected_node(view);
    if (elected && *elected == settings_.node_name)
        claim("elected: first eligible node, no node holds the services", false, now, out);
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
    if (!started_ || exited_) return;
    end_handover_when_done(now);
    leave_when_handed_over(now, out);
    if (exited_) return;
    if (update_backing(now)) send_heartbeat(now, out);
    update_quorum(now, out);
    check_rivals(now, out);
    enforce_lease(now, out);
    finish_listening(now, out);
    maybe_elect(now, out);
    maybe_start_claim(now, out);
    kill_at_deadline(now, out);
    self_fence_if_late(now, out);
    drive_hooks(now, out);
}

// --- inputs -----------------------------------------------------------------

Effects Node::on_datagram(std::span<const std::uint8_t> datagram, std::size_t channel, Usec now) {
    auto result = wire::decode(datagram);
    if (!result.decoded) {
        ++counters_.malformed[static_cast<std::size_t>(result.reject)];
        if (result.reject == wire::Reject::BadVersion && datagram.size() > 4 &&
            unknown_versions_seen_.insert(datagram[4]).second)
            return Effects{effect::Notice{NoticeKind::UnknownWireVersion, settings_.node_name,
                                          "dropping heartbeats of wire version " + std::to_string(datagram[4]) +
                                              ", which this release (" + settings_.release + ", wire versions " +
                                              std::to_string(wire::kPreviousVersion) + " and " +
                                              std::to_string(wire::kVersion) +
                                              ") does not speak: upgrade one release at a time (freeha-upgrade(7)); "
                                              "counted as bad_version, logged once"}};
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
    } else if (started_ && hb.incarnation > wall_estimate(now) + kIncarnationFuture.count()) {
        // Unauthenticated and from the far future: it would make every real
        // heartbeat of that node look stale.
        ++counters_.implausible;
        Effects out;
        Usec ahead(hb.incarnation - wall_estimate(now));
        refuse(hb.node, RefusalCause::IncarnationAhead,
               "incarnation " + format_timespan(round_to(ahead, 60 * kUsecPerSec)) +
                   " ahead of this node's clock (its clock is wrong, or the heartbeat forged)",
               now, out);
        return out;
    }
    return on_heartbeat(hb, channel, now);
}

Effects Node::on_heartbeat(const wire::Heartbeat& hb, std::size_t channel, Usec now) {
    Effects out;
    if (exited_) return out;  // its last heartbeat is out: it answers nothing more
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
    // A real cluster's terms rise by one per claim: a term far above every
    // term known is forged or broken, and would carry every node's terms to the top.
    if (!term_plausible(hb.term, terms_.max_term())) {
        ++counters_.implausible;
        refuse(hb.node, RefusalCause::TermJump,
               "term " + std::to_string(hb.term) + " more than 2^32 above the highest this node knows (" +
                   std::to_string(terms_.max_term()) + ")",
               now, out);
        return out;
    }
    Observation obs = membership_.observe(hb, channel, now);
    count_expected_nodes();
    if (obs.table_full) {
        ++counters_.peer_table_full;
        return out;
    }
    if (obs.stale) {
        ++counters_.stale_incarnation;
        Usec older(membership_.peers().at(hb.node).incarnation - hb.incarnation);
        refuse(hb.node, RefusalCause::StaleIncarnation,
               "stale incarnation, from " + format_timespan(older / kUsecPerSec * kUsecPerSec) +
                   " before the one this node knows (its clock was set back and its state directory lost, or a "
                   "replay)",
               now, out);
        return out;
    }
    if (obs.implausible) {
        ++counters_.implausible;
        return out;
    }
    if (obs.replayed) {
        ++counters_.replayed;
        return out;
    }
    ++counters_.accepted;
    // Before the redundant return: a copy that only this channel carried still judges its link.
    if (!obs.links_changed.empty()) report_links(membership_.peers().at(hb.node), obs.links_changed, out);
    if (obs.redundant) return out;
    if (obs.restarted && !obs.joined)
        out.push_back(effect::Notice{NoticeKind::PeerRestarted, hb.node, "new incarnation"});
    // An arrival is one line (its notice names the state), never a second
    // "INITIAL -> INITIAL": a 64-node start-up would log thousands of them.
    bool arrives = obs.joined && !obs.left;
    if (arrives)
        out.push_back(effect::Notice{NoticeKind::PeerJoined, hb.node,
                                     std::string(to_string(hb.state)) +
                                         (hb.term != 0 ? ", term " + std::to_string(hb.term) : std::string())});
    NodeState seen = obs.left ? NodeState::TimedOut : hb.state;
    if (!arrives && obs.previous_state != seen)
        out.push_back(effect::PeerStateChanged{hb.node, obs.previous_state.value_or(NodeState::Initial), seen,
                                               hb.term});
    if (obs.left)
        out.push_back(effect::Notice{NoticeKind::PeerLeft, hb.node,
                                     "its machine shuts down" +
                                         (hb.handover_to.empty() ? std::string()
                                                                 : "; it handed the services to " + hb.handover_to)});
    learn_maintenance(hb, now, out);
    terms_.learn(hb.term, holds_services(hb.state) ? hb.node : hb.claimant);
    record_grant(hb, now);
    // A new heartbeat of the claim we back renews our promise, and our
    // acknowledgement (the grant) goes back at once: it renews the lease.
    bool ack = false;
    if (started_ && voter_.backs(hb.node, hb.incarnation, hb.term) && holds_services(hb.state) && may_back(now))
        ack = voter_.promise(hb.node, hb.incarnation, hb.term, Usec(hb.sent_at), now, settings_.dead_time, now);
    if (started_ && update_backing(now)) ack = true;
    if (ack) send_heartbeat(now, out);
    evaluate(now, out);
    return out;
}

Effects Node::on_command(Command command, Usec now) {
    Effects out;
    if (!started_ || exited_) return out;
    if (command == Command::Leave) {
        leave(now, out);
        evaluate(now, out);
        return out;
    }
    if (shutting_down_) return out;
    if (maintenance_.on) {
        in_maintenance(command, now, out);
        evaluate(now, out);
        return out;
    }
    switch (command) {
    case Command::Leave: break;  // above
    case Command::Stop:
        if (state() == NodeState::Running || state() == NodeState::Starting)
            stop_services(StopCause::Operator, "stop requested", now, out);
        break;
    case Command::Shutdown:
        shutting_down_ = true;
        if (state() == NodeState::Stopping) break;  // exits when the stop ends
        if (state() == NodeState::Running || state() == NodeState::Starting || hook_) {
            stop_services(StopCause::Shutdown, "daemon shutting down", now, out);
        } else {
            set_phase(Phase::StoppingHook, "daemon shutting down", now, out);
            services_stopped(now, out);
        }
        break;
    case Command::ForceStart:
        error_latched_ = false;
        last_error_.clear();
        if (phase_ == Phase::StartingPending) {
            set_phase(Phase::StartingHook, "forced start: other nodes not checked", now, out);
            lease_enforced_ = false;
        } else if (state() == NodeState::Stopping) {
            start_after_stop_ = true;  // the stop finishes first
        } else if (!holding()) {
            claim("forced start: other nodes not checked", true, now, out);  // cancels a start-up probe
        }
        break;
    case Command::ClearError: clear_error(now, out); break;
    case Command::Standby:
        if (standby_) break;
        standby_ = true;
        if (state() == NodeState::Running || state() == NodeState::Starting)
            stop_services(StopCause::Standby, "standby requested", now, out);
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

void Node::clear_error(Usec now, Effects& out) {
    if (!error_latched_) return;
    error_latched_ = false;
    last_error_.clear();
    if (phase_ == Phase::Errored) set_phase(Phase::Standby, "error cleared", now, out);
}

Effects Node::set_unavailable(std::string why, Usec now) {
    Effects out;
    if (why == unavailable_) return out;
    unavailable_ = std::move(why);
    if (!started_ || exited_) return out;
    send_heartbeat(now, out);  // peers learn of it at once, either way
    evaluate(now, out);
    return out;
}

Effects Node::switchover(const std::string& target, Usec now, std::string* error) {
    Effects out;
    if (maintenance_.on) {
        *error = "maintenance mode is on: freehad moves nothing until `freehactl maintenance off`";
        return out;
    }
    if (shutting_down_) {
        *error = "this node is shutting down";
        return out;
    }
    if (phase_ != Phase::Running) {
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
    stop_services(StopCause::Switchover, "switchover to " + to + " requested", now, out);
    evaluate(now, out);
    return out;
}

Effects Node::on_services_failed(const std::string& description, Usec now) {
    Effects out;
    if (phase_ != Phase::Running || shutting_down_ || maintenance_.on) return out;
    out.push_back(effect::Notice{NoticeKind::HookFailed, settings_.node_name, description});
    fail_services(description, now, out);
    evaluate(now, out);
    return out;
}

Effects Node::on_services_seen(const std::string& description, Usec now) {
    Effects out;
    // Our own start, stop or start-up probe explains it, and so does a
    // clean-up already under way.
    if (!started_ || shutting_down_ || hook_ || services_started() || maintenance_.on) return out;
    ++unexpected_services_;
    out.push_back(effect::Notice{NoticeKind::UnexpectedServices, settings_.node_name,
                                 description + " while this node does not hold the services; stopping them"});
    // A pending claim of ours starts once this clean-up has ended.
    run_hook(HookKind::Stop, now, out);
    evaluate(now, out);
    return out;
}

Effects Node::reconfigure(const NodeSettings& settings, Usec now) {
    Effects out;
    settings_.expected_nodes = settings.expected_nodes;
    count_expected_nodes();
    settings_.no_quorum_policy = settings.no_quorum_policy;
    settings_.interval = settings.interval;
    settings_.dead_time = settings.dead_time;
    settings_.init_dead = settings.init_dead;
    settings_.monitor_interval = settings.monitor_interval;
    settings_.fence_timeout = settings.fence_timeout;
    settings_.auth_keys = settings.auth_keys;
    membership_.set_trust_timed_out(!settings_.auth_keys.empty());
    evaluate(now, out);
    return out;
}

void Node::refuse(const std::string& node, RefusalCause cause, std::string reason, Usec now, Effects& out) {
    if (node == settings_.node_name) return;  // our name from elsewhere: counted, and DuplicateNodeName tells
    auto it = refused_.find(node);
    if (it == refused_.end()) {
        if (refused_.size() >= Membership::kMaxPeers) return;  // forged names must not grow it: counted only
        it = refused_.emplace(node, Refusal{cause, std::string(), now, now}).first;
    } else if (it->second.cause == cause) {
        it->second.reason = std::move(reason);
        it->second.last = now;
        ++it->second.count;
        return;
    }
    out.push_back(effect::Notice{NoticeKind::PeerRefused, node, reason});
    it->second = Refusal{cause, std::move(reason), it->second.since, now, it->second.count + 1};
}

std::string Node::channel_name(std::size_t channel) const {
    return channel < settings_.channel_names.size() ? settings_.channel_names[channel] : std::to_string(channel);
}

void Node::report_links(const Peer& peer, const std::vector<std::size_t>& channels, Effects& out) const {
    for (std::size_t channel : channels) {
        const LinkHealth& link = peer.links.at(channel);
        unsigned lost = link.recent_lost(), judged = std::max(link.recent_expected(), 1u);
        std::string text = std::to_string(lost) + " of the last " + std::to_string(judged) + " heartbeats lost (" +
                           std::to_string((lost * 100 + judged / 2) / judged) + "%, " +
                           (link.lossy() ? "above " + std::to_string(LinkHealth::kLossyPercent)
                                         : "at most " + std::to_string(LinkHealth::kRecoveredPercent)) +
                           "%)";
        out.push_back(effect::Notice{link.lossy() ? NoticeKind::LinkLossy : NoticeKind::LinkRecovered, peer.name,
                                     std::move(text), channel_name(channel)});
    }
}

void Node::end_refusals(Usec now, Effects& out) {
    for (auto it = refused_.begin(); it != refused_.end();) {
        const Refusal& r = it->second;
        if (now < r.last + settings_.dead_time) {
            ++it;
            continue;
        }
        out.push_back(effect::Notice{NoticeKind::PeerRefusalEnded, it->first,
                                     "none refused for " + format_timespan(settings_.dead_time) + " (" +
                                         std::to_string(r.count) + " refused over " +
                                         format_timespan((r.last - r.since) / kUsecPerMsec * kUsecPerMsec) + ")"});
        it = refused_.erase(it);
    }
}

Effects Node::on_timer(Usec now) {
    Effects out;
    if (!started_ || exited_) return out;
    end_refusals(now, out);
    for (const auto& name : membership_.expire(now, settings_.dead_time)) {
        const Peer& p = membership_.peers().at(name);
        out.push_back(effect::Notice{NoticeKind::PeerTimedOut, name,
                                     "not heard for " + format_timespan(settings_.dead_time) + " (was " +
                                         std::string(to_string(p.announced)) + ")"});
        out.push_back(effect::PeerStateChanged{name, p.announced, NodeState::TimedOut, p.term});
    }
    evaluate(now, out);
    if (now >= next_heartbeat()) send_heartbeat(now, out);  // unless evaluate() just sent one
    return out;
}

Usec Node::next_heartbeat() const {
    // A holder's heartbeats renew its lease: more often while a renewal is overdue.
    if (holding() && quorum_rules())
        return next_renewal(last_sent_, lease(), lease_timings(settings_));
    return last_sent_ + settings_.interval;
}

std::optional<Usec> Node::next_wakeup(Usec now) const {
    if (!started_ || exited_) return std::nullopt;
    Usec next = next_heartbeat();
    auto consider = [&](Usec at) { next = std::min(next, std::max(at, now)); };
    if (auto expiry = membership_.next_expiry(settings_.dead_time)) consider(*expiry);
    if (next_monitor_ && !hook_ && !maintenance_.on) consider(*next_monitor_);
    if (phase_ == Phase::InitialListening && !hook_) consider(now < listen_until_ ? listen_until_ : init_deadline_);
    if (phase_ == Phase::Standby && now < listen_until_) consider(listen_until_);
    if (handover_until_) consider(*handover_until_);
    if (voter_.live(now)) consider(voter_.promise_until());
    if (auto lease_end = lease(); lease_end && lease_enforced_ && services_started()) {
        LeaseTimings t = lease_timings(settings_);
        bool fenced = phase_ == Phase::StoppingFenced || phase_ == Phase::StoppingKilled || phase_ == Phase::StoppingCleanup;
        if (!fenced) consider(graceful_stop_at(*lease_end, t));
    }
    if (fence_deadline_ && phase_ == Phase::StoppingFenced) consider(*fence_deadline_);
    if (auto due = self_fence_due()) consider(due->at);
    return next;
}

}  // namespace freeha
