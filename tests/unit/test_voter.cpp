// A voter's promises and a holder's grants, by table: a promise never shrinks, and a holder keeps each backer's largest grant.
#include <gtest/gtest.h>

#include "core/claims.h"
#include "core/holder.h"
#include "core/voter.h"

using namespace freeha;
using namespace freeha::literals;

namespace {

// One heartbeat of a claim reaching the voter, and what the voter must promise after it.
struct Beat {
    std::string claimant;
    std::uint64_t term;
    Usec sent_at;    // the claimant's clock
    Usec heard_at;   // the voter's clock (also "now")
    Usec dead_time;  // the voter's DeadTime= at that moment
    bool accepted;
    std::string backs;        // the claimant backed afterwards
    Usec grant;               // the grant stated afterwards
    Usec promise_until;       // and the promise's end on the voter's clock
};

struct VoterCase {
    const char* what;
    std::vector<Beat> beats;
};

class VoterPromises : public ::testing::TestWithParam<VoterCase> {};

TEST_P(VoterPromises, APromisesEndNeverMovesEarlier) {
    Voter v;
    int i = 0;
    for (const auto& b : GetParam().beats) {
        SCOPED_TRACE(std::string(GetParam().what) + ", heartbeat " + std::to_string(i++));
        v.expire(b.heard_at);
        EXPECT_EQ(v.promise(b.claimant, 1, b.term, b.sent_at, b.heard_at, b.dead_time, b.heard_at), b.accepted);
        EXPECT_EQ(v.claimant(), b.backs);
        EXPECT_EQ(Usec(v.grant()), b.grant);
        EXPECT_EQ(v.promise_until(), b.promise_until);
    }
}

// promise_grant(): sent at + DeadTime less 1/1000 of it and 1us.
INSTANTIATE_TEST_SUITE_P(
    Table, VoterPromises,
    ::testing::Values(
        VoterCase{"a first promise: DeadTime from the heartbeat, on both clocks",
                  {{"alpha", 3, 5_s, 7_s, 1_s, true, "alpha", 5_s + 1_s - 1001_us, 8_s}}},
        VoterCase{"DeadTime lowered from 10s to 1s: renewals keep the 10s promise until they pass it",
                  {{"alpha", 3, 5_s, 5_s, 10_s, true, "alpha", 15_s - 10001_us, 15_s},
                   {"alpha", 3, 6_s, 6_s, 1_s, true, "alpha", 15_s - 10001_us, 15_s},
                   {"alpha", 3, 14_s + 500_ms, 14_s + 500_ms, 1_s, true, "alpha", 15_s + 500_ms - 1001_us,
                    15_s + 500_ms}}},
        VoterCase{"DeadTime raised from 1s to 10s: the next renewal promises 10s",
                  {{"alpha", 3, 5_s, 5_s, 1_s, true, "alpha", 6_s - 1001_us, 6_s},
                   {"alpha", 3, 5_s + 200_ms, 5_s + 200_ms, 10_s, true, "alpha", 15_s + 200_ms - 10001_us,
                    15_s + 200_ms}}},
        VoterCase{"a heartbeat overtaken by a newer one renews nothing",
                  {{"alpha", 3, 6_s, 6_s, 1_s, true, "alpha", 7_s - 1001_us, 7_s},
                   {"alpha", 3, 5_s, 6_s + 10_ms, 1_s, true, "alpha", 7_s - 1001_us, 7_s + 10_ms}}},
        VoterCase{"another claim is refused while the promise lives, and backed once it has run out",
                  {{"alpha", 3, 5_s, 5_s, 1_s, true, "alpha", 6_s - 1001_us, 6_s},
                   {"bravo", 9, 5_s + 500_ms, 5_s + 500_ms, 1_s, false, "alpha", 6_s - 1001_us, 6_s},
                   {"alpha", 4, 5_s + 600_ms, 5_s + 600_ms, 1_s, false, "alpha", 6_s - 1001_us, 6_s},
                   {"bravo", 9, 6_s, 6_s, 1_s, true, "bravo", 7_s - 1001_us, 7_s}}},
        VoterCase{"a claimant without a send time gets no promise, and binds nobody",
                  {{"alpha", 3, 0_s, 5_s, 1_s, true, "alpha", 0_s, 6_s},
                   {"bravo", 9, 5_s, 5_s + 1_ms, 1_s, true, "bravo", 6_s - 1001_us, 6_s + 1_ms}}}),
    [](const auto& info) { return "Row" + std::to_string(info.index); });

TEST(Voter, APromiseIsLiveWhileItGrantsSomethingAndHasNotRunOut) {
    Voter v;
    EXPECT_FALSE(v.live(10_s));
    ASSERT_TRUE(v.promise("alpha", 1, 3, 9_s, 10_s, 1_s, 10_s));
    EXPECT_TRUE(v.live(10_s));
    EXPECT_TRUE(v.live(11_s - 1_us));
    EXPECT_FALSE(v.live(11_s));
    v.expire(11_s - 1_us);
    EXPECT_EQ(v.claimant(), "alpha");
    v.expire(11_s);
    EXPECT_EQ(v.claimant(), "");
}

TEST(Voter, OnlyAReleaseEndsALivePromiseEarly) {
    Voter v;
    ASSERT_TRUE(v.promise("alpha", 1, 3, 9_s, 10_s, 10_s, 10_s));
    v.expire(12_s);  // still live: nothing happens
    EXPECT_TRUE(v.backs("alpha", 1, 3));
    EXPECT_FALSE(v.backs("alpha", 1, 4));
    v.release();  // alpha says it holds nothing
    EXPECT_FALSE(v.live(12_s));
    EXPECT_TRUE(v.promise("bravo", 1, 9, 12_s, 12_s, 1_s, 12_s));
}

struct GrantCase {
    const char* what;
    std::vector<std::pair<std::string, Usec>> grants;  // recorded in order, at 10s, for a claim made at 9s
    unsigned votes_needed;
    std::optional<Usec> lease;
};

class HolderGrants : public ::testing::TestWithParam<GrantCase> {};

TEST_P(HolderGrants, EachBackersLargestPlausibleGrantCounts) {
    Holder h;
    h.claim(7, 9_s);
    for (const auto& [backer, grant] : GetParam().grants) h.record_grant(backer, grant, 10_s);
    EXPECT_EQ(h.lease(GetParam().votes_needed), GetParam().lease) << GetParam().what;
    EXPECT_EQ(h.term(), 7u);
}

INSTANTIATE_TEST_SUITE_P(
    Table, HolderGrants,
    ::testing::Values(
        GrantCase{"a smaller grant after a larger one changes nothing", {{"b", 12_s}, {"b", 11_s}}, 2, 12_s},
        GrantCase{"a grant from before the claim is ignored", {{"b", 8_s}}, 2, std::nullopt},
        GrantCase{"a grant beyond the longest promise is ignored", {{"b", 10_s + kMaxDeadTime + 1_us}}, 2,
                  std::nullopt},
        GrantCase{"5 nodes: the second largest of the backers' grants", {{"b", 12_s}, {"c", 11_s}, {"d", 13_s}}, 3,
                  12_s},
        GrantCase{"too few backers: no lease", {{"b", 12_s}}, 3, std::nullopt},
        GrantCase{"a larger grant replaces the backer's earlier one, which no longer counts", {{"b", 11_s}, {"b", 13_s}},
                  3, std::nullopt},
        GrantCase{"a backer's larger grant moves it up", {{"b", 11_s}, {"c", 12_s}, {"d", 13_s}, {"b", 14_s}}, 3,
                  13_s},
        GrantCase{"equal grants of two backers both count", {{"b", 12_s}, {"c", 12_s}, {"b", 13_s}}, 3, 12_s}),
    [](const auto& info) { return "Row" + std::to_string(info.index); });

TEST(Holder, ANewClaimForgetsTheGrantsOfTheLastOne) {
    Holder h;
    h.claim(7, 9_s);
    h.record_grant("b", 12_s, 10_s);
    h.claim(8, 11_s);
    EXPECT_EQ(h.lease(2), std::nullopt);
    EXPECT_EQ(h.term(), 8u);
}

}  // namespace
