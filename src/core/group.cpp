// One service group on this node: the phase chokepoint, stops and fences, the election and switchovers.
#include "core/group.h"

#include <algorithm>

#include "core/election.h"
#include "core/node.h"

namespace freeha {

std::optional<HookKind> Group::running_hook() const {
    if (!hook_) return std::nullopt;
    return hook_->kind;
}

bool Group::services_started() const {
    return holding() && phase_ != Phase::StartingPending && phase_ != Phase::StoppingExit;
}

Group::Group(Node& node, std::size_t index)
    : node_(node),
      index_(index),
      id_(index == 0 ? kDefaultGroupId : wire::group_id(node.settings_.groups.at(index).name)) {}

const GroupSettings& Group::settings() const { return node_.settings_.groups.at(index_); }

const std::string& Group::name() const { return settings().name; }

void Group::notice(Effects& out, effect::Notice notice) const {
    if (index_ != 0) notice.group = name();
    out.push_back(std::move(notice));
}

// --- the chokepoint -------------------------------------------------------

void Group::set_phase(Phase to, std::string reason, Usec now, Effects& out) {
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
    // etcd: the group's key goes once nothing of its services runs here, so
    // that the next node can create it (a switchover, a failure, a stop).
    if (etcd_key_ != EtcdKey::None && (!holds_services(state_of(to)) || to == Phase::StoppingExit)) {
        etcd_key_ = EtcdKey::None;
        out.push_back(effect::EtcdRelease{name()});
    }
    out.push_back(effect::StateChanged{state_of(from), state_of(to), std::move(reason), cluster_term(), active_node(),
                                       from, to, index_});
    // Peers learn of every change of what they see (the state, and whether a
    // claim has started) at once rather than at the next interval.
    if (state_of(from) != state_of(to) || was_pending != (to == Phase::StartingPending)) node_.send_heartbeat(now, out);
}

// --- stopping ---------------------------------------------------------------

void Group::count_stop(StopCause cause) {
    if (state() != NodeState::Stopping) ++history_.stops.at(static_cast<std::size_t>(cause));
}

void Group::stop_services(StopCause cause, std::string reason, Usec now, Effects& out) {
    count_stop(cause);
    if (phase_ == Phase::StartingPending) {  // starthasrv never ran: nothing to stop
        set_phase(Phase::StoppingHook, std::move(reason), now, out);
        services_stopped(now, out);
        return;
    }
    if (state() != NodeState::Stopping) set_phase(Phase::StoppingHook, std::move(reason), now, out);
    drive_hooks(now, out);
}

void Group::fence(StopCause cause, std::string reason, Usec deadline, Usec now, Effects& out) {
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

void Group::kill_at_deadline(Usec now, Effects& out) {
    if (phase_ != Phase::StoppingFenced || !fence_deadline_ || now < *fence_deadline_) return;
    kill_services("the stop did not end by its deadline: killing the services", now, out);
}

void Group::kill_services(std::string reason, Usec now, Effects& out) {
    set_phase(Phase::StoppingKilled, std::move(reason), now, out);
    if (hook_) hook_->killed = true;  // its result means nothing now
    out.push_back(effect::KillServices{index_});
}

Effects Group::on_services_killed(Usec now) {
    Effects out;
    if (phase_ != Phase::StoppingKilled) return out;
    set_phase(Phase::StoppingCleanup, "services killed; stophasrv cleans up what they left", now, out);
    node_.evaluate(now, out);
    return out;
}

std::optional<Group::SelfFenceDue> Group::self_fence_due() const {
    if (phase_ != Phase::StoppingKilled && phase_ != Phase::StoppingCleanup) return std::nullopt;
    if (self_fenced_ || !lease_enforced_ || !node_.quorum_rules()) return std::nullopt;
    std::optional<Usec> lease_end = lease();
    return SelfFenceDue{lease_end ? self_fence_at(*lease_end, lease_timings(node_.settings_)) : Usec(), lease_end};
}

void Group::self_fence_if_late(Usec now, Effects& out) {
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
                                    lease_end.value_or(now), index_});
}

void Group::fail_services(std::string error, Usec now, Effects& out) {
    error_latched_ = true;
    last_error_ = error;
    // Announce STOPPING (not ERRORED) while stophasrv runs so that no peer
    // starts the services before they are down here.
    stop_services(StopCause::Failed, std::move(error), now, out);
}

void Group::services_stopped(Usec now, Effects& out) {
    lease_enforced_ = false;
    if (node_.leaving_) {
        // The machine shuts down: hand over as a switchover does (the
        // handover target starts once it hears this), and leave once it has
        // taken the services (leave_when_handed_over()).
        if (!handover_to_.empty()) handover_until_ = now + node_.settings_.dead_time;
        set_phase(Phase::Standby, handover_to_.empty() ? "services stopped; the machine shuts down"
                                                       : "services stopped; handing them to " + handover_to_ +
                                                             " as the machine shuts down",
                  now, out);
        node_.leave_when_handed_over(now, out);
        return;
    }
    if (node_.shutting_down_) {
        // The last group to stop ends the daemon; the others wait for it.
        if (node_.any_group([this](const Group& g) { return &g != this && !g.done_for_exit(); }))
            set_phase(Phase::StoppingExit, "services stopped; waiting for the other groups to stop", now, out);
        else
            node_.exit_when_stopped(*this, now, out);
        return;
    }
    if (!handover_to_.empty()) handover_until_ = now + 2 * node_.settings_.dead_time;
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

void Group::finish_listening(Usec now, Effects& out) {
    // Listen for a whole dead time first: every live node is heard within it
    // (else it would count as dead), so a node joining a running cluster
    // cannot miss the active node and elect itself beside it.
    if (phase_ != Phase::InitialListening || hook_ || now < listen_until_) return;
    unsigned needed = startup_votes_needed(node_.expected_nodes());
    // etcd: its keys are the whole picture; without it, nothing starts, however long it takes.
    if (node_.etcd_ ? node_.quorate_ : node_.live_votes() >= needed) {
        set_phase(Phase::Standby, "start-up complete", now, out);
    } else if (now >= init_deadline_ && !node_.etcd_) {
        notice(out, effect::Notice{NoticeKind::StartupWaitExpired, node_.settings_.node_name,
                                     "InitDead passed having seen " + std::to_string(node_.live_votes()) + " of " +
                                         std::to_string(needed) + " nodes"});
        set_phase(Phase::Standby, "start-up wait expired", now, out);
    } else {
        return;
    }
    check_preferred_nodes(out);
}

void Group::check_preferred_nodes(Effects& out) {
    for (const std::string& name : settings().nodes) {
        if (name == node_.settings_.node_name || node_.membership_.peers().contains(name) ||
            !unknown_preferred_warned_.insert(name).second)
            continue;
        notice(out, effect::Notice{NoticeKind::UnknownPreferredNode, name,
                                   "no heartbeat has come from it: a typo, or a node of another cluster? The group "
                                   "runs on the other nodes meanwhile"});
    }
}

void Group::maybe_elect(Usec now, Effects& out) {
    if (phase_ != Phase::Standby || node_.settings_.role != Role::Member || error_latched_ || retiring_ || node_.standby_ ||
        !unavailable_.empty() || !node_.quorate_ || node_.shutting_down_ || !handover_to_.empty() || now < listen_until_ ||
        node_.maintenance_.on)
        return;
    // While the cluster speaks the previous wire version, which carries the
    // default group alone, peers cannot see this group's claims: it runs
    // nowhere until every node speaks the current one (freeha-upgrade(7)).
    if (index_ != 0 && node_.wire_version() < wire::kVersion) return;
    // Someone backs a live claim: a holder exists, even if this node cannot
    // hear it. And our own promise to another claimant still binds us.
    if (peer_backs_other_live_claim()) return;
    if (voter_.live(now) && voter_.claimant() != node_.settings_.node_name) return;
    if (unwatched_holder(now)) return;
    // etcd: a holder key that exists is never taken (no fail-back), whoever's it is.
    if (node_.etcd_ && node_.etcd_->holders.contains(name())) return;
    std::vector<Candidate> view;
    view.push_back(Candidate{node_.settings_.node_name, state(), node_.settings_.role, node_.standby_ || !unavailable_.empty(),
                             error_latched_, handover_to_});
    for (const auto& [name, p] : node_.membership_.peers())
        if (p.reachable() && p.speaks_of(id_)) {
            const PeerGroup& g = view_of(p);
            view.push_back(Candidate{name, g.announced, p.role, aside(p, g), g.error_latched, g.handover_to});
        }
    std::vector<std::string> preference = node_.preference(*this);
    auto elected = elected_node(view, preference);
    if (elected && *elected == node_.settings_.node_name)
        claim(preference.empty() ? "elected: first eligible node, no node holds the services"
                                 : "elected: the group's placement picks this node, no node holds it",
              false, now, out);
}

// A switchover is over once another node holds the services, or when nobody
// has taken them within two dead times of our stop (then we are eligible again).
void Group::end_handover_when_done(Usec now) {
    if (handover_to_.empty()) return;
    bool taken = false;
    for (const auto& [name, p] : node_.membership_.peers())
        if (p.reachable() && holds_services(view_of(p).announced)) taken = true;
    if (taken || (handover_until_ && now >= *handover_until_)) {
        handover_to_.clear();
        handover_until_.reset();
    }
}

std::optional<std::string> Group::next_eligible_peer() const {
    // Only peers that could be elected once we are down count; INITIAL or
    // STOPPING peers would block the whole election here.
    std::vector<Candidate> view;
    for (const auto& [name, p] : node_.membership_.peers())
        if (const PeerGroup& g = view_of(p); p.reachable() && g.announced == NodeState::Standby)
            view.push_back(Candidate{name, g.announced, p.role, aside(p, g), g.error_latched, g.handover_to});
    return elected_node(view, node_.preference(*this));
}

void Group::clear_error(Usec now, Effects& out) {
    if (!error_latched_) return;
    error_latched_ = false;
    last_error_.clear();
    if (phase_ == Phase::Errored) set_phase(Phase::Standby, "error cleared", now, out);
}

Effects Group::switchover(const std::string& target, Usec now, std::string* error) {
    Effects out;
    if (node_.maintenance_.on) {
        *error = "maintenance mode is on: freehad moves nothing until `freehactl maintenance off`";
        return out;
    }
    if (node_.shutting_down_) {
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
    } else if (to == node_.settings_.node_name) {
        *error = "node " + to + " already runs the services";
        return out;
    } else {
        auto it = node_.membership_.peers().find(to);
        if (it == node_.membership_.peers().end() || !it->second.reachable()) {
            *error = "node " + to + " is not a reachable node of this cluster";
            return out;
        }
        const Peer& p = it->second;
        const PeerGroup& g = view_of(p);
        if (p.role != Role::Member || g.announced != NodeState::Standby || aside(p, g) || g.error_latched) {
            *error = "node " + to + " cannot take the services (" + std::string(to_string(g.announced)) +
                     (p.role != Role::Member ? ", arbitrator" : "") + (p.standby_flag() ? ", in standby" : "") +
                     (g.aside && !p.standby_flag() ? ", the group cannot run there" : "") +
                     (g.error_latched ? ", errored" : "") + ")";
            return out;
        }
    }
    handover_to_ = to;
    handover_until_.reset();
    stop_services(StopCause::Switchover, "switchover to " + to + " requested", now, out);
    node_.evaluate(now, out);
    return out;
}

Effects Group::on_services_failed(const std::string& description, Usec now) {
    Effects out;
    if (phase_ != Phase::Running || node_.shutting_down_ || node_.maintenance_.on) return out;
    notice(out, effect::Notice{NoticeKind::HookFailed, node_.settings_.node_name, description});
    fail_services(description, now, out);
    node_.evaluate(now, out);
    return out;
}

Effects Group::on_services_seen(const std::string& description, Usec now) {
    Effects out;
    // Our own start, stop or start-up probe explains it, and so does a
    // clean-up already under way.
    if (!node_.started_ || node_.shutting_down_ || hook_ || services_started() || node_.maintenance_.on) return out;
    ++unexpected_services_;
    notice(out, effect::Notice{NoticeKind::UnexpectedServices, node_.settings_.node_name,
                                 description + " while this node does not hold the services; stopping them"});
    // A pending claim of ours starts once this clean-up has ended.
    run_hook(HookKind::Stop, now, out);
    node_.evaluate(now, out);
    return out;
}

void Group::start(Usec now, bool force_start, Effects& out) {
    init_deadline_ = now + node_.settings_.init_dead;
    // No election for a dead time: every node started with this one is heard
    // (heartbeats) or has its member key in etcd by then, so nodes started
    // together elect the preferred one, not the fastest to start. (Safety
    // needs the wait with heartbeats only: with etcd, the group's key is it.)
    listen_until_ = now + node_.settings_.dead_time;
    if (node_.settings_.role == Role::Arbitrator) {
        set_phase(Phase::InitialListening, "an arbitrator has no services to probe", now, out);
    } else if (node_.maintenance_.on && !force_start) {
        set_phase(Phase::InitialListening, "maintenance mode: no start-up probe, the services are left as they are",
                  now, out);
    } else if (force_start) {
        claim("forced start at launch (-m): other nodes not checked", true, now, out);
    }
}

void Group::retire(Usec now, Effects& out) {
    retiring_ = true;
    if (holding()) stop_services(StopCause::Operator, "group removed from the configuration", now, out);
}

bool Group::retired(Usec now) const { return retiring_ && !holding() && !hook_ && !voter_.live(now); }

bool Group::done_for_exit() const {
    if (phase_ == Phase::StoppingExit) return true;
    if (state() == NodeState::Stopping) return false;  // its stop ends first
    if (node_.leaves_services_) return true;           // left as it is
    return !holding() && !hook_;
}

void Group::listen_again(Usec now) {
    if (node_.etcd_) return;  // its keys say who holds what: nothing to wait for
    listen_until_ = std::max(listen_until_, now + node_.settings_.dead_time);
}

void Group::quorum_lost(const std::string& text, Usec now, Effects& out) {
    // A claim that has not started cannot win a majority now: drop it. Running
    // services stop when their lease runs out (NoQuorumPolicy=stop), which
    // happens as the majority falls silent, not when one peer restarts.
    if (phase_ == Phase::StartingPending) stop_services(StopCause::QuorumLost, "quorum lost: " + text, now, out);
}

void Group::decide(Usec now, Effects& out) {
    check_rivals(now, out);
    enforce_lease(now, out);
    finish_listening(now, out);
    maybe_elect(now, out);
    maybe_start_claim(now, out);
    kill_at_deadline(now, out);
    self_fence_if_late(now, out);
    drive_hooks(now, out);
}

void Group::consider_wakeups(Usec now, Usec& next) const {
    auto consider = [&](Usec at) { next = std::min(next, std::max(at, now)); };
    if (next_monitor_ && !hook_ && !node_.maintenance_.on) consider(*next_monitor_);
    // (etcd: no InitDead=, start-up waits for etcd's answer, which is an event.)
    if (phase_ == Phase::InitialListening && !hook_ && (now < listen_until_ || !node_.etcd_))
        consider(now < listen_until_ ? listen_until_ : init_deadline_);
    if (phase_ == Phase::Standby && now < listen_until_) consider(listen_until_);
    if (handover_until_) consider(*handover_until_);
    if (voter_.live(now)) consider(voter_.promise_until());
    if (auto lease_end = lease(); lease_end && lease_enforced_ && services_started()) {
        LeaseTimings t = lease_timings(node_.settings_);
        bool fenced = phase_ == Phase::StoppingFenced || phase_ == Phase::StoppingKilled || phase_ == Phase::StoppingCleanup;
        if (!fenced) consider(graceful_stop_at(*lease_end, t));
    }
    if (fence_deadline_ && phase_ == Phase::StoppingFenced) consider(*fence_deadline_);
    if (auto due = self_fence_due()) consider(due->at);
}

// --- operator commands ------------------------------------------------------

void Group::stop_if_running(StopCause cause, std::string reason, Usec now, Effects& out) {
    if (state() == NodeState::Running || state() == NodeState::Starting)
        stop_services(cause, std::move(reason), now, out);
}

void Group::shut_down(const std::string& reason, Usec now, Effects& out) {
    if (state() == NodeState::Stopping) return;  // exits when the stop ends
    if (state() == NodeState::Running || state() == NodeState::Starting || hook_) {
        stop_services(StopCause::Shutdown, reason, now, out);
    } else {
        set_phase(Phase::StoppingHook, reason, now, out);
        services_stopped(now, out);
    }
}

void Group::force_start(Usec now, Effects& out) {
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
}

}  // namespace freeha
