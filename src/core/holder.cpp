#include "core/holder.h"

#include <algorithm>
#include <vector>

#include "core/claims.h"

namespace freeha {

void Holder::claim(std::uint64_t term, Usec now) {
    term_ = term;
    claimed_at_ = now;
    grants_.clear();
}

void Holder::record_grant(const std::string& backer, Usec grant, Usec now) {
    // No heartbeat of this claim was sent before claimed_at_, and none is sent in the future.
    if (grant < claimed_at_ || grant > now + kMaxDeadTime) return;
    Usec& best = grants_[backer];
    best = std::max(best, grant);
}

std::optional<Usec> Holder::lease(unsigned votes_needed) const {
    std::vector<Usec> grants;
    for (const auto& [name, grant] : grants_) grants.push_back(grant);
    return lease_until(std::move(grants), votes_needed);
}

}  // namespace freeha
