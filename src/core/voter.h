// What this node promised as a voter: the claim it backs and until when, under one rule: a promise never shrinks.
//
// A voter that backs a claim promises to back no other claim until its
// promise runs out, and tells the claimant how long that is (the grant, on
// the claimant's clock). The claimant's lease rests on the largest grant it
// has received from each voter, so nothing may end a promise earlier than a
// grant already stated: neither a reload that lowers DeadTime= (renewals
// take the later of the old and the new end) nor anything but the claimant
// itself saying that it no longer holds the claim. A restarted daemon has
// forgotten its promises: it backs nothing until the longest DeadTime= it
// may have promised with has passed (NodeSettings::previous_dead_time).
#pragma once

#include <cstdint>
#include <string>

#include "core/timespan.h"

namespace freeha {

class Voter {
public:
    const std::string& claimant() const { return claimant_; }  // "" when backing none
    // The incarnation of the claimant whose claim is backed: the grant is on its clock.
    std::uint64_t claimant_incarnation() const { return claimant_incarnation_; }
    std::uint64_t term() const { return term_; }
    // The promise's end on the claimant's clock (promise_grant()); 0: no live promise.
    std::uint64_t grant() const { return grant_; }
    // The promise's end on this node's clock: no other claim is backed before it.
    Usec promise_until() const { return promise_until_; }
    bool live(Usec now) const { return grant_ != 0 && now < promise_until_; }
    bool backs(const std::string& claimant, std::uint64_t incarnation, std::uint64_t term) const {
        return !claimant_.empty() && claimant == claimant_ && incarnation == claimant_incarnation_ && term == term_;
    }

    // Promises `dead_time` to a claim whose heartbeat was sent at `sent_at`
    // (the clock of the claimant's run `incarnation`) and heard at `heard_at`
    // (ours). Renewing the claim already backed moves both ends only later;
    // another claim (a restarted claimant's too: its clock may have started
    // over) is backed only once the live promise has run out (returns false then).
    bool promise(const std::string& claimant, std::uint64_t incarnation, std::uint64_t term, Usec sent_at,
                 Usec heard_at, Usec dead_time, Usec now);
    // The promise has nothing left to protect: the claimant says it holds
    // nothing or holds another claim, or it is this node's own claim now
    // (elected only once no promise binds it; forced on the operator's word).
    void release();
    // Forgets a promise that has run out.
    void expire(Usec now);

private:
    std::string claimant_;
    std::uint64_t claimant_incarnation_ = 0;
    std::uint64_t term_ = 0;
    std::uint64_t grant_ = 0;
    Usec promise_until_;
};

}  // namespace freeha
