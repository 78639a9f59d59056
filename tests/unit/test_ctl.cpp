// freehactl's reading of the status document (ClusterView) and the lines it builds from it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <regex>
#include <set>

#include "core/effects.h"
#include "core/status.h"
#include "ctl/client.h"
#include "ctl/groups.h"
#include "ctl/links.h"
#include "ctl/maintenance.h"
#include "ctl/metrics.h"

using namespace freeha;
using namespace freeha::ctl;

namespace {

Status with_addresses() {
    Status s;
    s.cluster = "web";
    s.node = "alpha";
    s.addresses = {{"192.0.2.10/24", "eth0", true, "", 0}, {"2001:db8::10/64", "eth1", false, "52:54:00:12:34:56", 3}};
    return s;
}

}  // namespace

TEST(ClusterView, ReadsEveryAddressOfTheStatusDocument) {
    auto v = ClusterView::from(to_json(with_addresses()));
    ASSERT_TRUE(v);
    ASSERT_EQ(v->addresses.size(), 2u);
    EXPECT_EQ(v->addresses[0].address, "192.0.2.10/24");
    EXPECT_EQ(v->addresses[0].device, "eth0");
    EXPECT_TRUE(v->addresses[0].up);
    EXPECT_EQ(v->addresses[0].foreign_mac, "");
    EXPECT_EQ(v->addresses[0].conflicts, 0u);
    EXPECT_EQ(v->addresses[1].address, "2001:db8::10/64");
    EXPECT_FALSE(v->addresses[1].up);
    EXPECT_EQ(v->addresses[1].foreign_mac, "52:54:00:12:34:56");
    EXPECT_EQ(v->addresses[1].conflicts, 3u);
}

TEST(ClusterView, ADocumentWithoutAddressesHasNone) {
    auto document = to_json(with_addresses());
    document.erase("addresses");  // a daemon from before Address=
    auto v = ClusterView::from(document);
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->addresses.empty());
    document["addresses"] = nlohmann::json::array({{{"address", "192.0.2.10/24"}}});  // malformed: not understood
    EXPECT_FALSE(ClusterView::from(document));
}

struct DescribeCase {
    ClusterView::Address address;
    const char* line;
};

class AddressLine : public ::testing::TestWithParam<DescribeCase> {};

TEST_P(AddressLine, SaysWhereTheAddressIsAndWhoElseAnswersForIt) {
    EXPECT_EQ(GetParam().address.describe(), GetParam().line);
}

INSTANTIATE_TEST_SUITE_P(
    Every, AddressLine,
    ::testing::Values(
        DescribeCase{{"192.0.2.10/24", "eth0", true, "", 0}, "192.0.2.10/24 on eth0: up here"},
        DescribeCase{{"192.0.2.10/24", "eth0", false, "", 0}, "192.0.2.10/24 on eth0: not here"},
        DescribeCase{{"192.0.2.10/24", "eth0", true, "aa:bb:cc:dd:ee:ff", 1},
                     "192.0.2.10/24 on eth0: up here (another host answers for it: MAC aa:bb:cc:dd:ee:ff, 1 time)"},
        DescribeCase{{"2001:db8::10/64", "eth1", false, "52:54:00:12:34:56", 3},
                     "2001:db8::10/64 on eth1: not here (another host answers for it: MAC 52:54:00:12:34:56, 3 times)"}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

namespace {

// Three nodes of 0.2.0 that see each other; `announcing` of them announce maintenance mode on.
ClusterView three_nodes(unsigned announcing, bool here_on = true) {
    Status s;
    s.cluster = "web";
    s.node = "alpha";
    s.expected_nodes = 3;
    s.version = "0.2.0";
    s.wire_version = 3;
    s.maintenance = here_on;
    s.maintenance_since_realtime_usec = 1700000000ULL * 1000000;
    for (const char* name : {"alpha", "bravo", "charlie"}) {
        NodeStatus n;
        n.name = name;
        n.reachable = true;
        n.self = n.name == "alpha";
        n.version = "0.2.0";
        n.wire_version = 3;
        n.maintenance = announcing > 0;
        if (announcing > 0) --announcing;
        s.nodes.push_back(n);
    }
    auto v = ClusterView::from(to_json(s));
    EXPECT_TRUE(v);
    return *v;
}

}  // namespace

TEST(ClusterView, ReadsMaintenanceModeAndEachNodesRelease) {
    ClusterView v = three_nodes(2);
    EXPECT_TRUE(v.maintenance);
    EXPECT_EQ(v.maintenance_since_realtime_usec, 1700000000ULL * 1000000);
    EXPECT_EQ(v.version, "0.2.0");
    EXPECT_EQ(v.wire_version, 3u);
    EXPECT_TRUE(v.nodes[1].maintenance);
    EXPECT_FALSE(v.nodes[2].maintenance);
    EXPECT_EQ(v.nodes[2].version, "0.2.0");
}

TEST(ClusterView, ADocumentOfADaemonBefore02HasNoMaintenanceAndNoVersions) {
    auto document = to_json(with_addresses());
    document.erase("maintenance");
    document.erase("version");
    document.erase("wire_version");
    auto v = ClusterView::from(document);
    ASSERT_TRUE(v);
    EXPECT_FALSE(v->maintenance);
    EXPECT_EQ(v->version, "");
    EXPECT_EQ(maintenance_line(*v), "");
}

TEST(MaintenanceVerb, WaitsUntilAQuorumAndEveryReachableNodeAnnouncesTheMode) {
    EXPECT_EQ(maintenance_progress(three_nodes(1), true).kind, MaintenanceProgress::Wait);
    EXPECT_EQ(maintenance_progress(three_nodes(1), true).message, "1 of 3 nodes announce it, 2 needed");
    auto two = maintenance_progress(three_nodes(2), true);
    EXPECT_EQ(two.kind, MaintenanceProgress::Wait);  // a quorum, but charlie hears of it next
    EXPECT_EQ(two.message, "charlie does not announce it yet");
    auto all = maintenance_progress(three_nodes(3), true);
    EXPECT_EQ(all.kind, MaintenanceProgress::Done);
    EXPECT_EQ(all.message.rfind("maintenance mode on (3 of 3 nodes announce it)", 0), 0u) << all.message;
    // charlie cannot be heard: a quorum is enough.
    ClusterView partial = three_nodes(2);
    partial.nodes[2].reachable = false;
    EXPECT_EQ(maintenance_progress(partial, true).kind, MaintenanceProgress::Done);
    // Off: the same count, of nodes announcing it off.
    EXPECT_EQ(maintenance_progress(three_nodes(0, false), false).kind, MaintenanceProgress::Done);
    EXPECT_EQ(maintenance_progress(three_nodes(2, false), false).kind, MaintenanceProgress::Wait);
}

TEST(MaintenanceVerb, FailsWhenANewerDecisionTurnedItBack) {
    auto p = maintenance_progress(three_nodes(3, false), true);
    EXPECT_EQ(p.kind, MaintenanceProgress::Failed);
    EXPECT_EQ(p.message, "maintenance mode was turned off again by a newer decision (on another node)");
}

TEST(MaintenanceVerb, StatusShowsTheModeFirstAndEachNodesVersion) {
    setenv("TZ", "UTC", 1);
    tzset();
    EXPECT_EQ(maintenance_line(three_nodes(3)),
              "MAINTENANCE MODE: on since 2023-11-14 22:13:20 UTC \u2014 freehad starts, stops and monitors nothing");
    EXPECT_EQ(maintenance_line(three_nodes(0, false)), "");
    ClusterView::Node n;
    n.version = "0.2.0";
    n.wire_version = 3;
    EXPECT_EQ(version_text(n), "0.2.0");
    n.version = "";
    n.wire_version = 2;
    EXPECT_EQ(version_text(n), "<0.2 (wire 2)");
    n.wire_version = 0;
    EXPECT_EQ(version_text(n), "-");
}

namespace {

// alpha (this node) hears bravo on two channels, the second losing a quarter; charlie runs a daemon before link health.
ClusterView with_links() {
    Status s;
    s.cluster = "web";
    s.node = "alpha";
    s.channels = {"broadcast 10.0.0.1", "unicast 10.1.0.1 10.1.0.2"};
    NodeStatus alpha, bravo;
    alpha.name = "alpha";
    alpha.self = true;
    alpha.channel_heard_usec_ago = {Usec{0}, Usec{0}};
    alpha.links.resize(2);
    bravo.name = "bravo";
    bravo.channel_heard_usec_ago = {Usec{1000}, Usec{2000}};
    bravo.links = {LinkStatus{500, 0, 64, 0, false}, LinkStatus{375, 125, 64, 16, true}};
    s.nodes = {alpha, bravo};
    auto document = to_json(s);
    document["nodes"].push_back(document["nodes"][1]);
    document["nodes"][2]["name"] = "charlie";
    for (auto& ch : document["nodes"][2]["channels"])
        ch = nlohmann::json{{"name", ch["name"]}, {"last_heard_usec_ago", ch["last_heard_usec_ago"]}};
    auto v = ClusterView::from(document);
    EXPECT_TRUE(v);
    return *v;
}

}  // namespace

TEST(ClusterView, ReadsEachNodesLinkOnEachChannel) {
    ClusterView v = with_links();
    ASSERT_EQ(v.nodes.size(), 3u);
    ASSERT_EQ(v.nodes[1].links.size(), 2u);
    const auto& lossy = v.nodes[1].links[1];
    EXPECT_EQ(lossy.channel, "unicast 10.1.0.1 10.1.0.2");
    EXPECT_EQ(lossy.received, 375u);
    EXPECT_EQ(lossy.lost, 125u);
    EXPECT_EQ(lossy.recent_expected, 64u);
    EXPECT_EQ(lossy.recent_lost, 16u);
    EXPECT_EQ(lossy.recent_loss_ratio, 0.25);
    EXPECT_TRUE(lossy.lossy);
    EXPECT_FALSE(v.nodes[0].links[0].recent_loss_ratio);  // this node: nothing judged
    EXPECT_TRUE(v.nodes[2].links.empty());                // a daemon before link health
}

TEST(LossColumn, ShowsTheWorstChannelAndALineNamesALossyOne) {
    ClusterView v = with_links();
    EXPECT_EQ(loss_text(v.nodes[0]), "-");
    EXPECT_EQ(loss_text(v.nodes[1]), "25%");
    EXPECT_EQ(loss_text(v.nodes[2]), "-");
    EXPECT_EQ(lossy_lines(v),
              std::vector<std::string>{"bravo: heartbeats lost on channel 'unicast 10.1.0.1 10.1.0.2': 16 of the last 64 (25%)"});
    v.nodes[1].links[1].lossy = false;
    v.nodes[1].links[1].recent_loss_ratio = 1.0 / 64;
    EXPECT_EQ(loss_text(v.nodes[1]), "2%");
    EXPECT_TRUE(lossy_lines(v).empty());
}

namespace {

// alpha on etcd: its session moved once to the second of three endpoints.
ClusterView on_etcd() {
    Status s;
    s.cluster = "web";
    s.node = "alpha";
    EtcdLinkStatus e;
    e.endpoint = "http://192.0.2.2:2379";
    e.endpoint_index = 1;
    e.endpoint_count = 3;
    e.lease_id = 0x694d7b0d2c0e4a05;
    e.lease_remaining = 1234 * kUsecPerMsec;
    e.synced = true;
    e.calls = 1234;
    e.call_failures = 2;
    e.endpoint_switches = 1;
    e.last_failure = "keepalive on http://192.0.2.1:2379: Connection refused";
    s.etcd = e;
    auto v = ClusterView::from(to_json(s));
    EXPECT_TRUE(v);
    return *v;
}

}  // namespace

TEST(ClusterView, ReadsTheEtcdLinkAndNoneWithTheHeartbeats) {
    ClusterView v = on_etcd();
    ASSERT_TRUE(v.etcd);
    EXPECT_EQ(v.etcd->endpoint, "http://192.0.2.2:2379");
    EXPECT_EQ(v.etcd->endpoint_index, 1u);
    EXPECT_EQ(v.etcd->endpoint_count, 3u);
    EXPECT_EQ(v.etcd->lease_id, "694d7b0d2c0e4a05");
    EXPECT_EQ(v.etcd->lease_remaining, 1234 * kUsecPerMsec);
    EXPECT_TRUE(v.etcd->synced);
    EXPECT_EQ(v.etcd->last_failure, "keepalive on http://192.0.2.1:2379: Connection refused");
    auto counters = std::map<std::string, std::uint64_t>(v.etcd->counters.begin(), v.etcd->counters.end());
    EXPECT_EQ(counters, (std::map<std::string, std::uint64_t>{{"calls", 1234}, {"call_failures", 2},
                                                               {"watch_failures", 0}, {"endpoint_switches", 1},
                                                               {"leases_lost", 0}}));
    Status heartbeats;
    auto h = ClusterView::from(to_json(heartbeats));
    ASSERT_TRUE(h);
    EXPECT_FALSE(h->etcd);
    auto document = to_json(heartbeats);
    document.erase("etcd");  // a daemon from before Backend=etcd
    h = ClusterView::from(document);
    ASSERT_TRUE(h);
    EXPECT_FALSE(h->etcd);
}

TEST(EtcdLines, SayWhichEndpointTheLeaseWhatFailedAndWhy) {
    ClusterView v = on_etcd();
    EXPECT_EQ(etcd_lines(*v.etcd),
              (std::vector<std::string>{
                  "etcd: http://192.0.2.2:2379 (endpoint 2 of 3); lease 694d7b0d2c0e4a05, 1s 234ms left; view current",
                  "etcd calls: 1234; 2 call_failures, 1 endpoint_switches",
                  "etcd's last failure: keepalive on http://192.0.2.1:2379: Connection refused"}));
    v.etcd->lease_id.clear();
    v.etcd->lease_remaining.reset();
    v.etcd->synced = false;
    v.etcd->last_failure.clear();
    for (auto& [name, value] : v.etcd->counters)
        if (name != "calls") value = 0;
    EXPECT_EQ(etcd_lines(*v.etcd),
              (std::vector<std::string>{"etcd: http://192.0.2.2:2379 (endpoint 2 of 3); no lease; view NOT current",
                                        "etcd calls: 1234; no failure"}));
}

// --- freehactl metrics --------------------------------------------------------

namespace {

ClusterView bravo_active() {
    Status s;
    s.cluster = "web";
    s.node = "alpha";
    s.state = NodeState::Standby;
    s.phase = "standby";
    s.quorate = true;
    s.term = 7;
    s.expected_nodes = 3;
    s.active_node = "bravo";
    s.version = "0.2.0";
    s.wire_version = 3;
    s.counters.accepted = 120;
    s.counters.malformed[static_cast<std::size_t>(wire::Reject::BadMagic)] = 4;
    s.addresses = {{"192.0.2.10/24", "eth0", false, "", 2}};
    for (auto [name, state] : {std::pair{"alpha", NodeState::Standby}, std::pair{"bravo", NodeState::Running},
                               std::pair{"charlie", NodeState::TimedOut}}) {
        NodeStatus n;
        n.name = name;
        n.state = state;
        n.reachable = state != NodeState::TimedOut;
        n.self = n.name == "alpha";
        n.last_heard_usec_ago = Usec(n.reachable ? 150000 : 4500000);
        n.version = "0.2.0";
        n.wire_version = 3;
        s.nodes.push_back(n);
    }
    auto v = ClusterView::from(to_json(s));
    EXPECT_TRUE(v);
    return *v;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at < text.size()) {
        std::size_t end = text.find('\n', at);
        out.push_back(text.substr(at, end - at));
        at = end == std::string::npos ? text.size() : end + 1;
    }
    return out;
}

bool has_line(const std::string& text, const std::string& line) {
    auto lines = lines_of(text);
    return std::find(lines.begin(), lines.end(), line) != lines.end();
}

}  // namespace

TEST(Metrics, WithoutAnAnswerOnlyUpZeroAndWhy) {
    EXPECT_EQ(metrics_text(nullptr, "cannot connect to the system bus:\nNo such file or directory"),
              "# HELP freeha_up Whether freehad answered this scrape (0: every other family is absent).\n"
              "# TYPE freeha_up gauge\n"
              "freeha_up 0\n"
              "# freehad did not answer: cannot connect to the system bus: No such file or directory\n");
}

TEST(Metrics, ShowTheActiveNodeEachNodesStateAndThisNodesFacts) {
    ClusterView v = bravo_active();
    std::string text = metrics_text(&v);
    for (const char* line : {
             "freeha_up 1",
             "freeha_build_info{version=\"0.2.0\",wire_version=\"3\"} 1",
             "freeha_state{state=\"STANDBY\"} 1",
             "freeha_state{state=\"RUNNING\"} 0",
             "freeha_phase{phase=\"standby\"} 1",
             "freeha_quorate 1",
             "freeha_term 7",
             "freeha_expected_nodes 3",
             "freeha_node_active{node=\"bravo\"} 1",
             "freeha_node_active{node=\"alpha\"} 0",
             "freeha_node_state{node=\"bravo\",state=\"RUNNING\"} 1",
             "freeha_node_state{node=\"charlie\",state=\"TIMEDOUT\"} 1",
             "freeha_node_state{node=\"charlie\",state=\"RUNNING\"} 0",
             "freeha_node_reachable{node=\"charlie\"} 0",
             "freeha_node_last_heard_seconds{node=\"charlie\"} 4.5",
             "freeha_node_info{node=\"bravo\",role=\"member\",version=\"0.2.0\",wire_version=\"3\"} 1",
             "freeha_packets_accepted_total 120",
             "freeha_packets_dropped_total{reason=\"malformed_bad_magic\"} 4",
             "freeha_packets_dropped_total{reason=\"replayed\"} 0",
             "freeha_address_up{address=\"192.0.2.10/24\",device=\"eth0\"} 0",
             "freeha_address_conflicts_total{address=\"192.0.2.10/24\",device=\"eth0\"} 2",
         })
        EXPECT_TRUE(has_line(text, line)) << line << "\nin:\n" << text;
    // No claim, no lease: the family has no sample rather than a made-up 0.
    EXPECT_TRUE(has_line(text, "# TYPE freeha_lease_remaining_seconds gauge"));
    EXPECT_EQ(text.find("\nfreeha_lease_remaining_seconds "), std::string::npos);
    v.lease_remaining = Usec(1500000);
    EXPECT_TRUE(has_line(metrics_text(&v), "freeha_lease_remaining_seconds 1.5"));
}

// Every line a comment or a sample of the family declared last; each family declared once,
// named freeha_*, and a counter exactly when its name ends in _total. Returns the families.
namespace {

std::set<std::string> check_exposition(const std::string& text) {
    const std::regex sample(R"(^([a-z_]+)(\{[a-z_]+="([^"\\\n]|\\["\\n])*"(,[a-z_]+="([^"\\\n]|\\["\\n])*")*\})? ([0-9.e+-]+|NaN)$)");
    const std::regex type(R"(^# TYPE ([a-z_]+) (gauge|counter|histogram)$)");
    std::set<std::string> declared;
    std::string current, current_type;
    for (const auto& line : lines_of(text)) {
        std::smatch m;
        if (std::regex_match(line, m, type)) {
            EXPECT_TRUE(declared.insert(m[1]).second) << "declared twice: " << line;
            current = m[1];
            current_type = m[2];
            EXPECT_TRUE(current.starts_with("freeha_")) << line;
            EXPECT_EQ(current.ends_with("_total"), current_type == "counter") << line;
        } else if (!line.starts_with("# ")) {
            EXPECT_TRUE(std::regex_match(line, m, sample)) << "not a sample line: " << line;
            if (current_type == "histogram")
                EXPECT_TRUE(m[1] == current + "_bucket" || m[1] == current + "_sum" || m[1] == current + "_count")
                    << "a sample outside its histogram: " << line;
            else
                EXPECT_EQ(m[1], current) << "a sample outside its family: " << line;
        }
    }
    return declared;
}

}  // namespace

TEST(Metrics, EveryLineIsValidExpositionAndEveryFamilyIsDeclaredOnceBeforeItsSamples) {
    ClusterView v = bravo_active();
    v.nodes[1].name = "odd\"name\\with\nall";  // not a valid node name; the escaping must hold anyway
    EXPECT_GE(check_exposition(metrics_text(&v)).size(), 25u);
    ClusterView linked = with_links();
    EXPECT_GE(check_exposition(metrics_text(&linked)).size(), 25u);
}

TEST(Metrics, ShowEachPeersLinkOnEachChannel) {
    ClusterView v = with_links();
    std::string text = metrics_text(&v);
    for (const char* line : {
             R"(freeha_heartbeats_received_total{node="bravo",channel="unicast 10.1.0.1 10.1.0.2"} 375)",
             R"(freeha_heartbeats_lost_total{node="bravo",channel="unicast 10.1.0.1 10.1.0.2"} 125)",
             R"(freeha_link_loss_ratio{node="bravo",channel="unicast 10.1.0.1 10.1.0.2"} 0.25)",
             R"(freeha_link_loss_ratio{node="bravo",channel="broadcast 10.0.0.1"} 0)",
             R"(freeha_link_lossy{node="bravo",channel="unicast 10.1.0.1 10.1.0.2"} 1)",
             R"(freeha_link_lossy{node="bravo",channel="broadcast 10.0.0.1"} 0)",
         })
        EXPECT_TRUE(has_line(text, line)) << line << "\nin:\n" << text;
    // This node has no link to itself, and charlie (a daemon before link health) reports none.
    EXPECT_EQ(text.find(R"(node="alpha",channel)"), std::string::npos);
    EXPECT_EQ(text.find(R"(node="charlie",channel)"), std::string::npos);
}

TEST(Metrics, ShowClaimsStopsAndHookRunsByCauseAndHook) {
    Status s;
    s.node = "alpha";
    s.history.claims.at(static_cast<std::size_t>(ClaimCause::Failover)) = 2;
    s.history.stops.at(static_cast<std::size_t>(StopCause::LeaseLost)) = 1;
    s.history.hooks.at(static_cast<std::size_t>(HookKind::Monitor)).count(Usec(30000), false);
    s.history.hooks.at(static_cast<std::size_t>(HookKind::Monitor)).count(Usec(2000000), true);
    auto v = ClusterView::from(to_json(s));
    ASSERT_TRUE(v);
    std::string text = metrics_text(&*v);
    for (const char* line : {
             R"(freeha_claims_total{cause="failover"} 2)",
             R"(freeha_claims_total{cause="startup"} 0)",
             R"(freeha_stops_total{cause="lease_lost"} 1)",
             R"(freeha_stops_total{cause="operator"} 0)",
             R"(freeha_hook_runs_total{hook="monitorhasrv"} 2)",
             R"(freeha_hook_failures_total{hook="monitorhasrv"} 1)",
             R"(freeha_hook_runs_total{hook="starthasrv"} 0)",
             "# TYPE freeha_hook_duration_seconds histogram",
             R"(freeha_hook_duration_seconds_bucket{hook="monitorhasrv",le="0.01"} 0)",
             R"(freeha_hook_duration_seconds_bucket{hook="monitorhasrv",le="0.05"} 1)",
             R"(freeha_hook_duration_seconds_bucket{hook="monitorhasrv",le="1"} 1)",
             R"(freeha_hook_duration_seconds_bucket{hook="monitorhasrv",le="2.5"} 2)",
             R"(freeha_hook_duration_seconds_bucket{hook="monitorhasrv",le="+Inf"} 2)",
             R"(freeha_hook_duration_seconds_sum{hook="monitorhasrv"} 2.03)",
             R"(freeha_hook_duration_seconds_count{hook="monitorhasrv"} 2)",
         })
        EXPECT_TRUE(has_line(text, line)) << line << "\nin:\n" << text;
    check_exposition(text);
    // A daemon before the history: the families are absent, not zero.
    auto old = to_json(s);
    old.erase("history");
    auto older = ClusterView::from(old);
    ASSERT_TRUE(older);
    EXPECT_EQ(metrics_text(&*older).find("freeha_claims_total"), std::string::npos);
}

TEST(Metrics, LabelValuesAreEscaped) {
    EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    EXPECT_EQ(escape_label_value("alpha"), "alpha");
}

// --- service groups: status's groups x nodes view, switchover GROUP NODE, rebalance, metrics

namespace {

// alpha (this node) runs the default group and "db", bravo runs "web" (which
// is errored on alpha); charlie runs none, delta is not heard. The plan moves "db" from alpha
// to charlie, and "web" from bravo to charlie.
ClusterView three_groups() {
    Status s;
    s.cluster = "web";
    s.node = "alpha";
    s.state = NodeState::Running;
    s.active_node = "alpha";
    for (const char* name : {"alpha", "bravo", "charlie", "delta"}) {
        NodeStatus n;
        n.name = name;
        n.self = n.name == "alpha";
        n.reachable = n.name != "delta";
        n.state = n.reachable ? NodeState::Standby : NodeState::TimedOut;
        s.nodes.push_back(n);
    }
    auto group = [](const char* name, const char* active, std::uint64_t term) {
        GroupStatus g;
        g.name = name;
        g.active_node = active;
        g.term = term;
        g.placement = PlacementPolicy::Rendezvous;
        for (const char* node : {"alpha", "bravo", "charlie", "delta"}) {
            NodeState state = std::string(node) == "delta"  ? NodeState::TimedOut
                              : std::string(node) == active ? NodeState::Running
                                                            : NodeState::Standby;
            g.nodes.push_back({node, state, term, false, "", std::string(node) == "alpha"});
        }
        g.state = g.nodes[0].state;
        if (g.state == NodeState::Running) g.lease_remaining = Usec(1234000);
        return g;
    };
    s.groups = {group("default", "alpha", 5), group("db", "alpha", 3), group("web", "bravo", 9)};
    s.groups[2].state = NodeState::Errored;
    s.groups[2].errored = true;
    s.groups[2].last_error = "monitorhasrv exited with status 1";
    s.groups[2].nodes[0] = {"alpha", NodeState::Errored, 9, true, "", true};
    s.groups[2].unavailable = "HooksDirectory=/etc/freeha/web: no such directory";
    s.groups[1].nodes[2].aside = true;  // charlie cannot run db now
    s.rebalance = {PlannedMove{"db", "alpha", "charlie"}, PlannedMove{"web", "bravo", "charlie"}};
    auto v = ClusterView::from(to_json(s));
    EXPECT_TRUE(v);
    return *v;
}

}  // namespace

TEST(ClusterView, ReadsEachGroupWhatEachNodeAnnouncesOfItAndTheRebalancingPlan) {
    ClusterView v = three_groups();
    ASSERT_EQ(v.groups.size(), 3u);
    const auto* web = v.find_group("web");
    ASSERT_NE(web, nullptr);
    EXPECT_EQ(web->active_node, "bravo");
    EXPECT_EQ(web->term, 9u);
    EXPECT_TRUE(web->errored);
    EXPECT_EQ(web->last_error, "monitorhasrv exited with status 1");
    EXPECT_EQ(web->placement, "rendezvous");
    EXPECT_EQ(web->unavailable, "HooksDirectory=/etc/freeha/web: no such directory");
    EXPECT_EQ(v.find_group("db")->unavailable, "");
    EXPECT_TRUE(v.find_group("db")->find("charlie")->aside);
    EXPECT_FALSE(v.find_group("db")->find("bravo")->aside);
    EXPECT_FALSE(web->lease_remaining);
    EXPECT_EQ(v.find_group("db")->lease_remaining, Usec(1234000));
    ASSERT_EQ(web->nodes.size(), 4u);
    EXPECT_EQ(web->find("bravo")->state, "RUNNING");
    EXPECT_EQ(web->find("charlie")->state, "STANDBY");
    EXPECT_EQ(web->find("delta")->state, "TIMEDOUT");
    EXPECT_TRUE(web->find("alpha")->self);
    EXPECT_EQ(v.rebalance, (std::vector<PlannedMove>{{"db", "alpha", "charlie"}, {"web", "bravo", "charlie"}}));
    // A document of a daemon before groups: none, and no plan.
    auto old = to_json(Status{});
    old.erase("groups");
    old.erase("rebalance");
    auto before = ClusterView::from(old);
    ASSERT_TRUE(before);
    EXPECT_TRUE(before->groups.empty());
    EXPECT_TRUE(before->rebalance.empty());
}

TEST(GroupLines, ShowGroupsByNodesOnlyWithMoreThanOneGroup) {
    ClusterView v = three_groups();
    EXPECT_EQ(group_lines(v), (std::vector<std::string>{
                                  "GROUP   ACTIVE TERM  LEASE    alpha    bravo    charlie  delta",
                                  "default alpha  5     1s 234ms RUNNING  STANDBY  STANDBY  TIMEDOUT",
                                  "db      alpha  3     1s 234ms RUNNING  STANDBY  ASIDE    TIMEDOUT",
                                  "web     bravo  9     -        ERRORED  RUNNING  STANDBY  TIMEDOUT",
                                  "Group web is errored here: monitorhasrv exited with status 1",
                                  "Group web cannot run here: HooksDirectory=/etc/freeha/web: no such directory",
                                  "Spread uneven: 2 planned switchover(s) would even it (freehactl rebalance)",
                              }));
    v.groups.resize(1);
    EXPECT_TRUE(group_lines(v).empty()) << "one group: the node's lines say it all, as before groups";
    v.groups.clear();
    EXPECT_TRUE(group_lines(v).empty());
}

TEST(GroupVerbs, AnUnknownGroupOrNodeIsOneLineNamingWhatIsKnown) {
    ClusterView v = three_groups();
    EXPECT_EQ(unknown_group_or_node(v, "mail", "bravo"), "no group 'mail' (groups: default, db, web)");
    EXPECT_EQ(unknown_group_or_node(v, "db", "echo"), "no node 'echo' in this cluster (nodes: alpha, bravo, charlie, delta)");
    EXPECT_EQ(unknown_group_or_node(v, "db", "bravo"), std::nullopt);
    EXPECT_EQ(unknown_group_or_node(v, "db", ""), std::nullopt);
    v.groups.clear();  // a daemon before groups
    EXPECT_EQ(unknown_group_or_node(v, "db", ""), "no group 'db' (groups: none known)");
}

TEST(GroupVerbs, ASwitchoverOfAGroupIsDoneWhenTheTargetRunsIt) {
    struct Case {
        const char* what;
        void (*change)(ClusterView::Group&);
        GroupProgress::Kind kind;
        const char* message;
    };
    const Case cases[] = {
        {"still stopping here", [](ClusterView::Group& g) { g.state = "STOPPING"; }, GroupProgress::Wait,
         "this node is STOPPING for group db"},
        {"stopped, bravo not started yet",
         [](ClusterView::Group& g) {
             g.state = "STANDBY";
             g.active_node = "";
         },
         GroupProgress::Wait, "no other node runs group db yet"},
        {"bravo starting",
         [](ClusterView::Group& g) {
             g.state = "STANDBY";
             g.active_node = "bravo";
             g.nodes[1].state = "STARTING";
         },
         GroupProgress::Wait, "bravo is STARTING for group db"},
        {"bravo runs it",
         [](ClusterView::Group& g) {
             g.state = "STANDBY";
             g.active_node = "bravo";
             g.nodes[1].state = "RUNNING";
         },
         GroupProgress::Done, "group db switched over; it runs on bravo"},
        {"it came back here",
         [](ClusterView::Group& g) {
             g.term = 4;
             g.nodes[1].errored = true;
         },
         GroupProgress::Failed, "group db came back to this node: bravo is ERRORED for it"},
        {"errored here",
         [](ClusterView::Group& g) {
             g.state = "ERRORED";
             g.last_error = "stophasrv exited with status 1";
         },
         GroupProgress::Failed, "this node is ERRORED for group db: stophasrv exited with status 1"},
        {"charlie took it instead",
         [](ClusterView::Group& g) {
             g.state = "STANDBY";
             g.active_node = "charlie";
             g.nodes[2].state = "RUNNING";
         },
         GroupProgress::Failed, "group db went to charlie, not bravo"},
    };
    for (const auto& c : cases) {
        ClusterView v = three_groups();
        c.change(v.groups[1]);
        GroupProgress p = group_switchover_progress(v, "db", "bravo", 3);
        EXPECT_EQ(p.kind, c.kind) << c.what;
        EXPECT_EQ(p.message, c.message) << c.what;
    }
    EXPECT_EQ(group_switchover_progress(three_groups(), "mail", "bravo", 3).message, "group mail is no longer configured");
}

TEST(GroupVerbs, RebalanceMakesThisNodesMovesAndNamesTheOthers) {
    ClusterView v = three_groups();
    RebalanceStep step = rebalance_step(v);
    EXPECT_EQ(step.here, (PlannedMove{"db", "alpha", "charlie"}));
    EXPECT_EQ(step.elsewhere, (std::vector<PlannedMove>{{"web", "bravo", "charlie"}}));
    EXPECT_EQ(describe(*step.here), "group db: alpha -> charlie");
    v.rebalance.erase(v.rebalance.begin());
    step = rebalance_step(v);
    EXPECT_FALSE(step.here);
    EXPECT_EQ(step.elsewhere.size(), 1u);
    v.rebalance.clear();
    step = rebalance_step(v);
    EXPECT_FALSE(step.here);
    EXPECT_TRUE(step.elsewhere.empty());
}

TEST(Metrics, ShowEachGroupsStateActiveNodeTermLeaseAndThePlannedMoves) {
    ClusterView v = three_groups();
    std::string text = metrics_text(&v);
    for (const char* line : {
             "freeha_group_state{group=\"default\",state=\"RUNNING\"} 1",
             "freeha_group_state{group=\"web\",state=\"ERRORED\"} 1",
             "freeha_group_state{group=\"web\",state=\"RUNNING\"} 0",
             "freeha_group_active{group=\"web\",node=\"bravo\"} 1",
             "freeha_group_active{group=\"web\",node=\"alpha\"} 0",
             "freeha_group_active{group=\"db\",node=\"alpha\"} 1",
             "freeha_group_term{group=\"web\"} 9",
             "freeha_group_errored{group=\"web\"} 1",
             "freeha_group_errored{group=\"db\"} 0",
             "freeha_group_lease_remaining_seconds{group=\"db\"} 1.234",
             "freeha_rebalance_moves 2",
         })
        EXPECT_TRUE(has_line(text, line)) << line << "\nin:\n" << text;
    EXPECT_EQ(text.find("freeha_group_lease_remaining_seconds{group=\"web\"}"), std::string::npos) << "no claim, no lease";
    check_exposition(text);
}

TEST(Metrics, ShowTheEtcdLinkOnlyWithEtcd) {
    ClusterView v = on_etcd();
    std::string text = metrics_text(&v);
    for (const char* line : {
             "freeha_etcd_endpoint_info{endpoint=\"http://192.0.2.2:2379\"} 1",
             "freeha_etcd_lease_remaining_seconds 1.234",
             "freeha_etcd_synced 1",
             "freeha_etcd_calls_total 1234",
             "freeha_etcd_call_failures_total 2",
             "freeha_etcd_watch_failures_total 0",
             "freeha_etcd_endpoint_switches_total 1",
             "freeha_etcd_leases_lost_total 0",
         })
        EXPECT_TRUE(has_line(text, line)) << line << "\nin:\n" << text;
    check_exposition(text);
    ClusterView heartbeats = bravo_active();
    EXPECT_EQ(metrics_text(&heartbeats).find("freeha_etcd_"), std::string::npos);
}
