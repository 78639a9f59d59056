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
std::string_view to_string(Backend b) { return kBackendNames(b); }

bool quorum_rules_apply(unsigned expected_nodes, NoQuorumPolicy policy) {
    return expected_nodes > 2 && policy == NoQuorumPolicy::Stop;
}

bool quorum_rules_apply(const NodeSettings& s) {
    return s.backend == Backend::Etcd || quorum_rules_apply(s.expected_nodes, s.no_quorum_policy);
}

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
      quorate_(live_votes() >= quorum_votes_needed(settings_.expected_nodes)) {
    if (settings_.groups.empty()) settings_.groups.emplace_back();
    for (std::size_t i = 0; i < settings_.groups.size(); ++i) groups_.push_back(std::make_unique<Group>(*this, i));
    if (settings_.backend == Backend::Etcd) {
        etcd_.emplace(EtcdLink{});  // (clang: a nested aggregate is not default-constructible inside its class yet)
        quorate_ = false;  // until etcd grants a lease and the cluster's keys are read
    }
}

void Node::count_expected_nodes() {
    expected_nodes_ = settings_.expected_nodes;
    for (const auto& [name, p] : membership_.peers()) expected_nodes_ = std::max(expected_nodes_, p.expected_nodes);
}

std::uint64_t Node::wall_estimate(Usec now) const { return settings_.incarnation + (now - started_at_).count(); }

std::uint16_t Node::own_flags() const {
    std::uint16_t flags = 0;
    if (default_group().error_latched()) flags |= wire::kFlagErrorLatched;
    if (standby_ || leaving_) flags |= wire::kFlagStandby;  // peers elect another node
    // The default group alone: a node of one group (or speaking version 2,
    // which carries no other) stands aside as a whole, as before groups.
    if (!default_group().unavailable().empty())
        flags |= groups_.size() == 1 || wire_version() < wire::kVersion ? wire::kFlagStandby : wire::kFlagDefaultAside;
    if (default_group().phase() == Phase::StartingPending) flags |= wire::kFlagClaimPending;
    if (maintenance_.on) flags |= wire::kFlagMaintenance;
    if (leaving_ && exited_) flags |= wire::kFlagLeaving;  // the last heartbeat of a leaving node
    return flags;
}

void Node::send_heartbeat(Usec now, Effects& out, bool reply) {
    wire::Heartbeat hb;
    hb.version = wire_version();
    hb.release = settings_.release;
    hb.maintenance_epoch = maintenance_.epoch;
    hb.cluster_id = cluster_id_;
    hb.incarnation = settings_.incarnation;
    if (!etcd_) hb.sequence = ++sequence_;
    hb.sent_at = now.count();
    // The default group in the header, the others after it (the current
    // version only: version 2 carries the default group alone).
    wire::GroupBeat header = default_group().announce(now);
    hb.state = header.state;
    hb.term = header.term;
    hb.claimant = std::move(header.claimant);
    hb.grant = header.grant;
    hb.handover_to = std::move(header.handover_to);
    if (!holds_services(header.state)) hb.claimant_incarnation = header.claimant_incarnation;
    if (hb.version == wire::kVersion)
        for (std::size_t i = 1; i < groups_.size(); ++i) hb.groups.push_back(groups_[i]->announce(now));
    std::sort(hb.groups.begin(), hb.groups.end(),
              [](const wire::GroupBeat& a, const wire::GroupBeat& b) { return a.group < b.group; });
    hb.role = settings_.role;
    hb.flags = own_flags() | (reply ? wire::kFlagReply : 0);
    hb.node = settings_.node_name;
    // Our own ExpectedNodes= (never the larger one we count with, else a
    // lowered count could never take effect). In version 2, only while every
    // peer we hear states its own: it may be a release that rejects the
    // field (and likewise for the claimant's incarnation).
    hb.expected_nodes = settings_.expected_nodes;
    bool previous = hb.version == wire::kPreviousVersion;
    for (const auto& [name, p] : membership_.peers()) {
        if (!p.reachable() || etcd_) continue;  // etcd: liveness is the member key, not what a node hears
        hb.heard.push_back(node_id(name));
        if (previous && !p.states_expected) hb.expected_nodes = 0;
    }
    if (previous && !peers_state_claimant_incarnation()) hb.claimant_incarnation.reset();
    if (!previous && !hb.claimant_incarnation) hb.claimant_incarnation = 0;
    if (etcd_) {
        // The member record is put only when what it says changes: a put
        // costs etcd a write to a majority, and liveness is the key's lease.
        last_sent_ = now;
        wire::Heartbeat said = hb;
        said.sequence = 0;
        said.sent_at = 0;
        said.flags &= ~wire::kFlagReply;
        if (etcd_->published == said) return;
        etcd_->published = std::move(said);
        hb.sequence = ++sequence_;  // numbered only when put: peers see no gap for records never sent
    }
    auto datagram = wire::encode(hb);
    if (!settings_.auth_keys.empty()) settings_.auth_keys.sign(datagram);
    out.push_back(effect::SendHeartbeat{std::move(hb), std::move(datagram)});
    last_sent_ = now;
}

bool Node::peers_state_claimant_incarnation() const {
    for (const auto& [name, p] : membership_.peers())
        if (p.reachable() && !p.states_claimant_incarnation) return false;
    return true;
}

// --- start-up, quorum and election -----------------------------------------

Effects Node::start(Usec now, bool force_start) {
    Effects out;
    if (started_) return out;
    started_ = true;
    started_at_ = now;
    backing_allowed_at_ = now + std::max(settings_.dead_time, settings_.previous_dead_time);
    send_heartbeat(now, out);
    for (auto& g : groups_) g->start(now, force_start, out);
    if (!force_start) evaluate(now, out);  // runs the start-up probe (monitorhasrv): is anything already running here?
    return out;
}

Node::PlacementInputs Node::placement_inputs() const {
    PlacementInputs in;
    if (settings_.role == Role::Member && !standby_ && !leaving_)
        in.eligible.push_back(settings_.node_name);
    for (const auto& [name, p] : membership_.peers())
        if (p.reachable() && p.role == Role::Member && !p.standby_flag()) in.eligible.push_back(name);
    for (const auto& other : groups_) {
        const GroupSettings& gs = other->settings();
        in.groups.push_back(GroupPlacement{gs.name, gs.placement, gs.nodes});
        if (other->holding()) {
            in.current[gs.name] = settings_.node_name;
            continue;
        }
        for (const auto& [name, p] : membership_.peers())
            if (p.reachable() && holds_services(p.group(other->id()).announced)) in.current[gs.name] = name;
    }
    return in;
}

std::vector<std::string> Node::preference(const Group& g) const {
    if (g.settings().placement == PlacementPolicy::Alphabetical) return {};
    // The nodes that may take a group, and where each group runs (or is claimed) now.
    PlacementInputs in = placement_inputs();
    std::vector<std::string> order = preference_order(in.groups[g.index_], in.eligible);
    Placement placed = place(in.groups, in.eligible, in.current);
    if (auto it = placed.find(g.name()); it != placed.end()) order.insert(order.begin(), it->second);
    return order;
}

void Node::update_quorum(Usec now, Effects& out) {
    unsigned expected = expected_nodes();
    std::string why_not = etcd_ ? etcd_unquorate_reason(now) : std::string();
    bool quorate = etcd_ ? why_not.empty() : live_votes() >= quorum_votes_needed(expected);
    if (quorate == quorate_) return;
    quorate_ = quorate;
    std::string text = etcd_ ? (quorate ? "etcd grants this node a lease" : why_not)
                             : std::to_string(live_votes()) + " of " + std::to_string(expected) +
                                   " nodes reachable, " + std::to_string(quorum_votes_needed(expected)) + " needed";
    out.push_back(effect::Notice{quorate ? NoticeKind::QuorumGained : NoticeKind::QuorumLost,
                                 settings_.node_name, text});
    // Back from a partition: listen a whole dead time again, as at start-up,
    // so that the first peers heard do not hide the node that holds the services.
    for (auto& g : groups_) {
        if (quorate && g->state() != NodeState::Initial) g->listen_again(now);
        if (!quorate) g->quorum_lost(text, now, out);
    }
}

void Node::evaluate(Usec now, Effects& out) {
    if (!started_ || exited_) return;
    for (auto& g : groups_) g->end_handover_when_done(now);
    leave_when_handed_over(now, out);
    if (exited_) return;
    bool backing_changed = false;
    for (auto& g : groups_) backing_changed = g->update_backing(now) || backing_changed;
    if (backing_changed) send_heartbeat(now, out);
    update_quorum(now, out);
    for (auto& g : groups_) g->decide(now, out);
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
    if (auto jump = implausible_term(hb)) {
        ++counters_.implausible;
        refuse(hb.node, RefusalCause::TermJump, *jump, now, out);
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
    bool ack = false;
    for (auto& g : groups_) {
        std::optional<GroupNews> news = news_of(hb, g->id());
        ack = g->learn(hb, news ? &*news : nullptr, now) || ack;
    }
    // Our acknowledgement goes out at once, unless the heartbeat was itself
    // one: its sender's next heartbeat carries what our reply would.
    if (ack && (hb.flags & wire::kFlagReply) == 0) send_heartbeat(now, out, /*reply=*/groups_.size() > 1);
    evaluate(now, out);
    drop_retired_groups(now, out);
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
        for (auto& g : groups_) g->stop_if_running(StopCause::Operator, "stop requested", now, out);
        break;
    case Command::Shutdown: shut_down("daemon shutting down", now, out); break;
    case Command::ForceStart:
        for (auto& g : groups_) g->force_start(now, out);
        break;
    case Command::ClearError:
        for (auto& g : groups_) g->clear_error(now, out);
        break;
    case Command::Standby: {
        if (standby_) break;
        standby_ = true;
        bool stops = false;
        for (auto& g : groups_) {
            if (g->state() != NodeState::Running && g->state() != NodeState::Starting) continue;
            g->stop_if_running(StopCause::Standby, "standby requested", now, out);
            stops = true;
        }
        if (!stops) send_heartbeat(now, out);  // peers learn of it at once
        break;
    }
    case Command::Unstandby:
        if (!standby_) break;
        standby_ = false;
        send_heartbeat(now, out);
        break;
    }
    evaluate(now, out);
    return out;
}

void Node::shut_down(const std::string& reason, Usec now, Effects& out) {
    shutting_down_ = true;
    for (auto& g : groups_)
        if (!exited_) g->shut_down(reason, now, out);
}

Effects Node::set_unavailable(std::size_t group, std::string why, Usec now) {
    Effects out;
    Group& g = *groups_.at(group);
    if (why == g.unavailable_) return out;
    g.unavailable_ = std::move(why);
    if (!started_ || exited_) return out;
    send_heartbeat(now, out);  // peers learn of it at once, either way
    evaluate(now, out);
    return out;
}

Effects Node::clear_error(std::size_t group, Usec now) {
    Effects out;
    if (!started_ || exited_ || shutting_down_) return out;
    groups_.at(group)->clear_error(now, out);
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
    settings_.fence_timeout = settings.fence_timeout;
    settings_.auth_keys = settings.auth_keys;
    membership_.set_trust_timed_out(!settings_.auth_keys.empty());
    reconfigure_groups(settings.groups, now, out);
    evaluate(now, out);
    return out;
}

void Node::reconfigure_groups(const std::vector<GroupSettings>& wanted, Usec now, Effects& out) {
    auto find = [&](const std::string& name) {
        return std::find_if(settings_.groups.begin(), settings_.groups.end(),
                            [&](const GroupSettings& gs) { return gs.name == name; });
    };
    for (const GroupSettings& gs : wanted) {
        auto it = find(gs.name);
        if (it != settings_.groups.end()) {
            // A group that stays keeps its target (the configuration refuses a change).
            it->monitor_interval = gs.monitor_interval;
            it->placement = gs.placement;
            bool nodes_changed = it->nodes != gs.nodes;
            it->nodes = gs.nodes;
            Group& g = *groups_[static_cast<std::size_t>(it - settings_.groups.begin())];
            g.retiring_ = false;
            if (nodes_changed && g.state() != NodeState::Initial) g.check_preferred_nodes(out);
            continue;
        }
        // A new group starts as at start-up: it probes for its services, then listens a dead time.
        settings_.groups.push_back(gs);
        groups_.push_back(std::make_unique<Group>(*this, groups_.size()));
        if (started_ && !exited_) groups_.back()->start(now, false, out);
    }
    for (std::size_t i = 1; i < groups_.size(); ++i) {  // the default group is always configured
        Group& g = *groups_[i];
        bool stays = std::any_of(wanted.begin(), wanted.end(),
                                 [&](const GroupSettings& gs) { return gs.name == g.name(); });
        if (!stays && !g.retiring_) g.retire(now, out);
    }
    drop_retired_groups(now, out);
}

const Group* Node::find_group(std::string_view name) const {
    for (const auto& g : groups_)
        if (g->name() == name) return g.get();
    return nullptr;
}

void Node::drop_retired_groups(Usec now, Effects& out) {
    for (std::size_t i = 1; i < groups_.size();) {
        if (!groups_[i]->retired(now)) {
            ++i;
            continue;
        }
        std::string name = groups_[i]->name();
        groups_.erase(groups_.begin() + static_cast<std::ptrdiff_t>(i));
        settings_.groups.erase(settings_.groups.begin() + static_cast<std::ptrdiff_t>(i));
        for (std::size_t j = i; j < groups_.size(); ++j) groups_[j]->index_ = j;
        out.push_back(effect::GroupRemoved{i, std::move(name)});
        send_heartbeat(now, out);  // peers learn at once that it is gone here
    }
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
    // Backend=etcd: a peer times out when its member key goes (on_etcd_view()).
    for (const auto& name : etcd_ ? std::vector<std::string>{} : membership_.expire(now, settings_.dead_time)) {
        const Peer& p = membership_.peers().at(name);
        out.push_back(effect::Notice{NoticeKind::PeerTimedOut, name,
                                     "not heard for " + format_timespan(settings_.dead_time) + " (was " +
                                         std::string(to_string(p.announced())) + ")"});
        out.push_back(effect::PeerStateChanged{name, p.announced(), NodeState::TimedOut, p.header().term});
    }
    evaluate(now, out);
    drop_retired_groups(now, out);
    if (now >= next_heartbeat()) send_heartbeat(now, out);  // unless evaluate() just sent one
    return out;
}

Usec Node::next_heartbeat() const {
    // A holder's heartbeats renew its lease: more often while a renewal is overdue.
    Usec next = last_sent_ + settings_.interval;
    if (!quorum_rules() || etcd_) return next;  // etcd: the link renews the lease, not heartbeats
    for (const auto& g : groups_)
        if (g->holding()) next = std::min(next, next_renewal(last_sent_, g->lease(), lease_timings(settings_)));
    return next;
}

std::optional<Usec> Node::next_wakeup(Usec now) const {
    if (!started_ || exited_) return std::nullopt;
    Usec next = next_heartbeat();
    auto consider = [&](Usec at) { next = std::min(next, std::max(at, now)); };
    if (auto expiry = membership_.next_expiry(settings_.dead_time); expiry && !etcd_) consider(*expiry);
    if (etcd_ && etcd_->lease_until && now < *etcd_->lease_until) consider(*etcd_->lease_until);  // quorum ends
    for (const auto& g : groups_) g->consider_wakeups(now, next);
    return next;
}

Effects Node::on_hook_finished(std::size_t group, HookKind kind, const HookOutcome& outcome, Usec now) {
    if (group >= groups_.size()) return {};
    Effects out = groups_[group]->on_hook_finished(kind, outcome, now);
    drop_retired_groups(now, out);  // here, not in evaluate(): a group may not remove itself
    return out;
}

Effects Node::on_services_killed(std::size_t group, Usec now) {
    if (group >= groups_.size()) return {};
    Effects out = groups_[group]->on_services_killed(now);
    drop_retired_groups(now, out);
    return out;
}

Effects Node::switchover(std::size_t group, const std::string& target, Usec now, std::string* error) {
    if (group >= groups_.size()) {
        *error = "no such service group";
        return {};
    }
    return groups_[group]->switchover(target, now, error);
}

Effects Node::on_services_failed(std::size_t group, const std::string& description, Usec now) {
    if (group >= groups_.size()) return {};
    return groups_[group]->on_services_failed(description, now);
}

Effects Node::on_services_seen(std::size_t group, const std::string& description, Usec now) {
    if (group >= groups_.size()) return {};
    return groups_[group]->on_services_seen(description, now);
}

const wire::GroupBeat* Node::find_beat(const wire::Heartbeat& hb, std::uint32_t id) {
    auto it = std::lower_bound(hb.groups.begin(), hb.groups.end(), id,
                               [](const wire::GroupBeat& b, std::uint32_t v) { return b.group < v; });
    return it != hb.groups.end() && it->group == id ? &*it : nullptr;
}

std::optional<GroupNews> Node::news_of(const wire::Heartbeat& hb, std::uint32_t id) {
    if (id == kDefaultGroupId) return GroupNews{hb.state, hb.term, hb.grant, hb.claimant, hb.claimant_incarnation};
    const wire::GroupBeat* beat = find_beat(hb, id);
    if (beat == nullptr) return std::nullopt;
    return GroupNews{beat->state, beat->term, beat->grant, beat->claimant, beat->claimant_incarnation};
}

std::optional<std::string> Node::implausible_term(const wire::Heartbeat& hb) const {
    auto check = [](std::uint64_t term, const Group& g) -> std::optional<std::string> {
        std::uint64_t known = g.terms_.max_term();
        if (term_plausible(term, known)) return std::nullopt;
        return "term " + std::to_string(term) + " more than 2^32 above the highest this node knows (" +
               std::to_string(known) + ")" + (g.index_ != 0 ? " in group " + g.name() : std::string());
    };
    for (const auto& g : groups_)
        if (auto news = news_of(hb, g->id()))
            if (auto jump = check(news->term, *g)) return jump;
    return std::nullopt;
}

}  // namespace freeha
