#include "core/placement.h"

#include <algorithm>
#include <tuple>

#include "core/node_name.h"

namespace freeha {
namespace {

char fold(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool equal_folded(std::string_view a, std::string_view b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) { return fold(x) == fold(y); });
}

// The nodes in the election's order, each once: what every function here
// starts from, so that the order the caller lists them in changes nothing.
std::vector<std::string> canonical_nodes(std::vector<std::string> nodes) {
    std::sort(nodes.begin(), nodes.end(), [](const std::string& a, const std::string& b) { return node_name_before(a, b); });
    nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
    return nodes;
}

// The node of `nodes` (canonical) that `name` designates: the one spelt
// exactly so, else the first equal to it but for case (an admin's
// Nodes=Alpha means the node "alpha").
const std::string* find_node(const std::vector<std::string>& nodes, std::string_view name) {
    for (const auto& n : nodes)
        if (n == name) return &n;
    for (const auto& n : nodes)
        if (equal_folded(n, name)) return &n;
    return nullptr;
}

std::uint64_t fnv1a64_step(std::uint64_t h, unsigned char c) { return (h ^ c) * 0x100000001b3ULL; }

// splitmix64's finalizer: every input bit reaches every output bit.
std::uint64_t mix64(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sort_by_rendezvous(std::string_view group, std::vector<std::string>& nodes) {
    // Stable on the canonical order: two names equal but for case weigh the
    // same and keep the election's order between them.
    std::stable_sort(nodes.begin(), nodes.end(), [group](const std::string& a, const std::string& b) {
        return rendezvous_weight(group, a) > rendezvous_weight(group, b);
    });
}

// The groups by name, each name once, whatever order the caller lists them
// in (with duplicate names, which the configuration refuses, the smallest entry wins).
std::vector<const GroupPlacement*> canonical_groups(const std::vector<GroupPlacement>& groups) {
    std::vector<const GroupPlacement*> sorted;
    sorted.reserve(groups.size());
    for (const auto& g : groups) sorted.push_back(&g);
    std::sort(sorted.begin(), sorted.end(), [](const GroupPlacement* a, const GroupPlacement* b) {
        return std::tie(a->name, a->policy, a->nodes) < std::tie(b->name, b->policy, b->nodes);
    });
    sorted.erase(std::unique(sorted.begin(), sorted.end(),
                             [](const GroupPlacement* a, const GroupPlacement* b) { return a->name == b->name; }),
                 sorted.end());
    return sorted;
}

// The node an Alphabetical or Listed group takes whatever the loads, or
// nullptr when the group is spread by the cap (a Listed group none of whose
// listed nodes is eligible falls back to its rendezvous order).
const std::string* pinned_node(const GroupPlacement& group, const std::vector<std::string>& nodes) {
    switch (group.policy) {
        case PlacementPolicy::Alphabetical:
            return &nodes.front();
        case PlacementPolicy::Listed:
            for (const auto& listed : group.nodes)
                if (const std::string* node = find_node(nodes, listed)) return node;
            return nullptr;
        case PlacementPolicy::Rendezvous:
            return nullptr;
    }
    return nullptr;
}

}  // namespace

std::uint64_t rendezvous_weight(std::string_view group, std::string_view node) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : group) h = fnv1a64_step(h, c);
    h = fnv1a64_step(h, 0);  // keeps ("ab", "c") apart from ("a", "bc")
    for (char c : node) h = fnv1a64_step(h, static_cast<unsigned char>(fold(c)));
    return mix64(h);
}

std::vector<std::string> preference_order(const GroupPlacement& group, const std::vector<std::string>& nodes) {
    std::vector<std::string> rest = canonical_nodes(nodes);
    if (group.policy == PlacementPolicy::Alphabetical) return rest;
    std::vector<std::string> order;
    if (group.policy == PlacementPolicy::Listed) {
        for (const auto& listed : group.nodes) {
            const std::string* node = find_node(rest, listed);
            if (node == nullptr) continue;  // not eligible, or listed twice
            order.push_back(*node);
            rest.erase(rest.begin() + (node - rest.data()));
        }
    }
    sort_by_rendezvous(group.name, rest);
    order.insert(order.end(), rest.begin(), rest.end());
    return order;
}

Placement place(const std::vector<GroupPlacement>& groups, const std::vector<std::string>& eligible_nodes,
                const Placement& current) {
    const std::vector<std::string> nodes = canonical_nodes(eligible_nodes);
    if (nodes.empty()) return {};
    const std::vector<const GroupPlacement*> sorted = canonical_groups(groups);
    const std::size_t cap = (sorted.size() + nodes.size() - 1) / nodes.size();

    Placement placed;
    std::map<std::string, std::size_t> load;
    auto assign = [&](const GroupPlacement& g, const std::string& node) {
        placed.emplace(g.name, node);
        ++load[node];
    };
    for (const GroupPlacement* g : sorted) {
        auto running = current.find(g->name);
        if (running == current.end()) continue;
        if (const std::string* node = find_node(nodes, running->second)) assign(*g, *node);
    }
    for (const GroupPlacement* g : sorted) {
        if (placed.contains(g->name)) continue;
        if (const std::string* node = pinned_node(*g, nodes)) assign(*g, *node);
    }
    for (const GroupPlacement* g : sorted) {
        if (placed.contains(g->name)) continue;
        const std::vector<std::string> order = preference_order(*g, nodes);
        // Fewer than G groups are placed so far and N * cap >= G, so some
        // node is below the cap; the least loaded is only a safety net.
        const std::string* chosen = nullptr;
        const std::string* least = &order.front();
        for (const auto& node : order) {
            if (load[node] < cap) {
                chosen = &node;
                break;
            }
            if (load[node] < load[*least]) least = &node;
        }
        assign(*g, chosen != nullptr ? *chosen : *least);
    }
    return placed;
}

std::optional<PlannedMove> next_rebalance_move(const std::vector<GroupPlacement>& groups,
                                               const std::vector<std::string>& eligible_nodes,
                                               const Placement& current) {
    const std::vector<std::string> nodes = canonical_nodes(eligible_nodes);
    const Placement ideal = place(groups, nodes, {});

    // Where the groups of `groups` run now, on eligible nodes only: a group
    // whose node is gone is not switched over but elected again.
    Placement running;
    std::map<std::string, long> load;
    for (const auto& [group, node] : ideal) {
        auto it = current.find(group);
        if (it == current.end()) continue;
        if (const std::string* here = find_node(nodes, it->second)) {
            running.emplace(group, *here);
            ++load[*here];
        }
    }

    std::optional<PlannedMove> best;
    long best_gap = 0;
    for (const auto& [group, from] : running) {
        const std::string& to = ideal.at(group);
        if (from == to) continue;
        // Negative when it evens the spread; ties go to the first group name (the map's order).
        long gap = load[to] - load[from];
        if (!best || gap < best_gap) {
            best = PlannedMove{group, from, to};
            best_gap = gap;
        }
    }
    return best;
}

}  // namespace freeha
