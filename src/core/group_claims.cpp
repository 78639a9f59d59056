// The node's claims and lease (its Holder), its backing of other claims (its Voter); the arithmetic is in claims.cpp.
#include "core/election.h"
#include "core/group.h"
#include "core/node.h"
#include "core/node_name.h"

namespace freeha {

std::optional<Usec> Group::lease() const {
    if (!holding() || !node_.quorum_rules()) return std::nullopt;
    // etcd: the node's lease binds the group's key, and etcd deletes the key only with it.
    if (node_.etcd_) return etcd_key_ == EtcdKey::Held ? node_.etcd_->lease_until : std::nullopt;
    return holder_.lease(quorum_votes_needed(node_.expected_nodes()));
}

// A backer states the grant of its promise to this claim, on our clock,
// computed with its own DeadTime=: the promise outlasts it. The grant stands
// until it runs out even if the backer's later heartbeats say something else:
// a backer keeps its promise whatever it announces, and restarted, it backs
// nothing for a dead time.
void Group::record_grant(const wire::Heartbeat& hb, const GroupNews& news, Usec now) {
    if (!holding() || news.claimant != node_.settings_.node_name || news.term != holder_.term() || news.grant == 0)
        return;
    // A grant to this node's earlier run (replayed, or late) is on a clock
    // that may have started over: one naming another run backs nothing. (A
    // grant naming no run comes from a version that cannot name it, or a
    // node beside one: freeha-safety(7).)
    if (news.claimant_incarnation && *news.claimant_incarnation != node_.settings_.incarnation) return;
    holder_.record_grant(hb.node, Usec(news.grant), now);
}

wire::GroupBeat Group::announce(Usec now) const {
    wire::GroupBeat beat;
    beat.group = id_;
    beat.state = state();
    beat.handover_to = handover_to_;
    beat.error_latched = error_latched_;
    beat.claim_pending = phase_ == Phase::StartingPending;
    beat.aside = !unavailable_.empty();
    // A claim announces its own term. Any other node announces the claim it
    // backs (with the grant of its promise), or else the best claim it
    // knows of, so that news of a claim spreads to nodes its claimant cannot reach.
    if (holding()) {
        beat.term = holder_.term();
    } else if (voter_.live(now)) {
        beat.term = voter_.term();
        beat.claimant = voter_.claimant();
        beat.grant = voter_.grant();
        beat.claimant_incarnation = voter_.claimant_incarnation();
    } else {
        beat.term = terms_.max_term();
        beat.claimant = terms_.best_claimant();
        auto claimant = node_.membership_.peers().find(beat.claimant);
        beat.claimant_incarnation = claimant != node_.membership_.peers().end() ? claimant->second.incarnation : 0;
    }
    return beat;
}

bool Group::learn(const wire::Heartbeat& hb, const GroupNews* news, Usec now) {
    bool ack = false;
    if (news != nullptr) {
        terms_.learn(news->term, holds_services(news->state) ? hb.node : news->claimant);
        record_grant(hb, *news, now);
        // A new heartbeat of the claim we back renews our promise, and our
        // acknowledgement (the grant) goes back at once: it renews the lease.
        if (node_.started_ && voter_.backs(hb.node, hb.incarnation, news->term) && holds_services(news->state) &&
            may_back(now))
            ack = voter_.promise(hb.node, hb.incarnation, news->term, Usec(hb.sent_at), now,
                                 node_.settings_.dead_time, now);
    }
    if (node_.started_ && update_backing(now)) ack = true;
    return ack;
}

void Group::claim(std::string reason, bool forced, Usec now, Effects& out) {
    ClaimCause cause = forced                   ? ClaimCause::Forced
                       : handed_over_to_us()    ? ClaimCause::Switchover
                       : terms_.max_term() == 0 ? ClaimCause::Startup
                                                : ClaimCause::Failover;
    ++history_.claims.at(static_cast<std::size_t>(cause));
    holder_.claim(terms_.next_term(node_.settings_.node_name), now);
    voter_.release();  // a claimant backs no one else (maybe_elect waits for its promise to run out)
    // Services started without a lease (forced) are bound by one only once
    // they have one: the operator took responsibility for the start.
    lease_enforced_ = !forced;
    if (!forced && node_.quorum_rules())
        reason += node_.etcd_ ? "; starting the services once etcd grants the group's key"
                              : "; starting the services once a majority backs this claim";
    claim_etcd_key(out);
    notice(out, effect::Notice{NoticeKind::Takeover, node_.settings_.node_name, reason});
    set_phase(forced ? Phase::StartingHook : Phase::StartingPending, std::move(reason), now, out);
    drive_hooks(now, out);
}

void Group::claim_running_services(Usec now, Effects& out) {
    // FreeHA: a successful monitor at start-up means the services already run
    // here. The claim has term 0, so any node that took over meanwhile wins;
    // with quorum rules it must win a lease like any other holder.
    ++history_.claims.at(static_cast<std::size_t>(ClaimCause::FoundRunning));
    holder_.claim(0, now);
    voter_.release();
    lease_enforced_ = false;
    claim_etcd_key(out);
    set_phase(Phase::Running, "monitorhasrv at start-up: services already running here", now, out);
    next_monitor_ = now + settings().monitor_interval;
}

void Group::maybe_start_claim(Usec now, Effects& out) {
    if (phase_ != Phase::StartingPending || hook_) return;
    // Planned moves: wait for a node that still runs (or stops) the services.
    if (peer_runs_services()) return;
    if (node_.quorum_rules() && !lease_allows_start(lease(), now, lease_timings(node_.settings_))) return;
    set_phase(Phase::StartingHook, node_.etcd_ ? "etcd grants the group's key" : "a majority backs this claim", now,
              out);
}

void Group::claim_etcd_key(Effects& out) {
    if (!node_.etcd_) return;
    if (etcd_key_ == EtcdKey::None) out.push_back(effect::EtcdClaim{name()});
    if (etcd_key_ != EtcdKey::Held) etcd_key_ = EtcdKey::Claiming;
}

void Group::etcd_claim_answered(bool won, const std::string& holder, Usec now, Effects& out) {
    if (etcd_key_ != EtcdKey::Claiming) {
        // Not wanted (any more): released meanwhile, or a claim the link made
        // again on a new lease after the core gave it up. A key won must not
        // stay: nobody would ever take the group.
        if (won) out.push_back(effect::EtcdRelease{name()});
        return;
    }
    if (won) {
        etcd_key_ = EtcdKey::Held;
        return;
    }
    etcd_key_ = EtcdKey::None;
    std::string text = holder + " holds the group's key in etcd";
    if (phase_ == Phase::StartingPending) {
        stop_services(StopCause::Rival, text + "; withdrawing our claim", now, out);
    } else if (services_started() && state() != NodeState::Stopping) {
        // Services that run here unbound (found running at start-up, or
        // forced) beside the key's holder: kill first. Even a key of our own
        // name is an older run's, on a lease that may end at any moment.
        notice(out, effect::Notice{NoticeKind::DualActiveResolved, holder, text + "; stopping the services here"});
        fence(StopCause::Rival, text + "; stopping the services here", now, now, out);
    }
}

void Group::etcd_lease_lost(Usec now, Effects& out) {
    if (etcd_key_ == EtcdKey::None) return;
    etcd_key_ = EtcdKey::None;
    if (phase_ == Phase::StartingPending)
        stop_services(StopCause::LeaseLost, "the etcd lease is lost; withdrawing our claim", now, out);
}

bool Group::peer_runs_services() const {
    for (const auto& [name, p] : node_.membership_.peers())
        if (p.reachable() && view_of(p).runs_services()) return true;
    return false;
}

bool Group::handed_over_to_us() const {
    for (const auto& [name, p] : node_.membership_.peers())
        if (p.reachable() && view_of(p).handover_to == node_.settings_.node_name) return true;
    return false;
}

bool Group::peer_backs_other_live_claim() const {
    for (const auto& [name, p] : node_.membership_.peers())
        if (const PeerGroup& g = view_of(p); p.reachable() && g.grant != 0 && g.claimant != node_.settings_.node_name)
            return true;
    return false;
}

bool Group::may_back(Usec now) const {
    return node_.started_ && !holding() && !retiring_ && now >= node_.backing_allowed_at_;
}

bool Group::update_backing(Usec now) {
    if (node_.etcd_) return false;  // etcd grants the leases: no node backs another's claim
    Voter before = voter_;
    bool was_live = voter_.live(now);
    if (!voter_.claimant().empty()) {
        auto it = node_.membership_.peers().find(voter_.claimant());
        // The claimant now says it holds nothing, or holds another claim (a
        // holder always announces its own term): the promise has nothing left
        // to protect, that claim's services are stopped. Nothing else ends a
        // promise early: a claimant that fell silent is waited out.
        if (it != node_.membership_.peers().end() &&
            (!holds_services(view_of(it->second).announced) || view_of(it->second).term != voter_.term()))
            voter_.release();
        voter_.expire(now);
    }
    if (!voter_.live(now) && may_back(now)) {
        // Free to back: the best claim we hear directly. A claim whose
        // services run outranks one still pending, then the higher term.
        const Peer* best = nullptr;
        const PeerGroup* best_claim = nullptr;
        for (const auto& [name, p] : node_.membership_.peers()) {
            const PeerGroup& g = view_of(p);
            if (!p.reachable() || !holds_services(g.announced) || p.role != Role::Member) continue;
            if (best == nullptr || (g.runs_services() && !best_claim->runs_services()) ||
                (g.runs_services() == best_claim->runs_services() &&
                 claim_outranks(g.term, p.name, best_claim->term, best->name))) {
                best = &p;
                best_claim = &g;
            }
        }
        if (best != nullptr)
            voter_.promise(best->name, best->incarnation, best_claim->term, Usec(best->sent_at), best->last_heard,
                           node_.settings_.dead_time, now);
    }
    // What we announce changed: a new backing, a release, a promise that ran out.
    return voter_.claimant() != before.claimant() || voter_.term() != before.term() ||
           was_live != voter_.live(now) || voter_.grant() != before.grant();
}

// Two nodes whose services run: the lesser claim stops (a partition healed
// without quorum rules, or a node frozen past its lease woke up). A claim
// that has not started yet gives way to any node running the services, and
// to any better claim.
void Group::check_rivals(Usec now, Effects& out) {
    if (!holding() || state() == NodeState::Stopping) return;
    bool pending = phase_ == Phase::StartingPending;
    for (const auto& [name, p] : node_.membership_.peers()) {
        if (!p.reachable()) continue;
        const PeerGroup& g = view_of(p);
        std::string text;
        Usec deadline = now + node_.settings_.fence_timeout;
        // A node whose stop is under way is waited for (maybe_start_claim), not fought.
        bool runs = g.runs_services() && g.announced != NodeState::Stopping;
        if (runs && (pending || outranked_by(name, g.term))) {
            text = name + " runs the services with term " + std::to_string(g.term) + " (ours " +
                   std::to_string(holder_.term()) + "); stepping down";
            // Ours run unbound by a lease (found running after maintenance
            // mode, or forced) beside a majority's holder: as a holder frozen
            // past its lease, kill first (freeha-safety(7)).
            if (node_.quorum_rules() && !lease_enforced_ && !pending) deadline = now;
        } else if (pending && !node_.etcd_) {  // etcd: its key decides between claims
            const std::string& rival = holds_services(g.announced) ? name : g.claimant;
            if (rival.empty() || !claim_outranks(g.term, rival, holder_.term(), node_.settings_.node_name)) continue;
            text = name + (rival == name ? " claims" : " knows of a claim by " + rival) + " with term " +
                   std::to_string(g.term) + " (ours " + std::to_string(holder_.term()) + "); withdrawing our claim";
        } else {
            continue;
        }
        notice(out, effect::Notice{NoticeKind::DualActiveResolved, name, text});
        fence(StopCause::Rival, std::move(text), deadline, now, out);
        return;
    }
}

bool Group::outranked_by(const std::string& peer, std::uint64_t term) const {
    // etcd: the key's holder is right, whatever the terms say (a forced start's term is only counted).
    if (node_.etcd_)
        if (auto it = node_.etcd_->holders.find(name()); it != node_.etcd_->holders.end())
            return it->second != node_.settings_.node_name;
    return claim_outranks(term, peer, holder_.term(), node_.settings_.node_name);
}

// A holder stops in time for its lease: gracefully when FenceTimeout is left, killing at its end.
void Group::enforce_lease(Usec now, Effects& out) {
    if (!node_.quorum_rules() || !services_started()) return;
    LeaseTimings t = lease_timings(node_.settings_);
    std::optional<Usec> lease_end = lease();
    if (!lease_enforced_) {
        if (!lease_end || *lease_end <= now) return;
        lease_enforced_ = true;  // services started without one are bound from their first lease
    }
    if (lease_end && now < graceful_stop_at(*lease_end, t)) return;
    Usec deadline = lease_end ? kill_at(*lease_end, t) : now;
    if (phase_ == Phase::StoppingFenced || phase_ == Phase::StoppingKilled || phase_ == Phase::StoppingCleanup) {
        fence(StopCause::LeaseLost, std::string(), deadline, now, out);  // only moves the deadline closer
        return;
    }
    // With etcd, the lease is the node's etcd lease: renewed by keepalives etcd acknowledges.
    const bool etcd = node_.etcd_backend();
    std::string text = lease_end ? std::string(etcd ? "etcd acknowledged no keepalive in time"
                                                    : "no majority has renewed this node's lease") +
                                       "; it ends in " + format_timespan(*lease_end - now)
                                 : etcd ? "this node holds no etcd lease any more"
                                        : "no majority backs this node's claim any more";
    notice(out, effect::Notice{NoticeKind::LeaseLost, node_.settings_.node_name, text});
    // The majority is gone or backs another claim: claiming again at once
    // would only make noise. Listen a dead time first, as after a partition.
    listen_until_ = std::max(listen_until_, now + node_.settings_.dead_time);
    fence(StopCause::LeaseLost, text + ": stopping the services", deadline, now, out);
}

}  // namespace freeha
