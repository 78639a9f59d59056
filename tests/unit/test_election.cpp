#include <gtest/gtest.h>

#include "core/election.h"

using namespace freeha;

struct QuorumCase {
    unsigned expected;
    unsigned runtime;
    unsigned startup;
};

class QuorumMath : public ::testing::TestWithParam<QuorumCase> {};

TEST_P(QuorumMath, MajorityAboveTwoNodesWaitForAllAtTwo) {
    EXPECT_EQ(quorum_votes_needed(GetParam().expected), GetParam().runtime);
    EXPECT_EQ(startup_votes_needed(GetParam().expected), GetParam().startup);
}

INSTANTIATE_TEST_SUITE_P(Table, QuorumMath,
                         ::testing::Values(QuorumCase{1, 1, 1}, QuorumCase{2, 1, 2}, QuorumCase{3, 2, 2},
                                           QuorumCase{4, 3, 3}, QuorumCase{5, 3, 3}, QuorumCase{6, 4, 4},
                                           QuorumCase{7, 4, 4}, QuorumCase{32, 17, 17}));

using S = NodeState;

struct ElectionCase {
    const char* rule;
    std::vector<Candidate> view;
    std::optional<std::string> elected;
};

class Election : public ::testing::TestWithParam<ElectionCase> {};

TEST_P(Election, FollowsFreeHA) { EXPECT_EQ(elected_node(GetParam().view), GetParam().elected) << GetParam().rule; }

INSTANTIATE_TEST_SUITE_P(
    Rules, Election,
    ::testing::Values(
        ElectionCase{"first STANDBY wins", {{"b", S::Standby}, {"a", S::Standby}, {"c", S::Standby}}, "a"},
        ElectionCase{"case-insensitive", {{"beta", S::Standby}, {"Alpha", S::Standby}}, "Alpha"},
        ElectionCase{"a RUNNING node blocks", {{"a", S::Standby}, {"b", S::Running}}, std::nullopt},
        ElectionCase{"a STARTING node blocks", {{"a", S::Standby}, {"b", S::Starting}}, std::nullopt},
        ElectionCase{"a STOPPING node blocks (the grace period)", {{"a", S::Standby}, {"b", S::Stopping}}, std::nullopt},
        ElectionCase{"an INITIAL node blocks", {{"a", S::Standby}, {"b", S::Initial}}, std::nullopt},
        ElectionCase{"ERRORED nodes are skipped", {{"a", S::Errored}, {"b", S::Standby}}, "b"},
        ElectionCase{"a latched error is skipped", {{"a", S::Standby, Role::Member, false, true}, {"b", S::Standby}}, "b"},
        ElectionCase{"admin standby is skipped", {{"a", S::Standby, Role::Member, true}, {"b", S::Standby}}, "b"},
        ElectionCase{"arbitrators never run services", {{"a", S::Standby, Role::Arbitrator}, {"b", S::Standby}}, "b"},
        ElectionCase{"nobody eligible", {{"a", S::Errored}, {"b", S::Standby, Role::Arbitrator}}, std::nullopt},
        ElectionCase{"empty view", {}, std::nullopt},
        ElectionCase{"a switchover target wins over an earlier name",
                     {{"a", S::Standby}, {"b", S::Standby, Role::Member, false, false, "c"}, {"c", S::Standby}}, "c"},
        ElectionCase{"the node handing over is not eligible itself",
                     {{"a", S::Standby, Role::Member, false, false, "c"}, {"b", S::Standby}}, "b"},
        ElectionCase{"an ineligible switchover target falls back to the rule",
                     {{"a", S::Standby, Role::Member, false, false, "c"}, {"b", S::Standby}, {"c", S::Errored}}, "b"},
        ElectionCase{"a switchover waits for the handing node's stop",
                     {{"a", S::Stopping, Role::Member, false, false, "c"}, {"c", S::Standby}}, std::nullopt}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });
