#include <gtest/gtest.h>

#include "core/node_name.h"
#include "core/wire.h"

using namespace freeha;
using namespace freeha::wire;

namespace {

// A version-2 heartbeat of a node of that release (the layout most tests
// below check); current() is the same as version 3.
Heartbeat sample() {
    Heartbeat hb;
    hb.version = kPreviousVersion;
    hb.understands = kPreviousVersion;
    hb.cluster_id = cluster_id("prod");
    hb.incarnation = 0x0102030405060708ULL;
    hb.sequence = 42;
    hb.term = 7;
    hb.sent_at = 0x1112131415161718ULL;
    hb.grant = 0x2122232425262728ULL;
    hb.state = NodeState::Running;
    hb.role = Role::Member;
    hb.flags = kFlagErrorLatched;
    hb.node = "alpha-1_x";
    return hb;
}

Heartbeat current() {
    Heartbeat hb = sample();
    hb.version = kVersion;
    hb.understands = kVersion;
    hb.maintenance_epoch = 0x3132333435363738ULL;
    hb.release = "0.2.0~rc1";
    hb.flags |= kFlagMaintenance;
    return hb;
}

}  // namespace

TEST(Wire, RoundTripsEveryStateAndRole) {
    for (int s = 0; s < kNodeStateCount - 1; ++s) {  // TIMEDOUT is never announced
        for (int r = 0; r < kRoleCount; ++r) {
            Heartbeat hb = sample();
            hb.state = static_cast<NodeState>(s);
            hb.role = static_cast<Role>(r);
            auto bytes = encode(hb);
            auto result = decode(bytes);
            ASSERT_TRUE(result.decoded) << to_string(result.reject);
            EXPECT_EQ(result.decoded->heartbeat, hb);
            EXPECT_TRUE(result.decoded->auth_tag.empty());
        }
    }
}

TEST(Wire, RoundTripsNamesOfEveryLength) {
    for (std::size_t len = 1; len <= 64; ++len) {
        Heartbeat hb = sample();
        hb.node = std::string(len, 'n');
        auto result = decode(encode(hb));
        ASSERT_TRUE(result.decoded);
        EXPECT_EQ(result.decoded->heartbeat.node, hb.node);
    }
}

TEST(Wire, EncodesBigEndianAtFixedOffsets) {
    auto bytes = encode(sample());
    ASSERT_EQ(bytes.size(), kHeaderSize + 9);
    EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 4), "FHA1");
    EXPECT_EQ(bytes[4], kPreviousVersion);
    EXPECT_EQ(bytes[5], kTypeHeartbeat);
    EXPECT_EQ(bytes[7], kFlagErrorLatched);
    EXPECT_EQ(bytes[16], 0x01);  // incarnation, most significant byte first
    EXPECT_EQ(bytes[23], 0x08);
    EXPECT_EQ(bytes[39], 7);  // term's last byte
    EXPECT_EQ(bytes[40], 0x11);  // sent at
    EXPECT_EQ(bytes[55], 0x28);  // echo's last byte
    EXPECT_EQ(bytes[56], static_cast<std::uint8_t>(NodeState::Running));
    EXPECT_EQ(bytes[58], 9);  // name length
}

TEST(Wire, RoundTripsAHandoverTarget) {
    Heartbeat hb = sample();
    hb.handover_to = "charlie";
    auto bytes = encode(hb);
    EXPECT_EQ(bytes.size(), kHeaderSize + 9 + 1 + 7);
    EXPECT_EQ(bytes[7] & kFlagHandover, kFlagHandover);
    auto result = decode(bytes);
    ASSERT_TRUE(result.decoded) << to_string(result.reject);
    EXPECT_EQ(result.decoded->heartbeat, hb);
    // The flag follows handover_to, whatever the caller put in flags.
    hb.handover_to.clear();
    hb.flags |= kFlagHandover;
    EXPECT_EQ(encode(hb)[7] & kFlagHandover, 0);
}

Heartbeat with_handover() {
    Heartbeat hb = sample();
    hb.handover_to = "bravo";
    return hb;
}

TEST(Wire, RejectsEveryMalformedHandover) {
    auto body = encode(sample());
    auto flagged = body;
    flagged[7] |= kFlagHandover;
    EXPECT_EQ(decode(flagged).reject, Reject::BadHandover) << "flag without a name";
    auto bytes = encode(with_handover());
    std::size_t at = body.size();  // the handover length byte
    auto zero = bytes;
    zero[at] = 0;
    EXPECT_EQ(decode(zero).reject, Reject::BadHandover) << "empty name";
    auto longer = bytes;
    longer[at] = 65;
    EXPECT_EQ(decode(longer).reject, Reject::BadHandover) << "name over 64";
    auto dot = bytes;
    dot[at + 1] = '.';
    EXPECT_EQ(decode(dot).reject, Reject::BadHandover) << "bad character";
    auto cut = bytes;
    cut.pop_back();
    EXPECT_EQ(decode(cut).reject, Reject::BadHandover) << "cut short";
    for (std::size_t n = 0; n < bytes.size(); ++n)
        EXPECT_FALSE(decode(std::span(bytes).first(n)).decoded) << "length " << n;
}

TEST(Wire, TheHeardListRoundTripsAndIsCheckedStrictly) {
    Heartbeat hb = sample();
    hb.handover_to = "bravo";
    for (std::size_t n = 1; n <= kMaxHeard; ++n) hb.heard.push_back(node_id("node" + std::to_string(n)));
    auto bytes = encode(hb);
    auto result = decode(bytes);
    ASSERT_TRUE(result.decoded) << to_string(result.reject);
    EXPECT_EQ(result.decoded->heartbeat, hb);
    EXPECT_EQ(bytes[7] & kFlagHeard, kFlagHeard);

    hb.heard.clear();
    EXPECT_EQ(encode(hb)[7] & kFlagHeard, 0) << "an empty list is not sent";

    hb.heard = {1, 2};
    auto two = encode(hb);
    std::size_t count_at = two.size() - 1 - 16;
    auto zero = two;
    zero[count_at] = 0;
    EXPECT_EQ(decode(zero).reject, Reject::BadHeardList) << "count 0";
    auto too_many = two;
    too_many[count_at] = kMaxHeard + 1;
    EXPECT_EQ(decode(too_many).reject, Reject::BadHeardList) << "count above the maximum";
    auto cut = two;
    cut.pop_back();
    EXPECT_EQ(decode(cut).reject, Reject::BadHeardList) << "cut short";
    auto flag_only = encode(sample());
    flag_only[7] |= kFlagHeard;
    EXPECT_EQ(decode(flag_only).reject, Reject::BadHeardList) << "flag without a list";
}

TEST(Wire, TheClaimantRoundTripsAndIsCheckedStrictly) {
    Heartbeat hb = sample();
    hb.state = NodeState::Standby;
    hb.claimant = "charlie";
    hb.heard = {7};
    auto bytes = encode(hb);
    auto result = decode(bytes);
    ASSERT_TRUE(result.decoded) << to_string(result.reject);
    EXPECT_EQ(result.decoded->heartbeat, hb);
    std::size_t at = kHeaderSize + hb.node.size();
    auto zero = bytes;
    zero[at] = 0;
    EXPECT_EQ(decode(zero).reject, Reject::BadClaimant) << "empty name";
    auto dot = bytes;
    dot[at + 2] = '.';
    EXPECT_EQ(decode(dot).reject, Reject::BadClaimant) << "bad character";
    auto flag_only = encode(sample());
    flag_only[7] |= kFlagClaimant;
    EXPECT_EQ(decode(flag_only).reject, Reject::BadClaimant) << "flag without a name";
}

TEST(Wire, ExpectedNodesRoundTripsLastAndIsCheckedStrictly) {
    Heartbeat hb = sample();
    hb.claimant = "charlie";
    hb.heard = {7, 8};
    hb.expected_nodes = 5;
    auto bytes = encode(hb);
    auto result = decode(bytes);
    ASSERT_TRUE(result.decoded) << to_string(result.reject);
    EXPECT_EQ(result.decoded->heartbeat, hb);
    EXPECT_EQ(bytes[7] & kFlagExpected, kFlagExpected);
    EXPECT_EQ(bytes.back(), 5) << "after the heard list";

    hb.expected_nodes = 0;
    EXPECT_EQ(encode(hb)[7] & kFlagExpected, 0) << "0 (not stated) is not sent";
    hb.expected_nodes = 1000;
    EXPECT_EQ(encode(hb).back(), kMaxExpectedNodes) << "capped";

    auto zero = bytes;
    zero.back() = 0;
    EXPECT_EQ(decode(zero).reject, Reject::BadExpectedNodes) << "0";
    auto too_many = bytes;
    too_many.back() = kMaxExpectedNodes + 1;
    EXPECT_EQ(decode(too_many).reject, Reject::BadExpectedNodes) << "above the maximum";
    auto flag_only = encode(sample());
    flag_only[7] |= kFlagExpected;
    EXPECT_EQ(decode(flag_only).reject, Reject::BadExpectedNodes) << "flag without the count";
    auto trailing = bytes;
    trailing.push_back(3);
    EXPECT_EQ(decode(trailing).reject, Reject::BadLength);
}

TEST(Wire, TheClaimantIncarnationRoundTripsLastAndIsCheckedStrictly) {
    Heartbeat hb = sample();
    hb.claimant = "charlie";
    hb.expected_nodes = 5;
    hb.claimant_incarnation = 0x0102030405060708ULL;
    auto bytes = encode(hb);
    auto result = decode(bytes);
    ASSERT_TRUE(result.decoded) << to_string(result.reject);
    EXPECT_EQ(result.decoded->heartbeat, hb);
    EXPECT_EQ(bytes[6] & (kFlagClaimantIncarnation >> 8), kFlagClaimantIncarnation >> 8);
    EXPECT_EQ(std::vector<std::uint8_t>(bytes.end() - 9, bytes.end()),
              (std::vector<std::uint8_t>{5, 1, 2, 3, 4, 5, 6, 7, 8}))
        << "after ExpectedNodes=";
    hb.claimant_incarnation = 0;  // names no claimant, but says the sender can name one
    EXPECT_EQ(decode(encode(hb)).decoded->heartbeat.claimant_incarnation, std::optional<std::uint64_t>(0));
    hb.claimant_incarnation.reset();
    EXPECT_EQ(encode(hb)[6] & (kFlagClaimantIncarnation >> 8), 0) << "not stated: not sent";

    auto flag_only = encode(sample());
    flag_only[6] |= kFlagClaimantIncarnation >> 8;
    EXPECT_EQ(decode(flag_only).reject, Reject::BadLength) << "flag without the incarnation";
    auto short_one = bytes;
    short_one.pop_back();
    EXPECT_EQ(decode(short_one).reject, Reject::BadLength);
}

TEST(Wire, EncodeNeverSetsTheAuthenticatedFlagItself) {
    Heartbeat hb = sample();
    hb.flags |= kFlagAuthenticated;
    auto bytes = encode(hb);
    EXPECT_EQ(bytes[7] & kFlagAuthenticated, 0);
    EXPECT_TRUE(decode(bytes).decoded);
}

TEST(Wire, AnAuthenticatedDatagramExposesItsTagAndSignedBytes) {
    auto bytes = encode(sample());
    bytes[7] |= kFlagAuthenticated;
    std::size_t body = bytes.size();
    bytes.resize(body + kAuthTagSize, 0xab);
    auto result = decode(bytes);
    ASSERT_TRUE(result.decoded);
    EXPECT_EQ(result.decoded->signed_bytes.size(), body);
    EXPECT_EQ(result.decoded->auth_tag.size(), kAuthTagSize);
    EXPECT_EQ(result.decoded->auth_tag[0], 0xab);
}

struct Malformed {
    const char* what;
    std::function<void(std::vector<std::uint8_t>&)> mutate;
    Reject expected;
};

class WireMalformed : public ::testing::TestWithParam<Malformed> {};

TEST_P(WireMalformed, IsRejectedWithItsReason) {
    auto bytes = encode(sample());
    GetParam().mutate(bytes);
    auto result = decode(bytes);
    EXPECT_FALSE(result.decoded);
    EXPECT_EQ(result.reject, GetParam().expected) << GetParam().what << ": got " << to_string(result.reject);
}

INSTANTIATE_TEST_SUITE_P(
    EveryForm, WireMalformed,
    ::testing::Values(
        Malformed{"empty", [](auto& b) { b.clear(); }, Reject::TooShort},
        Malformed{"one byte short of a header", [](auto& b) { b.resize(kHeaderSize - 1); }, Reject::TooShort},
        Malformed{"bad magic", [](auto& b) { b[0] = 'X'; }, Reject::BadMagic},
        Malformed{"version 1 (before leases)", [](auto& b) { b[4] = 1; }, Reject::BadVersion},
        Malformed{"version 4 (a later release)", [](auto& b) { b[4] = 4; }, Reject::BadVersion},
        Malformed{"a version-2 body labelled version 3", [](auto& b) { b[4] = 3; }, Reject::BadLength},
        Malformed{"version 0", [](auto& b) { b[4] = 0; }, Reject::BadVersion},
        Malformed{"unknown type", [](auto& b) { b[5] = 9; }, Reject::BadType},
        Malformed{"unknown flag bit", [](auto& b) { b[6] = 0x80; }, Reject::UnknownFlags},
        Malformed{"announces TIMEDOUT", [](auto& b) { b[56] = static_cast<std::uint8_t>(NodeState::TimedOut); },
                  Reject::BadState},
        Malformed{"state out of range", [](auto& b) { b[56] = 200; }, Reject::BadState},
        Malformed{"role out of range", [](auto& b) { b[57] = 2; }, Reject::BadRole},
        Malformed{"empty name", [](auto& b) { b[58] = 0; }, Reject::BadNameLength},
        Malformed{"name longer than 64", [](auto& b) { b[58] = 65; }, Reject::BadNameLength},
        Malformed{"trailing byte", [](auto& b) { b.push_back(0); }, Reject::BadLength},
        Malformed{"name cut short", [](auto& b) { b.pop_back(); }, Reject::BadLength},
        Malformed{"auth flag without tag", [](auto& b) { b[7] |= kFlagAuthenticated; }, Reject::BadLength},
        Malformed{"name with a dot", [](auto& b) { b[kHeaderSize + 1] = '.'; }, Reject::BadNameCharacter},
        Malformed{"name with NUL", [](auto& b) { b[kHeaderSize] = 0; }, Reject::BadNameCharacter},
        Malformed{"name with high byte", [](auto& b) { b[kHeaderSize] = 0xc3; }, Reject::BadNameCharacter}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

TEST(Wire, EveryTruncationIsRejectedNeverCrashes) {
    auto bytes = encode(sample());
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        std::vector<std::uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
        EXPECT_FALSE(decode(cut).decoded) << "length " << n;
    }
}

TEST(NodeName, FollowsFreeHAsHostnameRule) {
    EXPECT_EQ(node_name_from_hostname("alpha.example.com"), "alpha");
    EXPECT_EQ(node_name_from_hostname("db-2_b"), "db-2_b");
    EXPECT_EQ(node_name_from_hostname("x y"), "x");
    EXPECT_TRUE(is_valid_node_name("a"));
    EXPECT_FALSE(is_valid_node_name(""));
    EXPECT_FALSE(is_valid_node_name(std::string(65, 'a')));
    EXPECT_FALSE(is_valid_node_name("a.b"));
}

TEST(NodeName, ElectionOrderIsCaseInsensitiveAndTotal) {
    EXPECT_TRUE(node_name_before("Alpha", "beta"));
    EXPECT_TRUE(node_name_before("alpha", "Beta"));
    EXPECT_FALSE(node_name_before("beta", "ALPHA"));
    // Same letters, different case: still a strict order every node agrees on.
    EXPECT_NE(node_name_before("alpha", "ALPHA"), node_name_before("ALPHA", "alpha"));
    EXPECT_TRUE(node_name_before("node-1", "node-2"));
    EXPECT_FALSE(node_name_before("a", "a"));
}

// --- version 3, and the two versions side by side -----------------------------

TEST(WireVersions, RoundTripsVersion3WithItsTail) {
    Heartbeat hb = current();
    hb.flags |= kFlagLeaving;
    auto bytes = encode(hb);
    ASSERT_EQ(bytes.size(), kHeaderSize + 9 + 8 + 1 + 9);
    EXPECT_EQ(bytes[4], kVersion);
    EXPECT_EQ(bytes[kHeaderSize + 9], 0x31);  // the maintenance epoch, most significant byte first
    EXPECT_EQ(bytes[kHeaderSize + 9 + 8], 9);  // the release's length
    auto result = decode(bytes);
    ASSERT_TRUE(result.decoded) << to_string(result.reject);
    EXPECT_EQ(result.decoded->heartbeat, hb);
}

TEST(WireVersions, AVersion2HeartbeatDropsWhatOnlyVersion3Has) {
    Heartbeat hb = current();
    hb.version = kPreviousVersion;
    hb.flags |= kFlagLeaving;
    auto result = decode(encode(hb));
    ASSERT_TRUE(result.decoded) << to_string(result.reject);
    const Heartbeat& got = result.decoded->heartbeat;
    EXPECT_EQ(got.version, kPreviousVersion);
    EXPECT_EQ(got.flags & (kFlagLeaving | kFlagMaintenance), 0);
    EXPECT_EQ(got.maintenance_epoch, 0u);
    EXPECT_EQ(got.release, "");
}

TEST(WireVersions, AVersion2SenderThatUnderstandsVersion3SaysSoInItsHeardList) {
    Heartbeat hb = sample();
    hb.understands = kVersion;
    hb.heard = {node_id("bravo")};
    auto bytes = encode(hb);
    EXPECT_EQ(bytes.size(), kHeaderSize + 9 + 1 + 2 * 8);  // the marker is one more id
    auto result = decode(bytes);
    ASSERT_TRUE(result.decoded) << to_string(result.reject);
    EXPECT_EQ(result.decoded->heartbeat.understands, kVersion);
    EXPECT_EQ(result.decoded->heartbeat.heard, hb.heard);  // taken out again
    // Alone (nothing heard yet) it is still sent.
    hb.heard.clear();
    result = decode(encode(hb));
    ASSERT_TRUE(result.decoded);
    EXPECT_EQ(result.decoded->heartbeat.understands, kVersion);
    EXPECT_TRUE(result.decoded->heartbeat.heard.empty());
    // Without it, the sender is of the previous release.
    hb.understands = kPreviousVersion;
    result = decode(encode(hb));
    ASSERT_TRUE(result.decoded);
    EXPECT_EQ(result.decoded->heartbeat.understands, kPreviousVersion);
}

TEST(WireVersions, AVersion2MarkerGoesLastAndOnce) {
    // Anything else would decode to a heartbeat that encodes to other bytes (the fuzzer's finding).
    Heartbeat hb = sample();
    hb.heard = {kUnderstandsCurrentMarker, node_id("bravo")};
    EXPECT_EQ(decode(encode(hb)).reject, Reject::BadHeardList);
    hb.understands = kVersion;
    hb.heard = {node_id("bravo"), kUnderstandsCurrentMarker};  // and encode() adds a second one
    EXPECT_EQ(decode(encode(hb)).reject, Reject::BadHeardList);
}

TEST(WireVersions, TheMarkerIsNoNodesId) {
    EXPECT_EQ(kUnderstandsCurrentMarker, node_id(":wire3"));
    EXPECT_FALSE(is_valid_node_name(":wire3"));
}

TEST(WireVersions, Version3FlagsInAVersion2HeartbeatAreUnknown) {
    auto bytes = encode(sample());
    bytes[6] = static_cast<std::uint8_t>(kFlagMaintenance >> 8);
    EXPECT_EQ(decode(bytes).reject, Reject::UnknownFlags);
}

TEST(WireVersions, AnUnknownVersionIsRejected) {
    for (std::uint8_t version : {std::uint8_t{1}, std::uint8_t{4}, std::uint8_t{255}}) {
        auto bytes = encode(current());
        bytes[4] = version;
        EXPECT_EQ(decode(bytes).reject, Reject::BadVersion) << int(version);
    }
}

TEST(WireVersions, AVersion3TailMustBeCompleteAndValid) {
    auto bytes = encode(current());
    std::size_t tail = kHeaderSize + 9;
    for (std::size_t cut = tail; cut < bytes.size(); ++cut) {
        auto result = decode(std::span(bytes).first(cut));
        EXPECT_FALSE(result.decoded) << cut;
    }
    auto bad = bytes;
    bad[tail + 8] = 0;  // an empty release
    EXPECT_EQ(decode(bad).reject, Reject::BadRelease);
    bad = bytes;
    bad[tail + 8] = 40;  // longer than allowed (and than what follows)
    EXPECT_EQ(decode(bad).reject, Reject::BadRelease);
    bad = bytes;
    bad[tail + 9] = '/';
    EXPECT_EQ(decode(bad).reject, Reject::BadRelease);
}

TEST(WireVersions, AnInvalidReleaseIsSentAsUnknown) {
    Heartbeat hb = current();
    hb.release = "0.2.0 (local build)";
    auto result = decode(encode(hb));
    ASSERT_TRUE(result.decoded);
    EXPECT_EQ(result.decoded->heartbeat.release, "unknown");
    EXPECT_TRUE(is_valid_release("0.2.0+git20261202~1-a"));
    EXPECT_FALSE(is_valid_release(std::string(kMaxReleaseLength + 1, '1')));
}

// --- service groups (version 3's kFlagGroups) ---------------------------------

namespace {

// Three groups: one this sender runs, two whose claim of bravo it backs with
// one grant (one name-table entry), the last handed over to charlie.
Heartbeat with_groups() {
    Heartbeat hb = current();
    GroupBeat running;
    running.group = 10;
    running.state = NodeState::Running;
    running.term = 5;
    running.error_latched = true;
    GroupBeat backing;
    backing.group = 20;
    backing.state = NodeState::Standby;
    backing.term = 300;  // two varint bytes
    backing.claimant = "bravo";
    backing.claimant_incarnation = 7;
    backing.grant = 9;
    GroupBeat handing = backing;
    handing.group = 30;
    handing.state = NodeState::Stopping;
    handing.handover_to = "charlie";
    handing.claim_pending = true;
    hb.groups = {running, backing, handing};
    return hb;
}

// Where the extension starts: the end of the same heartbeat without groups.
std::size_t extension_at(Heartbeat hb) {
    hb.groups.clear();
    return encode(hb).size();
}

// The offsets of with_groups()'s extension, relative to extension_at().
constexpr std::size_t kNameCount = 0;
constexpr std::size_t kFirstName = 1;                     // "bravo": 1 + 5 + 16 bytes
constexpr std::size_t kSecondName = kFirstName + 22;      // "charlie": 1 + 7 + 16 bytes
constexpr std::size_t kGroupCount = kSecondName + 24;
constexpr std::size_t kGroup0 = kGroupCount + 1;          // id, state, flags, term: 7 bytes
constexpr std::size_t kGroup1 = kGroup0 + 7;              // id, state, flags, 2-byte term, claimant: 9 bytes
constexpr std::size_t kGroup2 = kGroup1 + 9;              // ... and the handover target: 10 bytes
constexpr std::size_t kExtensionEnd = kGroup2 + 10;

void put_u32(std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + i] = static_cast<std::uint8_t>(v >> (24 - 8 * i));
}

std::uint16_t get_flags(const std::vector<std::uint8_t>& b) { return static_cast<std::uint16_t>(b[6] << 8 | b[7]); }

}  // namespace

TEST(WireGroups, GroupIdIsFnv1a32OfTheName) {
    EXPECT_EQ(group_id(""), 0x811c9dc5u);
    EXPECT_EQ(group_id("a"), 0xe40c292cu);
    EXPECT_EQ(group_id("foobar"), 0xbf9cf968u);
    EXPECT_NE(group_id("web"), group_id("Web"));
}

TEST(WireGroups, RoundTripWithTheLayoutOfWireH) {
    Heartbeat hb = with_groups();
    auto bytes = encode(hb);
    std::size_t at = extension_at(hb);
    ASSERT_EQ(bytes.size(), at + kExtensionEnd);
    EXPECT_EQ(get_flags(bytes) & kFlagGroups, kFlagGroups);
    EXPECT_EQ(bytes[at + kNameCount], 2) << "bravo's claim once, for both groups that back it";
    EXPECT_EQ(std::string(bytes.begin() + at + kFirstName + 1, bytes.begin() + at + kFirstName + 6), "bravo");
    EXPECT_EQ(bytes[at + kFirstName + 6 + 7], 7) << "incarnation, big-endian";
    EXPECT_EQ(bytes[at + kFirstName + 6 + 15], 9) << "grant";
    EXPECT_EQ(bytes[at + kGroupCount], 3);
    EXPECT_EQ(bytes[at + kGroup0 + 3], 10) << "group id, big-endian";
    EXPECT_EQ(bytes[at + kGroup0 + 4], static_cast<std::uint8_t>(NodeState::Running));
    EXPECT_EQ(bytes[at + kGroup0 + 5], kGroupFlagErrorLatched);
    EXPECT_EQ(bytes[at + kGroup0 + 6], 5) << "term";
    EXPECT_EQ(bytes[at + kGroup1 + 5], kGroupFlagClaimant);
    EXPECT_EQ(bytes[at + kGroup1 + 6], 0xac) << "300 in LEB128, low bits first";
    EXPECT_EQ(bytes[at + kGroup1 + 7], 0x02);
    EXPECT_EQ(bytes[at + kGroup1 + 8], 0) << "claimant: entry 0";
    EXPECT_EQ(bytes[at + kGroup2 + 5], kGroupFlagClaimPending | kGroupFlagClaimant | kGroupFlagHandover);
    EXPECT_EQ(bytes[at + kGroup2 + 8], 0);
    EXPECT_EQ(bytes[at + kGroup2 + 9], 1) << "handover target: entry 1";
    auto result = decode(bytes);
    ASSERT_TRUE(result.decoded) << to_string(result.reject);
    EXPECT_EQ(result.decoded->heartbeat, hb);
}

TEST(WireGroups, AGroupStandsAsideAloneAndTheDefaultGroupInTheHeader) {
    Heartbeat hb = with_groups();
    hb.groups[1].aside = true;
    hb.flags |= kFlagDefaultAside;
    auto bytes = encode(hb);
    std::size_t at = extension_at(hb);
    EXPECT_EQ(bytes[at + kGroup1 + 5], kGroupFlagClaimant | kGroupFlagAside);
    EXPECT_EQ(get_flags(bytes) & kFlagDefaultAside, kFlagDefaultAside);
    auto result = decode(bytes);
    ASSERT_TRUE(result.decoded) << to_string(result.reject);
    EXPECT_EQ(result.decoded->heartbeat, hb);
    // Version 2 carries neither: the sender stands aside there with kFlagStandby (Node::own_flags).
    hb.version = kPreviousVersion;
    result = decode(encode(hb));
    ASSERT_TRUE(result.decoded) << to_string(result.reject);
    EXPECT_EQ(result.decoded->heartbeat.flags & kFlagDefaultAside, 0);
    EXPECT_TRUE(result.decoded->heartbeat.groups.empty());
}

TEST(WireGroups, ASignedHeartbeatCoversTheGroups) {
    auto bytes = encode(with_groups());
    std::size_t body = bytes.size();
    bytes[7] |= kFlagAuthenticated;
    bytes.resize(body + kAuthTagSize, 0xab);
    auto result = decode(bytes);
    ASSERT_TRUE(result.decoded) << to_string(result.reject);
    EXPECT_EQ(result.decoded->signed_bytes.size(), body);
    EXPECT_EQ(result.decoded->heartbeat.groups, with_groups().groups);
    // One byte short of the tag: the extension cannot borrow from it.
    bytes.pop_back();
    EXPECT_FALSE(decode(bytes).decoded);
}

TEST(WireGroups, TermsOfEveryVarintLengthRoundTrip) {
    for (std::uint64_t term : {std::uint64_t{0}, std::uint64_t{127}, std::uint64_t{128}, std::uint64_t{16383},
                               std::uint64_t{16384}, std::uint64_t{1} << 63, ~std::uint64_t{0}}) {
        Heartbeat hb = with_groups();
        hb.groups[0].term = term;
        auto result = decode(encode(hb));
        ASSERT_TRUE(result.decoded) << term << ": " << to_string(result.reject);
        EXPECT_EQ(result.decoded->heartbeat.groups[0].term, term);
    }
    Heartbeat hb = with_groups();
    hb.groups[0].term = ~std::uint64_t{0};
    EXPECT_EQ(encode(hb).size(), encode(with_groups()).size() + kMaxVarintSize - 1);
}

TEST(WireGroups, EncodeSortsKeepsTheFirstOfEqualIdsAndCaps) {
    Heartbeat hb = with_groups();
    Heartbeat shuffled = hb;
    std::swap(shuffled.groups[0], shuffled.groups[2]);
    GroupBeat twin = hb.groups[1];
    twin.term = 1;
    shuffled.groups.push_back(twin);  // a second group 20: dropped
    EXPECT_EQ(encode(shuffled), encode(hb));

    hb.groups.clear();
    for (std::uint32_t id = 1; id <= 2 * kMaxGroups; ++id) {
        GroupBeat g;
        g.group = id;
        hb.groups.push_back(g);
    }
    auto result = decode(encode(hb));
    ASSERT_TRUE(result.decoded) << to_string(result.reject);
    ASSERT_EQ(result.decoded->heartbeat.groups.size(), kMaxGroups - 1) << "the default group is the 64th";
    EXPECT_EQ(result.decoded->heartbeat.groups.back().group, kMaxGroups - 1);
}

TEST(WireGroups, WithoutAClaimantNoGrantIsSent) {
    Heartbeat hb = with_groups();
    hb.groups[0].grant = 99;
    hb.groups[0].claimant_incarnation = 98;
    auto result = decode(encode(hb));
    ASSERT_TRUE(result.decoded);
    EXPECT_EQ(result.decoded->heartbeat.groups[0], with_groups().groups[0]);
}

TEST(WireGroups, OneNameEntryPerDistinctClaimAndHandoverTarget) {
    Heartbeat hb = with_groups();
    std::size_t base = encode(hb).size();
    hb.groups[2].grant = 10;  // another grant to bravo: another entry
    EXPECT_EQ(encode(hb).size(), base + 22);
    hb = with_groups();
    hb.groups[2].handover_to = "bravo";  // a handover target is (name, 0, 0): not bravo's claim
    auto bytes = encode(hb);
    EXPECT_EQ(bytes.size(), base - 2);
    auto result = decode(bytes);
    ASSERT_TRUE(result.decoded) << to_string(result.reject);
    EXPECT_EQ(result.decoded->heartbeat, hb);
    // A claimant whose incarnation and grant are 0 shares the handover target's entry.
    hb.groups[1].claimant_incarnation = 0;
    hb.groups[1].grant = 0;
    hb.groups[2].claimant = "charlie";
    hb.groups[2].claimant_incarnation = 0;
    hb.groups[2].grant = 0;
    hb.groups[2].handover_to = "bravo";
    bytes = encode(hb);
    EXPECT_EQ(bytes[extension_at(hb)], 2);
    result = decode(bytes);
    ASSERT_TRUE(result.decoded) << to_string(result.reject);
    EXPECT_EQ(result.decoded->heartbeat, hb);
}

TEST(WireGroups, NoGroupsNoFlagAndAVersion2HeartbeatCarriesNone) {
    Heartbeat hb = current();
    EXPECT_EQ(get_flags(encode(hb)) & kFlagGroups, 0);
    hb = with_groups();
    hb.flags |= kFlagGroups;
    hb.groups.clear();
    EXPECT_EQ(get_flags(encode(hb)) & kFlagGroups, 0) << "the flag follows the list";

    hb = with_groups();
    hb.version = kPreviousVersion;
    auto bytes = encode(hb);
    EXPECT_EQ(get_flags(bytes) & kFlagGroups, 0);
    auto result = decode(bytes);
    ASSERT_TRUE(result.decoded) << to_string(result.reject);
    EXPECT_TRUE(result.decoded->heartbeat.groups.empty());
    Heartbeat without = with_groups();
    without.version = kPreviousVersion;
    without.groups.clear();
    EXPECT_EQ(bytes, encode(without));

    // A version-2 decoder (0.1.0) knows no kFlagGroups: nor does ours in version 2.
    bytes[6] |= static_cast<std::uint8_t>(kFlagGroups >> 8);
    EXPECT_EQ(decode(bytes).reject, Reject::UnknownFlags);
}

struct BadGroup {
    const char* what;
    std::function<void(std::vector<std::uint8_t>&, std::size_t)> mutate;  // bytes, where the extension starts
    Reject expected;
};

class WireGroupsMalformed : public ::testing::TestWithParam<BadGroup> {};

TEST_P(WireGroupsMalformed, IsRejectedWithItsReason) {
    Heartbeat hb = with_groups();
    auto bytes = encode(hb);
    GetParam().mutate(bytes, extension_at(hb));
    auto result = decode(bytes);
    EXPECT_FALSE(result.decoded) << GetParam().what;
    EXPECT_EQ(result.reject, GetParam().expected) << GetParam().what << ": got " << to_string(result.reject);
}

INSTANTIATE_TEST_SUITE_P(
    EveryForm, WireGroupsMalformed,
    ::testing::Values(
        BadGroup{"flag without an extension", [](auto& b, std::size_t at) { b.resize(at); }, Reject::BadGroupNames},
        BadGroup{"no group count", [](auto& b, std::size_t at) { b.resize(at + kGroupCount); }, Reject::BadGroups},
        BadGroup{"group count 0, no names", [](auto& b, std::size_t at) { b.resize(at + 2); b[at] = b[at + 1] = 0; },
                 Reject::BadGroups},
        BadGroup{"64 groups: the default one is the 64th",
                 [](auto& b, std::size_t at) { b[at + kGroupCount] = kMaxGroups; },
                 Reject::BadGroups},
        BadGroup{"more groups than there are", [](auto& b, std::size_t at) { b[at + kGroupCount] = 4; },
                 Reject::BadGroups},
        BadGroup{"ids unsorted", [](auto& b, std::size_t at) { put_u32(b, at + kGroup1, 5); }, Reject::BadGroups},
        BadGroup{"an id twice", [](auto& b, std::size_t at) { put_u32(b, at + kGroup1, 10); }, Reject::BadGroups},
        BadGroup{"announces TIMEDOUT",
                 [](auto& b, std::size_t at) { b[at + kGroup0 + 4] = static_cast<std::uint8_t>(NodeState::TimedOut); },
                 Reject::BadGroups},
        BadGroup{"unknown group flag", [](auto& b, std::size_t at) { b[at + kGroup0 + 5] |= 0x20; }, Reject::BadGroups},
        BadGroup{"overlong varint (5 as 0x85 0x00)",
                 [](auto& b, std::size_t at) {
                     b[at + kGroup0 + 6] = 0x85;
                     b.insert(b.begin() + static_cast<long>(at + kGroup0 + 7), 0x00);
                 },
                 Reject::BadGroups},
        BadGroup{"varint beyond 64 bits",
                 [](auto& b, std::size_t at) {
                     b[at + kGroup0 + 6] = 0xff;
                     std::vector<std::uint8_t> more(8, 0xff);
                     more.push_back(0x02);
                     b.insert(b.begin() + static_cast<long>(at + kGroup0 + 7), more.begin(), more.end());
                 },
                 Reject::BadGroups},
        BadGroup{"varint of 11 bytes",
                 [](auto& b, std::size_t at) {
                     b[at + kGroup0 + 6] = 0x80;
                     std::vector<std::uint8_t> more(9, 0x80);
                     more.push_back(0x01);
                     b.insert(b.begin() + static_cast<long>(at + kGroup0 + 7), more.begin(), more.end());
                 },
                 Reject::BadGroups},
        BadGroup{"claimant index out of the table", [](auto& b, std::size_t at) { b[at + kGroup1 + 8] = 2; },
                 Reject::BadGroupNames},
        BadGroup{"an index ahead of the first use (1 before 0)",
                 [](auto& b, std::size_t at) { b[at + kGroup1 + 8] = 1; }, Reject::BadGroupNames},
        BadGroup{"a handover target with a grant",
                 [](auto& b, std::size_t at) { b[at + kGroup2 + 9] = 0; }, Reject::BadGroupNames},
        BadGroup{"an entry no group refers to",
                 [](auto& b, std::size_t at) { b[at + kGroup2 + 5] &= ~kGroupFlagHandover; b.pop_back(); },
                 Reject::BadGroupNames},
        BadGroup{"too many entries", [](auto& b, std::size_t at) { b[at + kNameCount] = kMaxGroupNames + 1; },
                 Reject::BadGroupNames},
        BadGroup{"an empty name", [](auto& b, std::size_t at) { b[at + kFirstName] = 0; }, Reject::BadGroupNames},
        BadGroup{"a name over 64", [](auto& b, std::size_t at) { b[at + kFirstName] = 65; }, Reject::BadGroupNames},
        BadGroup{"a name with a dot", [](auto& b, std::size_t at) { b[at + kFirstName + 2] = '.'; },
                 Reject::BadGroupNames},
        BadGroup{"claimant index cut off", [](auto& b, std::size_t) { b.resize(b.size() - 2); }, Reject::BadGroups},
        BadGroup{"trailing byte", [](auto& b, std::size_t) { b.push_back(0); }, Reject::BadLength}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

TEST(WireGroups, OneEntryTwiceIsRejected) {
    Heartbeat hb = with_groups();
    hb.groups[2].grant = 10;  // bravo (7, 9), bravo (7, 10), charlie
    auto bytes = encode(hb);
    ASSERT_TRUE(decode(bytes).decoded);
    std::size_t second_grant_end = extension_at(hb) + kFirstName + 22 + 22;
    ASSERT_EQ(bytes[second_grant_end - 1], 10);
    bytes[second_grant_end - 1] = 9;  // what encode() would have written once
    EXPECT_EQ(decode(bytes).reject, Reject::BadGroupNames);
}

TEST(WireGroups, EveryTruncationIsRejected) {
    auto bytes = encode(with_groups());
    for (std::size_t n = 0; n < bytes.size(); ++n)
        EXPECT_FALSE(decode(std::span(bytes).first(n)).decoded) << "length " << n;
}

TEST(WireGroups, SixtyFourGroupsAndSixtyFourNodes) {
    // The figures of wire.h's "Size": names of 16 characters, 64 heard ids,
    // terms below 2^14, the release "0.2.0", signed. This node runs one group
    // and backs the default group's claim and those of the 62 other groups,
    // spread over `claimants` nodes (one grant to each).
    auto heartbeat = [](std::size_t claimants) {
        Heartbeat hb;
        hb.cluster_id = cluster_id("prod");
        hb.node = "node-000-example";
        hb.release = "0.2.0";
        hb.term = 200;
        hb.claimant = "node-001-example";
        hb.claimant_incarnation = 0x1234567890abcdefULL;
        hb.grant = 0x0000123456789abcULL;
        hb.expected_nodes = 64;
        for (int n = 1; n <= 64; ++n) hb.heard.push_back(node_id("node-" + std::to_string(n)));
        for (std::uint32_t i = 1; i < kMaxGroups; ++i) {
            GroupBeat g;
            g.group = group_id("group-" + std::to_string(i));
            g.state = NodeState::Standby;
            g.term = 1000 + i;
            if (i > 1) {
                std::size_t c = 1 + (i % claimants);
                g.claimant = "node-" + std::string(3 - std::to_string(c).size(), '0') + std::to_string(c) + "-example";
                g.claimant_incarnation = 0x1234567890abcdefULL + c;
                g.grant = 0x0000123456789abcULL + c;
            } else {
                g.state = NodeState::Running;
            }
            hb.groups.push_back(g);
        }
        return encode(hb).size() + kAuthTagSize;
    };
    EXPECT_EQ(heartbeat(1), 1261u);
    EXPECT_EQ(heartbeat(7), 1459u);
    EXPECT_LE(heartbeat(7), kEthernetPayload) << "claims of 7 nodes: one Ethernet frame";
    EXPECT_GT(heartbeat(8), kEthernetPayload);
    EXPECT_EQ(heartbeat(24), 2020u);
    EXPECT_EQ(heartbeat(62), 3274u) << "each group backing another node's claim";
    EXPECT_LE(heartbeat(62), kMaxDatagramSize) << "the daemon reads it whole";
}

TEST(WireGroups, TheLargestHeartbeatIsOneUdpDatagram) {
    // Every field at its longest: 64-character names, 63 groups each with its
    // own claimant and handover target (126 name entries), 10-byte terms.
    Heartbeat hb = current();
    hb.node = std::string(64, 'a');
    hb.handover_to = std::string(64, 'b');
    hb.claimant = std::string(64, 'c');
    hb.claimant_incarnation = 1;
    hb.expected_nodes = 64;
    hb.release = std::string(kMaxReleaseLength, '1');
    for (std::uint64_t i = 0; i < kMaxHeard; ++i) hb.heard.push_back(i);
    for (std::uint32_t i = 0; i < kMaxGroups - 1; ++i) {
        GroupBeat g;
        g.group = i;
        g.term = ~std::uint64_t{0};
        g.claimant = std::string(60, 'x') + std::to_string(1000 + i);
        g.claimant_incarnation = 5;
        g.grant = i + 1;
        g.handover_to = std::string(60, 'y') + std::to_string(1000 + i);
        hb.groups.push_back(g);
    }
    auto bytes = encode(hb);
    EXPECT_EQ(bytes[extension_at(hb)], kMaxGroupNames);
    EXPECT_EQ(bytes.size() + kAuthTagSize, 12190u);
    EXPECT_LE(bytes.size() + kAuthTagSize, 65507u) << "IPv4's largest UDP payload";
    EXPECT_LE(bytes.size() + kAuthTagSize, kMaxDatagramSize) << "the daemon reads it whole";
    auto result = decode(bytes);
    ASSERT_TRUE(result.decoded) << to_string(result.reject);
    EXPECT_EQ(result.decoded->heartbeat, hb);
}
