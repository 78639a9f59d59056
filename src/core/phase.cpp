#include "core/phase.h"

#include <array>

namespace freeha {
namespace {

struct PhaseEntry {
    Phase phase;
    NodeState state;
    std::string_view name;
};

constexpr std::array<PhaseEntry, kPhaseCount> kPhases{{
    {Phase::InitialProbe, NodeState::Initial, "initial/probe"},
    {Phase::InitialCleanup, NodeState::Initial, "initial/cleanup"},
    {Phase::InitialListening, NodeState::Initial, "initial/listening"},
    {Phase::Standby, NodeState::Standby, "standby"},
    {Phase::StartingPending, NodeState::Starting, "starting/pending"},
    {Phase::StartingHook, NodeState::Starting, "starting/hook"},
    {Phase::Running, NodeState::Running, "running"},
    {Phase::StoppingHook, NodeState::Stopping, "stopping/hook"},
    {Phase::StoppingFenced, NodeState::Stopping, "stopping/fenced"},
    {Phase::StoppingKilled, NodeState::Stopping, "stopping/killed"},
    {Phase::StoppingCleanup, NodeState::Stopping, "stopping/cleanup"},
    {Phase::Errored, NodeState::Errored, "errored"},
    {Phase::StoppingExit, NodeState::Stopping, "stopping/exit"},
}};
static_assert([] {
    for (std::size_t i = 0; i < kPhases.size(); ++i)
        if (static_cast<std::size_t>(kPhases[i].phase) != i || kPhases[i].name.empty()) return false;
    return true;
}(), "kPhases lists every Phase once, in the enum's order");

}  // namespace

NodeState state_of(Phase p) { return kPhases.at(static_cast<std::size_t>(p)).state; }

std::string_view to_string(Phase p) { return kPhases.at(static_cast<std::size_t>(p)).name; }

}  // namespace freeha
