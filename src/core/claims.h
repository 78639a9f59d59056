// Claims, promises and leases: which node may run the services, as pure arithmetic over what heartbeats say.
//
// A node that takes the services claims them with a term above every term it
// knows. Every other node backs at most one claim at a time: it promises to
// back no other claim until DeadTime after it heard the claimant's newest
// heartbeat (or until the claimant says it holds nothing), and states in
// each heartbeat the grant of that promise: the same end on the claimant's
// clock, the heartbeat's send time plus DeadTime less a drift allowance. The
// claimant's lease runs until a majority's grants have passed on its own
// clock; a claimant starts its services only inside a lease, and a
// holder begins its graceful stop when the lease has FenceTimeout left and
// kills at its end. Any majority that backs a new claim shares a node with
// the majority behind the old lease, and that node backed the new claim only
// once its promise (which outlasts the old lease) had run out: so the old
// holder's services are gone before the new claim can start. See
// freeha-safety(7) for the derivation and its assumptions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/timespan.h"

namespace freeha {

// The longest DeadTime= (config.cpp): no promise, and so no grant, reaches further ahead.
inline constexpr Usec kMaxDeadTime = 5 * 60 * kUsecPerSec;

struct LeaseTimings {
    Usec interval;
    Usec dead_time;      // also the length of a promise and of a lease
    Usec fence_timeout;  // the graceful stop's share of the lease
};

// What a holder keeps in hand at the end of its lease: its loop reacts to a
// deadline, and SIGKILL takes effect, within it. Half an interval.
Usec kill_margin(const LeaseTimings& t);
// Clock-rate drift allowed between two nodes over `span`: 1/1000 of it
// (CLOCK_MONOTONIC is slewed by NTP at most 500 ppm).
Usec drift_allowance(Usec span);
// What a promise of `dead_time` from hearing a heartbeat sent at `sent_at`
// grants its claimant, on the claimant's clock. The voter computes it with
// its own DeadTime=, so the claimant never assumes a longer promise than the
// voter keeps. 0 (no promise) for a heartbeat without a send time.
Usec promise_grant(Usec sent_at, Usec dead_time);
// A holder's lease: `votes_needed` - 1 backers must have granted it (the
// holder is the last vote); nullopt when fewer back it.
std::optional<Usec> lease_until(std::vector<Usec> grants, unsigned votes_needed);
// The same for grants sorted the latest first.
std::optional<Usec> lease_from(std::span<const Usec> latest_first, unsigned votes_needed);
// When the holder begins its graceful stop, and when it kills the services.
Usec graceful_stop_at(Usec lease, const LeaseTimings& t);
Usec kill_at(Usec lease, const LeaseTimings& t);
// When a holder whose kill, or clean-up after it, has not ended fences
// itself (SelfFence=): half the kill margin before the lease ends. The
// clean-up after a kill at kill_at() has the other half; the self-fence
// (reboot(2)) takes effect within what is left.
Usec self_fence_at(Usec lease, const LeaseTimings& t);
// When the unit's clean-up after freehad died (freehad --clean-up, run from
// `started`) must have ended: a peer may win a lease, or take over, a dead
// time after the last heartbeat, which went out up to an interval before the
// death; systemd may take half an interval to start the clean-up after the
// death, and the self-fence keeps the other half.
Usec clean_up_deadline(Usec started, const LeaseTimings& t);
// Whether a claim holding `lease` may start its services now: the whole
// graceful stop must still fit before the kill.
bool lease_allows_start(std::optional<Usec> lease, Usec now, const LeaseTimings& t);
// When a holder that sent its last heartbeat at `last_sent` sends the next:
// every interval, and every eighth of one once a renewal is overdue, so that
// lost acknowledgements are retried long before the lease runs low.
Usec next_renewal(Usec last_sent, std::optional<Usec> lease, const LeaseTimings& t);
// The longest WatchdogSec= that ends a hung freehad before a peer may start
// the services: a peer may take over DeadTime after the holder's last
// heartbeat, which went out up to an Interval before the hang, and systemd
// needs the other Interval to act on the death (start the unit's clean-up,
// which keeps half an interval for the self-fence). A longer watchdog only
// restarts a hung daemon, after its services may have run beside a peer's.
Usec max_watchdog(Usec interval, Usec dead_time);
// The longest FenceTimeout= a DeadTime= and Interval= leave room for: the
// lease must keep two intervals for its renewal.
Usec max_fence_timeout(Usec interval, Usec dead_time);

// A claim as nodes rank them: higher term first, then the alphabetically
// earlier claimant.
bool claim_outranks(std::uint64_t term, const std::string& claimant, std::uint64_t other_term,
                    const std::string& other_claimant);

// The highest term: next_term() stays there rather than wrap to 0.
inline constexpr std::uint64_t kMaxTerm = UINT64_MAX;
// How far above the highest term a node knows a heartbeat's term may be:
// terms rise by one per claim, so a real cluster never comes near it, while
// a forged heartbeat cannot lift every node's term to the top at once
// (reaching kMaxTerm takes 2^32 of them). Heartbeats beyond it are refused.
inline constexpr std::uint64_t kMaxTermJump = std::uint64_t{1} << 32;
bool term_plausible(std::uint64_t term, std::uint64_t highest_known);

// The terms this node has heard of: every new claim takes a term above them.
class TermBook {
public:
    // Records a claim heard of (term and claimant, "" if unknown); true when
    // it is the best one known so far.
    bool learn(std::uint64_t term, const std::string& claimant);
    // A term for a new claim by `self`, above every term known; kMaxTerm
    // once that is known (equal terms are ranked by claimant, so a claim
    // still outranks or yields to every other).
    std::uint64_t next_term(const std::string& self);

    std::uint64_t max_term() const { return max_term_; }
    const std::string& best_claimant() const { return best_claimant_; }

private:
    std::uint64_t max_term_ = 0;
    std::string best_claimant_;  // who claimed max_term_ (the earliest name on a tie); "" if unknown
};

}  // namespace freeha
