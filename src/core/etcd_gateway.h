// etcd's v3 JSON gateway as freehad speaks it: the paths and bodies of its calls, and strict decoding of the replies.
//
// Pure: no I/O. The gateway (etcd 3.4: `[client URL]/v3/...`) takes and gives
// JSON with keys and values in base64 and 64-bit integers as strings; a
// failed call answers {"error", "message", "code"} (a gRPC status). A lease
// etcd no longer knows is not an error to keepalive: its reply lacks a TTL.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/enum_names.h"

namespace freeha::etcd {

// A decoded reply, or the one-line reason it is none ("etcd: requested lease
// not found (code 5)", "reply is not JSON", "reply lacks ID").
template <class T> struct Decoded {
    std::optional<T> value;
    std::string error;  // set exactly when !value
    int code = 0;       // etcd's gRPC status code when etcd refused the call (5: not found)

    static Decoded fail(std::string why, int code = 0) { return Decoded{std::nullopt, std::move(why), code}; }
    explicit operator bool() const { return value.has_value(); }
};

// gRPC's NotFound, as etcd answers a call on a lease it no longer knows.
inline constexpr int kCodeNotFound = 5;

// Put: a member record on the lease; Mark: the cluster's name key, created once without a lease.
enum class Call { Grant, KeepAlive, Claim, Release, Put, Mark, Revoke, Range, Watch };
inline constexpr int kCallCount = 9;
static_assert(kCallCount == static_cast<int>(Call::Watch) + 1);
inline constexpr EnumNames<Call, kCallCount> kCallNames{"grant", "keepalive", "claim", "release", "put",
                                                        "mark",  "revoke",    "range", "watch"};
std::string_view to_string(Call c);
// The gateway path of a call, after the endpoint's URL ("/v3/lease/grant").
std::string_view path(Call c);

// A key's value as freehad writes it: the node's name, so that a key can be
// read by hand (`etcdctl get --prefix /freeha/`).
std::string base64(std::string_view bytes);
std::optional<std::string> unbase64(std::string_view text);
// The key just past every key that starts with `prefix` (a range's end).
std::string prefix_end(std::string_view prefix);

// --- request bodies
std::string grant_body(std::int64_t ttl_seconds);
std::string keepalive_body(std::int64_t lease);
// Puts `key` = `value` attached to `lease` only if `key` does not exist; else reads it.
// Lease 0 is etcd's "no lease": the key stays until deleted (the cluster's mark).
std::string claim_body(std::string_view key, std::string_view value, std::int64_t lease);
// Deletes `key` only if it is still attached to `lease` and was created at
// `create_revision` (this node's claim, not a successor's nor a later one of its own).
std::string release_body(std::string_view key, std::int64_t lease, std::int64_t create_revision);
// Puts `key` = `value` attached to `lease`, whatever the key held before.
std::string put_body(std::string_view key, std::string_view value, std::int64_t lease);
std::string revoke_body(std::int64_t lease);
std::string range_body(std::string_view prefix);
std::string watch_body(std::string_view prefix, std::int64_t start_revision);

// --- replies
struct Grant {
    std::int64_t lease = 0;
    std::int64_t ttl_seconds = 0;  // as etcd granted it: never below its minimum TTL
};
Decoded<Grant> decode_grant(std::string_view body);
struct KeepAlive {
    std::int64_t lease = 0;        // the lease renewed
    std::int64_t ttl_seconds = 0;  // the TTL it has again; 0 when etcd no longer knows the lease
};
Decoded<KeepAlive> decode_keepalive(std::string_view body);

struct KeyValue {
    std::string key;
    std::string value;
    std::int64_t lease = 0;
    std::int64_t create_revision = 0;  // the revision that created the key: it orders claims
    std::int64_t mod_revision = 0;
};
struct ClaimOutcome {
    bool created = false;
    std::optional<KeyValue> existing;  // when not created: the key as it is (absent if it vanished meanwhile)
    std::int64_t revision = 0;
};
Decoded<ClaimOutcome> decode_claim(std::string_view body);
// The store's revision after the put (etcd refuses a put on a lease it no longer knows: code 5).
Decoded<std::int64_t> decode_put(std::string_view body);
// Whether the key was deleted (false: it was no longer this lease's).
Decoded<bool> decode_release(std::string_view body);
Decoded<bool> decode_revoke(std::string_view body);

struct Snapshot {
    std::vector<KeyValue> kvs;
    std::int64_t revision = 0;  // the store's revision the snapshot is of
};
Decoded<Snapshot> decode_range(std::string_view body);

// One line of a watch stream.
struct WatchEvent {
    bool deleted = false;
    KeyValue kv;
};
struct WatchBatch {
    bool created = false;              // the watch's first message
    std::int64_t compact_revision = 0;  // non-zero: the start revision was compacted away, start over with a range
    std::vector<WatchEvent> events;
    std::int64_t revision = 0;
};
Decoded<WatchBatch> decode_watch_line(std::string_view line);

}  // namespace freeha::etcd
