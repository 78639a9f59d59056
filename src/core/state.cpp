#include "core/state.h"

#include <array>

namespace freeha {
namespace {

struct StateEntry {
    NodeState state;
    std::string_view name;
    int freeha_number;
};

constexpr std::array<StateEntry, kNodeStateCount> kStates{{
    {NodeState::Initial, "INITIAL", 1},
    {NodeState::Standby, "STANDBY", 5},
    {NodeState::Starting, "STARTING", 4},
    {NodeState::Running, "RUNNING", 2},
    {NodeState::Stopping, "STOPPING", 3},
    {NodeState::Errored, "ERRORED", 6},
    {NodeState::TimedOut, "TIMEDOUT", 7},
}};

constexpr std::array<std::string_view, kRoleCount> kRoles{"member", "arbitrator"};

}  // namespace

std::string_view to_string(NodeState s) { return kStates.at(static_cast<std::size_t>(s)).name; }

std::string_view to_string(Role r) { return kRoles.at(static_cast<std::size_t>(r)); }

int freeha_state_number(NodeState s) { return kStates.at(static_cast<std::size_t>(s)).freeha_number; }

std::optional<NodeState> node_state_from_string(std::string_view s) {
    for (const auto& e : kStates)
        if (e.name == s) return e.state;
    return std::nullopt;
}

std::optional<Role> role_from_string(std::string_view s) {
    for (std::size_t i = 0; i < kRoles.size(); ++i)
        if (kRoles[i] == s) return static_cast<Role>(i);
    return std::nullopt;
}

}  // namespace freeha
