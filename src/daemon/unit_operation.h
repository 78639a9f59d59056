// Target mode's unit operations (start, stop, check, kill) as a pure step machine: the systemd calls to make next.
//
// No sd-bus and no clock: UnitController (the adapter) makes the calls this
// asks for and feeds back their replies, systemd's JobRemoved signals, the
// unit states it sees, "could not send", the loss and return of the bus,
// poll ticks and the timeout. It lives in src/daemon beside its only user
// because it speaks systemd's vocabulary (methods, job results, ActiveState),
// not the cluster's; it depends on nothing but the standard library, so it
// is table-tested like the core (tests/unit/test_unit_operation.cpp).
//
// The steps:
//   start = ResetFailedUnit, StartUnit(target), ReadMembers, ReadState of every unit
//   stop  = ReadMembers, StopUnit on the target and every member
//   check = ReadMembers, ReadState of every unit
//   kill  = StopUnit on the target (systemd cannot signal a target) and
//           KillUnit SIGKILL on every member, then wait until every unit is down
// A job ends well only with JobRemoved "done"; a job whose call got no reply
// (systemd re-executing) is settled by polling the unit's state. Nothing that
// was not sent ever counts as done: while the bus is away the operation waits
// (its timeout, or the adapter's FenceTimeout for a stop or kill, bounds that)
// and starts over from its first step once the bus is back. A call that could
// not be sent for any other reason ends the operation as a failure.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace freeha {

class UnitOperation {
public:
    enum class Kind { Start, Stop, Check, Kill };
    // ReadMembers is GetAll of the target's Unit properties (its dependency
    // lists); ReadState is Get of a unit's ActiveState.
    enum class Method { ResetFailedUnit, StartUnit, StopUnit, KillUnit, ReadMembers, ReadState };

    struct Call {
        std::uint64_t id;  // its reply is fed back with this id
        Method method;
        std::string unit;
    };

    struct Reply {
        enum class Status {
            Ok,
            Error,       // systemd said no: `text` says why
            NoReply,     // systemd did not answer (re-executing, the call timed out)
            NoSuchUnit,  // the unit is not loaded
        };
        Status status = Status::Ok;
        // Ok: the job path (StartUnit, StopUnit) or the ActiveState (ReadState). Otherwise the error text.
        std::string text;
        std::vector<std::string> members;  // Ok for ReadMembers: the units the target pulls in
    };

    struct Outcome {
        bool success;
        std::string description;
    };

    // What the adapter does after an input.
    struct Actions {
        std::vector<Call> calls;            // make these, in order
        bool poll = false;                  // fire on_poll() after a poll interval, unless already armed
        std::vector<std::string> warnings;  // log these
        std::optional<Outcome> outcome;     // the operation is over (for a kill: every unit is down)
    };

    // `members`: the units the target pulls in as last read (a kill does not read them again).
    UnitOperation(Kind kind, std::string target, std::vector<std::string> members, bool connected);

    Actions begin();
    Actions on_reply(std::uint64_t id, const Reply& reply);
    // The call was never sent; `connection_gone` when the bus connection is closed.
    Actions on_not_sent(std::uint64_t id, const std::string& error, bool connection_gone);
    Actions on_job_removed(const std::string& job, const std::string& result);
    // A unit's ActiveState as a signal (or the watch's own read) reported it.
    Actions on_state_seen(const std::string& unit, const std::string& active_state);
    Actions on_disconnected();
    Actions on_reconnected();
    Actions on_poll();
    Actions on_timeout();

    Kind kind() const { return kind_; }
    bool over() const { return step_ == Step::Over; }
    // Whether the operation can reach systemd (false from a lost connection until the next one).
    bool connected() const { return connected_; }
    // Whether the call is still awaited: a call of an earlier attempt is not sent, and its reply is ignored.
    bool awaits(std::uint64_t id) const { return in_flight_.count(id) != 0; }

    static std::string_view method_name(Method method);
    static bool is_up(const std::string& active_state) {
        return active_state == "active" || active_state == "reloading";
    }
    static bool is_down(const std::string& active_state) {
        return active_state == "inactive" || active_state == "failed";
    }

private:
    enum class Step { ResetFailed, StartJob, LoadMembers, StopJobs, Check, Kill, Over };

    // (Re)starts the operation from its first step, on a connection that is up.
    void restart(Actions& out);
    void send(Method method, const std::string& unit, Actions& out);
    void load_members(Actions& out);
    // Moves on once nothing the current step waits for is left.
    void advance(Actions& out);
    void finish(bool success, std::string description, Actions& out);
    void fail_once(std::string why);
    void job_queued(const std::string& unit, const std::string& job);
    void job_done(const std::string& unit, const std::string& result);
    void state_read(const std::string& unit, const Reply& reply, Actions& out);
    // A unit whose job's fate is unknown reached `active_state`: it may settle the job.
    void settle_unknown_job(const std::string& unit, const std::string& active_state);
    void kill_reply(const Call& call, const Reply& reply, Actions& out);
    bool asking(const std::string& unit) const;
    std::vector<std::string> units() const;
    std::string what(const Call& call) const;

    Kind kind_;
    std::string target_;
    std::vector<std::string> members_;
    bool connected_;
    Step step_ = Step::ResetFailed;
    std::uint64_t next_id_ = 1;
    // The current attempt's state: cleared when it starts over.
    std::map<std::uint64_t, Call> in_flight_;
    std::map<std::string, std::string> jobs_;    // job path -> unit, awaiting JobRemoved
    std::map<std::string, std::string> early_;   // job path -> result, removed before its reply came
    std::set<std::string> unknown_jobs_;         // units whose job call got no reply: their state decides
    std::set<std::string> unread_states_;        // Check: units whose state read got no reply
    bool members_unread_ = false;                // ReadMembers got no reply: read again
    std::set<std::string> awaiting_down_;        // Kill: units not yet seen down
    std::map<std::string, std::string> states_;  // Check: unit -> ActiveState
    std::string failure_;                        // the first thing that went wrong
};

}  // namespace freeha
