// A D-Bus connection of the daemon: connects without ever blocking, owns its name, and reconnects when the bus goes away.
//
// There are two: the API's (org.freeha1, on ApiThread's loop) and, in target
// mode, the one that drives systemd (org.freeha1.UnitControl, on the main
// loop). Nothing the HA function needs waits on either: a bus that never
// answers (hung, overloaded, restarting) costs what the connection is for,
// never a heartbeat. Each attempt must reach "name owned" within
// kConnectTimeout or it is abandoned; attempts are retried with a growing
// backoff. An outage is logged once when it starts and once when it ends.
// Only a refusal that retrying cannot fix (the name is owned by another
// process, or the policy forbids owning it) is fatal.
#pragma once

#include <functional>
#include <string>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus/sd_ptr.h"
#include "core/config.h"
#include "core/timespan.h"

namespace freeha {

class BusConnection {
public:
    struct Callbacks {
        // A new connection, before Hello is answered and before the name is
        // requested: install objects and matches on it, so that whoever sees
        // the name owned finds them. Calls made here go out once Hello is answered.
        std::function<void(sd_bus*)> connected;
        // The name is ours on that connection.
        std::function<void()> name_acquired;
        // The connection went away (or never came up): drop everything installed on it.
        std::function<void()> lost;
        // Retrying cannot help; one line saying why.
        std::function<void(const std::string& why)> fatal;
    };

    static constexpr Usec kConnectTimeout = Usec(10 * 1000 * 1000);
    static constexpr Usec kFirstRetry = Usec(100 * 1000);
    static constexpr Usec kMaxRetry = Usec(5 * 1000 * 1000);

    // `purpose` names what the connection serves in the outage log lines ("the D-Bus API").
    BusConnection(sd_event* event, BusKind kind, const char* name, std::string purpose, Callbacks callbacks);
    ~BusConnection();

    // Makes the first attempt; every later one is made by the connection itself.
    void start();
    // What the connection serves is optional (the watch for a machine
    // shutdown in scripts mode): its outages are logged at info, not as warnings.
    void set_optional() { optional_ = true; }

    const char* label() const;

private:
    void attempt();
    // Ends the current connection; `why` is logged if this starts an outage.
    void drop(const std::string& why);
    void drop_later(std::string why);
    void schedule_retry();
    void arm(Usec delay, sd_event_time_handler_t handler);

    static int on_name_reply(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_disconnected(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_deadline(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_retry(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_drop(sd_event_source* s, uint64_t usec, void* userdata);

    sd_event* event_;
    BusKind kind_;
    std::string name_;
    std::string purpose_;
    Callbacks callbacks_;
    BusPtr bus_;
    BusSlotPtr disconnect_slot_;
    BusSlotPtr name_slot_;
    EventSourcePtr timer_;  // the attempt's deadline, or the next retry
    bool up_ = false;       // `connected` was called for bus_
    bool failed_ = false;   // fatal: no more attempts
    bool optional_ = false;
    Usec backoff_ = kFirstRetry;
    std::string dropping_;  // why the connection is being torn down
    std::string outage_;    // why the bus is away, while it is ("" when up)
    Usec outage_since_;
};

}  // namespace freeha
