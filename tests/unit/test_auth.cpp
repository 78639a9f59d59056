// The heartbeat key set (sign with the first key, accept any) and the key file reader.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <sys/stat.h>

#include "core/auth.h"
#include "core/config.h"
#include "core/node_name.h"
#include "daemon/auth_key.h"

using namespace freeha;

namespace {

const std::vector<std::uint8_t> kOld(32, 0x11);
const std::vector<std::uint8_t> kNew(40, 0x22);
const std::vector<std::uint8_t> kOther(32, 0x33);

std::vector<std::uint8_t> heartbeat(std::uint64_t sequence) {
    wire::Heartbeat hb;
    hb.cluster_id = cluster_id("test");
    hb.node = "alpha";
    hb.sequence = sequence;
    hb.incarnation = 1;
    return wire::encode(hb);
}

// Which key of `receiver` accepts a heartbeat signed by `sender`.
std::optional<std::size_t> accepted_by(const auth::KeySet& sender, const auth::KeySet& receiver) {
    auto datagram = heartbeat(1);
    sender.sign(datagram);
    auto decoded = wire::decode(datagram);
    EXPECT_TRUE(decoded.decoded);
    return receiver.verify(*decoded.decoded);
}

}  // namespace

TEST(KeySet, SignsWithTheFirstKeyAndAcceptsATagOfEither) {
    auto both = auth::KeySet::copy_of({kNew, kOld});
    EXPECT_EQ(both.size(), 2u);
    EXPECT_EQ(accepted_by(both, auth::KeySet::copy_of({kNew})), 0u);
    EXPECT_EQ(accepted_by(both, auth::KeySet::copy_of({kOld})), std::nullopt);  // the second key never signs
    EXPECT_EQ(accepted_by(auth::KeySet::copy_of({kOld}), both), 1u);
    EXPECT_EQ(accepted_by(auth::KeySet::copy_of({kNew}), both), 0u);
    EXPECT_EQ(accepted_by(auth::KeySet::copy_of({kOther}), both), std::nullopt);
}

TEST(KeySet, EveryStepOfTheRollingChangeAcceptsEveryOtherStep) {
    // freehad.conf(5): add the new key second, make it first, drop the old one.
    // Nodes one step apart must always accept each other.
    std::vector<auth::KeySet> steps{auth::KeySet::copy_of({kOld}), auth::KeySet::copy_of({kOld, kNew}),
                                    auth::KeySet::copy_of({kNew, kOld}), auth::KeySet::copy_of({kNew})};
    // accepted[a][b]: a heartbeat of a node at step a is accepted at step b.
    const bool accepted[4][4] = {{true, true, true, false},
                                 {true, true, true, false},
                                 {false, true, true, true},
                                 {false, true, true, true}};
    for (std::size_t a = 0; a < steps.size(); ++a)
        for (std::size_t b = 0; b < steps.size(); ++b) {
            EXPECT_EQ(accepted_by(steps[a], steps[b]).has_value(), accepted[a][b])
                << "step " << a << " signing, step " << b << " receiving";
            if (a == b || a + 1 == b || b + 1 == a) {
                EXPECT_TRUE(accepted[a][b]) << "neighbouring steps must accept each other";
            }
        }
}

TEST(KeySet, AnUnsignedOrTamperedHeartbeatMatchesNoKey) {
    auto keys = auth::KeySet::copy_of({kNew, kOld});
    auto plain = heartbeat(2);
    EXPECT_EQ(keys.verify(*wire::decode(plain).decoded), std::nullopt);
    auto datagram = heartbeat(3);
    keys.sign(datagram);
    datagram[20] ^= 1;  // inside the signed body
    auto decoded = wire::decode(datagram);
    ASSERT_TRUE(decoded.decoded);
    EXPECT_EQ(keys.verify(*decoded.decoded), std::nullopt);
}

TEST(KeySet, CopiesShareTheKeysAndOutliveTheOriginal) {
    auth::KeySet copy;
    EXPECT_TRUE(copy.empty());
    {
        auto original = auth::KeySet::copy_of({kOld});
        copy = original;
    }
    EXPECT_EQ(accepted_by(copy, auth::KeySet::copy_of({kOld})), 0u);
}

TEST(KeySet, RefusesMoreThanTwoKeys) {
    EXPECT_THROW(auth::KeySet::copy_of({kOld, kNew, kOther}), std::invalid_argument);
}

TEST(Key, HoldsItsBytesAndMovesThem) {
    auto key = auth::Key::copy_of(kNew);
    EXPECT_TRUE(std::equal(key.bytes().begin(), key.bytes().end(), kNew.begin(), kNew.end()));
    auth::Key moved(std::move(key));
    EXPECT_EQ(moved.bytes().size(), kNew.size());
    EXPECT_TRUE(key.bytes().empty());  // NOLINT(bugprone-use-after-move): the moved-from key is empty
    auth::Key assigned(8);
    assigned = std::move(moved);
    EXPECT_TRUE(std::equal(assigned.bytes().begin(), assigned.bytes().end(), kNew.begin(), kNew.end()));
}

// --- the key files ----------------------------------------------------------

namespace {

struct KeyDir {
    std::filesystem::path path;
    KeyDir() {
        char tmpl[] = "/tmp/freeha-keys-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~KeyDir() { std::filesystem::remove_all(path); }
    std::string write(const std::string& name, const std::vector<std::uint8_t>& bytes, mode_t mode = 0400) const {
        auto file = (path / name).string();
        std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                    static_cast<std::streamsize>(bytes.size()));
        chmod(file.c_str(), mode);
        return file;
    }
};

}  // namespace

TEST(KeyFiles, AreReadInOrderAndTheFirstSigns) {
    KeyDir dir;
    std::string error;
    auto keys = read_auth_keys({dir.write("new", kNew), dir.write("old", kOld, 0600)}, &error);
    ASSERT_TRUE(keys) << error;
    EXPECT_EQ(keys->size(), 2u);
    EXPECT_EQ(accepted_by(*keys, auth::KeySet::copy_of({kNew})), 0u);
    EXPECT_EQ(accepted_by(auth::KeySet::copy_of({kOld}), *keys), 1u);
    auto none = read_auth_keys({}, &error);
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->empty());
}

TEST(KeyFiles, OneBadFileFailsTheSetNamingThatFile) {
    KeyDir dir;
    std::string good = dir.write("good", kNew);
    struct Case {
        std::string path;
        std::string expected;
    };
    std::vector<Case> cases{
        {dir.write("short", std::vector<std::uint8_t>(31, 1)), "31 bytes; a key needs at least 32"},
        {dir.write("shared", kOld, 0640), "group or other may access it (mode 0640); run chmod 0400"},
        {(dir.path / "missing").string(), "No such file or directory"},
        {dir.path.string(), "not a regular file"},
    };
    for (const auto& c : cases) {
        for (auto paths : {std::vector<std::string>{c.path, good}, std::vector<std::string>{good, c.path}}) {
            std::string error;
            EXPECT_FALSE(read_auth_keys(paths, &error));
            EXPECT_EQ(error.rfind("AuthKeyFile=" + c.path + ": ", 0), 0u) << error;
            EXPECT_NE(error.find(c.expected), std::string::npos) << error;
        }
    }
    std::string error;
    EXPECT_FALSE(read_auth_keys({good, good, good}, &error));
    EXPECT_NE(error.find("at most 2 keys"), std::string::npos) << error;
}

// --- AuthKeyFile= in the configuration ------------------------------------------

namespace {

Config parse(const std::string& text, std::optional<std::string>* error = nullptr) {
    Config c;
    auto e = apply_ini(c, text, "test.conf");
    if (error) *error = e;
    else EXPECT_FALSE(e) << *e;
    return c;
}

}  // namespace

TEST(KeyConfig, AuthKeyFileIsAListOfUpToTwoThatAnEmptyValueClears) {
    EXPECT_TRUE(parse("[Cluster]\n").auth_key_files.empty());
    EXPECT_EQ(parse("[Cluster]\nAuthKeyFile=/k/new\nAuthKeyFile=/k/old\n").auth_key_files,
              (std::vector<std::string>{"/k/new", "/k/old"}));
    // A drop-in that replaces the keys starts with an empty assignment.
    EXPECT_EQ(parse("[Cluster]\nAuthKeyFile=/k/old\n[Cluster]\nAuthKeyFile=\nAuthKeyFile=/k/new\n").auth_key_files,
              std::vector<std::string>{"/k/new"});
    std::optional<std::string> error;
    parse("[Cluster]\nAuthKeyFile=/a\nAuthKeyFile=/b\nAuthKeyFile=/c\n", &error);
    ASSERT_TRUE(error);
    EXPECT_EQ(error->rfind("test.conf:4: [Cluster] AuthKeyFile=/c: a third key; at most 2", 0), 0u) << *error;
    parse("[Cluster]\nAuthKeyFile=/a\nAuthKeyFile=b\n", &error);
    ASSERT_TRUE(error);
    EXPECT_EQ(*error, "test.conf:3: [Cluster] AuthKeyFile=b: expected an absolute path");
}

TEST(KeyConfig, KeysRenderOneLinePerFileAndMayChangeOnReload) {
    Config two = parse("[Cluster]\nAuthKeyFile=/k/new\nAuthKeyFile=/k/old\n[Heartbeat]\nChannel=broadcast 10.0.0.1\n");
    EXPECT_NE(render(two).find("AuthKeyFile=/k/new\nAuthKeyFile=/k/old\n"), std::string::npos);
    EXPECT_EQ(parse(render(two)).auth_key_files, two.auth_key_files);
    Config none = parse("[Heartbeat]\nChannel=broadcast 10.0.0.1\n");
    EXPECT_NE(render(none).find("AuthKeyFile=\n"), std::string::npos);
    EXPECT_TRUE(parse(render(none)).auth_key_files.empty());
    EXPECT_FALSE(fixed_setting_changed(none, two));
    EXPECT_FALSE(fixed_setting_changed(two, none));
    EXPECT_EQ(describe_auth_keys(two), "heartbeats signed with /k/new, also accepting /k/old");
    EXPECT_EQ(describe_auth_keys(none), "heartbeats not authenticated");
}
