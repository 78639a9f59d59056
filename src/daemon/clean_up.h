// freehad --clean-up: the unit's clean-up after freehad's death (ExecStopPost=), within the dead time, or the self-fence.
//
// However freehad ended (SIGKILL, a crash, the watchdog, an exit), systemd
// kills what is left in its cgroup, but what the services left in the
// kernel (a floating address, a mount) stays, and a peer takes over a dead
// time after freehad's last heartbeat. ExecStopPost= runs this at once:
// when freehad's marker says its services may have run (its exit status
// cannot say that: a SIGKILL has none, and a standby node has nothing to
// clean up), stophasrv runs once with a deadline before the peers can take
// over; a clean-up that fails or does not end by then is handed to
// SelfFence=.
#pragma once

#include "core/config.h"

namespace freeha {

// Returns the exit status for freehad: 0 when there was nothing to clean up
// or the clean-up succeeded; 1 otherwise (after the self-fence, when it is "none").
int clean_up_after_daemon(const Config& config);

}  // namespace freeha
