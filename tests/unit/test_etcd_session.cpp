// The etcd session's step machine: its lease's conservative end, renewals, claims, records, the cluster's mark,
// failures and endpoint changes.
#include "core/etcd_session.h"

#include <gtest/gtest.h>

#include <functional>
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

const std::string kPut = R"({"header":{"revision":"6"}})";
const std::string kTooManyRequests =
    R"({"error":"etcdserver: too many requests","message":"etcdserver: too many requests","code":14})";

}  // namespace

// gtest's view of an event in a failure.
void PrintTo(const Event& e, std::ostream* os) {
    *os << to_string(e.kind) << " '" << e.key << "' '" << e.detail << "'";
}
void PrintTo(EventKind k, std::ostream* os) { *os << to_string(k); }

namespace {

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

std::size_t count(const Step& step, Call call) {
    return static_cast<std::size_t>(
        std::count_if(step.requests.begin(), step.requests.end(), [&](const Request& r) { return r.call == call; }));
}

// Endpoints= of n members: http://e1:2379 and on.
std::vector<std::string> urls(std::size_t n) {
    std::vector<std::string> out;
    for (std::size_t i = 1; i <= n; ++i) out.push_back("http://e" + std::to_string(i) + ":2379");
    return out;
}

SessionSettings settings(std::size_t endpoints = 1) {
    return SessionSettings{urls(endpoints), 1_s, 200_ms, 400_ms};
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

TEST(EtcdSession, TheBackoffDoublesPerRoundFromItsBaseUpToItsMaximum) {
    struct Row {
        std::size_t rounds;
        Usec base, wait;
    };
    const Row rows[] = {
        {1, 200_ms, 200_ms}, {2, 200_ms, 400_ms}, {4, 200_ms, 1600_ms}, {5, 200_ms, 3200_ms},
        {6, 200_ms, Session::kMaxBackoff}, {11, 200_ms, Session::kMaxBackoff}, {1000, 200_ms, Session::kMaxBackoff},
        {1, 10_s, Session::kMaxBackoff}, {3, 50_ms, 200_ms}, {11, 1_ms, 1024_ms}, {12, 1_ms, 1024_ms},
    };
    for (const Row& r : rows) EXPECT_EQ(backoff(r.rounds, r.base), r.wait) << r.rounds << " rounds";
}

TEST(EtcdSession, AFailedCallsLineNamesTheCallTheUrlAndWhy) {
    EXPECT_EQ(failed_call_line(Call::Grant, "https://etcd2:2379", "Connection refused"),
              "grant on https://etcd2:2379: Connection refused");
    EXPECT_EQ(failed_call_line(Call::KeepAlive, "http://[fd00::1]:2379", "timed out"),
              "keepalive on http://[fd00::1]:2379: timed out");
}

TEST(EtcdSession, ACallNotAnsweredInTimeFailsAndIsRetriedElsewhere) {
    Session s(settings(2));
    Step st = s.start(0_s);
    EXPECT_EQ(s.next_wakeup(), 400_ms);
    Step t = s.on_timer(400_ms);
    ASSERT_EQ(t.events.size(), 1u);
    EXPECT_EQ(t.events[0].detail, "grant on http://e1:2379: no answer in 400ms");
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
    Session s(SessionSettings{urls(1), 30_s, 200_ms, 400_ms});
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
    EXPECT_EQ(wrong.events[0].detail, "keepalive on http://e1:2379: keepalive answered for lease 8");
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


TEST(EtcdSession, EventKindsHaveTheirNames) {
    const struct {
        EventKind kind;
        const char* name;
    } rows[] = {
        {EventKind::LeaseGranted, "lease-granted"}, {EventKind::LeaseLost, "lease-lost"},
        {EventKind::ClaimWon, "claim-won"},         {EventKind::ClaimRefused, "claim-refused"},
        {EventKind::Released, "released"},          {EventKind::ClusterMarked, "cluster-marked"},
        {EventKind::CallFailed, "call-failed"},     {EventKind::Repaired, "repaired"},
    };
    static_assert(std::size(rows) == kEventKindCount);
    for (const auto& row : rows) EXPECT_EQ(to_string(row.kind), row.name);
}

// --- what a late call changed (on_view)

// The view as the watch holds it: one key.
std::map<std::string, KeyValue> view_of(const std::string& key, const std::string& value, std::int64_t lease,
                                        std::int64_t created, std::int64_t modified) {
    return {{key, KeyValue{key, value, lease, created, modified}}};
}

TEST(EtcdSession, ARecordAnotherPutChangedAfterItsAcknowledgementIsPutAgain) {
    Granted i;
    Step p = i.s.publish("/m/n1", "new", 1_s + 40_ms);
    i.s.on_reply(only(p, Call::Put).id, kPut, 1_s + 50_ms);  // acknowledged at revision 6
    const struct {
        const char* what;
        std::map<std::string, KeyValue> view;
        std::int64_t revision;
        bool put_again;
    } rows[] = {
        {"the view shows the put", view_of("/m/n1", "new", 7, 6, 6), 6, false},
        {"the view has not reached the put", view_of("/m/n1", "old", 7, 3, 3), 5, false},
        {"a late put of the old value after it", view_of("/m/n1", "old", 7, 3, 9), 9, true},
        {"another daemon's put on its own lease (the same name)", view_of("/m/n1", "its", 8, 3, 9), 9, false},
        {"deleted after it", {}, 9, true},
        {"not shown by a view before it", {}, 5, false},
    };
    for (const auto& row : rows) {
        Granted j;
        Step q = j.s.publish("/m/n1", "new", 1_s + 40_ms);
        j.s.on_reply(only(q, Call::Put).id, kPut, 1_s + 50_ms);
        Step v = j.s.on_view(row.view, row.revision, 1_s + 60_ms);
        EXPECT_EQ(count(v, Call::Put), row.put_again ? 1u : 0u) << row.what;
        if (!row.put_again) {
            EXPECT_TRUE(v.events.empty()) << row.what;
            EXPECT_EQ(j.s.published("/m/n1"), "new") << row.what;
            continue;
        }
        EXPECT_EQ(kinds(v), std::vector<EventKind>{EventKind::Repaired}) << row.what;
        EXPECT_NE(v.events.at(0).detail.find("after this node's put at revision 6"), std::string::npos)
            << v.events.at(0).detail;
        json body = json::parse(only(v, Call::Put).body);
        EXPECT_EQ(body["value"], base64("new")) << row.what;
        EXPECT_EQ(body["lease"], "7") << row.what;
        // Put again at revision 10: a view that shows that put moves nothing more.
        j.s.on_reply(only(v, Call::Put).id, R"({"header":{"revision":"10"}})", 1_s + 70_ms);
        EXPECT_TRUE(j.s.on_view(view_of("/m/n1", "new", 7, 3, 10), 10, 1_s + 80_ms).requests.empty()) << row.what;
    }
}

TEST(EtcdSession, ARecordALatePutOnAnEarlierLeaseChangedIsPutAgain) {
    Granted g;
    Step k = g.s.on_timer(1_s + 333333_us);
    Step lost = g.s.on_reply(only(k, Call::KeepAlive).id, keepalive_reply(0), 1_s + 340_ms);
    g.s.on_reply(only(lost, Call::Grant).id, grant_reply(9, 1), 1_s + 350_ms);
    Step p = g.s.publish("/m/n1", "new", 1_s + 360_ms);
    g.s.on_reply(only(p, Call::Put).id, kPut, 1_s + 370_ms);
    // The put sent on lease 7 before it was lost, applied after this one.
    Step v = g.s.on_view(view_of("/m/n1", "old", 7, 3, 9), 9, 1_s + 380_ms);
    EXPECT_EQ(kinds(v), std::vector<EventKind>{EventKind::Repaired});
    EXPECT_EQ(json::parse(only(v, Call::Put).body)["lease"], "9");
}

TEST(EtcdSession, ARecordIsNotCheckedWhileItsPutIsOut) {
    Granted i;
    Step p = i.s.publish("/m/n1", "a", 1_s + 40_ms);
    i.s.on_reply(only(p, Call::Put).id, kPut, 1_s + 50_ms);
    Step q = i.s.publish("/m/n1", "b", 1_s + 60_ms);
    const Request& out = only(q, Call::Put);
    // The view shows the newer put before its answer came: nothing is wrong.
    Step v = i.s.on_view(view_of("/m/n1", "b", 7, 3, 8), 8, 1_s + 70_ms);
    EXPECT_TRUE(v.requests.empty());
    EXPECT_TRUE(v.events.empty());
    i.s.on_reply(out.id, R"({"header":{"revision":"8"}})", 1_s + 80_ms);
    EXPECT_EQ(i.s.published("/m/n1"), "b");
}

TEST(EtcdSession, AKeyOnThisLeaseThatItDoesNotHoldIsDeleted) {
    Granted i;
    // A claim given up on here (say, withdrawn while its answer was lost) that etcd applied late.
    Step v = i.s.on_view(view_of("/g/a", "n1", 7, 12, 12), 12, 1_s + 40_ms);
    EXPECT_EQ(kinds(v), std::vector<EventKind>{EventKind::Repaired});
    json body = json::parse(only(v, Call::Release).body);
    EXPECT_EQ(body["compare"][0]["lease"], "7");
    EXPECT_EQ(body["compare"][1]["create_revision"], "12");
    // While it is out, and once it is answered (the view not there yet), the key is not deleted twice.
    EXPECT_TRUE(i.s.on_view(view_of("/g/a", "n1", 7, 12, 12), 12, 1_s + 45_ms).requests.empty());
    i.s.on_reply(only(v, Call::Release).id, kDeleted, 1_s + 50_ms);
    Step again = i.s.on_view(view_of("/g/a", "n1", 7, 12, 12), 12, 1_s + 55_ms);
    EXPECT_TRUE(again.requests.empty());
    EXPECT_TRUE(again.events.empty());
    EXPECT_FALSE(i.s.holds("/g/a"));
    // Another node's key, a key on another lease, and the mark (no lease) are not this session's business.
    std::map<std::string, KeyValue> others = view_of("/g/b", "n2", 8, 13, 13);
    others.merge(view_of("/g/c", "n1", 4, 2, 2));
    others.merge(view_of("/cluster", "c", 0, 1, 1));
    EXPECT_TRUE(i.s.on_view(others, 13, 1_s + 60_ms).requests.empty());
}

TEST(EtcdSession, AStrayKeysFailedDeletionIsSentAgain) {
    Granted i;
    Step v = i.s.on_view(view_of("/g/a", "n1", 7, 12, 12), 12, 1_s + 40_ms);
    Step f = i.s.on_failure(only(v, Call::Release).id, "Connection refused", 1_s + 50_ms);
    EXPECT_EQ(count(f, Call::Release), 1u);  // on the next endpoint, at once
}

TEST(EtcdSession, HeldClaimedAndReleasedKeysAreNotStrays) {
    Granted i;
    Step c = i.s.claim("/g/a", "n1", 1_s + 40_ms);
    // Claimed, not answered yet: the view may show it already.
    EXPECT_TRUE(i.s.on_view(view_of("/g/a", "n1", 7, 5, 5), 5, 1_s + 45_ms).requests.empty());
    i.s.on_reply(only(c, Call::Claim).id, kCreated, 1_s + 50_ms);
    EXPECT_TRUE(i.s.holds("/g/a"));
    EXPECT_TRUE(i.s.on_view(view_of("/g/a", "n1", 7, 5, 5), 5, 1_s + 55_ms).requests.empty());
    Step r = i.s.release("/g/a", 1_s + 60_ms);
    i.s.on_reply(only(r, Call::Release).id, kDeleted, 1_s + 70_ms);
    // A view that has not reached the deletion yet.
    Step lagging = i.s.on_view(view_of("/g/a", "n1", 7, 5, 5), 5, 1_s + 80_ms);
    EXPECT_TRUE(lagging.requests.empty());
    EXPECT_TRUE(lagging.events.empty());
    // Once a view shows it gone, a key created later on this lease (a claim applied late) is a stray.
    i.s.on_view({}, 6, 1_s + 90_ms);
    Step late = i.s.on_view(view_of("/g/a", "n1", 7, 9, 9), 9, 1_s + 100_ms);
    EXPECT_EQ(count(late, Call::Release), 1u);
}

// --- member records (publish)

TEST(EtcdSession, ARecordWaitsForTheLeaseAndIsPutOnIt) {
    Session s(settings());
    Step st = s.start(1_s);
    EXPECT_TRUE(s.publish("/m/n1", "addr1", 1_s + 1_ms).requests.empty());
    EXPECT_FALSE(s.published("/m/n1"));
    Step g = s.on_reply(only(st, Call::Grant).id, grant_reply(7, 1), 1_s + 2_ms);
    const Request& put = only(g, Call::Put);
    EXPECT_EQ(path(put.call), "/v3/kv/put");
    json body = json::parse(put.body);
    EXPECT_EQ(body["key"], base64("/m/n1"));
    EXPECT_EQ(body["value"], base64("addr1"));
    EXPECT_EQ(body["lease"], "7");
    EXPECT_FALSE(s.published("/m/n1"));  // not before etcd says so
    Step acked = s.on_reply(put.id, kPut, 1_s + 3_ms);
    EXPECT_TRUE(acked.events.empty());  // the watch shows the record; the session adds nothing
    EXPECT_TRUE(acked.requests.empty());
    EXPECT_EQ(s.published("/m/n1"), "addr1");
    EXPECT_FALSE(s.published("/m/n2"));
    // A record alone does not speed up the renewals: a third of the TTL, as idle.
    EXPECT_EQ(s.next_wakeup(), 1_s + 333333_us);
}

TEST(EtcdSession, PutOutcomes) {
    // Each row: how the put is answered, the events, the value acknowledged after, and what is sent next.
    const struct {
        const char* name;
        std::function<Step(Session&, std::uint64_t)> answer;
        std::vector<EventKind> events;
        std::optional<std::string> published;
        std::optional<Call> next;  // Put: the record again; Grant: a new lease first
        std::size_t endpoint;
    } rows[] = {
        {"acknowledged", [](Session& s, std::uint64_t id) { return s.on_reply(id, kPut, 2_s + 5_ms); }, {}, "addr1",
         std::nullopt, 0},
        {"the lease is gone",
         [](Session& s, std::uint64_t id) { return s.on_reply(id, kLeaseNotFound, 2_s + 5_ms); },
         {EventKind::LeaseLost}, std::nullopt, Call::Grant, 0},
        {"etcd refuses it", [](Session& s, std::uint64_t id) { return s.on_reply(id, kTooManyRequests, 2_s + 5_ms); },
         {EventKind::CallFailed}, std::nullopt, Call::Put, 1},
        {"junk", [](Session& s, std::uint64_t id) { return s.on_reply(id, "<html>", 2_s + 5_ms); },
         {EventKind::CallFailed}, std::nullopt, Call::Put, 1},
        {"the transfer failed",
         [](Session& s, std::uint64_t id) { return s.on_failure(id, "Couldn't connect to server", 2_s + 5_ms); },
         {EventKind::CallFailed}, std::nullopt, Call::Put, 1},
        {"no answer in time", [](Session& s, std::uint64_t) { return s.on_timer(2_s + 400_ms); },
         {EventKind::CallFailed}, std::nullopt, Call::Put, 1},
    };
    for (const auto& row : rows) {
        Session s(SessionSettings{urls(3), 30_s, 200_ms, 400_ms});  // renewals ten seconds away
        Step st = s.start(1_s);
        s.on_reply(only(st, Call::Grant).id, grant_reply(7, 30), 1_s + 10_ms);
        Step p = s.publish("/m/n1", "addr1", 2_s);
        const Request put = only(p, Call::Put);
        Step r = row.answer(s, put.id);
        EXPECT_EQ(kinds(r), row.events) << row.name;
        EXPECT_EQ(s.published("/m/n1"), row.published) << row.name;
        if (!row.next) {
            EXPECT_TRUE(r.requests.empty()) << row.name;
            EXPECT_EQ(s.counters().failures, 0u) << row.name;
            continue;
        }
        ASSERT_EQ(r.requests.size(), 1u) << row.name;
        EXPECT_EQ(r.requests[0].call, row.next) << row.name;
        EXPECT_EQ(r.requests[0].endpoint, row.endpoint) << row.name;
        if (row.next == Call::Put) {
            EXPECT_EQ(r.requests[0].body, put.body) << row.name;
            EXPECT_EQ(s.counters().failures, 1u) << row.name;
        } else {
            EXPECT_EQ(s.counters().failures, 0u) << row.name;
            EXPECT_EQ(s.counters().leases_lost, 1u) << row.name;
        }
    }
}

TEST(EtcdSession, OnePutPerKeyIsOutAndOnlyTheNewestValueFollowsIt) {
    // Each action publishes a value, or answers the put that is out (acknowledged or failed);
    // `sent` is the value of the put it sends ("": none).
    enum What { Publish, Ack, Fail };
    struct Action {
        What what;
        std::string value;
        std::string sent;
    };
    const struct {
        const char* name;
        std::vector<Action> actions;
        std::string published;
    } rows[] = {
        {"values published while one is out: only the last follows",
         {{Publish, "a", "a"}, {Publish, "b", ""}, {Publish, "c", ""}, {Ack, "", "c"}, {Ack, "", ""}},
         "c"},
        {"the acknowledged value again sends nothing", {{Publish, "a", "a"}, {Ack, "", ""}, {Publish, "a", ""}}, "a"},
        {"back to the value that is out: nothing follows it",
         {{Publish, "a", "a"}, {Publish, "b", ""}, {Publish, "a", ""}, {Ack, "", ""}},
         "a"},
        {"back to the acknowledged value while another is out: it follows",
         {{Publish, "a", "a"}, {Ack, "", ""}, {Publish, "b", "b"}, {Publish, "a", ""}, {Ack, "", "a"}, {Ack, "", ""}},
         "a"},
        {"after a failure the newest goes",
         {{Publish, "a", "a"}, {Publish, "b", ""}, {Fail, "", "b"}, {Ack, "", ""}},
         "b"},
        {"a failure of the newest sends it again", {{Publish, "a", "a"}, {Fail, "", "a"}, {Ack, "", ""}}, "a"},
    };
    for (const auto& row : rows) {
        Granted g;
        std::optional<std::uint64_t> out;
        Usec now = 1_s + 40_ms;
        for (std::size_t i = 0; i < row.actions.size(); ++i) {
            const Action& a = row.actions[i];
            const std::string where = std::string(row.name) + ", action " + std::to_string(i + 1);
            now += 1_ms;
            Step st;
            if (a.what == Publish) {
                st = g.s.publish("/m/n1", a.value, now);
            } else {
                ASSERT_TRUE(out) << where << ": no put is out";
                st = a.what == Ack ? g.s.on_reply(*out, kPut, now) : g.s.on_failure(*out, "HTTP 503", now);
                out.reset();
            }
            if (a.sent.empty()) {
                EXPECT_EQ(count(st, Call::Put), 0u) << where;
                continue;
            }
            ASSERT_FALSE(out) << where << ": two puts of one key out";
            const Request& put = only(st, Call::Put);
            EXPECT_EQ(json::parse(put.body)["value"], base64(a.sent)) << where;
            out = put.id;
        }
        EXPECT_FALSE(out) << row.name << ": a put is still out";
        EXPECT_EQ(g.s.published("/m/n1"), row.published) << row.name;
        EXPECT_EQ(count(g.s.on_timer(now + 1_ms), Call::Put), 0u) << row.name;
    }
}

TEST(EtcdSession, RecordsArePutAgainOnEveryNewLease) {
    // Each row loses lease 7 another way; every record goes on lease 9 after.
    const struct {
        const char* name;
        std::function<Step(Session&)> lose;
        bool publishes_n3;  // the lost lease's last put, refused, goes on lease 9 too
    } rows[] = {
        {"etcd forgot it (keepalive)",
         [](Session& s) {
             Step k = s.on_timer(1_s + 333333_us);
             return s.on_reply(only(k, Call::KeepAlive).id, keepalive_reply(0), 1_s + 340_ms);
         },
         false},
        {"it ran out", [](Session& s) { return s.on_timer(*s.lease_until()); }, false},
        {"a put of it was refused (lease not found)",
         [](Session& s) {
             Step p = s.publish("/m/n3", "x", 1_s + 100_ms);
             return s.on_reply(only(p, Call::Put).id, kLeaseNotFound, 1_s + 110_ms);
         },
         true},
        {"a claim on it was refused (lease not found)",
         [](Session& s) {
             Step c = s.claim("/k", "n1", 1_s + 100_ms);
             return s.on_reply(only(c, Call::Claim).id, kLeaseNotFound, 1_s + 110_ms);
         },
         false},
    };
    for (const auto& row : rows) {
        Granted g;
        for (const char* key : {"/m/n1", "/m/n2"}) {
            Step p = g.s.publish(key, std::string("v") + key, 1_s + 40_ms);
            g.s.on_reply(only(p, Call::Put).id, kPut, 1_s + 45_ms);
        }
        ASSERT_EQ(g.s.published("/m/n1"), "v/m/n1");
        Step lost = row.lose(g.s);
        EXPECT_EQ(kinds(lost).back(), EventKind::LeaseLost) << row.name;
        EXPECT_FALSE(g.s.published("/m/n1")) << row.name;
        EXPECT_EQ(count(lost, Call::Put), 0u) << row.name << ": no put without a lease";
        const Request grant = only(lost, Call::Grant);
        const Usec t = *g.s.next_wakeup() - 1_ms;  // (before the grant's timeout)
        Step granted = g.s.on_reply(grant.id, grant_reply(9, 1), t);
        std::map<std::string, std::string> puts;
        for (const auto& r : granted.requests) {
            if (r.call != Call::Put) continue;
            json body = json::parse(r.body);
            EXPECT_EQ(body["lease"], "9") << row.name;
            puts[*unbase64(body["key"].get<std::string>())] = *unbase64(body["value"].get<std::string>());
            g.s.on_reply(r.id, kPut, t + 1_ms);
        }
        std::map<std::string, std::string> want{{"/m/n1", "v/m/n1"}, {"/m/n2", "v/m/n2"}};
        if (row.publishes_n3) want["/m/n3"] = "x";
        EXPECT_EQ(puts, want) << row.name;
        EXPECT_EQ(g.s.published("/m/n2"), "v/m/n2") << row.name;
    }
}

TEST(EtcdSession, AnEarlierLeasesPutIsAnsweredBeforeTheRecordGoesOnTheNewOne) {
    // A put on lease 7 is out when 7 is lost; the record waits for its answer, whatever it is,
    // then goes on lease 9. Each row: the late answer, and whether it counts as a failure.
    const struct {
        const char* name;
        std::string reply;  // "": the transfer fails
        bool failure;
    } rows[] = {
        {"refused: lease 7 not found", kLeaseNotFound, false},
        {"acknowledged on lease 7", kPut, false},
        {"failed", "", true},
    };
    for (const auto& row : rows) {
        Granted g;
        Step p = g.s.publish("/m/n1", "a", 1_s + 300_ms);
        const Request old_put = only(p, Call::Put);
        Step k = g.s.on_timer(1_s + 333333_us);
        Step lost = g.s.on_reply(only(k, Call::KeepAlive).id, keepalive_reply(0), 1_s + 340_ms);
        Step granted = g.s.on_reply(only(lost, Call::Grant).id, grant_reply(9, 1), 1_s + 350_ms);
        EXPECT_EQ(count(granted, Call::Put), 0u) << row.name << ": two puts of one key out";
        Step late = row.reply.empty() ? g.s.on_failure(old_put.id, "timeout", 1_s + 360_ms)
                                      : g.s.on_reply(old_put.id, row.reply, 1_s + 360_ms);
        EXPECT_EQ(kinds(late), row.failure ? std::vector<EventKind>{EventKind::CallFailed} : std::vector<EventKind>{})
            << row.name;
        EXPECT_EQ(g.s.counters().failures, row.failure ? 1u : 0u) << row.name;
        EXPECT_EQ(g.s.counters().leases_lost, 1u) << row.name;
        EXPECT_TRUE(g.s.lease_until()) << row.name << ": lease 9 stays";
        EXPECT_FALSE(g.s.published("/m/n1")) << row.name << ": acknowledged on lease 7 only";
        const Request& put = only(late, Call::Put);
        EXPECT_EQ(json::parse(put.body)["lease"], "9") << row.name;
        g.s.on_reply(put.id, kPut, 1_s + 370_ms);
        EXPECT_EQ(g.s.published("/m/n1"), "a") << row.name;
    }
}

TEST(EtcdSession, AFailedPutIsRetriedWhenTheBackoffEnds) {
    Session s(SessionSettings{urls(1), 30_s, 200_ms, 400_ms});
    Step st = s.start(1_s);
    s.on_reply(st.requests.at(0).id, grant_reply(7, 30), 1_s + 10_ms);
    Step p = s.publish("/m/n1", "a", 2_s);
    Step f = s.on_failure(only(p, Call::Put).id, "HTTP 503", 2_s + 1_ms);
    EXPECT_TRUE(f.requests.empty());
    EXPECT_EQ(s.next_wakeup(), 2_s + 201_ms);  // not the renewal, ten seconds away
    EXPECT_TRUE(s.publish("/m/n1", "b", 2_s + 100_ms).requests.empty());  // nor sooner for a newer value
    Step retried = s.on_timer(2_s + 201_ms);
    const Request& again = only(retried, Call::Put);
    EXPECT_EQ(json::parse(again.body)["value"], base64("b"));
    EXPECT_EQ(s.counters().failures, 1u);
}

TEST(EtcdSession, RevokeTakesTheRecordsAlongAndLaterPublishesAndMarksDoNothing) {
    Granted g;
    Step p = g.s.publish("/m/n1", "a", 2_s);
    g.s.on_reply(only(p, Call::Put).id, kPut, 2_s + 1_ms);
    Step p2 = g.s.publish("/m/n2", "b", 2_s + 2_ms);  // out when the node stops
    Step m = g.s.mark_cluster("/c", "c1", 2_s + 2_ms);
    Step r = g.s.revoke(2_s + 3_ms);
    EXPECT_EQ(r.requests.size(), 1u);
    only(r, Call::Revoke);
    EXPECT_FALSE(g.s.published("/m/n1"));
    EXPECT_TRUE(g.s.on_reply(only(p2, Call::Put).id, kPut, 2_s + 4_ms).requests.empty());
    EXPECT_FALSE(g.s.published("/m/n2"));
    EXPECT_TRUE(g.s.on_reply(only(m, Call::Mark).id, kCreated, 2_s + 4_ms).events.empty());
    EXPECT_TRUE(g.s.publish("/m/n1", "c", 2_s + 5_ms).requests.empty());
    EXPECT_TRUE(g.s.mark_cluster("/c", "c1", 2_s + 5_ms).requests.empty());
    EXPECT_TRUE(g.s.on_timer(5_s).requests.empty());
    EXPECT_FALSE(g.s.next_wakeup());
}

// --- the cluster's mark

TEST(EtcdSession, AMarkNeedsNoLeaseAndWritesNone) {
    Session s(settings());
    EXPECT_TRUE(s.mark_cluster("/freeha/c1/cluster", "c1", 0_s).requests.empty());  // not started
    Step st = s.start(1_ms);
    only(st, Call::Grant);  // still unanswered below
    const Request& mark = only(st, Call::Mark);
    EXPECT_EQ(path(mark.call), "/v3/kv/txn");
    EXPECT_EQ(mark.body, claim_body("/freeha/c1/cluster", "c1", 0));
    EXPECT_EQ(json::parse(mark.body)["success"][0]["request_put"]["lease"], "0");
    Step answered = s.on_reply(mark.id, kCreated, 2_ms);
    EXPECT_EQ(answered.events, (std::vector<Event>{{EventKind::ClusterMarked, "/freeha/c1/cluster", "c1"}}));
    EXPECT_FALSE(s.lease_until());
    // Answered once: not sent again.
    EXPECT_EQ(count(s.on_timer(1_s), Call::Mark), 0u);
}

TEST(EtcdSession, MarkOutcomes) {
    // Each row: the mark's answer, the events (ClusterMarked's detail: the value the key holds),
    // and whether it is sent again.
    const struct {
        const char* name;
        std::function<Step(Session&, std::uint64_t)> answer;
        std::vector<Event> events;
        bool again;
    } rows[] = {
        {"created", [](Session& s, std::uint64_t id) { return s.on_reply(id, kCreated, 1_s + 45_ms); },
         {{EventKind::ClusterMarked, "/c", "c1"}}, false},
        {"another cluster's",
         [](Session& s, std::uint64_t id) { return s.on_reply(id, held_by("/c", "c0", 0), 1_s + 45_ms); },
         {{EventKind::ClusterMarked, "/c", "c0"}}, false},
        {"ours already (a lost answer, or a node before)",
         [](Session& s, std::uint64_t id) { return s.on_reply(id, held_by("/c", "c1", 0), 1_s + 45_ms); },
         {{EventKind::ClusterMarked, "/c", "c1"}}, false},
        {"vanished between compare and read",
         [](Session& s, std::uint64_t id) {
             return s.on_reply(id, R"({"header":{"revision":"5"},"responses":[{"response_range":{}}]})", 1_s + 45_ms);
         },
         {}, true},
        {"etcd refuses it", [](Session& s, std::uint64_t id) { return s.on_reply(id, kTooManyRequests, 1_s + 45_ms); },
         {{EventKind::CallFailed, "/c", "mark on http://e1:2379: etcd: etcdserver: too many requests (code 14)"}}, true},
        {"junk", [](Session& s, std::uint64_t id) { return s.on_reply(id, "<html>", 1_s + 45_ms); },
         {{EventKind::CallFailed, "/c", "mark on http://e1:2379: reply is not a JSON object"}}, true},
        {"the transfer failed", [](Session& s, std::uint64_t id) { return s.on_failure(id, "HTTP 502", 1_s + 45_ms); },
         {{EventKind::CallFailed, "/c", "mark on http://e1:2379: HTTP 502"}}, true},
        {"no answer in time", [](Session& s, std::uint64_t) { return s.on_timer(1_s + 440_ms); },
         {{EventKind::CallFailed, "/c", "mark on http://e1:2379: no answer in 400ms"}}, true},
    };
    for (const auto& row : rows) {
        Granted g;
        Step m = g.s.mark_cluster("/c", "c1", 1_s + 40_ms);
        const Request mark = only(m, Call::Mark);
        Step r = row.answer(g.s, mark.id);
        EXPECT_EQ(r.events, row.events) << row.name;
        std::size_t marks = count(r, Call::Mark) + count(g.s.on_timer(1_s + 444_ms), Call::Mark);
        EXPECT_EQ(marks, row.again ? 1u : 0u) << row.name;
        EXPECT_EQ(g.s.lease_id(), 7) << row.name;  // whatever the answer, the lease is untouched
    }
}

TEST(EtcdSession, AMarkIsRetriedUntilAnsweredWithoutALease) {
    // One endpoint, no lease yet (the grant is out): a failed mark goes again when the backoff ends.
    Session s(settings(1));
    Step st = s.start(0_s);
    Step m = s.mark_cluster("/c", "c1", 1_ms);
    s.on_failure(only(m, Call::Mark).id, "Couldn't connect to server", 2_ms);
    EXPECT_EQ(s.next_wakeup(), 202_ms);  // before the grant's timeout (400 ms)
    Step again = s.on_timer(202_ms);
    const Request& mark = only(again, Call::Mark);
    EXPECT_EQ(count(again, Call::Grant), 0u);  // the first grant is still out
    EXPECT_EQ(kinds(s.on_reply(mark.id, held_by("/c", "c0", 0), 210_ms)),
              std::vector<EventKind>{EventKind::ClusterMarked});
    EXPECT_EQ(s.counters().failures, 1u);
}

TEST(EtcdSession, AMarkFollowsTheSessionsEndpoint) {
    // A mark and the grant fail together on endpoint 1: both go to endpoint 2.
    Session s(settings(3));
    Step st = s.start(0_s);
    Step m = s.mark_cluster("/c", "c1", 0_s);
    EXPECT_EQ(only(m, Call::Mark).endpoint, 0u);
    Step t = s.on_timer(400_ms);
    EXPECT_EQ(t.cancel.size(), 2u);
    EXPECT_EQ(only(t, Call::Mark).endpoint, 1u);
    EXPECT_EQ(only(t, Call::Grant).endpoint, 1u);
    EXPECT_EQ(s.counters().endpoint_switches, 1u);
}

}  // namespace
}  // namespace freeha::etcd
