#include "core/election.h"

#include "core/node_name.h"

namespace freeha {

unsigned quorum_votes_needed(unsigned expected_nodes) { return expected_nodes > 2 ? expected_nodes / 2 + 1 : 1; }

unsigned startup_votes_needed(unsigned expected_nodes) {
    return expected_nodes > 2 ? quorum_votes_needed(expected_nodes) : expected_nodes;
}

namespace {

bool may_take_services(const Candidate& c) {
    return c.state == NodeState::Standby && c.role == Role::Member && !c.standby && !c.error_latched &&
           c.handover_to.empty();
}

}  // namespace

std::optional<std::string> elected_node(const std::vector<Candidate>& reachable_nodes,
                                        std::span<const std::string> preference) {
    const Candidate* first = nullptr;
    std::optional<std::string> preferred;
    for (const auto& c : reachable_nodes) {
        if (c.state == NodeState::Initial || holds_services(c.state)) return std::nullopt;
        if (!c.handover_to.empty()) preferred = c.handover_to;
    }
    for (const auto& c : reachable_nodes) {
        if (!may_take_services(c)) continue;
        if (preferred && c.name == *preferred) return c.name;
        if (first == nullptr || node_name_before(c.name, first->name)) first = &c;
    }
    if (first == nullptr) return std::nullopt;
    for (const std::string& name : preference)
        for (const auto& c : reachable_nodes)
            if (c.name == name && may_take_services(c)) return c.name;
    return first->name;
}

}  // namespace freeha
