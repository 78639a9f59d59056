// freehad's own process tree as the services' scope without a delegated cgroup: a child subreaper whose fence kills every descendant.
//
// As a child subreaper (PR_SET_CHILD_SUBREAPER), freehad inherits every
// orphan below it: a daemon that a hook detached with setsid or a double
// fork becomes freehad's child instead of init's, so walking /proc from
// freehad's PID finds everything the hooks started. The fence sends SIGKILL
// to all of it, again to whatever a fork in flight added, until none is
// left. The orphans that end are reaped here; the hooks themselves are
// reaped by their sd-event child sources, whose exit status this must never
// steal, so only children the hook runner does not watch are reaped.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <sys/types.h>
#include <systemd/sd-event.h>

#include "bus/sd_ptr.h"
#include "core/timespan.h"
#include "daemon/service_scope.h"

namespace freeha {

class ProcessTree final : public ServiceScope {
public:
    // Whether a child of freehad is reaped by someone else (a child source).
    using Watched = std::function<bool(pid_t)>;

    // Makes freehad a child subreaper; nullptr with *why when it cannot be,
    // or when /proc does not show freehad's own PID namespace.
    static std::unique_ptr<ProcessTree> open(sd_event* event, Watched watched, std::string* why);
    ~ProcessTree() override;

    std::string describe() const override { return "freehad's process tree (a child subreaper)"; }
    int kill() override;
    // Polled every kPollInterval while it waits.
    int when_empty(std::function<void()> emptied) override;

    // The processes below `root` that have not exited (zombies excluded), from /proc.
    static std::vector<pid_t> running_descendants(pid_t root);

private:
    ProcessTree(sd_event* event, Watched watched);
    int arm(Usec after);
    // Reaps the orphans that have exited, leaving the watched children alone.
    void reap_orphans();
    void check();
    static int on_timer(sd_event_source* s, uint64_t usec, void* userdata);

    sd_event* event_;
    Watched watched_;
    // Reaps orphans now and then; polls while when_empty() waits.
    EventSourcePtr timer_;
    std::function<void()> emptied_;
    bool killing_ = false;  // every check kills again what is left
};

}  // namespace freeha
