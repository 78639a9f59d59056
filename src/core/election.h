// Quorum arithmetic and FreeHA's election rule, as pure functions of a cluster view.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/state.h"

namespace freeha {

// Live nodes (this one included) a node must see to hold quorum at run time:
// a majority for more than 2 expected nodes; a 2-node cluster needs none.
unsigned quorum_votes_needed(unsigned expected_nodes);

// Nodes a starting node waits (up to InitDead) to have seen: the quorum for
// more than 2 nodes, every node ("wait for all") for a 2-node cluster.
unsigned startup_votes_needed(unsigned expected_nodes);

// One reachable node as the election sees it.
struct Candidate {
    std::string name;
    NodeState state = NodeState::Initial;
    Role role = Role::Member;
    bool standby = false;        // admin standby: never takes services
    bool error_latched = false;  // cannot take services until cleared
    std::string handover_to{};   // non-empty: handing the services over to that node
};

// FreeHA's rule: nobody is elected while any reachable node is INITIAL,
// STARTING, RUNNING or STOPPING; otherwise the case-insensitively first
// member in STANDBY that may take services. Returns that node's name.
// A switchover bends the rule: a node handing over is not eligible itself,
// and the node it names wins if it is eligible. With a `preference` (a
// service group's order, placement.h), the first eligible node in it wins
// instead of the alphabetically first.
std::optional<std::string> elected_node(const std::vector<Candidate>& reachable_nodes,
                                        std::span<const std::string> preference = {});

}  // namespace freeha
