#include "daemon/shutdown_watch.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "daemon/log.h"

namespace freeha {
namespace {

constexpr const char* kSystemd = "org.freedesktop.systemd1";
constexpr const char* kSystemdPath = "/org/freedesktop/systemd1";
constexpr const char* kSystemdManager = "org.freedesktop.systemd1.Manager";
constexpr const char* kLogind = "org.freedesktop.login1";
constexpr const char* kLogindPath = "/org/freedesktop/login1";
constexpr const char* kLogindManager = "org.freedesktop.login1.Manager";

// Every shutdown (reboot, poweroff, halt, kexec; a user manager's exit)
// pulls in shutdown.target; exit.target is a container's or a user
// manager's way to end, queued before it.
bool is_shutdown_unit(const char* unit) {
    return unit != nullptr && (std::strcmp(unit, "shutdown.target") == 0 || std::strcmp(unit, "exit.target") == 0);
}

std::string error_text(const sd_bus_error* e) { return e->message != nullptr ? e->message : e->name; }

}  // namespace

ShutdownWatch::ShutdownWatch(BusKind kind, ShutdownCallback shutdown, std::function<void()> plain_stop)
    : kind_(kind), shutdown_(std::move(shutdown)), plain_stop_(std::move(plain_stop)) {}

ShutdownWatch::~ShutdownWatch() {
    if (lock_fd_ >= 0) close(lock_fd_);
}

int ShutdownWatch::attach(sd_bus* bus, std::string* error) {
    detach();
    bus_ = bus;
    sd_bus_slot* slot = nullptr;
    // The matches exist before the lock and the subscription.
    int r = sd_bus_match_signal_async(bus_, &slot, kSystemd, kSystemdPath, kSystemdManager, "JobNew", on_job_new,
                                      nullptr, this);
    if (r >= 0) {
        job_new_slot_.reset(slot);
        r = sd_bus_call_method_async(bus_, &slot, kSystemd, kSystemdPath, kSystemdManager, "Subscribe",
                                     on_subscribe_reply, this, "");
    }
    if (r >= 0) subscribe_slot_.reset(slot);
    // logind is the system's: a user manager's exit shows as its jobs only.
    if (r >= 0 && kind_ == BusKind::System) {
        r = sd_bus_match_signal_async(bus_, &slot, kLogind, kLogindPath, kLogindManager, "PrepareForShutdown",
                                      on_prepare_for_shutdown, nullptr, this);
        if (r >= 0) {
            prepare_slot_.reset(slot);
            take_lock();
        }
    }
    if (r < 0) {
        *error = log::with_errno("cannot watch for a machine shutdown over D-Bus (a shutdown is a plain stop)", r);
        detach();
        return r;
    }
    return 0;
}

void ShutdownWatch::detach() {
    bus_ = nullptr;
    prepare_slot_.reset();
    job_new_slot_.reset();
    subscribe_slot_.reset();
    inhibit_slot_.reset();
    list_jobs_slot_.reset();
}

void ShutdownWatch::take_lock() {
    if (!bus_ || lock_fd_ >= 0 || released_ || reported_ || inhibit_slot_) return;
    sd_bus_slot* slot = nullptr;
    int r = sd_bus_call_method_async(bus_, &slot, kLogind, kLogindPath, kLogindManager, "Inhibit", on_inhibit_reply,
                                     this, "ssss", "shutdown", "freehad", "hand the services to another node", "delay");
    if (r < 0) {
        log::info(log::with_errno("cannot ask logind for a shutdown delay lock; a reboot is seen by systemd's jobs only", r));
        return;
    }
    inhibit_slot_.reset(slot);
}

bool ShutdownWatch::check_queued_jobs() {
    if (!bus_ || reported_) return false;
    if (list_jobs_slot_) return true;
    sd_bus_slot* slot = nullptr;
    int r = sd_bus_call_method_async(bus_, &slot, kSystemd, kSystemdPath, kSystemdManager, "ListJobs",
                                     on_list_jobs_reply, this, "");
    if (r < 0) {
        log::info(log::with_errno("cannot ask systemd whether the machine shuts down; this is a plain stop", r));
        return false;
    }
    list_jobs_slot_.reset(slot);
    return true;
}

void ShutdownWatch::release() {
    released_ = true;
    inhibit_slot_.reset();
    if (lock_fd_ < 0) return;
    close(lock_fd_);
    lock_fd_ = -1;
    log::debug("shutdown delay lock released: logind may carry on");
}

void ShutdownWatch::report(const std::string& how) {
    if (reported_) return;
    reported_ = true;
    shutdown_(how);
}

int ShutdownWatch::on_inhibit_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("ShutdownWatch::on_inhibit_reply", [&]() -> int {
        auto* self = static_cast<ShutdownWatch*>(userdata);
        self->inhibit_slot_.reset();
        if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
            if (!self->told_no_logind_) {
                self->told_no_logind_ = true;
                log::info("logind gives no shutdown delay lock (" + error_text(e) +
                          "); a reboot is seen by systemd's queued jobs only");
            }
            return 0;
        }
        int fd = -1;
        int r = sd_bus_message_read(m, "h", &fd);
        // The message owns its descriptor; ours must not leak into hooks.
        int own = r >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
        if (own < 0) {
            log::info(log::with_errno("cannot keep logind's shutdown delay lock", r < 0 ? r : -errno));
            return 0;
        }
        if (self->released_ || self->reported_) {
            close(own);  // too late: the node already leaves
            return 0;
        }
        self->lock_fd_ = own;
        log::debug("holding a shutdown delay lock: a reboot waits until the services are handed over");
        return 0;
    });
}

int ShutdownWatch::on_prepare_for_shutdown(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("ShutdownWatch::on_prepare_for_shutdown", [&]() -> int {
        auto* self = static_cast<ShutdownWatch*>(userdata);
        int starting = 0;
        if (sd_bus_message_read(m, "b", &starting) < 0) return 0;
        if (starting) {
            self->report("logind's PrepareForShutdown");
        } else if (!self->reported_) {
            // Canceled before we acted on it: be ready for the next one.
            self->take_lock();
        }
        return 0;
    });
}

int ShutdownWatch::on_job_new(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("ShutdownWatch::on_job_new", [&]() -> int {
        auto* self = static_cast<ShutdownWatch*>(userdata);
        std::uint32_t id = 0;
        const char* job = nullptr;
        const char* unit = nullptr;
        if (sd_bus_message_read(m, "uos", &id, &job, &unit) < 0) return 0;
        if (is_shutdown_unit(unit)) self->report(std::string("systemd queued a job for ") + unit);
        return 0;
    });
}

int ShutdownWatch::on_list_jobs_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("ShutdownWatch::on_list_jobs_reply", [&]() -> int {
        auto* self = static_cast<ShutdownWatch*>(userdata);
        self->list_jobs_slot_.reset();
        if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
            log::info("cannot ask systemd whether the machine shuts down (" + error_text(e) + "); this is a plain stop");
            self->plain_stop_();
            return 0;
        }
        int r = sd_bus_message_enter_container(m, 'a', "(usssoo)");
        while (r > 0) {
            std::uint32_t id = 0;
            const char *unit = nullptr, *type = nullptr, *state = nullptr, *job = nullptr, *unit_path = nullptr;
            r = sd_bus_message_read(m, "(usssoo)", &id, &unit, &type, &state, &job, &unit_path);
            if (r > 0 && is_shutdown_unit(unit) && std::strcmp(type, "start") == 0) {
                self->report(std::string("systemd's job for ") + unit + ", found at SIGTERM");
                return 0;
            }
        }
        if (r < 0) log::info(log::with_errno("cannot read systemd's jobs; this is a plain stop", r));
        else log::debug("SIGTERM: no shutdown job queued; a plain stop");
        self->plain_stop_();
        return 0;
    });
}

int ShutdownWatch::on_subscribe_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("ShutdownWatch::on_subscribe_reply", [&]() -> int {
        auto* self = static_cast<ShutdownWatch*>(userdata);
        self->subscribe_slot_.reset();
        const sd_bus_error* e = sd_bus_message_get_error(m);
        if (e != nullptr && !self->told_no_systemd_) {
            self->told_no_systemd_ = true;
            log::info("systemd's jobs cannot be watched (" + error_text(e) +
                      "); a shutdown that bypasses logind is a plain stop");
        }
        return 0;
    });
}

}  // namespace freeha
