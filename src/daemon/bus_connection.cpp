#include "daemon/bus_connection.h"

#include <cstring>
#include <utility>

#include "daemon/log.h"

namespace freeha {
namespace {

Usec monotonic_now(sd_event* event) {
    std::uint64_t t = 0;
    sd_event_now(event, CLOCK_MONOTONIC, &t);
    return Usec(t);
}

}  // namespace

BusConnection::BusConnection(sd_event* event, BusKind kind, const char* name, std::string purpose,
                             Callbacks callbacks)
    : event_(event), kind_(kind), name_(name), purpose_(std::move(purpose)), callbacks_(std::move(callbacks)) {}

BusConnection::~BusConnection() = default;

const char* BusConnection::label() const { return kind_ == BusKind::User ? "user bus" : "system bus"; }

void BusConnection::start() { attempt(); }

void BusConnection::attempt() {
    timer_.reset();
    sd_bus* raw = nullptr;
    // Connecting to a unix socket and sending Hello never wait for the bus;
    // the first reply (to RequestName below) proves the connection works.
    int r = kind_ == BusKind::User ? sd_bus_open_user_with_description(&raw, "freehad")
                                   : sd_bus_open_system_with_description(&raw, "freehad");
    if (r < 0) {
        drop(log::with_errno(std::string("cannot connect to the ") + label(), r) +
             (kind_ == BusKind::User ? " (is DBUS_SESSION_BUS_ADDRESS or XDG_RUNTIME_DIR set?)" : ""));
        return;
    }
    bus_.reset(raw);
    // By default sd-bus flushes the connection when the loop exits, which
    // blocks for as long as a hung bus takes to read it.
    sd_bus_set_close_on_exit(raw, false);
    sd_bus_slot* slot = nullptr;
    r = sd_bus_match_signal(raw, &slot, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                            "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, this);
    if (r >= 0) {
        disconnect_slot_.reset(slot);
        r = sd_bus_attach_event(raw, event_, SD_EVENT_PRIORITY_NORMAL);
    }
    sd_bus_message* call = nullptr;
    if (r >= 0)
        r = sd_bus_message_new_method_call(raw, &call, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                           "org.freedesktop.DBus", "RequestName");
    BusMessagePtr request(call);
    // DBUS_NAME_FLAG_DO_NOT_QUEUE: another owner is an error now, not a place in a queue.
    constexpr std::uint32_t kDoNotQueue = 4;
    if (r >= 0) r = sd_bus_message_append(call, "su", name_.c_str(), kDoNotQueue);
    if (r >= 0) r = sd_bus_call_async(raw, &slot, call, on_name_reply, this, kConnectTimeout.count());
    if (r < 0) {
        drop(log::with_errno(std::string("cannot talk to the ") + label(), r));
        return;
    }
    name_slot_.reset(slot);
    up_ = true;
    // Objects go in before the name is requested (the request is only sent
    // once Hello has been answered): clients that see the name find them.
    callbacks_.connected(raw);
    // sd-bus gives up on the call after kConnectTimeout once Hello is done;
    // this deadline also covers a bus that never completes authentication.
    arm(kConnectTimeout, on_deadline);
}

void BusConnection::drop(const std::string& why) {
    bool was_up = up_;
    up_ = false;
    name_slot_.reset();
    disconnect_slot_.reset();
    if (bus_) {
        sd_bus_detach_event(bus_.get());
        bus_.reset();  // closes without flushing: a hung bus cannot stall us
    }
    if (was_up) callbacks_.lost();
    if (outage_.empty()) {
        outage_ = why;
        outage_since_ = monotonic_now(event_);
        log::message(optional_ ? LOG_INFO : LOG_WARNING,
                     why + "; " + purpose_ + " is unavailable until the bus answers again (retrying)");
    }
    schedule_retry();
}

void BusConnection::schedule_retry() {
    if (failed_) return;
    arm(backoff_, on_retry);
    backoff_ = std::min(backoff_ * 2, kMaxRetry);
}

void BusConnection::arm(Usec delay, sd_event_time_handler_t handler) {
    timer_.reset();
    sd_event_source* s = nullptr;
    int r = sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, delay.count(), (10 * kUsecPerMsec).count(),
                                       handler, this);
    if (r < 0) {
        // Without a timer there is no retry: say so once, the API stays down.
        log::error(log::with_errno("cannot arm the D-Bus reconnection timer", r));
        return;
    }
    timer_.reset(s);
}

int BusConnection::on_name_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("BusConnection::on_name_reply", [&]() -> int {
        auto* self = static_cast<BusConnection*>(userdata);
        std::string where = std::string(" on the ") + self->label();
        if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
            if (sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED)) {
                self->failed_ = true;
                self->timer_.reset();
                self->callbacks_.fatal("cannot own the bus name " + self->name_ + where + ": " +
                                       (e->message ? e->message : e->name) +
                                       " (is org.freeha1.conf installed in the D-Bus policy directory?)");
                return 0;
            }
            // A timeout, a disconnection, a bus shutting down: try again later.
            self->drop_later("the " + std::string(self->label()) + " did not give us " + self->name_ + ": " +
                             (e->message ? e->message : e->name));
            return 0;
        }
        // Without queueing, 1 means "primary owner", 4 "already the owner", 3 "someone else has it".
        std::uint32_t result = 0;
        if (sd_bus_message_read(m, "u", &result) < 0 || (result != 1 && result != 4)) {
            self->failed_ = true;
            self->timer_.reset();
            self->callbacks_.fatal("the bus name " + self->name_ + " is already owned" + where +
                                   ": is another freehad running?");
            return 0;
        }
        self->timer_.reset();
        self->backoff_ = kFirstRetry;
        if (!self->outage_.empty()) {
            log::message(self->optional_ ? LOG_INFO : LOG_NOTICE,
                         "the " + std::string(self->label()) + " answers again after " +
                        format_timespan((monotonic_now(self->event_) - self->outage_since_) / 1000 * 1000) +
                        "; " + self->purpose_ + " is back");
            self->outage_.clear();
        }
        self->callbacks_.name_acquired();
        return 0;
    });
}

int BusConnection::on_disconnected(sd_bus_message*, void* userdata, sd_bus_error*) {
    return log::guarded("BusConnection::on_disconnected", [&]() -> int {
        auto* self = static_cast<BusConnection*>(userdata);
        self->drop_later(std::string("lost the connection to the ") + self->label());
        return 0;
    });
}

void BusConnection::drop_later(std::string why) {
    // Called from inside the bus's own dispatch: tear it down from the loop instead.
    dropping_ = std::move(why);
    arm(Usec(), on_drop);
}

int BusConnection::on_drop(sd_event_source*, uint64_t, void* userdata) {
    return log::guarded("BusConnection::on_drop", [&]() -> int {
        auto* self = static_cast<BusConnection*>(userdata);
        self->drop(std::exchange(self->dropping_, std::string()));
        return 0;
    });
}

int BusConnection::on_deadline(sd_event_source*, uint64_t, void* userdata) {
    return log::guarded("BusConnection::on_deadline", [&]() -> int {
        auto* self = static_cast<BusConnection*>(userdata);
        self->drop("the " + std::string(self->label()) + " did not answer within " +
                   format_timespan(kConnectTimeout));
        return 0;
    });
}

int BusConnection::on_retry(sd_event_source*, uint64_t, void* userdata) {
    return log::guarded("BusConnection::on_retry", [&]() -> int {
        static_cast<BusConnection*>(userdata)->attempt();
        return 0;
    });
}

}  // namespace freeha
