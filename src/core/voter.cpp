#include "core/voter.h"

#include <algorithm>

#include "core/claims.h"

namespace freeha {

bool Voter::promise(const std::string& claimant, std::uint64_t incarnation, std::uint64_t term, Usec sent_at,
                    Usec heard_at, Usec dead_time, Usec now) {
    std::uint64_t grant = promise_grant(sent_at, dead_time).count();
    Usec until = heard_at + dead_time;
    if (backs(claimant, incarnation, term) && grant_ != 0) {
        grant_ = std::max(grant_, grant);
        promise_until_ = std::max(promise_until_, until);
        return true;
    }
    if (live(now)) return false;
    claimant_ = claimant;
    claimant_incarnation_ = incarnation;
    term_ = term;
    grant_ = grant;
    promise_until_ = until;
    return true;
}

void Voter::release() { *this = Voter{}; }

void Voter::expire(Usec now) {
    if (!claimant_.empty() && !live(now)) release();
}

}  // namespace freeha
