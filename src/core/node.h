// The node state machine: FreeHA's rules plus terms, as a deterministic function of events and time.
//
// Every entry point takes the current CLOCK_MONOTONIC time and returns the
// effects to carry out, in order. The node never reads a clock and does no
// I/O; the daemon arms one timer for next_wakeup() and calls on_timer().
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/auth.h"
#include "core/effects.h"
#include "core/membership.h"
#include "core/state.h"
#include "core/status.h"
#include "core/timespan.h"
#include "core/wire.h"

namespace freeha {

enum class NoQuorumPolicy { Stop, Ignore };
std::string_view to_string(NoQuorumPolicy p);
std::optional<NoQuorumPolicy> no_quorum_policy_from_string(std::string_view s);

struct NodeSettings {
    std::string cluster_name;
    std::string node_name;
    std::uint64_t incarnation = 0;  // unique per daemon start, never smaller than the previous one
    unsigned expected_nodes = 2;
    Role role = Role::Member;
    NoQuorumPolicy no_quorum_policy = NoQuorumPolicy::Stop;
    Usec interval = 200 * kUsecPerMsec;
    Usec dead_time = 1 * kUsecPerSec;
    Usec init_dead = 30 * kUsecPerSec;
    Usec monitor_interval = 2 * kUsecPerSec;
    // How long a stop that must be quick (quorum lost, outranked) may take
    // before the services are killed. See freeha-safety(7).
    Usec fence_timeout = 2 * kUsecPerSec;
    std::size_t channel_count = 1;
    auth::KeySet auth_keys;  // non-empty: sign every heartbeat with the first, accept only ones signed with any
};

// Quorum rules apply to clusters of more than 2 expected nodes (an arbitrator
// counts) that stop on quorum loss: only then is a minority sure to stop, and
// only then does a takeover wait for it.
bool quorum_rules_apply(const NodeSettings& s);

// How long a node that claims the services waits, once a majority has
// acknowledged its claim, before it starts them (when quorum rules apply).
// A node still holding the services counts each peer's heartbeat as a vote
// for one dead time after it arrived; a majority that acknowledged the new
// claim sends it no more votes, so it loses quorum within DeadTime and has
// stopped FenceTimeout later. One interval covers delivery, timer slack and
// the kill itself. See freeha-safety(7).
Usec takeover_delay(const NodeSettings& s);

// The incarnation of a new daemon start: above the previous one whatever the
// wall clock did, and above any earlier start whose record was lost as long
// as the wall clock is roughly right.
std::uint64_t next_incarnation(std::optional<std::uint64_t> previous, std::uint64_t realtime_usec);

struct HookOutcome {
    bool success = false;
    std::string description;  // "exited with status 1", "timed out after 30s", ...
};

class Node {
public:
    explicit Node(NodeSettings settings);

    // Daemon start. force_start is FreeHA's -m: start services at once without
    // checking the other nodes.
    Effects start(Usec now, bool force_start);

    // A raw datagram from channel `channel`: decoded, checked and counted here.
    Effects on_datagram(std::span<const std::uint8_t> datagram, std::size_t channel, Usec now);
    // An already decoded and verified heartbeat.
    Effects on_heartbeat(const wire::Heartbeat& hb, std::size_t channel, Usec now);
    Effects on_hook_finished(HookKind kind, const HookOutcome& outcome, Usec now);
    Effects on_command(Command command, Usec now);
    // Hands the services from this (active) node to `target`, or to the node
    // the election would pick next when `target` is empty. On a request that
    // cannot be carried out, sets *error to why and changes nothing.
    Effects switchover(const std::string& target, Usec now, std::string* error);
    // The services failed while running, seen by something other than
    // monitorhasrv (a unit of the services target failed): as a failing monitor.
    Effects on_services_failed(const std::string& description, Usec now);
    // Takes new timings, expected node count, quorum policy and key at run time;
    // the cluster, node name, role and channel count must not change.
    Effects reconfigure(const NodeSettings& settings, Usec now);
    Effects on_timer(Usec now);

    // The earliest time after `now` at which on_timer() has something to do.
    Usec next_wakeup(Usec now) const;

    NodeState state() const { return state_; }
    std::uint64_t term() const { return term_; }
    bool error_latched() const { return error_latched_; }
    bool quorate() const { return quorate_; }
    bool shutting_down() const { return shutting_down_; }
    bool standby() const { return standby_; }
    const std::string& handover_to() const { return handover_to_; }
    const std::string& last_error() const { return last_error_; }
    const NodeSettings& settings() const { return settings_; }
    const Membership& membership() const { return membership_; }
    const ReceiveCounters& counters() const { return counters_; }
    std::optional<HookKind> running_hook() const;

    // The node that runs the services as this node sees it ("" when none).
    std::string active_node() const;
    Status status(Usec now) const;

private:
    struct RunningHook {
        HookKind kind;
        bool canceled = false;
        bool killed = false;  // by the fence deadline: the services count as stopped when it ends
    };
    enum class AfterHook { Nothing, StopServices, StartServices };

    void set_state(NodeState to, std::string reason, Usec now, Effects& out);
    void send_heartbeat(Usec now, Effects& out);
    void run_hook(HookKind kind, Effects& out);
    // Runs `next` now, or cancels the running hook and runs it when it ends.
    void after_current_hook(AfterHook next, Usec now, Effects& out);
    // Claims the services with a new term. A forced start runs starthasrv at
    // once; an elected one waits for the takeover delay and for every
    // reachable node that still holds the services to let go.
    void begin_start(std::string reason, bool forced, Usec now, Effects& out);
    void maybe_run_pending_start(Usec now, Effects& out);
    // This node and the two-way peers that announce this node's claim as the best they know.
    unsigned claim_supporters() const;
    // Every node this one knows is reachable and backs its claim, and they are
    // all the expected nodes: nobody can hold the services or win them.
    bool claim_unanimous() const;
    bool reachable_peer_holds_services() const;
    void stop_services(std::string reason, Usec now, Effects& out);
    // A stop that must finish within FenceTimeout, else the services are killed.
    void fence(std::string reason, Usec now, Effects& out);
    void kill_overrunning_stop(Usec now, Effects& out);
    void fail_services(std::string error, Usec now, Effects& out);
    void services_stopped(Usec now, Effects& out);
    void startup_probe_finished(Usec now, Effects& out);
    void update_quorum(Usec now, Effects& out);
    void maybe_finish_startup(Usec now, Effects& out);
    void maybe_elect(Usec now, Effects& out);
    void check_rival(const Peer& peer, Usec now, Effects& out);
    void evaluate(Usec now, Effects& out);
    void end_handover_when_done(Usec now);
    // The node the election would pick if this node stepped aside (for a switchover).
    std::optional<std::string> next_eligible_peer() const;
    bool claim_beats_mine(std::uint64_t term, const std::string& name) const;
    // Records a claim heard of; true when it is the best one known so far.
    bool learn_claim(std::uint64_t term, const std::string& claimant);
    // This node and every peer with a two-way link to it: a peer that does not
    // hear this node cannot be relied on to learn of its claims.
    unsigned live_votes() const { return membership_.two_way_count(own_id_) + 1; }
    std::uint16_t own_flags() const;

    NodeSettings settings_;
    std::uint64_t cluster_id_;
    std::uint64_t own_id_;
    Membership membership_;
    ReceiveCounters counters_;

    NodeState state_ = NodeState::Initial;
    std::uint64_t term_ = 0;           // the term of this node's own claim to the services
    std::uint64_t max_term_seen_ = 0;  // every takeover uses a term above this
    std::string best_claimant_;        // who claimed max_term_seen_ (the earliest name on a tie); "" if unknown
    std::uint64_t sequence_ = 0;
    bool started_ = false;
    bool error_latched_ = false;
    bool shutting_down_ = false;
    bool startup_probe_done_ = false;
    bool quorate_ = false;
    bool standby_ = false;
    std::string last_error_;
    std::string handover_to_;          // switchover target, announced until it takes over
    std::optional<Usec> handover_until_;  // set once our stop ends: give up waiting then
    bool start_pending_ = false;         // STARTING, starthasrv not yet run
    std::optional<Usec> claim_acknowledged_;  // when a majority first knew of our pending claim
    std::optional<Usec> fence_deadline_;  // a quick stop is under way: kill the services then
    std::optional<std::uint64_t> duplicate_incarnation_seen_;

    std::optional<RunningHook> hook_;
    AfterHook after_cancel_ = AfterHook::Nothing;  // what to do once the canceled hook ends
    bool start_after_stop_ = false;                // a force-start that arrived while stopping

    Usec init_deadline_ = 0;
    Usec listen_until_ = 0;  // start (or quorum regained) + dead time: no election before
    Usec next_heartbeat_ = 0;
    std::optional<Usec> next_monitor_;
};

}  // namespace freeha
