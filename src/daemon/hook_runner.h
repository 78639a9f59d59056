// Runs FreeHA's hook scripts as child processes watched by the event loop.
//
// Each hook runs in its own session (so its process group can be signalled
// as a whole), inside the services' scope when there is one (the delegated
// cgroup, or freehad's process tree as a subreaper: even the daemons it
// detaches stay within reach), with an empty signal mask, default
// dispositions, stdin from /dev/null, a clean environment, and its output
// sent to the journal under the hook's name (or, outside journald or when
// journald cannot take a new stream at once, forwarded to freehad's log line
// by line: no hook start waits for journald). A hook that outlives its timeout
// gets SIGTERM on its process group, then SIGKILL after a grace period.
// stophasrv's end is reported only once nothing is left in the scope (what
// is left when StopTimeout= runs out is killed): a stop is confirmed by
// what is left, not by an exit code. The fence kills the whole scope (or,
// without one, the running hook's process group) and reports it done only
// once nothing is left running. Nothing here ever waits: exits arrive
// through sd_event_add_child.
#pragma once

#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include "bus/sd_ptr.h"
#include "core/effects.h"
#include "core/node.h"
#include "core/timespan.h"

namespace freeha {

class ServiceScope;

inline constexpr Usec kHookKillGrace = Usec(5 * 1000 * 1000);
// How often a fence whose kill or watch of the scope failed tries again.
inline constexpr Usec kKillRetry = Usec(100 * 1000);

// The start-up check FreeHA made: the three service hooks must exist and be
// executable; alerthasrv is optional. Returns an error message or "".
std::string check_hooks(const std::string& hooks_directory);

class HookRunner {
public:
    using Finished = std::function<void(HookKind kind, const HookOutcome& outcome)>;
    using Killed = std::function<void()>;

    // Output of hooks that have ended but whose background processes still
    // hold it (outside journald): the oldest is let go beyond this many.
    static constexpr std::size_t kMaxLingeringOutputs = 32;

    // `scope` may be null (neither a delegated cgroup nor a subreaper): process groups then.
    HookRunner(sd_event* event, std::string hooks_directory, ServiceScope* scope, Finished finished, Killed killed);
    ~HookRunner();

    // Creates the event sources every later call relies on.
    int init(std::string* error);
    // The service group whose hooks these are, when it is not the default
    // group: its lines then name it ("group NAME: ...", FREEHA_GROUP=).
    void set_group(std::string group) { group_ = std::move(group); }

    // Starts a service hook; its outcome arrives through `finished`, always
    // asynchronously (a spawn failure too).
    void run(HookKind kind, Usec timeout, const std::vector<std::string>& environment);
    // Ends the running service hook early: SIGTERM to its group, SIGKILL later.
    void cancel(HookKind kind);
    // The fence: SIGKILL to everything the services run (the scope, or
    // without one the running hook's process group); `killed` follows once
    // nothing of it is left, and a running hook's outcome ("killed") as usual.
    void kill_services();

    // Whether `pid` is a hook this runner reaps (through its child source).
    bool watches(pid_t pid) const;

    // Queues alerthasrv STATENUM STATENAME (run one at a time, in order), if installed.
    void alert(NodeState state, Usec timeout, const std::vector<std::string>& environment);

private:
    struct Child;
    struct OutputPipe;

    std::unique_ptr<Child> spawn(const std::string& name, const std::vector<std::string>& args, Usec timeout,
                                 const std::vector<std::string>& environment, std::string* error);
    // A file descriptor for the hook's stdout and stderr, and in *pipe_read the
    // read end to forward when it is a pipe of ours.
    UniqueFd output_for(const std::string& name, UniqueFd* pipe_read, std::string* error);
    void child_exited(Child* child, const siginfo_t& info);
    void kill_done();
    // Kills the scope and waits for it to be empty; retries on failure.
    void kill_scope();
    // stophasrv has ended: its outcome waits until the scope is empty.
    void confirm_stop(HookOutcome outcome, Usec deadline);
    void stop_confirmed();
    void kill_leftovers();
    void start_next_alert();
    void terminate(Child* child, std::string reason);
    void forward_output(UniqueFd read_end, const std::string& name, pid_t pid);
    void report_later(HookKind kind, HookOutcome outcome);
    // One line of the runner's: named by its group (set_group()).
    void say(int priority, const std::string& text) const;

    static int on_child(sd_event_source* s, const siginfo_t* si, void* userdata);
    static int on_timeout(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_kill(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_deliver(sd_event_source* s, void* userdata);
    static int on_kill_retry(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_leftovers_deadline(sd_event_source* s, uint64_t usec, void* userdata);

    sd_event* event_;
    std::string directory_;
    std::string group_;  // "" for the default group
    ServiceScope* scope_;
    Finished finished_;
    Killed killed_;
    std::unique_ptr<Child> service_;
    std::optional<HookKind> service_kind_;
    // A kill is under way: `killed` is owed once the scope is empty (or,
    // without one, once the killed hook is reaped); no alert starts meanwhile.
    bool killing_ = false;
    bool kill_ends_at_reap_ = false;  // no scope: the killed hook's reaping ends the kill
    // stophasrv has exited, and what it or starthasrv started still runs: its
    // outcome is reported once the scope is empty; StopTimeout='s end kills
    // what is left (leftovers_deadline_).
    std::optional<HookOutcome> stop_outcome_;
    EventSourcePtr leftovers_deadline_;
    EventSourcePtr kill_retry_;  // armed while a kill of the scope failed and is tried again
    bool killed_owed_ = false;        // delivered by the defer source
    std::unique_ptr<Child> alert_;
    pid_t exiting_ = -1;  // the hook whose exit is being handled, reaped by its source afterwards
    struct PendingAlert {
        NodeState state;
        Usec timeout;
        std::vector<std::string> environment;
    };
    std::list<PendingAlert> alert_queue_;
    std::list<std::unique_ptr<OutputPipe>> pipes_;
    // Outcomes delivered from a defer source created once, at init().
    EventSourcePtr deliver_;
    std::list<std::pair<HookKind, HookOutcome>> outcomes_;
};

}  // namespace freeha
