#include "core/etcd_gateway.h"

#include <sodium.h>

#include <array>
#include <charconv>
#include <nlohmann/json.hpp>

namespace freeha::etcd {

using nlohmann::json;

namespace {

constexpr std::array<std::string_view, kCallCount> kPaths{
    "/v3/lease/grant", "/v3/lease/keepalive", "/v3/kv/txn",   "/v3/kv/txn", "/v3/kv/put",
    "/v3/kv/txn",      "/v3/lease/revoke",    "/v3/kv/range", "/v3/watch",
};

std::string number(std::int64_t v) { return std::to_string(v); }

// The gateway writes 64-bit integers as strings, and leaves out fields that are zero or false.
std::optional<std::int64_t> int_field(const json& object, const char* name) {
    auto it = object.find(name);
    if (it == object.end()) return std::int64_t{0};
    if (it->is_number_integer()) return it->get<std::int64_t>();
    if (!it->is_string()) return std::nullopt;
    const auto& text = it->get_ref<const std::string&>();
    std::int64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return v;
}

// The JSON object of a reply, or why it is none: not JSON, or etcd's error.
Decoded<json> parse(std::string_view body) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Decoded<json>::fail("reply is not a JSON object");
    if (j.contains("error")) {
        std::string message = j["error"].is_string() ? j["error"].get<std::string>() : "error";
        const int code = static_cast<int>(int_field(j, "code").value_or(-1));
        return Decoded<json>::fail("etcd: " + message + " (code " + std::to_string(code) + ")", code);
    }
    return Decoded<json>{std::move(j), {}};
}

std::int64_t header_revision(const json& j) {
    auto h = j.find("header");
    if (h == j.end() || !h->is_object()) return 0;
    return int_field(*h, "revision").value_or(0);
}

std::optional<KeyValue> key_value(const json& kv) {
    if (!kv.is_object() || !kv.contains("key") || !kv["key"].is_string()) return std::nullopt;
    KeyValue out;
    auto key = unbase64(kv["key"].get<std::string>());
    if (!key) return std::nullopt;
    out.key = std::move(*key);
    if (kv.contains("value")) {
        if (!kv["value"].is_string()) return std::nullopt;
        auto value = unbase64(kv["value"].get<std::string>());
        if (!value) return std::nullopt;
        out.value = std::move(*value);
    }
    auto lease = int_field(kv, "lease");
    auto created = int_field(kv, "create_revision");
    auto mod = int_field(kv, "mod_revision");
    if (!lease || !created || !mod) return std::nullopt;
    out.lease = *lease;
    out.create_revision = *created;
    out.mod_revision = *mod;
    return out;
}

bool succeeded(const json& j) { return j.value("succeeded", false); }

}  // namespace

std::string_view to_string(Call c) { return kCallNames(c); }
std::string_view path(Call c) { return kPaths.at(static_cast<std::size_t>(c)); }

std::string base64(std::string_view bytes) {
    std::string out(sodium_base64_encoded_len(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
    sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                      sodium_base64_VARIANT_ORIGINAL);
    out.resize(out.size() - 1);  // the terminating NUL
    return out;
}

std::optional<std::string> unbase64(std::string_view text) {
    std::string out(text.size() / 4 * 3 + 3, '\0');
    std::size_t length = 0;
    const char* end = nullptr;
    if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(), nullptr,
                          &length, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != text.data() + text.size())
        return std::nullopt;
    out.resize(length);
    return out;
}

std::string prefix_end(std::string_view prefix) {
    std::string end(prefix);
    while (!end.empty()) {
        auto& last = reinterpret_cast<unsigned char&>(end.back());
        if (last < 0xff) {
            ++last;
            return end;
        }
        end.pop_back();
    }
    return std::string(1, '\0');  // etcd: every key
}

std::string grant_body(std::int64_t ttl_seconds) { return json{{"TTL", number(ttl_seconds)}}.dump(); }

std::string keepalive_body(std::int64_t lease) { return json{{"ID", number(lease)}}.dump(); }

std::string claim_body(std::string_view key, std::string_view value, std::int64_t lease) {
    const std::string k = base64(key);
    return json{{"compare", json::array({{{"key", k}, {"target", "CREATE"}, {"create_revision", "0"}}})},
                {"success",
                 json::array({{{"request_put", {{"key", k}, {"value", base64(value)}, {"lease", number(lease)}}}}})},
                {"failure", json::array({{{"request_range", {{"key", k}}}}})}}
        .dump();
}

std::string release_body(std::string_view key, std::int64_t lease, std::int64_t create_revision) {
    const std::string k = base64(key);
    return json{{"compare", json::array({{{"key", k}, {"target", "LEASE"}, {"lease", number(lease)}},
                                         {{"key", k}, {"target", "CREATE"}, {"create_revision", number(create_revision)}}})},
                {"success", json::array({{{"request_delete_range", {{"key", k}}}}})}}
        .dump();
}

std::string put_body(std::string_view key, std::string_view value, std::int64_t lease) {
    return json{{"key", base64(key)}, {"value", base64(value)}, {"lease", number(lease)}}.dump();
}

std::string revoke_body(std::int64_t lease) { return json{{"ID", number(lease)}}.dump(); }

std::string range_body(std::string_view prefix) {
    return json{{"key", base64(prefix)}, {"range_end", base64(prefix_end(prefix))}}.dump();
}

std::string watch_body(std::string_view prefix, std::int64_t start_revision) {
    return json{{"create_request",
                 {{"key", base64(prefix)},
                  {"range_end", base64(prefix_end(prefix))},
                  {"start_revision", number(start_revision)}}}}
        .dump();
}

Decoded<Grant> decode_grant(std::string_view body) {
    auto j = parse(body);
    if (!j) return Decoded<Grant>::fail(j.error, j.code);
    auto id = int_field(*j.value, "ID");
    auto ttl = int_field(*j.value, "TTL");
    if (!id || *id == 0) return Decoded<Grant>::fail("grant reply lacks a lease ID");
    if (!ttl || *ttl <= 0) return Decoded<Grant>::fail("grant reply lacks a TTL");
    return Decoded<Grant>{Grant{*id, *ttl}, {}};
}

Decoded<KeepAlive> decode_keepalive(std::string_view body) {
    auto j = parse(body);
    if (!j) return Decoded<KeepAlive>::fail(j.error, j.code);
    // A keepalive is a stream: each message is wrapped in "result".
    auto result = j.value->find("result");
    if (result == j.value->end() || !result->is_object())
        return Decoded<KeepAlive>::fail("keepalive reply lacks a result");
    auto id = int_field(*result, "ID");
    auto ttl = int_field(*result, "TTL");
    if (!id) return Decoded<KeepAlive>::fail("keepalive reply has a malformed ID");
    if (!ttl || *ttl < 0) return Decoded<KeepAlive>::fail("keepalive reply has a malformed TTL");
    return Decoded<KeepAlive>{KeepAlive{*id, *ttl}, {}};
}

Decoded<ClaimOutcome> decode_claim(std::string_view body) {
    auto j = parse(body);
    if (!j) return Decoded<ClaimOutcome>::fail(j.error, j.code);
    ClaimOutcome out;
    out.revision = header_revision(*j.value);
    out.created = succeeded(*j.value);
    if (out.created) return Decoded<ClaimOutcome>{std::move(out), {}};
    // The failure branch read the key: who holds it.
    const auto& responses = j.value->value("responses", json::array());
    if (!responses.is_array() || responses.size() != 1 || !responses[0].contains("response_range"))
        return Decoded<ClaimOutcome>::fail("claim reply lacks the key's range");
    const auto& range = responses[0]["response_range"];
    const auto& kvs = range.value("kvs", json::array());
    if (!kvs.is_array()) return Decoded<ClaimOutcome>::fail("claim reply has malformed kvs");
    if (!kvs.empty()) {
        auto kv = key_value(kvs[0]);
        if (!kv) return Decoded<ClaimOutcome>::fail("claim reply has a malformed key");
        out.existing = std::move(*kv);
    }
    return Decoded<ClaimOutcome>{std::move(out), {}};
}

Decoded<std::int64_t> decode_put(std::string_view body) {
    auto j = parse(body);
    if (!j) return Decoded<std::int64_t>::fail(j.error, j.code);
    const std::int64_t revision = header_revision(*j.value);
    if (revision <= 0) return Decoded<std::int64_t>::fail("put reply lacks a revision");
    return Decoded<std::int64_t>{revision, {}};
}

Decoded<bool> decode_release(std::string_view body) {
    auto j = parse(body);
    if (!j) return Decoded<bool>::fail(j.error, j.code);
    return Decoded<bool>{succeeded(*j.value), {}};
}

Decoded<bool> decode_revoke(std::string_view body) {
    auto j = parse(body);
    if (!j) return Decoded<bool>::fail(j.error, j.code);
    return Decoded<bool>{true, {}};
}

Decoded<Snapshot> decode_range(std::string_view body) {
    auto j = parse(body);
    if (!j) return Decoded<Snapshot>::fail(j.error, j.code);
    Snapshot out;
    out.revision = header_revision(*j.value);
    if (out.revision == 0) return Decoded<Snapshot>::fail("range reply lacks a revision");
    const auto& kvs = j.value->value("kvs", json::array());
    if (!kvs.is_array()) return Decoded<Snapshot>::fail("range reply has malformed kvs");
    for (const auto& item : kvs) {
        auto kv = key_value(item);
        if (!kv) return Decoded<Snapshot>::fail("range reply has a malformed key");
        out.kvs.push_back(std::move(*kv));
    }
    return Decoded<Snapshot>{std::move(out), {}};
}

Decoded<WatchBatch> decode_watch_line(std::string_view line) {
    auto j = parse(line);
    if (!j) return Decoded<WatchBatch>::fail(j.error, j.code);
    auto result = j.value->find("result");
    if (result == j.value->end() || !result->is_object())
        return Decoded<WatchBatch>::fail("watch message lacks a result");
    if (result->value("canceled", false)) {
        std::string why = result->value("cancel_reason", std::string("canceled"));
        auto compact = int_field(*result, "compact_revision");
        if (compact && *compact > 0) return Decoded<WatchBatch>{WatchBatch{false, *compact, {}, 0}, {}};
        return Decoded<WatchBatch>::fail("watch canceled: " + why);
    }
    WatchBatch out;
    out.created = result->value("created", false);
    out.revision = header_revision(*result);
    auto compact = int_field(*result, "compact_revision");
    if (!compact) return Decoded<WatchBatch>::fail("watch message has a malformed compact_revision");
    out.compact_revision = *compact;
    for (const auto& e : result->value("events", json::array())) {
        auto kv = e.is_object() && e.contains("kv") ? key_value(e["kv"]) : std::nullopt;
        if (!kv) return Decoded<WatchBatch>::fail("watch event has a malformed key");
        out.events.push_back(WatchEvent{e.value("type", std::string("PUT")) == "DELETE", std::move(*kv)});
    }
    return Decoded<WatchBatch>{std::move(out), {}};
}

}  // namespace freeha::etcd
