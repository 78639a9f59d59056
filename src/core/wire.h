// The heartbeat wire format: a versioned binary datagram, encoded and strictly decoded.
//
// Two versions are spoken (see "Versions" below). Layout (big-endian), version 3:
//   0  u8[4] magic "FHA1"        4  u8  version (3 or 2)  5  u8  type (1 = heartbeat)
//   6  u16   flags               8  u64 cluster id (FNV-1a of the cluster name)
//  16  u64   incarnation        24  u64 sequence          32  u64 term
//  40  u64   sent at: the sender's CLOCK_MONOTONIC when it sent this, in us
//  48  u64   grant: a sender that backs a claim (see claimant) states here
//            until when its promise to that claimant lasts, on the claimant's
//            clock: the "sent at" of the newest heartbeat of the claimant it
//            has heard, plus its own DeadTime less a drift allowance; 0 when
//            it promises nothing. Each voter states its own promise, so nodes
//            whose DeadTime= differs (a reload, a mismatched file) stay safe
//  56  u8    state              57  u8  role              58  u8  name length (1..64)
//  59  name bytes [A-Za-z0-9_-]
//  then, only when flags has kFlagHandover: u8 length (1..64) and the name of
//  the node this one hands the services to (a switchover in progress);
//  then, only when flags has kFlagClaimant: u8 length (1..64) and the name of
//  the node whose claim the term field refers to (sent by nodes that hold
//  no services: the best claim they know of, which they thereby support);
//  then, only when flags has kFlagHeard: u8 count (1..64) and that many u64
//  node ids (node_id() of each peer the sender hears), so that receivers
//  count only two-way links towards quorum;
//  then, only when flags has kFlagExpected: u8, the sender's ExpectedNodes=
//  (1..64), so that every node counts quorum against the largest count any
//  node uses (a lowered count takes effect once every node has it). Decoders
//  from before this field reject kFlagExpected as an unknown flag, so a node
//  sends it only while every peer it hears sends it too: in a cluster mixed
//  with such older nodes nobody sends it, and each node counts quorum against
//  its own ExpectedNodes= alone, as those versions did;
//  then, only when flags has kFlagClaimantIncarnation: u64, the incarnation of
//  the claimant named (0 when none is named): a grant backs that incarnation's
//  claim only, so that a grant to a node's earlier run (its clock may have
//  started over since) cannot back the claim of a restarted node. Sent, like
//  kFlagExpected, only while every peer heard sends it too;
//  then, version 3 only (always there): u64, the maintenance epoch (see
//  Node::set_maintenance(): the newest decision on maintenance mode, 0 when
//  none was ever taken; kFlagMaintenance says whether it is on), and u8
//  length (1..32) and the sender's release ("0.2.0": [0-9A-Za-z.+~-]);
//  then, version 3 only, only when flags has kFlagGroups: the service groups
//  other than the default one (whose state, term, grant, claimant, handover,
//  error latch and pending claim are the fields above):
//    a name table: u8 count (0..2 * (kMaxGroups - 1)), then per entry u8
//    length (1..64) and a node name, u64 incarnation and u64 grant: the
//    triple a group names as its claimant (the claimant's incarnation and
//    this sender's grant to it, as the fields above) or, with incarnation
//    and grant 0, as its handover target;
//    u8 group count (1..kMaxGroups - 1), then per group: u32 group id
//    (group_id() of its name), u8 state, u8 group flags (kGroupFlag*), the
//    term as an unsigned LEB128 varint (1..10 bytes), then the u8 name-table
//    index of the claimant if flagged, and of the handover target if flagged.
//  Canonical, so that every datagram decodes to a heartbeat that encodes to
//  the same bytes (the decoder rejects anything else): group ids strictly
//  ascending; a varint of the fewest bytes; the table in the order of first
//  reference (groups in order, the claimant before the handover target),
//  no entry twice, every entry referenced, a handover target's entry with
//  incarnation and grant 0;
//  then, only when flags has kFlagAuthenticated: a 32-byte HMAC-SHA256 tag over
//  every byte before it.
//
// Size. A heartbeat is 59 bytes + its name + 8 per heard id + about 60
// (claimant, release, tag), plus with groups 2 + 7 or more per group (4 id,
// state, flags, a term of 1 byte below 2^7, 2 below 2^14, up to 10; 1 per
// index) and 33 + name length per distinct claim the groups back (name,
// incarnation, grant: one grant per claimant node, shared by its groups).
// The daemon reads kMaxDatagramSize bytes of a datagram. Figures, from
// tests/unit/test_wire.cpp (64 groups, 64 nodes, every name 16 characters,
// 64 heard ids, signed; this node runs one group and backs the others):
// claims of 1 node: 1261 bytes; of 7 nodes: 1459 bytes, the most in one
// Ethernet frame (kEthernetPayload); of 24 nodes: 2020 bytes; the worst
// case, every group on another node: 3274 bytes (three IP fragments,
// reassembled by the kernel). The largest possible
// heartbeat (every name 64 characters, every group with its own claimant and
// handover target): 12190 bytes, one UDP datagram. The cost grows with
// the groups (about 9 bytes each) and with the distinct nodes whose claims
// one node backs (33 + name each), not with nodes x groups.

// Versions. A release decodes its own version and the previous one, and
// speaks its own only while every live peer it hears understands it: a node
// that speaks the previous version while it understands this one says so
// with kUnderstandsCurrentMarker in its heard list (a version-2 decoder
// takes it for the id of a node it does not know, which changes nothing),
// so that once the last node of the previous release has left, every node
// sees that all the others understand the current version, and all switch.
// A version-3 field has no version-2 form: while the cluster speaks version 2
// nobody leaves with kFlagLeaving (a leaving node announces STANDBY in
// standby instead), maintenance mode cannot be turned on, and the heartbeat
// carries the default service group alone (encode() drops the others).
// Service groups are in version 3 because no release has spoken version 3
// yet (0.2.0, NEWS, is not released): 0.1.0 nodes (version 2) still upgrade
// to the release that carries groups in place.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/state.h"

namespace freeha::wire {

// Version 2 added the lease fields (sent at, grant) and kFlagClaimPending;
// version 3 kFlagLeaving, maintenance mode, the sender's release and the
// service groups (kFlagGroups).
inline constexpr std::uint8_t kVersion = 3;
inline constexpr std::uint8_t kPreviousVersion = 2;
// In a version-2 heartbeat's heard list: the sender understands version 3.
// node_id() of ":wire3", a name no node can have (':' is not allowed).
extern const std::uint64_t kUnderstandsCurrentMarker;
inline constexpr std::size_t kMaxReleaseLength = 32;
inline constexpr std::uint8_t kTypeHeartbeat = 1;
inline constexpr std::size_t kHeaderSize = 59;
inline constexpr std::size_t kAuthTagSize = 32;

// Flag bits. Unknown bits are rejected so that a later version can give them meaning.
inline constexpr std::uint16_t kFlagStandby = 1u << 0;        // admin standby: never takes services
inline constexpr std::uint16_t kFlagErrorLatched = 1u << 1;   // error latch set (ERRORED or stopping into it)
inline constexpr std::uint16_t kFlagAuthenticated = 1u << 2;  // an HMAC tag follows the body
inline constexpr std::uint16_t kFlagHandover = 1u << 3;       // a handover target name follows the name
inline constexpr std::uint16_t kFlagHeard = 1u << 4;          // the ids of the nodes the sender hears follow
inline constexpr std::uint16_t kFlagClaimant = 1u << 5;       // the claimant of the announced term follows
inline constexpr std::uint16_t kFlagClaimPending = 1u << 6;   // STARTING, but starthasrv has not run yet
inline constexpr std::uint16_t kFlagExpected = 1u << 7;       // the sender's ExpectedNodes= follows
inline constexpr std::uint16_t kFlagClaimantIncarnation = 1u << 8;  // the claimant's incarnation follows
// Version 3 only:
inline constexpr std::uint16_t kFlagLeaving = 1u << 9;       // the machine shuts down: this is the node's last heartbeat
inline constexpr std::uint16_t kFlagMaintenance = 1u << 10;  // maintenance mode is on (as of the maintenance epoch)
inline constexpr std::uint16_t kFlagGroups = 1u << 11;       // the other service groups follow the release
inline constexpr std::uint16_t kKnownFlagsPrevious = kFlagStandby | kFlagErrorLatched | kFlagAuthenticated |
                                                     kFlagHandover | kFlagHeard | kFlagClaimant | kFlagClaimPending |
                                                     kFlagExpected | kFlagClaimantIncarnation;
// An acknowledgement: sent at once because a claimant's heartbeat renewed a
// promise. A node that holds a group and backs another's answers no reply
// at once (else two such nodes would answer each other without end); sent
// only by nodes with several groups, so never to a release that lacks it.
inline constexpr std::uint16_t kFlagReply = 1u << 12;
// The default group alone stands aside here (kFlagStandby is the whole
// node): it cannot run on this node now (its hooks or target missing, its
// address's device down), while the node's other groups may.
inline constexpr std::uint16_t kFlagDefaultAside = 1u << 13;
inline constexpr std::uint16_t kKnownFlags =
    kKnownFlagsPrevious | kFlagLeaving | kFlagMaintenance | kFlagGroups | kFlagReply | kFlagDefaultAside;
inline constexpr std::size_t kMaxHeard = 64;
inline constexpr unsigned kMaxExpectedNodes = 64;

// Service groups: at most kMaxGroups in one heartbeat, the default group included.
inline constexpr std::size_t kMaxGroups = 64;
// Each distinct (claimant, incarnation, grant) and each handover target once.
inline constexpr std::size_t kMaxGroupNames = 2 * (kMaxGroups - 1);
// Group flag bits (one byte per group); unknown bits are rejected.
inline constexpr std::uint8_t kGroupFlagErrorLatched = 1u << 0;  // as kFlagErrorLatched
inline constexpr std::uint8_t kGroupFlagClaimPending = 1u << 1;  // as kFlagClaimPending
inline constexpr std::uint8_t kGroupFlagClaimant = 1u << 2;      // a name-table index of the claimant follows
inline constexpr std::uint8_t kGroupFlagHandover = 1u << 3;      // a name-table index of the handover target follows
inline constexpr std::uint8_t kGroupFlagAside = 1u << 4;         // the group cannot run on this node now (as kFlagDefaultAside)
inline constexpr std::uint8_t kKnownGroupFlags =
    kGroupFlagErrorLatched | kGroupFlagClaimPending | kGroupFlagClaimant | kGroupFlagHandover | kGroupFlagAside;
inline constexpr std::size_t kMaxVarintSize = 10;  // LEB128 of a u64
// What the daemon reads of one datagram: more than the largest heartbeat
// (12190 bytes, below), so that none arrives cut (a cut one is rejected as
// bad_length) however many groups and claimants it carries.
inline constexpr std::size_t kMaxDatagramSize = 16384;
// UDP payload of one Ethernet frame (1500 - 20 IPv4 - 8 UDP): larger datagrams are IP fragments.
inline constexpr std::size_t kEthernetPayload = 1472;

// A 32-bit FNV-1a of a service group's name: how heartbeats name a group.
// Two groups of one cluster must not share one (the configuration checks).
std::uint32_t group_id(std::string_view group_name);

// One service group other than the default one, as its sender announces it:
// the same facts as the heartbeat's own fields for the default group.
struct GroupBeat {
    std::uint32_t group = 0;  // group_id() of its name
    NodeState state = NodeState::Initial;
    std::uint64_t term = 0;
    // Sent only with a claimant (the encoder drops them without one, so they
    // decode as 0): the claimant's incarnation and this sender's grant to it.
    std::uint64_t grant = 0;
    std::string claimant;  // empty: none
    std::uint64_t claimant_incarnation = 0;
    std::string handover_to;  // empty: none
    bool error_latched = false;
    bool claim_pending = false;
    bool aside = false;  // kGroupFlagAside; the default group's is kFlagDefaultAside in the header

    bool operator==(const GroupBeat&) const = default;
};

struct Heartbeat {
    // The version it is (to be) encoded in; decoded: the one it came in.
    std::uint8_t version = kVersion;
    // The newest version the sender understands: kVersion for version 3, and
    // for version 2 when the heard list had kUnderstandsCurrentMarker (which
    // encode() adds and decode() takes out of `heard`).
    std::uint8_t understands = kVersion;
    std::uint64_t cluster_id = 0;
    std::uint64_t incarnation = 0;
    std::uint64_t sequence = 0;
    std::uint64_t term = 0;
    std::uint64_t sent_at = 0;  // the sender's monotonic clock, us
    std::uint64_t grant = 0;    // the end of the sender's promise to the claimant, on its clock; 0: none
    NodeState state = NodeState::Initial;
    Role role = Role::Member;
    std::uint16_t flags = 0;
    std::string node;
    std::string handover_to;  // non-empty: kFlagHandover is set on the wire
    std::string claimant;     // non-empty: kFlagClaimant is set on the wire
    std::vector<std::uint64_t> heard;  // non-empty: kFlagHeard is set on the wire
    unsigned expected_nodes = 0;       // the sender's ExpectedNodes=; non-zero: kFlagExpected is set on the wire
    // The incarnation of `claimant` (0: none named); set: kFlagClaimantIncarnation is set on the wire.
    std::optional<std::uint64_t> claimant_incarnation;
    // Version 3 only (encode() drops them, and kFlagLeaving and
    // kFlagMaintenance, from a version-2 heartbeat, which carries the default group alone):
    std::uint64_t maintenance_epoch = 0;
    std::string release;  // the sender's release, 1..kMaxReleaseLength characters
    // The service groups other than the default one, ascending by id (encode()
    // sorts them, keeps the first of equal ids and at most kMaxGroups - 1);
    // non-empty: kFlagGroups is set on the wire.
    std::vector<GroupBeat> groups;

    bool operator==(const Heartbeat&) const = default;
};

// Why a datagram was rejected. Each reason is a counter in the daemon's status.
enum class Reject : std::uint8_t {
    TooShort,
    BadMagic,
    BadVersion,
    BadType,
    UnknownFlags,
    BadState,
    BadRole,
    BadNameLength,
    BadNameCharacter,
    BadLength,
    BadHandover,
    BadHeardList,
    BadClaimant,
    BadExpectedNodes,
    BadRelease,
    BadGroups,      // the group list: count, order, state, flags, term, cut short
    BadGroupNames,  // the name table of the groups, or an index into it
};
inline constexpr int kRejectCount = 17;
static_assert(kRejectCount == static_cast<int>(Reject::BadGroupNames) + 1);
std::string_view to_string(Reject r);

struct Decoded {
    Heartbeat heartbeat;
    // Present only when the datagram carries kFlagAuthenticated: the bytes the
    // tag covers and the tag itself (views into the decoded buffer).
    std::span<const std::uint8_t> signed_bytes;
    std::span<const std::uint8_t> auth_tag;
};

struct DecodeResult {
    std::optional<Decoded> decoded;
    Reject reject = Reject::TooShort;  // meaningful only when !decoded
};

// Encodes the body. kFlagHandover, kFlagClaimant, kFlagHeard, kFlagExpected and
// kFlagClaimantIncarnation follow hb.handover_to, hb.claimant, hb.heard,
// hb.expected_nodes and hb.claimant_incarnation, whatever
// hb.flags says (at most kMaxHeard ids are written; expected_nodes is capped at kMaxExpectedNodes).
// kFlagAuthenticated is cleared: sign() sets it and appends the tag.
// hb.version says which version; a release that is not a valid one
// (is_valid_release()) is sent as "unknown".
std::vector<std::uint8_t> encode(const Heartbeat& hb);

// 1..kMaxReleaseLength characters of [0-9A-Za-z.+~-].
bool is_valid_release(std::string_view release);

DecodeResult decode(std::span<const std::uint8_t> datagram);

}  // namespace freeha::wire
