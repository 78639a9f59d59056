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
static_assert([] {
    for (std::size_t i = 0; i < kStates.size(); ++i)
        if (static_cast<std::size_t>(kStates[i].state) != i || kStates[i].name.empty()) return false;
    return true;
}(), "kStates lists every NodeState once, in the enum's order");

}  // namespace

std::string_view to_string(NodeState s) { return kStates.at(static_cast<std::size_t>(s)).name; }

std::string_view to_string(Role r) { return kRoleNames(r); }

int freeha_state_number(NodeState s) { return kStates.at(static_cast<std::size_t>(s)).freeha_number; }

std::optional<NodeState> node_state_from_string(std::string_view s) {
    for (const auto& e : kStates)
        if (e.name == s) return e.state;
    return std::nullopt;
}


}  // namespace freeha
