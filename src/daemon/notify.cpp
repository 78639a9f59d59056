#include "daemon/notify.h"

#include <systemd/sd-daemon.h>

namespace freeha {

// sd_notify is a no-op without $NOTIFY_SOCKET, so the daemon runs the same
// outside systemd; its result is not worth an error: the manager would only
// miss a state update, and there is nobody else to tell.
std::optional<Usec> watchdog_timeout() {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0) return std::nullopt;
    return Usec(usec);
}

void Notifier::ready() { sd_notify(0, "READY=1"); }

void Notifier::reloading(Usec monotonic_now) {
    std::string msg = "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_now.count());
    sd_notify(0, msg.c_str());
}

void Notifier::stopping() { sd_notify(0, "STOPPING=1"); }

void Notifier::status(const std::string& line) {
    if (line == last_status_) return;
    last_status_ = line;
    std::string msg = "STATUS=" + line;
    sd_notify(0, msg.c_str());
}

void Notifier::extend_timeout(Usec usec) {
    std::string msg = "EXTEND_TIMEOUT_USEC=" + std::to_string(usec.count());
    sd_notify(0, msg.c_str());
}

}  // namespace freeha
