#include "daemon/notify.h"

#include "daemon/log.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

namespace freeha {
namespace {

// A socket connected to $NOTIFY_SOCKET (a path, or "@" for an abstract name),
// or none. Anything else (no variable, a vsock address) gets no notifications,
// as sd_notify outside systemd: there is nobody else to tell.
UniqueFd connect_notify_socket() {
    const char* address = std::getenv("NOTIFY_SOCKET");
    if (address == nullptr || (address[0] != '/' && address[0] != '@')) return {};
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::size_t length = std::strlen(address);
    if (length >= sizeof(sa.sun_path)) return {};
    std::memcpy(sa.sun_path, address, length);
    if (address[0] == '@') sa.sun_path[0] = '\0';
    UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return {};
    auto size = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length);
    if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), size) < 0) return {};
    return fd;
}

}  // namespace

Notifier::Notifier() : fd_(connect_notify_socket()) {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0) unit_watchdog_ = Usec(usec);
}

// The kernel attaches the credentials the manager checks (NotifyAccess=main)
// to every datagram; MSG_DONTWAIT makes a full queue a drop, not a wait.
bool Notifier::send(std::string_view message) {
    if (!fd_) return true;
    if (::send(fd_.get(), message.data(), message.size(), MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) return true;
    // Once: a manager that cannot keep up is seen by the first drop, and the
    // loop must not log at the pings' rate.
    if (!drop_logged_)
        log::warning(log::with_errno("the service manager did not take a notification at once; it is dropped "
                                     "(and so are later ones, without a line each)", -errno));
    drop_logged_ = true;
    return false;
}

void Notifier::ready() { send("READY=1"); }

void Notifier::reloading(Usec monotonic_now) {
    send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_now.count()));
}

void Notifier::stopping() { send("STOPPING=1"); }

void Notifier::status(const std::string& line) {
    if (line == last_status_) return;
    if (send("STATUS=" + line)) last_status_ = line;  // a dropped line is sent again with the next change
}

void Notifier::extend_timeout(Usec usec) { send("EXTEND_TIMEOUT_USEC=" + std::to_string(usec.count())); }

std::optional<Usec> Notifier::set_watchdog(Usec allowed) {
    if (!unit_watchdog_) return std::nullopt;
    Usec wanted = std::min(*unit_watchdog_, allowed);
    if (wanted != watchdog_.value_or(*unit_watchdog_)) watchdog_told_ = false;
    watchdog_ = wanted;
    if (!watchdog_told_) watchdog_told_ = send(watchdog_reset());
    return wanted;
}

// The manager counts a new WATCHDOG_USEC= from the last ping: with a ping in
// the same message (handled first), a lowered value never finds that ping
// already older than itself.
std::string Notifier::watchdog_reset() const { return "WATCHDOG=1\nWATCHDOG_USEC=" + std::to_string(watchdog_->count()); }

void Notifier::ping() {
    if (!watchdog_told_ && watchdog_) {
        watchdog_told_ = send(watchdog_reset());
        if (watchdog_told_) return;
    }
    send("WATCHDOG=1");
}

}  // namespace freeha
