#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>

#include "core/placement.h"

using namespace freeha;

namespace {

using P = PlacementPolicy;
using Nodes = std::vector<std::string>;

GroupPlacement rdv(std::string name) { return {std::move(name), P::Rendezvous, {}}; }
GroupPlacement listed(std::string name, Nodes nodes) { return {std::move(name), P::Listed, std::move(nodes)}; }
GroupPlacement alpha(std::string name) { return {std::move(name), P::Alphabetical, {}}; }

std::vector<GroupPlacement> rendezvous_groups(std::size_t count, const std::string& prefix = "group-") {
    std::vector<GroupPlacement> groups;
    for (std::size_t i = 1; i <= count; ++i) groups.push_back(rdv(prefix + std::to_string(i)));
    return groups;
}

Nodes node_names(std::size_t count, const std::string& prefix = "node") {
    Nodes nodes;
    for (std::size_t i = 1; i <= count; ++i) nodes.push_back(prefix + std::to_string(i));
    return nodes;
}

std::map<std::string, std::size_t> loads(const Placement& placement) {
    std::map<std::string, std::size_t> load;
    for (const auto& entry : placement) ++load[entry.second];
    return load;
}

std::size_t max_load(const Placement& placement) {
    std::size_t max = 0;
    for (const auto& entry : loads(placement)) max = std::max(max, entry.second);
    return max;
}

std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

Nodes without(Nodes nodes, const std::string& gone) {
    nodes.erase(std::remove(nodes.begin(), nodes.end(), gone), nodes.end());
    return nodes;
}

// A random name of the characters node and group names are made of.
std::string random_name(std::mt19937_64& rng) {
    static constexpr std::string_view kChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    std::uniform_int_distribution<std::size_t> length(1, 12), pick(0, kChars.size() - 1);
    std::string name(length(rng), ' ');
    for (auto& c : name) c = kChars[pick(rng)];
    return name;
}

}  // namespace

TEST(PlacementPolicyNames, OneNamePerValue) {
    EXPECT_EQ(kPlacementPolicyNames(P::Alphabetical), "alphabetical");
    EXPECT_EQ(kPlacementPolicyNames(P::Listed), "listed");
    EXPECT_EQ(kPlacementPolicyNames(P::Rendezvous), "rendezvous");
    EXPECT_EQ(kPlacementPolicyNames.parse("listed"), P::Listed);
    EXPECT_EQ(kPlacementPolicyNames.parse("hash"), std::nullopt);
    EXPECT_EQ(kPlacementPolicyNames.expected(), "'alphabetical', 'listed' or 'rendezvous'");
}

// The weights are part of the protocol (every node, of any version, must
// order the nodes the same): these values come from an independent
// implementation of FNV-1a 64 of "group\0lowercase(node)" then splitmix64's finalizer.
struct WeightCase {
    const char* group;
    const char* node;
    std::uint64_t weight;
};

class RendezvousWeight : public ::testing::TestWithParam<WeightCase> {};

TEST_P(RendezvousWeight, MatchesTheReference) {
    EXPECT_EQ(rendezvous_weight(GetParam().group, GetParam().node), GetParam().weight)
        << GetParam().group << " / " << GetParam().node;
}

INSTANTIATE_TEST_SUITE_P(Golden, RendezvousWeight,
                         ::testing::Values(WeightCase{"web", "alpha", 0x6d899c48e23613c9ULL},
                                           WeightCase{"web", "Alpha", 0x6d899c48e23613c9ULL},
                                           WeightCase{"web", "ALPHA", 0x6d899c48e23613c9ULL},
                                           WeightCase{"db", "alpha", 0xf5349c0887b8730aULL},
                                           WeightCase{"web", "bravo", 0x8c354939bd9c25d0ULL},
                                           WeightCase{"", "a", 0x16bc26fa3458bfadULL},
                                           WeightCase{"group-7", "node-12", 0x3474bf2bf6690527ULL},
                                           WeightCase{"web", "node1", 0xecb1312acd515dadULL},
                                           WeightCase{"web", "node2", 0xa6ffce42bf02e2deULL}));

TEST(RendezvousWeight, TheSeparatorKeepsSplitsApart) {
    EXPECT_NE(rendezvous_weight("ab", "c"), rendezvous_weight("a", "bc"));
}

struct OrderCase {
    const char* rule;
    GroupPlacement group;
    Nodes nodes;
    Nodes order;
};

class PreferenceOrder : public ::testing::TestWithParam<OrderCase> {};

TEST_P(PreferenceOrder, Rule) {
    const auto& c = GetParam();
    EXPECT_EQ(preference_order(c.group, c.nodes), c.order) << c.rule;
    // Whatever order the nodes come in.
    Nodes reversed(c.nodes.rbegin(), c.nodes.rend());
    EXPECT_EQ(preference_order(c.group, reversed), c.order) << c.rule << " (nodes reversed)";
}

// Rendezvous orders from the reference implementation.
INSTANTIATE_TEST_SUITE_P(
    Rules, PreferenceOrder,
    ::testing::Values(
        OrderCase{"alphabetical is FreeHA's election order", alpha("services"), {"charlie", "Bravo", "alpha"},
                  {"alpha", "Bravo", "charlie"}},
        OrderCase{"names equal but for case keep their bytes' order", alpha("services"), {"b", "alpha", "Alpha"},
                  {"Alpha", "alpha", "b"}},
        OrderCase{"rendezvous web", rdv("web"), {"alpha", "bravo", "charlie", "delta"},
                  {"delta", "bravo", "alpha", "charlie"}},
        OrderCase{"rendezvous db", rdv("db"), {"charlie", "delta", "alpha", "bravo"},
                  {"alpha", "bravo", "delta", "charlie"}},
        OrderCase{"rendezvous is case-insensitive", rdv("web"), {"ALPHA", "Bravo", "charlie", "deltA"},
                  {"deltA", "Bravo", "ALPHA", "charlie"}},
        OrderCase{"listed nodes first, the rest in rendezvous order", listed("web", {"charlie", "alpha"}),
                  {"alpha", "bravo", "charlie", "delta"}, {"charlie", "alpha", "delta", "bravo"}},
        OrderCase{"listed: ineligible names skipped, case ignored, repeats once",
                  listed("web", {"echo", "CHARLIE", "charlie", "alpha"}), {"alpha", "bravo", "charlie", "delta"},
                  {"charlie", "alpha", "delta", "bravo"}},
        OrderCase{"listed with no list is rendezvous", listed("web", {}), {"alpha", "bravo", "charlie", "delta"},
                  {"delta", "bravo", "alpha", "charlie"}},
        OrderCase{"a node named twice counts once", rdv("web"), {"alpha", "bravo", "alpha"}, {"bravo", "alpha"}},
        OrderCase{"rendezvous: names equal but for case weigh the same, in their bytes' order", rdv("web"),
                  {"alpha", "bravo", "Alpha"}, {"bravo", "Alpha", "alpha"}},
        OrderCase{"listed: a name spelt exactly beats one equal but for case", listed("web", {"alpha"}),
                  {"Alpha", "alpha", "bravo"}, {"alpha", "bravo", "Alpha"}},
        OrderCase{"no nodes", rdv("web"), {}, {}}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

struct PlaceCase {
    const char* rule;
    std::vector<GroupPlacement> groups;
    Nodes nodes;
    Placement current;
    Placement expected;
};

class Place : public ::testing::TestWithParam<PlaceCase> {};

TEST_P(Place, Rule) {
    const auto& c = GetParam();
    EXPECT_EQ(place(c.groups, c.nodes, c.current), c.expected) << c.rule;
}

const Nodes kFour{"alpha", "bravo", "charlie", "delta"};

// Rendezvous expectations from the reference implementation: web prefers
// delta, bravo, alpha, charlie; db alpha, bravo, delta, charlie; mail delta,
// charlie, bravo, alpha; dns charlie, delta, alpha, bravo; "a" bravo, delta, alpha, charlie.
INSTANTIATE_TEST_SUITE_P(
    Rules, Place,
    ::testing::Values(
        PlaceCase{"the default group alone keeps FreeHA's rule", {alpha("services")}, {"charlie", "Bravo", "delta"},
                  {}, {{"services", "Bravo"}}},
        PlaceCase{"alphabetical groups ignore the cap", {alpha("a"), alpha("b"), alpha("c")}, {"bravo", "alpha", "charlie"},
                  {}, {{"a", "alpha"}, {"b", "alpha"}, {"c", "alpha"}}},
        PlaceCase{"listed groups ignore the cap", {listed("a", {"bravo"}), listed("b", {"bravo", "alpha"})},
                  {"alpha", "bravo"}, {}, {{"a", "bravo"}, {"b", "bravo"}}},
        PlaceCase{"listed: the first eligible listed node", {listed("web", {"echo", "Charlie", "alpha"})}, kFour, {},
                  {{"web", "charlie"}}},
        PlaceCase{"each group on its first node below the cap (1)",
                  {rdv("web"), rdv("db"), rdv("mail"), rdv("dns")}, kFour, {},
                  {{"db", "alpha"}, {"dns", "charlie"}, {"mail", "delta"}, {"web", "bravo"}}},
        PlaceCase{"each group on its first node below the cap (2)",
                  {rdv("web"), rdv("db"), rdv("mail"), rdv("dns")}, {"alpha", "bravo", "charlie"}, {},
                  {{"db", "alpha"}, {"dns", "charlie"}, {"mail", "charlie"}, {"web", "bravo"}}},
        PlaceCase{"pinned groups are counted before the spread", {rdv("a"), listed("z", {"bravo"})}, kFour, {},
                  {{"a", "delta"}, {"z", "bravo"}}},
        PlaceCase{"listed, none eligible: spread in rendezvous order",
                  {rdv("web"), rdv("db"), rdv("mail"), rdv("dns"), listed("zz", {"echo", "foxtrot"})}, kFour, {},
                  {{"db", "alpha"}, {"dns", "charlie"}, {"mail", "delta"}, {"web", "delta"}, {"zz", "bravo"}}},
        PlaceCase{"no fail-back: a running group stays",
                  {rdv("web"), listed("pinned", {"alpha"}), alpha("first")}, kFour,
                  {{"web", "charlie"}, {"pinned", "delta"}, {"first", "bravo"}},
                  {{"web", "charlie"}, {"pinned", "delta"}, {"first", "bravo"}}},
        PlaceCase{"running groups stay above the cap and count", {rdv("web"), rdv("db"), rdv("mail"), rdv("dns")},
                  kFour, {{"web", "alpha"}, {"mail", "alpha"}, {"dns", "alpha"}},
                  {{"web", "alpha"}, {"mail", "alpha"}, {"dns", "alpha"}, {"db", "bravo"}}},
        PlaceCase{"a group on a node not eligible is placed again", {rdv("web")}, kFour, {{"web", "echo"}},
                  {{"web", "delta"}}},
        PlaceCase{"the running node's name is matched case-insensitively", {rdv("web")}, kFour, {{"web", "ALPHA"}},
                  {{"web", "alpha"}}},
        PlaceCase{"the running node spelt exactly beats one equal but for case", {rdv("web"), listed("db", {"alpha"})},
                  {"Alpha", "alpha"}, {{"web", "alpha"}}, {{"db", "alpha"}, {"web", "alpha"}}},
        PlaceCase{"groups unknown to the configuration are ignored", {rdv("web"), rdv("db")}, {"alpha", "bravo"},
                  {{"old", "alpha"}, {"older", "alpha"}}, {{"db", "alpha"}, {"web", "bravo"}}},
        PlaceCase{"no eligible node: nothing placed", {rdv("web"), alpha("services")}, {}, {{"web", "alpha"}}, {}},
        PlaceCase{"no groups", {}, kFour, {}, {}}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

// The bound: with N nodes up and G groups, no node runs more than
// ceil(G/N) at start-up, and every group runs.
TEST(PlaceProperties, StartUpNeverExceedsTheCap) {
    for (std::size_t g = 1; g <= 64; ++g) {
        const auto groups = rendezvous_groups(g);
        for (std::size_t n = 1; n <= 16; ++n) {
            const Nodes nodes = node_names(n);
            const Placement placed = place(groups, nodes, {});
            ASSERT_EQ(placed.size(), g) << g << " groups, " << n << " nodes";
            for (const auto& [group, node] : placed)
                ASSERT_NE(std::find(nodes.begin(), nodes.end(), node), nodes.end()) << group << " on " << node;
            ASSERT_LE(max_load(placed), ceil_div(g, n)) << g << " groups, " << n << " nodes";
        }
    }
}

TEST(PlaceProperties, TwentyGroupsOnFiveNodesRunFourEach) {
    const Placement placed = place(rendezvous_groups(20, "web-"), node_names(5), {});
    ASSERT_EQ(placed.size(), 20u);
    const std::map<std::string, std::size_t> expected{{"node1", 4}, {"node2", 4}, {"node3", 4}, {"node4", 4}, {"node5", 4}};
    EXPECT_EQ(loads(placed), expected);
}

// A node leaving moves only its own groups, each (in group-name order) to the
// first node of its order still below the new cap.
TEST(PlaceProperties, ANodeLeavingMovesOnlyItsGroups) {
    for (std::size_t g = 1; g <= 40; g += 3) {
        const auto groups = rendezvous_groups(g);
        for (std::size_t n = 2; n <= 9; ++n) {
            const Nodes nodes = node_names(n);
            const Placement before = place(groups, nodes, {});
            for (const auto& gone : nodes) {
                const Nodes left = without(nodes, gone);
                const Placement after = place(groups, left, before);
                ASSERT_EQ(after.size(), g);
                const std::size_t cap = ceil_div(g, left.size());
                std::map<std::string, std::size_t> load;
                for (const auto& [group, node] : before) {
                    if (node == gone) continue;
                    ASSERT_EQ(after.at(group), node) << group << " moved though " << gone << " left";
                    ++load[node];
                }
                for (const auto& [group, node] : before) {  // the map's order: group-name order
                    if (node != gone) continue;
                    const Nodes order = preference_order(rdv(group), left);
                    auto next = std::find_if(order.begin(), order.end(),
                                             [&load, cap](const std::string& candidate) { return load[candidate] < cap; });
                    ASSERT_NE(next, order.end());
                    EXPECT_EQ(after.at(group), *next) << group << " left " << gone;
                    ++load[*next];
                }
                EXPECT_LE(max_load(after), cap);
            }
        }
    }
}

TEST(PlaceProperties, ANodeJoiningMovesNothing) {
    for (std::size_t g = 1; g <= 40; g += 3) {
        const auto groups = rendezvous_groups(g);
        for (std::size_t n = 1; n <= 8; ++n) {
            const Placement before = place(groups, node_names(n), {});
            EXPECT_EQ(place(groups, node_names(n + 1), before), before) << g << " groups, " << n << " + 1 nodes";
        }
    }
}

TEST(PlaceProperties, TheInputOrderChangesNothing) {
    std::mt19937_64 rng(20);
    for (int round = 0; round < 200; ++round) {
        Nodes nodes = node_names(1 + rng() % 9, round % 2 ? "Node-" : "n");
        std::vector<GroupPlacement> groups;
        Placement current;
        const std::size_t g = 1 + rng() % 30;
        for (std::size_t i = 0; i < g; ++i) {
            const std::string name = "g" + std::to_string(i);
            switch (rng() % 4) {
                case 0: groups.push_back(alpha(name)); break;
                case 1: groups.push_back(listed(name, {nodes[rng() % nodes.size()], "absent"})); break;
                default: groups.push_back(rdv(name)); break;
            }
            if (rng() % 3 == 0) current[name] = rng() % 4 == 0 ? "absent" : nodes[rng() % nodes.size()];
        }
        const Placement expected = place(groups, nodes, current);
        ASSERT_EQ(expected.size(), g);
        for (int shuffle = 0; shuffle < 5; ++shuffle) {
            std::shuffle(nodes.begin(), nodes.end(), rng);
            std::shuffle(groups.begin(), groups.end(), rng);
            ASSERT_EQ(place(groups, nodes, current), expected) << "round " << round;
        }
    }
}

// 1000 random sets of group and node names (any length, case, digits): the
// bound holds for names an admin would pick, not only for "node1".."nodeN".
TEST(PlaceDistribution, RandomNamesNeverExceedTheCap) {
    std::mt19937_64 rng(1000);
    for (int round = 0; round < 1000; ++round) {
        std::set<std::string> group_names, node_set;
        const std::size_t g = 1 + rng() % 64, n = 1 + rng() % 16;
        while (group_names.size() < g) group_names.insert(random_name(rng));
        while (node_set.size() < n) node_set.insert(random_name(rng));
        std::vector<GroupPlacement> groups;
        for (const auto& name : group_names) groups.push_back(rdv(name));
        const Nodes nodes(node_set.begin(), node_set.end());
        const Placement placed = place(groups, nodes, {});
        ASSERT_EQ(placed.size(), g) << "round " << round;
        ASSERT_LE(max_load(placed), ceil_div(g, n)) << "round " << round << ": " << g << " groups, " << n << " nodes";
    }
}

// The hash spreads single groups evenly over nodes whose names differ only
// in their last characters (what FNV-1a alone spreads poorly): each node is
// the first choice of 1/N of the groups, within 10 % (over 4 standard
// deviations for these counts).
TEST(PlaceDistribution, FirstChoicesAreEven) {
    constexpr std::size_t kGroups = 20000;
    for (std::size_t n : {2u, 3u, 5u, 8u, 16u}) {
        const Nodes nodes = node_names(n);
        std::map<std::string, std::size_t> first;
        for (std::size_t i = 0; i < kGroups; ++i) ++first[preference_order(rdv("group-" + std::to_string(i)), nodes).front()];
        const double expected = double(kGroups) / double(n);
        ASSERT_EQ(first.size(), n);
        for (const auto& [node, count] : first)
            EXPECT_NEAR(double(count), expected, expected * 0.10) << node << " of " << n << " nodes";
    }
}

// When a node leaves, its groups go to their second choice: those must spread
// evenly too, so each ordered pair (first, second) is as likely as any other.
TEST(PlaceDistribution, SecondChoicesAreEven) {
    constexpr std::size_t kGroups = 24000;
    const Nodes nodes = node_names(4, "web-");
    std::map<std::pair<std::string, std::string>, std::size_t> pairs;
    for (std::size_t i = 0; i < kGroups; ++i) {
        const Nodes order = preference_order(rdv("vip" + std::to_string(i)), nodes);
        ++pairs[{order[0], order[1]}];
    }
    ASSERT_EQ(pairs.size(), 12u);
    const double expected = double(kGroups) / 12.0;
    for (const auto& [pair, count] : pairs)
        EXPECT_NEAR(double(count), expected, expected * 0.10) << pair.first << " then " << pair.second;
}

struct RebalanceCase {
    const char* rule;
    std::vector<GroupPlacement> groups;
    Nodes nodes;
    Placement current;
    std::vector<PlannedMove> moves;  // in order, until nullopt
};

class Rebalance : public ::testing::TestWithParam<RebalanceCase> {};

TEST_P(Rebalance, Moves) {
    const auto& c = GetParam();
    Placement current = c.current;
    std::vector<PlannedMove> moves;
    while (auto move = next_rebalance_move(c.groups, c.nodes, current)) {
        moves.push_back(*move);
        current[move->group] = move->to;
        ASSERT_LE(moves.size(), c.groups.size()) << c.rule;
    }
    EXPECT_EQ(moves, c.moves) << c.rule;
}

// Listed groups make the ideal placement explicit.
INSTANTIATE_TEST_SUITE_P(
    Rules, Rebalance,
    ::testing::Values(
        RebalanceCase{"already even", {rdv("web"), rdv("db")}, {"alpha", "bravo"}, {{"db", "alpha"}, {"web", "bravo"}}, {}},
        RebalanceCase{"nothing runs", {rdv("web"), rdv("db")}, {"alpha", "bravo"}, {}, {}},
        RebalanceCase{"a group not running is not moved", {listed("web", {"bravo"}), listed("db", {"alpha"})},
                      {"alpha", "bravo"}, {{"web", "bravo"}}, {}},
        RebalanceCase{"a group on a node gone is not switched over", {listed("web", {"bravo"})}, {"alpha", "bravo"},
                      {{"web", "charlie"}}, {}},
        RebalanceCase{"a joined node gets its share", {rdv("web"), rdv("db")}, {"alpha", "bravo"},
                      {{"db", "alpha"}, {"web", "alpha"}}, {{"web", "alpha", "bravo"}}},
        RebalanceCase{"the busiest node first, then by group name",
                      {listed("g1", {"a"}), listed("g2", {"b"}), listed("g3", {"c"}), listed("g4", {"b"})},
                      {"a", "b", "c"},
                      {{"g1", "a"}, {"g3", "a"}, {"g4", "a"}, {"g2", "c"}},
                      {{"g4", "a", "b"}, {"g3", "a", "c"}, {"g2", "c", "b"}}},
        RebalanceCase{"equal gaps go by group name",
                      {listed("g1", {"b"}), listed("g2", {"a"})}, {"a", "b"}, {{"g1", "a"}, {"g2", "b"}},
                      {{"g1", "a", "b"}, {"g2", "b", "a"}}},
        RebalanceCase{"the running node's name as the nodes spell it", {listed("web", {"bravo"})}, {"alpha", "bravo"},
                      {{"web", "ALPHA"}}, {{"web", "alpha", "bravo"}}}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

// Random clusters (mixed policies; groups running, not running, or on a node
// gone): rebalancing ends within G moves, never moves a group twice, only
// moves running groups from where they run, and ends at the ideal placement.
TEST(RebalanceProperties, ConvergesToTheIdealPlacement) {
    std::mt19937_64 rng(7);
    for (int round = 0; round < 500; ++round) {
        const Nodes nodes = node_names(1 + rng() % 8);
        std::vector<GroupPlacement> groups;
        Placement current;
        const std::size_t g = 1 + rng() % 24;
        for (std::size_t i = 0; i < g; ++i) {
            const std::string name = "g" + std::to_string(i);
            groups.push_back(rng() % 5 == 0 ? listed(name, {nodes[rng() % nodes.size()]}) : rdv(name));
            switch (rng() % 4) {
                case 0: break;  // not running
                case 1: current[name] = "gone"; break;
                default: current[name] = nodes[rng() % nodes.size()]; break;
            }
        }
        const Placement ideal = place(groups, nodes, {});
        std::set<std::string> moved;
        while (auto move = next_rebalance_move(groups, nodes, current)) {
            ASSERT_TRUE(moved.insert(move->group).second) << move->group << " moved twice, round " << round;
            ASSERT_LE(moved.size(), g);
            ASSERT_EQ(current.at(move->group), move->from) << "round " << round;
            ASSERT_EQ(move->to, ideal.at(move->group)) << "round " << round;
            current[move->group] = move->to;
        }
        for (const auto& [group, node] : current) {
            if (node == "gone") continue;
            EXPECT_EQ(node, ideal.at(group)) << group << ", round " << round;
        }
    }
}
