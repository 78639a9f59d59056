// The watch of the cluster's prefix: read, then watched from the next revision; made again after failures.
#include "core/etcd_watch.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace freeha::etcd {
namespace {

using namespace freeha::literals;
using nlohmann::json;

json kv(const std::string& key, const std::string& value, std::int64_t mod) {
    return {{"key", base64(key)}, {"value", base64(value)}, {"mod_revision", std::to_string(mod)}};
}
std::string range_reply(std::int64_t revision, const std::vector<json>& kvs) {
    return json{{"header", {{"revision", std::to_string(revision)}}}, {"kvs", kvs}}.dump();
}
std::string watch_line(std::int64_t revision, const std::vector<json>& events, bool created = false) {
    json result = {{"header", {{"revision", std::to_string(revision)}}}, {"events", events}};
    if (created) result["created"] = true;
    return json{{"result", result}}.dump();
}
json put(const std::string& key, const std::string& value, std::int64_t mod) { return {{"kv", kv(key, value, mod)}}; }
json del(const std::string& key, std::int64_t mod) {
    return {{"type", "DELETE"}, {"kv", {{"key", base64(key)}, {"mod_revision", std::to_string(mod)}}}};
}

// A watch that has read /p/a=1 at revision 4 and is watching from 5.
struct Watching {
    Watch w{"/p/", {"http://e1:2379", "http://e2:2379"}, 400_ms, 200_ms};
    std::uint64_t watch_id = 0;
    Watching() {
        WatchStep s = w.start(0_s);
        EXPECT_EQ(s.requests.at(0).call, Call::Range);
        EXPECT_EQ(json::parse(s.requests[0].body)["range_end"], base64("/p0"));
        WatchStep r = w.on_reply(s.requests[0].id, range_reply(4, {kv("/p/a", "1", 3)}), 10_ms);
        EXPECT_EQ(r.changed, std::vector<std::string>{"/p/a"});
        EXPECT_EQ(r.requests.at(0).call, Call::Watch);
        EXPECT_EQ(json::parse(r.requests[0].body)["create_request"]["start_revision"], "5");
        watch_id = r.requests[0].id;
        w.on_line(watch_id, watch_line(4, {}, true), 20_ms);
        EXPECT_TRUE(w.synced());
    }
};

TEST(EtcdWatch, ReadsThenWatchesFromTheNextRevision) {
    Watching t;
    WatchStep s = t.w.on_line(t.watch_id, watch_line(6, {put("/p/b", "x", 5), del("/p/a", 6)}), 30_ms);
    EXPECT_EQ(s.changed, (std::vector<std::string>{"/p/b", "/p/a"}));
    EXPECT_EQ(t.w.view().size(), 1u);
    EXPECT_EQ(t.w.view().at("/p/b").value, "x");
    EXPECT_EQ(t.w.revision(), 6);
}

TEST(EtcdWatch, AnEndedWatchIsMadeAgainFromTheRevisionAfterTheLastSeenOnTheNextEndpoint) {
    Watching t;
    t.w.on_line(t.watch_id, watch_line(7, {put("/p/b", "x", 7)}), 30_ms);
    WatchStep s = t.w.on_failure(t.watch_id, "stream ended (HTTP 200)", 40_ms);
    EXPECT_EQ(s.failures, std::vector<std::string>{"watch on http://e1:2379: stream ended (HTTP 200)"});
    ASSERT_EQ(s.requests.size(), 1u);
    EXPECT_EQ(s.requests[0].call, Call::Watch);
    EXPECT_EQ(s.requests[0].endpoint, 1u);
    EXPECT_EQ(json::parse(s.requests[0].body)["create_request"]["start_revision"], "8");
    EXPECT_FALSE(t.w.synced());
    // The second endpoint fails too: the round is over, back off.
    WatchStep s2 = t.w.on_failure(s.requests[0].id, "Couldn't connect to server", 50_ms);
    EXPECT_TRUE(s2.requests.empty());
    EXPECT_EQ(t.w.next_wakeup(), 250_ms);
    WatchStep s3 = t.w.on_timer(250_ms);
    ASSERT_EQ(s3.requests.size(), 1u);
    EXPECT_EQ(s3.requests[0].endpoint, 0u);
    EXPECT_EQ(t.w.failures(), 2u);
}

TEST(EtcdWatch, ACompactedStartRevisionIsReadAgainAndOnlyDifferencesReported) {
    Watching t;
    WatchStep s = t.w.on_line(t.watch_id, R"({"result":{"canceled":true,"compact_revision":"9"}})", 30_ms);
    EXPECT_EQ(s.cancel, std::vector<std::uint64_t>{t.watch_id});
    ASSERT_EQ(s.requests.size(), 1u);
    EXPECT_EQ(s.requests[0].call, Call::Range);
    // /p/a unchanged, /p/b new, nothing gone.
    WatchStep r = t.w.on_reply(s.requests[0].id, range_reply(12, {kv("/p/a", "1", 3), kv("/p/b", "y", 11)}), 40_ms);
    EXPECT_EQ(r.changed, std::vector<std::string>{"/p/b"});
    EXPECT_EQ(json::parse(r.requests.at(0).body)["create_request"]["start_revision"], "13");
    // Compacted again: a read that misses a key reports it gone.
    WatchStep again = t.w.on_line(r.requests[0].id, R"({"result":{"canceled":true,"compact_revision":"20"}})", 60_ms);
    WatchStep gone = t.w.on_reply(again.requests.at(0).id, range_reply(21, {kv("/p/b", "y", 11)}), 70_ms);
    EXPECT_EQ(gone.changed, std::vector<std::string>{"/p/a"});
    EXPECT_FALSE(t.w.view().contains("/p/a"));
}

TEST(EtcdWatch, AnUndecodableLineOrASlowRangeFailsTheCall) {
    Watching t;
    WatchStep s = t.w.on_line(t.watch_id, "<html>", 30_ms);
    EXPECT_EQ(s.cancel, std::vector<std::uint64_t>{t.watch_id});
    EXPECT_EQ(s.failures, std::vector<std::string>{"watch on http://e1:2379: reply is not a JSON object"});
    EXPECT_EQ(s.requests.at(0).endpoint, 1u);

    Watch w("/p/", {"http://e1:2379"}, 400_ms, 200_ms);
    WatchStep r = w.start(0_s);
    EXPECT_EQ(w.next_wakeup(), 400_ms);
    WatchStep late = w.on_timer(400_ms);
    EXPECT_EQ(late.cancel, std::vector<std::uint64_t>{r.requests.at(0).id});
    EXPECT_EQ(late.failures, std::vector<std::string>{"range on http://e1:2379: no answer in 400ms"});
    EXPECT_EQ(w.next_wakeup(), 600_ms);  // one endpoint: every failure ends a round
}

TEST(EtcdWatch, FollowingTheSessionToAnotherEndpointMakesTheWatchThere) {
    Watching t;
    WatchStep s = t.w.follow(1, 30_ms);
    EXPECT_EQ(s.cancel, std::vector<std::uint64_t>{t.watch_id});
    ASSERT_EQ(s.requests.size(), 1u);
    EXPECT_EQ(s.requests[0].endpoint, 1u);
    EXPECT_TRUE(t.w.follow(1, 40_ms).requests.empty());  // already there
    // A line of the replaced watch is ignored.
    EXPECT_TRUE(t.w.on_line(t.watch_id, watch_line(9, {put("/p/z", "z", 9)}), 50_ms).changed.empty());
}

TEST(EtcdWatch, TheCreatedMessagesRevisionIsNotWhatTheWatchDelivered) {
    Watch w("/p/", {"http://e1:2379"}, 400_ms, 200_ms);
    WatchStep s = w.start(0_s);
    WatchStep r = w.on_reply(s.requests.at(0).id, range_reply(4, {}), 10_ms);
    const std::uint64_t watch = r.requests.at(0).id;
    // Created while the store is at 9: revisions 5-9 are still to come.
    w.on_line(watch, watch_line(9, {}, true), 20_ms);
    EXPECT_EQ(w.revision(), 4);
    w.on_line(watch, watch_line(9, {put("/p/a", "1", 6)}), 30_ms);
    EXPECT_EQ(w.revision(), 6);
    WatchStep again = w.on_failure(watch, "stream ended (HTTP 200)", 40_ms);
    WatchStep later = w.on_timer(240_ms);
    EXPECT_EQ(json::parse(later.requests.at(0).body)["create_request"]["start_revision"], "7");
    // A progress notice (no events) says everything up to its revision was delivered.
    w.on_line(later.requests[0].id, watch_line(9, {}, true), 250_ms);
    w.on_line(later.requests[0].id, watch_line(11, {}), 260_ms);
    EXPECT_EQ(w.revision(), 11);
    (void)again;
}

TEST(EtcdWatch, AWatchNotCreatedInTimeIsMadeAgain) {
    Watch w("/p/", {"http://e1:2379", "http://e2:2379"}, 400_ms, 200_ms);
    WatchStep s = w.start(0_s);
    WatchStep r = w.on_reply(s.requests.at(0).id, range_reply(4, {}), 10_ms);
    EXPECT_EQ(w.next_wakeup(), 410_ms);
    WatchStep late = w.on_timer(410_ms);
    EXPECT_EQ(late.cancel, std::vector<std::uint64_t>{r.requests.at(0).id});
    EXPECT_EQ(late.failures, std::vector<std::string>{"watch on http://e1:2379: no answer in 400ms"});
    ASSERT_EQ(late.requests.size(), 1u);
    EXPECT_EQ(late.requests[0].endpoint, 1u);
    // Once created, a quiet watch has no deadline.
    w.on_line(late.requests[0].id, watch_line(4, {}, true), 420_ms);
    EXPECT_FALSE(w.next_wakeup());
}

}  // namespace
}  // namespace freeha::etcd
