// The status model and its renderings: JSON schema 1 and FreeHA's text state file.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/history.h"
#include "core/placement.h"
#include "core/state.h"
#include "core/timespan.h"
#include "core/wire.h"

namespace freeha {

// What happened to received datagrams; every drop has a counter.
struct ReceiveCounters {
    std::uint64_t accepted = 0;
    std::array<std::uint64_t, wire::kRejectCount> malformed{};
    std::uint64_t foreign_cluster = 0;
    std::uint64_t stale_incarnation = 0;  // an incarnation older than the sender's known one (a replay)
    std::uint64_t replayed = 0;           // a sequence number already heard on that channel, or too old
    std::uint64_t unauthenticated = 0;    // no tag, while AuthKeyFile= is set
    std::uint64_t bad_signature = 0;      // a tag that does not match the key
    std::uint64_t duplicate_name = 0;
    std::uint64_t implausible = 0;      // a sequence or incarnation the sender cannot have reached
    std::uint64_t peer_table_full = 0;  // a new node, and no room for it
    std::uint64_t own = 0;  // our own broadcasts and multicasts looped back

    std::uint64_t malformed_total() const;
    // Every counter by name ("accepted", ..., "malformed_bad_magic", ...): the
    // D-Bus Packets property and freehactl's view.
    std::vector<std::pair<std::string, std::uint64_t>> by_name() const;
    bool operator==(const ReceiveCounters&) const = default;
};

// A peer's link on one channel (core/membership.h's LinkHealth): of its
// heartbeats judged so far, how many arrived on the channel and how many
// were lost; and of the most recent ones (at most LinkHealth::kRecent).
struct LinkStatus {
    std::uint64_t received = 0;
    std::uint64_t lost = 0;
    unsigned recent_expected = 0;
    unsigned recent_lost = 0;
    bool lossy = false;  // warned about (more than LinkHealth::kLossyPercent lost), not recovered yet

    std::uint64_t expected() const { return received + lost; }
    // recent_lost / recent_expected; nullopt while nothing was judged.
    std::optional<double> recent_loss_ratio() const;
    bool operator==(const LinkStatus&) const = default;
};

struct NodeStatus {
    std::string name;
    NodeState state = NodeState::Initial;
    Role role = Role::Member;
    bool reachable = false;
    Usec last_heard_usec_ago;
    std::uint64_t term = 0;
    bool standby = false;
    bool errored = false;
    bool self = false;
    std::vector<std::optional<Usec>> channel_heard_usec_ago;  // nullopt: never heard on it
    std::vector<LinkStatus> links;  // index = channel, as channel_heard_usec_ago; zero for this node
    // Why this peer does not count towards quorum although it sends ("" when
    // it counts, or is simply not heard): "refused: <why>" when this node
    // refuses its heartbeats, "does not hear this node" for a one-way link.
    std::string not_counted;
    std::string version;        // its release ("0.2.0"); "" when it does not say (wire version 2)
    unsigned wire_version = 0;  // the wire version it speaks (0: not heard yet)
    bool maintenance = false;   // it announces maintenance mode on
    bool left = false;          // it said it leaves (its machine shut down); it no longer counts
    bool operator==(const NodeStatus&) const = default;
};

// One floating address (Address=) as this node sees it.
struct AddressStatus {
    std::string address;      // "192.0.2.10/24"
    std::string device;       // "eth0"
    bool up = false;          // on the device here, added by freehad
    std::string foreign_mac;  // the last other host seen answering for it ("" for none)
    std::uint64_t conflicts = 0;  // times another host was seen answering for it
    bool operator==(const AddressStatus&) const = default;
};

// What one node announces of one service group: a row of the groups x nodes view.
struct GroupNodeStatus {
    std::string name;
    NodeState state = NodeState::Initial;  // TIMEDOUT for a peer not heard; INITIAL for one that never spoke of the group
    std::uint64_t term = 0;   // the term it announces for the group (its own claim's while it holds it)
    bool errored = false;     // its error latch for the group
    std::string handover_to;  // the node it hands the group to ("" for none)
    bool self = false;
    bool aside = false;       // the group cannot run there now (its hooks, target or address device missing)
    bool operator==(const GroupNodeStatus&) const = default;
};

// One service group as this node sees it (Node::group()): index 0 is the
// default group ([Services]), the others follow in name order.
struct GroupStatus {
    std::string name;
    NodeState state = NodeState::Initial;  // this node's state for the group
    std::string phase;
    std::string active_node;  // "" when none
    std::uint64_t term = 0;   // the term of the claim that runs the group, as this node knows it
    std::optional<Usec> lease_remaining;  // this node's claim on the group: how long its lease still runs
    bool errored = false;
    std::string last_error;   // "" renders as null
    std::string handover_to;  // switchover target of this node, until it takes over ("" renders as null)
    std::string unavailable;  // why the group cannot run on this node now (Node::set_unavailable); "" renders as null
    PlacementPolicy placement = PlacementPolicy::Alphabetical;
    std::vector<GroupNodeStatus> nodes;  // this node and every peer, in the order of Status::nodes
    bool operator==(const GroupStatus&) const = default;
};

// The node's link to etcd (Backend=etcd), as daemon/etcd_backend.h reports
// it: the endpoint its session uses, its lease, and what its calls met.
struct EtcdLinkStatus {
    std::string endpoint;              // the URL the session uses now
    std::size_t endpoint_index = 0;    // its place in Endpoints= (0: the first)
    std::size_t endpoint_count = 0;
    std::int64_t lease_id = 0;         // 0: no lease
    std::optional<Usec> lease_remaining;  // until the lease's end on this node's clock; nullopt without one
    bool synced = false;               // the watch of the prefix is current (the node judges by it)
    std::uint64_t calls = 0;           // the session's calls: grants, keepalives, claims, releases, puts, marks
    std::uint64_t call_failures = 0;   // of them, failed or unanswered in time
    std::uint64_t watch_failures = 0;  // reads and watches of the prefix that failed, timed out or ended
    std::uint64_t endpoint_switches = 0;
    std::uint64_t leases_lost = 0;
    std::string last_failure;          // the newest failure's line: which call, which endpoint, why ("" none)

    // The counters by name ("calls", "call_failures", ...): the document's
    // etcd.counters, the D-Bus EtcdCounters property and the metrics.
    std::vector<std::pair<std::string, std::uint64_t>> counters_by_name() const;
    // The lease ID as etcd's tools print it (hexadecimal); "" without a lease.
    std::string lease_hex() const;
    bool operator==(const EtcdLinkStatus&) const = default;
};

struct Status {
    std::string cluster;
    std::string node;
    NodeState state = NodeState::Initial;
    std::string phase;  // the sub-state ("starting/pending", "stopping/fenced", ...)
    Role role = Role::Member;
    std::uint64_t term = 0;  // the term of the claim that runs the cluster, as this node knows it
    bool quorate = false;
    unsigned expected_nodes = 0;
    std::string active_node;
    bool standby = false;
    bool errored = false;
    std::string last_error;  // "" renders as null
    std::string unavailable;  // what this node lacks to take the services (Node::set_unavailable); "" renders as null
    std::string mode = "scripts";      // "scripts" or "target"
    std::string services_target;       // the unit target mode drives; "" in scripts mode
    Usec dead_time;                // a channel not heard for longer is unhealthy
    std::uint64_t updated_realtime_usec = 0;
    std::vector<std::string> channels;  // channel names, index-aligned with channel_heard_usec_ago
    // Channel `i`'s name, or its index where the snapshot names none: the one
    // naming the document, the D-Bus Channels and Links properties share.
    std::string channel_name(std::size_t i) const { return i < channels.size() ? channels[i] : std::to_string(i); }
    std::vector<NodeStatus> nodes;      // every known node, this one included, by name
    ReceiveCounters counters;
    std::uint64_t unexpected_services = 0;  // times the services were found running here unbidden
    std::optional<Usec> lease_remaining;    // this node's claim: how long its lease still runs
    std::vector<AddressStatus> addresses;   // Address=, in the configuration's order
    std::uint64_t log_lines_dropped = 0;    // lines the journal did not take in time (the daemon never waits for it)
    std::string version;                    // this build's release
    unsigned wire_version = 0;              // the wire version this node speaks now
    bool maintenance = false;               // maintenance mode is on (the cluster's newest decision)
    // When it was last turned on or off, on the wall clock of the node that
    // did it (0: never); every node shows the same value.
    std::uint64_t maintenance_since_realtime_usec = 0;
    bool leaving = false;                   // the machine shuts down: this node hands over and exits
    History history;                        // claims, stops and hook runs since this daemon started
    // Every service group, the default one first; the fields above are the
    // default group's (the document before groups had them alone).
    std::vector<GroupStatus> groups;
    // The planned switchovers that bring the groups to an even spread
    // (placement.h: next_rebalance_move() applied until none is left), in order; empty when even.
    std::vector<PlannedMove> rebalance;
    std::optional<EtcdLinkStatus> etcd;  // Backend=etcd only
    bool operator==(const Status&) const = default;
};

// Whether two snapshots say the same thing but for what moves on its own
// with every heartbeat or with time: the last-heard ages (a channel crossing
// DeadTime= is a change, and so is a first heartbeat on it), the accepted and
// own packet counters, the leases' remaining time, the node's, each
// group's and the etcd lease's (not whether there is a lease), the etcd
// session's calls, the hook runs (a monitor runs every MonitorInterval=) and the time
// of the snapshot. Every other field, present or future,
// counts. The status file is rewritten when this is false, and otherwise
// only at its slow refresh (freeha-status(5)).
bool same_facts(const Status& a, const Status& b);

nlohmann::json to_json(const Status& s);

// FreeHA's state file: one "host [STATE] <ctime>" line per node; the time is
// when the node was last heard (now, for this node), in local time.
std::string to_freeha_text(const Status& s);

}  // namespace freeha
