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
    std::uint64_t highest() const { return highest_; }

private:
    std::uint64_t highest_ = 0;
    std::uint64_t seen_ = 0;
};

// The health of one peer's link on one channel: of the heartbeats the peer
// sent, how many arrived on this channel and how many were lost.
//
// A sender numbers its heartbeats and sends each one on every channel with
// the same number (Node::send_heartbeat, Manager::send), so every number up
// to the newest heard on any channel was sent, and each channel should carry
// it. A number is judged once it can no longer arrive: when this channel has
// carried one kLate numbers newer (reordering on one path is never that
// deep), or when another channel has carried one ReplayWindow::kSize newer
// (a dead channel; the margin leaves room for one channel's backlog being
// drained after another's). A heartbeat that comes later than that counts as
// lost: it told the node nothing new. Expected = received + lost, over the
// judged numbers only.
//
// The recent ratio covers the last kRecent judged numbers: a fixed count of
// heartbeats rather than a time span, so that the threshold means the same
// at any Interval= (kRecent is the replay window's span: 12.8s at the
// default 200ms). Above kLossyPercent of a full window the link is lossy;
// it recovers at kRecoveredPercent or less (hysteresis: a link that loses
// about 10 % does not flap between the two).
//
// A new incarnation or a peer heard again after it timed out starts the
// judging over from its new heartbeat (settle() first judges what is left,
// as nothing more will come): the numbers of a silent peer are not expected,
// a timeout is not a loss. The totals and the recent window go on across
// both: they describe the link, not one run of the peer.
class LinkHealth {
public:
    static constexpr std::uint64_t kLate = 8;
    static constexpr std::uint64_t kRecent = 64;
    static constexpr std::uint64_t kLossyPercent = 10;
    static constexpr std::uint64_t kRecoveredPercent = 2;

    // Judges from `first` on (the first heartbeat heard, or heard again).
    void start(std::uint64_t first);
    // Judges what can no longer arrive (see above); `channel_newest` is the
    // newest number this channel carried, `peer_newest` any channel.
    void judge(std::uint64_t channel_newest, std::uint64_t peer_newest);
    // Judges everything up to `peer_newest` at once: nothing more will come.
    void settle(std::uint64_t peer_newest);
    // Heartbeat `sequence` arrived on this channel (judge() first).
    void arrived(std::uint64_t sequence);
    // Updates lossy() from the recent window; true when it changed.
    bool update_lossy();

    std::uint64_t received() const { return received_; }
    std::uint64_t lost() const { return lost_; }
    std::uint64_t expected() const { return received_ + lost_; }
    // The last kRecent judged numbers (fewer at first), and how many of them were lost.
    unsigned recent_expected() const { return recent_count_; }
    unsigned recent_lost() const;
    bool lossy() const { return lossy_; }

private:
    void judge_until(std::uint64_t last);
    void record(bool arrived);

    bool judging_ = false;
    std::uint64_t next_ = 0;     // the lowest number not judged yet
    std::uint64_t arrived_ = 0;  // bit i: next_ + i arrived on this channel
    std::uint64_t received_ = 0;
    std::uint64_t lost_ = 0;
    std::uint64_t recent_ = 0;   // bit i: the i-th newest judged number was lost
    unsigned recent_count_ = 0;
    bool lossy_ = false;
};

// The default group's id: the group a heartbeat's header speaks of.
inline constexpr std::uint32_t kDefaultGroupId = 0;

// What a peer last said of one service group.
struct PeerGroup {
    NodeState announced = NodeState::Initial;
    std::uint64_t term = 0;
    bool error_latched = false;
    bool claim_pending = false;  // STARTING with starthasrv not run yet: a claim, not services
    bool aside = false;          // the group cannot run there now (the node itself may)
    std::string handover_to;     // the node it hands the group to, if any
    std::string claimant;        // whose claim its announced term is, when it holds nothing
    std::uint64_t grant = 0;     // its promise to the claim it backs, on the claimant's clock (see claimant)
    // Announces that the services are (or may be) up there: starthasrv has run.
    bool runs_services() const { return holds_services(announced) && !claim_pending; }
};

struct Peer {
    std::string name;
    Role role = Role::Member;
    std::uint64_t incarnation = 0;
    std::uint64_t last_sequence = 0;  // of the newest heartbeat applied
    std::vector<ReplayWindow> windows;  // index = channel
    std::vector<LinkHealth> links;      // index = channel
    std::uint16_t flags = 0;  // the node's own flags (standby, leaving, maintenance...)
    std::map<std::uint32_t, PeerGroup> groups;  // what it last said of each group, by group id
    std::uint64_t sent_at = 0;  // its own clock when it sent its newest heartbeat (for our promise's grant)
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
    // What it said of group `id`; nothing said (INITIAL, no claim) when it
    // never spoke of it (it has no such group).
    const PeerGroup& group(std::uint32_t id) const;
    bool speaks_of(std::uint32_t id) const { return groups.contains(id); }
    // What it said of the default group, in its heartbeat's header: the state it announced.
    const PeerGroup& header() const { return group(kDefaultGroupId); }
    NodeState announced() const { return header().announced; }
    // TIMEDOUT once the dead time has passed, else the announced state.
    NodeState state() const { return timed_out ? NodeState::TimedOut : announced(); }
    bool standby_flag() const { return (flags & wire::kFlagStandby) != 0; }
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
    std::vector<std::size_t> links_changed;  // channels whose LinkHealth::lossy() changed
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

    // Marks `name` as timed out now, whenever it was last heard (Backend=etcd:
    // its member key is gone with its lease); false when it already was, or is unknown.
    bool time_out(const std::string& name);

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
    // Counts `sequence`, accepted on `channel`, in the peer's LinkHealth;
    // `new_run`: the first heartbeat of the record or of an incarnation.
    void count_link(Peer& p, std::uint64_t sequence, std::size_t channel, bool new_run, std::uint64_t newest_before,
                    Observation& obs);

    std::size_t channel_count_;
    bool trust_timed_out_;
    std::map<std::string, Peer> peers_;
};

}  // namespace freeha
