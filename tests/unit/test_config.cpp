#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/config.h"
#include "daemon/cmdline.h"

using namespace freeha;

namespace {

Config parse_ok(const std::string& text) {
    Config c;
    auto error = apply_ini(c, text, "test.conf");
    EXPECT_FALSE(error) << *error;
    return c;
}

std::string parse_error(const std::string& text) {
    Config c;
    auto error = apply_ini(c, text, "test.conf");
    return error.value_or("<no error>");
}

}  // namespace

TEST(Config, ParsesEveryKey) {
    Config c = parse_ok(
        "# comment\n"
        "[Cluster]\nName=prod\nNodeName=alpha\nExpectedNodes=3\nRole=arbitrator\nNoQuorumPolicy=ignore\n"
        "AuthKeyFile=/etc/freeha/authkey\n"
        "[Heartbeat]\nPort=4000\nInterval=100ms\nDeadTime=1s 500ms\nInitDead=10s\n"
        "Channel=broadcast 10.0.0.1\nChannel=multicast 10.1.0.1 239.1.2.3\nChannel=unicast 127.0.0.1 127.0.0.2 127.0.0.3:4001\n"
        "[Services]\nHooksDirectory=/opt/hooks\nMonitorInterval=3s\nStartTimeout=1min\nStopTimeout=2min\nMonitorTimeout=5s\n"
        "FenceTimeout=750ms\nSelfFence=reboot\n"
        "[Status]\nJSONFile=/tmp/s.json\nStateFile=/tmp/state\n");
    EXPECT_EQ(c.cluster_name, "prod");
    EXPECT_EQ(c.node_name, "alpha");
    EXPECT_EQ(c.expected_nodes, 3u);
    EXPECT_EQ(c.role, Role::Arbitrator);
    EXPECT_EQ(c.no_quorum_policy, NoQuorumPolicy::Ignore);
    EXPECT_EQ(c.port, 4000);
    EXPECT_EQ(c.interval, 100 * kUsecPerMsec);
    EXPECT_EQ(c.dead_time, 1500 * kUsecPerMsec);
    EXPECT_EQ(c.init_dead, 10 * kUsecPerSec);
    ASSERT_EQ(c.channels.size(), 3u);
    EXPECT_EQ(c.channels[0].to_string(), "broadcast 10.0.0.1 10.0.0.255");  // FreeHA's /24 default
    EXPECT_EQ(c.channels[1].to_string(), "multicast 10.1.0.1 239.1.2.3");
    EXPECT_EQ(c.channels[2].to_string(), "unicast 127.0.0.1 127.0.0.2 127.0.0.3:4001");
    EXPECT_EQ(c.services.hooks_directory, "/opt/hooks");
    EXPECT_EQ(c.services.monitor_interval, 3 * kUsecPerSec);
    EXPECT_EQ(c.services.start_timeout, 60 * kUsecPerSec);
    EXPECT_EQ(c.services.stop_timeout, 120 * kUsecPerSec);
    EXPECT_EQ(c.services.monitor_timeout, 5 * kUsecPerSec);
    EXPECT_EQ(c.auth_key_files, std::vector<std::string>{"/etc/freeha/authkey"});
    EXPECT_EQ(c.fence_timeout, 750 * kUsecPerMsec);
    EXPECT_EQ(c.self_fence, SelfFenceAction::Reboot);
    EXPECT_EQ(c.json_file, "/tmp/s.json");
    EXPECT_EQ(c.state_file, "/tmp/state");
    EXPECT_EQ(c.origin.at("Heartbeat.DeadTime"), "test.conf:12");
}

TEST(Config, AnEmptyChannelResetsTheList) {
    Config c = parse_ok("[Heartbeat]\nChannel=broadcast 10.0.0.1\nChannel=\nChannel=broadcast 10.0.1.1 10.0.1.127\n");
    ASSERT_EQ(c.channels.size(), 1u);
    EXPECT_EQ(c.channels[0].to_string(), "broadcast 10.0.1.1 10.0.1.127");
}

TEST(Config, LaterValuesWinAsInSystemd) {
    Config c = parse_ok("[Cluster]\nExpectedNodes=3\n[Cluster]\nExpectedNodes=5\n");
    EXPECT_EQ(c.expected_nodes, 5u);
}

TEST(Config, ExpectedNodesGoesUpToThePeerTablesSize) {
    EXPECT_EQ(parse_ok("[Cluster]\nExpectedNodes=64\n").expected_nodes, 64u);
}

struct ErrorCase {
    const char* text;
    const char* expected;  // the error must contain this
};

class ConfigErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ConfigErrors, NameFileLineAndTheProblem) {
    EXPECT_NE(parse_error(GetParam().text).find(GetParam().expected), std::string::npos)
        << "got: " << parse_error(GetParam().text);
}

INSTANTIATE_TEST_SUITE_P(
    EveryError, ConfigErrors,
    ::testing::Values(
        ErrorCase{"[Cluster]\nName=x\nBogus=1\n", "test.conf:3: [Cluster] unknown key 'Bogus'"},
        ErrorCase{"[Clutser]\nName=x\n", "test.conf:2: unknown section [Clutser]"},
        ErrorCase{"Name=x\n", "test.conf:1: Name= outside any [Section]"},
        ErrorCase{"[Cluster]\n\nExpectedNodes=0\n", "test.conf:3: [Cluster] ExpectedNodes=0: expected a number from 1 to 64"},
        ErrorCase{"[Cluster]\nExpectedNodes=65\n", "test.conf:2: [Cluster] ExpectedNodes=65"},
        ErrorCase{"[Cluster]\nExpectedNodes=2x\n", "test.conf:2: [Cluster] ExpectedNodes=2x"},
        ErrorCase{"[Cluster]\nRole=boss\n", "test.conf:2: [Cluster] Role=boss: expected 'member' or 'arbitrator'"},
        ErrorCase{"[Cluster]\nNoQuorumPolicy=freeze\n", "test.conf:2: [Cluster] NoQuorumPolicy=freeze"},
        ErrorCase{"[Cluster]\nNodeName=a.b\n", "test.conf:2: [Cluster] NodeName=a.b"},
        ErrorCase{"[Cluster]\nName=\n", "test.conf:2: [Cluster] Name=: expected 1 to 64 characters"},
        ErrorCase{"[Heartbeat]\nPort=70000\n", "test.conf:2: [Heartbeat] Port=70000"},
        ErrorCase{"[Heartbeat]\nInterval=fast\n", "test.conf:2: [Heartbeat] Interval=fast: not a time span"},
        ErrorCase{"[Heartbeat]\nInterval=10us\n", "test.conf:2: [Heartbeat] Interval=10us: must be at least 1ms"},
        ErrorCase{"[Heartbeat]\nDeadTime=1q\n", "test.conf:2: [Heartbeat] DeadTime=1q"},
        ErrorCase{"[Heartbeat]\nInitDead=x\n", "test.conf:2: [Heartbeat] InitDead=x"},
        ErrorCase{"[Heartbeat]\nChannel=carrier-pigeon 1.2.3.4\n", "test.conf:2: [Heartbeat] Channel=carrier-pigeon 1.2.3.4: unknown channel kind"},
        ErrorCase{"[Heartbeat]\nChannel=broadcast 10.0.0\n", "SOURCE '10.0.0': not an IPv4 or IPv6 address"},
        ErrorCase{"[Heartbeat]\nChannel=multicast 10.0.0.1 10.0.0.2\n", "'10.0.0.2' is not a multicast group"},
        ErrorCase{"[Heartbeat]\nChannel=multicast 10.0.0.1\n", "multicast takes SOURCE GROUP"},
        ErrorCase{"[Heartbeat]\nChannel=unicast 10.0.0.1\n", "unicast takes SOURCE PEER"},
        ErrorCase{"[Heartbeat]\nChannel=unicast 10.0.0.1 10.0.0.2:0\n", "PEER '10.0.0.2:0': '0' is not a port (1 to 65535)"},
        ErrorCase{"[Heartbeat]\nChannel=broadcast 10.0.0.1 a b\n", "broadcast takes SOURCE [BROADCAST]"},
        ErrorCase{"[Services]\nHooksDirectory=relative/path\n", "test.conf:2: [Services] HooksDirectory=relative/path: expected an absolute path"},
        ErrorCase{"[Services]\nTarget=freeha services\n", "test.conf:2: [Services] Target=freeha services: expected a unit name"},
        ErrorCase{"[Services]\nTarget=freeha\n", "test.conf:2: [Services] Target=freeha: expected a unit name"},
        ErrorCase{"[Services]\nMonitorInterval=1ms\n", "test.conf:2: [Services] MonitorInterval=1ms"},
        ErrorCase{"[Services]\nFenceTimeout=5ms\n", "test.conf:2: [Services] FenceTimeout=5ms: must be at least 10ms"},
        ErrorCase{"[Services]\n\nSelfFence=watchdog\n", "test.conf:3: [Services] SelfFence=watchdog: expected 'none' or 'reboot'"},
        ErrorCase{"[Services]\nSelfFence=\n", "test.conf:2: [Services] SelfFence=: expected 'none' or 'reboot'"},
        // Every time key has a maximum: a span near 2^64 us would wrap deadlines.
        ErrorCase{"[Heartbeat]\nInterval=18446744073709551615us\n", "[Heartbeat] Interval=18446744073709551615us: must be at most 10s"},
        ErrorCase{"[Heartbeat]\nDeadTime=18446744073709551615us\n", "[Heartbeat] DeadTime=18446744073709551615us: must be at most 5min"},
        ErrorCase{"[Heartbeat]\nInitDead=2h\n", "[Heartbeat] InitDead=2h: must be at most 1h"},
        ErrorCase{"[Services]\nMonitorInterval=2h\n", "[Services] MonitorInterval=2h: must be at most 1h"},
        ErrorCase{"[Services]\nStartTimeout=2d\n", "[Services] StartTimeout=2d: must be at most 1d"},
        ErrorCase{"[Services]\nStopTimeout=2d\n", "[Services] StopTimeout=2d: must be at most 1d"},
        ErrorCase{"[Services]\nMonitorTimeout=2h\n", "[Services] MonitorTimeout=2h: must be at most 1h"},
        ErrorCase{"[Services]\nFenceTimeout=2h\n", "[Services] FenceTimeout=2h: must be at most 1h"},
        ErrorCase{"[Heartbeat]\nDeadTime=99999999999999999999s\n", "[Heartbeat] DeadTime=99999999999999999999s: not a time span"},
        ErrorCase{"[Cluster]\nAuthKeyFile=authkey\n", "test.conf:2: [Cluster] AuthKeyFile=authkey: expected an absolute path"},
        ErrorCase{"[Services]\nStartTimeout=\n", "test.conf:2: [Services] StartTimeout="},
        ErrorCase{"[Status]\nJSONFile=status.json\n", "test.conf:2: [Status] JSONFile=status.json"},
        ErrorCase{"[Cluster]\nName=x\nthis line has no equals sign\n", "test.conf:3: syntax error"},
        ErrorCase{"[Cluster\nName=x\n", "test.conf:1: syntax error"},
        // Every value reaches JSON, D-Bus and the journal, which take UTF-8 only.
        ErrorCase{"[Cluster]\nName=web\xff\n", "test.conf:2: [Cluster] Name=: not valid UTF-8 (byte 0xff at offset 3)"},
        ErrorCase{"[Cluster]\nName=caf\xc3\n", "test.conf:2: [Cluster] Name=: not valid UTF-8 (byte 0xc3 at offset 3)"},
        ErrorCase{"[Cluster]\nName=\xc0\xafx\n", "[Cluster] Name=: not valid UTF-8 (byte 0xc0 at offset 0)"},
        ErrorCase{"[Cluster]\nName=\xed\xa0\x80\n", "[Cluster] Name=: not valid UTF-8 (byte 0xed at offset 0)"},
        ErrorCase{"[Cluster]\nName=\xf4\x90\x80\x80\n", "[Cluster] Name=: not valid UTF-8 (byte 0xf4 at offset 0)"},
        ErrorCase{"[Services]\nHooksDirectory=/etc/\xfe\n", "test.conf:2: [Services] HooksDirectory=: not valid UTF-8"},
        ErrorCase{"[Status]\nJSONFile=/run/\x80.json\n", "test.conf:2: [Status] JSONFile=: not valid UTF-8"}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

// --- Address= and AnnounceRefresh= -----------------------------------------

struct AddressCase {
    const char* value;
    const char* canonical;  // FloatingAddress::to_string(), as render() prints it
    unsigned prefix;
    const char* device;
    const char* label;
    bool dad;
};

class AddressForms : public ::testing::TestWithParam<AddressCase> {};

TEST_P(AddressForms, ParseToTheirCanonicalForm) {
    const auto& p = GetParam();
    Config c = parse_ok(std::string("[Services]\n\nAddress=") + p.value + "\n");
    ASSERT_EQ(c.services.addresses.size(), 1u);
    const FloatingAddress& a = c.services.addresses[0];
    EXPECT_EQ(a.to_string(), p.canonical);
    EXPECT_EQ(a.prefix, p.prefix);
    EXPECT_EQ(a.device, p.device);
    EXPECT_EQ(a.label, p.label);
    EXPECT_EQ(a.dad, p.dad);
    EXPECT_TRUE(a.address.device.empty());  // DEVICE says where it goes
    EXPECT_EQ(a.origin, "test.conf:3");
}

INSTANTIATE_TEST_SUITE_P(
    Valid, AddressForms,
    ::testing::Values(AddressCase{"192.0.2.10/24 eth0", "192.0.2.10/24 eth0", 24, "eth0", "", false},
                      AddressCase{"  192.0.2.10/24\teth0  ", "192.0.2.10/24 eth0", 24, "eth0", "", false},
                      AddressCase{"192.0.2.10/32 eth0", "192.0.2.10/32 eth0", 32, "eth0", "", false},
                      AddressCase{"192.0.2.0/31 eth0", "192.0.2.0/31 eth0", 31, "eth0", "", false},  // RFC 3021
                      AddressCase{"192.0.2.1/31 eth0", "192.0.2.1/31 eth0", 31, "eth0", "", false},
                      AddressCase{"10.0.0.1/1 br-lan.42", "10.0.0.1/1 br-lan.42", 1, "br-lan.42", "", false},
                      AddressCase{"192.0.2.10/24 eth0 label=eth0:web", "192.0.2.10/24 eth0 label=eth0:web", 24, "eth0",
                                  "eth0:web", false},
                      AddressCase{"192.0.2.10/24 eth0 label=eth0", "192.0.2.10/24 eth0 label=eth0", 24, "eth0", "eth0", false},
                      AddressCase{"2001:DB8:0:0::10/64 eth0", "2001:db8::10/64 eth0", 64, "eth0", "", false},
                      AddressCase{"2001:db8::10/64 eth0 dad", "2001:db8::10/64 eth0 dad", 64, "eth0", "", true},
                      AddressCase{"2001:db8::10/128 eth0", "2001:db8::10/128 eth0", 128, "eth0", "", false},
                      AddressCase{"2001:db8::/127 eth0", "2001:db8::/127 eth0", 127, "eth0", "", false},  // RFC 6164
                      AddressCase{"fe80::10/64 eth1", "fe80::10/64 eth1", 64, "eth1", "", false},
                      AddressCase{"198.51.100.7/24 a123456789abcde", "198.51.100.7/24 a123456789abcde", 24,
                                  "a123456789abcde", "", false}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

TEST(Config, AddressIsAListThatAnEmptyValueResets) {
    Config c = parse_ok("[Services]\nAddress=192.0.2.10/24 eth0\nAddress=2001:db8::10/64 eth0\n");
    ASSERT_EQ(c.services.addresses.size(), 2u);
    EXPECT_EQ(c.services.addresses[0].origin, "test.conf:2");
    EXPECT_EQ(c.services.addresses[1].origin, "test.conf:3");
    Config reset = parse_ok("[Services]\nAddress=192.0.2.10/24 eth0\nAddress=\nAddress=192.0.2.11/24 eth1\n");
    ASSERT_EQ(reset.services.addresses.size(), 1u);
    EXPECT_EQ(reset.services.addresses[0].to_string(), "192.0.2.11/24 eth1");
    // After a reset the same address may be given again.
    EXPECT_EQ(parse_ok("[Services]\nAddress=192.0.2.10/24 eth0\nAddress=\nAddress=192.0.2.10/24 eth0\n").services.addresses.size(), 1u);
    // The same link-local address on two interfaces is two addresses.
    EXPECT_EQ(parse_ok("[Services]\nAddress=fe80::10/64 eth0\nAddress=fe80::10/64 eth1\n").services.addresses.size(), 2u);
    EXPECT_TRUE(parse_ok("[Services]\nHooksDirectory=/x\n").services.addresses.empty());
}

TEST(Config, AnnounceRefreshIsOffByDefaultAndTakesZeroOrASecondAndMore) {
    EXPECT_EQ(parse_ok("[Services]\nHooksDirectory=/x\n").services.announce_refresh, Usec());
    EXPECT_EQ(parse_ok("[Services]\nAnnounceRefresh=30s\n").services.announce_refresh, 30 * kUsecPerSec);
    EXPECT_EQ(parse_ok("[Services]\nAnnounceRefresh=1s\n").services.announce_refresh, kUsecPerSec);
    EXPECT_EQ(parse_ok("[Services]\nAnnounceRefresh=10s\nAnnounceRefresh=0\n").services.announce_refresh, Usec());
}

INSTANTIATE_TEST_SUITE_P(
    AddressErrors, ConfigErrors,
    ::testing::Values(
        ErrorCase{"[Services]\nAddress=192.0.2.10 eth0\n",
                  "test.conf:2: [Services] Address=192.0.2.10 eth0: '192.0.2.10' has no prefix length: write "
                  "ADDRESS/PREFIX, e.g. 192.0.2.10/24"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/24\n",
                  "test.conf:2: [Services] Address=192.0.2.10/24: expected ADDRESS/PREFIX DEVICE [label=LABEL] [dad]"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/0 eth0\n",
                  "test.conf:2: [Services] Address=192.0.2.10/0 eth0: prefix length '0' out of range: 1 to 32 for IPv4"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/33 eth0\n", "prefix length '33' out of range: 1 to 32 for IPv4"},
        ErrorCase{"[Services]\nAddress=2001:db8::10/129 eth0\n", "prefix length '129' out of range: 1 to 128 for IPv6"},
        ErrorCase{"[Services]\nAddress=2001:db8::10/0 eth0\n", "prefix length '0' out of range: 1 to 128 for IPv6"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/ eth0\n", "prefix length '' out of range: 1 to 32 for IPv4"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/24x eth0\n", "prefix length '24x' out of range"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/-1 eth0\n", "prefix length '-1' out of range"},
        ErrorCase{"[Services]\nAddress=192.0.2.300/24 eth0\n", "'192.0.2.300': not an IPv4 or IPv6 address"},
        ErrorCase{"[Services]\nAddress=::ffff:192.0.2.10/120 eth0\n", "an IPv4-mapped IPv6 address"},
        ErrorCase{"[Services]\nAddress=192.0.2.0/24 eth0\n",
                  "test.conf:2: [Services] Address=192.0.2.0/24 eth0: '192.0.2.0/24' is the network address of its "
                  "prefix (every host bit 0), not a host's"},
        ErrorCase{"[Services]\nAddress=10.1.0.0/16 eth0\n", "'10.1.0.0/16' is the network address of its prefix"},
        ErrorCase{"[Services]\nAddress=192.0.2.4/30 eth0\n", "'192.0.2.4/30' is the network address"},
        ErrorCase{"[Services]\nAddress=192.0.2.255/24 eth0\n",
                  "test.conf:2: [Services] Address=192.0.2.255/24 eth0: '192.0.2.255/24' is the broadcast address of "
                  "its prefix (every host bit 1), not a host's"},
        ErrorCase{"[Services]\nAddress=192.0.2.7/30 eth0\n", "'192.0.2.7/30' is the broadcast address"},
        ErrorCase{"[Services]\nAddress=2001:db8::/64 eth0\n",
                  "'2001:db8::/64' is the subnet-router anycast address of its prefix (every host bit 0)"},
        ErrorCase{"[Services]\nAddress=fe80::10%eth0/64 eth0\n",
                  "'fe80::10%eth0': name the interface as DEVICE (the second word), not with %"},
        ErrorCase{"[Services]\nAddress=224.0.0.18/24 eth0\n", "'224.0.0.18' is a multicast group, not a host's address"},
        ErrorCase{"[Services]\nAddress=ff02::12/64 eth0\n", "'ff02::12' is a multicast group"},
        ErrorCase{"[Services]\nAddress=0.0.0.0/8 eth0\n", "'0.0.0.0' is the unspecified address"},
        ErrorCase{"[Services]\nAddress=::/64 eth0\n", "'::' is the unspecified address"},
        ErrorCase{"[Services]\nAddress=127.0.0.5/8 lo\n", "'127.0.0.5' is a loopback address: it never leaves this host"},
        ErrorCase{"[Services]\nAddress=::1/128 lo\n", "'::1' is a loopback address"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/24 eth0/1\n",
                  "test.conf:2: [Services] Address=192.0.2.10/24 eth0/1: DEVICE 'eth0/1' is not an interface name "
                  "(1 to 15 characters; no '/', ':', '%' or white space; not '.' or '..')"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/24 a123456789abcdef\n", "DEVICE 'a123456789abcdef' is not an interface name"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/24 ..\n", "DEVICE '..' is not an interface name"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/24 .\n", "DEVICE '.' is not an interface name"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/24 eth0:1\n", "DEVICE 'eth0:1' is not an interface name"},
        ErrorCase{"[Services]\nAddress=2001:db8::10/64 eth0 label=eth0:x\n",
                  "label= is for IPv4 addresses only (the kernel keeps no label on IPv6 addresses)"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/24 eth0 label=web\n",
                  "test.conf:2: [Services] Address=192.0.2.10/24 eth0 label=web: label 'web' must be the DEVICE 'eth0' "
                  "or begin with 'eth0:' (as for ip address add)"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/24 eth0 label=eth00\n", "label 'eth00' must be the DEVICE 'eth0'"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/24 eth0 label=\n", "label '' must be the DEVICE 'eth0'"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/24 eth0 label=eth0:web-frontend\n",
                  "label 'eth0:web-frontend' is longer than 15 characters"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/24 eth0 label=eth0:a label=eth0:b\n", "label= given twice"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/24 eth0 dad\n",
                  "test.conf:2: [Services] Address=192.0.2.10/24 eth0 dad: dad is for IPv6 addresses only (the kernel "
                  "runs no duplicate address detection for IPv4)"},
        ErrorCase{"[Services]\nAddress=2001:db8::10/64 eth0 dad dad\n", "dad given twice"},
        ErrorCase{"[Services]\nAddress=2001:db8::10/64 eth0 nodad\n", "unknown option 'nodad' (label=LABEL or dad)"},
        ErrorCase{"[Services]\nAddress=192.0.2.10/24 eth0\n\nAddress=192.0.2.10/25 eth1\n",
                  "test.conf:4: [Services] Address=192.0.2.10/25 eth1: 192.0.2.10 is already configured at test.conf:2 "
                  "(Address=192.0.2.10/24 eth0)"},
        ErrorCase{"[Services]\nAddress=2001:db8::10/64 eth0\nAddress=2001:DB8::0:10/64 eth0 dad\n",
                  "test.conf:3: [Services] Address=2001:DB8::0:10/64 eth0 dad: 2001:db8::10 is already configured at test.conf:2"},
        ErrorCase{"[Services]\nAddress=fe80::10/64 eth0\nAddress=fe80::10/64 eth0\n",
                  "fe80::10 is already configured at test.conf:2"},
        ErrorCase{"[Services]\nAnnounceRefresh=500ms\n",
                  "test.conf:2: [Services] AnnounceRefresh=500ms: must be at least 1s (or 0: never)"},
        ErrorCase{"[Services]\nAnnounceRefresh=2h\n", "[Services] AnnounceRefresh=2h: must be at most 1h (or 0: never)"},
        ErrorCase{"[Services]\nAnnounceRefresh=often\n", "[Services] AnnounceRefresh=often: not a time span"},
        ErrorCase{"[Services]\nAnnounceRefresh=\n", "test.conf:2: [Services] AnnounceRefresh=: not a time span"}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

TEST(Config, ValidationRefusesAnAddressThatIsAChannelsSource) {
    Config c = parse_ok("[Heartbeat]\nChannel=broadcast 10.0.0.1\nChannel=unicast 192.0.2.11 192.0.2.12\n"
                        "[Services]\nAddress=192.0.2.10/24 eth0\nAddress=192.0.2.11/24 eth0\n");
    EXPECT_EQ(validate(c), "test.conf:6: Address=192.0.2.11/24 eth0 is the SOURCE of the heartbeat channel 'unicast "
                           "192.0.2.11 192.0.2.12' (test.conf:3); a channel needs an address of this node's own, which "
                           "stays when the services move");
    Config v6 = parse_ok("[Heartbeat]\nChannel=multicast fe80::11%eth1 ff02::f33\n[Services]\nAddress=fe80::11/64 eth1\n");
    EXPECT_NE(validate(v6).value_or("").find("test.conf:4: Address=fe80::11/64 eth1 is the SOURCE"), std::string::npos);
    // The same link-local address on another interface is another address.
    Config other_link = parse_ok("[Heartbeat]\nChannel=multicast fe80::11%eth1 ff02::f33\n[Services]\nAddress=fe80::11/64 eth2\n");
    EXPECT_FALSE(validate(other_link));
    Config peer = parse_ok("[Heartbeat]\nChannel=unicast 192.0.2.11 192.0.2.12\n[Services]\nAddress=192.0.2.12/24 eth0\n");
    EXPECT_FALSE(validate(peer));  // a peer's address is not this node's SOURCE
}

TEST(Config, ValidationRefusesAnAddressOnAnArbitrator) {
    Config c = parse_ok("[Cluster]\nRole=arbitrator\n[Heartbeat]\nChannel=broadcast 10.0.0.1\n"
                        "[Services]\nAddress=192.0.2.10/24 eth0\n");
    EXPECT_EQ(validate(c), "test.conf:6: Address=192.0.2.10/24 eth0: an arbitrator never runs services, so it never "
                           "holds a floating address (test.conf:2)");
}

TEST(Config, RenderedAddressesParseBackToTheSameList) {
    Config c = parse_ok("[Heartbeat]\nChannel=broadcast 10.0.0.1\n[Services]\nAddress=192.0.2.10/24 eth0 label=eth0:web\n"
                        "Address=2001:DB8::10/64  eth0   dad\nAnnounceRefresh=1min\n");
    std::string text = render(c);
    EXPECT_NE(text.find("Address=192.0.2.10/24 eth0 label=eth0:web\nAddress=2001:db8::10/64 eth0 dad\n"
                        "AnnounceRefresh=1min\n"),
              std::string::npos)
        << text;
    Config again = parse_ok(text);
    EXPECT_EQ(again.services.addresses, c.services.addresses);
    EXPECT_EQ(again.services.announce_refresh, c.services.announce_refresh);
    EXPECT_EQ(rendered_setting(c, "Services.Address"), "192.0.2.10/24 eth0 label=eth0:web, 2001:db8::10/64 eth0 dad");
    // None: an empty assignment, which parses back to none.
    Config none = parse_ok("[Heartbeat]\nChannel=broadcast 10.0.0.1\n");
    EXPECT_NE(render(none).find("\nAddress=\nAnnounceRefresh=0\n"), std::string::npos) << render(none);
    EXPECT_TRUE(parse_ok(render(none)).services.addresses.empty());
}

TEST(Config, AReloadMayAddRemoveAndChangeAddresses) {
    Config running = parse_ok("[Heartbeat]\nChannel=broadcast 10.0.0.1\n[Services]\nAddress=192.0.2.10/24 eth0\n");
    Config changed = parse_ok("[Heartbeat]\nChannel=broadcast 10.0.0.1\n[Services]\nAddress=192.0.2.11/24 eth1\n"
                              "Address=2001:db8::10/64 eth1\nAnnounceRefresh=10s\n");
    ASSERT_EQ(changed.services.addresses.size(), 2u);
    EXPECT_EQ(fixed_setting_changed(running, changed), std::nullopt);
    EXPECT_EQ(fixed_setting_changed(changed, running), std::nullopt);
}

TEST(Config, ANameInUtf8IsKept) {
    EXPECT_EQ(parse_ok("[Cluster]\nName=caf\xc3\xa9-\xf0\x9f\x90\x9d\n").cluster_name, "caf\xc3\xa9-\xf0\x9f\x90\x9d");
}

TEST(Config, ValidationNamesWhereTheConflictingValuesCameFrom) {
    Config c = parse_ok("[Heartbeat]\nInterval=600ms\nDeadTime=1s\nChannel=broadcast 10.0.0.1\n");
    auto error = validate(c);
    ASSERT_TRUE(error);
    EXPECT_NE(error->find("test.conf:3: DeadTime=1s must be at least twice Interval=600ms (test.conf:2)"), std::string::npos)
        << *error;
}

TEST(Config, TargetSelectsTargetModeAndAnEmptyValueResetsIt) {
    EXPECT_EQ(parse_ok("[Services]\nTarget=freeha-services.target\n").services.target, "freeha-services.target");
    EXPECT_EQ(parse_ok("[Services]\nTarget=web@1.service\nTarget=\n").services.target, "");
}

TEST(Config, AReloadMayChangeTimingsButNotTheClusterIdentity) {
    Config running = parse_ok("[Cluster]\nName=a\n[Heartbeat]\nChannel=broadcast 10.0.0.1\n");
    Config timings = parse_ok("[Cluster]\nName=a\nExpectedNodes=5\n[Heartbeat]\nDeadTime=3s\nChannel=broadcast 10.0.0.1\n");
    EXPECT_FALSE(fixed_setting_changed(running, timings));
    Config renamed = parse_ok("[Cluster]\nName=b\n[Heartbeat]\nChannel=broadcast 10.0.0.1\n");
    EXPECT_EQ(fixed_setting_changed(running, renamed),
              "test.conf:2: Name= cannot change while freehad runs; restart it to apply");
    Config moved = parse_ok("[Cluster]\nName=a\n[Heartbeat]\nChannel=broadcast 10.0.0.2\n");
    EXPECT_NE(fixed_setting_changed(running, moved)->find("Channel="), std::string::npos);
    Config targeted = parse_ok("[Cluster]\nName=a\n[Heartbeat]\nChannel=broadcast 10.0.0.1\n[Services]\nTarget=x.target\n");
    EXPECT_NE(fixed_setting_changed(running, targeted)->find("Target="), std::string::npos);
}

TEST(Config, ValidationRequiresAChannel) {
    Config c;
    auto error = validate(c);
    ASSERT_TRUE(error);
    EXPECT_NE(error->find("no heartbeat channel"), std::string::npos);
}

TEST(Config, ValidationRefusesTwoChannelsFromTheSameSource) {
    Config c = parse_ok("[Heartbeat]\nChannel=broadcast 10.0.0.1\nChannel=multicast 10.0.0.1 239.1.1.1\n");
    EXPECT_EQ(validate(c), "test.conf:3: channels 'broadcast 10.0.0.1 10.0.0.255' and 'multicast 10.0.0.1 239.1.1.1' "
                           "both bind 10.0.0.1 port 3891; each channel needs a SOURCE address of its own");
    // The same link-local address on two interfaces is two addresses.
    Config links = parse_ok("[Heartbeat]\nChannel=multicast fe80::1%eth0 ff02::f33\nChannel=multicast fe80::1%eth1 ff02::f33\n"
                            "Channel=unicast 10.0.0.1 10.0.0.2\nChannel=unicast fd00::1 fd00::2\n");
    EXPECT_FALSE(validate(links));
}

TEST(Config, RenderedConfigParsesBackToTheSameValues) {
    Config c = parse_ok("[Cluster]\nName=prod\nNodeName=n1\nExpectedNodes=4\n[Heartbeat]\nInterval=50ms\n"
                        "Channel=unicast 127.0.0.1 127.0.0.2\n[Status]\nJSONFile=/x/y.json\n");
    Config again = parse_ok(render(c));
    EXPECT_EQ(render(again), render(c));
    EXPECT_EQ(again.channels, c.channels);
    EXPECT_EQ(again.interval, c.interval);
}

// --- service groups: [Group NAME] -------------------------------------------

namespace {

constexpr const char* kChannel = "[Heartbeat]\nChannel=broadcast 10.0.0.1\n";

std::vector<std::string> group_names(const Config& c) {
    std::vector<std::string> names;
    for (const GroupConfig* g : c.all_groups()) names.push_back(g->name);
    return names;
}

// `count` sections [Group g01] ... each with its own target.
std::string numbered_groups(unsigned count) {
    std::string text;
    for (unsigned i = 1; i <= count; ++i) {
        char name[8];
        std::snprintf(name, sizeof name, "g%02u", i);
        text += std::string("[Group ") + name + "]\nTarget=" + name + ".target\n";
    }
    return text;
}

}  // namespace

TEST(Groups, AGroupTakesEveryKeyOfTheServicesGroup) {
    Config c = parse_ok("[Group web]\nHooksDirectory=/etc/freeha/web\nTarget=web.target\nMonitorInterval=3s\n"
                        "StartTimeout=1min\nStopTimeout=2min\nMonitorTimeout=5s\nAddress=192.0.2.10/24 eth0\n"
                        "Address=2001:db8::10/64 eth0\nAnnounceRefresh=30s\nNodes=bravo  alpha\tcharlie\n");
    ASSERT_EQ(c.groups.size(), 1u);
    const GroupConfig& g = c.groups[0];
    EXPECT_EQ(g.name, "web");
    EXPECT_EQ(g.origin, "test.conf:1");
    EXPECT_FALSE(g.is_default());
    EXPECT_EQ(g.section(), "Group web");
    EXPECT_EQ(g.hooks_directory, "/etc/freeha/web");
    EXPECT_EQ(g.target, "web.target");
    EXPECT_EQ(g.monitor_interval, 3 * kUsecPerSec);
    EXPECT_EQ(g.start_timeout, 60 * kUsecPerSec);
    EXPECT_EQ(g.stop_timeout, 120 * kUsecPerSec);
    EXPECT_EQ(g.monitor_timeout, 5 * kUsecPerSec);
    ASSERT_EQ(g.addresses.size(), 2u);
    EXPECT_EQ(g.addresses[1].to_string(), "2001:db8::10/64 eth0");
    EXPECT_EQ(g.addresses[1].origin, "test.conf:9");
    EXPECT_EQ(g.announce_refresh, 30 * kUsecPerSec);
    EXPECT_EQ(g.nodes, (std::vector<std::string>{"bravo", "alpha", "charlie"}));
    EXPECT_EQ(c.origin.at("Group web.Target"), "test.conf:3");
    // The default group is untouched.
    EXPECT_EQ(c.services.hooks_directory, "/etc/freeha/hooks");
    EXPECT_TRUE(c.services.target.empty());
    EXPECT_TRUE(c.services.addresses.empty());
    EXPECT_TRUE(c.services.is_default());
    EXPECT_EQ(c.services.section(), "Services");
}

TEST(Groups, ServicesIsTheDefaultGroupAndTakesNodesToo) {
    Config c = parse_ok("[Services]\nNodes=alpha bravo\n");
    EXPECT_EQ(c.services.name, "default");
    EXPECT_EQ(c.services.nodes, (std::vector<std::string>{"alpha", "bravo"}));
    EXPECT_TRUE(c.groups.empty());
    EXPECT_EQ(group_names(c), std::vector<std::string>{"default"});
    EXPECT_EQ(c.group("default"), &c.services);
    EXPECT_EQ(c.group("web"), nullptr);
    // An empty Nodes= clears the order; a later one replaces it.
    EXPECT_TRUE(parse_ok("[Services]\nNodes=alpha\nNodes=\n").services.nodes.empty());
    EXPECT_EQ(parse_ok("[Services]\nNodes=alpha\nNodes=bravo\n").services.nodes, std::vector<std::string>{"bravo"});
}

TEST(Groups, AreKeptInNameOrderWithTheDefaultFirst) {
    Config c = parse_ok("[Group web]\nTarget=web.target\n[Group db]\nTarget=db.target\n[Group cache-2]\n"
                        "Target=cache.target\n[Group Web_1]\nTarget=w1.target\n");
    EXPECT_EQ(group_names(c), (std::vector<std::string>{"default", "Web_1", "cache-2", "db", "web"}));
    ASSERT_NE(c.group("db"), nullptr);
    EXPECT_EQ(c.group("db")->target, "db.target");
    EXPECT_EQ(c.group("DB"), nullptr);  // names are exact; case variants are refused, not looked up
}

TEST(Groups, ADropInChangesAGroupOfAnotherFileAndMayAddOne) {
    Config c;
    ASSERT_EQ(apply_ini(c, "[Group web]\nTarget=web.target\nStopTimeout=1min\n", "freehad.conf"), std::nullopt);
    ASSERT_EQ(apply_ini(c, "[Group web]\nStopTimeout=2min\n[Group db]\nHooksDirectory=/h/db\n", "50-x.conf"),
              std::nullopt);
    ASSERT_EQ(c.groups.size(), 2u);
    const GroupConfig* web = c.group("web");
    ASSERT_NE(web, nullptr);
    EXPECT_EQ(web->origin, "freehad.conf:1");  // where it was defined first
    EXPECT_EQ(web->target, "web.target");
    EXPECT_EQ(web->stop_timeout, 120 * kUsecPerSec);
    EXPECT_EQ(c.origin.at("Group web.StopTimeout"), "50-x.conf:2");
    EXPECT_EQ(c.group("db")->origin, "50-x.conf:3");
}

TEST(Groups, AnAddressMayMoveToAnotherGroupInALaterDropIn) {
    // Refused per line, this would fail at 50-x.conf:2 although the result is sound.
    Config c;
    ASSERT_EQ(apply_ini(c, std::string(kChannel) + "[Group a]\nTarget=a.target\nAddress=192.0.2.10/24 eth0\n"
                                                    "[Group b]\nTarget=b.target\n",
                        "freehad.conf"),
              std::nullopt);
    ASSERT_EQ(apply_ini(c, "[Group b]\nAddress=192.0.2.10/24 eth0\n[Group a]\nAddress=\n", "50-x.conf"), std::nullopt);
    EXPECT_EQ(validate(c), std::nullopt);
    EXPECT_EQ(c.group("b")->addresses.size(), 1u);
}

TEST(Groups, AGroupHasNoDefaultHooksDirectoryButMayShareOne) {
    Config target_only = parse_ok(std::string(kChannel) + "[Group web]\nTarget=web.target\n");
    EXPECT_EQ(target_only.groups[0].hooks_directory, "");
    EXPECT_EQ(validate(target_only), std::nullopt);
    // One hooks directory for two groups is allowed (the hooks may tell the groups apart).
    Config shared = parse_ok(std::string(kChannel) + "[Services]\nHooksDirectory=/h\n[Group web]\nHooksDirectory=/h\n");
    EXPECT_EQ(validate(shared), std::nullopt);
    // A group's HooksDirectory= may be emptied (none); [Services]' may not.
    EXPECT_EQ(parse_ok("[Group web]\nHooksDirectory=/h\nHooksDirectory=\n").groups[0].hooks_directory, "");
}

TEST(Groups, AFileMayHave63GroupsBesideServicesButNotOneMore) {
    std::string text = numbered_groups(kMaxGroups - 1);
    Config c = parse_ok(text);
    EXPECT_EQ(c.all_groups().size(), kMaxGroups);
    // The 64th [Group] line is line 127: each group takes two lines.
    EXPECT_EQ(parse_error(text + "[Group zz]\nTarget=zz.target\n"),
              "test.conf:127: [Group zz]: one group too many: at most 64 groups in all, [Services] included (as many "
              "as one heartbeat carries)");
    // Counted over every file: a drop-in's group counts as one.
    Config more = parse_ok(text);
    EXPECT_EQ(apply_ini(more, "[Group g01]\nStopTimeout=1min\n", "50-x.conf"), std::nullopt);  // not new
    EXPECT_EQ(apply_ini(more, "\n[Group extra]\n", "50-x.conf"),
              "50-x.conf:2: [Group extra]: one group too many: at most 64 groups in all, [Services] included (as "
              "many as one heartbeat carries)");
}

TEST(Groups, NodesTakesAtMostAClustersNodes) {
    std::string names;
    for (unsigned i = 0; i < kMaxNodes; ++i) names += " n" + std::to_string(i);
    EXPECT_EQ(parse_ok("[Services]\nNodes=" + names + "\n").services.nodes.size(), kMaxNodes);
    EXPECT_NE(parse_error("[Services]\nNodes=" + names + " one-more\n")
                  .find("test.conf:2: [Services] Nodes=n0 n1"),
              std::string::npos);
    EXPECT_NE(parse_error("[Services]\nNodes=" + names + " one-more\n")
                  .find(": more than 64 nodes (as many as a cluster has at most)"),
              std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    GroupErrors, ConfigErrors,
    ::testing::Values(
        ErrorCase{"[Group web.1]\nTarget=a.target\n",
                  "test.conf:1: [Group web.1]: 'web.1' is not a group name: expected 1 to 32 characters of A-Z a-z "
                  "0-9 - _"},
        ErrorCase{"[Cluster]\nName=x\n[Group web/1]\n", "test.conf:3: [Group web/1]: 'web/1' is not a group name"},
        ErrorCase{"[Group  web]\n", "test.conf:1: [Group  web]: ' web' is not a group name"},
        ErrorCase{"[Group 0123456789abcdef0123456789abcdefX]\n",
                  "test.conf:1: [Group 0123456789abcdef0123456789abcdefX]: the group name is 33 characters long; at "
                  "most 32"},
        ErrorCase{"[Group]\nTarget=a.target\n", "test.conf:1: [Group]: a group needs a name: [Group NAME]"},
        ErrorCase{"[Group caf\xc3]\n", "test.conf:1: a [Group NAME] line whose NAME is not valid UTF-8"},
        ErrorCase{"[Group default]\nTarget=a.target\n",
                  "test.conf:1: [Group default]: 'default' is the group of [Services]: set its keys there"},
        ErrorCase{"[Group DEFAULT]\n", "test.conf:1: [Group DEFAULT]: 'default' is the group of [Services]"},
        ErrorCase{"[Group web]\nTarget=a.target\n[Services]\nMonitorInterval=3s\n[Group web]\nStopTimeout=1min\n",
                  "test.conf:5: [Group web] is already defined at test.conf:1; give each group one section per file "
                  "(a drop-in may change it)"},
        ErrorCase{"[Group web]\n[Group web]\n", "test.conf:2: [Group web] is already defined at test.conf:1"},
        ErrorCase{"[Group web]\nTarget=a.target\n[Group Web]\nTarget=b.target\n",
                  "test.conf:3: [Group Web]: differs only in case from [Group web] (test.conf:1); group names must "
                  "differ in more than case"},
        // FNV-1a 32 gives both names the same id on the wire (found by search).
        ErrorCase{"[Group g115728]\nTarget=a.target\n[Group g2169004]\nTarget=b.target\n",
                  "test.conf:3: [Group g2169004]: the name hashes to the same id on the wire as [Group g115728] "
                  "(test.conf:1); choose another name"},
        ErrorCase{"[Group web]\nFenceTimeout=1s\n",
                  "test.conf:2: [Group web] FenceTimeout= is a setting of the node, not of a group: set it in "
                  "[Services]"},
        ErrorCase{"[Group web]\nSelfFence=reboot\n",
                  "test.conf:2: [Group web] SelfFence= is a setting of the node, not of a group: set it in [Services]"},
        ErrorCase{"[Group web]\nBogus=1\n", "test.conf:2: [Group web] unknown key 'Bogus'"},
        ErrorCase{"[Group web]\nNodes=alpha b.c\n",
                  "test.conf:2: [Group web] Nodes=alpha b.c: 'b.c' is not a node name (1 to 64 characters of A-Z "
                  "a-z 0-9 - _)"},
        ErrorCase{"[Group web]\nNodes=alpha bravo alpha\n",
                  "test.conf:2: [Group web] Nodes=alpha bravo alpha: 'alpha' is named twice"},
        ErrorCase{"[Services]\nNodes=alpha alpha\n", "test.conf:2: [Services] Nodes=alpha alpha: 'alpha' is named twice"},
        ErrorCase{"[Group web]\nMonitorInterval=1ms\n",
                  "test.conf:2: [Group web] MonitorInterval=1ms: must be at least 10ms"},
        ErrorCase{"[Group web]\nHooksDirectory=web\n",
                  "test.conf:2: [Group web] HooksDirectory=web: expected an absolute path"},
        ErrorCase{"[Group web]\nTarget=web\n", "test.conf:2: [Group web] Target=web: expected a unit name"},
        ErrorCase{"[Group web]\nAddress=192.0.2.10/24 eth0\nAddress=192.0.2.10/25 eth1\n",
                  "test.conf:3: [Group web] Address=192.0.2.10/25 eth1: 192.0.2.10 is already configured at "
                  "test.conf:2 (Address=192.0.2.10/24 eth0)"},
        ErrorCase{"[Group web]\nStartTimeout=\xff\n", "test.conf:2: [Group web] StartTimeout=: not valid UTF-8"},
        // Sections stay case-sensitive, as in systemd.
        ErrorCase{"[group web]\nTarget=a.target\n", "test.conf:2: unknown section [group web]"},
        ErrorCase{"[Groups web]\nTarget=a.target\n", "test.conf:2: unknown section [Groups web]"}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

struct ValidationCase {
    const char* text;
    BusKind bus;
    const char* expected;  // validate()'s whole line
};

class GroupValidation : public ::testing::TestWithParam<ValidationCase> {};

TEST_P(GroupValidation, NamesTheGroupAndWhereItsValuesCameFrom) {
    Config c = parse_ok(GetParam().text);
    c.bus = GetParam().bus;
    EXPECT_EQ(validate(c).value_or("<valid>"), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    EveryCheck, GroupValidation,
    ::testing::Values(
        ValidationCase{"[Heartbeat]\nChannel=broadcast 10.0.0.1\n[Group web]\nMonitorInterval=3s\n", BusKind::System,
                       "test.conf:3: [Group web] has neither HooksDirectory= nor Target=: name the directory of the "
                       "group's hooks or the systemd unit of its services"},
        ValidationCase{"[Heartbeat]\nChannel=broadcast 10.0.0.1\n[Services]\nAddress=192.0.2.10/24 eth0\n"
                       "[Group web]\nTarget=web.target\nAddress=192.0.2.10/25 eth1\n",
                       BusKind::System,
                       "test.conf:7: [Group web] Address=192.0.2.10/25 eth1: 192.0.2.10 is also an address of "
                       "[Services] (test.conf:4, Address=192.0.2.10/24 eth0); an address moves with one group only"},
        ValidationCase{"[Heartbeat]\nChannel=broadcast 10.0.0.1\n[Group web]\nTarget=web.target\n"
                       "Address=2001:db8::10/64 eth0\n[Group db]\nTarget=db.target\nAddress=2001:DB8::10/64 eth0 dad\n",
                       BusKind::System,
                       "test.conf:5: [Group web] Address=2001:db8::10/64 eth0: 2001:db8::10 is also an address of "
                       "[Group db] (test.conf:8, Address=2001:db8::10/64 eth0 dad); an address moves with one group "
                       "only"},
        ValidationCase{"[Heartbeat]\nChannel=broadcast 10.0.0.1\n[Services]\nTarget=app.target\n[Group web]\n"
                       "Target=app.target\n",
                       BusKind::System,
                       "test.conf:6: [Group web] Target=app.target is also the Target= of [Services] (test.conf:4); "
                       "each group needs a unit of its own"},
        ValidationCase{"[Heartbeat]\nChannel=broadcast 10.0.0.1\n[Group web]\nTarget=a.target\n[Group db]\n"
                       "Target=a.target\n",
                       BusKind::System,
                       "test.conf:4: [Group web] Target=a.target is also the Target= of [Group db] (test.conf:6); "
                       "each group needs a unit of its own"},
        ValidationCase{"[Heartbeat]\nChannel=broadcast 10.0.0.1\n[Group web]\nTarget=web.target\n"
                       "Address=10.0.0.1/24 eth0\n",
                       BusKind::System,
                       "test.conf:5: [Group web] Address=10.0.0.1/24 eth0 is the SOURCE of the heartbeat channel "
                       "'broadcast 10.0.0.1 10.0.0.255' (test.conf:2); a channel needs an address of this node's own, "
                       "which stays when the services move"},
        ValidationCase{"[Cluster]\nRole=arbitrator\n[Heartbeat]\nChannel=broadcast 10.0.0.1\n[Group web]\n"
                       "Target=web.target\nAddress=192.0.2.10/24 eth0\n",
                       BusKind::System,
                       "test.conf:7: [Group web] Address=192.0.2.10/24 eth0: an arbitrator never runs services, so it "
                       "never holds a floating address (test.conf:2)"},
        ValidationCase{"[Heartbeat]\nChannel=broadcast 10.0.0.1\n[Group web]\nTarget=web.target\n", BusKind::None,
                       "test.conf:4: [Group web] Target=web.target needs D-Bus to reach systemd, but --no-bus was "
                       "given"},
        // Sound: distinct addresses and targets, and the same link-local address on two interfaces.
        ValidationCase{"[Heartbeat]\nChannel=broadcast 10.0.0.1\n[Services]\nTarget=app.target\n"
                       "Address=fe80::10/64 eth0\n[Group web]\nTarget=web.target\nAddress=fe80::10/64 eth1\n",
                       BusKind::System, "<valid>"}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

TEST(Groups, RenderPrintsEachGroupAndParsesBackToTheSameConfiguration) {
    Config c = parse_ok(std::string(kChannel) +
                        "[Services]\nNodes=alpha bravo\n[Group web]\nHooksDirectory=/etc/freeha/web\nStopTimeout=1min\n"
                        "Address=192.0.2.10/24 eth0 label=eth0:web\nAnnounceRefresh=1min\nNodes=bravo alpha\n"
                        "[Group db]\nTarget=db.target\n");
    std::string text = render(c);
    EXPECT_NE(text.find("\n[Services]\nHooksDirectory=/etc/freeha/hooks\nTarget=\nMonitorInterval=2s\n"
                        "StartTimeout=5min\nStopTimeout=5min\nMonitorTimeout=30s\nAddress=\nAnnounceRefresh=0\n"
                        "Nodes=alpha bravo\nFenceTimeout=500ms\nSelfFence=none\n\n"
                        "[Group db]\nHooksDirectory=\nTarget=db.target\nMonitorInterval=2s\nStartTimeout=5min\n"
                        "StopTimeout=5min\nMonitorTimeout=30s\nAddress=\nAnnounceRefresh=0\nNodes=\n\n"
                        "[Group web]\nHooksDirectory=/etc/freeha/web\nTarget=\nMonitorInterval=2s\nStartTimeout=5min\n"
                        "StopTimeout=1min\nMonitorTimeout=30s\nAddress=192.0.2.10/24 eth0 label=eth0:web\n"
                        "AnnounceRefresh=1min\nNodes=bravo alpha\n\n[Status]\n"),
              std::string::npos)
        << text;
    Config again = parse_ok(text);
    EXPECT_EQ(render(again), text);
    EXPECT_EQ(group_names(again), group_names(c));
    EXPECT_EQ(again.group("web")->addresses, c.group("web")->addresses);
    EXPECT_EQ(again.group("web")->nodes, c.group("web")->nodes);
    EXPECT_EQ(again.services.nodes, c.services.nodes);
    EXPECT_EQ(validate(again), std::nullopt);
    EXPECT_EQ(rendered_setting(c, "Group web.StopTimeout"), "1min");
    EXPECT_EQ(rendered_setting(c, "Group web.Address"), "192.0.2.10/24 eth0 label=eth0:web");
    EXPECT_EQ(rendered_setting(c, "Group db.Target"), "db.target");
    EXPECT_EQ(rendered_setting(c, "Services.Nodes"), "alpha bravo");
    EXPECT_EQ(rendered_setting(c, "Group nosuch.Target"), "");
    // Without groups the rendering has no [Group] section.
    EXPECT_EQ(render(parse_ok(kChannel)).find("[Group"), std::string::npos);
}

TEST(Groups, AReloadMayAddAndRemoveGroupsButNotChangeAGroupsUnitOrHooks) {
    Config running = parse_ok(std::string(kChannel) + "[Group web]\nTarget=web.target\n[Group db]\nHooksDirectory=/h/db\n");
    Config added = parse_ok(std::string(kChannel) + "[Group web]\nTarget=web.target\nStopTimeout=1min\n"
                                                    "Address=192.0.2.10/24 eth0\nNodes=alpha\n[Group db]\n"
                                                    "HooksDirectory=/h/db\n[Group cache]\nTarget=cache.target\n");
    EXPECT_EQ(fixed_setting_changed(running, added), std::nullopt);
    EXPECT_EQ(fixed_setting_changed(added, running), std::nullopt);  // cache removed
    Config none = parse_ok(kChannel);
    EXPECT_EQ(fixed_setting_changed(running, none), std::nullopt);
    Config retargeted = parse_ok(std::string(kChannel) + "[Group web]\n\nTarget=www.target\n[Group db]\n"
                                                         "HooksDirectory=/h/db\n");
    EXPECT_EQ(fixed_setting_changed(running, retargeted),
              "test.conf:5: [Group web] Target= cannot change while freehad runs; restart it to apply");
    Config moved = parse_ok(std::string(kChannel) + "[Group web]\nTarget=web.target\n[Group db]\nHooksDirectory=/h/db2\n");
    EXPECT_EQ(fixed_setting_changed(running, moved),
              "test.conf:6: [Group db] HooksDirectory= cannot change while freehad runs; restart it to apply");
    // [Services]' keep their message.
    Config services = parse_ok(std::string(kChannel) + "[Services]\nTarget=x.target\n");
    EXPECT_EQ(fixed_setting_changed(none, services),
              "test.conf:4: Target= cannot change while freehad runs; restart it to apply");
}

TEST(Groups, GroupNames) {
    EXPECT_TRUE(is_valid_group_name("web"));
    EXPECT_TRUE(is_valid_group_name("Web-1_a"));
    EXPECT_TRUE(is_valid_group_name(std::string(kMaxGroupNameLength, 'x')));
    EXPECT_FALSE(is_valid_group_name(std::string(kMaxGroupNameLength + 1, 'x')));
    EXPECT_FALSE(is_valid_group_name(""));
    EXPECT_FALSE(is_valid_group_name("a b"));
    EXPECT_FALSE(is_valid_group_name("a.b"));
    EXPECT_FALSE(is_valid_group_name("caf\xc3\xa9"));
}

// --- the command line -------------------------------------------------------

namespace {

std::optional<CommandLine> parse_args(std::vector<std::string> args, std::string* error) {
    args.insert(args.begin(), "freehad");
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    return parse_command_line(static_cast<int>(args.size()), argv.data(), error);
}

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char tmpl[] = "/tmp/freeha-test-XXXXXX";
        path = mkdtemp(tmpl);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    std::string write(const std::string& name, const std::string& text) const {
        std::filesystem::create_directories((path / name).parent_path());
        std::ofstream(path / name) << text;
        return (path / name).string();
    }
};

}  // namespace

TEST(CommandLine, FreeHAFlagsOverrideTheConfigFile) {
    TempDir dir;
    std::string conf = dir.write("freehad.conf",
                                 "[Cluster]\nExpectedNodes=5\nNodeName=filenode\n[Heartbeat]\nChannel=unicast 127.0.0.1 127.0.0.2\n");
    std::string error;
    auto cl = parse_args({"--config", conf, "-a", "10.1.1.5", "-B", "10.2.255.255", "-b", "10.2.0.5", "-n", "3", "-p",
                          "4000", "-s", "/opt/h", "-M", "5", "-T", "2", "-l", "/tmp/st", "-m", "--node-name", "n1",
                          "--status-file", "/tmp/x.json", "--no-bus"},
                         &error);
    ASSERT_TRUE(cl) << error;
    auto c = load_config(*cl, &error);
    ASSERT_TRUE(c) << error;
    EXPECT_EQ(c->expected_nodes, 3u);
    EXPECT_EQ(c->node_name, "n1");
    EXPECT_EQ(c->port, 4000);
    EXPECT_EQ(c->services.hooks_directory, "/opt/h");
    EXPECT_EQ(c->services.monitor_interval, 5 * kUsecPerSec);  // FreeHA's -M is in seconds
    EXPECT_EQ(c->dead_time, 2 * kUsecPerSec);
    EXPECT_EQ(c->state_file, "/tmp/st");
    EXPECT_EQ(c->json_file, "/tmp/x.json");
    EXPECT_TRUE(c->force_start);
    EXPECT_EQ(c->bus, BusKind::None);
    ASSERT_EQ(c->channels.size(), 2u);  // flag channels replace the file's
    EXPECT_EQ(c->channels[0].to_string(), "broadcast 10.1.1.5 10.1.1.255");
    EXPECT_EQ(c->channels[1].to_string(), "broadcast 10.2.0.5 10.2.255.255");
}

TEST(CommandLine, DropInsApplyInLexicalOrderAfterTheMainFile) {
    TempDir dir;
    std::string conf = dir.write("freehad.conf", "[Cluster]\nExpectedNodes=5\nNodeName=x\n[Heartbeat]\nChannel=broadcast 10.0.0.1\n");
    dir.write("freehad.conf.d/20-b.conf", "[Cluster]\nExpectedNodes=4\n");
    dir.write("freehad.conf.d/10-a.conf", "[Cluster]\nExpectedNodes=3\nName=dropin\n");
    dir.write("freehad.conf.d/ignored.txt", "[Cluster]\nExpectedNodes=9\n");
    std::string error;
    auto cl = parse_args({"--config", conf}, &error);
    auto c = load_config(*cl, &error);
    ASSERT_TRUE(c) << error;
    EXPECT_EQ(c->expected_nodes, 4u);
    EXPECT_EQ(c->cluster_name, "dropin");
}

TEST(CommandLine, ADropInErrorNamesTheDropInFileAndLine) {
    TempDir dir;
    std::string conf = dir.write("freehad.conf", "[Cluster]\nNodeName=x\n");
    std::string bad = dir.write("freehad.conf.d/50-bad.conf", "[Heartbeat]\n\nIntervall=1s\n");
    std::string error;
    auto cl = parse_args({"--config", conf}, &error);
    EXPECT_FALSE(load_config(*cl, &error));
    EXPECT_EQ(error, bad + ":3: [Heartbeat] unknown key 'Intervall'");
}

TEST(CommandLine, AnAddressGivenInTwoFilesNamesBoth) {
    TempDir dir;
    std::string conf = dir.write("freehad.conf", "[Cluster]\nNodeName=x\n[Heartbeat]\nChannel=broadcast 10.0.0.1\n"
                                                 "[Services]\nAddress=192.0.2.10/24 eth0\n");
    std::string dropin = dir.write("freehad.conf.d/50-web.conf", "[Services]\nAddress=192.0.2.10/24 eth0 label=eth0:web\n");
    std::string error;
    auto cl = parse_args({"--config", conf}, &error);
    EXPECT_FALSE(load_config(*cl, &error));
    EXPECT_EQ(error, dropin + ":2: [Services] Address=192.0.2.10/24 eth0 label=eth0:web: 192.0.2.10 is already "
                              "configured at " + conf + ":6 (Address=192.0.2.10/24 eth0)");
    // A drop-in that starts with an empty Address= replaces the list.
    dir.write("freehad.conf.d/50-web.conf", "[Services]\nAddress=\nAddress=192.0.2.10/24 eth0 label=eth0:web\n");
    auto c = load_config(*cl, &error);
    ASSERT_TRUE(c) << error;
    ASSERT_EQ(c->services.addresses.size(), 1u);
    EXPECT_EQ(c->services.addresses[0].origin, dropin + ":3");
}

TEST(CommandLine, OneDropInPerGroup) {
    TempDir dir;
    std::string conf = dir.write("freehad.conf", "[Cluster]\nNodeName=x\n[Heartbeat]\nChannel=broadcast 10.0.0.1\n"
                                                 "[Group web]\nTarget=web.target\n");
    dir.write("freehad.conf.d/web.conf", "[Group web]\nAddress=192.0.2.10/24 eth0\n");
    std::string db = dir.write("freehad.conf.d/db.conf", "[Group db]\nTarget=db.target\nAddress=192.0.2.11/24 eth0\n");
    std::string error;
    auto cl = parse_args({"--config", conf}, &error);
    auto c = load_config(*cl, &error);
    ASSERT_TRUE(c) << error;
    ASSERT_EQ(c->groups.size(), 2u);
    EXPECT_EQ(c->groups[0].name, "db");
    EXPECT_EQ(c->groups[0].origin, db + ":1");
    EXPECT_EQ(c->groups[1].origin, conf + ":5");
    ASSERT_EQ(c->groups[1].addresses.size(), 1u);
    // The address of web given to db too: both groups and both lines are named.
    std::string web = dir.write("freehad.conf.d/web.conf", "[Group web]\nAddress=192.0.2.11/24 eth0\n");
    EXPECT_FALSE(load_config(*cl, &error));
    EXPECT_EQ(error, web + ":2: [Group web] Address=192.0.2.11/24 eth0: 192.0.2.11 is also an address of [Group db] (" +
                         db + ":3, Address=192.0.2.11/24 eth0); an address moves with one group only");
    // A drop-in that repeats its group is refused, naming the drop-in.
    dir.write("freehad.conf.d/web.conf", "[Group web]\nStopTimeout=1min\n[Group web]\nStartTimeout=1min\n");
    EXPECT_FALSE(load_config(*cl, &error));
    EXPECT_EQ(error, web + ":3: [Group web] is already defined at " + web +
                         ":1; give each group one section per file (a drop-in may change it)");
}

TEST(CommandLine, AnAddressThatIsAFlagChannelsSourceIsRefused) {
    TempDir dir;
    std::string conf = dir.write("freehad.conf", "[Services]\nAddress=10.1.1.5/24 eth0\n");
    std::string error;
    auto cl = parse_args({"--config", conf, "-a", "10.1.1.5"}, &error);
    EXPECT_FALSE(load_config(*cl, &error));
    EXPECT_EQ(error.rfind(conf + ":2: Address=10.1.1.5/24 eth0 is the SOURCE of the heartbeat channel 'broadcast "
                                 "10.1.1.5 10.1.1.255' (-a)", 0), 0u)
        << error;
}

TEST(CommandLine, AMissingExplicitConfigFileIsAnError) {
    std::string error;
    auto cl = parse_args({"--config", "/nonexistent/freehad.conf"}, &error);
    EXPECT_FALSE(load_config(*cl, &error));
    EXPECT_EQ(error, "/nonexistent/freehad.conf: No such file or directory");
}

TEST(CommandLine, AReloadRefusesAnEditThatAFlagWouldSilentlyUndo) {
    TempDir dir;
    std::string conf = dir.write("freehad.conf",
                                 "[Cluster]\nNodeName=x\nExpectedNodes=3\n[Heartbeat]\nChannel=broadcast 10.0.0.1\n"
                                 "DeadTime=3s\n");
    std::string error;
    auto cl = parse_args({"--config", conf, "-T", "2"}, &error);
    auto running = load_config(*cl, &error);
    ASSERT_TRUE(running) << error;
    EXPECT_EQ(running->dead_time, 2 * kUsecPerSec);
    EXPECT_EQ(describe_shadowed(*running),
              std::vector<std::string>{conf + ":6: DeadTime=3s is overridden by the flag -T (2s)"});

    // Another key may change; the shadowed one, unchanged in the file, is no news.
    dir.write("freehad.conf",
              "[Cluster]\nNodeName=x\nExpectedNodes=5\n[Heartbeat]\nChannel=broadcast 10.0.0.1\nDeadTime=3s\n");
    auto other_key = load_config(*cl, &error);
    ASSERT_TRUE(other_key) << error;
    EXPECT_EQ(shadowed_setting_changed(*running, *other_key), std::nullopt);

    // The admin edits DeadTime= and reloads: the flag would keep 2s.
    dir.write("freehad.conf",
              "[Cluster]\nNodeName=x\nExpectedNodes=3\n[Heartbeat]\nChannel=broadcast 10.0.0.1\nDeadTime=4s\n");
    auto edited = load_config(*cl, &error);
    ASSERT_TRUE(edited) << error;
    EXPECT_EQ(shadowed_setting_changed(*running, *edited),
              conf + ":6: DeadTime=4s has no effect: the command-line flag -T keeps it at 2s; remove the flag from "
                     "freehad's command line (systemctl edit freehad) or restore the file");

    // An edit that agrees with the flag is fine.
    dir.write("freehad.conf",
              "[Cluster]\nNodeName=x\nExpectedNodes=3\n[Heartbeat]\nChannel=broadcast 10.0.0.1\nDeadTime=2s\n");
    auto agreeing = load_config(*cl, &error);
    ASSERT_TRUE(agreeing) << error;
    EXPECT_EQ(shadowed_setting_changed(*running, *agreeing), std::nullopt);
    EXPECT_TRUE(describe_shadowed(*agreeing).empty());
}

TEST(Config, RenderedSettingJoinsRepeatedKeys) {
    Config c;
    c.channels = {*parse_channel_spec("broadcast 10.0.0.1", nullptr), *parse_channel_spec("unicast 10.1.0.1 10.1.0.2", nullptr)};
    EXPECT_EQ(rendered_setting(c, "Heartbeat.Channel"), "broadcast 10.0.0.1 10.0.0.255, unicast 10.1.0.1 10.1.0.2");
    EXPECT_EQ(rendered_setting(c, "Heartbeat.Interval"), "200ms");
    EXPECT_EQ(rendered_setting(c, "Cluster.Interval"), "");
}

struct FlagErrorCase {
    std::vector<std::string> args;
    const char* expected;
};

class CommandLineErrors : public ::testing::TestWithParam<FlagErrorCase> {};

TEST_P(CommandLineErrors, NameTheFlag) {
    std::string error;
    auto cl = parse_args(GetParam().args, &error);
    if (cl) {
        EXPECT_FALSE(load_config(*cl, &error));
    }
    EXPECT_NE(error.find(GetParam().expected), std::string::npos) << "got: " << error;
}

INSTANTIATE_TEST_SUITE_P(
    EveryFlag, CommandLineErrors,
    ::testing::Values(FlagErrorCase{{"-z"}, "unknown option '-z'"},
                      FlagErrorCase{{"--frobnicate"}, "unknown option '--frobnicate'"},
                      FlagErrorCase{{"-n"}, "option '-n' needs a value"},
                      FlagErrorCase{{"stray"}, "unexpected argument 'stray'"},
                      FlagErrorCase{{"--config", "/dev/null", "-a", "127.0.0.1", "-n", "many"}, "-n: [Cluster] ExpectedNodes=many"},
                      FlagErrorCase{{"--config", "/dev/null", "-a", "127.0.0.1", "-T", "soon"}, "-T: [Heartbeat] DeadTime=soon"},
                      FlagErrorCase{{"--config", "/dev/null", "-a", "127.0.0.1", "-p", "0"}, "-p: [Heartbeat] Port=0"},
                      FlagErrorCase{{"--config", "/dev/null", "-a", "127.0.0.1", "-s", "hooks"}, "-s: [Services] HooksDirectory=hooks"},
                      FlagErrorCase{{"--config", "/dev/null", "-a", "300.0.0.1"}, "-a: SOURCE '300.0.0.1': not an IPv4 or IPv6 address"},
                      FlagErrorCase{{"--config", "/dev/null", "-B", "10.0.0.255"}, "-B needs -b"},
                      FlagErrorCase{{"--config", "/dev/null", "-a", "127.0.0.1", "--node-name", "a.b"}, "--node-name: [Cluster] NodeName=a.b"}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

// --- [Cluster] Backend= and [Etcd] -------------------------------------------

namespace {

constexpr const char* kEtcd = "[Cluster]\nBackend=etcd\n[Etcd]\nEndpoints=https://etcd1:2379\n";

}  // namespace

TEST(Etcd, TheBackendIsHeartbeatUnlessEtcdIsChosen) {
    Config none = parse_ok(kChannel);
    EXPECT_EQ(none.backend, Backend::Heartbeat);
    EXPECT_EQ(node_settings(none, 0).backend, Backend::Heartbeat);
    EXPECT_TRUE(none.etcd_endpoints.empty());
    EXPECT_EQ(parse_ok("[Cluster]\nBackend=heartbeat\n").backend, Backend::Heartbeat);
    Config etcd = parse_ok(kEtcd);
    EXPECT_EQ(etcd.backend, Backend::Etcd);
    EXPECT_EQ(node_settings(etcd, 0).backend, Backend::Etcd);
    EXPECT_EQ(etcd.origin.at("Cluster.Backend"), "test.conf:2");
}

TEST(Etcd, ParsesEveryKeyAndRemembersWhere) {
    Config c = parse_ok("[Cluster]\nBackend=etcd\n[Etcd]\nEndpoints=https://etcd1:2379 https://etcd2:2379/\n"
                        "Endpoints=https://[2001:db8::3]:2379\nCAFile=/etc/freeha/etcd-ca.pem\n"
                        "CertFile=/etc/freeha/etcd.crt\nKeyFile=/etc/freeha/etcd.key\nPrefix=/ha/web/\n");
    EXPECT_EQ(c.etcd_endpoints,
              (std::vector<std::string>{"https://etcd1:2379", "https://etcd2:2379", "https://[2001:db8::3]:2379"}));
    EXPECT_EQ(c.etcd_ca_file, "/etc/freeha/etcd-ca.pem");
    EXPECT_EQ(c.etcd_cert_file, "/etc/freeha/etcd.crt");
    EXPECT_EQ(c.etcd_key_file, "/etc/freeha/etcd.key");
    EXPECT_EQ(c.etcd_prefix, "/ha/web/");
    EXPECT_EQ(effective_etcd_prefix(c), "/ha/web/");
    EXPECT_EQ(c.origin.at("Etcd.Endpoints"), "test.conf:5");
    EXPECT_EQ(c.origin.at("Etcd.CAFile"), "test.conf:6");
    EXPECT_EQ(c.origin.at("Etcd.Prefix"), "test.conf:9");
    EXPECT_EQ(validate(c), std::nullopt);
}

TEST(Etcd, AnEmptyValueClearsAListOrAFileOrThePrefix) {
    Config c = parse_ok("[Cluster]\nName=web\nBackend=etcd\n[Etcd]\nEndpoints=http://a:2379 http://b:2379\n"
                        "Endpoints=\nEndpoints=http://c:2379\nCAFile=/ca\nCAFile=\nPrefix=/x/\nPrefix=\n");
    EXPECT_EQ(c.etcd_endpoints, std::vector<std::string>{"http://c:2379"});
    EXPECT_EQ(c.etcd_ca_file, "");
    EXPECT_EQ(c.etcd_prefix, "");
    EXPECT_EQ(effective_etcd_prefix(c), "/freeha/web/");  // etcd::default_prefix(Name=)
    EXPECT_EQ(validate(c), std::nullopt);
}

struct EndpointCase {
    std::string value;
    std::vector<std::string> endpoints;  // as kept and rendered
};

class EtcdEndpointForms : public ::testing::TestWithParam<EndpointCase> {};

TEST_P(EtcdEndpointForms, AreKeptWithoutATrailingSlash) {
    Config c = parse_ok("[Etcd]\nEndpoints=" + GetParam().value + "\n");
    EXPECT_EQ(c.etcd_endpoints, GetParam().endpoints);
}

INSTANTIATE_TEST_SUITE_P(
    Valid, EtcdEndpointForms,
    ::testing::Values(EndpointCase{"http://127.0.0.1:2379", {"http://127.0.0.1:2379"}},
                      EndpointCase{"https://etcd1.example.com:2379/", {"https://etcd1.example.com:2379"}},
                      EndpointCase{"https://[2001:db8::1]:2379", {"https://[2001:db8::1]:2379"}},
                      EndpointCase{"https://[::1]:2379/", {"https://[::1]:2379"}},
                      EndpointCase{"http://localhost:1 https://e-2:65535", {"http://localhost:1", "https://e-2:65535"}},
                      EndpointCase{"  http://a:2379\thttp://B.c:2379/  ", {"http://a:2379", "http://B.c:2379"}},
                      EndpointCase{"http://0ab.9:2379", {"http://0ab.9:2379"}},
                      EndpointCase{"http://" + std::string(63, 'a') + ".b:2379",
                                   {"http://" + std::string(63, 'a') + ".b:2379"}}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

TEST(Etcd, AtMostSixteenEndpoints) {
    std::string sixteen;
    for (int i = 1; i <= 16; ++i) sixteen += " http://etcd" + std::to_string(i) + ":2379";
    Config c = parse_ok("[Etcd]\nEndpoints=" + sixteen + "\n");
    EXPECT_EQ(c.etcd_endpoints.size(), kMaxEtcdEndpoints);
    EXPECT_EQ(parse_error("[Etcd]\nEndpoints=" + sixteen + "\nEndpoints=http://etcd17:2379\n"),
              "test.conf:3: [Etcd] Endpoints=http://etcd17:2379: 'http://etcd17:2379': more than 16 endpoints; an "
              "empty Endpoints= clears the list");
    EXPECT_EQ(parse_ok("[Etcd]\nEndpoints=" + sixteen + "\nEndpoints=\nEndpoints=http://etcd17:2379\n").etcd_endpoints,
              std::vector<std::string>{"http://etcd17:2379"});
}

struct ExactErrorCase {
    std::string text;
    std::string expected;  // the whole line
};

class EtcdErrors : public ::testing::TestWithParam<ExactErrorCase> {};

TEST_P(EtcdErrors, AreOneLineNamingFileLineAndWhatIsWrong) {
    EXPECT_EQ(parse_error(GetParam().text), GetParam().expected);
}

namespace {

// [Etcd] Endpoints=VALUE on line 2, and the error it must give.
ExactErrorCase bad_endpoint(const std::string& value, const std::string& why) {
    return {"[Etcd]\nEndpoints=" + value + "\n", "test.conf:2: [Etcd] Endpoints=" + value + ": " + why};
}

const std::string kNotAHost =
    " is not a host name (labels of 1 to 63 letters, digits and '-', at most 253 characters), an IPv4 address or "
    "an [IPv6] address";

}  // namespace

INSTANTIATE_TEST_SUITE_P(
    EveryError, EtcdErrors,
    ::testing::Values(
        ExactErrorCase{"[Cluster]\nBackend=raft\n", "test.conf:2: [Cluster] Backend=raft: expected 'heartbeat' or 'etcd'"},
        ExactErrorCase{"[Cluster]\nBackend=\n", "test.conf:2: [Cluster] Backend=: expected 'heartbeat' or 'etcd'"},
        ExactErrorCase{"[Cluster]\nBackend=Etcd\n", "test.conf:2: [Cluster] Backend=Etcd: expected 'heartbeat' or 'etcd'"},
        ExactErrorCase{"[Etcd]\nEndpoint=http://a:2379\n", "test.conf:2: [Etcd] unknown key 'Endpoint'"},
        ExactErrorCase{"[etcd]\nEndpoints=http://a:2379\n", "test.conf:2: unknown section [etcd]"},
        bad_endpoint("etcd1:2379", "'etcd1:2379': expected http://HOST:PORT or https://HOST:PORT"),
        bad_endpoint("HTTP://etcd1:2379", "'HTTP://etcd1:2379': expected http://HOST:PORT or https://HOST:PORT"),
        bad_endpoint("unix:///run/etcd.sock", "'unix:///run/etcd.sock': expected http://HOST:PORT or https://HOST:PORT"),
        bad_endpoint("http://a:2379 ftp://b:21", "'ftp://b:21': expected http://HOST:PORT or https://HOST:PORT"),
        bad_endpoint("http://etcd1", "'http://etcd1': no port: write HOST:PORT (etcd's client port is usually 2379)"),
        bad_endpoint("https://etcd1/", "'https://etcd1/': no port: write HOST:PORT (etcd's client port is usually 2379)"),
        bad_endpoint("http://etcd1:", "'http://etcd1:': '' is not a port (1 to 65535)"),
        bad_endpoint("http://etcd1:0", "'http://etcd1:0': '0' is not a port (1 to 65535)"),
        bad_endpoint("http://etcd1:65536", "'http://etcd1:65536': '65536' is not a port (1 to 65535)"),
        bad_endpoint("http://etcd1:23x9", "'http://etcd1:23x9': '23x9' is not a port (1 to 65535)"),
        bad_endpoint("http://etcd1:-1", "'http://etcd1:-1': '-1' is not a port (1 to 65535)"),
        bad_endpoint("http://etcd1:2379/v3", "'http://etcd1:2379/v3': nothing may follow the port but '/', found '/v3'"),
        bad_endpoint("http://etcd1:2379//", "'http://etcd1:2379//': nothing may follow the port but '/', found '//'"),
        bad_endpoint("http://etcd1:2379?x=1", "'http://etcd1:2379?x=1': nothing may follow the port but '/', found '?x=1'"),
        bad_endpoint("http://etcd1:2379#f", "'http://etcd1:2379#f': nothing may follow the port but '/', found '#f'"),
        bad_endpoint("http://:2379", "'http://:2379': no host"),
        bad_endpoint("http://", "'http://': no host"),
        bad_endpoint("http://root@etcd1:2379",
                     "'http://root@etcd1:2379': a user name (USER@) is not taken; clients authenticate with CertFile= "
                     "and KeyFile="),
        bad_endpoint("http://2001:db8::1:2379",
                     "'http://2001:db8::1:2379': an IPv6 address needs brackets, e.g. https://[2001:db8::1]:2379"),
        bad_endpoint("http://[2001:db8::1:2379",
                     "'http://[2001:db8::1:2379': '[' without the ']' that ends the IPv6 address"),
        bad_endpoint("http://[2001:db8::1]",
                     "'http://[2001:db8::1]': no port: write HOST:PORT (etcd's client port is usually 2379)"),
        bad_endpoint("http://[2001:db8::1]x:2379", "'http://[2001:db8::1]x:2379': expected ':PORT' after ']', found 'x:2379'"),
        bad_endpoint("http://[fe80::1%eth0]:2379",
                     "'http://[fe80::1%eth0]:2379': an IPv6 zone (%DEVICE) cannot be given; use a global address or a name"),
        bad_endpoint("http://[10.0.0.1]:2379",
                     "'http://[10.0.0.1]:2379': brackets are for IPv6 addresses; write an IPv4 address without"),
        bad_endpoint("http://[zz::1]:2379", "'http://[zz::1]:2379': 'zz::1': not an IPv4 or IPv6 address"),
        bad_endpoint("http://[]:2379", "'http://[]:2379': '': not an IPv4 or IPv6 address"),
        bad_endpoint("http://300.0.0.1:2379", "'http://300.0.0.1:2379': '300.0.0.1' is not an IPv4 address"),
        bad_endpoint("http://10.0.0:2379", "'http://10.0.0:2379': '10.0.0' is not an IPv4 address"),
        bad_endpoint("http://etcd_1:2379", "'http://etcd_1:2379': 'etcd_1'" + kNotAHost),
        bad_endpoint("http://-etcd:2379", "'http://-etcd:2379': '-etcd'" + kNotAHost),
        bad_endpoint("http://etcd-.lan:2379", "'http://etcd-.lan:2379': 'etcd-.lan'" + kNotAHost),
        bad_endpoint("http://etcd..lan:2379", "'http://etcd..lan:2379': 'etcd..lan'" + kNotAHost),
        bad_endpoint("http://etcd.:2379", "'http://etcd.:2379': 'etcd.'" + kNotAHost),
        bad_endpoint("http://" + std::string(64, 'a') + ":2379",
                     "'http://" + std::string(64, 'a') + ":2379': '" + std::string(64, 'a') + "'" + kNotAHost),
        bad_endpoint("http://a:2379 http://b:2379 http://a:2379/", "'http://a:2379' is given twice"),
        ExactErrorCase{"[Etcd]\nEndpoints=http://a:2379\nEndpoints=http://a:2379\n",
                       "test.conf:3: [Etcd] Endpoints=http://a:2379: 'http://a:2379' is given twice"},
        ExactErrorCase{"[Etcd]\nEndpoints=http://caf\xc3\xa9:2379\n",
                       "test.conf:2: [Etcd] Endpoints=http://caf\xc3\xa9:2379: 'http://caf\xc3\xa9:2379': "
                       "'caf\xc3\xa9'" + kNotAHost},
        ExactErrorCase{"[Etcd]\nEndpoints=http://a\xff:2379\n",
                       "test.conf:2: [Etcd] Endpoints=: not valid UTF-8 (byte 0xff at offset 8)"},
        ExactErrorCase{"[Etcd]\nCAFile=ca.pem\n", "test.conf:2: [Etcd] CAFile=ca.pem: expected an absolute path"},
        ExactErrorCase{"[Etcd]\nCertFile=etcd.crt\n", "test.conf:2: [Etcd] CertFile=etcd.crt: expected an absolute path"},
        ExactErrorCase{"[Etcd]\nKeyFile=~/etcd.key\n", "test.conf:2: [Etcd] KeyFile=~/etcd.key: expected an absolute path"},
        ExactErrorCase{"[Etcd]\nPrefix=freeha\n", "test.conf:2: [Etcd] Prefix=freeha: must start and end with '/'"},
        ExactErrorCase{"[Etcd]\nPrefix=/freeha\n", "test.conf:2: [Etcd] Prefix=/freeha: must start and end with '/'"},
        ExactErrorCase{"[Etcd]\nPrefix=/a//b/\n", "test.conf:2: [Etcd] Prefix=/a//b/: holds an empty element ('//')"},
        ExactErrorCase{"[Etcd]\nPrefix=/a b/\n",
                       "test.conf:2: [Etcd] Prefix=/a b/: holds a character that is not printable ASCII (or a space)"},
        ExactErrorCase{"[Etcd]\nPrefix=/" + std::string(127, 'x') + "/\n",
                       "test.conf:2: [Etcd] Prefix=/" + std::string(127, 'x') + "/: longer than 128 characters"}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

TEST(Etcd, APrefixOf128CharactersIsTaken) {
    std::string prefix = "/" + std::string(126, 'x') + "/";
    EXPECT_EQ(parse_ok("[Etcd]\nPrefix=" + prefix + "\n").etcd_prefix, prefix);
}

class EtcdValidation : public ::testing::TestWithParam<ExactErrorCase> {};

TEST_P(EtcdValidation, NamesTheKeysAndWhereTheyCameFrom) {
    Config c = parse_ok(GetParam().text);
    EXPECT_EQ(validate(c).value_or("<valid>"), GetParam().expected);
}

namespace {

const std::string kSetButHeartbeat = " is set but Backend=heartbeat (default); set Backend=etcd in [Cluster] or "
                                     "remove the [Etcd] keys";

}  // namespace

INSTANTIATE_TEST_SUITE_P(
    EveryCheck, EtcdValidation,
    ::testing::Values(
        ExactErrorCase{"[Cluster]\nBackend=etcd\n",
                       "test.conf:2: Backend=etcd needs [Etcd] Endpoints=, the URLs of the etcd cluster (e.g. "
                       "https://etcd1:2379)"},
        ExactErrorCase{std::string(kEtcd) + "Endpoints=\n",
                       "test.conf:2: Backend=etcd needs [Etcd] Endpoints=, the URLs of the etcd cluster (e.g. "
                       "https://etcd1:2379)"},
        ExactErrorCase{std::string(kChannel) + "[Etcd]\nEndpoints=http://a:2379\n",
                       "test.conf:4: [Etcd] Endpoints=" + kSetButHeartbeat},
        ExactErrorCase{std::string(kChannel) + "[Etcd]\n\nCAFile=/ca.pem\n", "test.conf:5: [Etcd] CAFile=" + kSetButHeartbeat},
        ExactErrorCase{std::string(kChannel) + "[Etcd]\nCertFile=/c.crt\n", "test.conf:4: [Etcd] CertFile=" + kSetButHeartbeat},
        ExactErrorCase{std::string(kChannel) + "[Etcd]\nKeyFile=/c.key\n", "test.conf:4: [Etcd] KeyFile=" + kSetButHeartbeat},
        ExactErrorCase{"[Cluster]\nBackend=heartbeat\n" + std::string(kChannel) + "[Etcd]\nPrefix=/x/\n",
                       "test.conf:6: [Etcd] Prefix= is set but Backend=heartbeat (test.conf:2); set Backend=etcd in "
                       "[Cluster] or remove the [Etcd] keys"},
        // Empty [Etcd] keys are the defaults, which a heartbeat cluster has too.
        ExactErrorCase{std::string(kChannel) + "[Etcd]\nEndpoints=\nCAFile=\nCertFile=\nKeyFile=\nPrefix=\n", "<valid>"},
        ExactErrorCase{std::string(kEtcd) + "[Heartbeat]\nChannel=broadcast 10.0.0.1\n",
                       "test.conf:6: [Heartbeat] Channel= is given but Backend=etcd (test.conf:2), where etcd carries "
                       "membership and no heartbeat is sent; remove it"},
        ExactErrorCase{std::string(kEtcd) + "[Heartbeat]\nChannel=broadcast 10.0.0.1\nChannel=\n", "<valid>"},
        ExactErrorCase{std::string(kEtcd) + "CertFile=/etc/freeha/etcd.crt\n",
                       "test.conf:5: [Etcd] CertFile= is set but KeyFile= is not: a client certificate needs both "
                       "CertFile= and KeyFile="},
        ExactErrorCase{std::string(kEtcd) + "KeyFile=/etc/freeha/etcd.key\n",
                       "test.conf:5: [Etcd] KeyFile= is set but CertFile= is not: a client certificate needs both "
                       "CertFile= and KeyFile="},
        ExactErrorCase{"[Cluster]\nBackend=etcd\n[Etcd]\nEndpoints=http://etcd1:2379\nCAFile=/ca.pem\n",
                       "test.conf:5: [Etcd] CAFile= is set but the endpoint http://etcd1:2379 (test.conf:4) is "
                       "http://: TLS files need https:// endpoints"},
        ExactErrorCase{"[Cluster]\nBackend=etcd\n[Etcd]\nEndpoints=https://etcd1:2379\nEndpoints=http://etcd2:2379\n"
                       "KeyFile=/c.key\nCertFile=/c.crt\n",
                       "test.conf:7: [Etcd] CertFile= is set but the endpoint http://etcd2:2379 (test.conf:5) is "
                       "http://: TLS files need https:// endpoints"},
        ExactErrorCase{std::string(kEtcd) + "CAFile=/ca.pem\nCertFile=/c.crt\nKeyFile=/c.key\n", "<valid>"},
        ExactErrorCase{"[Cluster]\nBackend=etcd\n[Etcd]\nEndpoints=http://etcd1:2379 http://10.0.0.2:2379\n", "<valid>"},
        ExactErrorCase{std::string(kEtcd), "<valid>"},  // https:// without files: the system's CAs
        // etcd's lease binds every holder, whatever ExpectedNodes= (2 by default) says.
        ExactErrorCase{std::string(kEtcd) + "[Services]\nFenceTimeout=900ms\n",
                       "test.conf:6: FenceTimeout=900ms does not fit in the lease of DeadTime=1s (default) with "
                       "Interval=200ms: at most 500ms; lower FenceTimeout= or raise DeadTime="},
        // The default prefix is made of Name=, which may hold what a prefix may not.
        ExactErrorCase{"[Cluster]\nName=caf\xc3\xa9\n" + std::string(kEtcd),
                       "test.conf:2: Name=caf\xc3\xa9 makes the etcd prefix /freeha/caf\xc3\xa9/, which holds a "
                       "character that is not printable ASCII (or a space); give [Etcd] Prefix="},
        ExactErrorCase{"[Cluster]\nName=web/\n" + std::string(kEtcd),
                       "test.conf:2: Name=web/ makes the etcd prefix /freeha/web//, which holds an empty element "
                       "('//'); give [Etcd] Prefix="},
        ExactErrorCase{"[Cluster]\nName=caf\xc3\xa9\n" + std::string(kEtcd) + "Prefix=/freeha/cafe/", "<valid>"}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

TEST(Etcd, RenderPrintsTheBackendAndEtcdAndParsesBack) {
    Config c = parse_ok("[Cluster]\nName=web\nBackend=etcd\n[Etcd]\nEndpoints=https://e1:2379/ https://[2001:db8::1]:2379\n"
                        "Endpoints=https://10.0.0.3:2379\nCAFile=/etc/freeha/etcd-ca.pem\nCertFile=/etc/freeha/etcd.crt\n"
                        "KeyFile=/etc/freeha/etcd.key\n");
    std::string text = render(c);
    EXPECT_NE(text.find("NoQuorumPolicy=stop\nBackend=etcd\n"), std::string::npos) << text;
    EXPECT_NE(text.find("\n[Etcd]\nEndpoints=https://e1:2379\nEndpoints=https://[2001:db8::1]:2379\n"
                        "Endpoints=https://10.0.0.3:2379\nCAFile=/etc/freeha/etcd-ca.pem\nCertFile=/etc/freeha/etcd.crt\n"
                        "KeyFile=/etc/freeha/etcd.key\nPrefix=/freeha/web/\n\n[Services]\n"),
              std::string::npos)
        << text;
    Config again = parse_ok(text);
    EXPECT_EQ(render(again), text);
    EXPECT_EQ(again.backend, Backend::Etcd);
    EXPECT_EQ(again.etcd_endpoints, c.etcd_endpoints);
    EXPECT_EQ(again.etcd_ca_file, c.etcd_ca_file);
    EXPECT_EQ(again.etcd_cert_file, c.etcd_cert_file);
    EXPECT_EQ(again.etcd_key_file, c.etcd_key_file);
    EXPECT_EQ(effective_etcd_prefix(again), "/freeha/web/");
    EXPECT_EQ(validate(again), std::nullopt);
    EXPECT_EQ(fixed_setting_changed(c, again), std::nullopt);
    EXPECT_EQ(rendered_setting(c, "Cluster.Backend"), "etcd");
    EXPECT_EQ(rendered_setting(c, "Etcd.Endpoints"), "https://e1:2379, https://[2001:db8::1]:2379, https://10.0.0.3:2379");
    EXPECT_EQ(rendered_setting(c, "Etcd.CertFile"), "/etc/freeha/etcd.crt");
    EXPECT_EQ(rendered_setting(c, "Etcd.Prefix"), "/freeha/web/");
    // Without files and with a prefix of its own.
    Config plain = parse_ok(std::string(kEtcd) + "Prefix=/ha/\n");
    EXPECT_NE(render(plain).find("\n[Etcd]\nEndpoints=https://etcd1:2379\nCAFile=\nCertFile=\nKeyFile=\nPrefix=/ha/\n"),
              std::string::npos)
        << render(plain);
    EXPECT_EQ(render(parse_ok(render(plain))), render(plain));
}

TEST(Etcd, AHeartbeatClustersRenderingHasNoEtcdSection) {
    Config c = parse_ok(kChannel);
    std::string text = render(c);
    EXPECT_NE(text.find("NoQuorumPolicy=stop\nBackend=heartbeat\n"), std::string::npos) << text;
    EXPECT_EQ(text.find("[Etcd]"), std::string::npos) << text;
    EXPECT_EQ(rendered_setting(c, "Etcd.Endpoints"), "");
    EXPECT_EQ(validate(parse_ok(text)), std::nullopt);
    // One that sets an [Etcd] key shows it, so that --check-config shows what validate() refuses.
    Config stray = parse_ok(std::string(kChannel) + "[Etcd]\nCAFile=/ca.pem\n");
    EXPECT_NE(render(stray).find("\n[Etcd]\nEndpoints=\nCAFile=/ca.pem\n"), std::string::npos) << render(stray);
}

TEST(Etcd, AReloadCannotChangeTheBackendOrHowEtcdIsReached) {
    const std::string base = "[Cluster]\nName=web\nBackend=etcd\n[Etcd]\nEndpoints=https://e1:2379\n";
    Config running = parse_ok(base + "CAFile=/ca.pem\nCertFile=/c.crt\nKeyFile=/c.key\n");
    // Timings may change; the same prefix spelled out is no change.
    Config same = parse_ok(base + "CAFile=/ca.pem\nCertFile=/c.crt\nKeyFile=/c.key\nPrefix=/freeha/web/\n"
                                  "[Heartbeat]\nDeadTime=3s\n");
    EXPECT_EQ(fixed_setting_changed(running, same), std::nullopt);
    const std::string restart = "= cannot change while freehad runs; restart it to apply";
    struct Change {
        std::string text;
        std::string expected;
    };
    for (const auto& [text, expected] : std::vector<Change>{
             {"[Cluster]\nName=web\nBackend=heartbeat\n[Etcd]\nEndpoints=https://e1:2379\nCAFile=/ca.pem\n"
              "CertFile=/c.crt\nKeyFile=/c.key\n",
              "test.conf:3: Backend" + restart},
             {base + "Endpoints=https://e2:2379\nCAFile=/ca.pem\nCertFile=/c.crt\nKeyFile=/c.key\n",
              "test.conf:6: Endpoints" + restart},
             {"[Cluster]\nName=web\nBackend=etcd\n[Etcd]\nEndpoints=https://e1:2379/\n\nCAFile=/ca2.pem\n"
              "CertFile=/c.crt\nKeyFile=/c.key\n",
              "test.conf:7: CAFile" + restart},
             {base + "CAFile=/ca.pem\nCertFile=/c2.crt\nKeyFile=/c.key\n", "test.conf:7: CertFile" + restart},
             {base + "CAFile=/ca.pem\nCertFile=/c.crt\nKeyFile=/c2.key\n", "test.conf:8: KeyFile" + restart},
             {base + "CAFile=/ca.pem\nCertFile=/c.crt\nKeyFile=/c.key\nPrefix=/ha/\n", "test.conf:9: Prefix" + restart},
             // Removed: named without a line.
             {base + "CertFile=/c.crt\nKeyFile=/c.key\n", "CAFile" + restart},
         })
        EXPECT_EQ(fixed_setting_changed(running, parse_ok(text)).value_or("<none>"), expected) << text;
    // An explicit prefix given up for the default one is a change too.
    Config prefixed = parse_ok(base + "Prefix=/ha/\n");
    EXPECT_EQ(fixed_setting_changed(prefixed, parse_ok(base)).value_or("<none>"), "Prefix" + restart);
}

TEST(CommandLine, FreeHAsChannelFlagIsRefusedWithTheEtcdBackend) {
    TempDir dir;
    std::string conf = dir.write("freehad.conf", std::string("[Cluster]\nNodeName=x\n") + kEtcd);
    std::string error;
    auto cl = parse_args({"--config", conf, "-a", "10.0.0.1"}, &error);
    ASSERT_TRUE(cl) << error;
    EXPECT_FALSE(load_config(*cl, &error));
    EXPECT_EQ(error, "-a: [Heartbeat] Channel= is given but Backend=etcd (" + conf +
                         ":4), where etcd carries membership and no heartbeat is sent; remove it");
    auto without = parse_args({"--config", conf}, &error);
    ASSERT_TRUE(without) << error;
    auto c = load_config(*without, &error);
    ASSERT_TRUE(c) << error;
    EXPECT_EQ(c->etcd_endpoints, std::vector<std::string>{"https://etcd1:2379"});
}
