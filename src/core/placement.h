// Placement of service groups: each group's preference order over the nodes, which node runs which group, and the next rebalancing move.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/enum_names.h"

namespace freeha {

// How a group orders the nodes it may run on. Every node computes the same
// order from the configuration and the names alone, so that no message is
// needed to agree on where a group goes.
enum class PlacementPolicy : std::uint8_t {
    Alphabetical,  // FreeHA's rule: case-insensitive name order (the default group of a 1.0 setup)
    Listed,        // the admin's Nodes= first, in its order; the nodes not listed follow in rendezvous order
    Rendezvous,    // highest-random-weight hashing of (group, node): groups spread without any tuning
};
inline constexpr std::size_t kPlacementPolicyCount = 3;
static_assert(static_cast<std::size_t>(PlacementPolicy::Rendezvous) + 1 == kPlacementPolicyCount);
inline constexpr EnumNames<PlacementPolicy, kPlacementPolicyCount> kPlacementPolicyNames{"alphabetical", "listed",
                                                                                        "rendezvous"};

// One group as placement sees it. Group names are unique in a cluster (the
// configuration refuses duplicates); `nodes` is the Nodes= list, used by Listed only.
struct GroupPlacement {
    std::string name;
    PlacementPolicy policy = PlacementPolicy::Rendezvous;
    std::vector<std::string> nodes{};
};

// Group name -> node name: where groups run now (`current`), or where they go (the result of place()).
using Placement = std::map<std::string, std::string>;

// One planned switchover: `group` moves from the node running it to `to`.
struct PlannedMove {
    std::string group;
    std::string from;
    std::string to;
    bool operator==(const PlannedMove&) const = default;
};

// The rendezvous weight of `node` for `group`: a well-mixed 64-bit hash of
// "group\0lowercase(node)" (FNV-1a 64, then splitmix64's finalizer, because
// FNV alone spreads names that differ in their last characters poorly). The
// value is part of the protocol: nodes of a mixed-version cluster must agree on it.
std::uint64_t rendezvous_weight(std::string_view group, std::string_view node);

// `group`'s order over `nodes` (duplicates dropped), best first, whatever
// order `nodes` comes in. Names compare case-insensitively; two names equal
// but for case are told apart by their bytes, as in the election.
std::vector<std::string> preference_order(const GroupPlacement& group, const std::vector<std::string>& nodes);

// Which eligible node runs each group, the same on every node for the same
// inputs in any order:
// - a group in `current` on an eligible node stays there (no fail-back, as
//   FreeHA) and counts toward that node's load, even above the cap;
// - an Alphabetical group takes its first eligible node, a Listed group its
//   first eligible listed node, whatever their loads (the admin's order is
//   absolute); these go first, so that the spread below accounts for them;
// - then the others (Rendezvous groups, and Listed groups none of whose
//   listed nodes is eligible), in group-name order, each to the first node of
//   its order running fewer than ceil(G/N) groups (G groups, N eligible nodes).
// Entries of `current` for groups not in `groups` are ignored. With no eligible node, nothing is placed.
Placement place(const std::vector<GroupPlacement>& groups, const std::vector<std::string>& eligible_nodes,
                const Placement& current);

// The next planned switchover toward place(groups, eligible_nodes, {}), the
// spread as if nothing ran, or nullopt when every running group is there.
// Only groups running on an eligible node are moved (the others are placed
// by place() when elected); each moves straight to its place, so repeated
// application ends within G moves and never moves a group twice. Among the
// moves left, the one from the busiest to the idlest node goes first, so
// that the spread between moves stays as even as it can.
std::optional<PlannedMove> next_rebalance_move(const std::vector<GroupPlacement>& groups,
                                               const std::vector<std::string>& eligible_nodes,
                                               const Placement& current);

}  // namespace freeha
