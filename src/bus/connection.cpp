#include "bus/connection.h"

#include <cstring>

namespace freeha {
namespace {

const char* bus_label(BusKind kind) { return kind == BusKind::User ? "user bus" : "system bus"; }

}  // namespace

BusConnection::BusConnection(Acquired acquired, Fatal fatal)
    : acquired_(std::move(acquired)), fatal_(std::move(fatal)) {}

int BusConnection::open(BusKind kind, sd_event* event, std::string* error) {
    kind_ = kind;
    sd_bus* raw = nullptr;
    int r = kind == BusKind::User ? sd_bus_open_user_with_description(&raw, "freehad")
                                  : sd_bus_open_system_with_description(&raw, "freehad");
    if (r < 0) {
        *error = std::string("cannot connect to the ") + bus_label(kind) + ": " + std::strerror(-r) +
                 (kind == BusKind::User ? " (is DBUS_SESSION_BUS_ADDRESS or XDG_RUNTIME_DIR set?)" : "");
        return r;
    }
    bus_.reset(raw);
    // sd-bus delivers a local Disconnected signal when the connection drops.
    sd_bus_slot* slot = nullptr;
    r = sd_bus_match_signal(raw, &slot, "org.freedesktop.DBus.Local", "/org/freedesktop/DBus/Local",
                            "org.freedesktop.DBus.Local", "Disconnected", on_disconnected, this);
    if (r >= 0) {
        disconnect_slot_.reset(slot);
        r = sd_bus_attach_event(raw, event, SD_EVENT_PRIORITY_NORMAL);
    }
    if (r < 0) {
        *error = std::string("cannot attach the ") + bus_label(kind) + " to the event loop: " + std::strerror(-r);
        return r;
    }
    return 0;
}

int BusConnection::request_name(const char* name, std::string* error) {
    name_ = name;
    sd_bus_slot* slot = nullptr;
    int r = sd_bus_request_name_async(bus_.get(), &slot, name, 0, on_name_reply, this);
    if (r < 0) {
        *error = std::string("cannot request the bus name ") + name + ": " + std::strerror(-r);
        return r;
    }
    name_slot_.reset(slot);
    return 0;
}

int BusConnection::on_name_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<BusConnection*>(userdata);
    std::string where = std::string(" on the ") + bus_label(self->kind_);
    if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
        self->fatal_("cannot own the bus name " + self->name_ + where + ": " + (e->message ? e->message : e->name) +
                     (sd_bus_error_has_name(e, SD_BUS_ERROR_ACCESS_DENIED)
                          ? " (is org.freeha1.conf installed in the D-Bus policy directory?)"
                          : ""));
        return 0;
    }
    // With no queueing allowed, 1 means "primary owner" and 3 "someone else has it".
    std::uint32_t result = 0;
    if (sd_bus_message_read(m, "u", &result) < 0 || (result != 1 && result != 4)) {
        self->fatal_("the bus name " + self->name_ + " is already owned" + where + ": is another freehad running?");
        return 0;
    }
    self->acquired_();
    return 0;
}

int BusConnection::on_disconnected(sd_bus_message*, void* userdata, sd_bus_error*) {
    auto* self = static_cast<BusConnection*>(userdata);
    self->fatal_(std::string("lost the connection to the ") + bus_label(self->kind_));
    return 0;
}

}  // namespace freeha
