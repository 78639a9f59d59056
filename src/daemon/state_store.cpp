#include "daemon/state_store.h"

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <optional>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

#include "bus/sd_ptr.h"
#include "core/node.h"
#include "daemon/regular_file.h"

namespace freeha {
namespace {

std::uint64_t realtime_usec() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * kUsecPerSec.count() + static_cast<std::uint64_t>(ts.tv_nsec) / 1000;
}

// The number in the file's first line; nullopt when there is none, and then
// *unreadable names the file and says why when it could not be read at all.
std::optional<std::uint64_t> read_previous(const std::string& path, std::string* unreadable = nullptr) {
    std::string text, error;
    if (read_regular_file(path, kStateFileLimit, &text, &error) < 0) {
        if (unreadable != nullptr) *unreadable = error;
        return std::nullopt;
    }
    text = text.substr(0, text.find('\n'));
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return value;
}

// Write, fsync, rename: a crash leaves the old value or the new one.
std::string store(const std::string& directory, const std::string& path, const std::string& text) {
    std::error_code ec;
    std::filesystem::create_directories(directory, ec);
    if (ec) return directory + ": " + ec.message();
    std::string temp = path + ".tmp." + std::to_string(getpid());
    UniqueFd fd(open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) return path + ": " + std::strerror(errno);  // the file the caller knows, not the temporary
    bool ok = write(fd.get(), text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd.get()) == 0;
    int saved = errno;
    fd.reset();
    if (!ok || rename(temp.c_str(), path.c_str()) < 0) {
        if (ok) saved = errno;
        unlink(temp.c_str());
        return path + ": " + std::strerror(saved);
    }
    return {};
}

}  // namespace

std::string default_state_directory(BusKind bus) {
    if (const char* dir = std::getenv("STATE_DIRECTORY"); dir != nullptr && *dir != '\0') {
        std::string first(dir);  // systemd lists several directories separated by ':'
        return first.substr(0, first.find(':'));
    }
    if (bus != BusKind::User) return "/var/lib/freeha";
    if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg != nullptr && *xdg == '/')
        return std::string(xdg) + "/freeha";
    const char* home = std::getenv("HOME");
    return std::string(home != nullptr ? home : "/tmp") + "/.local/state/freeha";
}

std::uint64_t claim_incarnation(const std::string& directory, bool authenticated, std::string* warning) {
    std::string path = directory + "/incarnation";
    std::optional<std::uint64_t> previous = read_previous(path);
    std::uint64_t now = realtime_usec();
    std::uint64_t next = next_incarnation(previous, now, authenticated);
    if (previous && next < *previous)
        *warning = path + ": " + format_timespan(round_to(Usec(*previous - now), 60 * kUsecPerSec)) +
                   " ahead of the clock (taken while the clock ran ahead), which peers without a key refuse: "
                   "starting a new incarnation from the clock";
    if (std::string error = store(directory, path, std::to_string(next) + "\n"); !error.empty())
        *warning = "cannot keep the incarnation counter (" + error +
                   "); using the wall clock alone, so a clock set back could make peers ignore this node";
    return next;
}

Usec claim_promise_horizon(const std::string& directory, Usec dead_time, std::string* warning) {
    std::string path = directory + "/promise-horizon";
    Usec previous;
    if (access(path.c_str(), F_OK) == 0) {
        std::string unreadable;
        auto stored = read_previous(path, &unreadable);
        if (stored && Usec(*stored) <= kMaxDeadTime) {
            previous = Usec(*stored);
        } else {
            previous = kMaxDeadTime;
            *warning = (unreadable.empty() ? path + ": not a number of microseconds up to " + format_timespan(kMaxDeadTime)
                                           : unreadable) +
                       "; backing no claim for " + format_timespan(kMaxDeadTime) + ", the longest DeadTime= there is";
        }
    }
    if (dead_time > previous) {
        if (std::string error = store_promise_horizon(directory, dead_time); !error.empty())
            *warning = "cannot keep the promise horizon (" + error +
                       "); after a restart with a shorter DeadTime= this node could back a claim too early";
    }
    return previous;
}

std::string store_promise_horizon(const std::string& directory, Usec horizon) {
    return store(directory, directory + "/promise-horizon", std::to_string(horizon.count()) + "\n");
}

bool standby_stored(const std::string& directory) { return access((directory + "/standby").c_str(), F_OK) == 0; }

std::string store_standby(const std::string& directory, bool standby) {
    std::string path = directory + "/standby";
    if (standby) return store(directory, path, "standby requested by the admin; freehactl unstandby clears it\n");
    if (unlink(path.c_str()) < 0 && errno != ENOENT) return path + ": " + std::strerror(errno);
    return {};
}

std::optional<Maintenance> stored_maintenance(const std::string& directory, std::string* warning) {
    std::string path = directory + "/maintenance";
    std::string text, error;
    int r = read_regular_file(path, kStateFileLimit, &text, &error);
    if (r == -ENOENT) return std::nullopt;
    std::istringstream in(text);
    std::string mode;
    std::uint64_t epoch = 0;
    if (r < 0 || !(in >> mode >> epoch) || (mode != "on" && mode != "off")) {
        if (warning != nullptr) *warning = r < 0 ? error : path + ": not 'on EPOCH' or 'off EPOCH'";
        return std::nullopt;
    }
    return Maintenance{mode == "on", epoch};
}

std::string store_maintenance(const std::string& directory, const Maintenance& maintenance) {
    return store(directory, directory + "/maintenance",
                 std::string(maintenance.on ? "on " : "off ") + std::to_string(maintenance.epoch) + "\n");
}

std::string unit_runtime_directory() {
    const char* dirs = std::getenv("RUNTIME_DIRECTORY");
    if (dirs == nullptr || *dirs == '\0') return {};
    std::string first(dirs);
    return first.substr(0, first.find(':'));
}

namespace {
constexpr const char* kServicesMarker = "/services-may-run";
}

std::string store_services_marker(const std::string& directory, const ServicesMarker& marker) {
    return store(directory, directory + kServicesMarker,
                 std::to_string(marker.dead_time.count()) + " " + std::to_string(marker.interval.count()) + "\n");
}

std::string remove_services_marker(const std::string& directory) {
    std::string path = directory + kServicesMarker;
    if (unlink(path.c_str()) < 0 && errno != ENOENT) return path + ": " + std::strerror(errno);
    return {};
}

std::optional<ServicesMarker> read_services_marker(const std::string& directory, const ServicesMarker& fallback,
                                                   std::string* warning) {
    std::string path = directory + kServicesMarker;
    std::string text, error;
    int r = read_regular_file(path, kStateFileLimit, &text, &error);
    if (r == -ENOENT) return std::nullopt;
    std::istringstream in(text);
    std::uint64_t dead_time = 0, interval = 0;
    if (r < 0 || !(in >> dead_time >> interval) || dead_time == 0 || interval == 0) {
        if (warning != nullptr) *warning = r < 0 ? error : path + ": not two numbers of microseconds";
        return fallback;
    }
    return ServicesMarker{Usec(dead_time), Usec(interval)};
}

}  // namespace freeha
