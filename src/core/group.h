// One service group on this node: its phase, hooks, claim and lease (Holder), backing (Voter), stops and error latch.
//
// A Group is a part of its Node: it reads the node's settings, membership,
// quorum, standby and maintenance mode, and asks the node to send a
// heartbeat when what it announces changes. Its phase (see phase.h) says
// what it runs and waits for; set_phase() is the one chokepoint for changing
// it. Claims, promises and leases are in claims.h.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include "core/claims.h"
#include "core/effects.h"
#include "core/history.h"
#include "core/holder.h"
#include "core/membership.h"
#include "core/phase.h"
#include "core/state.h"
#include "core/status.h"
#include "core/timespan.h"
#include "core/voter.h"
#include "core/wire.h"

namespace freeha {

class Node;
struct HookOutcome;
struct GroupSettings;

// What one heartbeat says of one group: its header's fields for the default
// group, a wire::GroupBeat for the others.
struct GroupNews {
    NodeState state;
    std::uint64_t term;
    std::uint64_t grant;
    const std::string& claimant;
    // The claimant's incarnation; none from a version that cannot name it (or a node beside one).
    std::optional<std::uint64_t> claimant_incarnation;
};

class Group {
public:
    // The group `index` of the node's settings: the first is the default group.
    Group(Node& node, std::size_t index);
    Group(const Group&) = delete;
    Group& operator=(const Group&) = delete;

    const GroupSettings& settings() const;
    const std::string& name() const;
    // Its id on the wire: kDefaultGroupId for the default group, else wire::group_id() of its name.
    std::uint32_t id() const { return id_; }
    Phase phase() const { return phase_; }
    NodeState state() const { return state_of(phase_); }
    bool holding() const { return holds_services(state()); }  // STARTING, RUNNING or STOPPING: a claim of ours is out
    bool services_started() const;  // starthasrv has run (or services were found running), and stophasrv has not ended
    std::uint64_t own_term() const { return holding() ? holder_.term() : 0; }
    std::uint64_t cluster_term() const;
    std::string active_node() const;
    bool error_latched() const { return error_latched_; }
    const std::string& last_error() const { return last_error_; }
    const std::string& handover_to() const { return handover_to_; }
    // Why this group cannot run on this node now ("" when it can): see Node::set_unavailable().
    const std::string& unavailable() const { return unavailable_; }
    const Voter& voter() const { return voter_; }
    const History& history() const { return history_; }
    std::uint64_t unexpected_services() const { return unexpected_services_; }
    bool lease_enforced() const { return lease_enforced_; }
    std::optional<HookKind> running_hook() const;
    bool hook_running() const { return hook_.has_value(); }
    std::optional<Usec> lease() const;
    // The group's part of the status document (node_status.cpp).
    GroupStatus status(Usec now) const;

private:
    friend class Node;

    struct RunningHook {
        HookKind kind;
        Usec started;
        bool canceled = false;
        bool killed = false;  // by the fence deadline: the services count as stopped when it ends
    };

    // The chokepoint: every phase change goes through here.
    void set_phase(Phase to, std::string reason, Usec now, Effects& out);

    // --- hooks (group_hooks.cpp): at most one runs; the phase says which.
    std::optional<HookKind> hook_wanted(Usec now) const;
    bool hook_belongs(HookKind kind) const;
    // Runs the hook the phase wants, or cancels one it does not want.
    void drive_hooks(Usec now, Effects& out);
    void run_hook(HookKind kind, Usec now, Effects& out);
    // What a hook kind does here, for messages: the hasrv script, or in target
    // mode "the start of freeha-services.target".
    std::string step_name(HookKind kind) const;
    Effects on_hook_finished(HookKind kind, const HookOutcome& outcome, Usec now);
    void hook_succeeded(HookKind kind, Usec now, Effects& out);
    void hook_failed(HookKind kind, const HookOutcome& outcome, Usec now, Effects& out);

    // --- claims, backing and leases (group_claims.cpp)
    // Claims the services with a new term; forced: starthasrv at once.
    void claim(std::string reason, bool forced, Usec now, Effects& out);
    // A reachable peer hands the services to this node (a switchover, or its machine shuts down).
    bool handed_over_to_us() const;
    // Claims services already found running here (the start-up probe).
    void claim_running_services(Usec now, Effects& out);
    void maybe_start_claim(Usec now, Effects& out);
    // Backs (or stops backing) a claim as a voter; true when what this node
    // announces changed, so that a heartbeat must go out at once.
    bool update_backing(Usec now);
    bool may_back(Usec now) const;
    // What a peer's heartbeat says of this group: its term for the claims
    // this node knows, its grant to our claim, and a renewal of the claim we
    // back (true: our acknowledgement must go out at once).
    bool learn(const wire::Heartbeat& hb, const GroupNews* news, Usec now);
    // Backend=etcd: asks for the group's holder key (effect::EtcdClaim) with a claim.
    void claim_etcd_key(Effects& out);
    // The answer to it: won (the lease binds the claim from now on), or
    // refused (another node holds the key: a claim not started yet is withdrawn).
    void etcd_claim_answered(bool won, const std::string& holder, Usec now, Effects& out);
    // The node's etcd lease is gone, and the group's key with it.
    void etcd_lease_lost(Usec now, Effects& out);
    void record_grant(const wire::Heartbeat& hb, const GroupNews& news, Usec now);
    void check_rivals(Usec now, Effects& out);
    // Whether `peer`'s claim with `term`, whose services run, beats ours (the lesser stops).
    bool outranked_by(const std::string& peer, std::uint64_t term) const;
    void enforce_lease(Usec now, Effects& out);
    bool peer_backs_other_live_claim() const;
    bool peer_runs_services() const;
    // The claim this group announces: its own, the one it backs (with the
    // grant of its promise), or else the best one it knows of, so that news
    // of a claim spreads to nodes its claimant cannot reach.
    wire::GroupBeat announce(Usec now) const;
    // Adds the group's name to a notice about it (none for the default group: the node's own).
    void notice(Effects& out, effect::Notice notice) const;

    // --- stopping (group.cpp)
    // Counts a stop by its cause once: a stop made urgent (a fence during a
    // graceful stop) or joined by another request is the same stop.
    void count_stop(StopCause cause);
    void stop_services(StopCause cause, std::string reason, Usec now, Effects& out);
    // A stop that must end by `deadline`, else the services are killed.
    void fence(StopCause cause, std::string reason, Usec deadline, Usec now, Effects& out);
    void kill_at_deadline(Usec now, Effects& out);
    // Enters stopping/killed: everything the services run is killed, the
    // running hook's result no longer counts, and the kill awaits its proof.
    void kill_services(std::string reason, Usec now, Effects& out);
    Effects on_services_killed(Usec now);
    // After a kill under an enforced lease: the kill and the clean-up must
    // end by self_fence_at(lease), or the node fences itself (SelfFence).
    struct SelfFenceDue {
        Usec at;
        std::optional<Usec> lease_end;  // none: no lease, the deadline has passed
    };
    std::optional<SelfFenceDue> self_fence_due() const;
    void self_fence_if_late(Usec now, Effects& out);
    void fail_services(std::string error, Usec now, Effects& out);
    void clear_error(Usec now, Effects& out);  // SIGUSR2, ClearError(): ERRORED -> STANDBY
    void services_stopped(Usec now, Effects& out);
    // Removed from the configuration: stops what runs here and backs no new claim.
    void retire(Usec now, Effects& out);
    // Retiring and done: nothing runs or is claimed here, and no promise of
    // ours is live (a group added again later starts with a fresh voter).
    bool retired(Usec now) const;
    // Shutting down: whether the daemon may exit as far as this group is
    // concerned (stopped, idle, or left as it is in maintenance mode).
    bool done_for_exit() const;
    // Warns once per name of Nodes= that no heartbeat has come from (a typo,
    // or a node of another cluster): called when start-up listening ends and
    // when a reload changes Nodes=, once the live nodes have been heard.
    void check_preferred_nodes(Effects& out);
    // Command::Shutdown: stops what runs here; the node exits once every group has stopped.
    void shut_down(const std::string& reason, Usec now, Effects& out);
    void force_start(Usec now, Effects& out);
    // Command::Stop and Command::Standby: stop the services if they run or start here.
    void stop_if_running(StopCause cause, std::string reason, Usec now, Effects& out);

    // --- maintenance mode (node_maintenance.cpp)
    void enter_maintenance(Usec now, Effects& out);
    void leave_maintenance(Usec now, Effects& out);
    // A peer that said in maintenance mode that it runs the services and has
    // fallen silent (its freehad stopped and left them, or it died): what it
    // ran may still run, so nobody elects until it is heard again (nor is
    // maintenance mode turned off while it is not heard).
    std::optional<std::string> unwatched_holder(Usec now) const;
    // Machine shutdown: hands the services over as a switchover does.
    void leave(Usec now, Effects& out);

    // --- start-up, election, switchover (group.cpp)
    void start(Usec now, bool force_start, Effects& out);
    void finish_listening(Usec now, Effects& out);
    void maybe_elect(Usec now, Effects& out);
    // The group's share of Node::evaluate(), after the node's own checks.
    void decide(Usec now, Effects& out);
    void end_handover_when_done(Usec now);
    // The node the election would pick if this node stepped aside (for a switchover).
    std::optional<std::string> next_eligible_peer() const;
    Effects switchover(const std::string& target, Usec now, std::string* error);
    Effects on_services_failed(const std::string& description, Usec now);
    Effects on_services_seen(const std::string& description, Usec now);
    // Back from a partition (quorum regained) or after a lost lease: listen a whole dead time before electing.
    void listen_again(Usec now);
    // Quorum lost: a claim that has not started cannot win a majority now.
    void quorum_lost(const std::string& text, Usec now, Effects& out);
    // The earliest time this group has something to do (within next_wakeup()).
    void consider_wakeups(Usec now, Usec& next) const;

    // What `peer` last said of this group (nothing said: INITIAL, no claim).
    const PeerGroup& view_of(const Peer& peer) const { return peer.group(id_); }
    // A peer that stands aside for this group: the whole node (standby,
    // leaving, unavailable), or this group alone there.
    static bool aside(const Peer& peer, const PeerGroup& said) { return peer.standby_flag() || said.aside; }

    Node& node_;
    std::size_t index_;
    std::uint32_t id_;
    TermBook terms_;
    Voter voter_;    // what this node promised other claims
    Holder holder_;  // this node's own claim and its lease
    // Backend=etcd: the group's holder key, as far as this node's claim goes.
    // It is released (effect::EtcdRelease) as the group stops holding (set_phase()).
    enum class EtcdKey { None, Claiming, Held };
    EtcdKey etcd_key_ = EtcdKey::None;

    Phase phase_ = Phase::InitialProbe;
    // Whether the lease binds this holder: from the claim on, or, for services
    // started without one (forced, found running at start-up), from the first lease.
    bool lease_enforced_ = false;
    bool error_latched_ = false;
    bool retiring_ = false;  // removed from the configuration: it stops, then Node drops it
    // Running: the first monitorhasrv after maintenance mode is a probe; its
    // failure means the services were stopped by hand (no error is latched).
    bool probe_after_maintenance_ = false;
    std::string last_error_;
    std::string unavailable_;             // the group stands aside here (Node::set_unavailable)
    std::string handover_to_;             // switchover target, announced until it takes over
    std::optional<Usec> handover_until_;  // set once our stop ends: give up waiting then
    std::optional<Usec> fence_deadline_;  // StoppingFenced: kill the services then
    bool self_fenced_ = false;            // StoppingKilled, StoppingCleanup: SelfFence was emitted
    bool start_after_stop_ = false;       // a force-start that arrived while stopping
    std::uint64_t unexpected_services_ = 0;  // times the services were found running here unbidden
    std::set<std::string> unknown_preferred_warned_;  // names of Nodes= warned about (check_preferred_nodes)
    History history_;
    std::optional<RunningHook> hook_;
    std::optional<Usec> next_monitor_;
    Usec init_deadline_;
    Usec listen_until_;  // start (or quorum regained) + dead time: no election before
};

}  // namespace freeha
