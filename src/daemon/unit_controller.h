// Target mode: starts, stops and watches a systemd unit (and the units it pulls in) over D-Bus.
//
// It stands in for starthasrv/stophasrv/monitorhasrv and reports the same
// way: every run() ends in one `finished` callback, always asynchronously.
// Start is ResetFailedUnit + StartUnit(target, "replace") with the JobRemoved
// match installed first; only the result "done" is success. Stop is StopUnit
// on the target and every unit it pulls in. While the services run, the
// units are watched through PropertiesChanged (after Subscribe), so a unit
// that fails reaches `failed` within milliseconds. A call that gets NoReply
// (systemd re-executing) leaves the operation pending: the unit's state is
// polled until it settles or the timeout passes. No call here ever blocks.
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

namespace freeha {

class UnitController {
public:
    using Finished = std::function<void(HookKind kind, const HookOutcome& outcome)>;
    using Failed = std::function<void(const std::string& why)>;

    // How often the state of a unit is polled while the job's fate is unknown.
    static constexpr Usec kPendingPoll = 250 * kUsecPerMsec;

    UnitController(sd_event* event, sd_bus* bus, std::string target, Finished finished, Failed failed);
    ~UnitController();

    // Installs the signal matches and subscribes to systemd's unit signals.
    int init(std::string* error);

    void run(HookKind kind, Usec timeout);
    // Ends the wait for the running operation; its (meaningless) outcome still follows.
    void cancel(HookKind kind);
    // The fence escalation: KillUnit(SIGKILL) on the target and every unit it
    // pulls in, then ends the running operation as failed.
    void kill(HookKind kind);

private:
    struct Call;
    struct Operation;

    void begin_operation(HookKind kind, Usec timeout);
    void finish(bool success, std::string description);
    int call_manager(const char* member, const std::string& unit, bool with_mode, sd_bus_message_handler_t handler);
    int get_property(const std::string& unit, const char* property, sd_bus_message_handler_t handler);
    void load_members_then(void (UnitController::*next)());
    void start_target();
    void stop_units();
    void check_units();
    void job_queued(const std::string& unit, const std::string& job);
    void job_done(const std::string& unit, const std::string& result);
    void unit_state(const std::string& unit, const std::string& active_state);
    void poll_pending();
    void arm_poll();
    void step_done_if_complete();
    Operation* take(Call* call);
    void report_failure_once(const std::string& why);
    std::vector<std::string> watched_units() const;

    static int on_members(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_reset_failed(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_job_reply(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_active_state(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_job_removed(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_properties_changed(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_systemd_owner_changed(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_kill_reply(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_subscribed(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_timeout(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_poll(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_deliver(sd_event_source* s, void* userdata);

    sd_event* event_;
    sd_bus* bus_;
    std::string target_;
    Finished finished_;
    Failed failed_;
    BusSlotPtr job_removed_slot_;
    BusSlotPtr properties_slot_;
    BusSlotPtr owner_slot_;
    BusSlotPtr subscribe_slot_;

    std::vector<std::string> members_;  // units the target pulls in, as last read
    // Object path -> unit, for the target and members_: looked up on every unit signal.
    std::map<std::string, std::string> watched_paths_;
    // While the services run: a unit leaving "active" is a failure.
    bool watching_ = false;
    std::unique_ptr<Operation> op_;
    void (UnitController::*pending_next_)() = nullptr;  // the step after LoadMembers
    // Outcomes waiting to be delivered from a defer source (never from inside run()).
    std::list<std::pair<HookKind, HookOutcome>> outcomes_;
    EventSourcePtr deliver_;
};

}  // namespace freeha
