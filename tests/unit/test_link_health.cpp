// Per-peer link health: heartbeats expected, received and lost per channel
// (core/membership.h's LinkHealth), the journal's warning and recovery, and
// what the status document shows of them.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/membership.h"
#include "core/node.h"
#include "core/node_name.h"

using namespace freeha;

namespace {

constexpr Usec ms = kUsecPerMsec;
constexpr Usec interval = 200 * ms;
constexpr Usec dead_time = 1000 * ms;

wire::Heartbeat beat(std::uint64_t sequence, std::uint64_t incarnation = 1) {
    wire::Heartbeat hb;
    hb.cluster_id = cluster_id("test");
    hb.node = "a";
    hb.state = NodeState::Standby;
    hb.sequence = sequence;
    hb.incarnation = incarnation;
    return hb;
}

// One heartbeat as it arrives, or the peer timing out.
struct Arrival {
    std::uint64_t sequence = 0;
    std::size_t channel = 0;
    std::uint64_t incarnation = 1;
    bool time_out = false;  // instead: a dead time passes without a heartbeat
};

// Every number in [from, to] on each of `channels`, in turn, except those `skip` names for a channel.
std::vector<Arrival> beats(std::uint64_t from, std::uint64_t to, std::vector<std::size_t> channels = {0, 1},
                           std::function<bool(std::uint64_t, std::size_t)> skip = nullptr,
                           std::uint64_t incarnation = 1) {
    std::vector<Arrival> out;
    for (std::uint64_t s = from; s <= to; ++s)
        for (std::size_t c : channels)
            if (!skip || !skip(s, c)) out.push_back({s, c, incarnation});
    return out;
}

std::vector<Arrival> operator+(std::vector<Arrival> a, const std::vector<Arrival>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

const std::vector<Arrival> kTimeout{{0, 0, 1, true}};

struct Counts {
    std::uint64_t received, lost;
    bool operator==(const Counts&) const = default;
};

void PrintTo(const Counts& c, std::ostream* os) { *os << "{received " << c.received << ", lost " << c.lost << "}"; }

struct CountCase {
    const char* name;
    std::vector<Arrival> arrivals;
    std::vector<Counts> expected;  // per channel
};

void PrintTo(const CountCase& c, std::ostream* os) { *os << c.name; }

class LinkCounts : public ::testing::TestWithParam<CountCase> {};

// A channel's numbers are judged 8 behind the newest it carried (64 behind
// the newest on any channel, for a channel that carries nothing): the counts
// below are of the judged ones.
TEST_P(LinkCounts, AreJudgedFromSequenceNumbers) {
    const CountCase& c = GetParam();
    Membership m(2, false);
    Usec now = 10 * kUsecPerSec;
    for (const Arrival& a : c.arrivals) {
        if (a.time_out) {
            now += dead_time;
            EXPECT_EQ(m.expire(now, dead_time), std::vector<std::string>{"a"});
            continue;
        }
        now += ms;
        m.observe(beat(a.sequence, a.incarnation), a.channel, now);
    }
    const Peer& p = m.peers().at("a");
    std::vector<Counts> counts;
    for (const LinkHealth& link : p.links) {
        counts.push_back({link.received(), link.lost()});
        EXPECT_EQ(link.expected(), link.received() + link.lost());
    }
    EXPECT_EQ(counts, c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Every, LinkCounts,
    ::testing::Values(
        CountCase{"InOrderOnBothChannels", beats(1, 20), {{12, 0}, {12, 0}}},
        CountCase{"GapsOnOneChannel", beats(1, 40, {0, 1}, [](auto s, auto c) { return c == 1 && s % 5 == 0 && s < 30; }),
                  {{32, 0}, {27, 5}}},
        // 5 comes after 9 on channel 1: within the margin, so not lost.
        CountCase{"ReorderedWithinTheMargin",
                  beats(1, 9, {0, 1}, [](auto s, auto c) { return c == 1 && s == 5; }) + std::vector<Arrival>{{5, 1}} +
                      beats(10, 20),
                  {{12, 0}, {12, 0}}},
        // 5 comes after 13 on channel 1 (8 newer): it was judged lost already, and stays lost.
        CountCase{"LaterThanTheMarginCountsAsLost",
                  beats(1, 13, {0, 1}, [](auto s, auto c) { return c == 1 && s == 5; }) + std::vector<Arrival>{{5, 1}} +
                      beats(14, 20),
                  {{12, 0}, {11, 1}}},
        // Every heartbeat twice on each channel: a duplicate is a replay, counted once.
        CountCase{"DuplicatesCountOnce", beats(1, 20) + beats(1, 20), {{12, 0}, {12, 0}}},
        // A copy on channel 1 of what channel 0 brought first is not applied, but received there.
        CountCase{"TheRedundantCopyIsReceivedOnItsChannel", beats(1, 20, {0}) + beats(1, 20, {1}), {{12, 0}, {12, 0}}},
        // Channel 1 carries nothing: judged 64 behind channel 0's newest.
        CountCase{"ADeadChannelLosesEverything", beats(1, 100, {0}), {{92, 0}, {0, 36}}},
        // A restart numbers from 1 again: the old run's rest is judged (received), the new one counted anew.
        CountCase{"ARestartStartsOverWithoutLosses", beats(1, 30) + beats(1, 30, {0, 1}, nullptr, 2), {{52, 0}, {52, 0}}},
        // The old run's tail lost on channel 1 (29, 30) is judged at the restart: lost.
        CountCase{"ARestartJudgesTheOldRunsTail",
                  beats(1, 30, {0, 1}, [](auto s, auto c) { return c == 1 && s >= 29; }) +
                      beats(1, 30, {0, 1}, nullptr, 2),
                  {{52, 0}, {50, 2}}},
        // Timed out, heard again far ahead: what it sent while silent is not expected.
        CountCase{"ATimeoutIsNotALoss", beats(1, 30) + kTimeout + beats(500, 530), {{53, 0}, {53, 0}}},
        // The counts stay as they were while it is timed out.
        CountCase{"ATimedOutPeersCountsStay", beats(1, 30) + kTimeout, {{22, 0}, {22, 0}}}),
    [](const auto& info) { return std::string(info.param.name); });

// --- the journal's lines and the status document ----------------------------

const std::vector<std::string> kChannels{"broadcast 10.0.0.2", "unicast 10.1.0.2 10.1.0.1"};

class LinkNode {
public:
    LinkNode() {
        NodeSettings s;
        s.cluster_name = "test";
        s.node_name = "b";
        s.incarnation = 100;
        s.expected_nodes = 2;
        s.interval = interval;
        s.dead_time = dead_time;
        s.channel_count = 2;
        s.channel_names = kChannels;
        node_ = std::make_unique<Node>(s);
        take(node_->start(now_, false));
    }

    // `count` heartbeats of a, one per interval; `lost_on_1` says which of them channel 1 loses.
    void send(unsigned count, const std::function<bool(std::uint64_t)>& lost_on_1 = nullptr) {
        for (unsigned i = 0; i < count; ++i) {
            ++sequence_;
            now_ += interval;
            take(node_->on_timer(now_));
            take(node_->on_heartbeat(beat(sequence_, incarnation_), 0, now_));
            if (!lost_on_1 || !lost_on_1(sequence_)) take(node_->on_heartbeat(beat(sequence_, incarnation_), 1, now_));
        }
    }
    void silence(Usec span) {
        for (Usec until = now_ + span; now_ < until;) {
            now_ += interval;
            take(node_->on_timer(now_));
        }
    }
    void restart() {
        ++incarnation_;
        sequence_ = 0;
    }
    void skip(std::uint64_t numbers) { sequence_ += numbers; }  // sent while nobody heard

    // The link notices so far, as "KIND a 'channel': text".
    std::vector<std::string> lines() const {
        std::vector<std::string> out;
        for (const auto& e : effects_)
            if (auto* n = std::get_if<effect::Notice>(&e);
                n && (n->kind == NoticeKind::LinkLossy || n->kind == NoticeKind::LinkRecovered))
                out.push_back(std::string(to_string(n->kind)) + " " + n->peer + " '" + n->channel + "': " + n->text);
        return out;
    }
    nlohmann::json channels_of_a() const {
        auto doc = to_json(node_->status(now_));
        for (const auto& n : doc["nodes"])
            if (n["name"] == "a") return n["channels"];
        return nullptr;
    }

private:
    void take(Effects e) {
        for (auto& x : e) effects_.push_back(std::move(x));
    }
    std::unique_ptr<Node> node_;
    Usec now_ = 10 * kUsecPerSec;
    std::uint64_t sequence_ = 0;
    std::uint64_t incarnation_ = 1;
    Effects effects_;
};

bool every_4th(std::uint64_t s) { return s % 4 == 0; }
bool every_16th(std::uint64_t s) { return s % 16 == 0; }
bool every_20th(std::uint64_t s) { return s % 20 == 0; }

const std::string kLossy = "link-lossy a 'unicast 10.1.0.2 10.1.0.1': 16 of the last 64 heartbeats lost (25%, above 10%)";
std::string recovered(unsigned lost) {
    return "link-recovered a 'unicast 10.1.0.2 10.1.0.1': " + std::to_string(lost) + " of the last 64 heartbeats lost (" +
           std::to_string((lost * 100 + 32) / 64) + "%, at most 2%)";
}

struct LineCase {
    const char* name;
    std::function<void(LinkNode&)> script;
    std::vector<std::string> lines;
};

void PrintTo(const LineCase& c, std::ostream* os) { *os << c.name; }

class LinkLines : public ::testing::TestWithParam<LineCase> {};

TEST_P(LinkLines, AreOneWarningAndOneRecoveryAtMost) {
    LinkNode n;
    GetParam().script(n);
    EXPECT_EQ(n.lines(), GetParam().lines);
}

INSTANTIATE_TEST_SUITE_P(
    Every, LinkLines,
    ::testing::Values(
        LineCase{"AHealthyLinkSaysNothing", [](LinkNode& n) { n.send(300); }, {}},
        // 3 or 4 of 64: at most 6 (10 %) is not worth a warning.
        LineCase{"FivePercentSaysNothing", [](LinkNode& n) { n.send(300, every_20th); }, {}},
        // Warned once the window of 64 is full, however long it goes on; once when it is clean again.
        LineCase{"AQuarterLostWarnsOnceAndRecoversOnce",
                 [](LinkNode& n) {
                     n.send(300, every_4th);
                     n.send(100);
                 },
                 {kLossy, recovered(1)}},
        // 4 of 64 (6 %) after the warning: not recovered (hysteresis), and no second warning.
        LineCase{"BetweenTheThresholdsNothingChanges",
                 [](LinkNode& n) {
                     n.send(100, every_4th);
                     n.send(200, every_16th);
                     n.send(100);
                 },
                 {kLossy, recovered(1)}},
        // A dead peer is not a lossy link: its timeout says nothing of the link, which stays lossy until
        // it is heard again, and the numbers it sent meanwhile are not lost.
        LineCase{"ATimeoutSaysNothingOfTheLink",
                 [](LinkNode& n) {
                     n.send(100, every_4th);
                     n.silence(5 * dead_time);
                     n.skip(1000);
                     n.send(100);
                 },
                 {kLossy, recovered(1)}},
        // A restart numbers from 1 again: neither a loss nor a recovery.
        LineCase{"ARestartSaysNothingOfTheLink",
                 [](LinkNode& n) {
                     n.send(100);
                     n.restart();
                     n.send(100);
                 },
                 {}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(LinkStatus, TheDocumentShowsEachChannelsCountsAndRecentRatio) {
    LinkNode n;
    n.send(200, every_4th);
    auto channels = n.channels_of_a();
    ASSERT_EQ(channels.size(), 2u);
    EXPECT_EQ(channels[0]["name"], kChannels[0]);
    EXPECT_EQ(channels[0]["received"], 192u);  // 200, judged 8 behind
    EXPECT_EQ(channels[0]["lost"], 0u);
    EXPECT_EQ(channels[0]["recent_loss_ratio"], 0.0);
    EXPECT_EQ(channels[0]["lossy"], false);
    EXPECT_EQ(channels[1]["name"], kChannels[1]);
    EXPECT_EQ(channels[1]["expected"], 191u);  // 200 was lost there: its newest is 199
    EXPECT_EQ(channels[1]["received"], 144u);
    EXPECT_EQ(channels[1]["lost"], 47u);
    EXPECT_EQ(channels[1]["recent_expected"], 64u);
    EXPECT_EQ(channels[1]["recent_lost"], 16u);
    EXPECT_EQ(channels[1]["recent_loss_ratio"], 0.25);
    EXPECT_EQ(channels[1]["lossy"], true);
}

TEST(LinkStatus, NothingJudgedYetIsANullRatio) {
    LinkNode n;
    n.send(3);
    auto channels = n.channels_of_a();
    EXPECT_EQ(channels[1]["expected"], 0u);
    EXPECT_TRUE(channels[1]["recent_loss_ratio"].is_null());
}

}  // namespace
