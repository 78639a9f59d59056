// The daemon: one sd-event loop wiring the node core to its adapters (channels, hooks or units, bus, status, notify, journal).
//
// The HA function (heartbeats, election, hooks, fencing) never waits on
// D-Bus: in scripts mode the node starts, and READY=1 goes out, as soon as
// the sockets are bound; the bus connects (and reconnects) on its own and
// only costs the API while it is away. In target mode the bus is how the
// services are driven, so the node starts once the bus answers.
//
// Threads: everything here runs on the main loop except the org.freeha1 API,
// which has a thread and a bus connection of its own (ApiThread): no bus
// client can make this loop read its messages. A second connection on this
// loop, which owns kUnitControlBusName (the shipped policy lets no one but
// root send it anything), drives systemd in target mode and watches for a
// machine shutdown (ShutdownWatch) in both modes.
//
// Member order matters: the loop is declared first so that it is destroyed
// last, after every source that refers to it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bus/manager_object.h"
#include "bus/sd_ptr.h"
#include "core/config.h"
#include "core/node.h"
#include "daemon/api_thread.h"
#include "daemon/bus_connection.h"
#include "daemon/cmdline.h"
#include "daemon/etcd_backend.h"
#include "daemon/notify.h"
#include "daemon/service_group.h"
#include "daemon/shutdown_watch.h"
#include "daemon/status_writer.h"
#include "daemon/udp_channel.h"

namespace freeha {

class Manager {
public:
    // `cmdline` is kept to re-read the same configuration on ReloadConfig();
    // `auth_keys` are AuthKeyFile='s keys (empty without one); `state_directory`
    // keeps an admin's standby and the promise horizon across restarts;
    // `promise_horizon` is the horizon the previous run left there
    // (claim_promise_horizon()): the node backs no claim before it has passed.
    Manager(Config config, CommandLine cmdline, auth::KeySet auth_keys, std::uint64_t incarnation,
            std::string state_directory, Usec promise_horizon);
    ~Manager();

    // Sets up everything, runs the loop until the node exits; returns the exit status.
    int run();

private:
    // Each step logs its own failure once and returns a negative errno.
    int setup();
    int setup_loop();
    int setup_channels();
    // Backend=etcd: the link to etcd instead of the heartbeat channels.
    int setup_etcd();
    // What the link reports, handed to the core (and logged once where it is handled).
    void on_etcd_event(const etcd::Event& e);
    void on_etcd_view();
    int setup_services();
    // A reload: sets up a ServiceGroup for each group of `reread` the node
    // lacks, in the order the core appends them; "" or why the reload is
    // refused (nothing added then).
    std::string add_groups(const Config& reread);
    // effect::GroupRemoved: the core has stopped and dropped the group.
    void remove_group(const effect::GroupRemoved& removed);
    int setup_timers();
    void setup_bus();
    // Lowers the unit's WatchdogSec= to what the lease allows (DeadTime= less
    // 2 x Interval=), so that the watchdog ends a hung holder before a peer may
    // take over, and pings it from the loop; again after a reload.
    void arm_watchdog();
    // Announces READY and starts the node.
    void begin();
    void bus_fatal(const std::string& why);
    // The machine shuts down (`how`: what said so): hand over, then leave.
    void on_machine_shutdown(const std::string& how);
    // SIGTERM's stop, once it is known not to be a machine shutdown (or
    // kShutdownQueryWait has passed): see shut_down().
    void stop_and_exit();
    static int on_shutdown_query_expired(sd_event_source* s, uint64_t usec, void* userdata);
    // Stops the services (if any) and exits with `code`; before start-up, exits at once.
    void shut_down(int code);
    std::optional<std::string> handle(const BusRequest& request);
    std::optional<std::string> handle_group(const BusRequest& request, Usec now);
    std::optional<std::string> reload_config();
    Status snapshot() const;
    Usec now() const;
    void apply(Effects effects);
    // The outward half of the state-change chokepoint (Node::set_phase is the
    // inward half): log with MESSAGE_ID, alert hook, STATUS=, status dirty.
    void apply_state_change(const effect::StateChanged& change);
    void apply_notice(const effect::Notice& notice);
    // Keeps the marker that `freehad --clean-up` (ExecStopPost=) reads true:
    // present while the services of any group may run here (scripts mode, under the unit).
    void track_services_marker(const effect::StateChanged& change);
    void set_services_marker(bool may_run);
    void run_hook(std::size_t group, HookKind kind);
    // Whether any group's services run, start or stop here.
    bool holds_any() const;
    // Whether some group runs in target mode (true) or in scripts mode (false).
    bool any_group_in_mode(bool target_mode) const;
    void send(const std::vector<std::uint8_t>& datagram);
    std::string status_line() const;
    void flush_status();
    void arm_core_timer();

    void on_signal(int signo);
    static int on_signal_cb(sd_event_source* s, const signalfd_siginfo* si, void* userdata);
    static int on_core_timer(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_status_timer(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_watchdog_timer(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_horizon_passed(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_post(sd_event_source* s, void* userdata);

    EventPtr event_;
    Config config_;
    CommandLine cmdline_;
    std::string state_directory_;
    Node node_;
    Notifier notifier_;
    StatusWriter status_writer_;
    std::vector<std::unique_ptr<UdpChannel>> channels_;
    // Backend=etcd: the link to etcd (channels_ stay empty), and where its keys are.
    std::unique_ptr<EtcdBackend> etcd_;
    etcd::KeyLayout etcd_keys_{""};
    bool etcd_conflict_logged_ = false;
    // One per group of node_, in its order (the default group first): each
    // drives its group's hooks or target, addresses and scope.
    std::vector<std::unique_ptr<ServiceGroup>> groups_;
    ServiceGroup::Links group_links_;
    std::weak_ptr<OrphanReaper> orphan_reaper_;  // shared by the groups' process trees (no cgroup), while any has one
    sd_bus* units_bus_connection_ = nullptr;  // units_bus_'s connection while it is up (for a group a reload adds)
    std::vector<std::unique_ptr<ServiceGroup>> removed_groups_;  // destroyed from on_post()
    // The loop's own bus connection: drives systemd in target mode, and watches for a machine shutdown.
    std::unique_ptr<BusConnection> units_bus_;
    std::unique_ptr<ShutdownWatch> shutdown_watch_;
    EventSourcePtr shutdown_query_timer_;  // armed while SIGTERM's stop waits for systemd's answer
    std::unique_ptr<ApiThread> api_;
    std::vector<EventSourcePtr> signal_sources_;
    EventSourcePtr core_timer_;
    EventSourcePtr status_timer_;
    EventSourcePtr watchdog_timer_;  // while the unit has a watchdog
    Usec watchdog_ping_every_{};
    EventSourcePtr horizon_timer_;  // once the previous run's promises have run out
    Usec stored_horizon_;           // what DIR/promise-horizon holds
    Usec longest_dead_time_;        // the longest DeadTime= this run has promised with
    EventSourcePtr post_;

    bool status_dirty_ = true;
    bool begun_ = false;
    int exit_code_ = 0;  // non-zero once a fatal error has been met
    bool reloading_ = false;  // RELOADING=1 sent; READY=1 owed once the stop ends
    std::string runtime_directory_;  // the unit's, for the services marker; "" when there is none to keep
    bool services_marker_ = false;   // the marker exists
    // A marker left by the previous daemon: its clean-up did not confirm.
    // It stays until the start-up probe, or the clean-up after it, settles it.
    bool inherited_marker_ = false;
    std::string maintenance_unsaved_;  // why the last MaintenanceChanged could not be stored ("" when it was)
    // Each group's phase as its last StateChanged said (the services marker
    // is judged on them all; the core may have moved on within the batch).
    std::vector<Phase> group_phases_;
};

}  // namespace freeha
