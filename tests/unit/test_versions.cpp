// Rolling upgrades (wire.h, "Versions"): a node speaks the previous wire version
// while any live peer understands only that, says it understands the current
// one, and switches once the last node of the previous release is gone.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "core/node.h"
#include "core/node_name.h"
#include "sim/sim_cluster.h"

using namespace freeha;

namespace {

constexpr Usec ms = kUsecPerMsec;
constexpr Usec sec = kUsecPerSec;

// A heartbeat as release 0.1.0 (wire version 2) sends it: no marker, no
// release, no maintenance epoch; a standby member that hears `hears`.
wire::Heartbeat previous_release_heartbeat(const std::string& name, std::uint64_t sequence, Usec now,
                                           const std::vector<std::string>& hears) {
    wire::Heartbeat hb;
    hb.version = wire::kPreviousVersion;
    hb.understands = wire::kPreviousVersion;
    hb.cluster_id = cluster_id("test");
    hb.incarnation = 7;
    hb.sequence = sequence;
    hb.sent_at = now.count();
    hb.state = NodeState::Standby;
    hb.node = name;
    for (const auto& h : hears) hb.heard.push_back(node_id(h));
    hb.expected_nodes = 3;
    hb.claimant_incarnation = 0;
    return hb;
}

// One real Node on a fake clock; every heartbeat it sends is decoded and kept.
class One {
public:
    One() {
        settings_.cluster_name = "test";
        settings_.node_name = "b";
        settings_.incarnation = 100;
        settings_.expected_nodes = 3;
        settings_.init_dead = 2 * sec;
        settings_.release = "0.2.0";
        node_ = std::make_unique<Node>(settings_);
        take(node_->start(now_, false));
    }
    Node& node() { return *node_; }
    Usec now() const { return now_; }
    const std::vector<wire::Heartbeat>& sent() const { return sent_; }
    const std::vector<std::uint8_t>& last_datagram() const { return last_datagram_; }

    void receive(const std::vector<std::uint8_t>& datagram) { take(node_->on_datagram(datagram, 0, now_)); }
    // Fires the node's timer up to now + span; `each` (every 200 ms) is the peers' turn to send.
    void advance(Usec span, const std::function<void()>& each = {}) {
        Usec until = now_ + span;
        Usec next_beat = now_;
        while (true) {
            Usec next = std::min(node_->next_wakeup(now_).value_or(Usec::max()), each ? next_beat : Usec::max());
            if (next > until) break;
            now_ = std::max(now_, next);
            if (each && next == next_beat) {
                each();
                next_beat = now_ + settings_.interval;
            } else {
                take(node_->on_timer(now_));
            }
        }
        now_ = until;
    }

private:
    void take(Effects effects) {
        for (auto& e : effects) {
            if (auto* hb = std::get_if<effect::SendHeartbeat>(&e)) {
                auto d = wire::decode(hb->datagram);
                ASSERT_TRUE(d.decoded) << "the node sent what it cannot decode: " << to_string(d.reject);
                sent_.push_back(d.decoded->heartbeat);
                last_datagram_ = hb->datagram;
            } else if (auto* run = std::get_if<effect::RunHook>(&e)) {
                // The start-up probe finds nothing; starts and stops succeed.
                bool success = run->kind != HookKind::Monitor;
                take(node_->on_hook_finished(run->kind, HookOutcome{success, success ? "" : "exited with status 1"},
                                             now_));
            }
        }
    }

    NodeSettings settings_;
    std::unique_ptr<Node> node_;
    Usec now_ = 10 * sec;
    std::vector<wire::Heartbeat> sent_;
    std::vector<std::uint8_t> last_datagram_;
};

}  // namespace

TEST(Versions, ANodeAloneSpeaksTheCurrentVersionAndNamesItsRelease) {
    One n;
    n.advance(1 * sec);
    ASSERT_FALSE(n.sent().empty());
    EXPECT_EQ(n.node().wire_version(), wire::kVersion);
    EXPECT_EQ(n.sent().back().version, wire::kVersion);
    EXPECT_EQ(n.sent().back().release, "0.2.0");
    EXPECT_EQ(n.last_datagram()[4], wire::kVersion);
}

TEST(Versions, APeerOfThePreviousReleaseMakesTheNodeSpeakItsVersionWithTheMarker) {
    One n;
    std::uint64_t seq = 0;
    auto old_peer = [&] {
        n.receive(wire::encode(previous_release_heartbeat("old", ++seq, n.now(), {"b"})));
    };
    n.advance(1 * sec, old_peer);
    std::size_t before = n.sent().size();
    n.advance(1 * sec, old_peer);
    ASSERT_GT(n.sent().size(), before);
    EXPECT_EQ(n.node().wire_version(), wire::kPreviousVersion);
    for (std::size_t i = before; i < n.sent().size(); ++i) {
        const auto& hb = n.sent()[i];
        EXPECT_EQ(hb.version, wire::kPreviousVersion) << "heartbeat " << i;
        // decode() takes the marker out of the heard list and says so here.
        EXPECT_EQ(hb.understands, wire::kVersion) << "heartbeat " << i << " lacks the marker";
        EXPECT_EQ(hb.heard, std::vector<std::uint64_t>{node_id("old")}) << "heartbeat " << i;
        EXPECT_EQ(hb.flags & (wire::kFlagLeaving | wire::kFlagMaintenance), 0);
    }
    // On the wire: version byte 2, the marker among the heard ids (which a
    // 0.1.0 decoder takes for an unknown node's).
    const auto& d = n.last_datagram();
    EXPECT_EQ(d[4], wire::kPreviousVersion);
    std::vector<std::uint8_t> marker(8);
    for (int i = 0; i < 8; ++i) marker[i] = static_cast<std::uint8_t>(wire::kUnderstandsCurrentMarker >> (56 - 8 * i));
    EXPECT_NE(std::search(d.begin(), d.end(), marker.begin(), marker.end()), d.end());
    // The peer shows as speaking version 2, with no release.
    auto s = n.node().status(n.now());
    EXPECT_EQ(s.wire_version, wire::kPreviousVersion);
    auto old = std::find_if(s.nodes.begin(), s.nodes.end(), [](const NodeStatus& x) { return x.name == "old"; });
    ASSERT_NE(old, s.nodes.end());
    EXPECT_EQ(old->wire_version, wire::kPreviousVersion);
    EXPECT_EQ(old->version, "");
}

TEST(Versions, ThePreviousReleasesPeerTimedOutTheNodeSpeaksTheCurrentVersion) {
    One n;
    std::uint64_t seq = 0;
    n.advance(2 * sec, [&] { n.receive(wire::encode(previous_release_heartbeat("old", ++seq, n.now(), {"b"}))); });
    ASSERT_EQ(n.node().wire_version(), wire::kPreviousVersion);
    Usec silent_from = n.now();
    // Within the dead time it is still live: still version 2.
    n.advance(500 * ms);
    EXPECT_EQ(n.node().wire_version(), wire::kPreviousVersion);
    std::size_t before = n.sent().size();
    n.advance(2 * sec);
    EXPECT_EQ(n.node().wire_version(), wire::kVersion);
    ASSERT_GT(n.sent().size(), before);
    EXPECT_EQ(n.sent().back().version, wire::kVersion);
    EXPECT_EQ(n.last_datagram()[4], wire::kVersion);
    EXPECT_LE(n.now() - silent_from, 2500 * ms);
}

TEST(Versions, AnUnknownWireVersionIsCountedAsBadVersionAndChangesNothingElse) {
    One n;
    std::uint64_t seq = 0;
    auto old_peer = [&] { n.receive(wire::encode(previous_release_heartbeat("old", ++seq, n.now(), {"b"}))); };
    n.advance(2 * sec, old_peer);
    auto before = n.node().status(n.now());
    // A later release's version 4 heartbeat from a node not yet known, and one from the known peer.
    for (const char* name : {"new", "old"}) {
        wire::Heartbeat hb = previous_release_heartbeat(name, ++seq, n.now(), {"b"});
        hb.version = wire::kVersion;
        hb.understands = wire::kVersion;
        hb.release = "0.3.0";
        hb.state = NodeState::Running;
        hb.term = 99;
        auto datagram = wire::encode(hb);
        datagram[4] = 4;
        n.receive(datagram);
    }
    auto after = n.node().status(n.now());
    EXPECT_EQ(after.counters.malformed[static_cast<int>(wire::Reject::BadVersion)],
              before.counters.malformed[static_cast<int>(wire::Reject::BadVersion)] + 2);
    EXPECT_EQ(after.counters.accepted, before.counters.accepted);
    EXPECT_EQ(after.nodes.size(), before.nodes.size()) << "a version-4 sender became a known node";
    EXPECT_EQ(after.state, before.state);
    EXPECT_EQ(after.term, before.term);
    EXPECT_EQ(after.wire_version, wire::kPreviousVersion);
    EXPECT_EQ(n.node().wire_version(), wire::kPreviousVersion);
    auto old = std::find_if(after.nodes.begin(), after.nodes.end(), [](const NodeStatus& x) { return x.name == "old"; });
    ASSERT_NE(old, after.nodes.end());
    EXPECT_EQ(old->wire_version, wire::kPreviousVersion);
    EXPECT_EQ(old->state, NodeState::Standby);
}

// Two nodes of this release and one of the previous: both speak version 2
// while it lives (each hearing the other's marker), and both switch to 3
// within a heartbeat interval of each other once it is gone. The services
// stay where they run throughout.
TEST(Versions, TwoNodesThatSpokeThePreviousVersionSwitchTogetherOnceTheLastOldNodeIsGone) {
    NodeSettings base;
    base.cluster_name = "test";
    base.expected_nodes = 3;
    base.release = "0.2.0";
    sim::SimCluster c({"a", "c"}, base);
    std::uint64_t seq = 0;
    auto old_beats = [&] {
        for (const char* to : {"a", "c"})
            c.inject(to, wire::encode(previous_release_heartbeat("old", ++seq, c.now(), {"a", "c"})));
    };
    c.start_all();
    for (int i = 0; i < 50; ++i) {  // 10 s with the old node heartbeating
        old_beats();
        c.run_for(200 * ms);
        for (const char* name : {"a", "c"})
            ASSERT_EQ(c[name].node->wire_version(), wire::kPreviousVersion) << name << " at " << c.now();
    }
    auto holders = c.running();
    ASSERT_EQ(holders.size(), 1u);
    auto starts = c["a"].groups[0].starts + c["c"].groups[0].starts;
    // Each sees the other speak version 2 (with the marker: see the switch below).
    for (auto [self, other] : {std::pair{"a", "c"}, std::pair{"c", "a"}}) {
        auto s = c[self].node->status(c.now());
        std::string peer = other;  // clang: a lambda cannot capture a structured binding
        auto o = std::find_if(s.nodes.begin(), s.nodes.end(), [&](const NodeStatus& x) { return x.name == peer; });
        ASSERT_NE(o, s.nodes.end());
        EXPECT_EQ(o->wire_version, wire::kPreviousVersion) << self << " sees " << other;
    }
    // The old node is gone (stopped for its upgrade): each switches after its dead time.
    Usec gone = c.now();
    std::map<std::string, Usec> switched;
    c.run_for(5 * sec, [&] {
        for (const char* name : {"a", "c"})
            if (!switched.count(name) && c[name].node->wire_version() == wire::kVersion) switched[name] = c.now();
    });
    ASSERT_EQ(switched.size(), 2u) << "a node kept speaking version 2 after the last old node left";
    Usec first = std::min(switched["a"], switched["c"]), last = std::max(switched["a"], switched["c"]);
    EXPECT_GE(first - gone, base.dead_time - 250 * ms) << "switched while the old node was still live";
    EXPECT_LE(last - first, base.interval + 50 * ms);
    for (auto [self, other] : {std::pair{"a", "c"}, std::pair{"c", "a"}}) {
        auto s = c[self].node->status(c.now());
        std::string peer = other;  // clang: a lambda cannot capture a structured binding
        auto o = std::find_if(s.nodes.begin(), s.nodes.end(), [&](const NodeStatus& x) { return x.name == peer; });
        ASSERT_NE(o, s.nodes.end());
        EXPECT_EQ(o->wire_version, wire::kVersion) << self << " sees " << other;
        EXPECT_EQ(o->version, "0.2.0") << self << " sees " << other;
    }
    EXPECT_EQ(c.running(), holders) << "the services moved";
    EXPECT_EQ(c["a"].groups[0].starts + c["c"].groups[0].starts, starts) << "a start ran";
}

// A peer heard on version 3 that comes back as the previous release (a
// downgrade: a new incarnation speaking version 2) no longer shows the
// release of its earlier run.
TEST(Versions, APeerThatRestartsOnThePreviousReleaseShowsNoRelease) {
    One n;
    std::uint64_t seq = 0;
    wire::Heartbeat hb = previous_release_heartbeat("old", 0, n.now(), {"b"});
    hb.version = wire::kVersion;
    hb.understands = wire::kVersion;
    hb.release = "0.2.0";
    n.advance(1 * sec, [&] {
        hb.sequence = ++seq;
        hb.sent_at = n.now().count();
        n.receive(wire::encode(hb));
    });
    auto peer = [&] {
        auto s = n.node().status(n.now());
        auto it = std::find_if(s.nodes.begin(), s.nodes.end(), [](const NodeStatus& x) { return x.name == "old"; });
        EXPECT_NE(it, s.nodes.end());
        return it == s.nodes.end() ? NodeStatus{} : *it;
    };
    ASSERT_EQ(peer().version, "0.2.0");
    ASSERT_EQ(peer().wire_version, wire::kVersion);
    seq = 0;
    n.advance(1 * sec, [&] {
        auto old = previous_release_heartbeat("old", ++seq, n.now(), {"b"});
        old.incarnation = 8;
        n.receive(wire::encode(old));
    });
    EXPECT_EQ(peer().wire_version, wire::kPreviousVersion);
    EXPECT_EQ(peer().version, "") << "the release of the peer's earlier run";
    EXPECT_EQ(n.node().wire_version(), wire::kPreviousVersion);
}
