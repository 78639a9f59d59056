// The node's phases: FreeHA's states, each split into the sub-states that decide what runs and what is awaited.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/state.h"

namespace freeha {

// A phase is what the node is doing; its NodeState is what it announces.
// Like systemd's service states (STOP_SIGTERM, STOP_SIGKILL...), each phase
// has at most one hook it runs and one deadline it waits for.
enum class Phase : std::uint8_t {
    InitialProbe,      // monitorhasrv: are the services already running here?
    InitialCleanup,    // stophasrv after a failed probe
    InitialListening,  // a dead time, then until the start-up quorum (or InitDead)
    Standby,
    StartingPending,   // claimed; waiting for a lease and for any holder to let go
    StartingHook,      // starthasrv runs
    Running,           // monitorhasrv runs every MonitorInterval
    StoppingHook,      // stophasrv runs, bounded by its own timeout (and the lease, if it runs low)
    StoppingFenced,    // stophasrv runs, and the services are killed at the fence deadline
    StoppingKilled,    // the deadline passed: the services are being killed, awaiting proof
    StoppingCleanup,   // killed: stophasrv runs once more for what processes leave (addresses, mounts)
    Errored,
    // The daemon shuts down and this group's services have stopped: it
    // announces STOPPING (FreeHA: peers wait out the dead time) until the
    // node's other groups have stopped too and the daemon exits.
    StoppingExit,
};
inline constexpr int kPhaseCount = 13;
static_assert(kPhaseCount == static_cast<int>(Phase::StoppingExit) + 1);

NodeState state_of(Phase p);
// "initial/probe", "starting/pending", "stopping/killed", "running", ...
std::string_view to_string(Phase p);

}  // namespace freeha
