// The Channel= syntax: every accepted form and its canonical name, every malformed form and its one-line error.
#include <gtest/gtest.h>

#include "core/channel_spec.h"

using namespace freeha;

namespace {

struct Accepted {
    const char* value;
    const char* canonical;  // to_string(): the channel's name in the status and --check-config
    Family family;
    const char* device;
};

class ChannelSpecAccepted : public ::testing::TestWithParam<Accepted> {};

}  // namespace

TEST_P(ChannelSpecAccepted, ParsesToItsCanonicalFormWhichParsesBackToTheSameSpec) {
    std::string error;
    auto spec = parse_channel_spec(GetParam().value, &error);
    ASSERT_TRUE(spec) << GetParam().value << ": " << error;
    EXPECT_EQ(spec->to_string(), GetParam().canonical);
    EXPECT_EQ(spec->family(), GetParam().family);
    EXPECT_EQ(spec->device(), GetParam().device);
    auto again = parse_channel_spec(spec->to_string(), &error);
    ASSERT_TRUE(again) << error;
    EXPECT_EQ(*again, *spec);
}

INSTANTIATE_TEST_SUITE_P(
    EveryForm, ChannelSpecAccepted,
    ::testing::Values(
        // IPv4, as before.
        Accepted{"broadcast 10.0.0.1", "broadcast 10.0.0.1 10.0.0.255", Family::Ipv4, ""},
        Accepted{"broadcast  10.0.1.1\t10.0.1.127", "broadcast 10.0.1.1 10.0.1.127", Family::Ipv4, ""},
        Accepted{"multicast 10.1.0.1 239.1.2.3", "multicast 10.1.0.1 239.1.2.3", Family::Ipv4, ""},
        Accepted{"unicast 127.0.0.1 127.0.0.2 127.0.0.3:4001", "unicast 127.0.0.1 127.0.0.2 127.0.0.3:4001",
                 Family::Ipv4, ""},
        // IPv6 unicast: bare addresses, [ADDRESS]:PORT, canonical spelling.
        Accepted{"unicast fd00::11 fd00::12 [fd00::13]:4001", "unicast fd00::11 fd00::12 [fd00::13]:4001",
                 Family::Ipv6, ""},
        Accepted{"unicast ::1 [::1]:4001 [0:0:0:0:0:0:0:1]:4002", "unicast ::1 [::1]:4001 [::1]:4002", Family::Ipv6, ""},
        Accepted{"unicast 2001:DB8:0:0::1 2001:db8::2", "unicast 2001:db8::1 2001:db8::2", Family::Ipv6, ""},
        Accepted{"unicast [fd00::11] fd00::12", "unicast fd00::11 fd00::12", Family::Ipv6, ""},
        // Link-local: the interface is named once and carried by every scoped address.
        Accepted{"unicast fe80::11%eth0 fe80::12 [fe80::13]:4001", "unicast fe80::11%eth0 fe80::12%eth0 [fe80::13%eth0]:4001",
                 Family::Ipv6, "eth0"},
        Accepted{"unicast fd00::11 fe80::12%br-lan", "unicast fd00::11 fe80::12%br-lan", Family::Ipv6, "br-lan"},
        Accepted{"unicast fe80::11%eth0 fd00::12", "unicast fe80::11%eth0 fd00::12", Family::Ipv6, "eth0"},
        // IPv6 multicast: the group's interface, or the link-local source's.
        Accepted{"multicast fe80::11%eth0 ff02::f33", "multicast fe80::11%eth0 ff02::f33%eth0", Family::Ipv6, "eth0"},
        Accepted{"multicast fd00::11 ff02::f33%vlan.12", "multicast fd00::11 ff02::f33%vlan.12", Family::Ipv6, "vlan.12"},
        Accepted{"multicast fe80::11%eth0 ff02::f33%eth0", "multicast fe80::11%eth0 ff02::f33%eth0", Family::Ipv6, "eth0"},
        Accepted{"multicast fd00::11 ff15::1234%eth1", "multicast fd00::11 ff15::1234%eth1", Family::Ipv6, "eth1"}),
    [](const auto& info) { return "Form" + std::to_string(info.index); });

namespace {

struct Refused {
    const char* value;
    const char* error;  // the whole one-line message
};

class ChannelSpecRefused : public ::testing::TestWithParam<Refused> {};

}  // namespace

TEST_P(ChannelSpecRefused, WithAOneLineErrorNamingWhatIsWrong) {
    std::string error;
    EXPECT_FALSE(parse_channel_spec(GetParam().value, &error)) << GetParam().value;
    EXPECT_EQ(error, GetParam().error);
    EXPECT_EQ(error.find('\n'), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    EveryMalformedForm, ChannelSpecRefused,
    ::testing::Values(
        Refused{"", "expected 'broadcast|multicast|unicast SOURCE ...'"},
        Refused{"unicast", "expected 'broadcast|multicast|unicast SOURCE ...'"},
        Refused{"anycast fd00::1 fd00::2", "unknown channel kind 'anycast' (broadcast, multicast or unicast)"},
        Refused{"broadcast 10.0.0.1 a b", "broadcast takes SOURCE [BROADCAST]"},
        Refused{"multicast fe80::1%eth0", "multicast takes SOURCE GROUP"},
        Refused{"unicast fd00::1", "unicast takes SOURCE PEER [PEER...]"},
        // Addresses.
        Refused{"unicast fd00::g fd00::2", "SOURCE 'fd00::g': not an IPv4 or IPv6 address"},
        Refused{"unicast fd00::1 fd00:::2", "PEER 'fd00:::2': not an IPv4 or IPv6 address"},
        Refused{"unicast ::ffff:10.0.0.1 ::ffff:10.0.0.2",
                "SOURCE '::ffff:10.0.0.1': an IPv4-mapped IPv6 address; write the IPv4 address itself"},
        Refused{"unicast fd00::1 fd00::2%eth0",
                "PEER 'fd00::2%eth0': only IPv6 link-local addresses (fe80::/10) and IPv6 multicast groups take a %DEVICE"},
        Refused{"unicast 10.0.0.1%eth0 10.0.0.2",
                "SOURCE '10.0.0.1%eth0': only IPv6 link-local addresses (fe80::/10) and IPv6 multicast groups take a %DEVICE"},
        Refused{"unicast fe80::1% fe80::2", "SOURCE 'fe80::1%': '' is not an interface name"},
        Refused{"unicast fe80::1%a/b fe80::2", "SOURCE 'fe80::1%a/b': 'a/b' is not an interface name"},
        Refused{"unicast fe80::1%averyverylongname fe80::2",
                "SOURCE 'fe80::1%averyverylongname': 'averyverylongname' is not an interface name"},
        // Ports and brackets.
        Refused{"unicast fd00::1 [fd00::2]:0", "PEER '[fd00::2]:0': '0' is not a port (1 to 65535)"},
        Refused{"unicast fd00::1 [fd00::2]:99999", "PEER '[fd00::2]:99999': '99999' is not a port (1 to 65535)"},
        Refused{"unicast fd00::1 [fd00::2", "PEER '[fd00::2': no ']' after the IPv6 address"},
        Refused{"unicast fd00::1 [fd00::2]4000", "PEER '[fd00::2]4000': expected ':PORT' after ']'"},
        Refused{"unicast 10.0.0.1 [10.0.0.2]:4000", "PEER '[10.0.0.2]:4000': brackets are for IPv6 addresses only"},
        Refused{"unicast 10.0.0.1 10.0.0.2:x", "PEER '10.0.0.2:x': 'x' is not a port (1 to 65535)"},
        Refused{"unicast [fd00::1]:4000 fd00::2", "SOURCE '[fd00::1]:4000' takes no port: every channel binds Port="},
        Refused{"unicast 10.0.0.1:4000 10.0.0.2", "SOURCE '10.0.0.1:4000' takes no port: every channel binds Port="},
        // What the addresses are.
        Refused{"unicast :: fd00::2", "SOURCE '::' must be this node's own unicast address"},
        Refused{"multicast ff02::1%eth0 ff02::2", "SOURCE 'ff02::1%eth0' must be this node's own unicast address"},
        Refused{"unicast fd00::1 ff02::2%eth0",
                "PEER 'ff02::2%eth0' is not a unicast address; for a group use 'multicast SOURCE GROUP'"},
        Refused{"multicast fd00::1%eth0 ff02::2",
                "SOURCE 'fd00::1%eth0': only IPv6 link-local addresses (fe80::/10) and IPv6 multicast groups take a %DEVICE"},
        Refused{"multicast fe80::1%eth0 fd00::2", "'fd00::2' is not a multicast group (IPv4 224.0.0.0/4, IPv6 ff00::/8)"},
        Refused{"multicast 10.0.0.1 10.0.0.2", "'10.0.0.2' is not a multicast group (IPv4 224.0.0.0/4, IPv6 ff00::/8)"},
        // Families.
        Refused{"broadcast fd00::1", "broadcast is IPv4 only (IPv6 has no broadcast); use 'multicast SOURCE ff02::...%DEVICE'"},
        Refused{"unicast 10.0.0.1 fd00::2",
                "'fd00::2' is IPv6 but SOURCE 10.0.0.1 is IPv4: use one channel per address family"},
        Refused{"unicast fd00::1 10.0.0.2 fd00::3",
                "'10.0.0.2' is IPv4 but SOURCE fd00::1 is IPv6: use one channel per address family"},
        Refused{"multicast 10.0.0.1 ff02::1%eth0",
                "'ff02::1%eth0' is IPv6 but SOURCE 10.0.0.1 is IPv4: use one channel per address family"},
        Refused{"broadcast 10.0.0.1 fd00::ff", "'fd00::ff' is IPv6 but SOURCE 10.0.0.1 is IPv4: use one channel per address family"},
        // Interfaces.
        Refused{"unicast fe80::1 fe80::2", "'fe80::1' is link-local: name its interface, e.g. fe80::1%eth0"},
        Refused{"unicast fd00::1 fe80::2", "'fe80::2' is link-local: name its interface, e.g. fe80::2%eth0"},
        Refused{"multicast fd00::1 ff02::f33",
                "IPv6 multicast group 'ff02::f33' needs its interface: ff02::f33%DEVICE (or a link-local SOURCE%DEVICE)"},
        Refused{"multicast fe80::1%eth0 ff02::f33%eth1",
                "'ff02::f33%eth1' is on eth1 but 'fe80::1%eth0' on eth0: a channel uses one interface"},
        Refused{"unicast fe80::1%eth0 fe80::2%eth0 [fe80::3%eth1]:4000",
                "'fe80::3%eth1' is on eth1 but 'fe80::2%eth0' on eth0: a channel uses one interface"}),
    [](const auto& info) { return "Form" + std::to_string(info.index); });

TEST(ChannelSpec, AddressesKnowTheirKind) {
    std::string error;
    auto a = [&](const char* text) { return *parse_ip_address(text, &error); };
    EXPECT_TRUE(a("fe80::1%eth0").is_link_local());
    EXPECT_TRUE(a("febf::1%eth0").is_link_local());
    EXPECT_FALSE(a("fec0::1").is_link_local());
    EXPECT_TRUE(a("ff02::1%eth0").needs_device());
    EXPECT_FALSE(a("fd00::1").needs_device());
    EXPECT_FALSE(a("10.0.0.1").needs_device());
    EXPECT_TRUE(a("224.0.0.1").is_multicast());
    EXPECT_TRUE(a("239.255.255.255").is_multicast());
    EXPECT_FALSE(a("240.0.0.1").is_multicast());
    EXPECT_EQ(slash24_broadcast(a("192.168.7.11")).to_string(), "192.168.7.255");
}
