#include "core/holder.h"

#include <algorithm>
#include <functional>

#include "core/claims.h"

namespace freeha {

void Holder::claim(std::uint64_t term, Usec now) {
    term_ = term;
    claimed_at_ = now;
    grants_.clear();
    latest_first_.clear();
}

void Holder::record_grant(const std::string& backer, Usec grant, Usec now) {
    // No heartbeat of this claim was sent before claimed_at_, and none is sent in the future.
    if (grant < claimed_at_ || grant > now + kMaxDeadTime) return;
    auto [it, inserted] = grants_.try_emplace(backer, grant);
    if (!inserted) {
        if (grant <= it->second) return;
        // The backer's earlier grant gives way to this one.
        latest_first_.erase(std::find(latest_first_.begin(), latest_first_.end(), it->second));
        it->second = grant;
    }
    latest_first_.insert(std::upper_bound(latest_first_.begin(), latest_first_.end(), grant, std::greater<>()), grant);
}

std::optional<Usec> Holder::lease(unsigned votes_needed) const { return lease_from(latest_first_, votes_needed); }

}  // namespace freeha
