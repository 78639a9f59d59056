// What this node holds as a claimant: its claim's term, the grants its backers stated, and the lease they make.
//
// Each backer's grant stands until it runs out, whatever the backer says
// later: the backer's Voter keeps every promise it stated (voter.h), so the
// holder keeps the largest grant from each.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/timespan.h"

namespace freeha {

class Holder {
public:
    // A new claim with `term`, made at `now`: the grants of an earlier claim do not count.
    void claim(std::uint64_t term, Usec now);
    std::uint64_t term() const { return term_; }
    // A backer's grant to this claim (the claimant's clock). A grant that ends
    // before the claim was made, or beyond the longest promise from now, is
    // forged or broken and ignored.
    void record_grant(const std::string& backer, Usec grant, Usec now);
    // The lease `votes_needed` votes make (this node's own is the last one); nullopt when too few back it.
    std::optional<Usec> lease(unsigned votes_needed) const;

private:
    std::uint64_t term_ = 0;
    Usec claimed_at_;
    std::map<std::string, Usec> grants_;  // backer -> the largest grant of its promise to this claim
    // The values of grants_, the latest first: lease() is asked on every
    // wake-up and decision, a grant recorded once per acknowledgement.
    std::vector<Usec> latest_first_;
};

}  // namespace freeha
