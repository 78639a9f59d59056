// The membership view: every peer learned from heartbeats, when and on which channel it was last heard, and what it last said.
//
// The table is bounded (kMaxPeers) and guarded against heartbeats that
// would poison it: a sequence number far beyond what the sender can have
// sent since it was last heard is refused, and so (by the node, which knows
// the time) is an incarnation from the far future. Without a key, a peer
// record that has timed out accepts a lower incarnation again, so that one
// forged heartbeat cannot blind a node to a real peer for longer than a dead
// time; replays of the same incarnation stay refused.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/state.h"
#include "core/timespan.h"
#include "core/wire.h"

namespace freeha {

// Maintenance mode, as the cluster decided it last: the decision with the
// highest epoch wins everywhere (on wins a tie). The epoch is the deciding
// node's wall-clock estimate, above every epoch it knew.
struct Maintenance {
    bool on = false;
    std::uint64_t epoch = 0;  // 0: never decided
    bool operator==(const Maintenance&) const = default;
};


// The sequence numbers heard from one sender on one channel: the highest, and
// which of the kSize below it were heard too (bit i: highest - i).
class ReplayWindow {
public:
    static constexpr std::uint64_t kSize = 64;
    // Records `sequence`; false when it was heard before or is too old to tell.
    bool accept(std::uint64_t sequence);

private:
    std::uint64_t highest_ = 0;
    std::uint64_t seen_ = 0;
};

struct Peer {
    std::string name;
    NodeState announced = NodeState::Initial;  // what the peer last said of itself
    Role role = Role::Member;
    std::uint64_t term = 0;
    std::uint64_t incarnation = 0;
    std::uint64_t last_sequence = 0;  // of the newest heartbeat applied
    std::vector<ReplayWindow> windows;  // index = channel
    std::uint16_t flags = 0;
    std::string handover_to;  // the node it hands the services to, if any
    std::string claimant;     // whose claim its announced term is, when it holds no services
    std::uint64_t sent_at = 0;  // its own clock when it sent its newest heartbeat (for our promise's grant)
    std::uint64_t grant = 0;    // its promise to the claim it backs, on the claimant's clock (see claimant)
    std::vector<std::uint64_t> heard;  // node ids the peer last said it hears
    // Its ExpectedNodes= as it last stated it (0: never stated), kept while
    // it times out: a node it could form a majority with must count as many.
    unsigned expected_nodes = 0;
    bool states_expected = false;  // its newest heartbeat stated it (else: an older version, or one beside such)
    bool states_claimant_incarnation = false;  // likewise for kFlagClaimantIncarnation
    Usec last_heard;
    std::vector<std::optional<Usec>> channel_last_heard;  // index = channel
    bool timed_out = false;
    bool left = false;  // it said it leaves (kFlagLeaving): timed out at once, until it is heard again
    std::uint8_t wire_version = 0;  // the version of its newest heartbeat
    std::uint8_t understands = 0;   // the newest version it understands
    std::string release;            // "" until a version-3 heartbeat says it
    Maintenance maintenance;        // as it announced it (version 3)

    bool reachable() const { return !timed_out; }
    // TIMEDOUT once the dead time has passed, else the announced state.
    NodeState state() const { return timed_out ? NodeState::TimedOut : announced; }
    bool standby_flag() const { return (flags & wire::kFlagStandby) != 0; }
    bool error_latched() const { return (flags & wire::kFlagErrorLatched) != 0; }
    // STARTING with starthasrv not run yet: a claim, not services.
    bool claim_pending() const { return (flags & wire::kFlagClaimPending) != 0; }
    // Announces that the services are (or may be) up there: starthasrv has run.
    bool runs_services() const { return holds_services(announced) && !claim_pending(); }
    bool hears(std::uint64_t node_id) const;
};

// What one heartbeat changed in the view, so that the caller can report it.
struct Observation {
    bool joined = false;       // first heard, or heard again after timing out
    bool left = false;         // it says it leaves: it counts as timed out from now on
    bool restarted = false;    // a new incarnation of a known peer
    bool stale = false;        // an older incarnation than the one known: ignored
    bool replayed = false;     // a sequence number already heard on this channel, or too old: ignored
    bool implausible = false;  // a sequence number the sender cannot have reached yet: ignored
    bool table_full = false;   // a new peer, and no room for it: ignored
    bool redundant = false;    // new on this channel, but not newer than what was applied: channel health only
    std::optional<NodeState> previous_state;
};

class Membership {
public:
    // Room for every peer of the largest cluster (kMaxNodes, node.cpp checks)
    // and one stranger; a full table ignores only new names (table_full).
    static constexpr std::size_t kMaxPeers = 64;
    // How many heartbeats a sender may have sent per millisecond since it was
    // last heard, at most (Interval= is at least 1ms), plus a burst allowance.
    static constexpr std::uint64_t kSequenceBurst = 1024;

    // `trust_timed_out`: a timed-out peer's incarnation still guards against
    // replays (with a key: only the key holder could have set it); otherwise
    // a lower incarnation starts the record over once it has timed out.
    Membership(std::size_t channel_count, bool trust_timed_out)
        : channel_count_(channel_count), trust_timed_out_(trust_timed_out) {}

    Observation observe(const wire::Heartbeat& hb, std::size_t channel, Usec now);

    // Marks peers not heard for dead_time as timed out; returns their names.
    std::vector<std::string> expire(Usec now, Usec dead_time);

    // When the next peer would time out, if any peer is reachable.
    std::optional<Usec> next_expiry(Usec dead_time) const;

    // Reachable peers (not counting this node).
    unsigned reachable_count() const;
    // Reachable peers whose last heartbeat says they hear `node_id`: the two-way links.
    unsigned two_way_count(std::uint64_t node_id) const;

    const std::map<std::string, Peer>& peers() const { return peers_; }

    void set_trust_timed_out(bool trust) { trust_timed_out_ = trust; }

private:
    // Makes room for one more peer if the table is full; false when none can go.
    bool make_room();

    std::size_t channel_count_;
    bool trust_timed_out_;
    std::map<std::string, Peer> peers_;
};

}  // namespace freeha
