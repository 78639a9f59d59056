#include <gtest/gtest.h>

#include <cstdlib>

#include "core/node.h"
#include "core/node_name.h"
#include "core/status.h"

using namespace freeha;

namespace {

Status sample() {
    Status s;
    s.cluster = "prod";
    s.node = "alpha";
    s.state = NodeState::Running;
    s.term = 7;
    s.quorate = true;
    s.expected_nodes = 3;
    s.active_node = "alpha";
    s.updated_realtime_usec = 1700000000ULL * kUsecPerSec.count();
    s.channels = {"unicast 127.0.0.1 127.0.0.2"};
    NodeStatus a;
    a.name = "alpha";
    a.state = NodeState::Running;
    a.reachable = true;
    a.self = true;
    a.channel_heard_usec_ago = {Usec()};
    NodeStatus b;
    b.name = "beta";
    b.state = NodeState::TimedOut;
    b.last_heard_usec_ago = 3 * kUsecPerSec;
    b.channel_heard_usec_ago = {std::nullopt};
    s.nodes = {a, b};
    s.counters.malformed[static_cast<int>(wire::Reject::BadMagic)] = 4;
    s.log_lines_dropped = 12;
    return s;
}

}  // namespace

TEST(StatusJson, HasEverySchemaOneField) {
    auto j = to_json(sample());
    EXPECT_EQ(j["schema_version"], 1);
    EXPECT_EQ(j["cluster"], "prod");
    EXPECT_EQ(j["node"], "alpha");
    EXPECT_EQ(j["state"], "RUNNING");
    EXPECT_EQ(j["role"], "member");
    EXPECT_EQ(j["term"], 7);
    EXPECT_EQ(j["quorate"], true);
    EXPECT_EQ(j["active_node"], "alpha");
    EXPECT_EQ(j["standby"], false);
    EXPECT_EQ(j["errored"], false);
    EXPECT_TRUE(j["last_error"].is_null());
    EXPECT_EQ(j["mode"], "scripts");
    EXPECT_EQ(j["updated_realtime_usec"], 1700000000ULL * kUsecPerSec.count());
    ASSERT_EQ(j["nodes"].size(), 2u);
    EXPECT_EQ(j["nodes"][1]["name"], "beta");
    EXPECT_EQ(j["nodes"][1]["state"], "TIMEDOUT");
    EXPECT_EQ(j["nodes"][1]["reachable"], false);
    EXPECT_EQ(j["nodes"][1]["last_heard_usec_ago"], (3 * kUsecPerSec).count());
    EXPECT_TRUE(j["nodes"][1]["channels"][0]["last_heard_usec_ago"].is_null());
    EXPECT_EQ(j["nodes"][0]["channels"][0]["name"], "unicast 127.0.0.1 127.0.0.2");
    EXPECT_EQ(j["packets"]["malformed"]["bad_magic"], 4);
    EXPECT_EQ(j["log_lines_dropped"], 12);
}

TEST(StatusJson, LastErrorIsAStringWhenSet) {
    Status s = sample();
    s.errored = true;
    s.last_error = "monitorhasrv exited with status 1";
    EXPECT_EQ(to_json(s)["last_error"], "monitorhasrv exited with status 1");
}

TEST(StatusJson, ListsEachFloatingAddressAndAnEmptyListWithoutOne) {
    EXPECT_EQ(to_json(sample())["addresses"], nlohmann::json::array());
    Status s = sample();
    s.addresses = {{"192.0.2.10/24", "eth0", true, "", 0}, {"2001:db8::10/64", "eth1", false, "52:54:00:12:34:56", 3}};
    auto j = to_json(s)["addresses"];
    ASSERT_EQ(j.size(), 2u);
    EXPECT_EQ(j[0], nlohmann::json::parse(R"({"address":"192.0.2.10/24","device":"eth0","up":true,)"
                                          R"("foreign_mac":null,"conflicts":0})"));
    EXPECT_EQ(j[1], nlohmann::json::parse(R"({"address":"2001:db8::10/64","device":"eth1","up":false,)"
                                          R"("foreign_mac":"52:54:00:12:34:56","conflicts":3})"));
}

TEST(StatusText, IsFreeHAsHostStateCtimeFormat) {
    setenv("TZ", "UTC", 1);
    tzset();
    EXPECT_EQ(to_freeha_text(sample()),
              "alpha [RUNNING] Tue Nov 14 22:13:20 2023\n"
              "beta [TIMEDOUT] Tue Nov 14 22:13:17 2023\n");
}

TEST(StatusModel, ANodeReportsItselfAndItsPeersByName) {
    NodeSettings ns;
    ns.cluster_name = "c";
    ns.node_name = "m";
    ns.incarnation = 1;
    Node node(ns);
    node.start(Usec(), false);
    wire::Heartbeat hb;
    hb.cluster_id = cluster_id("c");
    hb.node = "a";
    hb.incarnation = 1;
    hb.state = NodeState::Standby;
    node.on_heartbeat(hb, 0, Usec(100));
    Status s = node.status(Usec(400));
    ASSERT_EQ(s.nodes.size(), 2u);
    EXPECT_EQ(s.nodes[0].name, "a");
    EXPECT_EQ(s.nodes[0].last_heard_usec_ago, Usec(300));
    EXPECT_EQ(s.nodes[1].name, "m");
    EXPECT_TRUE(s.nodes[1].self);
    EXPECT_EQ(s.state, NodeState::Initial);
}

TEST(StatusJson, ShowsMaintenanceModeAndWhenItWasLastTurnedOnOrOff) {
    auto never = to_json(sample())["maintenance"];
    EXPECT_EQ(never["on"], false);
    EXPECT_TRUE(never["since_realtime_usec"].is_null());  // never decided: no time to show
    Status s = sample();
    s.maintenance = true;
    s.maintenance_since_realtime_usec = 1700000123456789ULL;
    auto on = to_json(s)["maintenance"];
    EXPECT_EQ(on, nlohmann::json::parse(R"({"on":true,"since_realtime_usec":1700000123456789})"));
    s.maintenance = false;
    EXPECT_EQ(to_json(s)["maintenance"]["on"], false);
    EXPECT_EQ(to_json(s)["maintenance"]["since_realtime_usec"], 1700000123456789ULL);  // when it was turned off
}

TEST(StatusJson, ShowsEachNodesReleaseWireVersionMaintenanceAndLeaving) {
    Status s = sample();
    s.version = "0.2.0";
    s.wire_version = 2;
    s.leaving = true;
    s.nodes[0].version = "0.2.0";
    s.nodes[0].wire_version = 3;
    s.nodes[0].maintenance = true;
    s.nodes[1].wire_version = 2;  // a release before 0.2 says no version
    s.nodes[1].left = true;
    auto j = to_json(s);
    EXPECT_EQ(j["schema_version"], 1);  // keys added, none changed
    EXPECT_EQ(j["version"], "0.2.0");
    EXPECT_EQ(j["wire_version"], 2);
    EXPECT_EQ(j["leaving"], true);
    EXPECT_EQ(j["nodes"][0]["version"], "0.2.0");
    EXPECT_EQ(j["nodes"][0]["wire_version"], 3);
    EXPECT_EQ(j["nodes"][0]["maintenance"], true);
    EXPECT_EQ(j["nodes"][0]["left"], false);
    EXPECT_TRUE(j["nodes"][1]["version"].is_null());
    EXPECT_EQ(j["nodes"][1]["wire_version"], 2);
    EXPECT_EQ(j["nodes"][1]["maintenance"], false);
    EXPECT_EQ(j["nodes"][1]["left"], true);
}

TEST(StatusModel, ANodeStartedInMaintenanceShowsItWithItsEpochAndRelease) {
    NodeSettings ns;
    ns.cluster_name = "c";
    ns.node_name = "m";
    ns.incarnation = 1;
    ns.release = "0.2.0";
    Node node(ns);
    node.keep_maintenance(Maintenance{true, 1700000000000000ULL});
    node.start(Usec(), false);
    auto j = to_json(node.status(Usec(400)));
    EXPECT_EQ(j["maintenance"]["on"], true);
    EXPECT_EQ(j["maintenance"]["since_realtime_usec"], 1700000000000000ULL);
    EXPECT_EQ(j["version"], "0.2.0");
    EXPECT_EQ(j["wire_version"], wire::kVersion);
    EXPECT_EQ(j["nodes"][0]["maintenance"], true);
    EXPECT_EQ(j["nodes"][0]["version"], "0.2.0");
}

namespace {

// Two groups: the default one running here, "web" on beta, handed over to alpha.
Status with_groups() {
    Status s = sample();
    GroupStatus d;
    d.name = "default";
    d.state = NodeState::Running;
    d.phase = "running";
    d.active_node = "alpha";
    d.term = 7;
    d.lease_remaining = 800 * kUsecPerMsec;
    d.nodes = {{"alpha", NodeState::Running, 7, false, "", true}, {"beta", NodeState::TimedOut, 3, false, "", false}};
    GroupStatus web;
    web.name = "web";
    web.state = NodeState::Errored;
    web.phase = "errored";
    web.active_node = "beta";
    web.term = 4;
    web.errored = true;
    web.last_error = "monitorhasrv exited with status 1";
    web.placement = PlacementPolicy::Listed;
    web.unavailable = "HooksDirectory=/etc/freeha/web: no such directory";
    web.nodes = {{"alpha", NodeState::Errored, 4, true, "", true, true},
                 {"beta", NodeState::Stopping, 4, false, "alpha", false, false}};
    s.groups = {d, web};
    s.rebalance = {PlannedMove{"web", "beta", "alpha"}};
    return s;
}

}  // namespace

TEST(StatusJson, ShowsEachGroupAndWhatEachNodeAnnouncesOfIt) {
    auto j = to_json(with_groups());
    EXPECT_EQ(j["groups"], nlohmann::json::parse(R"([
        {"name":"default","state":"RUNNING","phase":"running","active_node":"alpha","term":7,
         "lease_remaining_usec":800000,"errored":false,"last_error":null,"handover_to":null,"unavailable":null,
         "placement":"alphabetical",
         "nodes":[{"name":"alpha","state":"RUNNING","term":7,"errored":false,"handover_to":null,"self":true,"aside":false},
                  {"name":"beta","state":"TIMEDOUT","term":3,"errored":false,"handover_to":null,"self":false,"aside":false}]},
        {"name":"web","state":"ERRORED","phase":"errored","active_node":"beta","term":4,
         "lease_remaining_usec":null,"errored":true,"last_error":"monitorhasrv exited with status 1","handover_to":null,
         "unavailable":"HooksDirectory=/etc/freeha/web: no such directory","placement":"listed",
         "nodes":[{"name":"alpha","state":"ERRORED","term":4,"errored":true,"handover_to":null,"self":true,"aside":true},
                  {"name":"beta","state":"STOPPING","term":4,"errored":false,"handover_to":"alpha","self":false,"aside":false}]}
    ])"));
    EXPECT_EQ(j["rebalance"], nlohmann::json::parse(R"([{"group":"web","from":"beta","to":"alpha"}])"));
    EXPECT_EQ(to_json(sample())["groups"], nlohmann::json::array());
    EXPECT_EQ(to_json(sample())["rebalance"], nlohmann::json::array());
}

TEST(StatusFacts, AGroupsFactsCountButNotItsLeasesRemainingTime) {
    struct Case {
        const char* what;
        void (*change)(Status&);
        bool same;
    };
    const Case cases[] = {
        {"a group's lease running down", [](Status& s) { s.groups[0].lease_remaining = 100 * kUsecPerMsec; }, true},
        {"a group's lease gone", [](Status& s) { s.groups[0].lease_remaining.reset(); }, false},
        {"a group's state", [](Status& s) { s.groups[1].state = NodeState::Standby; }, false},
        {"a group's active node", [](Status& s) { s.groups[1].active_node = "alpha"; }, false},
        {"a group's term", [](Status& s) { ++s.groups[1].term; }, false},
        {"a group's error cleared", [](Status& s) { s.groups[1].errored = false; }, false},
        {"what a node announces of a group", [](Status& s) { s.groups[1].nodes[1].state = NodeState::Standby; }, false},
        {"a group's handover", [](Status& s) { s.groups[1].nodes[1].handover_to.clear(); }, false},
        {"a group back on this node", [](Status& s) { s.groups[1].unavailable.clear(); }, false},
        {"a node's group no longer aside", [](Status& s) { s.groups[1].nodes[0].aside = false; }, false},
        {"a group more", [](Status& s) { s.groups.push_back(s.groups[1]); }, false},
        {"the rebalancing plan", [](Status& s) { s.rebalance.clear(); }, false},
    };
    Status base = with_groups();
    for (const auto& c : cases) {
        Status changed = base;
        c.change(changed);
        EXPECT_EQ(same_facts(base, changed), c.same) << c.what;
    }
}

// What the status file is rewritten for (issue 19): a fact, not the ages and
// counters that move on with every heartbeat.
TEST(StatusFacts, OnlyWhatMovesOnItsOwnIsLeftOut) {
    Status base = sample();
    base.dead_time = kUsecPerSec;
    base.nodes[1].channel_heard_usec_ago = {300 * kUsecPerMsec};
    base.lease_remaining = 800 * kUsecPerMsec;
    base.nodes[1].links = {LinkStatus{500, 3, 64, 1, false}};
    struct Case {
        const char* what;
        void (*change)(Status&);
        bool same;
    };
    const Case cases[] = {
        {"nothing", [](Status&) {}, true},
        {"the time of the snapshot", [](Status& s) { s.updated_realtime_usec += 5; }, true},
        {"a node's last-heard age", [](Status& s) { s.nodes[1].last_heard_usec_ago += kUsecPerSec; }, true},
        {"a channel's age within DeadTime=", [](Status& s) { s.nodes[1].channel_heard_usec_ago[0] = kUsecPerSec; }, true},
        {"accepted heartbeats", [](Status& s) { s.counters.accepted += 10; }, true},
        {"own heartbeats looped back", [](Status& s) { s.counters.own += 10; }, true},
        {"the lease's remaining time", [](Status& s) { s.lease_remaining = 200 * kUsecPerMsec; }, true},
        {"a link's counts", [](Status& s) { s.nodes[1].links[0] = LinkStatus{505, 4, 64, 2, false}; }, true},
        {"a link turning lossy", [](Status& s) { s.nodes[1].links[0].lossy = true; }, false},
        {"a channel's age past DeadTime=", [](Status& s) { s.nodes[1].channel_heard_usec_ago[0] = kUsecPerSec + Usec(1); }, false},
        {"a channel heard for the first time", [](Status& s) { s.nodes[0].channel_heard_usec_ago = {std::nullopt}; }, false},
        {"no lease any more", [](Status& s) { s.lease_remaining.reset(); }, false},
        {"a replayed heartbeat", [](Status& s) { ++s.counters.replayed; }, false},
        {"a malformed datagram", [](Status& s) { ++s.counters.malformed[0]; }, false},
        {"the state", [](Status& s) { s.state = NodeState::Stopping; }, false},
        {"standby", [](Status& s) { s.standby = true; }, false},
        {"a node's reachability", [](Status& s) { s.nodes[1].reachable = true; }, false},
        {"a node's term", [](Status& s) { s.nodes[1].term = 8; }, false},
        {"a node more", [](Status& s) { s.nodes.push_back(s.nodes[1]); }, false},
        {"journal lines dropped", [](Status& s) { ++s.log_lines_dropped; }, false},
        {"an address", [](Status& s) { s.addresses.push_back({"192.0.2.10/24", "eth0", true, "", 0}); }, false},
    };
    for (const auto& c : cases) {
        Status changed = base;
        c.change(changed);
        EXPECT_EQ(same_facts(base, changed), c.same) << c.what;
        EXPECT_EQ(same_facts(changed, base), c.same) << c.what;
    }
}

namespace {

EtcdLinkStatus etcd_link() {
    EtcdLinkStatus e;
    e.endpoint = "https://192.0.2.2:2379";
    e.endpoint_index = 1;
    e.endpoint_count = 3;
    e.lease_id = 0x694d7b0d2c0e4a05;
    e.lease_remaining = 900 * kUsecPerMsec;
    e.synced = true;
    e.calls = 1234;
    e.call_failures = 2;
    e.watch_failures = 1;
    e.endpoint_switches = 1;
    e.last_failure = "keepalive on http://192.0.2.1:2379: Connection refused";
    return e;
}

}  // namespace

TEST(StatusJson, ShowsTheEtcdLinkAndNullWithTheHeartbeats) {
    EXPECT_TRUE(to_json(sample())["etcd"].is_null());
    Status s = sample();
    s.etcd = etcd_link();
    auto e = to_json(s)["etcd"];
    EXPECT_EQ(e["endpoint"], "https://192.0.2.2:2379");
    EXPECT_EQ(e["endpoint_index"], 1);
    EXPECT_EQ(e["endpoint_count"], 3);
    EXPECT_EQ(e["lease_id"], "694d7b0d2c0e4a05");  // as etcdctl prints it
    EXPECT_EQ(e["lease_remaining_usec"], 900000);
    EXPECT_EQ(e["synced"], true);
    EXPECT_EQ(e["counters"], (nlohmann::json{{"calls", 1234}, {"call_failures", 2}, {"watch_failures", 1},
                                             {"endpoint_switches", 1}, {"leases_lost", 0}}));
    EXPECT_EQ(e["last_failure"], "keepalive on http://192.0.2.1:2379: Connection refused");
    s.etcd->lease_id = 0;
    s.etcd->lease_remaining.reset();
    s.etcd->last_failure.clear();
    e = to_json(s)["etcd"];
    EXPECT_TRUE(e["lease_id"].is_null());
    EXPECT_TRUE(e["lease_remaining_usec"].is_null());
    EXPECT_TRUE(e["last_failure"].is_null());
}

// Renewals (calls, the lease running down) do not rewrite the status file; what went wrong does.
TEST(StatusFacts, TheEtcdLinksTroublesCountButNotItsRenewals) {
    struct Case {
        const char* what;
        void (*change)(Status&);
        bool same;
    };
    const Case cases[] = {
        {"a renewal", [](Status& s) { ++s.etcd->calls; }, true},
        {"the lease running down", [](Status& s) { s.etcd->lease_remaining = 300 * kUsecPerMsec; }, true},
        {"the lease gone", [](Status& s) { s.etcd->lease_remaining.reset(); }, false},
        {"a new lease", [](Status& s) { ++s.etcd->lease_id; }, false},
        {"a failed call", [](Status& s) { ++s.etcd->call_failures; }, false},
        {"a failed watch", [](Status& s) { ++s.etcd->watch_failures; }, false},
        {"another endpoint", [](Status& s) { s.etcd->endpoint_index = 2; }, false},
        {"a lease lost", [](Status& s) { ++s.etcd->leases_lost; }, false},
        {"the view no longer current", [](Status& s) { s.etcd->synced = false; }, false},
        {"another failure", [](Status& s) { s.etcd->last_failure = "grant on http://192.0.2.2:2379: timed out"; }, false},
        {"no etcd at all", [](Status& s) { s.etcd.reset(); }, false},
    };
    Status base = sample();
    base.etcd = etcd_link();
    for (const auto& c : cases) {
        Status changed = base;
        c.change(changed);
        EXPECT_EQ(same_facts(base, changed), c.same) << c.what;
    }
}
