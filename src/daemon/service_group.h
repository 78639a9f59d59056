// One service group as the daemon drives it: its hooks or target, its floating addresses and its services' scope, reporting to the core with the group's index.
//
// The Manager keeps one per group of the node (Node::group(i), as
// Config::all_groups() orders them: [Services] first) and routes each
// effect to the one its `group` names. Each has its own HookRunner
// (HooksDirectory=, and alerthasrv from there in both modes), its own
// UnitController in target mode (Target=), its own FloatingAddresses
// (Address=) and, in scripts mode, its own scope: a cgroup of its own
// (ServiceCgroup::leaf_name()) or its share of freehad's process tree, so
// that the fence of one group kills nothing of another.
//
// A group that cannot run here (its hooks are missing, its target does not
// exist, its Address= device is missing or down) stands aside alone
// (Node::set_unavailable for its index); the others run. What it logs about
// itself names it: in the text ("group NAME: ...") and in the journal field
// FREEHA_GROUP=, except the default group, whose lines are as they were
// before groups existed.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus/sd_ptr.h"
#include "core/config.h"
#include "core/node.h"
#include "daemon/floating_addresses.h"
#include "daemon/hook_runner.h"
#include "daemon/log.h"
#include "daemon/service_scope.h"
#include "daemon/unit_controller.h"

namespace freeha {

class OrphanReaper;
class ProcessTree;

class ServiceGroup {
public:
    // What a group needs of the Manager: the core's effects carried out, the
    // loop's time, whether a pid is any group's hook (for the process tree's
    // reaping), the exit when systemd cannot be reached to stop a target, and
    // that the status must be written again.
    struct Links {
        std::function<void(Effects)> apply;
        std::function<Usec()> now;
        std::function<bool(pid_t)> any_hook_watches;
        std::function<void(const std::string& why)> fatal;
        std::function<void()> status_changed;  // something the status shows changed (an address conflict)
        // The reaper every group's process tree shares, opened at the first
        // call (nullptr with *why when it cannot be: see OrphanReaper::open).
        std::function<std::shared_ptr<OrphanReaper>(std::string* why)> orphan_reaper;
    };

    // `settings`: the group's own, from `config` (index `index` of the node's groups).
    ServiceGroup(sd_event* event, Node& node, std::size_t index, const Config& config, const GroupConfig& settings,
                 Links links);
    ~ServiceGroup();

    // Creates the scope (scripts mode), hook runner, unit controller (target
    // mode) and addresses (members); logs its own failure once, returns a negative errno.
    int setup(const Config& config);
    // Without a cgroup, from the moment the node has several groups: its
    // process tree holds this group's processes alone (FREEHA_GROUP=), not
    // every descendant of freehad; a reload that adds groups calls it.
    void keep_tree_to_own_processes();

    std::size_t index() const { return index_; }
    // A group before it was removed (effect::GroupRemoved): this one moves down.
    void set_index(std::size_t index) { index_ = index; }
    const std::string& name() const { return settings_.name; }
    bool is_default() const { return index_ == 0; }
    const GroupConfig& settings() const { return settings_; }
    bool target_mode() const { return !settings_.target.empty(); }
    bool watches(pid_t pid) const { return hooks_ && hooks_->watches(pid); }
    UnitController* units() { return units_.get(); }
    std::vector<AddressStatus> address_status() const;

    // "text" for the default group, "group NAME: text" for the others.
    std::string named(const std::string& text) const;
    // A line about this group: named(), with FREEHA_GROUP= for a group other than the default one.
    void log(int priority, const std::string& text) const;
    // The journal fields of a line about this group, after `fields`.
    std::vector<log::Field> fields(std::vector<log::Field> fields) const;

    // --- the core's effects for this group
    // A service hook (or the target's start/stop/check). `under_lease`: the group's lease is enforced.
    void run_hook(HookKind kind, Usec timeout, bool under_lease);
    void cancel(HookKind kind);
    // The fence: SIGKILL to the group's scope (or target), its addresses down.
    void kill();
    // Puts the addresses up as found-running services are claimed; keeps the
    // change for the hooks' environment.
    void state_changed(const effect::StateChanged& change);
    // alerthasrv STATENUM STATENAME for a change of the group's state.
    void alert(const effect::StateChanged& change);
    // Maintenance mode off on the holder: addresses lost meanwhile go up again, watched again.
    void maintenance_ended();

    // --- what the group lacks to run here
    // Removes what a previous run left of this group's addresses (start-up).
    void remove_leftover_addresses(bool maintenance);
    // Looks again whether the group can run here (hooks, Address= devices) and
    // tells the core when that changed.
    void check_available();
    // A reload: the group's new settings (the same group: its name, hooks
    // directory and target do not change). Returns a one-line refusal, or "".
    std::string prepare_reload(const GroupConfig& reread);
    // Takes the reloaded configuration (a group that is no longer in it
    // keeps its settings while the node runs it).
    void reconfigure(const Config& config);

private:
    // Puts the addresses up: before the start (a failure is that start's
    // failure), or as found-running services are claimed (a failure is
    // theirs). Reported to the core from the next loop iteration.
    enum class AddressFailure { FailsTheStart, FailsTheServices };
    bool addresses_up(AddressFailure failure);
    int open_addresses();
    int setup_scope(const Config& config);
    void on_address_conflict(const FloatingAddress& address, const std::string& mac);
    static int on_address_failure(sd_event_source* s, void* userdata);
    static int on_links_changed(sd_event_source* s, void* userdata);

    sd_event* event_;
    Node& node_;
    std::size_t index_;
    GroupConfig settings_;
    Links links_;
    // What hook_environment() needs of the node's configuration.
    Config node_config_;
    log::GroupLines lines_;  // named(), fields(), log(); handed to the adapters below
    std::unique_ptr<ServiceScope> scope_;     // scripts mode on a member: see service_scope.h
    ProcessTree* tree_ = nullptr;             // scope_, when it is freehad's process tree (no cgroup)
    std::unique_ptr<HookRunner> hooks_;       // service hooks in scripts mode; alerthasrv in both modes
    std::unique_ptr<UnitController> units_;   // target mode only
    std::unique_ptr<FloatingAddresses> addresses_;  // members only; open once Address= names any
    bool addresses_open_ = false;
    EventSourcePtr address_failure_source_;  // tells the core of an address that could not go up
    AddressFailure address_failure_ = AddressFailure::FailsTheStart;
    std::string address_failure_why_;
    EventSourcePtr links_changed_source_;  // check_available() from the loop, never from inside apply()
    std::string hooks_missing_;  // scripts mode: why the hooks cannot run ("" when they can)
    std::string target_missing_;  // target mode: why systemd cannot load Target= ("" when it can)
    bool begun_ = false;  // check_available() has run once: the core may be told
    std::string unavailable_;    // what the core was last told (set_unavailable)
    // The group's last change of state: the hooks' FREEHA_STATE and FREEHA_OLD_STATE.
    effect::StateChanged last_change_{NodeState::Initial, NodeState::Initial, "", 0, "", Phase::InitialProbe,
                                      Phase::InitialProbe};
};

}  // namespace freeha
