// What the services run in, in scripts mode: one kill reaches everything the hooks started, and its emptiness proves a stop.
//
// Two kinds: freehad's delegated `services` cgroup under systemd
// (ServiceCgroup), and without one freehad's own process tree, held
// together by making freehad a child subreaper (ProcessTree). Either one
// makes the fence complete; without either, a daemon that a hook detached
// (setsid, double fork) escapes it, and quorum mode refuses to start.
#pragma once

#include <functional>
#include <string>

namespace freeha {

class ServiceScope {
public:
    virtual ~ServiceScope() = default;

    // "the cgroup /sys/fs/cgroup/...", "freehad's process tree": for log lines.
    virtual std::string describe() const = 0;
    // A file descriptor a hook writes "0" to before exec to enter the scope,
    // or -1 when a child is inside by being forked.
    virtual int procs_fd() const { return -1; }
    // SIGKILL to every process inside, and to whatever one of them forks
    // until all are gone. Returns a negative errno.
    virtual int kill() = 0;
    // Calls `emptied` (once) when no process is left inside, at once if none
    // is; a later call replaces an earlier one's `emptied`. Returns a negative
    // errno when the scope cannot be watched.
    virtual int when_empty(std::function<void()> emptied) = 0;
};

}  // namespace freeha
