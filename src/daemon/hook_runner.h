// Runs FreeHA's hook scripts as child processes watched by the event loop.
//
// Each hook runs in its own session (so its process group can be signalled
// as a whole), with an empty signal mask, default dispositions, stdin from
// /dev/null, a clean environment, and stdout/stderr forwarded to the log line
// by line, tagged with the hook's name. A hook that outlives its timeout gets
// SIGTERM on its process group, then SIGKILL after a grace period. Nothing
// here ever waits: exits arrive through sd_event_add_child.
#pragma once

#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

#include "core/effects.h"
#include "core/node.h"
#include "core/timespan.h"
#include "bus/sd_ptr.h"

namespace freeha {

inline constexpr Usec kHookKillGrace = 5 * kUsecPerSec;

// The start-up check FreeHA made: the three service hooks must exist and be
// executable; alerthasrv is optional. Returns an error message or "".
std::string check_hooks(const std::string& hooks_directory);

class HookRunner {
public:
    using Finished = std::function<void(HookKind kind, const HookOutcome& outcome)>;

    HookRunner(sd_event* event, std::string hooks_directory, Finished finished);
    ~HookRunner();

    // Starts a service hook; its outcome arrives through `finished`, always
    // asynchronously (a spawn failure too).
    void run(HookKind kind, Usec timeout, const std::vector<std::string>& environment);
    // Ends the running service hook early: SIGTERM to its group, SIGKILL later.
    void cancel(HookKind kind);
    // Ends it now: SIGKILL to its whole process group (the fence escalation).
    void kill(HookKind kind);

    // Queues alerthasrv STATENUM STATENAME (run one at a time, in order), if installed.
    void alert(NodeState state, Usec timeout, const std::vector<std::string>& environment);

private:
    struct Child;
    struct OutputPipe;

    std::unique_ptr<Child> spawn(const std::string& name, const std::vector<std::string>& args, Usec timeout,
                                 const std::vector<std::string>& environment, std::string* error);
    void child_exited(Child* child, const siginfo_t& info);
    void start_next_alert();
    void terminate(Child* child, std::string reason);
    void forward_output(UniqueFd read_end, const std::string& name, pid_t pid);

    static int on_child(sd_event_source* s, const siginfo_t* si, void* userdata);
    static int on_timeout(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_kill(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_spawn_failed(sd_event_source* s, void* userdata);

    sd_event* event_;
    std::string directory_;
    Finished finished_;
    std::unique_ptr<Child> service_;
    std::optional<HookKind> service_kind_;
    std::unique_ptr<Child> alert_;
    struct PendingAlert {
        NodeState state;
        Usec timeout;
        std::vector<std::string> environment;
    };
    std::list<PendingAlert> alert_queue_;
    std::list<std::unique_ptr<OutputPipe>> pipes_;
    EventSourcePtr spawn_failure_;
    std::optional<HookOutcome> spawn_failure_outcome_;
};

}  // namespace freeha
