// The daemon's D-Bus connection: opened on the chosen bus, attached to the loop, owning org.freeha1.
//
// Failures are loud: a name already owned or refused by policy, or a lost
// connection, reach the `fatal` callback with one line saying what happened;
// the connection is never left half-working.
#pragma once

#include <functional>
#include <string>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus/sd_ptr.h"
#include "core/config.h"

namespace freeha {

class BusConnection {
public:
    using Acquired = std::function<void()>;
    using Fatal = std::function<void(const std::string& why)>;

    BusConnection(Acquired acquired, Fatal fatal);

    // Connects to the system or user bus ($DBUS_SYSTEM_BUS_ADDRESS and
    // $DBUS_SESSION_BUS_ADDRESS are honoured) and attaches to `event`.
    int open(BusKind kind, sd_event* event, std::string* error);
    // Asks for `name` without queueing; `acquired` or `fatal` follows.
    int request_name(const char* name, std::string* error);

    sd_bus* get() const { return bus_.get(); }

private:
    static int on_name_reply(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_disconnected(sd_bus_message* m, void* userdata, sd_bus_error* error);

    Acquired acquired_;
    Fatal fatal_;
    BusKind kind_ = BusKind::System;
    std::string name_;
    BusPtr bus_;
    BusSlotPtr disconnect_slot_;
    BusSlotPtr name_slot_;
};

}  // namespace freeha
