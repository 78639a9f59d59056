// Node states and roles: the one string table shared by the wire, JSON, D-Bus and logs.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/enum_names.h"

namespace freeha {

// FreeHA's node states. TIMEDOUT is never announced by a node itself; peers
// assign it when a node's heartbeats stop for the dead time.
enum class NodeState : std::uint8_t {
    Initial,
    Standby,
    Starting,
    Running,
    Stopping,
    Errored,
    TimedOut,
};
inline constexpr int kNodeStateCount = 7;
static_assert(kNodeStateCount == static_cast<int>(NodeState::TimedOut) + 1);

enum class Role : std::uint8_t {
    Member,      // may run the services
    Arbitrator,  // votes for quorum, never runs services
};
inline constexpr int kRoleCount = 2;
static_assert(kRoleCount == static_cast<int>(Role::Arbitrator) + 1);
inline constexpr EnumNames<Role, kRoleCount> kRoleNames{"member", "arbitrator"};

std::string_view to_string(NodeState s);
std::string_view to_string(Role r);
std::optional<NodeState> node_state_from_string(std::string_view s);

// FreeHA's state numbers, passed to alerthasrv as its first argument.
int freeha_state_number(NodeState s);

// True for the states in which services are (or may be) up on that node.
constexpr bool holds_services(NodeState s) {
    return s == NodeState::Starting || s == NodeState::Running || s == NodeState::Stopping;
}

}  // namespace freeha
