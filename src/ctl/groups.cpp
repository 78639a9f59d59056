#include "ctl/groups.h"

#include <algorithm>
#include <cstdio>

#include "core/timespan.h"

namespace freeha::ctl {
namespace {

std::string joined(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
}

std::string padded(const std::string& text, std::size_t width) {
    return text.size() >= width ? text + " " : text + std::string(width - text.size() + 1, ' ');
}

bool holds(const std::string& state) { return state == "STARTING" || state == "RUNNING" || state == "STOPPING"; }

}  // namespace

std::string describe(const PlannedMove& m) { return "group " + m.group + ": " + m.from + " -> " + m.to; }

std::vector<std::string> group_lines(const ClusterView& v) {
    if (v.groups.size() < 2) return {};
    std::size_t group_width = 5, active_width = 6;
    for (const auto& g : v.groups) {
        group_width = std::max(group_width, g.name.size());
        active_width = std::max(active_width, g.active_node.size());
    }
    std::vector<std::string> columns;  // the nodes, as the node table lists them
    for (const auto& n : v.nodes) columns.push_back(n.name);
    auto row = [&](const std::string& group, const std::string& active, const std::string& term,
                   const std::string& lease, const std::vector<std::string>& cells) {
        std::string line = padded(group, group_width) + padded(active, active_width) + padded(term, 5) +
                           padded(lease, 8);
        for (std::size_t i = 0; i < cells.size(); ++i)
            line += padded(cells[i], std::max<std::size_t>(columns[i].size(), 8));
        while (!line.empty() && line.back() == ' ') line.pop_back();
        return line;
    };
    std::vector<std::string> out;
    out.push_back(row("GROUP", "ACTIVE", "TERM", "LEASE", columns));
    for (const auto& g : v.groups) {
        std::vector<std::string> cells;
        for (const auto& name : columns) {
            const auto* m = g.find(name);
            if (m == nullptr)
                cells.push_back("-");
            else if (m->aside && m->state == "STANDBY")
                cells.push_back("ASIDE");  // the group cannot run there now
            else
                cells.push_back(m->state + (m->errored && m->state != "ERRORED" ? "!" : ""));
        }
        std::string lease = g.lease_remaining ? format_timespan(*g.lease_remaining / kUsecPerMsec * kUsecPerMsec) : "-";
        out.push_back(row(g.name, g.active_node.empty() ? "none" : g.active_node, std::to_string(g.term), lease, cells));
    }
    for (const auto& g : v.groups) {
        if (g.errored) out.push_back("Group " + g.name + " is errored here: " + g.last_error);
        if (!g.unavailable.empty()) out.push_back("Group " + g.name + " cannot run here: " + g.unavailable);
        if (!g.handover_to.empty()) out.push_back("Group " + g.name + " is being handed over to " + g.handover_to);
    }
    if (!v.rebalance.empty())
        out.push_back("Spread uneven: " + std::to_string(v.rebalance.size()) +
                      " planned switchover(s) would even it (freehactl rebalance)");
    return out;
}

std::optional<std::string> unknown_group_or_node(const ClusterView& v, const std::string& group,
                                                 const std::string& node) {
    if (v.find_group(group) == nullptr) {
        std::vector<std::string> names;
        for (const auto& g : v.groups) names.push_back(g.name);
        return "no group '" + group + "' (groups: " + (names.empty() ? "none known" : joined(names)) + ")";
    }
    if (!node.empty() && v.find(node) == nullptr) {
        std::vector<std::string> names;
        for (const auto& n : v.nodes) names.push_back(n.name);
        return "no node '" + node + "' in this cluster (nodes: " + joined(names) + ")";
    }
    return std::nullopt;
}

GroupProgress group_switchover_progress(const ClusterView& v, const std::string& group, const std::string& to,
                                        std::uint64_t term_before) {
    const auto* g = v.find_group(group);
    if (g == nullptr) return {GroupProgress::Failed, "group " + group + " is no longer configured"};
    if (g->state == "ERRORED") return {GroupProgress::Failed, "this node is ERRORED for group " + group + ": " + g->last_error};
    if ((g->state == "STARTING" || g->state == "RUNNING") && g->term > term_before) {
        const auto* target = to.empty() ? nullptr : g->find(to);
        return {GroupProgress::Failed, "group " + group + " came back to this node" +
                                           (target && target->errored ? ": " + to + " is ERRORED for it" : std::string())};
    }
    if (holds(g->state)) return {GroupProgress::Wait, "this node is " + g->state + " for group " + group};
    if (g->active_node.empty() || g->active_node == v.node)
        return {GroupProgress::Wait, "no other node runs group " + group + " yet"};
    const auto* active = g->find(g->active_node);
    if (active == nullptr || active->state != "RUNNING")
        return {GroupProgress::Wait, g->active_node + " is " + (active ? active->state : "unknown") + " for group " + group};
    if (!to.empty() && g->active_node != to)
        return {GroupProgress::Failed, "group " + group + " went to " + g->active_node + ", not " + to};
    return {GroupProgress::Done, "group " + group + " switched over; it runs on " + g->active_node};
}

RebalanceStep rebalance_step(const ClusterView& v) {
    RebalanceStep step;
    for (const auto& m : v.rebalance) {
        if (!step.here && m.from == v.node)
            step.here = m;
        else if (m.from != v.node)
            step.elsewhere.push_back(m);
    }
    return step;
}

}  // namespace freeha::ctl
