// Whole-cluster scenarios on the simulated network and fake clock.
#include <gtest/gtest.h>

#include "sim/sim_cluster.h"

using namespace freeha;
using namespace freeha::sim;

namespace {

constexpr Usec ms = kUsecPerMsec;
constexpr Usec sec = kUsecPerSec;

NodeSettings base(unsigned expected) {
    NodeSettings s;
    s.cluster_name = "sim";
    s.expected_nodes = expected;
    return s;  // default timings: 200ms interval, 1s dead time
}

// Tracks the longest stretch with services up on more than one node.
struct OverlapWatch {
    SimCluster& c;
    Usec since;
    Usec longest;
    void operator()() {
        if (c.services_up().size() > 1) {
            if (since == Usec()) since = c.now();
            longest = std::max(longest, c.now() - since);
        } else {
            since = Usec();
        }
    }
};

}  // namespace

TEST(Simulation, AFreshClusterRunsTheServicesOnTheFirstNodeOnly) {
    SimCluster c({"c", "a", "b"}, base(3));
    c.start("c");
    c.run_for(100 * ms);
    c.start("b");
    c.run_for(100 * ms);
    c.start("a");
    OverlapWatch watch{c, Usec(), Usec()};
    c.run_for(5 * sec, std::ref(watch));
    EXPECT_EQ(c.running(), std::vector<std::string>{"a"});
    EXPECT_EQ(c["b"].groups[0].starts + c["c"].groups[0].starts, 0u);
    EXPECT_EQ(watch.longest, Usec());
}

TEST(Simulation, ACrashedActiveNodeIsReplacedAfterDeadTimeAndTakeoverDelayAndIsNotFailedBackTo) {
    SimCluster c({"a", "b", "c"}, base(3));
    c.start_all();
    c.run_for(5 * sec);
    ASSERT_EQ(c.running(), std::vector<std::string>{"a"});
    c.crash("a");
    Usec crashed = c.now();
    Usec took_over;
    c.run_for(8 * sec, [&] {
        if (took_over == Usec() && c.running() == std::vector<std::string>{"b"}) took_over = c.now();
    });
    ASSERT_NE(took_over, Usec());
    // About a dead time: the voters' promises run out when they time the
    // holder out, they back the claim at once, then starthasrv (50ms here).
    NodeSettings s = base(3);
    EXPECT_GE(took_over - crashed, s.dead_time - s.interval);
    EXPECT_LT(took_over - crashed, s.dead_time + s.interval + 100 * ms);
    c.start("a");
    c.run_for(10 * sec);
    EXPECT_EQ(c.running(), std::vector<std::string>{"b"});
    EXPECT_EQ(c["a"].node->state(), NodeState::Standby);
}

TEST(Simulation, AnIsolatedActiveNodeStopsAndTheMajorityTakesOverThenHealingKeepsOne) {
    SimCluster c({"a", "b", "c"}, base(3));
    c.start_all();
    c.run_for(5 * sec);
    ASSERT_EQ(c.running(), std::vector<std::string>{"a"});
    c.partition({"a"});
    c.run_for(5 * sec);
    EXPECT_EQ(c.running(), std::vector<std::string>{"b"});
    EXPECT_EQ(c["a"].node->state(), NodeState::Standby);
    EXPECT_FALSE(c["a"].groups[0].services_up);
    c.heal();
    c.run_for(5 * sec);
    EXPECT_EQ(c.running(), std::vector<std::string>{"b"});
}

// Nodes whose DeadTime= differs (one reloaded first, or a mismatched file):
// each voter states its own promise, so the holder's lease never outlasts it.
TEST(Simulation, AHolderWithALongerDeadTimeThanItsVotersStillStopsBeforeTheyMoveOn) {
    SimCluster c({"a", "b", "c"}, base(3));
    c.start_all();
    c.run_for(5 * sec);
    ASSERT_EQ(c.running(), std::vector<std::string>{"a"});
    NodeSettings longer = c["a"].node->settings();
    longer.dead_time = 10 * sec;
    (void)c["a"].node->reconfigure(longer, c.now());
    c.run_for(1 * sec);
    c.partition({"a"});
    OverlapWatch overlap{c, Usec(), Usec()};
    c.run_for(15 * sec, overlap);
    EXPECT_EQ(overlap.longest, Usec());
    EXPECT_EQ(c.running(), std::vector<std::string>{"b"});
}

// The simulator keeps each core's wake-up between steps; a core the test
// calls itself between runs is asked again (here: a shorter interval takes
// effect at once, not at the wake-up the old one had set).
TEST(Simulation, ACoreCalledDirectlyBetweenRunsWakesWhenItNowSays) {
    NodeSettings s = base(1);
    s.interval = 1 * sec;
    s.dead_time = 3 * sec;
    s.groups.front().monitor_interval = 60 * sec;
    SimCluster c({"a"}, s);  // alone: its steps are its own wake-ups
    c.start_all();
    c.run_for(10 * sec);
    c.run_until(*c["a"].node->next_wakeup(c.now()) + 1 * ms);  // a heartbeat went out: the next is a second away
    NodeSettings quicker = c["a"].node->settings();
    quicker.interval = 10 * ms;
    (void)c["a"].node->reconfigure(quicker, c.now());
    std::uint64_t steps = c.steps();
    c.run_for(500 * ms);
    EXPECT_GE(c.steps() - steps, 45u);  // a heartbeat every 10ms from now
}

// The checks' shortcuts agree with services_up().
TEST(Simulation, ServicesUpCountAndComparisonAgreeWithTheList) {
    SimCluster c({"a", "b", "c"}, base(3));
    EXPECT_EQ(c.services_up_count(), 0u);
    EXPECT_TRUE(c.services_up_on({}));
    EXPECT_FALSE(c.services_up_on({"a"}));
    c["a"].groups[0].services_up = true;
    c["c"].groups[0].services_up = true;
    EXPECT_EQ(c.services_up_count(), c.services_up().size());
    EXPECT_TRUE(c.services_up_on({"a", "c"}));
    EXPECT_FALSE(c.services_up_on({"a"}));
    EXPECT_FALSE(c.services_up_on({"c", "a"}));
    EXPECT_FALSE(c.services_up_on({"a", "b", "c"}));
}

TEST(Simulation, AVoterWithAShorterDeadTimeThanTheHolderBindsItToTheShorterPromise) {
    SimCluster c({"a", "b", "c"}, base(3));
    c.start_all();
    c.run_for(5 * sec);
    ASSERT_EQ(c.running(), std::vector<std::string>{"a"});
    for (const char* voter : {"b", "c"}) {
        NodeSettings shorter = c[voter].node->settings();
        shorter.dead_time = 700 * ms;
        shorter.fence_timeout = 100 * ms;
        (void)c[voter].node->reconfigure(shorter, c.now());
    }
    c.run_for(1 * sec);
    ASSERT_EQ(c.running(), std::vector<std::string>{"a"});  // renewals still keep it
    c.partition({"a"});
    OverlapWatch overlap{c, Usec(), Usec()};
    c.run_for(10 * sec, overlap);
    EXPECT_EQ(overlap.longest, Usec());
    EXPECT_EQ(c.running(), std::vector<std::string>{"b"});
}

TEST(Simulation, AThawedActiveNodeOfATwoNodeClusterStepsDownAtTheFirstHeartbeat) {
    SimCluster c({"a", "b"}, base(2));
    c.start_all();
    c.run_for(5 * sec);
    ASSERT_EQ(c.running(), std::vector<std::string>{"a"});
    c.pause("a");
    c.run_for(3 * sec);
    ASSERT_EQ(c["b"].node->state(), NodeState::Running);  // a's frozen core still says RUNNING
    c.resume("a");
    Usec thawed = c.now();
    Usec stopped;
    c.run_for(2 * sec, [&] {
        if (stopped == Usec() && !c["a"].groups[0].services_up) stopped = c.now();
    });
    ASSERT_NE(stopped, Usec());
    EXPECT_LT(stopped - thawed, 200 * ms + c["a"].hooks.stop_duration + 10 * ms);
    EXPECT_EQ(c.running(), std::vector<std::string>{"b"});
}

TEST(Simulation, AFailingMonitorMovesTheServicesAndTheOperatorBringsTheNodeBack) {
    SimCluster c({"a", "b", "c"}, base(3));
    c.start_all();
    c.run_for(5 * sec);
    c["a"].groups[0].services_failed = true;
    c.run_for(5 * sec);
    EXPECT_EQ(c["a"].node->state(), NodeState::Errored);
    EXPECT_EQ(c.running(), std::vector<std::string>{"b"});
    c.command("a", Command::ClearError);
    c.run_for(2 * sec);
    EXPECT_EQ(c["a"].node->state(), NodeState::Standby);  // no fail-back
    c.command("a", Command::ForceStart);
    c.run_for(2 * sec);
    EXPECT_EQ(c.running(), std::vector<std::string>{"a"});  // b yields to the higher term
    EXPECT_EQ(c["b"].node->state(), NodeState::Standby);
}

TEST(Simulation, ALoneNodeOfThreeNeverStartsServices) {
    SimCluster c({"a", "b", "c"}, base(3));
    c.start("a");
    c.run_for(120 * sec);
    EXPECT_EQ(c["a"].groups[0].starts, 0u);
    EXPECT_EQ(c["a"].node->state(), NodeState::Standby);
}

TEST(Simulation, GarbageOnTheWireChangesNothing) {
    SimCluster c({"a", "b", "c"}, base(3));
    c.start_all();
    c.run_for(5 * sec);
    for (int i = 0; i < 1000; ++i) c.inject("b", std::vector<std::uint8_t>(static_cast<std::size_t>(i % 150), 0x5a));
    c.run_for(2 * sec);
    EXPECT_EQ(c.running(), std::vector<std::string>{"a"});
    EXPECT_EQ(c["b"].node->counters().malformed_total(), 1000u);
}

// A node that booted with its wall clock two days ahead (no key) is refused
// by its peers, which say why; once its clock is right again, its restart
// takes an incarnation from the clock and it joins within a few heartbeats.
TEST(Simulation, ANodeBootedWithItsClockTwoDaysAheadJoinsOnceTheClockIsFixed) {
    constexpr std::int64_t kTwoDays = 48LL * 3600 * 1000000;
    SimCluster c({"a", "b", "c"}, base(3));
    c.jump_clock("c", kTwoDays);
    c.start_all();
    c.run_for(5 * sec);
    EXPECT_EQ(c.running(), std::vector<std::string>{"a"});
    EXPECT_FALSE(c["c"].node->quorate());  // a and b refuse it: it hears them, they do not hear it
    for (const char* peer : {"a", "b"}) {
        bool shown = false;
        for (const auto& n : c[peer].node->status(c.now()).nodes)
            if (n.name == "c") shown = n.not_counted.starts_with("refused: incarnation 2d ahead of this node's clock");
        EXPECT_TRUE(shown) << peer;
    }
    c.jump_clock("c", -kTwoDays);  // the clock is set right, and freehad restarted
    c.start("c");
    c.run_for(3 * c["c"].settings.interval);
    EXPECT_TRUE(c["c"].node->quorate());
    for (const auto& n : c["a"].node->status(c.now()).nodes)
        if (n.name == "c") {
            EXPECT_TRUE(n.reachable && n.not_counted.empty()) << n.not_counted;
        }
    c.run_for(2 * sec);
    EXPECT_EQ(c["c"].node->state(), NodeState::Standby);
    EXPECT_EQ(c.running(), std::vector<std::string>{"a"});
}

// Maintenance mode leaves the services running without a lease. Turned off
// while the node that runs them is frozen, the others time it out and elect
// another node; the frozen node, once it wakes, has nothing that bound its
// services (no lease ran out): it must kill them at once, as a holder
// frozen past its lease does, not stop them gracefully beside the new holder.
TEST(Simulation, ANodeFrozenWithItsServicesInMaintenanceKillsThemWhenItWakesBesideANewHolder) {
    SimCluster c({"a", "b", "c", "d", "e"}, base(5));
    c["a"].hooks.stop_duration = 300 * ms;  // a graceful stop would outlast the kill margin
    c.start_all();
    c.run_for(3 * sec);
    ASSERT_EQ(c.running(), std::vector<std::string>{"a"});
    ASSERT_EQ(c.set_maintenance("b", true), "");
    c.run_for(1 * sec);
    c.command("a", Command::Shutdown);  // in maintenance mode: the services stay
    c.run_for(1 * sec);
    ASSERT_FALSE(c["a"].alive);
    ASSERT_EQ(c.services_up(), std::vector<std::string>{"a"});
    c.start("a");
    c.run_for(1 * sec);
    c.pause("a");
    ASSERT_EQ(c.set_maintenance("e", false), "");
    c.run_for(5 * sec);
    ASSERT_TRUE(c.services_up_on({"a", "b"}));  // b took over while a is frozen
    c.resume("a");
    Usec woke = c.now();
    Usec overlap_ended;
    c.run_for(2 * sec, [&] {
        if (overlap_ended == Usec() && !c["a"].groups[0].services_up) overlap_ended = c.now();
    });
    ASSERT_NE(overlap_ended, Usec());
    EXPECT_LE(overlap_ended - woke, kill_margin(lease_timings(c["a"].node->settings())));
    EXPECT_EQ(c.services_up(), std::vector<std::string>{"b"});
}
