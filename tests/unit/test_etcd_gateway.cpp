// etcd's JSON gateway: request bodies, and replies as etcd 3.4.23 wrote them (captured with curl).
#include "core/etcd_gateway.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace freeha::etcd {
namespace {

using nlohmann::json;

TEST(EtcdGateway, Base64RoundTripsAndRefusesJunk) {
    EXPECT_EQ(base64("/freeha/c1/groups/default/holder"), "L2ZyZWVoYS9jMS9ncm91cHMvZGVmYXVsdC9ob2xkZXI=");
    EXPECT_EQ(base64(""), "");
    EXPECT_EQ(unbase64("bm9kZTE="), "node1");
    EXPECT_EQ(unbase64(""), "");
    EXPECT_FALSE(unbase64("bm9kZTE"));   // unpadded
    EXPECT_FALSE(unbase64("bm9k ZTE="));  // a space
    EXPECT_FALSE(unbase64("!!!!"));
}

TEST(EtcdGateway, PrefixEndIsTheFirstKeyPastThePrefix) {
    EXPECT_EQ(prefix_end("/freeha/c1/"), "/freeha/c10");
    EXPECT_EQ(prefix_end(std::string("a\xff", 2)), "b");
    EXPECT_EQ(prefix_end(""), std::string(1, '\0'));
}

TEST(EtcdGateway, ClaimCreatesOnlyAnAbsentKeyOnTheLease) {
    json j = json::parse(claim_body("/k", "node1", 7));
    EXPECT_EQ(j["compare"][0]["target"], "CREATE");
    EXPECT_EQ(j["compare"][0]["create_revision"], "0");
    EXPECT_EQ(j["compare"][0]["key"], base64("/k"));
    EXPECT_EQ(j["success"][0]["request_put"]["value"], base64("node1"));
    EXPECT_EQ(j["success"][0]["request_put"]["lease"], "7");
    EXPECT_EQ(j["failure"][0]["request_range"]["key"], base64("/k"));
}

TEST(EtcdGateway, EachCallHasItsNameAndPath) {
    const struct {
        Call call;
        const char* name;
        const char* path;
    } rows[] = {
        {Call::Grant, "grant", "/v3/lease/grant"},   {Call::KeepAlive, "keepalive", "/v3/lease/keepalive"},
        {Call::Claim, "claim", "/v3/kv/txn"},        {Call::Release, "release", "/v3/kv/txn"},
        {Call::Put, "put", "/v3/kv/put"},            {Call::Mark, "mark", "/v3/kv/txn"},
        {Call::Revoke, "revoke", "/v3/lease/revoke"}, {Call::Range, "range", "/v3/kv/range"},
        {Call::Watch, "watch", "/v3/watch"},
    };
    static_assert(std::size(rows) == kCallCount);
    for (const auto& row : rows) {
        EXPECT_EQ(to_string(row.call), row.name);
        EXPECT_EQ(path(row.call), row.path) << row.name;
    }
}

TEST(EtcdGateway, AClaimWithoutALeaseCreatesAKeyThatStays) {
    // etcd's lease 0 is none: the cluster's mark outlives every node's lease.
    json j = json::parse(claim_body("/freeha/c1/cluster", "c1", 0));
    EXPECT_EQ(j["compare"][0]["create_revision"], "0");
    EXPECT_EQ(j["success"][0]["request_put"]["key"], base64("/freeha/c1/cluster"));
    EXPECT_EQ(j["success"][0]["request_put"]["value"], base64("c1"));
    EXPECT_EQ(j["success"][0]["request_put"]["lease"], "0");
    EXPECT_EQ(j["failure"][0]["request_range"]["key"], base64("/freeha/c1/cluster"));
}

TEST(EtcdGateway, APutAttachesTheKeyToTheLease) {
    json j = json::parse(put_body("/freeha/c1/members/n1", "10.0.0.1", 7));
    EXPECT_EQ(j["key"], base64("/freeha/c1/members/n1"));
    EXPECT_EQ(j["value"], base64("10.0.0.1"));
    EXPECT_EQ(j["lease"], "7");
    EXPECT_EQ(j.size(), 3u);  // no prev_kv, no ignore_value: a plain put
    EXPECT_EQ(json::parse(put_body("/k", "", -3))["value"], "");
}

TEST(EtcdGateway, ReleaseDeletesOnlyTheKeyOfItsOwnLease) {
    json j = json::parse(release_body("/k", 7, 12));
    EXPECT_EQ(j["compare"][0]["target"], "LEASE");
    EXPECT_EQ(j["compare"][0]["lease"], "7");
    EXPECT_EQ(j["compare"][1]["target"], "CREATE");
    EXPECT_EQ(j["compare"][1]["create_revision"], "12");
    EXPECT_EQ(j["success"][0]["request_delete_range"]["key"], base64("/k"));
    EXPECT_FALSE(j.contains("failure"));
}

TEST(EtcdGateway, WatchAndRangeCoverThePrefix) {
    json w = json::parse(watch_body("/freeha/c1/", 42));
    EXPECT_EQ(w["create_request"]["key"], base64("/freeha/c1/"));
    EXPECT_EQ(w["create_request"]["range_end"], base64("/freeha/c10"));
    EXPECT_EQ(w["create_request"]["start_revision"], "42");
    json r = json::parse(range_body("/freeha/c1/"));
    EXPECT_EQ(r["range_end"], base64("/freeha/c10"));
    EXPECT_EQ(json::parse(grant_body(2))["TTL"], "2");
    EXPECT_EQ(json::parse(keepalive_body(-5))["ID"], "-5");
}

constexpr const char* kHeader =
    R"("header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"2","raft_term":"2"})";

TEST(EtcdGateway, DecodesAGrant) {
    auto g = decode_grant(std::string("{") + kHeader + R"(,"ID":"2324035808927105541","TTL":"1"})");
    ASSERT_TRUE(g) << g.error;
    EXPECT_EQ(g.value->lease, 2324035808927105541);
    EXPECT_EQ(g.value->ttl_seconds, 1);
}

struct BadReply {
    const char* body;
    const char* error;
    int code;
};

TEST(EtcdGateway, RefusesBadGrantsWithOneLine) {
    const BadReply cases[] = {
        {"", "reply is not a JSON object", 0},
        {"[1]", "reply is not a JSON object", 0},
        {R"({"TTL":"1"})", "grant reply lacks a lease ID", 0},
        {R"({"ID":"x1","TTL":"1"})", "grant reply lacks a lease ID", 0},
        {R"({"ID":"9"})", "grant reply lacks a TTL", 0},
        {R"({"error":"etcdserver: too many requests","message":"etcdserver: too many requests","code":14})",
         "etcd: etcdserver: too many requests (code 14)", 14},
    };
    for (const auto& c : cases) {
        auto g = decode_grant(c.body);
        EXPECT_FALSE(g) << c.body;
        EXPECT_EQ(g.error, c.error) << c.body;
        EXPECT_EQ(g.code, c.code) << c.body;
    }
}

TEST(EtcdGateway, KeepaliveOfAForgottenLeaseHasNoTtl) {
    auto live = decode_keepalive(std::string(R"({"result":{)") + kHeader + R"(,"ID":"77","TTL":"3"}})");
    ASSERT_TRUE(live) << live.error;
    EXPECT_EQ(live.value->lease, 77);
    EXPECT_EQ(live.value->ttl_seconds, 3);
    auto gone = decode_keepalive(std::string(R"({"result":{)") + kHeader + R"(,"ID":"12345"}})");
    ASSERT_TRUE(gone) << gone.error;
    EXPECT_EQ(gone.value->lease, 12345);
    EXPECT_EQ(gone.value->ttl_seconds, 0);
    EXPECT_EQ(decode_keepalive(R"({"ID":"1"})").error, "keepalive reply lacks a result");
    EXPECT_EQ(decode_keepalive(R"({"result":{"TTL":"-1"}})").error, "keepalive reply has a malformed TTL");
    EXPECT_EQ(decode_keepalive(R"({"result":{"ID":"x"}})").error, "keepalive reply has a malformed ID");
}

TEST(EtcdGateway, DecodesAClaimWonAndAClaimHeldByAnother) {
    auto won = decode_claim(std::string("{") + kHeader +
                            R"(,"succeeded":true,"responses":[{"response_put":{"header":{"revision":"2"}}}]})");
    ASSERT_TRUE(won) << won.error;
    EXPECT_TRUE(won.value->created);
    EXPECT_EQ(won.value->revision, 2);

    auto held = decode_claim(
        std::string("{") + kHeader +
        R"(,"responses":[{"response_range":{"header":{"revision":"2"},"kvs":[{"key":"L2ZyZWVoYS9jMS9ncm91cHMvZGVmYXVsdC9ob2xkZXI=","create_revision":"2","mod_revision":"2","version":"1","value":"bm9kZTE=","lease":"2324035808927105543"}],"count":"1"}}]})");
    ASSERT_TRUE(held) << held.error;
    EXPECT_FALSE(held.value->created);
    ASSERT_TRUE(held.value->existing);
    EXPECT_EQ(held.value->existing->key, "/freeha/c1/groups/default/holder");
    EXPECT_EQ(held.value->existing->value, "node1");
    EXPECT_EQ(held.value->existing->lease, 2324035808927105543);
    EXPECT_EQ(held.value->existing->create_revision, 2);

    auto vanished = decode_claim(std::string("{") + kHeader + R"(,"responses":[{"response_range":{"header":{}}}]})");
    ASSERT_TRUE(vanished) << vanished.error;
    EXPECT_FALSE(vanished.value->existing);

    auto lost = decode_claim(R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})");
    EXPECT_EQ(lost.code, kCodeNotFound);
    EXPECT_EQ(lost.error, "etcd: etcdserver: requested lease not found (code 5)");
    EXPECT_EQ(decode_claim(std::string("{") + kHeader + "}").error, "claim reply lacks the key's range");
}

TEST(EtcdGateway, DecodesAClusterMarkFoundWithoutALease) {
    auto found = decode_claim(
        std::string("{") + kHeader +
        R"(,"responses":[{"response_range":{"header":{"revision":"3"},"kvs":[{"key":"L2M=","create_revision":"3","mod_revision":"3","version":"1","value":"b25l"}],"count":"1"}}]})");
    ASSERT_TRUE(found) << found.error;
    EXPECT_FALSE(found.value->created);
    ASSERT_TRUE(found.value->existing);
    EXPECT_EQ(found.value->existing->value, "one");
    EXPECT_EQ(found.value->existing->lease, 0);
}

TEST(EtcdGateway, DecodesAPut) {
    auto put = decode_put(std::string("{") + kHeader + "}");
    ASSERT_TRUE(put) << put.error;
    EXPECT_EQ(*put.value, 2);
    const BadReply cases[] = {
        {R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})",
         "etcd: etcdserver: requested lease not found (code 5)", kCodeNotFound},
        {"{}", "put reply lacks a revision", 0},
        {R"({"header":{"revision":"x2"}})", "put reply lacks a revision", 0},
        {R"({"header":"2"})", "put reply lacks a revision", 0},
        {"<html>", "reply is not a JSON object", 0},
    };
    for (const auto& c : cases) {
        auto p = decode_put(c.body);
        EXPECT_FALSE(p) << c.body;
        EXPECT_EQ(p.error, c.error) << c.body;
        EXPECT_EQ(p.code, c.code) << c.body;
    }
}

TEST(EtcdGateway, DecodesARangeSnapshot) {
    auto s = decode_range(std::string("{") + kHeader +
                          R"(,"kvs":[{"key":"L2E=","value":"eA==","mod_revision":"2"},{"key":"L2I=","lease":"9"}],"count":"2"})");
    ASSERT_TRUE(s) << s.error;
    EXPECT_EQ(s.value->revision, 2);
    ASSERT_EQ(s.value->kvs.size(), 2u);
    EXPECT_EQ(s.value->kvs[0].key, "/a");
    EXPECT_EQ(s.value->kvs[0].value, "x");
    EXPECT_EQ(s.value->kvs[1].lease, 9);
    EXPECT_EQ(decode_range(R"({"kvs":[]})").error, "range reply lacks a revision");
    EXPECT_EQ(decode_range(std::string("{") + kHeader + R"(,"kvs":[{"key":"***"}]})").error,
              "range reply has a malformed key");
}

TEST(EtcdGateway, DecodesWatchLines) {
    auto created = decode_watch_line(std::string(R"({"result":{)") + kHeader + R"(,"created":true}})");
    ASSERT_TRUE(created) << created.error;
    EXPECT_TRUE(created.value->created);
    EXPECT_TRUE(created.value->events.empty());

    auto events = decode_watch_line(
        R"({"result":{"header":{"revision":"3"},"events":[{"kv":{"key":"L2E=","create_revision":"2","mod_revision":"2","version":"1","value":"bm9kZTE=","lease":"5"}},{"type":"DELETE","kv":{"key":"L2E=","mod_revision":"3"}}]}})");
    ASSERT_TRUE(events) << events.error;
    EXPECT_EQ(events.value->revision, 3);
    ASSERT_EQ(events.value->events.size(), 2u);
    EXPECT_FALSE(events.value->events[0].deleted);
    EXPECT_EQ(events.value->events[0].kv.value, "node1");
    EXPECT_TRUE(events.value->events[1].deleted);
    EXPECT_EQ(events.value->events[1].kv.mod_revision, 3);

    auto compacted = decode_watch_line(R"({"result":{"canceled":true,"compact_revision":"10"}})");
    ASSERT_TRUE(compacted) << compacted.error;
    EXPECT_EQ(compacted.value->compact_revision, 10);
    EXPECT_EQ(decode_watch_line(R"({"result":{"canceled":true,"cancel_reason":"no leader"}})").error,
              "watch canceled: no leader");
    EXPECT_EQ(decode_watch_line(R"({"result":{"events":[{"type":"PUT"}]}})").error, "watch event has a malformed key");
}

}  // namespace
}  // namespace freeha::etcd
