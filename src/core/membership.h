// The membership view: every peer learned from heartbeats, when and on which channel it was last heard.
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
    std::vector<std::uint64_t> heard;  // node ids the peer last said it hears
    Usec last_heard;
    std::vector<std::optional<Usec>> channel_last_heard;  // index = channel
    bool timed_out = false;

    bool reachable() const { return !timed_out; }
    // TIMEDOUT once the dead time has passed, else the announced state.
    NodeState state() const { return timed_out ? NodeState::TimedOut : announced; }
    bool standby_flag() const { return (flags & wire::kFlagStandby) != 0; }
    bool error_latched() const { return (flags & wire::kFlagErrorLatched) != 0; }
    bool hears(std::uint64_t node_id) const;
};

// What one heartbeat changed in the view, so that the caller can report it.
struct Observation {
    bool joined = false;     // first heard, or heard again after timing out
    bool restarted = false;  // a new incarnation of a known peer
    bool stale = false;      // an older incarnation than the one known: ignored
    bool replayed = false;   // a sequence number already heard on this channel, or too old: ignored
    bool redundant = false;  // new on this channel, but not newer than what was applied: channel health only
    std::optional<NodeState> previous_state;
};

class Membership {
public:
    explicit Membership(std::size_t channel_count) : channel_count_(channel_count) {}

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

private:
    std::size_t channel_count_;
    std::map<std::string, Peer> peers_;
};

}  // namespace freeha
