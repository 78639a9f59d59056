// The status projection: what the node shows of itself and the cluster (JSON, D-Bus, freehactl all start here).
#include <algorithm>

#include "core/group.h"
#include "core/node.h"
#include "core/node_name.h"

namespace freeha {

std::string Group::active_node() const {
    // A claim whose services run outranks one still pending; then the better claim.
    struct Best {
        const std::string* name = nullptr;
        std::uint64_t term = 0;
        bool started = false;
    } best;
    auto consider = [&](const std::string& name, NodeState s, std::uint64_t term, bool started) {
        if (s != NodeState::Running && s != NodeState::Starting) return;
        bool better = best.name == nullptr || (started && !best.started) ||
                      (started == best.started && claim_outranks(term, name, best.term, *best.name));
        if (better) best = Best{&name, term, started};
    };
    consider(node_.settings_.node_name, state(), holder_.term(), services_started());
    for (const auto& [name, p] : node_.membership_.peers()) {
        const PeerGroup& g = view_of(p);
        consider(name, p.reachable() ? g.announced : NodeState::TimedOut, g.term, g.runs_services());
    }
    return best.name ? *best.name : std::string();
}

std::uint64_t Group::cluster_term() const {
    if (holding()) return holder_.term();
    std::string active = active_node();
    if (!active.empty()) return view_of(node_.membership_.peers().at(active)).term;
    return terms_.max_term();
}

Status Node::status(Usec now) const {
    Status s;
    s.cluster = settings_.cluster_name;
    s.node = settings_.node_name;
    for (const auto& g : groups_) s.groups.push_back(g->status(now));
    // The top-level fields are the default group's, as before groups.
    const GroupStatus& main_group = s.groups.front();
    s.state = main_group.state;
    s.phase = main_group.phase;
    s.role = settings_.role;
    s.term = main_group.term;
    s.quorate = quorate_;
    s.expected_nodes = settings_.expected_nodes;
    s.dead_time = settings_.dead_time;
    s.active_node = main_group.active_node;
    s.errored = main_group.errored;
    s.standby = standby_;
    s.last_error = main_group.last_error;
    s.unavailable = main_group.unavailable;
    s.counters = counters_;
    s.unexpected_services = default_group().unexpected_services();
    s.version = settings_.release;
    s.wire_version = wire_version();
    s.maintenance = maintenance_.on;
    s.maintenance_since_realtime_usec = maintenance_.epoch;
    s.leaving = leaving_;
    s.history = default_group().history();
    s.lease_remaining = main_group.lease_remaining;
    for (std::size_t i = 0; i < settings_.channel_count; ++i) s.channels.push_back(channel_name(i));
    NodeStatus self;
    self.name = settings_.node_name;
    self.state = main_group.state;
    self.role = settings_.role;
    self.reachable = self_reachable();
    self.term = std::find_if(main_group.nodes.begin(), main_group.nodes.end(), [](const GroupNodeStatus& n) {
                    return n.self;
                })->term;
    self.errored = main_group.errored;
    self.standby = standby_;
    self.self = true;
    self.version = settings_.release;
    self.wire_version = wire_version();
    self.maintenance = maintenance_.on;
    self.channel_heard_usec_ago.resize(settings_.channel_count, Usec{0});
    self.links.resize(settings_.channel_count);
    s.nodes.push_back(std::move(self));
    for (const auto& [name, p] : membership_.peers()) {
        NodeStatus n;
        n.name = name;
        n.state = p.state();
        n.role = p.role;
        n.reachable = p.reachable();
        n.last_heard_usec_ago = now - p.last_heard;
        n.term = p.header().term;
        n.standby = p.standby_flag();
        n.errored = p.header().error_latched;
        n.version = p.release;
        n.wire_version = p.wire_version;
        n.maintenance = p.maintenance.on;
        n.left = p.left;
        for (const auto& heard : p.channel_last_heard)
            n.channel_heard_usec_ago.push_back(heard ? std::optional<Usec>(now - *heard) : std::nullopt);
        for (const auto& link : p.links)
            n.links.push_back(LinkStatus{link.received(), link.lost(), link.recent_expected(), link.recent_lost(),
                                         link.lossy()});
        if (auto r = refused_.find(name); r != refused_.end() && !p.reachable())
            n.not_counted = "refused: " + r->second.reason;
        else if (p.reachable() && !p.hears(own_id_) && !etcd_)  // (etcd: nodes hear etcd, not each other)
            n.not_counted = "does not hear this node";
        s.nodes.push_back(std::move(n));
    }
    // Senders whose heartbeats were never accepted are listed too, with why.
    for (const auto& [name, r] : refused_) {
        if (membership_.peers().contains(name)) continue;
        NodeStatus n;
        n.name = name;
        n.state = NodeState::TimedOut;
        n.last_heard_usec_ago = now - r.last;
        n.channel_heard_usec_ago.resize(settings_.channel_count);
        n.links.resize(settings_.channel_count);
        n.not_counted = "refused: " + r.reason;
        s.nodes.push_back(std::move(n));
    }
    std::sort(s.nodes.begin(), s.nodes.end(),
              [](const NodeStatus& a, const NodeStatus& b) { return node_name_before(a.name, b.name); });
    // The rebalancing plan: each move goes straight to its place, so at most
    // one per group. One group is always evenly spread: moving it back to the
    // node it would start on is a fail-back, which FreeHA never does.
    PlacementInputs in = placement_inputs();
    while (groups_.size() > 1 && s.rebalance.size() < groups_.size()) {
        auto move = next_rebalance_move(in.groups, in.eligible, in.current);
        if (!move) break;
        in.current[move->group] = move->to;
        s.rebalance.push_back(std::move(*move));
    }
    return s;
}

GroupStatus Group::status(Usec now) const {
    GroupStatus g;
    g.name = name();
    g.state = state();
    g.phase = std::string(to_string(phase()));
    g.active_node = active_node();
    g.term = cluster_term();
    if (auto end = lease()) g.lease_remaining = *end - now;
    g.errored = error_latched();
    g.last_error = last_error();
    g.handover_to = handover_to();
    g.unavailable = unavailable();
    g.placement = settings().placement;
    GroupNodeStatus self;
    self.name = node_.settings_.node_name;
    self.state = state();
    self.term = holding() ? own_term() : g.term;
    self.errored = error_latched();
    self.handover_to = handover_to();
    self.self = true;
    self.aside = !unavailable().empty();
    g.nodes.push_back(std::move(self));
    for (const auto& [name, p] : node_.membership_.peers()) {
        const PeerGroup& v = view_of(p);
        GroupNodeStatus n;
        n.name = name;
        n.state = p.reachable() ? v.announced : NodeState::TimedOut;
        n.term = v.term;
        n.errored = v.error_latched;
        n.handover_to = v.handover_to;
        n.aside = v.aside;
        g.nodes.push_back(std::move(n));
    }
    std::sort(g.nodes.begin(), g.nodes.end(),
              [](const GroupNodeStatus& a, const GroupNodeStatus& b) { return node_name_before(a.name, b.name); });
    return g;
}

}  // namespace freeha
