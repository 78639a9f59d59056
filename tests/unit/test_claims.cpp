// The lease arithmetic, by table: grants, renewal, expiry, promises, and the limits the configuration must respect.
#include <gtest/gtest.h>

#include "core/claims.h"

using namespace freeha;
using namespace freeha::literals;

namespace {

const LeaseTimings kDefaults{200_ms, 1_s, 500_ms};
const LeaseTimings kLowLatency{50_ms, 250_ms, 100_ms};

struct LeaseCase {
    const char* what;
    std::vector<Usec> grants;
    unsigned votes_needed;
    std::optional<Usec> expected;
};

class LeaseUntil : public ::testing::TestWithParam<LeaseCase> {};

TEST_P(LeaseUntil, TheMajoritysLatestGrantsDecide) {
    EXPECT_EQ(lease_until(GetParam().grants, GetParam().votes_needed), GetParam().expected) << GetParam().what;
}

INSTANTIATE_TEST_SUITE_P(
    Table, LeaseUntil,
    ::testing::Values(
        LeaseCase{"3 nodes: one backer is enough", {10_s}, 2, 10_s},
        LeaseCase{"3 nodes: the later of two backers", {10_s, 12_s}, 2, 12_s},
        LeaseCase{"3 nodes: no backer, no lease", {}, 2, std::nullopt},
        LeaseCase{"5 nodes: two backers needed, the second latest counts", {10_s, 14_s, 12_s}, 3, 12_s},
        LeaseCase{"5 nodes: one backer is not enough", {14_s}, 3, std::nullopt},
        LeaseCase{"7 nodes: the third latest of five", {1_s, 5_s, 3_s, 4_s, 2_s}, 4, 3_s},
        LeaseCase{"a lone node needs no one (no quorum rules)", {}, 1, Usec::max()}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

TEST(Lease, APromiseGrantsTheVotersDeadTimeFromTheSendTimeLessTheDriftAllowance) {
    EXPECT_EQ(drift_allowance(1_s), 1_ms + 1_us);
    EXPECT_EQ(promise_grant(10_s, kDefaults.dead_time), 11_s - 1_ms - 1_us);
    EXPECT_EQ(promise_grant(10_s, kLowLatency.dead_time), 10_s + 250_ms - 250_us - 1_us);
    EXPECT_EQ(promise_grant(Usec(), 1_s), Usec());  // no send time: nothing granted
}

TEST(Lease, TheHolderStopsWithFenceTimeoutLeftAndKillsHalfAnIntervalBeforeTheEnd) {
    EXPECT_EQ(kill_margin(kDefaults), 100_ms);
    EXPECT_EQ(kill_at(20_s, kDefaults), 20_s - 100_ms);
    EXPECT_EQ(graceful_stop_at(20_s, kDefaults), 20_s - 600_ms);
    EXPECT_EQ(kill_at(20_s, kLowLatency), 20_s - 25_ms);
    EXPECT_EQ(graceful_stop_at(20_s, kLowLatency), 20_s - 125_ms);
}

TEST(Lease, AfterAKillTheCleanUpHasHalfTheKillMarginAndTheSelfFenceTheOtherHalf) {
    Usec lease = 10_s;
    EXPECT_EQ(kill_at(lease, kDefaults), 10_s - 100_ms);
    EXPECT_EQ(self_fence_at(lease, kDefaults), 10_s - 50_ms);
}

TEST(Lease, TheUnitsCleanUpEndsBeforeAPeerCanTakeOverAfterTheLastHeartbeat) {
    // Defaults: the last heartbeat went out up to 200ms before the death;
    // peers act a dead time (1s) after it; systemd's start of the clean-up and
    // the self-fence get half an interval each.
    EXPECT_EQ(clean_up_deadline(5_s, kDefaults), 5_s + 600_ms);
    LeaseTimings slow{1_s, 30_s, 10_s};
    EXPECT_EQ(clean_up_deadline(5_s, slow), 5_s + 28_s);
}

TEST(Lease, TheWatchdogEndsAHungHolderWithinTheCleanUpsWindow) {
    // The same window as the clean-up after a death: DeadTime less two intervals.
    EXPECT_EQ(max_watchdog(200_ms, 1_s), 600_ms);
    EXPECT_EQ(max_watchdog(1_s, 30_s), 28_s);
    EXPECT_EQ(max_watchdog(500_ms, 1_s), Usec());  // no watchdog is short enough
    EXPECT_EQ(max_watchdog(1_s, 1_s), Usec());
}

TEST(Lease, AClaimStartsOnlyWithTheWholeGracefulStopStillAhead) {
    EXPECT_FALSE(lease_allows_start(std::nullopt, 10_s, kDefaults));
    EXPECT_TRUE(lease_allows_start(11_s, 10_s, kDefaults));
    EXPECT_TRUE(lease_allows_start(10_s + 601_ms, 10_s, kDefaults));
    EXPECT_FALSE(lease_allows_start(10_s + 600_ms, 10_s, kDefaults));
    EXPECT_FALSE(lease_allows_start(9_s, 10_s, kDefaults));
}

struct RenewalCase {
    const char* what;
    Usec last_sent;
    std::optional<Usec> lease;
    Usec expected;
};

class Renewal : public ::testing::TestWithParam<RenewalCase> {};

TEST_P(Renewal, EveryIntervalAndFastOnceOverdue) {
    EXPECT_EQ(next_renewal(GetParam().last_sent, GetParam().lease, kDefaults), GetParam().expected)
        << GetParam().what;
}

INSTANTIATE_TEST_SUITE_P(
    Table, Renewal,
    ::testing::Values(
        RenewalCase{"no lease yet: regular", 10_s, std::nullopt, 10_s + 200_ms},
        RenewalCase{"just renewed by the last heartbeat: regular", 10_s, 11_s - 1_ms, 10_s + 200_ms},
        RenewalCase{"renewed by the one before: fast if the last one is not acknowledged within a quarter interval",
                    10_s, 10_s + 800_ms, 10_s + 50_ms},
        // Overdue at lease + interval + a quarter - dead time = 10.05s: fast from then on.
        RenewalCase{"one renewal late: fast once overdue", 10_s, 10_s + 800_ms - 50_ms - 1_ms, 10_s + 25_ms},
        RenewalCase{"long overdue: every eighth of an interval", 10_s + 300_ms, 10_s + 400_ms, 10_s + 325_ms},
        RenewalCase{"about to become overdue: at that moment", 10_s, 10_s + 900_ms, 10_s + 150_ms}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

TEST(Lease, FenceTimeoutMustLeaveTwoIntervalsOfTheLeaseForItsRenewal) {
    EXPECT_EQ(max_fence_timeout(200_ms, 1_s), 500_ms);   // the defaults fit exactly
    EXPECT_EQ(max_fence_timeout(50_ms, 250_ms), 125_ms);  // the low-latency profile: 100ms fits
    EXPECT_EQ(max_fence_timeout(200_ms, 3_s), 2_s + 500_ms);
    EXPECT_EQ(max_fence_timeout(1_s, 2_s), Usec());      // saturates: no room at all
}

TEST(Claims, TheHigherTermThenTheEarlierNameOutranks) {
    EXPECT_TRUE(claim_outranks(5, "zed", 4, "alpha"));
    EXPECT_FALSE(claim_outranks(4, "alpha", 5, "zed"));
    EXPECT_TRUE(claim_outranks(5, "Alpha", 5, "bravo"));  // case-insensitive, as the election
    EXPECT_FALSE(claim_outranks(5, "bravo", 5, "alpha"));
    EXPECT_FALSE(claim_outranks(5, "alpha", 5, "alpha"));
}

TEST(Claims, NewTermsAreAboveEveryTermHeardOf) {
    TermBook terms;
    EXPECT_TRUE(terms.learn(4, "bravo"));
    EXPECT_FALSE(terms.learn(3, "alpha"));
    EXPECT_TRUE(terms.learn(4, "alpha"));   // same term, earlier name: the better claim
    EXPECT_FALSE(terms.learn(4, "charlie"));
    EXPECT_EQ(terms.best_claimant(), "alpha");
    EXPECT_EQ(terms.next_term("zulu"), 5u);
    EXPECT_EQ(terms.max_term(), 5u);
    EXPECT_EQ(terms.best_claimant(), "zulu");
}

TEST(Terms, TheNextTermSaturatesInsteadOfWrappingToZero) {
    struct Case {
        std::uint64_t known, next;
    };
    for (const Case& c : {Case{0, 1}, Case{kMaxTerm - 2, kMaxTerm - 1}, Case{kMaxTerm - 1, kMaxTerm},
                          Case{kMaxTerm, kMaxTerm}}) {
        TermBook terms;
        terms.learn(c.known, "alpha");
        EXPECT_EQ(terms.next_term("bravo"), c.next) << "known " << c.known;
        EXPECT_EQ(terms.next_term("bravo"), c.next == kMaxTerm ? kMaxTerm : c.next + 1) << "known " << c.known;
    }
}

TEST(Terms, ATermIsPlausibleUpTo2To32AboveTheHighestKnown) {
    struct Case {
        std::uint64_t term, highest;
        bool plausible;
    };
    constexpr std::uint64_t kJump = std::uint64_t{1} << 32;
    for (const Case& c : {Case{0, 0, true}, Case{kJump, 0, true}, Case{kJump + 1, 0, false}, Case{3, 9, true},
                          Case{kMaxTerm, 0, false}, Case{kMaxTerm, kMaxTerm - kJump, true},
                          Case{kMaxTerm, kMaxTerm - kJump - 1, false}, Case{kMaxTerm, kMaxTerm, true}})
        EXPECT_EQ(term_plausible(c.term, c.highest), c.plausible) << c.term << " over " << c.highest;
}

}  // namespace
