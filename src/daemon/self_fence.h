// The self-fence (SelfFence=): what freehad does when what the services left could outlive the lease.
//
// A reboot is the only way to be sure that an address, a mount or a
// firewall rule the services left is gone when nothing could confirm its
// removal: reboot(RB_AUTOBOOT) at once, as `reboot -ff` does, without
// stopping units (which could hang on the very mount that did not come
// off). In a container (a PID namespace of its own) the kernel ends the
// container instead, and with its network namespace its addresses.
#pragma once

#include <string>

#include "core/config.h"
#include "core/timespan.h"

namespace freeha {

// Carries out `action` for `reason` (logged at LOG_CRIT, with the
// MESSAGE_ID of the catalog). Reboot syncs the disks first, for at most
// until `sync_until` (CLOCK_MONOTONIC): a sync that hangs on a dead disk
// must not delay the reboot past the lease (in a container, whose file
// systems are the host's, it does not sync). Returns 0 for None; for Reboot
// it returns only when the reboot failed, with a negative errno (logged).
int self_fence(SelfFenceAction action, const std::string& reason, Usec sync_until);

}  // namespace freeha
