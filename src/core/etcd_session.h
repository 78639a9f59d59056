// One node's lease on etcd and its keys (claims, records), as a pure step machine: calls out; answers and time in.
//
// The node keeps one etcd lease alive; a claim key exists only while that
// lease does (etcd deletes it when the lease expires or is revoked), and is
// created only if absent, so one node at a time holds it. The lease's end on
// this node's clock is computed conservatively: from the time the last
// acknowledged keepalive (or the grant) was sent, which is before etcd
// started its TTL again, plus the TTL etcd acknowledged, less the drift
// allowance of claims.h. The holder's graceful stop and kill are timed from
// that end exactly as from a heartbeat lease (claims.h), so its services are
// gone before etcd can let the key expire and another node create it. See
// freeha-safety(7), "With etcd".
//
// The lease also carries the node's member records (publish): plain puts,
// made again on every new lease, since etcd deletes them with the old one.
// At most one put per key is out (one of a lost lease too: the new lease's
// waits for its answer or timeout); a value published meanwhile is sent once
// it is answered (values in between are never sent), and a value etcd has
// acknowledged on the current lease is not sent again. The cluster's mark
// (mark_cluster) is the one key without a lease: created if absent, else
// read, and its answer names the value it holds, ours or another's.
//
// A call given up on here (timed out) may still be applied by etcd later,
// after a newer one: a member frozen with the request in its socket applies
// it once it runs again. So the session compares what the cluster's watch
// shows with what etcd acknowledged to it (on_view): a record that etcd
// shows otherwise than as this node's last acknowledged put left it (an older
// value, or none) is put again, and a key on this node's lease that it does
// not hold (a claim landing after the node gave it up) is deleted. Without
// that, a late put would leave peers an old record for as long as the node
// changes nothing, and a late claim would hold a group for as long as the
// node lives.
//
// Failures: a call that fails or times out moves the session to the next
// endpoint and is retried there at once; once every endpoint has failed in a
// row, retries back off (doubling from an interval, at most kMaxBackoff). A
// claim whose reply was lost is resent: finding the key on this node's own
// lease means it was created; so is a mark (finding our value is the same answer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/etcd_gateway.h"
#include "core/timespan.h"

namespace freeha::etcd {

struct SessionSettings {
    // The etcd members' client URLs, in Endpoints= order: calls go to the first
    // while it answers, and a failure line names the one that failed. At least one.
    std::vector<std::string> endpoints;
    Usec dead_time = Usec(1000 * 1000);  // the lease's TTL, rounded up to whole seconds (etcd's unit)
    Usec interval = Usec(200 * 1000);    // a node that holds a claim renews every interval
    Usec call_timeout = Usec(500 * 1000);  // a call not answered by then has failed
};

// etcd's TTL for DeadTime=: whole seconds, rounded up, at least 1.
std::int64_t ttl_seconds(Usec dead_time);

struct Request {
    std::uint64_t id = 0;
    Call call = Call::Grant;
    std::size_t endpoint = 0;  // index into the endpoints
    std::string body;
};

enum class EventKind {
    LeaseGranted,   // a new lease: claims may be made
    LeaseLost,      // the lease ran out here (or etcd forgot it): every claim and record is gone
    ClaimWon,       // `key` is this node's
    ClaimRefused,   // `key` is another node's: `detail` is its value
    Released,       // `key` is no longer this node's (deleted, or already gone)
    ClusterMarked,  // the mark `key` exists: `detail` is the value it holds (ours if this node created it)
    CallFailed,     // `detail`: which call, which endpoint, why (counted; the session retries)
    Repaired,       // `key` was not as this node left it (a late call, on_view): `detail` says what and what is done
};
inline constexpr int kEventKindCount = 8;
static_assert(kEventKindCount == static_cast<int>(EventKind::Repaired) + 1);
inline constexpr EnumNames<EventKind, kEventKindCount> kEventKindNames{
    "lease-granted", "lease-lost", "claim-won", "claim-refused", "released", "cluster-marked", "call-failed", "repaired"};
std::string_view to_string(EventKind k);

struct Event {
    EventKind kind;
    std::string key;
    std::string detail;
    friend bool operator==(const Event&, const Event&) = default;
};

struct Step {
    std::vector<Request> requests;  // to send now, in order
    std::vector<std::uint64_t> cancel;  // calls given up (timed out): their transfers can end
    std::vector<Event> events;
};

struct SessionCounters {
    std::uint64_t calls = 0;
    std::uint64_t failures = 0;         // calls that failed or timed out
    std::uint64_t endpoint_switches = 0;
    std::uint64_t leases_lost = 0;
};

class Session {
public:
    static constexpr Usec kMaxBackoff = Usec(5 * 1000 * 1000);

    explicit Session(SessionSettings settings);

    // Asks for a lease.
    Step start(Usec now);
    Step on_reply(std::uint64_t request, std::string_view body, Usec now);
    // The call could not be sent, or its transfer failed (`why`: curl's words, an HTTP status).
    Step on_failure(std::uint64_t request, const std::string& why, Usec now);
    Step on_timer(Usec now);
    std::optional<Usec> next_wakeup() const;

    // Creates `key` = `value` on this node's lease if it does not exist.
    // Without a lease the claim waits for one.
    Step claim(const std::string& key, const std::string& value, Usec now);
    // Deletes `key` if it is still on this node's lease; forgets a pending claim.
    Step release(const std::string& key, Usec now);
    // Puts `key` = `value` on this node's lease, now and on every lease
    // after (a member record). Without a lease the put waits for one.
    Step publish(const std::string& key, const std::string& value, Usec now);
    // Creates `key` = `value` without a lease if it does not exist, else
    // reads it; answered by one ClusterMarked event. Needs no lease (only
    // start()); a mark still unanswered at revoke() is forgotten.
    Step mark_cluster(const std::string& key, const std::string& value, Usec now);
    // Gives the lease back (every claim key and record goes with it; later
    // publishes and marks do nothing): the daemon stops.
    Step revoke(Usec now);
    // What etcd holds under the watched prefix, current up to `revision` (a
    // synced watch): repairs what a late call changed (see above).
    Step on_view(const std::map<std::string, KeyValue>& view, std::int64_t revision, Usec now);

    // The lease's end on this node's clock; nullopt without a lease.
    std::optional<Usec> lease_until() const { return lease_ ? std::optional<Usec>(lease_->until) : std::nullopt; }
    std::optional<std::int64_t> lease_id() const {
        return lease_ ? std::optional<std::int64_t>(lease_->id) : std::nullopt;
    }
    bool holds(const std::string& key) const;
    // A revoke has been sent and neither answered nor failed yet.
    bool revoking() const { return pending(Call::Revoke); }
    // The newest value of `key` etcd acknowledged on the current lease (a
    // newer one may be out); nullopt until one is (and again on a new lease).
    std::optional<std::string> published(const std::string& key) const;
    std::size_t endpoint() const { return endpoint_; }
    const SessionCounters& counters() const { return counters_; }

private:
    struct Lease {
        std::int64_t id;
        Usec until;
        Usec renewed_from;  // when the newest acknowledged grant or keepalive was sent
    };
    struct Pending {
        Call call;
        std::string key;
        std::int64_t lease;  // the lease it was sent for (0: none)
        std::string value;   // what a put or a mark writes
        std::int64_t create_revision;  // a release: the creation of the key it deletes
        std::size_t endpoint;
        Usec sent_at;
        Usec deadline;
    };
    // A key is released only with the revision that created it (a release
    // that etcd applies late cannot delete the key claimed again since), and
    // claimed again only once its release has been answered.
    enum class ClaimState { Wanted, Claiming, Held, Releasing };
    struct Claim {
        std::string value;
        ClaimState state;
        std::int64_t create_revision = 0;  // 0: not known (the claim's answer has not come)
        bool reclaim = false;              // Releasing: claim it again once the release is answered
    };

    // A member record: the newest value published, and the one etcd acknowledged on which lease, at which revision.
    struct Record {
        std::string value;
        std::string acked;
        std::int64_t acked_lease = 0;  // 0: none acknowledged
        std::int64_t acked_revision = 0;
    };

    void send(Call call, std::string body, const std::string& key, Usec now, Step& out, std::string value = {},
              std::int64_t create_revision = 0);
    // Counts a failed call and moves to the next endpoint (backing off after a round); act() retries.
    void fail(const Pending& pending, const std::string& why, Usec now, Step& out);
    void lose_lease(const std::string& why, Step& out);
    // Whether a call of `call` is outstanding (for `key`); a keepalive: for the current lease.
    bool pending(Call call, const std::string& key = {}) const;
    // Whether a claim waits to be sent (or its release to be sent again).
    bool claims_waiting() const;
    // Whether etcd holds `record`'s newest value on the current lease.
    bool acknowledged(const Record& record) const;
    // Whether a put (on the lease) or a mark waits to be sent.
    bool puts_waiting() const;
    bool marks_waiting() const;
    // How often the lease is renewed: every interval while this node claims
    // or holds a key, else a third of the TTL.
    Usec renewal_period() const;
    // What is due at `now`: marks, the grant, renewals, waiting claims and puts.
    void act(Usec now, Step& out);

    SessionSettings settings_;
    bool started_ = false;
    bool revoked_ = false;
    std::optional<Lease> lease_;
    std::map<std::string, Claim> claims_;
    std::map<std::string, Record> records_;
    std::map<std::string, std::string> marks_;  // key -> value, until answered
    // The creation revisions of the keys this session deleted on the current
    // lease, while the view may still show them (they are no strays).
    std::set<std::int64_t> released_;
    // The leases etcd granted this session, the newest last (a late put may come on any of them).
    static constexpr std::size_t kLeasesKept = 16;
    std::vector<std::int64_t> leases_;
    std::map<std::uint64_t, Pending> pending_;
    std::uint64_t next_request_ = 1;
    std::size_t endpoint_ = 0;
    std::size_t failures_in_row_ = 0;
    Usec retry_at_;  // no call before this after every endpoint failed (backoff)
    SessionCounters counters_;
};

// What the session and the watch share about a failed call:
// its line, "CALL on URL: why" ("grant on https://etcd2:2379: Connection refused"),
std::string failed_call_line(Call call, const std::string& url, const std::string& why);
// and how long calls wait after `rounds` (at least 1) rounds in which every
// endpoint failed in a row: `base`, doubled for each further round, at most
// Session::kMaxBackoff.
Usec backoff(std::size_t rounds, Usec base);

}  // namespace freeha::etcd
