// The cgroup that holds a group's services in scripts mode: a child of freehad's delegated unit cgroup, emptied at once with cgroup.kill.
//
// Under systemd with Delegate=yes, freehad.service's cgroup is ours: freehad
// moves itself into its `supervisor` child (no processes in inner nodes) and
// starts every hook inside `services`, so that whatever a hook starts, even a
// daemon that setsid()s or double-forks away from the hook's process group,
// stays inside and dies with one write to cgroup.kill (Linux 5.14+). Without
// a delegated cgroup (freehad run by hand) there is none: freehad's process
// tree (ProcessTree) is the scope instead.
//
// Each service group has a cgroup of its own, siblings under the unit's
// cgroup, so that the fence of one kills nothing of another: `services` for
// the default group (as before groups existed), `services-NAME` for the
// group NAME. After freehad's death systemd kills whatever is left in the
// unit's cgroup, every group's included (KillMode=mixed, after ExecStopPost=).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <systemd/sd-event.h>

#include "bus/sd_ptr.h"
#include "daemon/service_scope.h"

namespace freeha {

class ServiceCgroup final : public ServiceScope {
public:
    // Takes over freehad's own cgroup when systemd delegated it (its
    // trusted.delegate or user.delegate marker says so) and makes the child
    // `leaf` (leaf_name()); else nullptr, with *why saying why not.
    static std::unique_ptr<ServiceCgroup> open(sd_event* event, const std::string& leaf, std::string* why);
    // The child cgroup of service group `group`: "services" for the default group, else "services-GROUP".
    static std::string leaf_name(const std::string& group);
    ~ServiceCgroup();

    std::string describe() const override { return "the cgroup " + services_; }
    // services/cgroup.procs, open for writing: a child writes "0" to it
    // before exec, so that everything it starts is inside from the first instant.
    int procs_fd() const override { return procs_.get(); }
    // cgroup.kill: atomic with respect to forks.
    int kill() override;
    // Watched through cgroup.events (inotify).
    int when_empty(std::function<void()> emptied) override;

private:
    ServiceCgroup(sd_event* event, std::string services, UniqueFd procs);
    static int on_events(sd_event_source* s, const struct inotify_event* e, void* userdata);
    bool populated() const;
    void check_empty();

    sd_event* event_;
    std::string services_;
    UniqueFd procs_;
    EventSourcePtr watch_;
    std::function<void()> emptied_;
};

}  // namespace freeha
