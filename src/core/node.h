// The node state machine: FreeHA's rules plus terms and leases, as a deterministic function of events and time.
//
// Every entry point takes the current CLOCK_MONOTONIC time and returns the
// effects to carry out, in order. The node never reads a clock and does no
// I/O; the daemon arms one timer for next_wakeup() and calls on_timer().
// Its phase (see phase.h) says what it runs and waits for; set_phase() is
// the one chokepoint for changing it. Claims, promises and leases are in
// claims.h, the status projection in node_status.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "core/auth.h"
#include "core/claims.h"
#include "core/effects.h"
#include "core/etcd_keys.h"
#include "core/group.h"
#include "core/history.h"
#include "core/holder.h"
#include "core/membership.h"
#include "core/placement.h"
#include "core/phase.h"
#include "core/state.h"
#include "core/status.h"
#include "core/timespan.h"
#include "core/voter.h"
#include "core/wire.h"

namespace freeha {

enum class NoQuorumPolicy { Stop, Ignore };
inline constexpr int kNoQuorumPolicyCount = 2;
static_assert(kNoQuorumPolicyCount == static_cast<int>(NoQuorumPolicy::Ignore) + 1);
inline constexpr EnumNames<NoQuorumPolicy, kNoQuorumPolicyCount> kNoQuorumPolicyNames{"stop", "ignore"};
std::string_view to_string(NoQuorumPolicy p);

// Where membership, election and leases come from ([Cluster] Backend=): the
// nodes' own heartbeats and votes, or an etcd cluster's leases and keys.
enum class Backend { Heartbeat, Etcd };
inline constexpr int kBackendCount = 2;
static_assert(kBackendCount == static_cast<int>(Backend::Etcd) + 1);
inline constexpr EnumNames<Backend, kBackendCount> kBackendNames{"heartbeat", "etcd"};
std::string_view to_string(Backend b);

// One service group as this node runs it ([Services] is the default group, [Group NAME] the others).
struct GroupSettings {
    std::string name = "default";
    // Target mode: the unit that stands for the services (messages name it
    // instead of the hasrv scripts); empty in scripts mode.
    std::string services_target;
    Usec monitor_interval = 2 * kUsecPerSec;
    // Which node the group's election prefers (placement.h): FreeHA's
    // alphabetical rule for the default group alone, else spread by name.
    PlacementPolicy placement = PlacementPolicy::Alphabetical;
    std::vector<std::string> nodes;  // Nodes=: the admin's order (PlacementPolicy::Listed)
};

struct NodeSettings {
    std::string cluster_name;
    std::string node_name;
    std::uint64_t incarnation = 0;  // unique per daemon start, never smaller than the previous one
    unsigned expected_nodes = 2;
    Role role = Role::Member;
    NoQuorumPolicy no_quorum_policy = NoQuorumPolicy::Stop;
    Backend backend = Backend::Heartbeat;
    Usec interval = 200 * kUsecPerMsec;
    Usec dead_time = 1 * kUsecPerSec;
    // The longest DeadTime= the previous daemon on this node may have
    // promised with (the daemon keeps it in its state directory): a
    // restarted node backs nothing until the longer of it and dead_time has
    // passed, so that every promise its predecessor stated has run out.
    Usec previous_dead_time;
    Usec init_dead = 30 * kUsecPerSec;
    // The graceful stop's share of a lease, and how long any other stop that
    // must be quick (outranked, quorum lost) may take before the services are
    // killed. See freeha-safety(7).
    Usec fence_timeout = 500 * kUsecPerMsec;
    std::size_t channel_count = 1;
    // The channels' names (Channel= as it spells them: the status and the
    // journal name them so); a channel without one is named by its index.
    std::vector<std::string> channel_names;
    // The service groups, the default group first: its state is the one the
    // heartbeat's header carries (and all that wire version 3 carries).
    std::vector<GroupSettings> groups{GroupSettings{}};
    auth::KeySet auth_keys;  // non-empty: sign every heartbeat with the first, accept only ones signed with any
    std::string release = "0";  // this build's version (PROJECT_VERSION), announced to peers
};

// Quorum rules apply to clusters of more than 2 expected nodes (an arbitrator
// counts) that stop on quorum loss: only then is a minority sure to stop, and
// only then does a holder need a lease from a majority.
bool quorum_rules_apply(unsigned expected_nodes, NoQuorumPolicy policy);
// ... and with Backend=etcd, where every holder's lease is etcd's, whatever ExpectedNodes= says.
bool quorum_rules_apply(const NodeSettings& s);
LeaseTimings lease_timings(const NodeSettings& s);

// The incarnation of a new daemon start: above the previous one whatever the
// wall clock did, and above any earlier start whose record was lost as long
// as the wall clock is roughly right. Except without a key (`authenticated`
// false) when the previous one is more than Node::kIncarnationFuture ahead
// of the clock (it was taken while the clock ran far ahead): peers refuse
// such an incarnation as forged, so the new one starts from the clock. That
// gives up no replay protection: without a key anyone can forge a
// heartbeat, and peers took the earlier incarnation for forged anyway (or,
// had their clocks been as far ahead, accept the lower one once its record
// has timed out, a dead time after the restart). With a key, peers accept
// any higher incarnation and refuse a lower one for good (replays), so the
// counter only goes up.
std::uint64_t next_incarnation(std::optional<std::uint64_t> previous, std::uint64_t realtime_usec,
                               bool authenticated);

struct HookOutcome {
    bool success = false;
    std::string description;  // "exited with status 1", "timed out after 30s", ...
};

class Node {
public:
    // Without a key, a peer announcing an incarnation this far beyond the
    // wall clock (as this node estimates it) is refused as forged.
    static constexpr Usec kIncarnationFuture = Usec(24ULL * 3600 * 1000 * 1000);

    explicit Node(NodeSettings settings);

    // Daemon start. force_start is FreeHA's -m: start services at once without
    // checking the other nodes.
    Effects start(Usec now, bool force_start);
    // Before start(): the admin's standby from before a restart still holds
    // (the daemon keeps it in its state directory), so the node never claims
    // and tells its peers so in its first heartbeat.
    void keep_standby() {
        if (!started_) standby_ = true;
    }
    // Before start(): maintenance mode as this node last knew it (the daemon
    // keeps it in its state directory). A node that starts in maintenance
    // runs no start-up probe; peers' newer decisions override it.
    void keep_maintenance(Maintenance m) {
        if (!started_) maintenance_ = m;
    }

    // A raw datagram from channel `channel`: decoded, checked and counted here.
    Effects on_datagram(std::span<const std::uint8_t> datagram, std::size_t channel, Usec now);
    // An already decoded and verified heartbeat.
    Effects on_heartbeat(const wire::Heartbeat& hb, std::size_t channel, Usec now);
    // The entry points about one service group take its index in
    // NodeSettings::groups; without one, they are about the default group.
    Effects on_hook_finished(std::size_t group, HookKind kind, const HookOutcome& outcome, Usec now);
    Effects on_hook_finished(HookKind kind, const HookOutcome& outcome, Usec now) {
        return on_hook_finished(0, kind, outcome, now);
    }
    // KillServices is done: nothing the services ran is left.
    Effects on_services_killed(std::size_t group, Usec now);
    Effects on_services_killed(Usec now) { return on_services_killed(0, now); }
    Effects on_command(Command command, Usec now);
    // What group `group` lacks to run here now ("" when nothing): its hooks
    // directory or target missing, its Address= device missing or down.
    // Until it is "", the group stands aside here as in standby (announced
    // so, so that another node is elected for it; it never claims), without
    // the admin's standby being set or saved; the node's other groups run on.
    // A node of one group stands aside as a whole, as before groups.
    // Services already running here are not stopped by it: the daemon
    // reports their loss itself.
    Effects set_unavailable(std::size_t group, std::string why, Usec now);
    // Command::ClearError for one group alone (D-Bus: the group's ClearError()).
    Effects clear_error(std::size_t group, Usec now);
    // Hands the services from this (active) node to `target`, or to the node
    // the election would pick next when `target` is empty. On a request that
    // cannot be carried out, sets *error to why and changes nothing.
    Effects switchover(std::size_t group, const std::string& target, Usec now, std::string* error);
    Effects switchover(const std::string& target, Usec now, std::string* error) {
        return switchover(0, target, now, error);
    }
    // Turns maintenance mode on or off for the whole cluster (freehactl
    // maintenance): while on, no node runs a hook, elects, fails over or
    // monitors; a holder still stops if it loses its lease (the guarantee
    // holds). Turning it off makes every member probe for the services as at
    // start-up. Refused (with *error set, nothing changed) without quorum,
    // while a node starts or stops the services, when the mode already is
    // so, while a peer speaks the previous wire version, and (off) while a
    // node that last said it runs the services cannot be heard.
    Effects set_maintenance(bool on, Usec now, std::string* error);
    // The services failed while running, seen by something other than
    // monitorhasrv (a unit of the services target failed): as a failing monitor.
    Effects on_services_failed(std::size_t group, const std::string& description, Usec now);
    Effects on_services_failed(const std::string& description, Usec now) {
        return on_services_failed(0, description, now);
    }
    // The services were seen running here (a unit of the services target
    // became active). Unless this node holds them, someone started them
    // behind freehad's back: they are stopped at once and counted.
    Effects on_services_seen(std::size_t group, const std::string& description, Usec now);
    Effects on_services_seen(const std::string& description, Usec now) {
        return on_services_seen(0, description, now);
    }
    // --- Backend=etcd (node_etcd.cpp): membership, election and leases come
    // from the node's link to etcd instead of heartbeats and votes. A peer is
    // live while its member key exists; a group's holder is the node whose
    // holder key exists; this node is quorate while its etcd lease lasts (on
    // its own clock) and the cluster's keys have been read; a holder's lease
    // is its etcd lease while it holds the group's key. Its heartbeats become
    // its member record, put (effect SendHeartbeat) only when what it says changes.
    bool etcd_backend() const { return etcd_.has_value(); }
    // This node and the peers it sees as up. With etcd, a node is up while its
    // member key is there: this node only while it holds its etcd lease.
    unsigned reachable_nodes() const { return membership_.reachable_count() + (self_reachable() ? 1 : 0); }
    bool self_reachable() const { return !etcd_ || etcd_->lease != 0; }
    // This node's etcd lease (etcd::Session::lease_id(), 0: none) and its end
    // on the node's own clock (lease_until()), after every change. A lease
    // gone, or replaced by another, took every key on it with it.
    Effects on_etcd_lease(std::int64_t lease, std::optional<Usec> until, Usec now);
    // The watched keys, after their first read and after every change.
    Effects on_etcd_view(const etcd::ClusterView& view, Usec now);
    // The answer to effect::EtcdClaim: won, or refused (`holder` holds the key).
    Effects on_etcd_claim(const std::string& group, bool won, const std::string& holder, Usec now);
    // Backend=etcd: why this node is not quorate ("" when it is), for the status.
    std::string etcd_unquorate_reason(Usec now) const;

    // Takes new timings, expected node count, quorum policy and key at run time;
    // the cluster, node name, role and channel count must not change.
    Effects reconfigure(const NodeSettings& settings, Usec now);
    Effects on_timer(Usec now);

    // The earliest time at which on_timer() has something to do; nullopt
    // when nothing is due (before start(), after Exit).
    std::optional<Usec> next_wakeup(Usec now) const;

    // The service groups, as settings().groups; what the node itself shows
    // (its state, phase, term...) is its default group's.
    std::size_t group_count() const { return groups_.size(); }
    const Group& group(std::size_t index) const { return *groups_.at(index); }
    const Group& default_group() const { return *groups_.front(); }
    // The group of that name, or nullptr once it is removed (the effects that
    // tell the daemon so may still be on their way).
    const Group* find_group(std::string_view name) const;
    Phase phase() const { return default_group().phase(); }
    NodeState state() const { return default_group().state(); }
    // The term of this node's own claim (0 when it claims nothing).
    std::uint64_t term() const { return default_group().own_term(); }
    // The term of the claim that runs the cluster, as far as this node knows.
    std::uint64_t cluster_term() const { return default_group().cluster_term(); }
    bool error_latched() const { return default_group().error_latched(); }
    bool quorate() const { return quorate_; }
    bool shutting_down() const { return shutting_down_; }
    // Whether this node's services run (or start) under a lease that the
    // cluster's quorum enforces: every other node that held them has stopped
    // them, and what they left, before this node could claim (not so after a
    // forced start, nor without quorum rules).
    bool under_enforced_lease() const { return default_group().lease_enforced() && quorum_rules(); }
    bool standby() const { return standby_; }
    const Maintenance& maintenance() const { return maintenance_; }
    // The wire version this node speaks now (see wire.h, "Versions").
    std::uint8_t wire_version() const;
    const std::string& handover_to() const { return default_group().handover_to(); }
    const std::string& last_error() const { return default_group().last_error(); }
    const NodeSettings& settings() const { return settings_; }
    const Membership& membership() const { return membership_; }
    const ReceiveCounters& counters() const { return counters_; }
    const Voter& voter() const { return default_group().voter(); }
    std::optional<HookKind> running_hook() const { return default_group().running_hook(); }
    // The lease a majority grants this node's claim, when it claims.
    std::optional<Usec> lease() const { return default_group().lease(); }
    // The node count quorum is counted against: the largest ExpectedNodes=
    // of this node and of every peer it has heard (timed out or not), so
    // that two majorities always share a node. A lowered count takes effect
    // once every node has stated it; a raised one at once.
    unsigned expected_nodes() const { return expected_nodes_; }

    // The node that runs the services as this node sees it ("" when none).
    std::string active_node() const { return default_group().active_node(); }
    Status status(Usec now) const;

private:
    friend class Group;

    // Why this node refuses a sender's heartbeats: logged when it begins (or
    // its cause changes) and when none was refused for a dead time, never per
    // datagram; shown in the status while the sender is not counted.
    enum class RefusalCause { IncarnationAhead, StaleIncarnation, TermJump };
    struct Refusal {
        RefusalCause cause;
        std::string reason;  // "incarnation 2d ahead of this node's clock", ...
        Usec since;
        Usec last;
        std::uint64_t count = 0;
    };

    Group& default_group() { return *groups_.front(); }
    // Whether any group, or every group, satisfies `f`.
    template <class F> bool any_group(F f) const {
        for (const auto& g : groups_)
            if (f(*g)) return true;
        return false;
    }
    // `reply`: it answers a claimant's heartbeat (wire::kFlagReply).
    void send_heartbeat(Usec now, Effects& out, bool reply = false);
    // What `hb` says of group `id` beyond its header; nullptr when nothing.
    static const wire::GroupBeat* find_beat(const wire::Heartbeat& hb, std::uint32_t id);
    // What `hb` says of group `id`: its header for the default group, else its GroupBeat; nullopt when nothing.
    static std::optional<GroupNews> news_of(const wire::Heartbeat& hb, std::uint32_t id);
    // Why a heartbeat's term, for any group, is too far above the highest this node knows; nullopt when none is.
    std::optional<std::string> implausible_term(const wire::Heartbeat& hb) const;
    Usec next_heartbeat() const;
    // Every reachable peer's newest heartbeat names the claimant's incarnation
    // (none is of a version that would reject kFlagClaimantIncarnation).
    bool peers_state_claimant_incarnation() const;

    // --- maintenance mode, leaving, wire versions (node_maintenance.cpp)
    // Adopts a peer's newer decision on maintenance mode.
    void learn_maintenance(const wire::Heartbeat& hb, Usec now, Effects& out);
    // The one place maintenance_ changes; `source`: "" for this node's admin, else the peer it came from.
    void apply_maintenance(Maintenance m, const std::string& source, Usec now, Effects& out);
    // A peer that last said in maintenance mode that it runs a group, and is not heard now (Group::unwatched_holder).
    std::optional<std::string> unwatched_holder(Usec now) const;
    // An operator's command while maintenance mode is on: nothing starts or stops.
    void in_maintenance(Command command, Usec now, Effects& out);
    // Whether enough nodes announce this node's maintenance decision, and hear
    // this node, for its services to be left running when freehad stops here.
    bool maintenance_shared() const;
    // Command::Shutdown (in maintenance mode too, while it is not shared): every group stops, then the daemon exits.
    void shut_down(const std::string& reason, Usec now, Effects& out);
    // Command::Leave.
    void leave(Usec now, Effects& out);
    // A leaving node exits once it holds nothing and its handover is taken (or given up).
    void leave_when_handed_over(Usec now, Effects& out);
    // A node shutting down exits once its services have stopped, still announcing STOPPING.
    // `last`: the group whose stop ended last.
    void exit_when_stopped(const Group& last, Usec now, Effects& out);

    // --- groups added and removed by a reload
    // Adds the groups of `wanted` this node lacks (they start as at start-up)
    // and retires the ones it no longer names (stopped here, then removed).
    void reconfigure_groups(const std::vector<GroupSettings>& wanted, Usec now, Effects& out);
    // Removes the retired groups that are done (GroupRemoved). Called at the
    // end of the entry points, never from within a group's own call.
    void drop_retired_groups(Usec now, Effects& out);

    // --- refused senders
    void refuse(const std::string& node, RefusalCause cause, std::string reason, Usec now, Effects& out);
    // One LinkLossy or LinkRecovered notice per channel of `peer` whose link changed.
    void report_links(const Peer& peer, const std::vector<std::size_t>& channels, Effects& out) const;
    std::string channel_name(std::size_t channel) const;
    void end_refusals(Usec now, Effects& out);

    // --- start-up, quorum and election
    // What placement (placement.h) decides from: every group's policy, the
    // nodes that may take a group now, and where each group runs (or is
    // claimed). The election's preference() and the status's rebalancing
    // plan both start here.
    struct PlacementInputs {
        std::vector<GroupPlacement> groups;  // index = group index
        std::vector<std::string> eligible;
        Placement current;
    };
    PlacementInputs placement_inputs() const;
    // Group `g`'s election order over the eligible nodes (empty: FreeHA's
    // alphabetical rule): first the node the placement of every group gives
    // it (placement.h: spread, and no group moves while it runs), then its
    // own preference order.
    std::vector<std::string> preference(const Group& g) const;
    void update_quorum(Usec now, Effects& out);
    void evaluate(Usec now, Effects& out);
    // This node and every peer with a two-way link to it: a peer that does not
    // hear this node cannot be relied on to learn of its claims.
    // (Backend=etcd: every peer whose member key exists.)
    unsigned live_votes() const {
        return (etcd_ ? membership_.reachable_count() : membership_.two_way_count(own_id_)) + 1;
    }
    // Recomputes expected_nodes_ when the configuration or a peer's record changed.
    void count_expected_nodes();
    // Backend=etcd: always (etcd's majority grants the leases).
    bool quorum_rules() const {
        return etcd_ || quorum_rules_apply(expected_nodes(), settings_.no_quorum_policy);
    }
    std::uint16_t own_flags() const;
    // This node's estimate of the wall clock: its incarnation was the wall clock at start.
    std::uint64_t wall_estimate(Usec now) const;

    NodeSettings settings_;
    std::uint64_t cluster_id_;
    std::uint64_t own_id_;
    Membership membership_;
    ReceiveCounters counters_;
    unsigned expected_nodes_;  // see expected_nodes(); kept, as the hot path reads it often
    std::vector<std::unique_ptr<Group>> groups_;  // as settings_.groups: the default group first

    // Backend=etcd: what the node's link to etcd has told it (engaged only then).
    struct EtcdLink {
        std::int64_t lease = 0;  // 0: none
        std::optional<Usec> lease_until;
        bool view_read = false;
        std::optional<std::string> cluster_name;     // the `cluster` key
        std::map<std::string, std::string> members;  // peer -> its record, as last fed to the membership
        std::map<std::string, std::string> holders;  // group -> the node whose holder key exists
        // The record last put, with its sequence and send time cleared: an equal one is not put again.
        std::optional<wire::Heartbeat> published;
    };
    std::optional<EtcdLink> etcd_;

    bool started_ = false;
    bool exited_ = false;  // Exit was emitted: nothing more happens
    bool shutting_down_ = false;
    bool quorate_ = false;
    bool standby_ = false;
    bool leaving_ = false;  // Command::Leave: hand over, then exit announcing kFlagLeaving
    bool leaves_services_ = false;  // stopped in maintenance mode, shared: the services are left running
    Maintenance maintenance_;
    std::optional<std::uint64_t> duplicate_incarnation_seen_;
    std::map<std::string, Refusal> refused_;  // sender -> why its heartbeats are refused; at most Membership::kMaxPeers
    std::set<std::uint8_t> unknown_versions_seen_;  // logged once each

    Usec started_at_;
    Usec backing_allowed_at_;  // start + the longest dead time: promises of an earlier incarnation have run out
    Usec last_sent_;           // when the last heartbeat went out
    std::uint64_t sequence_ = 0;
};

}  // namespace freeha
