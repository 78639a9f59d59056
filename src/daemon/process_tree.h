// freehad's own process tree as the services' scope without a delegated cgroup: a child subreaper whose fence kills every descendant.
//
// As a child subreaper (PR_SET_CHILD_SUBREAPER), freehad inherits every
// orphan below it: a daemon that a hook detached with setsid or a double
// fork becomes freehad's child instead of init's, so walking /proc from
// freehad's PID finds everything the hooks started. The fence sends SIGKILL
// to all of it, again to whatever a fork in flight added, until none is
// left. With several service groups each has a tree of its own that keeps
// to the processes whose environment names it (FREEHA_GROUP=, which every
// hook gets and what it starts inherits): orphans lose their parentage, so
// the environment is all that tells the groups apart. A process that cleared
// its environment belongs to every group's tree: any group's fence kills it
// and any group's stop waits for it (safe, never wrong the other way). The
// orphans that end are reaped by one OrphanReaper that every group's tree
// shares; the hooks themselves are reaped by their sd-event child sources,
// whose exit status it must never steal, so only children the hook runners
// do not watch are reaped.
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

// Whether a child of freehad is reaped by someone else (a child source).
using WatchedChild = std::function<bool(pid_t)>;

// Makes freehad a child subreaper and reaps, once a second, the orphans that
// have ended. Being a subreaper is the process's, and so are its orphans,
// whichever group's hook left them: one reaper serves every group's tree
// (with 64 groups, one wake-up a second instead of 64).
class OrphanReaper {
public:
    // nullptr with *why when freehad cannot become a subreaper, or when /proc
    // does not show its own PID namespace (the trees walk /proc from its PID).
    static std::shared_ptr<OrphanReaper> open(sd_event* event, WatchedChild watched, std::string* why);

    // Reaps the orphans that have exited, leaving the watched children alone.
    void reap();

private:
    explicit OrphanReaper(WatchedChild watched) : watched_(std::move(watched)) {}
    static int on_timer(sd_event_source* s, uint64_t usec, void* userdata);

    WatchedChild watched_;
    EventSourcePtr timer_;
};

class ProcessTree final : public ServiceScope {
public:
    // The tree holds all of freehad's descendants (one group) until keep_to().
    explicit ProcessTree(sd_event* event, std::shared_ptr<OrphanReaper> reaper);
    ~ProcessTree() override;

    std::string describe() const override;
    int kill() override;
    // Polled every kPollInterval while it waits.
    int when_empty(std::function<void()> emptied) override;

    // The processes below `root` that have not exited (zombies excluded), from /proc.
    static std::vector<pid_t> running_descendants(pid_t root);
    // Whether process `pid` belongs to service group `group`: its environment
    // says FREEHA_GROUP=`group`, or names no group at all (or cannot be read).
    static bool in_group(pid_t pid, const std::string& group);
    // Whether /proc/PID/environ reads empty (or cannot be read).
    static bool environment_empty(pid_t pid);

private:
    // running_descendants() of freehad that are this tree's.
    std::vector<pid_t> members() const;

public:
    // With several groups (from the start, or from a reload that added
    // some): the tree holds the processes of service `group` alone (see
    // above). `foreign`: whether `pid` is a hook that another group's runner
    // started (never this tree's, whatever /proc shows of it: during its
    // execve its environment can read empty).
    void keep_to(std::string group, WatchedChild foreign) {
        group_ = std::move(group);
        foreign_hook_ = std::move(foreign);
    }

private:
    // SIGKILL to members(); with several groups one whose environment reads
    // empty is killed only if it still does at the next pass (kPollInterval
    // later): a process in the middle of its execve reads so for a moment,
    // whichever group it is, while one started with an empty environment
    // (env -i) is every group's.
    void kill_members();

    WatchedChild foreign_hook_;
    std::vector<pid_t> empty_before_;  // read empty at the last pass
    int arm(Usec after);
    void check();
    static int on_timer(sd_event_source* s, uint64_t usec, void* userdata);

    sd_event* event_;
    std::shared_ptr<OrphanReaper> reaper_;
    std::string group_;  // "": every descendant
    // Polls while when_empty() waits.
    EventSourcePtr timer_;
    std::function<void()> emptied_;
    bool killing_ = false;  // every check kills again what is left
};

}  // namespace freeha
