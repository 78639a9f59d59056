// Target mode: starts, stops, kills and watches a systemd unit (and the units it pulls in) over D-Bus.
//
// It stands in for starthasrv/stophasrv/monitorhasrv and reports the same
// way: every run() ends in one `finished` callback, always asynchronously.
// What each operation asks systemd, and when it is over, is UnitOperation's
// (the pure step machine); this is the sd-bus adapter that makes its calls
// and feeds it the replies, JobRemoved, "could not send", the loss and
// return of the bus, poll ticks and the timeout.
//
// The units are watched in every state through PropertiesChanged (after
// Subscribe): while our services run, a unit leaving "active" is a failure;
// whenever a unit becomes active, `activated` says so, so that services
// started behind freehad's back are noticed in milliseconds.
//
// The bus may come and go (dbus restarts, systemd re-executes): detach()
// forgets everything installed on the old connection, attach() installs it
// on the new one, re-reads the units and starts the operation in progress
// over. The units keep running meanwhile, and nothing that could not be sent
// counts as done. A stop or kill that cannot reach systemd for FenceTimeout
// calls `unreachable`: the caller then exits, and the target's
// BindsTo=freehad.service makes systemd stop the units without us.
// No call here ever blocks.
#pragma once

#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus/sd_ptr.h"
#include "core/effects.h"
#include "core/node.h"
#include "core/timespan.h"
#include "daemon/unit_operation.h"
#include "daemon/log.h"

namespace freeha {

// The well-known name of the main loop's bus connection (the controller's in
// target mode; the watch for a machine shutdown in both modes). It is owned only
// so that the bus policy (org.freeha1.conf) can refuse every message to it
// from anyone but root: dbus-daemon's default policy lets any user send
// signals to any connection, and a connection must read a message whole,
// however large, before it can drop it - on the daemon's loop.
inline constexpr const char* kUnitControlBusName = "org.freeha1.UnitControl";

class UnitController {
public:
    struct Callbacks {
        std::function<void(HookKind kind, const HookOutcome& outcome)> finished;
        // A unit of our running services failed or stopped.
        std::function<void(const std::string& why)> failed;
        // A watched unit became active (whether or not we started it).
        std::function<void(const std::string& what)> activated;
        // A stop or kill could not reach systemd for FenceTimeout.
        std::function<void(const std::string& why)> unreachable;
        // kill() is done: systemd reports every unit down.
        std::function<void()> killed;
        // The target's LoadState ("loaded", "not-found", "masked"...), each
        // time the watch reads it (attach(), reread()); may be empty.
        std::function<void(const std::string& load_state)> load_state = {};
    };

    // How often the state of a unit is polled while its fate is unknown
    // (NoReply, or after a kill).
    static constexpr Usec kPendingPoll = Usec(100 * 1000);

    UnitController(sd_event* event, std::string target, Usec fence_timeout, Callbacks callbacks);
    ~UnitController();

    // A (new) connection to the bus: installs the signal matches, subscribes
    // to systemd's unit signals, re-reads the units and resumes the operation
    // in progress. Returns a negative errno and sets *error on failure.
    int attach(sd_bus* bus, std::string* error);
    // The connection went away: everything installed on it is gone.
    void detach();
    // Reads the target's members and LoadState again (as attach() does), e.g.
    // after a configuration reload; nothing while detached.
    void reread();

    void run(HookKind kind, Usec timeout);
    // Ends the wait for the running operation; its (meaningless) outcome still follows.
    void cancel(HookKind kind);
    // The fence escalation: KillUnit(SIGKILL) on the target and every unit it
    // pulls in; the running operation ends at once ("killed"), and `killed`
    // follows once systemd reports every unit down.
    void kill();
    void set_fence_timeout(Usec fence_timeout) { fence_timeout_ = fence_timeout; }

    // Its own lines name its service group (log::GroupLines), as the group's do.
    void set_lines(log::GroupLines lines) { lines_ = std::move(lines); }

private:
    log::GroupLines lines_;
    struct Call;
    struct Operation;

    void begin(HookKind kind, UnitOperation::Kind what, Usec timeout);
    // Carries out what the operation asks for; ends it when it has an outcome.
    void apply(UnitOperation::Actions actions);
    void send(const UnitOperation::Call& call);
    // One method call; `*slot` owns its pending reply.
    int call_method(const UnitOperation::Call& call, sd_bus_message_handler_t handler, void* userdata,
                    sd_bus_slot** slot);
    void finish(bool success, std::string description);
    void arm_poll();
    void report_failure_once(const std::string& why);
    void watch_state(const std::string& unit, const std::string& active_state);
    void update_unreachable_deadline();
    std::vector<std::string> watched_units() const;
    void set_members(std::vector<std::string> members);

    static int on_reply(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_watch_members(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_watch_state(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_job_removed(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_properties_changed(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_systemd_owner_changed(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_subscribed(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_timeout(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_poll(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_unreachable(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_deliver(sd_event_source* s, void* userdata);

    sd_event* event_;
    sd_bus* bus_ = nullptr;  // nullptr while detached
    std::string target_;
    Usec fence_timeout_;
    Callbacks callbacks_;
    BusSlotPtr job_removed_slot_;
    BusSlotPtr properties_slot_;
    BusSlotPtr owner_slot_;
    BusSlotPtr subscribe_slot_;
    // Reads made for the watch itself (members and states after attach), outside any operation.
    std::list<std::unique_ptr<Call>> watch_calls_;

    std::vector<std::string> members_;  // units the target pulls in, as last read
    // Object path -> unit, for the target and members_: looked up on every unit signal.
    std::map<std::string, std::string> watched_paths_;
    std::map<std::string, std::string> last_state_;  // unit -> ActiveState last seen by the watch
    // While the services run: a unit leaving "active" is a failure.
    bool watching_ = false;
    std::unique_ptr<Operation> op_;
    // Outcomes waiting to be delivered from a defer source (never from inside run()).
    std::list<std::pair<HookKind, HookOutcome>> outcomes_;
    bool killed_owed_ = false;
    EventSourcePtr deliver_;
    EventSourcePtr unreachable_;  // armed while a stop or kill waits for the bus
};

}  // namespace freeha
