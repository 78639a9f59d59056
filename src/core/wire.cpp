#include "core/wire.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>

#include "core/node_name.h"

namespace freeha::wire {
namespace {

constexpr std::array<std::uint8_t, 4> kMagic{'F', 'H', 'A', '1'};

// Between host order and big-endian (one load or store instead of eight
// shifts: every heartbeat has eight or more of them, and every peer decodes it).
std::uint64_t big_endian(std::uint64_t v) {
    if constexpr (std::endian::native == std::endian::little) return __builtin_bswap64(v);
    return v;
}

// Writes big-endian integers into a buffer sized up front.
struct Writer {
    std::vector<std::uint8_t>& out;
    std::size_t at = 0;
    void bytes(const void* data, std::size_t n) {
        std::memcpy(out.data() + at, data, n);
        at += n;
    }
    void u8(std::uint8_t v) { out[at++] = v; }
    void u16(std::uint16_t v) {
        u8(static_cast<std::uint8_t>(v >> 8));
        u8(static_cast<std::uint8_t>(v));
    }
    void u64(std::uint64_t v) {
        v = big_endian(v);
        bytes(&v, sizeof v);
    }
};

std::uint16_t get_u16(std::span<const std::uint8_t> in, std::size_t at) {
    return static_cast<std::uint16_t>((in[at] << 8) | in[at + 1]);
}

// The caller has checked that 8 bytes are there.
std::uint64_t get_u64(std::span<const std::uint8_t> in, std::size_t at) {
    std::uint64_t v;
    std::memcpy(&v, in.data() + at, sizeof v);
    return big_endian(v);
}

// An optional name field: u8 length (1..64), then a valid node name. Advances *at.
bool read_name(std::span<const std::uint8_t> in, std::size_t& at, std::string& name) {
    if (in.size() <= at) return false;
    std::size_t length = in[at];
    if (length == 0 || length > kMaxNodeNameLength || in.size() < at + 1 + length) return false;
    name.assign(reinterpret_cast<const char*>(in.data() + at + 1), length);
    at += 1 + length;
    return is_valid_node_name(name);
}

// The groups' extension as encode() writes it: the groups in order, and the
// name table they refer to.
struct NameEntry {
    std::string_view name;
    std::uint64_t incarnation;
    std::uint64_t grant;
    bool operator==(const NameEntry&) const = default;
};

// In Extension's claimant and handover: the group names none (kMaxGroupNames < 255).
constexpr std::uint8_t kNoName = 0xff;
static_assert(kMaxGroupNames < kNoName);

struct Extension {
    std::vector<const GroupBeat*> groups;  // ascending by id, no id twice
    std::vector<NameEntry> names;
    std::vector<std::uint8_t> claimant;  // per group: its index in names (when it names one)
    std::vector<std::uint8_t> handover;
    std::size_t size = 0;  // bytes on the wire
};

std::size_t varint_size(std::uint64_t v) {
    std::size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        ++n;
    }
    return n;
}

std::uint8_t name_index(std::vector<NameEntry>& names, NameEntry entry) {
    auto it = std::find(names.begin(), names.end(), entry);
    if (it != names.end()) return static_cast<std::uint8_t>(it - names.begin());
    names.push_back(entry);
    return static_cast<std::uint8_t>(names.size() - 1);
}

Extension extension(const std::vector<GroupBeat>& groups) {
    Extension x;
    for (const GroupBeat& g : groups) x.groups.push_back(&g);
    std::stable_sort(x.groups.begin(), x.groups.end(),
                     [](const GroupBeat* a, const GroupBeat* b) { return a->group < b->group; });
    x.groups.erase(std::unique(x.groups.begin(), x.groups.end(),
                               [](const GroupBeat* a, const GroupBeat* b) { return a->group == b->group; }),
                   x.groups.end());
    if (x.groups.size() > kMaxGroups - 1) x.groups.resize(kMaxGroups - 1);
    if (x.groups.empty()) return x;
    x.size = 1 + 1;  // the two counts
    for (const GroupBeat* g : x.groups) {
        x.size += 4 + 1 + 1 + varint_size(g->term);
        // Names that are no node's could never be decoded: such a group names none.
        if (is_valid_node_name(g->claimant)) {
            x.claimant.push_back(name_index(x.names, {g->claimant, g->claimant_incarnation, g->grant}));
            x.size += 1;
        } else {
            x.claimant.push_back(kNoName);
        }
        if (is_valid_node_name(g->handover_to)) {
            x.handover.push_back(name_index(x.names, {g->handover_to, 0, 0}));
            x.size += 1;
        } else {
            x.handover.push_back(kNoName);
        }
    }
    for (const NameEntry& e : x.names) x.size += 1 + e.name.size() + 8 + 8;
    return x;
}

}  // namespace

const std::uint64_t kUnderstandsCurrentMarker = node_id(":wire3");

std::uint32_t group_id(std::string_view group_name) {
    std::uint32_t h = 2166136261u;
    for (char c : group_name) {
        h ^= static_cast<std::uint8_t>(c);
        h *= 16777619u;
    }
    return h;
}

bool is_valid_release(std::string_view release) {
    if (release.empty() || release.size() > kMaxReleaseLength) return false;
    return std::all_of(release.begin(), release.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '+' ||
               c == '~' || c == '-';
    });
}

std::string_view to_string(Reject r) {
    static constexpr std::array<std::string_view, kRejectCount> kNames{
        "too_short",   "bad_magic", "bad_version",     "bad_type",           "unknown_flags",
        "bad_state",   "bad_role",  "bad_name_length", "bad_name_character", "bad_length", "bad_handover", "bad_heard_list", "bad_claimant",
        "bad_expected_nodes", "bad_release", "bad_groups", "bad_group_names",
    };
    return kNames.at(static_cast<std::size_t>(r));
}

std::vector<std::uint8_t> encode(const Heartbeat& hb) {
    bool current = hb.version != kPreviousVersion;
    bool handover = !hb.handover_to.empty();
    bool claimant = !hb.claimant.empty();
    // A version-2 heartbeat of a node that understands version 3 says so in its heard list.
    bool marker = !current && hb.understands >= kVersion;
    std::size_t heard = std::min(hb.heard.size(), kMaxHeard - (marker ? 1 : 0));
    std::size_t heard_written = heard + (marker ? 1 : 0);
    unsigned expected = std::min(hb.expected_nodes, kMaxExpectedNodes);
    std::string_view release = is_valid_release(hb.release) ? std::string_view(hb.release) : "unknown";
    Extension groups = current ? extension(hb.groups) : Extension{};
    std::vector<std::uint8_t> out(kHeaderSize + hb.node.size() + (handover ? 1 + hb.handover_to.size() : 0) +
                                  (claimant ? 1 + hb.claimant.size() : 0) +
                                  (heard_written != 0 ? 1 + 8 * heard_written : 0) + (expected != 0 ? 1 : 0) +
                                  (hb.claimant_incarnation ? 8 : 0) + (current ? 8 + 1 + release.size() : 0) +
                                  groups.size);
    Writer w{out};
    w.bytes(kMagic.data(), kMagic.size());
    w.u8(current ? kVersion : kPreviousVersion);
    w.u8(kTypeHeartbeat);
    auto flags = static_cast<std::uint16_t>(hb.flags & (current ? kKnownFlags : kKnownFlagsPrevious) &
                                            ~(kFlagAuthenticated | kFlagHandover | kFlagHeard | kFlagClaimant |
                                              kFlagExpected | kFlagClaimantIncarnation | kFlagGroups));
    if (handover) flags |= kFlagHandover;
    if (claimant) flags |= kFlagClaimant;
    if (heard_written != 0) flags |= kFlagHeard;
    if (expected != 0) flags |= kFlagExpected;
    if (hb.claimant_incarnation) flags |= kFlagClaimantIncarnation;
    if (!groups.groups.empty()) flags |= kFlagGroups;
    w.u16(flags);
    w.u64(hb.cluster_id);
    w.u64(hb.incarnation);
    w.u64(hb.sequence);
    w.u64(hb.term);
    w.u64(hb.sent_at);
    w.u64(hb.grant);
    w.u8(static_cast<std::uint8_t>(hb.state));
    w.u8(static_cast<std::uint8_t>(hb.role));
    w.u8(static_cast<std::uint8_t>(hb.node.size()));
    w.bytes(hb.node.data(), hb.node.size());
    for (const std::string* name : {handover ? &hb.handover_to : nullptr, claimant ? &hb.claimant : nullptr}) {
        if (name == nullptr) continue;
        w.u8(static_cast<std::uint8_t>(name->size()));
        w.bytes(name->data(), name->size());
    }
    if (heard_written != 0) {
        w.u8(static_cast<std::uint8_t>(heard_written));
        for (std::size_t i = 0; i < heard; ++i) w.u64(hb.heard[i]);
        if (marker) w.u64(kUnderstandsCurrentMarker);
    }
    if (expected != 0) w.u8(static_cast<std::uint8_t>(expected));
    if (hb.claimant_incarnation) w.u64(*hb.claimant_incarnation);
    if (current) {
        w.u64(hb.maintenance_epoch);
        w.u8(static_cast<std::uint8_t>(release.size()));
        w.bytes(release.data(), release.size());
    }
    if (!groups.groups.empty()) {
        w.u8(static_cast<std::uint8_t>(groups.names.size()));
        for (const NameEntry& e : groups.names) {
            w.u8(static_cast<std::uint8_t>(e.name.size()));
            w.bytes(e.name.data(), e.name.size());
            w.u64(e.incarnation);
            w.u64(e.grant);
        }
        w.u8(static_cast<std::uint8_t>(groups.groups.size()));
        for (std::size_t i = 0; i < groups.groups.size(); ++i) {
            const GroupBeat& g = *groups.groups[i];
            for (int shift = 24; shift >= 0; shift -= 8) w.u8(static_cast<std::uint8_t>(g.group >> shift));
            w.u8(static_cast<std::uint8_t>(g.state));
            auto group_flags = static_cast<std::uint8_t>((g.error_latched ? kGroupFlagErrorLatched : 0) |
                                                         (g.claim_pending ? kGroupFlagClaimPending : 0) |
                                                         (g.aside ? kGroupFlagAside : 0) |
                                                         (groups.claimant[i] != kNoName ? kGroupFlagClaimant : 0) |
                                                         (groups.handover[i] != kNoName ? kGroupFlagHandover : 0));
            w.u8(group_flags);
            std::uint64_t term = g.term;
            while (term >= 0x80) {
                w.u8(static_cast<std::uint8_t>(term | 0x80));
                term >>= 7;
            }
            w.u8(static_cast<std::uint8_t>(term));
            if (groups.claimant[i] != kNoName) w.u8(groups.claimant[i]);
            if (groups.handover[i] != kNoName) w.u8(groups.handover[i]);
        }
    }
    return out;
}

namespace {

// An unsigned LEB128 of the fewest bytes (else the datagram would not
// re-encode to itself) that fits 64 bits. Advances *at.
bool read_varint(std::span<const std::uint8_t> in, std::size_t& at, std::uint64_t& v) {
    v = 0;
    for (std::size_t i = 0; i < kMaxVarintSize; ++i) {
        if (at >= in.size()) return false;
        std::uint8_t byte = in[at++];
        if (i == kMaxVarintSize - 1 && byte > 1) return false;  // beyond 64 bits
        v |= static_cast<std::uint64_t>(byte & 0x7f) << (7 * i);
        if ((byte & 0x80) == 0) return byte != 0 || i == 0;  // a trailing zero byte is overlong
    }
    return false;
}

// The groups' extension (kFlagGroups) at *at; nullopt, or why it is rejected.
std::optional<Reject> read_groups(std::span<const std::uint8_t> in, std::size_t& at, std::vector<GroupBeat>& groups) {
    if (at >= in.size()) return Reject::BadGroupNames;
    std::size_t name_count = in[at++];
    if (name_count > kMaxGroupNames) return Reject::BadGroupNames;
    std::array<NameEntry, kMaxGroupNames> names;
    for (std::size_t i = 0; i < name_count; ++i) {
        if (at >= in.size()) return Reject::BadGroupNames;
        std::size_t length = in[at];
        if (length == 0 || length > kMaxNodeNameLength || in.size() < at + 1 + length + 16)
            return Reject::BadGroupNames;
        names[i].name = std::string_view(reinterpret_cast<const char*>(in.data() + at + 1), length);
        if (!is_valid_node_name(names[i].name)) return Reject::BadGroupNames;
        names[i].incarnation = get_u64(in, at + 1 + length);
        names[i].grant = get_u64(in, at + 1 + length + 8);
        at += 1 + length + 16;
        // encode() writes each triple once.
        for (std::size_t j = 0; j < i; ++j)
            if (names[j] == names[i]) return Reject::BadGroupNames;
    }
    if (at >= in.size()) return Reject::BadGroups;
    std::size_t count = in[at++];
    if (count == 0 || count > kMaxGroups - 1) return Reject::BadGroups;
    groups.resize(count);
    // The table lists names in the order of their first reference: each index
    // is one already used, or the next one.
    std::size_t referenced = 0;
    auto refer = [&](std::size_t index) {
        if (index > referenced || index >= name_count) return false;
        if (index == referenced) ++referenced;
        return true;
    };
    for (std::size_t i = 0; i < count; ++i) {
        GroupBeat& g = groups[i];
        if (in.size() < at + 4 + 1 + 1) return Reject::BadGroups;
        g.group = std::uint32_t{in[at]} << 24 | std::uint32_t{in[at + 1]} << 16 | std::uint32_t{in[at + 2]} << 8 |
                  std::uint32_t{in[at + 3]};
        if (i > 0 && g.group <= groups[i - 1].group) return Reject::BadGroups;  // ascending, none twice
        if (in[at + 4] >= static_cast<std::uint8_t>(NodeState::TimedOut)) return Reject::BadGroups;
        g.state = static_cast<NodeState>(in[at + 4]);
        std::uint8_t flags = in[at + 5];
        if ((flags & ~kKnownGroupFlags) != 0) return Reject::BadGroups;
        g.error_latched = (flags & kGroupFlagErrorLatched) != 0;
        g.claim_pending = (flags & kGroupFlagClaimPending) != 0;
        g.aside = (flags & kGroupFlagAside) != 0;
        at += 6;
        if (!read_varint(in, at, g.term)) return Reject::BadGroups;
        if (flags & kGroupFlagClaimant) {
            if (at >= in.size()) return Reject::BadGroups;
            std::size_t index = in[at++];
            if (!refer(index)) return Reject::BadGroupNames;
            g.claimant = names[index].name;
            g.claimant_incarnation = names[index].incarnation;
            g.grant = names[index].grant;
        }
        if (flags & kGroupFlagHandover) {
            if (at >= in.size()) return Reject::BadGroups;
            std::size_t index = in[at++];
            if (!refer(index) || names[index].incarnation != 0 || names[index].grant != 0)
                return Reject::BadGroupNames;
            g.handover_to = names[index].name;
        }
    }
    if (referenced != name_count) return Reject::BadGroupNames;  // an entry no group refers to
    return std::nullopt;
}

// Decodes into the result's own Decoded (nothing is built twice or moved: every
// peer decodes every heartbeat); nullopt, or why the datagram is rejected.
std::optional<Reject> decode_into(std::span<const std::uint8_t> in, Decoded& d) {
    if (in.size() < kHeaderSize) return Reject::TooShort;
    if (std::memcmp(in.data(), kMagic.data(), kMagic.size()) != 0) return Reject::BadMagic;
    if (in[4] != kVersion && in[4] != kPreviousVersion) return Reject::BadVersion;
    bool current = in[4] == kVersion;
    if (in[5] != kTypeHeartbeat) return Reject::BadType;
    std::uint16_t flags = get_u16(in, 6);
    if ((flags & ~(current ? kKnownFlags : kKnownFlagsPrevious)) != 0) return Reject::UnknownFlags;
    // A node announces its own state; TIMEDOUT is only ever assigned by peers.
    if (in[56] >= static_cast<std::uint8_t>(NodeState::TimedOut)) return Reject::BadState;
    if (in[57] >= kRoleCount) return Reject::BadRole;
    std::size_t name_length = in[58];
    if (name_length == 0 || name_length > kMaxNodeNameLength) return Reject::BadNameLength;
    std::size_t tag_size = (flags & kFlagAuthenticated) ? kAuthTagSize : 0;
    std::size_t body_size = kHeaderSize + name_length;
    Heartbeat& hb = d.heartbeat;
    if ((flags & kFlagHandover) && !read_name(in, body_size, hb.handover_to)) return Reject::BadHandover;
    if ((flags & kFlagClaimant) && !read_name(in, body_size, hb.claimant)) return Reject::BadClaimant;
    if (flags & kFlagHeard) {
        if (in.size() <= body_size) return Reject::BadHeardList;
        std::size_t count = in[body_size];
        if (count == 0 || count > kMaxHeard || in.size() < body_size + 1 + 8 * count) return Reject::BadHeardList;
        hb.heard.reserve(count);
        for (std::size_t i = 0; i < count; ++i) hb.heard.push_back(get_u64(in, body_size + 1 + 8 * i));
        body_size += 1 + 8 * count;
    }
    hb.understands = kVersion;
    if (!current) {
        // The marker goes last and once (where encode() puts it): anything else would not
        // re-encode to the same bytes, so it is no heartbeat of ours.
        auto marker = std::find(hb.heard.begin(), hb.heard.end(), kUnderstandsCurrentMarker);
        if (marker == hb.heard.end()) {
            hb.understands = kPreviousVersion;
        } else if (marker + 1 != hb.heard.end()) {
            return Reject::BadHeardList;
        } else {
            hb.heard.pop_back();
        }
    }
    if (flags & kFlagExpected) {
        if (in.size() <= body_size) return Reject::BadExpectedNodes;
        hb.expected_nodes = in[body_size];
        if (hb.expected_nodes == 0 || hb.expected_nodes > kMaxExpectedNodes) return Reject::BadExpectedNodes;
        body_size += 1;
    }
    if (flags & kFlagClaimantIncarnation) {
        if (in.size() < body_size + 8) return Reject::BadLength;
        hb.claimant_incarnation = get_u64(in, body_size);
        body_size += 8;
    }
    if (current) {
        if (in.size() < body_size + 8 + 1) return Reject::BadLength;
        hb.maintenance_epoch = get_u64(in, body_size);
        std::size_t length = in[body_size + 8];
        if (length == 0 || length > kMaxReleaseLength || in.size() < body_size + 9 + length)
            return Reject::BadRelease;
        hb.release.assign(reinterpret_cast<const char*>(in.data() + body_size + 9), length);
        if (!is_valid_release(hb.release)) return Reject::BadRelease;
        body_size += 9 + length;
        if (flags & kFlagGroups) {
            // Anything after the body but the tag is the extension's.
            if (in.size() < body_size + tag_size) return Reject::BadGroupNames;
            if (auto reject = read_groups(in.first(in.size() - tag_size), body_size, hb.groups)) return reject;
        }
    }
    if (in.size() != body_size + tag_size) return Reject::BadLength;
    hb.node.assign(reinterpret_cast<const char*>(in.data() + kHeaderSize), name_length);
    if (!is_valid_node_name(hb.node)) return Reject::BadNameCharacter;

    hb.version = in[4];
    // Carried by handover_to, claimant, heard, expected_nodes, claimant_incarnation and groups.
    hb.flags = static_cast<std::uint16_t>(
        flags & ~(kFlagHandover | kFlagHeard | kFlagClaimant | kFlagExpected | kFlagClaimantIncarnation | kFlagGroups));
    hb.cluster_id = get_u64(in, 8);
    hb.incarnation = get_u64(in, 16);
    hb.sequence = get_u64(in, 24);
    hb.term = get_u64(in, 32);
    hb.sent_at = get_u64(in, 40);
    hb.grant = get_u64(in, 48);
    hb.state = static_cast<NodeState>(in[56]);
    hb.role = static_cast<Role>(in[57]);
    if (tag_size != 0) {
        d.signed_bytes = in.first(body_size);
        d.auth_tag = in.subspan(body_size);
    }
    return std::nullopt;
}

}  // namespace

DecodeResult decode(std::span<const std::uint8_t> in) {
    DecodeResult result;
    if (auto reject = decode_into(in, result.decoded.emplace())) {
        result.decoded.reset();
        result.reject = *reject;
    }
    return result;
}

}  // namespace freeha::wire
