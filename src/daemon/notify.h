// sd_notify that never waits: readiness, STATUS= lines, reload/stop announcements, stop-timeout extension, watchdog.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "bus/sd_ptr.h"
#include "core/timespan.h"

namespace freeha {

// The service manager's notification socket, written without blocking: a
// manager that stops reading (blocked on its own journal, say) must not stall
// the daemon's loop, so a message it cannot take at once is dropped (the
// first drop is logged). Without $NOTIFY_SOCKET every call is a no-op.
class Notifier {
public:
    // Reads $NOTIFY_SOCKET and the unit's WatchdogSec= ($WATCHDOG_USEC, when
    // meant for this process). A socket it cannot use gets nothing, as
    // sd_notify outside systemd.
    Notifier();

    void ready();
    // RELOADING=1 with MONOTONIC_USEC=, for SIGHUP; ready() ends it.
    void reloading(Usec monotonic_now);
    void stopping();
    // Sent only when the line differs from the last one sent.
    void status(const std::string& line);
    void extend_timeout(Usec usec);

    // The watchdog: the unit's WatchdogSec= lowered to `allowed` (told to the
    // manager with WATCHDOG_USEC=), or nullopt when the unit has none.
    std::optional<Usec> set_watchdog(Usec allowed);
    // WATCHDOG=1; also retries a WATCHDOG_USEC= the manager did not take.
    void ping();
    // The unit's own WatchdogSec=, before freehad lowered it.
    std::optional<Usec> unit_watchdog() const { return unit_watchdog_; }

private:
    bool send(std::string_view message);

    UniqueFd fd_;
    std::string watchdog_reset() const;  // a ping and watchdog_, in one message
    std::optional<Usec> unit_watchdog_;
    std::optional<Usec> watchdog_;   // what the manager is to use
    bool watchdog_told_ = true;      // whether the manager took watchdog_
    std::string last_status_;
    bool drop_logged_ = false;
};

}  // namespace freeha
