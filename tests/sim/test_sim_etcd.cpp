// Backend=etcd, whole-cluster scenarios: real Node cores, a simulated etcd
// (leases that expire TTL after their last renewal, keys created only if
// absent), on the fake clock. The invariant everywhere: the services never
// run on two nodes, and a holder cut off from etcd has stopped them before
// etcd can let its key go.
#include <gtest/gtest.h>

#include "sim/sim_cluster.h"

using namespace freeha;
using namespace freeha::sim;

namespace {

constexpr Usec ms = kUsecPerMsec;
constexpr Usec sec = kUsecPerSec;

NodeSettings etcd_base() {
    NodeSettings s;
    s.cluster_name = "sim";
    s.backend = Backend::Etcd;
    return s;  // default timings: 200ms interval, 1s dead time (an etcd TTL of 1s)
}

// Fails the test at the first step with the services up on two nodes.
struct NeverTwo {
    SimCluster& c;
    std::size_t group = 0;
    void operator()() const { ASSERT_LE(c.services_up_count(group), 1u) << "at " << format_timespan(c.now()); }
};

// How long until the services run on `node` alone (checking NeverTwo at every step), within `span`; nullopt: never.
std::optional<Usec> until_up_on(SimCluster& c, const std::string& node, Usec span) {
    Usec from = c.now();
    std::optional<Usec> up;
    c.run_for(span, [&] {
        NeverTwo{c}();
        if (!up && c.services_up() == std::vector<std::string>{node}) up = c.now() - from;
    });
    return up;
}

// A cluster of a, b, c started together, settled with a running the services.
void settle(SimCluster& c) {
    c.start_all();
    c.run_for(2 * sec, NeverTwo{c});
    ASSERT_EQ(c.running(), std::vector<std::string>{"a"});
    ASSERT_EQ(c.etcd_holder(), "a");
}

}  // namespace

TEST(SimulationEtcd, AFreshClusterRunsTheServicesOnTheFirstNodeOnlyAndItsKeyNamesIt) {
    SimCluster c({"c", "b", "a"}, etcd_base());
    settle(c);
    EXPECT_EQ(c["b"].groups[0].starts + c["c"].groups[0].starts, 0u);
    EXPECT_TRUE(c["b"].node->quorate());
    // Every node sees every other through its member record.
    EXPECT_EQ(c["c"].node->membership().reachable_count(), 2u);
    EXPECT_EQ(c["c"].node->active_node(), "a");
    // Records are put when what a node says changes, not every interval.
    std::int64_t revision = c.etcd().revision;
    c.run_for(5 * sec, NeverTwo{c});
    EXPECT_EQ(c.etcd().revision, revision);
}

TEST(SimulationEtcd, NodesStartedWithinADeadTimeOfEachOtherElectTheFirstNodeNotTheFastest) {
    // c's daemon comes up first (a loaded machine, a slower boot): it waits a
    // dead time for the others' member keys, as heartbeats wait to hear them.
    SimCluster c({"a", "b", "c"}, etcd_base());
    c.start("c");
    c.run_for(etcd_base().dead_time - 300 * ms, NeverTwo{c});
    EXPECT_TRUE(c["c"].node->quorate());
    EXPECT_TRUE(c.services_up().empty());
    c.start("b");
    c.start("a");
    c.run_for(2 * sec, NeverTwo{c});
    EXPECT_EQ(c.running(), std::vector<std::string>{"a"});
    EXPECT_EQ(c["c"].groups[0].starts, 0u);
}

TEST(SimulationEtcd, ALoneNodeStartsTheServicesADeadTimeAfterItStarts) {
    SimCluster c({"a", "b"}, etcd_base());
    c.start("b");
    std::optional<Usec> up = until_up_on(c, "b", 3 * sec);
    ASSERT_TRUE(up);
    EXPECT_GE(*up, etcd_base().dead_time);
    EXPECT_LE(*up, etcd_base().dead_time + 100 * ms);
}

TEST(SimulationEtcd, ACrashedHolderIsReplacedOnceEtcdLetsItsKeyGoAndIsNotFailedBackTo) {
    SimCluster c({"a", "b", "c"}, etcd_base());
    settle(c);
    c.crash("a");
    Usec crashed = c.now();
    Usec took_over;
    c.run_for(5 * sec, [&] {
        NeverTwo{c}();
        if (took_over == Usec() && c.services_up() == std::vector<std::string>{"b"}) took_over = c.now();
    });
    ASSERT_NE(took_over, Usec());
    EXPECT_EQ(c.etcd_holder(), "b");
    // The lease's TTL after its last renewal (at most an interval before the
    // crash), then one claim: well within DeadTime= + 0.3s.
    EXPECT_GE(took_over - crashed, etcd_base().dead_time - etcd_base().interval);
    EXPECT_LE(took_over - crashed, etcd_base().dead_time + 50 * ms);
    c.start("a");
    c.run_for(5 * sec, NeverTwo{c});
    EXPECT_EQ(c.running(), std::vector<std::string>{"b"});
    EXPECT_EQ(c["a"].node->state(), NodeState::Standby);
}

TEST(SimulationEtcd, AHolderCutOffFromEtcdStopsBeforeItsKeyExpiresAndNobodyStartsEarlier) {
    SimCluster c({"a", "b", "c"}, etcd_base());
    settle(c);
    c.cut_etcd("a");
    std::uint64_t expired_before = c.etcd().leases_expired;
    std::optional<Usec> a_down, key_gone, b_up;
    c.run_for(5 * sec, [&] {
        NeverTwo{c}();
        if (!a_down && c.services_up_count() == 0) a_down = c.now();
        if (!key_gone && c.etcd().leases_expired > expired_before) key_gone = c.now();
        if (!b_up && c.services_up() == std::vector<std::string>{"b"}) b_up = c.now();
    });
    ASSERT_TRUE(a_down && key_gone && b_up);
    EXPECT_LT(*a_down, *key_gone);
    EXPECT_GE(*b_up, *key_gone);
    EXPECT_FALSE(c["a"].node->quorate());
    // Back in touch: a learns that b holds the group and stays in standby.
    c.heal_etcd("a");
    c.run_for(5 * sec, NeverTwo{c});
    EXPECT_EQ(c.running(), std::vector<std::string>{"b"});
    EXPECT_EQ(c["a"].node->state(), NodeState::Standby);
    EXPECT_TRUE(c["a"].node->quorate());
}

TEST(SimulationEtcd, WithoutAnEtcdMajorityEveryoneStopsInTimeAndTheServicesResumeWhenItReturns) {
    SimCluster c({"a", "b", "c"}, etcd_base());
    settle(c);
    c.set_etcd_quorate(false);
    Usec lost = c.now();
    std::optional<Usec> down;
    c.run_for(3 * sec, [&] {
        NeverTwo{c}();
        if (!down && c.services_up_count() == 0) down = c.now();
    });
    EXPECT_TRUE(c.running().empty());
    // Stopped before the lease that etcd renewed last (before the loss) could end.
    ASSERT_TRUE(down);
    EXPECT_LT(*down, lost + etcd_base().dead_time);
    c.set_etcd_quorate(true);
    // The old key lingers for a whole TTL (a new leader renews every lease),
    // then one node runs the services again.
    c.run_for(4 * sec, NeverTwo{c});
    EXPECT_EQ(c.running().size(), 1u);
    EXPECT_EQ(c.services_up_count(), 1u);
}

TEST(SimulationEtcd, ASwitchoverHandsTheKeyToTheTargetQuickly) {
    SimCluster c({"a", "b", "c"}, etcd_base());
    settle(c);
    ASSERT_EQ(c.switchover("a", "c"), "");
    std::optional<Usec> moved = until_up_on(c, "c", 2 * sec);
    ASSERT_TRUE(moved);
    // The stop (50ms here), the key's release, c's claim: no lease to wait out.
    EXPECT_LT(*moved, 100 * ms);
    EXPECT_EQ(c.etcd_holder(), "c");
    EXPECT_EQ(c["a"].node->state(), NodeState::Standby);
}

TEST(SimulationEtcd, StandbyAndAStopOnTheHolderMoveTheServicesToTheNextNode) {
    SimCluster c({"a", "b", "c"}, etcd_base());
    settle(c);
    c.command("a", Command::Standby);
    std::optional<Usec> moved = until_up_on(c, "b", 2 * sec);
    ASSERT_TRUE(moved);
    EXPECT_LT(*moved, 100 * ms);
    EXPECT_EQ(c.etcd_holder(), "b");
}

TEST(SimulationEtcd, AHolderThatShutsDownRevokesItsLeaseAndTheNextNodeTakesOverAtOnce) {
    SimCluster c({"a", "b", "c"}, etcd_base());
    settle(c);
    c.command("a", Command::Shutdown);
    std::optional<Usec> moved = until_up_on(c, "b", 2 * sec);
    ASSERT_TRUE(moved);
    EXPECT_LT(*moved, 100 * ms);
    EXPECT_EQ(c["a"].exit_code, 0);
}

TEST(SimulationEtcd, ANodeThatNeverReachesEtcdNeverStartsTheServices) {
    SimCluster c({"a", "b"}, etcd_base());
    c.cut_etcd("a");
    c.start("a");
    c.run_for(40 * sec);  // beyond InitDead=: etcd mode waits for etcd however long it takes
    EXPECT_EQ(c["a"].groups[0].starts, 0u);
    EXPECT_FALSE(c["a"].node->quorate());
    c.start("b");
    c.run_for(2 * sec, NeverTwo{c});
    EXPECT_EQ(c.running(), std::vector<std::string>{"b"});
    // a's member key is not in etcd: neither node counts it as up, a itself included (nor does a,
    // which cannot read etcd, count b).
    auto self_reachable = [&](const std::string& name) {
        for (const auto& n : c[name].node->status(c.now()).nodes)
            if (n.self) return n.reachable;
        return true;
    };
    EXPECT_EQ(c["a"].node->reachable_nodes(), 0u);
    EXPECT_FALSE(self_reachable("a"));
    EXPECT_EQ(c["b"].node->reachable_nodes(), 1u);
    EXPECT_TRUE(self_reachable("b"));
    c.heal_etcd("a");
    c.run_for(3 * sec, NeverTwo{c});
    EXPECT_EQ(c.running(), std::vector<std::string>{"b"});
    EXPECT_EQ(c["a"].node->state(), NodeState::Standby);
    EXPECT_EQ(c["a"].node->reachable_nodes(), 2u);
    EXPECT_TRUE(self_reachable("a"));
}

TEST(SimulationEtcd, RandomCutsCrashesAndQuorumLossNeverRunTheServicesTwice) {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        SimCluster c({"a", "b", "c"}, etcd_base(), seed);
        c.start_all();
        std::mt19937_64 rng(seed);
        for (int round = 0; round < 30; ++round) {
            std::string n = c.names()[rng() % 3];
            switch (rng() % 6) {
            case 0: c.cut_etcd(n); break;
            case 1: c.heal_etcd(n); break;
            case 2: c.crash(n); break;
            case 3: c.start(n); break;
            case 4: c.set_etcd_quorate(rng() % 4 != 0); break;
            case 5: c.command(n, Command::Standby); c.command(n, Command::Unstandby); break;
            }
            c.run_for(Usec(static_cast<std::int64_t>(rng() % 3000) * 1000), NeverTwo{c});
            if (HasFatalFailure()) {
                ADD_FAILURE() << "seed " << seed << ", round " << round;
                return;
            }
        }
        // Everyone back: one node runs the services.
        c.set_etcd_quorate(true);
        for (const auto& n : c.names()) {
            c.heal_etcd(n);
            if (!c[n].alive) c.start(n);
        }
        c.run_for(6 * sec, NeverTwo{c});
        EXPECT_EQ(c.services_up_count(), 1u) << "seed " << seed;
    }
}

TEST(SimulationEtcd, ServicesFoundRunningAtStartUpWhoseKeyIsRefusedAreKilledAndOneNodeRunsThemAfter) {
    SimCluster c({"a", "b", "c"}, etcd_base());
    settle(c);
    // freehad restarts on the holder; its services run on, and its old lease
    // (with the key, in its own name) lives on in etcd until its TTL ends.
    c.restart_daemon("a");
    c.run_for(100 * ms);
    EXPECT_EQ(c.services_up_count(), 0u) << "unbound services beside the key's holder are killed first";
    c.run_for(5 * sec, NeverTwo{c});
    EXPECT_EQ(c.services_up_count(), 1u);
    EXPECT_EQ(c.running().size(), 1u);
    EXPECT_EQ(c.etcd_holder(), c.running().front());
}

TEST(SimulationEtcd, AForcedStartBesideTheKeysHolderStopsAtOnceAndTheHolderRunsOn) {
    SimCluster c({"a", "b", "c"}, etcd_base());
    settle(c);
    c.command("b", Command::ForceStart);
    c.run_for(1 * sec);
    EXPECT_EQ(c.services_up(), std::vector<std::string>{"a"});
    EXPECT_EQ(c.etcd_holder(), "a");
    c.run_for(3 * sec, NeverTwo{c});
    EXPECT_EQ(c.running(), std::vector<std::string>{"a"});
}

TEST(SimulationEtcd, MaintenanceModeIsTurnedOffFromAnyNodeAndAStopInItLeavesTheServices) {
    SimCluster c({"a", "b", "c"}, etcd_base());
    settle(c);
    ASSERT_EQ(c.set_maintenance("a", true), "");
    c.run_for(3 * sec, NeverTwo{c});  // records are not put again: b must not take a for silent
    EXPECT_EQ(c.set_maintenance("b", false), "");
    c.run_for(3 * sec, NeverTwo{c});
    ASSERT_EQ(c.set_maintenance("c", true), "");
    c.run_for(1 * sec, NeverTwo{c});
    c.command("a", Command::Shutdown);
    c.run_for(3 * sec, NeverTwo{c});
    EXPECT_EQ(c["a"].exit_code, 0);
    EXPECT_EQ(c.services_up(), std::vector<std::string>{"a"}) << "left running, as with heartbeats";
    EXPECT_TRUE(c.running().empty());
}
