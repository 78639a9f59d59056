// sd_notify: readiness, STATUS= lines, reload/stop announcements, stop-timeout extension.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/timespan.h"

namespace freeha {

// The unit's WatchdogSec= ($WATCHDOG_USEC, when it is meant for this process), if any.
std::optional<Usec> watchdog_timeout();

class Notifier {
public:
    void ready();
    // RELOADING=1 with MONOTONIC_USEC=, for SIGHUP; ready() ends it.
    void reloading(Usec monotonic_now);
    void stopping();
    // Sent only when the line differs from the last one.
    void status(const std::string& line);
    void extend_timeout(Usec usec);

private:
    std::string last_status_;
};

}  // namespace freeha
