// A simulated cluster: real Node cores wired through a fake lossy network with
// a fake clock, hooks that take simulated time, crashes, pauses, partitions and reloads.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/etcd_keys.h"
#include "core/etcd_session.h"
#include "core/node.h"
#include "core/wire.h"

namespace freeha::sim {

struct HookBehaviour {
    Usec start_duration = 50 * kUsecPerMsec;
    Usec stop_duration = 50 * kUsecPerMsec;
    Usec monitor_duration = 5 * kUsecPerMsec;
    bool start_succeeds = true;
    bool monitor_hangs = false;  // the monitor never finishes by itself (the runner's timeout ends it)
    Usec monitor_timeout = 30 * kUsecPerSec;
};

// One service group on one simulated node: its services and its hook.
struct SimGroup {
    bool services_up = false;      // from the start hook's start to the stop hook's end
    bool services_failed = false;  // the services broke: monitor fails
    std::uint64_t starts = 0;
    std::optional<HookKind> running_hook;
    std::uint64_t hook_generation = 0;  // invalidates completions of an ended hook
};

// Backend=etcd: one etcd cluster, as its majority sees it. A lease expires
// TTL after the last renewal etcd received, deleting every key on it.
struct SimEtcd {
    struct Lease {
        std::string node;
        Usec expires;
    };
    struct Key {
        std::string value;
        std::int64_t lease = 0;
        std::int64_t create_revision = 0;
    };
    std::map<std::int64_t, Lease> leases;
    std::map<std::string, Key> keys;
    std::int64_t next_lease = 1;
    std::int64_t revision = 1;
    bool quorate = true;  // false: no majority, every call fails
    std::uint64_t leases_expired = 0;
};

// One node's link to etcd (its etcd::Session and watch): what waits for a
// reachable etcd, sent again at every renewal as the session retries.
struct SimEtcdLink {
    bool cut = false;             // the node cannot reach etcd
    std::int64_t lease = 0;       // the lease it renews (0: none yet)
    std::string record;           // its member record, as last published
    bool record_due = false;      // not put on the current lease yet
    std::set<std::string> claims;    // groups whose key it asks for, unanswered
    std::set<std::string> releases;  // groups whose key it deletes, not done yet
};

struct SimNode {
    std::string name;
    Role role = Role::Member;
    std::unique_ptr<Node> node;
    bool alive = false;
    bool paused = false;
    // What arrived while paused, as a frozen daemon finds it in its socket
    // when it wakes (bounded like a receive buffer).
    std::vector<std::vector<std::uint8_t>> queued;
    Usec resumed_at;  // when the last pause ended
    Usec started_at;  // when the daemon last started
    // The machine's wall clock runs at now() + wall_offset (clock jumps move
    // it); it only feeds the incarnation, kept as freehad keeps it on disk.
    std::int64_t wall_offset = 0;
    std::optional<std::uint64_t> stored_incarnation;
    // Its configuration: the cluster's base until reconfigure() changes it;
    // a reload applies it at once, a restart starts with it.
    NodeSettings settings;
    // DIR/promise-horizon as freehad keeps it (state_store.h): raised at
    // start and by a reload to a longer DeadTime=, lowered to the longest
    // DeadTime= of the run once that run has waited out the old horizon.
    Usec promise_horizon;
    Usec longest_dead_time;  // of the current run
    Usec horizon_lowers_at;  // when the current run lowers it
    std::vector<SimGroup> groups;  // as settings.groups: the default group first
    std::uint64_t incarnation = 0;
    HookBehaviour hooks;
    Maintenance maintenance;  // DIR/maintenance as freehad keeps it: a restart starts with it
    bool machine_down = false;  // Command::Leave: the machine shuts down once freehad has exited
    std::vector<effect::StateChanged> history;
    std::optional<int> exit_code;
    // The core's next_wakeup() as last asked, kept until the core is called
    // again: it stays right until that time comes (as the daemon's timer does).
    std::optional<Usec> wakeup;
    SimEtcdLink etcd;
};

class SimCluster {
public:
    SimCluster(std::vector<std::string> names, NodeSettings base, std::uint64_t seed = 1);

    Usec now() const { return now_; }
    SimNode& operator[](const std::string& name) { return nodes_.at(name); }
    const SimNode& operator[](const std::string& name) const { return nodes_.at(name); }
    std::vector<std::string> names() const;

    void start(const std::string& name, bool force_start = false);
    void start_all();
    void crash(const std::string& name);  // the machine dies: the services with it
    // freehad alone restarts (killed, or its unit restarted): the services it
    // started run on, outside its control, as they would outside its cgroup.
    void restart_daemon(const std::string& name);
    static constexpr std::size_t kQueueLimit = 1000;

    void pause(const std::string& name) { nodes_.at(name).paused = true; }
    void resume(const std::string& name);
    void jump_clock(const std::string& name, std::int64_t usec) { nodes_.at(name).wall_offset += usec; }
    void command(const std::string& name, Command c);
    // freehactl switchover [TARGET] on that node: "" or the daemon's refusal.
    std::string switchover(const std::string& name, const std::string& target, std::size_t group = 0);
    // freehactl maintenance on|off on that node: "" or the daemon's refusal.
    std::string set_maintenance(const std::string& name, bool on);
    // freehactl reload-config after the node's configuration became `s`
    // (timings and ExpectedNodes=); a node that is down starts with it.
    void reconfigure(const std::string& name, const NodeSettings& s);

    // Link control. Links are directed; a partition cuts both directions.
    void cut(const std::string& from, const std::string& to) { cut_.insert({from, to}); }
    void partition(const std::set<std::string>& side);  // cuts every link crossing the side's border
    void heal() { cut_.clear(); }
    void heal(const std::string& from, const std::string& to) { cut_.erase({from, to}); }
    void set_loss(double probability) { loss_ = probability; }
    void inject(const std::string& to, std::vector<std::uint8_t> datagram);

    // Backend=etcd (NodeSettings::backend): the node's link to etcd, and etcd's majority.
    void cut_etcd(const std::string& name) { nodes_.at(name).etcd.cut = true; }
    void heal_etcd(const std::string& name);
    void set_etcd_quorate(bool quorate);
    const SimEtcd& etcd() const { return etcd_; }
    // The node whose holder key of `group` exists ("" when none).
    std::string etcd_holder(const std::string& group = "default") const;

    // Runs the simulation until `until`; calls `check` after every step
    // (which must not change a node: the wake-ups are kept across steps).
    void run_until(Usec until, const std::function<void()>& check = {});
    void run_for(Usec span, const std::function<void()>& check = {}) { run_until(now_ + span, check); }

    // Nodes whose services of group `group` are up right now.
    std::vector<std::string> services_up(std::size_t group = 0) const;
    // services_up().size() and services_up() == nodes, without building the list (checks run after every step).
    std::size_t services_up_count(std::size_t group = 0) const;
    bool services_up_on(const std::vector<std::string>& nodes, std::size_t group = 0) const;
    std::size_t group_count() const { return base_.groups.size(); }
    // Nodes whose core is RUNNING.
    std::vector<std::string> running() const;

    // The steps run so far (events and wake-ups), and with FREEHA_SIM_DIGEST
    // set, a digest of them and of every effect the cores returned: a change
    // meant only to make the simulation faster must leave both as they were.
    std::uint64_t steps() const { return steps_; }
    std::uint64_t digest() const { return digest_; }

private:
    // A datagram to deliver to `to`, or any other action. The heap moves only
    // these small records; what they refer to stays in place in slots_ and
    // datagrams_ (a datagram is shared by all its receivers).
    struct Event {
        Usec at;
        std::uint64_t order;
        SimNode* to;         // a delivery: datagrams_[slot]; else actions_[slot]
        std::uint32_t slot;
        // The heap's order: the earliest first, and events at one time in the order they were scheduled.
        bool operator>(const Event& o) const { return at != o.at ? at > o.at : order > o.order; }
    };
    struct SharedDatagram {
        std::vector<std::uint8_t> bytes;
        std::size_t receivers = 0;  // deliveries still to come; 0: the slot is free
    };

    void schedule(Usec at, std::function<void()> action);
    void push_event(Event e);
    void receive(SimNode& t, const std::vector<std::uint8_t>& datagram);
    void apply(SimNode& n, Effects effects);
    void finish_hook(SimNode& n, std::size_t group, HookKind kind, std::uint64_t generation, bool success,
                     const char* why);
    void confirm_kill(SimNode& n, std::size_t group, std::uint64_t incarnation);
    // The daemon's hooks and services end with it.
    static void end_hooks(SimNode& n);
    void deliver(const std::string& from, std::vector<std::uint8_t> datagram);

    // --- Backend=etcd
    bool etcd_mode() const { return base_.backend == Backend::Etcd; }
    bool reaches_etcd(const SimNode& n) const { return n.alive && !n.paused && !n.etcd.cut && etcd_.quorate; }
    // The session's renewal (and the grant of a new lease), every interval, from the node's start on.
    void etcd_renew(SimNode& n, std::uint64_t incarnation);
    // What waits in the node's link: its record, its claims and releases.
    void etcd_flush(SimNode& n);
    void etcd_expire();
    // Every node's watch sees the keys as they are now (a moment later).
    void etcd_changed();
    void etcd_show(SimNode& n);
    void etcd_delete_lease(std::int64_t lease);
    // The answer to a claim reaches the node a moment later (once it thaws, if paused).
    void etcd_answer(SimNode& n, std::uint64_t incarnation, const std::string& group, bool won,
                     const std::string& holder);
    std::string etcd_holder_key(const std::string& group) const { return etcd_layout_.holder_key(group); }

    NodeSettings base_;
    std::map<std::string, SimNode> nodes_;
    std::vector<SimNode*> in_order_;  // nodes_' nodes in its order, for the loops of every step
    std::vector<Event> events_;  // a heap (std::push_heap) of std::greater<Event>
    std::vector<std::function<void()>> actions_;
    std::vector<std::uint32_t> free_actions_;
    std::vector<SharedDatagram> datagrams_;
    std::vector<std::uint32_t> free_datagrams_;
    std::uint64_t order_ = 0;
    Usec now_ = 1 * kUsecPerSec;
    std::mt19937_64 rng_;
    double loss_ = 0.0;
    std::set<std::pair<std::string, std::string>> cut_;
    bool trace_;  // FREEHA_SIM_TRACE set: print every state change and hook to stderr
    bool digesting_;  // FREEHA_SIM_DIGEST set: keep digest_
    SimEtcd etcd_;
    etcd::KeyLayout etcd_layout_;
    std::uint64_t steps_ = 0;
    std::uint64_t digest_ = 0xcbf29ce484222325ULL;  // FNV-1a
    void mix(const void* data, std::size_t size);
    template <typename T>
    void mix(const T& v) { mix(&v, sizeof v); }
    void mix(const std::string& s) { mix(s.size()); mix(s.data(), s.size()); }
    void mix_effect(const Effect& e);
    static constexpr Usec kWallEpoch = 1'780'000'000ULL * kUsecPerSec;  // 2026
};

}  // namespace freeha::sim
