// The core's outputs: value effects that the daemon (or the simulator) carries out.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/enum_names.h"
#include "core/phase.h"
#include "core/state.h"
#include "core/timespan.h"
#include "core/wire.h"

namespace freeha {

// The service hooks the core sequences; at most one runs at a time.
// (alerthasrv is not sequenced: the daemon runs it on every StateChanged.)
enum class HookKind { Start, Stop, Monitor };
inline constexpr std::size_t kHookKindCount = 3;
static_assert(static_cast<std::size_t>(HookKind::Monitor) + 1 == kHookKindCount);
inline constexpr std::array<HookKind, kHookKindCount> kHookKinds{HookKind::Start, HookKind::Stop, HookKind::Monitor};
inline constexpr EnumNames<HookKind, kHookKindCount> kHookNames{"starthasrv", "stophasrv", "monitorhasrv"};
inline std::string_view hook_name(HookKind k) { return kHookNames(k); }

// Operator requests: FreeHA's signals, and the D-Bus methods of the same names.
enum class Command {
    Stop,        // SIGHUP, Stop(): stop services here, stay up
    Shutdown,    // SIGTERM/SIGINT: stop services, announce STOPPING, exit
    // The machine shuts down (logind's PrepareForShutdown, a queued shutdown
    // job): hand the services to the next node as a switchover does, then
    // exit announcing that this node leaves, so that nobody waits for it.
    // Also after Shutdown, once the daemon learns why it is stopped.
    Leave,
    ForceStart,  // SIGUSR1, ForceStart(): start here without checking peers; clears the error latch
    ClearError,  // SIGUSR2, ClearError(): clear the error latch (ERRORED -> STANDBY)
    Standby,     // SetStandby(true): stop services here and never take them
    Unstandby,   // SetStandby(false): may take services again
};

// Events worth an operator's attention; each has a journal MESSAGE_ID.
enum class NoticeKind {
    PeerJoined,
    PeerTimedOut,
    PeerRestarted,
    QuorumGained,
    QuorumLost,
    Takeover,            // this node begins to start the services
    DualActiveResolved,  // this node stepped down for a node with a better claim
    HookFailed,
    StartupWaitExpired,  // InitDead passed before the start-up quorum was seen
    DuplicateNodeName,   // another daemon announces this node's own name
    UnexpectedServices,  // the services run here although this node does not hold them
    LeaseLost,           // no majority renewed this holder's lease: it stops before the lease ends
    PeerRefused,         // this node began to refuse a node's heartbeats (why: the text)
    PeerRefusalEnded,    // no heartbeat of that node was refused for a dead time
    PeerLeft,            // a node said it leaves (its machine shuts down): it no longer counts
    MaintenanceChanged,  // maintenance mode turned on or off (by this node or learned from a peer)
    UnknownWireVersion,  // a heartbeat of a wire version this release does not speak (once per version)
    LinkLossy,           // a peer's heartbeats on one channel: more than LinkHealth::kLossyPercent lost recently
    LinkRecovered,       // ... and no more than LinkHealth::kRecoveredPercent since
    UnknownPreferredNode,  // a group's Nodes= names a node never heard (once per name and group)
};
inline constexpr std::size_t kNoticeKindCount = 20;
std::string_view to_string(NoticeKind k);

namespace effect {

// The datagram is encoded (and signed, with a key) by the core; the
// heartbeat is kept beside it for whoever wants to read it.
struct SendHeartbeat {
    wire::Heartbeat heartbeat;
    std::vector<std::uint8_t> datagram;
};
// `group`: the index of the service group concerned in NodeSettings::groups (0: the default group).
struct RunHook {
    HookKind kind;
    std::size_t group = 0;
};
// The fence deadline passed: SIGKILL everything the services run (the
// services cgroup, or without one the running hook's process group; in
// target mode KillUnit on the target and its units), and call
// Node::on_services_killed() once that is done. A running hook's
// HookFinished still follows.
struct KillServices {
    std::size_t group = 0;
};
// Ask the runner to end a running hook early (SIGTERM, then SIGKILL); its
// HookFinished still follows.
struct CancelHook {
    HookKind kind;
    std::size_t group = 0;
};
// A change of phase; `from`/`to` differ when the announced state changes too.
// Carries the term and active node as of this change: later effects of the
// same batch may already have moved the node on.
struct StateChanged {
    NodeState from;
    NodeState to;
    std::string reason;
    std::uint64_t term = 0;
    std::string active_node;
    Phase from_phase = Phase::InitialProbe;
    Phase to_phase = Phase::InitialProbe;
    std::size_t group = 0;
};
// A peer's state as this node sees it changed (TIMEDOUT included).
struct PeerStateChanged {
    std::string peer;
    NodeState from;
    NodeState to;
    std::uint64_t term = 0;
};
struct Notice {
    NoticeKind kind;
    std::string peer;  // the node concerned, or this node
    std::string text;
    std::string channel = {};  // the heartbeat channel concerned (its name), if one is
    std::string group = {};    // the service group concerned (its name), if one is
};
struct Exit {
    int code;
    // Maintenance mode: the services were left as they are (they may run);
    // the unit's clean-up must leave them too.
    bool services_left = false;
};
// Maintenance mode's state changed: the daemon keeps it in its state
// directory (a restarted node starts in the mode it last knew).
struct MaintenanceChanged {
    bool on = false;
    std::uint64_t epoch = 0;
};
// The services were killed under a lease, but the kill or the clean-up
// stophasrv after it has not ended with the lease about to end: what they
// left in the kernel (an address, a mount) could outlive it, beside the
// services another node starts. The daemon acts per SelfFence= (reboot at
// once, before `lease_end`, or log the risk). Emitted once per stop.
struct SelfFence {
    std::string reason;
    Usec lease_end;
    std::size_t group = 0;
};

// A group removed from the configuration (Node::reconfigure) is gone: its
// services stopped, its promises to other claimants ran out. The groups
// after it move down one index, from this effect on.
struct GroupRemoved {
    std::size_t group;
    std::string name;
};

// Backend=etcd: create the group's holder key on this node's etcd lease if
// it is absent (Node::on_etcd_claim() tells the outcome), or delete it once
// the group's services have stopped here. By name: indexes move when a group is removed.
struct EtcdClaim {
    std::string group;
};
struct EtcdRelease {
    std::string group;
};

}  // namespace effect

using Effect = std::variant<effect::SendHeartbeat, effect::RunHook, effect::CancelHook, effect::KillServices,
                            effect::StateChanged, effect::PeerStateChanged, effect::Notice, effect::Exit,
                            effect::SelfFence, effect::MaintenanceChanged, effect::GroupRemoved,
                            effect::EtcdClaim, effect::EtcdRelease>;
using Effects = std::vector<Effect>;

// Kill first, log after: moves each KillServices and SelfFence ahead of the
// reports just before it (StateChanged, PeerStateChanged, Notice: the lines
// that say why), so that the daemon kills before it logs. Actions (a
// heartbeat, a hook run or canceled, the exit) keep their order: a kill
// never passes one.
void kill_first(Effects& effects);

}  // namespace freeha
