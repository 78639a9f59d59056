#include "ctl/metrics.h"

#include <array>
#include <charconv>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "core/effects.h"
#include "core/history.h"
#include "core/membership.h"
#include "core/state.h"

namespace freeha::ctl {

namespace {

using Labels = std::vector<std::pair<std::string_view, std::string>>;

std::string number(double v) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return ec == std::errc() ? std::string(buf, end) : "NaN";
}

std::string seconds(Usec usec) { return number(static_cast<double>(usec.count()) / 1e6); }

// One family at a time, in the order written: # HELP, # TYPE, then its samples.
class Exposition {
public:
    void family(std::string_view name, std::string_view type, std::string_view help) {
        name_ = name;
        out_ += "# HELP " + std::string(name) + " " + std::string(help) + "\n";
        out_ += "# TYPE " + std::string(name) + " " + std::string(type) + "\n";
    }
    void sample(const Labels& labels, const std::string& value) { series("", labels, value); }
    // A histogram's _bucket, _sum and _count series.
    void series(std::string_view suffix, const Labels& labels, const std::string& value) {
        out_ += name_;
        out_ += suffix;
        if (!labels.empty()) {
            out_ += "{";
            for (std::size_t i = 0; i < labels.size(); ++i) {
                if (i != 0) out_ += ",";
                out_ += std::string(labels[i].first) + "=\"" + escape_label_value(labels[i].second) + "\"";
            }
            out_ += "}";
        }
        out_ += " " + value + "\n";
    }
    void sample(const Labels& labels, std::uint64_t value) { sample(labels, std::to_string(value)); }
    void sample(const Labels& labels, bool value) { sample(labels, std::string(value ? "1" : "0")); }
    // A state as one series per NodeState, labelled `state`: 1 for `current`, 0 for the others.
    void one_hot_state(Labels labels, std::string_view current) {
        labels.emplace_back("state", "");
        for (int i = 0; i < kNodeStateCount; ++i) {
            labels.back().second = std::string(to_string(static_cast<NodeState>(i)));
            sample(labels, labels.back().second == current);
        }
    }
    void comment(std::string text) {
        for (char& c : text)
            if (c == '\n') c = ' ';  // one line, whatever the error said
        out_ += "# " + text + "\n";
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
    std::string name_;
};

// Backend=etcd's link: one family per fact, one counter family per counter of the document.
void etcd_link(Exposition& x, const ClusterView::Etcd& e) {
    x.family("freeha_etcd_endpoint_info", "gauge", "The etcd endpoint this node's session uses now (always 1).");
    x.sample({{"endpoint", e.endpoint}}, std::uint64_t{1});
    x.family("freeha_etcd_lease_remaining_seconds", "gauge",
             "How long this node's etcd lease still runs on its own clock; absent without a lease.");
    if (e.lease_remaining) x.sample({}, seconds(*e.lease_remaining));
    x.family("freeha_etcd_synced", "gauge", "Whether this node's view of etcd's keys is current (read and watched).");
    x.sample({}, e.synced);
    for (const auto& [name, value] : e.counters) {
        x.family("freeha_etcd_" + name + "_total", "counter",
                 "etcd link: " + name + " (freeha-status(5): etcd.counters." + name + ").");
        x.sample({}, value);
    }
}

// One gauge family per fact of this node.
void this_node(Exposition& x, const ClusterView& v) {
    x.family("freeha_build_info", "gauge", "This freehad's release and the wire version it speaks now (always 1).");
    x.sample({{"version", v.version}, {"wire_version", std::to_string(v.wire_version)}}, std::uint64_t{1});
    x.family("freeha_state", "gauge", "This node's state: 1 for the current one, 0 for the others.");
    x.one_hot_state({}, v.state);
    x.family("freeha_phase", "gauge", "This node's phase within its state (always 1, labelled with the phase).");
    x.sample({{"phase", v.phase}}, std::uint64_t{1});
    x.family("freeha_quorate", "gauge", "Whether this node has quorum.");
    x.sample({}, v.quorate);
    x.family("freeha_term", "gauge", "The term of the claim that runs the cluster, as this node knows it.");
    x.sample({}, v.term);
    x.family("freeha_expected_nodes", "gauge", "The cluster's size as this node counts quorum (ExpectedNodes=).");
    x.sample({}, std::uint64_t{v.expected_nodes});
    x.family("freeha_standby", "gauge", "Whether this node is in admin standby.");
    x.sample({}, v.standby);
    x.family("freeha_errored", "gauge", "Whether this node's error latch is set (it takes no services until cleared).");
    x.sample({}, v.errored);
    x.family("freeha_maintenance", "gauge", "Whether maintenance mode is on (cluster-wide).");
    x.sample({}, v.maintenance);
    x.family("freeha_lease_remaining_seconds", "gauge",
             "How long this node's lease on the services still runs; absent without a claim.");
    if (v.lease_remaining) x.sample({}, seconds(*v.lease_remaining));
    x.family("freeha_unexpected_services_total", "counter", "Times the services were found running here unbidden.");
    x.sample({}, v.unexpected_services);
    x.family("freeha_log_lines_dropped_total", "counter", "Journal lines freehad dropped rather than wait for the journal.");
    x.sample({}, v.log_lines_dropped);
    x.family("freeha_packets_accepted_total", "counter", "Heartbeats received and accepted.");
    for (const auto& [name, value] : v.packets)
        if (name == "accepted") x.sample({}, value);
    x.family("freeha_packets_dropped_total", "counter", "Datagrams received and dropped, by reason.");
    for (const auto& [name, value] : v.packets)
        if (name != "accepted") x.sample({{"reason", name}}, value);
    if (v.etcd) etcd_link(x, *v.etcd);
}

// What this node did since freehad started (freeha-status(5), HISTORY).
void history(Exposition& x, const History& h) {
    x.family("freeha_claims_total", "counter", "This node's claims of the services, by cause.");
    for (std::size_t i = 0; i < kClaimCauseCount; ++i)
        x.sample({{"cause", std::string(kClaimCauseNames(static_cast<ClaimCause>(i)))}}, h.claims[i]);
    x.family("freeha_stops_total", "counter", "This node's stops of the services (or of a pending claim), by cause.");
    for (std::size_t i = 0; i < kStopCauseCount; ++i)
        x.sample({{"cause", std::string(kStopCauseNames(static_cast<StopCause>(i)))}}, h.stops[i]);
    auto hook = [](HookKind kind) { return Labels{{"hook", std::string(hook_name(kind))}}; };
    x.family("freeha_hook_runs_total", "counter",
             "Runs of each hook (or of the target's start, stop, check), counted when they end.");
    for (HookKind kind : kHookKinds) x.sample(hook(kind), h.hooks.at(static_cast<std::size_t>(kind)).runs);
    x.family("freeha_hook_failures_total", "counter",
             "Runs of each hook that failed (an exit status, a timeout, a kill).");
    for (HookKind kind : kHookKinds) x.sample(hook(kind), h.hooks.at(static_cast<std::size_t>(kind)).failures);
    x.family("freeha_hook_duration_seconds", "histogram", "How long each hook's runs took.");
    for (HookKind kind : kHookKinds) {
        const HookRuns& r = h.hooks.at(static_cast<std::size_t>(kind));
        for (std::size_t i = 0; i < r.buckets.size(); ++i) {
            Labels labels = hook(kind);
            labels.emplace_back("le", number(HookRuns::kBucketSeconds[i]));
            x.series("_bucket", labels, std::to_string(r.buckets[i]));
        }
        Labels all = hook(kind);
        all.emplace_back("le", "+Inf");
        x.series("_bucket", all, std::to_string(r.runs));
        x.series("_sum", hook(kind), seconds(r.duration_sum));
        x.series("_count", hook(kind), std::to_string(r.runs));
    }
}

// One family per fact of each node this node knows, itself included.
void nodes(Exposition& x, const ClusterView& v) {
    x.family("freeha_node_state", "gauge", "Each node's state as this node sees it: 1 for its current state.");
    for (const auto& n : v.nodes) x.one_hot_state({{"node", n.name}}, n.state);
    x.family("freeha_node_active", "gauge", "1 for the node that runs the services (the active node), 0 for the others.");
    for (const auto& n : v.nodes) x.sample({{"node", n.name}}, n.name == v.active_node);
    x.family("freeha_node_reachable", "gauge", "Whether the node is heard, or with etcd has its member key there (this node: is, or holds its etcd lease).");
    for (const auto& n : v.nodes) x.sample({{"node", n.name}}, n.reachable);
    x.family("freeha_node_last_heard_seconds", "gauge", "Seconds since the node was last heard (0 for this node).");
    for (const auto& n : v.nodes) x.sample({{"node", n.name}}, seconds(n.last_heard_usec_ago));
    x.family("freeha_node_standby", "gauge", "Whether the node announces admin standby.");
    for (const auto& n : v.nodes) x.sample({{"node", n.name}}, n.standby);
    x.family("freeha_node_errored", "gauge", "Whether the node announces its error latch.");
    for (const auto& n : v.nodes) x.sample({{"node", n.name}}, n.errored);
    x.family("freeha_node_maintenance", "gauge", "Whether the node announces maintenance mode on.");
    for (const auto& n : v.nodes) x.sample({{"node", n.name}}, n.maintenance);
    x.family("freeha_node_info", "gauge",
             "Each node's role, release (\"\" before 0.2) and wire version (0: never heard); always 1.");
    for (const auto& n : v.nodes)
        x.sample({{"node", n.name}, {"role", n.role}, {"version", n.version},
                  {"wire_version", std::to_string(n.wire_version)}},
                 std::uint64_t{1});
}

// Each peer's link on each channel (freeha-status(5), NODES: channels); this node has none.
void links(Exposition& x, const ClusterView& v) {
    auto each = [&v](auto&& sample) {
        for (const auto& n : v.nodes)
            if (n.name != v.node)
                for (const auto& l : n.links) sample(Labels{{"node", n.name}, {"channel", l.channel}}, l);
    };
    using Link = ClusterView::Node::Link;
    x.family("freeha_heartbeats_received_total", "counter", "The peer's heartbeats that arrived on the channel.");
    each([&x](const Labels& labels, const Link& l) { x.sample(labels, l.received); });
    x.family("freeha_heartbeats_lost_total", "counter",
             "The peer's heartbeats that never arrived on the channel (judged from sequence numbers).");
    each([&x](const Labels& labels, const Link& l) { x.sample(labels, l.lost); });
    x.family("freeha_link_loss_ratio", "gauge",
             "The share of the peer's most recent heartbeats (up to 64) lost on the channel; absent until judged.");
    each([&x](const Labels& labels, const Link& l) {
        if (l.recent_loss_ratio) x.sample(labels, number(*l.recent_loss_ratio));
    });
    // The thresholds of the core's verdict (LinkHealth), not a copy of them.
    x.family("freeha_link_lossy", "gauge",
             "Whether the channel is lossy: set above " + std::to_string(LinkHealth::kLossyPercent) +
                 " % of the peer's last " + std::to_string(LinkHealth::kRecent) + " heartbeats lost, cleared at " +
                 std::to_string(LinkHealth::kRecoveredPercent) + " % or less.");
    each([&x](const Labels& labels, const Link& l) { x.sample(labels, l.lossy); });
}

void addresses(Exposition& x, const ClusterView& v) {
    x.family("freeha_address_up", "gauge", "Whether the floating address (Address=) is on its device here.");
    for (const auto& a : v.addresses) x.sample({{"address", a.address}, {"device", a.device}}, a.up);
    x.family("freeha_address_conflicts_total", "counter", "Times another host was seen answering for the address.");
    for (const auto& a : v.addresses) x.sample({{"address", a.address}, {"device", a.device}}, a.conflicts);
}

// One family per fact of each service group (freeha-status(5), GROUPS).
void groups(Exposition& x, const ClusterView& v) {
    x.family("freeha_group_state", "gauge", "This node's state for each service group: 1 for the current one, 0 for the others.");
    for (const auto& g : v.groups) x.one_hot_state({{"group", g.name}}, g.state);
    x.family("freeha_group_active", "gauge", "1 for the node that runs the group, 0 for the group's other nodes.");
    for (const auto& g : v.groups)
        for (const auto& n : g.nodes) x.sample({{"group", g.name}, {"node", n.name}}, n.name == g.active_node);
    x.family("freeha_group_term", "gauge", "The term of the claim that runs the group, as this node knows it.");
    for (const auto& g : v.groups) x.sample({{"group", g.name}}, g.term);
    x.family("freeha_group_errored", "gauge", "Whether this node's error latch for the group is set.");
    for (const auto& g : v.groups) x.sample({{"group", g.name}}, g.errored);
    x.family("freeha_group_lease_remaining_seconds", "gauge",
             "How long this node's lease on the group still runs; absent without a claim.");
    for (const auto& g : v.groups)
        if (g.lease_remaining) x.sample({{"group", g.name}}, seconds(*g.lease_remaining));
    x.family("freeha_rebalance_moves", "gauge",
             "Planned switchovers that would bring the groups to an even spread (freehactl rebalance); 0 when even.");
    x.sample({}, std::uint64_t{v.rebalance.size()});
}

}  // namespace

std::string escape_label_value(const std::string& value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string metrics_text(const ClusterView* view, const std::string& why) {
    Exposition x;
    x.family("freeha_up", "gauge", "Whether freehad answered this scrape (0: every other family is absent).");
    x.sample({}, view != nullptr);
    if (view == nullptr) {
        if (!why.empty()) x.comment("freehad did not answer: " + why);
        return x.take();
    }
    this_node(x, *view);
    if (view->history) history(x, *view->history);
    nodes(x, *view);
    links(x, *view);
    addresses(x, *view);
    groups(x, *view);
    return x.take();
}

}  // namespace freeha::ctl
