// The etcd session's step machine: its lease's conservative end, renewals, claims, failures and endpoint changes.
#include "core/etcd_session.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/claims.h"

namespace freeha::etcd {
namespace {

using namespace freeha::literals;
using nlohmann::json;

std::string grant_reply(std::int64_t id, std::int64_t ttl) {
    return json{{"ID", std::to_string(id)}, {"TTL", std::to_string(ttl)}}.dump();
}
std::string keepalive_reply(std::int64_t ttl, std::int64_t lease = 7) {
    json result = {{"ID", std::to_string(lease)}};
    if (ttl != 0) result["TTL"] = std::to_string(ttl);
    return json{{"result", result}}.dump();
}
const std::string kCreated = R"({"header":{"revision":"5"},"succeeded":true})";
std::string held_by(const std::string& key, const std::string& value, std::int64_t lease, std::int64_t created = 4) {
    json kv = {{"key", base64(key)},
               {"value", base64(value)},
               {"lease", std::to_string(lease)},
               {"create_revision", std::to_string(created)}};
    return json{{"header", {{"revision", "5"}}}, {"responses", {{{"response_range", {{"kvs", {kv}}}}}}}}.dump();
}
const std::string kLeaseNotFound =
    R"({"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5})";
const std::string kDeleted = R"({"header":{"revision":"6"},"succeeded":true})";

std::vector<EventKind> kinds(const Step& s) {
    std::vector<EventKind> k;
    for (const auto& e : s.events) k.push_back(e.kind);
    return k;
}

// The one request of `call` in `step`.
const Request& only(const Step& step, Call call) {
    const Request* found = nullptr;
    for (const auto& r : step.requests)
        if (r.call == call) {
            EXPECT_EQ(found, nullptr) << "two " << to_string(call) << " requests";
            found = &r;
        }
    if (found == nullptr) throw std::runtime_error("no " + std::string(to_string(call)) + " request");
    return *found;
}

SessionSettings settings(std::size_t endpoints = 1) {
    return SessionSettings{endpoints, 1_s, 200_ms, 400_ms};
}

// A session with lease 7 granted at 1 s (TTL 1 s).
struct Granted {
    Session s{settings(3)};
    Granted() {
        Step st = s.start(1_s);
        EXPECT_EQ(st.requests.at(0).call, Call::Grant);
        Step g = s.on_reply(st.requests.at(0).id, grant_reply(7, 1), 1_s + 30_ms);
        EXPECT_EQ(kinds(g), std::vector<EventKind>{EventKind::LeaseGranted});
    }
};

TEST(EtcdSession, TtlIsDeadTimeInWholeSecondsRoundedUp) {
    const struct {
        Usec dead_time;
        std::int64_t ttl;
    } cases[] = {{1_ms, 1}, {1_s, 1}, {1_s + 1_us, 2}, {1500_ms, 2}, {3_s, 3}, {5_min, 300}};
    for (const auto& c : cases) EXPECT_EQ(ttl_seconds(c.dead_time), c.ttl) << format_timespan(c.dead_time);
}

TEST(EtcdSession, TheLeaseRunsFromWhenTheGrantWasSentNotWhenItCameBack) {
    Session s(settings());
    Step st = s.start(10_s);
    ASSERT_EQ(st.requests.size(), 1u);
    EXPECT_EQ(json::parse(st.requests[0].body)["TTL"], "1");
    EXPECT_FALSE(s.lease_until());
    s.on_reply(st.requests[0].id, grant_reply(7, 2), 10_s + 300_ms);  // etcd raised the TTL to its minimum
    ASSERT_TRUE(s.lease_until());
    EXPECT_EQ(*s.lease_until(), promise_grant(10_s, 2_s));
    EXPECT_EQ(*s.lease_until(), 12_s - drift_allowance(2_s));
    EXPECT_EQ(s.lease_id(), 7);
}

TEST(EtcdSession, RenewsEveryThirdOfTheTtlIdleAndEveryIntervalWhileClaiming) {
    Granted g;
    // Idle: the next keepalive is due a third of the TTL after the grant was sent.
    EXPECT_EQ(g.s.next_wakeup(), 1_s + 333333_us);
    EXPECT_TRUE(g.s.on_timer(1_s + 333332_us).requests.empty());
    Step k = g.s.on_timer(1_s + 333333_us);
    ASSERT_EQ(k.requests.size(), 1u);
    EXPECT_EQ(k.requests[0].call, Call::KeepAlive);
    EXPECT_EQ(json::parse(k.requests[0].body)["ID"], "7");
    g.s.on_reply(k.requests[0].id, keepalive_reply(1), 1_s + 340_ms);
    // Claiming: every interval from the last acknowledged send.
    Step c = g.s.claim("/k", "n1", 1_s + 400_ms);
    ASSERT_EQ(c.requests.size(), 1u);
    g.s.on_reply(c.requests[0].id, kCreated, 1_s + 410_ms);
    EXPECT_TRUE(g.s.holds("/k"));
    EXPECT_EQ(g.s.next_wakeup(), 1_s + 333333_us + 200_ms);
}

TEST(EtcdSession, AnAcknowledgedKeepaliveMovesTheEndOnlyLater) {
    Granted g;
    g.s.claim("/k", "n1", 1_s + 40_ms);
    const Usec first = *g.s.lease_until();
    Step k1 = g.s.on_timer(1_s + 200_ms);
    ASSERT_EQ(k1.requests.size(), 1u);
    g.s.on_reply(k1.requests[0].id, keepalive_reply(1), 1_s + 250_ms);
    EXPECT_EQ(*g.s.lease_until(), promise_grant(1_s + 200_ms, 1_s));
    EXPECT_GT(*g.s.lease_until(), first);
    // A grant reply's larger TTL (etcd's minimum) is taken as etcd states it.
    Step k2 = g.s.on_timer(1_s + 400_ms);
    ASSERT_EQ(k2.requests.size(), 1u);
    g.s.on_reply(k2.requests[0].id, keepalive_reply(2), 1_s + 410_ms);
    EXPECT_EQ(*g.s.lease_until(), promise_grant(1_s + 400_ms, 2_s));
}

TEST(EtcdSession, WithoutAcknowledgementTheLeaseIsLostAtItsEndAndClaimsGoWithIt) {
    Granted g;
    Step c = g.s.claim("/k", "n1", 1_s + 40_ms);
    g.s.on_reply(c.requests.at(0).id, kCreated, 1_s + 50_ms);
    ASSERT_TRUE(g.s.holds("/k"));
    const Usec end = *g.s.lease_until();
    // Every keepalive fails; the lease ends at its end, not later.
    Usec now = 1_s + 200_ms;
    std::vector<std::size_t> endpoints;
    while (now < end) {
        std::vector<Request> queue = g.s.on_timer(now).requests;
        while (!queue.empty()) {
            Request r = queue.front();
            queue.erase(queue.begin());
            EXPECT_EQ(r.call, Call::KeepAlive);
            endpoints.push_back(r.endpoint);
            for (auto& next : g.s.on_failure(r.id, "Couldn't connect to server", now).requests) queue.push_back(next);
        }
        EXPECT_TRUE(g.s.holds("/k"));
        now = std::min(*g.s.next_wakeup(), end);
    }
    Step lost = g.s.on_timer(end);
    EXPECT_EQ(kinds(lost).at(0), EventKind::LeaseLost);
    EXPECT_EQ(lost.events.at(0).detail, "lease ran out: no keepalive acknowledged in time");
    EXPECT_FALSE(g.s.holds("/k"));
    EXPECT_FALSE(g.s.lease_until());
    EXPECT_EQ(g.s.counters().leases_lost, 1u);
    // It went round the endpoints.
    ASSERT_GE(endpoints.size(), 3u);
    EXPECT_EQ(endpoints[0], 0u);
    EXPECT_EQ(endpoints[1], 1u);
    EXPECT_EQ(endpoints[2], 2u);
}

TEST(EtcdSession, FailuresMoveToTheNextEndpointAndBackOffAfterEachRound) {
    // Each row: the failure's number in a row, the endpoint the retry goes
    // to, and how long after the failure it goes.
    const struct {
        int failure;
        std::size_t endpoint;
        Usec delay;
    } rows[] = {
        {1, 1, 0_ms}, {2, 2, 0_ms}, {3, 0, 200_ms}, {4, 1, 200_ms}, {5, 2, 200_ms}, {6, 0, 400_ms},
        {7, 1, 400_ms}, {8, 2, 400_ms}, {9, 0, 800_ms},
    };
    Session s(settings(3));
    Step st = s.start(0_s);
    Usec now = 0_s;
    for (const auto& row : rows) {
        ASSERT_EQ(st.requests.size(), 1u) << "failure " << row.failure;
        Step after = s.on_failure(st.requests[0].id, "HTTP 503", now);
        EXPECT_EQ(kinds(after), std::vector<EventKind>{EventKind::CallFailed});
        if (row.delay == 0_ms) {
            st = after;
        } else {
            EXPECT_TRUE(after.requests.empty()) << "failure " << row.failure;
            EXPECT_EQ(s.next_wakeup(), now + row.delay) << "failure " << row.failure;
            now += row.delay;
            st = s.on_timer(now);
        }
        ASSERT_EQ(st.requests.size(), 1u);
        EXPECT_EQ(st.requests[0].endpoint, row.endpoint) << "failure " << row.failure;
        EXPECT_EQ(st.requests[0].call, Call::Grant);
    }
    EXPECT_EQ(s.counters().failures, 9u);
    EXPECT_EQ(s.counters().endpoint_switches, 9u);
    // A success resets the backoff.
    s.on_reply(st.requests[0].id, grant_reply(3, 1), now);
    EXPECT_TRUE(s.lease_until());
}

TEST(EtcdSession, TheBackoffStopsAtItsMaximum) {
    Session s(settings(1));
    Step st = s.start(0_s);
    Usec now = 0_s;
    for (int i = 0; i < 20; ++i) {
        s.on_failure(st.requests.at(0).id, "timeout", now);
        const Usec delay = *s.next_wakeup() - now;
        EXPECT_LE(delay, Session::kMaxBackoff);
        now = *s.next_wakeup();
        st = s.on_timer(now);
    }
    EXPECT_EQ(*s.next_wakeup(), now + 400_ms);  // the pending grant's timeout
    s.on_failure(st.requests.at(0).id, "timeout", now);
    EXPECT_EQ(*s.next_wakeup(), now + Session::kMaxBackoff);
}

TEST(EtcdSession, ACallNotAnsweredInTimeFailsAndIsRetriedElsewhere) {
    Session s(settings(2));
    Step st = s.start(0_s);
    EXPECT_EQ(s.next_wakeup(), 400_ms);
    Step t = s.on_timer(400_ms);
    ASSERT_EQ(t.events.size(), 1u);
    EXPECT_EQ(t.events[0].detail, "grant on endpoint 1: no answer in 400ms");
    ASSERT_EQ(t.requests.size(), 1u);
    EXPECT_EQ(t.requests[0].endpoint, 1u);
    // The late answer to the first grant is ignored (its failure was counted).
    EXPECT_TRUE(s.on_reply(st.requests[0].id, grant_reply(9, 1), 450_ms).events.empty());
    EXPECT_FALSE(s.lease_until());
}

TEST(EtcdSession, AClaimWaitsForTheLease) {
    Session s(settings());
    Step st = s.start(0_s);
    EXPECT_TRUE(s.claim("/k", "n1", 1_ms).requests.empty());
    Step g = s.on_reply(st.requests[0].id, grant_reply(7, 1), 2_ms);
    ASSERT_EQ(g.requests.size(), 1u);
    EXPECT_EQ(g.requests[0].call, Call::Claim);
    json body = json::parse(g.requests[0].body);
    EXPECT_EQ(body["success"][0]["request_put"]["lease"], "7");
    EXPECT_EQ(body["success"][0]["request_put"]["value"], base64("n1"));
}

TEST(EtcdSession, ClaimOutcomes) {
    // Each row: the claim's reply, the events it gives, whether the key is held after, whether it is claimed again.
    const struct {
        const char* name;
        std::string reply;
        std::vector<EventKind> events;
        bool held;
        bool again;
    } rows[] = {
        {"created", kCreated, {EventKind::ClaimWon}, true, false},
        {"another node's", held_by("/k", "n0", 99), {EventKind::ClaimRefused}, false, false},
        {"already on this lease (a lost reply)", held_by("/k", "n1", 7), {EventKind::ClaimWon}, true, false},
        {"vanished between compare and read", R"({"header":{"revision":"5"},"responses":[{"response_range":{}}]})",
         {},
         false,
         true},
        {"the lease is gone", kLeaseNotFound, {EventKind::LeaseLost}, false, false},
        {"junk", "<html>", {EventKind::CallFailed}, false, true},
    };
    for (const auto& row : rows) {
        Granted g;
        Step c = g.s.claim("/k", "n1", 2_s);
        Step r = g.s.on_reply(only(c, Call::Claim).id, row.reply, 2_s + 5_ms);
        EXPECT_EQ(kinds(r), row.events) << row.name;
        EXPECT_EQ(g.s.holds("/k"), row.held) << row.name;
        bool claimed_again = false;
        for (const auto& q : r.requests) claimed_again |= q.call == Call::Claim;
        for (const auto& q : g.s.on_timer(2_s + 300_ms).requests) claimed_again |= q.call == Call::Claim;
        EXPECT_EQ(claimed_again, row.again) << row.name;
        if (row.events == std::vector<EventKind>{EventKind::ClaimRefused}) {
            EXPECT_EQ(r.events[0].detail, "n0");
        }
    }
}

TEST(EtcdSession, AReleaseDeletesTheKeyOnlyIfStillOnThisLease) {
    Granted g;
    Step c = g.s.claim("/k", "n1", 2_s);
    g.s.on_reply(only(c, Call::Claim).id, kCreated, 2_s);
    Step r = g.s.release("/k", 3_s);
    const Request& release = only(r, Call::Release);
    EXPECT_EQ(json::parse(release.body)["compare"][0]["lease"], "7");
    EXPECT_FALSE(g.s.holds("/k"));
    Step done = g.s.on_reply(release.id, kDeleted, 3_s + 5_ms);
    EXPECT_EQ(kinds(done), std::vector<EventKind>{EventKind::Released});
}

TEST(EtcdSession, AReleaseWhileTheClaimIsInFlightDeletesWhatTheClaimCreated) {
    Granted g;
    Step c = g.s.claim("/k", "n1", 2_s);
    EXPECT_TRUE(g.s.release("/k", 2_s + 1_ms).requests.empty());  // the claim is still out
    Step r = g.s.on_reply(only(c, Call::Claim).id, kCreated, 2_s + 5_ms);
    EXPECT_TRUE(r.events.empty());
    const Request& release = only(r, Call::Release);
    EXPECT_FALSE(g.s.holds("/k"));
    EXPECT_EQ(kinds(g.s.on_reply(release.id, kDeleted, 2_s + 9_ms)), std::vector<EventKind>{EventKind::Released});
    // A refused claim released meanwhile needs no delete.
    Step c2 = g.s.claim("/j", "n1", 3_s);
    g.s.release("/j", 3_s);
    Step r2 = g.s.on_reply(only(c2, Call::Claim).id, held_by("/j", "n0", 99), 3_s + 1_ms);
    EXPECT_EQ(kinds(r2), std::vector<EventKind>{EventKind::Released});
    for (const auto& q : r2.requests) EXPECT_NE(q.call, Call::Release);
}

TEST(EtcdSession, RevokeGivesTheLeaseBackAndALateGrantToo) {
    Granted g;
    g.s.claim("/k", "n1", 2_s);
    Step r = g.s.revoke(2_s + 1_ms);
    ASSERT_EQ(r.requests.size(), 1u);
    EXPECT_EQ(r.requests[0].call, Call::Revoke);
    EXPECT_EQ(json::parse(r.requests[0].body)["ID"], "7");
    EXPECT_FALSE(g.s.lease_until());
    EXPECT_FALSE(g.s.holds("/k"));
    EXPECT_TRUE(g.s.on_timer(5_s).requests.empty());  // no new grant

    Session s(settings());
    Step st = s.start(0_s);
    EXPECT_TRUE(s.revoke(1_ms).requests.empty());
    Step late = s.on_reply(st.requests.at(0).id, grant_reply(8, 1), 2_ms);
    ASSERT_EQ(late.requests.size(), 1u);
    EXPECT_EQ(late.requests[0].call, Call::Revoke);
    EXPECT_EQ(json::parse(late.requests[0].body)["ID"], "8");
    EXPECT_FALSE(s.lease_until());
}

TEST(EtcdSession, AfterLosingTheLeaseItAsksForANewOne) {
    Granted g;
    Step k = g.s.on_timer(1_s + 333333_us);
    Step lost = g.s.on_reply(k.requests.at(0).id, keepalive_reply(0), 1_s + 340_ms);
    EXPECT_EQ(kinds(lost), std::vector<EventKind>{EventKind::LeaseLost});
    EXPECT_EQ(lost.events[0].detail, "etcd no longer knows lease 7");
    ASSERT_EQ(lost.requests.size(), 1u);
    EXPECT_EQ(lost.requests[0].call, Call::Grant);
}

// Review of issue 21's first cut: a claim made again while its release is out
// waits for the release's answer; it is never won on the strength of the key
// the release is about to delete.
TEST(EtcdSession, AClaimMadeAgainDuringItsReleaseWaitsForTheReleasesAnswer) {
    Granted g;
    Step c = g.s.claim("/k", "n1", 2_s);
    g.s.on_reply(only(c, Call::Claim).id, R"({"header":{"revision":"12"},"succeeded":true})", 2_s + 1_ms);
    ASSERT_TRUE(g.s.holds("/k"));
    Step r = g.s.release("/k", 2_s + 10_ms);
    const Request release = only(r, Call::Release);
    json compare = json::parse(release.body)["compare"];
    EXPECT_EQ(compare[1]["create_revision"], "12");  // the creation the claim's answer named
    Step again = g.s.claim("/k", "n1", 2_s + 11_ms);
    for (const auto& q : again.requests) EXPECT_NE(q.call, Call::Claim);
    EXPECT_FALSE(g.s.holds("/k"));
    Step done = g.s.on_reply(release.id, kDeleted, 2_s + 20_ms);
    EXPECT_TRUE(done.events.empty());  // not released: wanted again
    const Request& claim = only(done, Call::Claim);
    Step won = g.s.on_reply(claim.id, R"({"header":{"revision":"15"},"succeeded":true})", 2_s + 30_ms);
    EXPECT_EQ(kinds(won), std::vector<EventKind>{EventKind::ClaimWon});
    EXPECT_TRUE(g.s.holds("/k"));
    // Its release names the new creation.
    Step r2 = g.s.release("/k", 3_s);
    EXPECT_EQ(json::parse(only(r2, Call::Release).body)["compare"][1]["create_revision"], "15");
}

TEST(EtcdSession, AReleaseOfAClaimWhoseAnswerWasLostLearnsTheCreationFirst) {
    Granted g;
    Step c = g.s.claim("/k", "n1", 2_s);
    g.s.release("/k", 2_s + 1_ms);
    Step lost = g.s.on_failure(only(c, Call::Claim).id, "timeout", 2_s + 5_ms);
    // The claim is made again to learn whether the key is ours, and which creation it is.
    const Request& probe = only(lost, Call::Claim);
    Step r = g.s.on_reply(probe.id, held_by("/k", "n1", 7, 12), 2_s + 10_ms);  // ours, created at 12
    const Request& release = only(r, Call::Release);
    EXPECT_EQ(json::parse(release.body)["compare"][0]["lease"], "7");
    EXPECT_EQ(json::parse(release.body)["compare"][1]["create_revision"], "12");
    EXPECT_EQ(kinds(g.s.on_reply(release.id, kDeleted, 2_s + 20_ms)), std::vector<EventKind>{EventKind::Released});
}

TEST(EtcdSession, CallsThatFailTogetherLeaveTheirEndpointOnce) {
    // The keepalive and a claim go out together to endpoint 1 of 2 and time out together.
    Session s(settings(2));
    Step st = s.start(1_s);
    s.on_reply(st.requests.at(0).id, grant_reply(7, 1), 1_s + 10_ms);
    Step both = s.claim("/k", "n1", 1_s + 400_ms);
    ASSERT_EQ(both.requests.size(), 2u);
    for (const auto& r : both.requests) EXPECT_EQ(r.endpoint, 0u);
    Step t = s.on_timer(1_s + 800_ms);
    EXPECT_EQ(t.events.size(), 2u);
    EXPECT_EQ(t.cancel.size(), 2u);
    EXPECT_EQ(s.endpoint(), 1u);
    ASSERT_EQ(t.requests.size(), 2u);  // both again, at once, on the other endpoint
    for (const auto& r : t.requests) EXPECT_EQ(r.endpoint, 1u);
    EXPECT_EQ(s.counters().endpoint_switches, 1u);
}

TEST(EtcdSession, AFailedClaimIsRetriedWhenTheBackoffEnds) {
    Session s(SessionSettings{1, 30_s, 200_ms, 400_ms});
    Step st = s.start(1_s);
    s.on_reply(st.requests.at(0).id, grant_reply(7, 30), 1_s + 10_ms);
    Step c = s.claim("/k", "n1", 2_s);
    Step f = s.on_failure(only(c, Call::Claim).id, "HTTP 503", 2_s + 1_ms);
    EXPECT_TRUE(f.requests.empty());
    EXPECT_EQ(s.next_wakeup(), 2_s + 201_ms);  // not the renewal, ten seconds away
    only(s.on_timer(2_s + 201_ms), Call::Claim);
}

TEST(EtcdSession, AKeepaliveAnsweredForAnotherLeaseOrAnEarlierOneRenewsNothing) {
    Granted g;
    const Usec end = *g.s.lease_until();
    Step k = g.s.on_timer(1_s + 333333_us);
    Step wrong = g.s.on_reply(only(k, Call::KeepAlive).id, keepalive_reply(1, 8), 1_s + 340_ms);
    EXPECT_EQ(kinds(wrong), std::vector<EventKind>{EventKind::CallFailed});
    EXPECT_EQ(wrong.events[0].detail, "keepalive on endpoint 1: keepalive answered for lease 8");
    EXPECT_EQ(*g.s.lease_until(), end);

    // A keepalive of lease 7 still out when etcd says 7 is gone and 9 is granted: its answer
    // renews nothing, and it does not hold back 9's first keepalive.
    Granted i;
    Step k7b = i.s.on_timer(1_s + 333333_us);
    Step c = i.s.claim("/k", "n1", 1_s + 340_ms);
    Step gone = i.s.on_reply(only(c, Call::Claim).id, kLeaseNotFound, 1_s + 345_ms);
    const Request& grant = only(gone, Call::Grant);
    i.s.on_reply(grant.id, grant_reply(9, 1), 1_s + 350_ms);
    Step k9 = i.s.on_timer(1_s + 350_ms + 333333_us);
    EXPECT_EQ(json::parse(only(k9, Call::KeepAlive).body)["ID"], "9");
    const Usec end9 = *i.s.lease_until();
    i.s.on_reply(only(k7b, Call::KeepAlive).id, keepalive_reply(1, 7), 1_s + 700_ms);
    EXPECT_EQ(*i.s.lease_until(), end9);
}

}  // namespace
}  // namespace freeha::etcd
