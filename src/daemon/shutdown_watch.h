// Tells a machine shutdown from a plain stop of freehad: logind's PrepareForShutdown (under a delay lock) and systemd's queued shutdown jobs.
//
// A reboot, power-off, halt or kexec (and, for a `systemd --user` manager,
// its exit) is seen three ways, whichever comes first:
// - logind (system bus only): freehad holds a "delay" inhibitor lock, so
//   logind announces PrepareForShutdown(true) and waits (InhibitDelayMaxSec=
//   at most) before it queues the shutdown; release() lets it go on once the
//   node has handed over. PrepareForShutdown(false) (canceled) takes the
//   lock again.
// - systemd's JobNew for shutdown.target or exit.target: the paths that
//   bypass logind (`systemctl start reboot.target`, a user manager's exit).
// - at SIGTERM, one ListJobs: the JobNew may still be unread when systemd's
//   stop of freehad.service arrives.
// Nothing here blocks: every call is asynchronous on the daemon's loop, and
// a bus, systemd or logind that never answers only means that a shutdown
// looks like a plain stop (FreeHA's grace: the peers wait a dead time).
#pragma once

#include <functional>
#include <string>

#include <systemd/sd-bus.h>

#include "bus/sd_ptr.h"
#include "core/config.h"

namespace freeha {

class ShutdownWatch {
public:
    // `how`: what told it ("logind's PrepareForShutdown", "a job for shutdown.target").
    using ShutdownCallback = std::function<void(const std::string& how)>;

    // `plain_stop`: check_queued_jobs() found no shutdown job (or could not tell).
    ShutdownWatch(BusKind kind, ShutdownCallback shutdown, std::function<void()> plain_stop);
    ~ShutdownWatch();

    // A (new) connection: installs the matches, subscribes to systemd's job
    // signals and, on the system bus, takes the delay lock if none is held.
    // Returns a negative errno and sets *error on failure.
    int attach(sd_bus* bus, std::string* error);
    // The connection went away. A lock already taken stays held (it is a
    // file descriptor, not a bus object).
    void detach();
    // SIGTERM arrived: asks systemd once whether a shutdown job is queued;
    // the answer comes as `shutdown` or `plain_stop`. False when no question
    // could be sent (no bus, or a shutdown already reported).
    bool check_queued_jobs();
    // The node has left (or exits): logind may carry on with the shutdown.
    void release();

private:
    void take_lock();
    void report(const std::string& how);

    static int on_prepare_for_shutdown(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_inhibit_reply(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_job_new(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_list_jobs_reply(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_subscribe_reply(sd_bus_message* m, void* userdata, sd_bus_error* error);

    BusKind kind_;
    ShutdownCallback shutdown_;
    std::function<void()> plain_stop_;
    sd_bus* bus_ = nullptr;  // nullptr while detached
    BusSlotPtr prepare_slot_;
    BusSlotPtr job_new_slot_;
    BusSlotPtr subscribe_slot_;
    BusSlotPtr inhibit_slot_;
    BusSlotPtr list_jobs_slot_;
    int lock_fd_ = -1;            // logind's delay lock, while held
    bool released_ = false;       // release(): never taken again
    bool reported_ = false;       // the shutdown was reported (once)
    bool told_no_logind_ = false; // logged once
    bool told_no_systemd_ = false;
};

}  // namespace freeha
