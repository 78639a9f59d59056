#include "core/claims.h"

#include <algorithm>
#include <functional>

#include "core/node_name.h"

namespace freeha {

Usec kill_margin(const LeaseTimings& t) { return t.interval / 2; }

Usec drift_allowance(Usec span) { return span / 1000 + Usec(1); }

Usec promise_grant(Usec sent_at, Usec dead_time) {
    if (sent_at == Usec()) return Usec();  // no send time (a malformed sender): no promise to state
    return sent_at + dead_time - drift_allowance(dead_time);
}

std::optional<Usec> lease_until(std::vector<Usec> grants, unsigned votes_needed) {
    std::sort(grants.begin(), grants.end(), std::greater<>());
    return lease_from(grants, votes_needed);
}

std::optional<Usec> lease_from(std::span<const Usec> latest_first, unsigned votes_needed) {
    if (votes_needed <= 1) return Usec::max();  // no vote needed but our own
    std::size_t k = votes_needed - 1;
    if (latest_first.size() < k) return std::nullopt;
    return latest_first[k - 1];
}

Usec graceful_stop_at(Usec lease, const LeaseTimings& t) { return lease - kill_margin(t) - t.fence_timeout; }

Usec kill_at(Usec lease, const LeaseTimings& t) { return lease - kill_margin(t); }

Usec self_fence_at(Usec lease, const LeaseTimings& t) { return lease - kill_margin(t) / 2; }

Usec clean_up_deadline(Usec started, const LeaseTimings& t) { return started + t.dead_time - 2 * t.interval; }

bool lease_allows_start(std::optional<Usec> lease, Usec now, const LeaseTimings& t) {
    return lease && now < graceful_stop_at(*lease, t);
}

Usec next_renewal(Usec last_sent, std::optional<Usec> lease, const LeaseTimings& t) {
    Usec regular = last_sent + t.interval;
    if (!lease) return regular;
    // An acknowledged heartbeat renews the lease to its send time + DeadTime,
    // so the lease should never lag now + DeadTime by more than an interval
    // and a round trip (a quarter interval, on a LAN). Once it does, a
    // renewal was lost: retry every eighth of an interval until one arrives.
    Usec overdue_at = *lease + t.interval + t.interval / 4 - t.dead_time;
    Usec quick = std::max(last_sent + std::max(t.interval / 8, Usec(1000)), overdue_at);
    return std::min(regular, quick);
}

Usec max_watchdog(Usec interval, Usec dead_time) { return std::max(dead_time - 2 * interval, Usec()); }

Usec max_fence_timeout(Usec interval, Usec dead_time) {
    LeaseTimings t{interval, dead_time, Usec()};
    return dead_time - kill_margin(t) - 2 * interval;
}

bool claim_outranks(std::uint64_t term, const std::string& claimant, std::uint64_t other_term,
                    const std::string& other_claimant) {
    if (term != other_term) return term > other_term;
    return node_name_before(claimant, other_claimant);
}

bool term_plausible(std::uint64_t term, std::uint64_t highest_known) {
    return term <= highest_known || term - highest_known <= kMaxTermJump;
}

bool TermBook::learn(std::uint64_t term, const std::string& claimant) {
    if (term > max_term_) {
        max_term_ = term;
        best_claimant_ = claimant;
        return true;
    }
    // (The same claimant again, as nearly every heartbeat says, is not before itself.)
    if (term == max_term_ && !claimant.empty() && claimant != best_claimant_ &&
        (best_claimant_.empty() || node_name_before(claimant, best_claimant_))) {
        best_claimant_ = claimant;
        return true;
    }
    return false;
}

std::uint64_t TermBook::next_term(const std::string& self) {
    if (max_term_ != kMaxTerm) max_term_ += 1;
    best_claimant_ = self;
    return max_term_;
}

}  // namespace freeha
