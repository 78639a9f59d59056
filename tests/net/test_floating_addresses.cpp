// FloatingAddresses against the kernel: each test in a network namespace of its own with a veth pair, veth0 (ours) and veth1 (the link's other hosts).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/ip6.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "core/channel_spec.h"
#include "core/config.h"
#include "daemon/announcer.h"
#include "daemon/floating_addresses.h"
#include "daemon/rtnetlink.h"

namespace freeha {
namespace {

constexpr char kForeignMac[] = "02:00:00:00:00:99";

FloatingAddress address(const std::string& text, unsigned prefix, const std::string& device, bool dad = false) {
    std::string error;
    auto ip = parse_ip_address(text, &error);
    EXPECT_TRUE(ip) << error;
    FloatingAddress a;
    a.address = ip.value_or(IpAddress{});
    a.prefix = prefix;
    a.device = device;
    a.dad = dad;
    a.origin = "test";
    return a;
}

void shell(const std::string& command) { ASSERT_EQ(std::system(command.c_str()), 0) << command; }

// A frame seen on veth1, and when.
struct Frame {
    std::chrono::steady_clock::time_point at;
    std::vector<std::uint8_t> bytes;  // from the Ethernet header on
};

class FloatingAddressesTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace";
        ASSERT_EQ(unshare(CLONE_NEWNET), 0) << std::strerror(errno);
        // veth1 stands for the other hosts on the link. It is in the same
        // namespace, so it answers ARP probes for veth0's addresses (with its
        // own MAC), as a second interface of a host on the same link does.
        // No DAD for the links' own IPv6 addresses: they are usable at once.
        shell("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 && "
              "ip link set lo up && ip link add veth0 type veth peer name veth1 && "
              "ip link set veth0 up && ip link set veth1 up");
        sd_event* e = nullptr;
        ASSERT_GE(sd_event_new(&e), 0);
        event_.reset(e);
        ASSERT_EQ(rtnetlink_.open(), 0);
        Link link;
        ASSERT_EQ(rtnetlink_.get_link("veth0", &link), 0);
        veth0_mac_ = link.mac;
        ASSERT_EQ(rtnetlink_.get_link("veth1", &link), 0);
        veth1_index_ = link.index;
    }

    std::unique_ptr<FloatingAddresses> make(std::vector<FloatingAddress> addresses, Usec refresh = Usec(0)) {
        FloatingAddresses::Callbacks callbacks{
            .lost = [this](std::string why) { lost_.push_back(why); },
            .foreign = [this](const FloatingAddress& a,
                              std::string mac) { foreign_.push_back(address_with_prefix(a) + " " + mac); },
            .links_changed = [this] { ++links_changed_; },
        };
        auto f = std::make_unique<FloatingAddresses>(event_.get(), std::move(addresses), refresh, callbacks);
        EXPECT_EQ(f->open(), 0);
        return f;
    }

    // Runs the loop until `done` holds or `limit` passes; returns whether it held.
    template <typename F>
    bool run_until(F done, Usec limit = 3 * kUsecPerSec) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(limit.count());
        while (!done()) {
            if (std::chrono::steady_clock::now() > end) return false;
            sd_event_run(event_.get(), (10 * kUsecPerMsec).count());
            capture();
        }
        return true;
    }
    void run_for(Usec span) {
        run_until([] { return false; }, span);
    }

    // The addresses on `device`, as "ADDRESS/PREFIX".
    std::vector<std::string> addresses_on(const std::string& device, unsigned* flags_of_v6 = nullptr) {
        Link link;
        EXPECT_EQ(rtnetlink_.get_link(device, &link), 0);
        std::vector<InterfaceAddress> present;
        EXPECT_EQ(rtnetlink_.addresses(link.index, &present), 0);
        std::vector<std::string> out;
        for (const auto& a : present) {
            if (a.address.is_link_local()) continue;
            out.push_back(a.address.to_string() + "/" + std::to_string(a.prefix));
            if (flags_of_v6 && a.address.family == Family::Ipv6) *flags_of_v6 = a.flags;
        }
        return out;
    }

    // Starts recording every frame that reaches veth1.
    void start_capture() {
        capture_ = UniqueFd(socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL)));
        ASSERT_TRUE(capture_);
        sockaddr_ll local{};
        local.sll_family = AF_PACKET;
        local.sll_protocol = htons(ETH_P_ALL);
        local.sll_ifindex = static_cast<int>(veth1_index_);
        ASSERT_EQ(bind(capture_.get(), reinterpret_cast<sockaddr*>(&local), sizeof local), 0);
    }
    void capture() {
        if (!capture_) return;
        std::uint8_t buffer[2048];
        sockaddr_ll from{};
        socklen_t length = sizeof from;
        for (ssize_t n; (n = recvfrom(capture_.get(), buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from),
                                      &length)) > 0;
             length = sizeof from)
            if (from.sll_pkttype != PACKET_OUTGOING)
                frames_.push_back({std::chrono::steady_clock::now(), {buffer, buffer + n}});
    }

    // The ARP frames from veth0 with sender address `sender` and target `target` (4 bytes each).
    std::vector<Frame> arp_frames(const IpAddress& sender, const IpAddress& target) const {
        std::vector<Frame> out;
        for (const auto& f : frames_) {
            const auto& b = f.bytes;
            if (b.size() < 14 + 28 || b[12] != 0x08 || b[13] != 0x06) continue;
            const std::uint8_t* arp = b.data() + 14;
            if (arp[7] != 1 || !std::equal(veth0_mac_.begin(), veth0_mac_.end(), arp + 8)) continue;
            if (std::memcmp(arp + 14, sender.bytes.data(), 4) == 0 && std::memcmp(arp + 24, target.bytes.data(), 4) == 0)
                out.push_back(f);
        }
        return out;
    }

    // The ICMPv6 messages of `type` about `target`, with their IPv6 header (from the Ethernet header on).
    std::vector<Frame> icmp6_frames(std::uint8_t type, const IpAddress& target) const {
        std::vector<Frame> out;
        for (const auto& f : frames_) {
            const auto& b = f.bytes;
            if (b.size() < 14 + 40 + 24 || b[12] != 0x86 || b[13] != 0xdd || b[14 + 6] != IPPROTO_ICMPV6) continue;
            const std::uint8_t* icmp = b.data() + 14 + 40;
            if (icmp[0] == type && std::memcmp(icmp + 8, target.bytes.data(), 16) == 0) out.push_back(f);
        }
        return out;
    }

    // From veth1: an ARP reply that `mac` has `ip`.
    void send_arp_reply(const IpAddress& ip, const std::vector<std::uint8_t>& mac) {
        UniqueFd fd(socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        ASSERT_TRUE(fd);
        std::uint8_t arp[28] = {0, 1, 8, 0, 6, 4, 0, 2};
        std::memcpy(arp + 8, mac.data(), 6);
        std::memcpy(arp + 14, ip.bytes.data(), 4);
        std::memcpy(arp + 18, veth0_mac_.data(), 6);
        sockaddr_ll to{};
        to.sll_family = AF_PACKET;
        to.sll_protocol = htons(ETH_P_ARP);
        to.sll_ifindex = static_cast<int>(veth1_index_);
        to.sll_halen = 6;
        std::memcpy(to.sll_addr, veth0_mac_.data(), 6);
        ASSERT_EQ(sendto(fd.get(), arp, sizeof arp, 0, reinterpret_cast<sockaddr*>(&to), sizeof to), 28)
            << std::strerror(errno);
    }

    // From veth1: an unsolicited neighbour advertisement that `mac` has `ip`.
    void send_neighbour_advertisement(const IpAddress& ip, const std::vector<std::uint8_t>& mac) {
        UniqueFd fd(socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6));
        ASSERT_TRUE(fd);
        int hops = 255;
        setsockopt(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops);
        int loop = 0;  // the namespace's other socket must not see it through the loopback
        setsockopt(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop, sizeof loop);
        std::uint8_t na[32] = {ND_NEIGHBOR_ADVERT, 0, 0, 0, 0x20};
        std::memcpy(na + 8, ip.bytes.data(), 16);
        na[24] = ND_OPT_TARGET_LINKADDR;
        na[25] = 1;
        std::memcpy(na + 26, mac.data(), 6);
        sockaddr_in6 to{};
        to.sin6_family = AF_INET6;
        inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
        to.sin6_scope_id = veth1_index_;
        ASSERT_EQ(sendto(fd.get(), na, sizeof na, 0, reinterpret_cast<sockaddr*>(&to), sizeof to), 32)
            << std::strerror(errno);
    }

    EventPtr event_;
    Rtnetlink rtnetlink_;
    std::vector<std::uint8_t> veth0_mac_;
    unsigned veth1_index_ = 0;
    std::vector<std::string> lost_;
    std::vector<std::string> foreign_;
    int links_changed_ = 0;
    UniqueFd capture_;
    std::vector<Frame> frames_;
};

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

TEST_F(FloatingAddressesTest, UpAddsBothFamiliesUsableAtOnceAndDownRemovesThem) {
    auto f = make({address("192.0.2.10", 24, "veth0"), address("2001:db8::10", 64, "veth0")});
    std::string error;
    auto start = Clock::now();
    ASSERT_EQ(f->up(&error), 0) << error;
    const double up_ms = ms_since(start);
    EXPECT_TRUE(f->is_up());
    unsigned v6_flags = 0;
    EXPECT_EQ(addresses_on("veth0", &v6_flags), (std::vector<std::string>{"192.0.2.10/24", "2001:db8::10/64"}));
    EXPECT_FALSE(v6_flags & IFA_F_TENTATIVE) << "without dad the IPv6 address is usable at once";
    EXPECT_TRUE(v6_flags & IFA_F_NODAD);
    for (const auto& s : f->status()) EXPECT_TRUE(s.up) << s.address;
    EXPECT_EQ(f->status()[0].address, "192.0.2.10/24");
    EXPECT_EQ(f->status()[1].address, "2001:db8::10/64");
    EXPECT_EQ(f->status()[1].device, "veth0");

    // The probes went out; only this host's veth1 answered them: nothing may look lost or foreign.
    run_for(300 * kUsecPerMsec);
    EXPECT_TRUE(lost_.empty());
    EXPECT_TRUE(foreign_.empty()) << foreign_[0];

    start = Clock::now();
    f->down();
    const double down_ms = ms_since(start);
    EXPECT_FALSE(f->is_up());
    EXPECT_TRUE(addresses_on("veth0").empty());
    for (const auto& s : f->status()) EXPECT_FALSE(s.up) << s.address;
    run_for(100 * kUsecPerMsec);
    EXPECT_TRUE(lost_.empty()) << "its own removals are not losses: " << lost_[0];
    std::cout << "up() of 2 addresses: " << up_ms << " ms; down(): " << down_ms << " ms\n";
    RecordProperty("up_ms", std::to_string(up_ms));
    RecordProperty("down_ms", std::to_string(down_ms));
}

TEST_F(FloatingAddressesTest, AnnouncementsAndProbesReachTheLinkAtOnceAndRepeated) {
    const auto v4 = address("192.0.2.10", 24, "veth0");
    const auto v6 = address("2001:db8::10", 64, "veth0");
    start_capture();
    auto f = make({v4, v6});
    std::string error;
    const auto start = Clock::now();
    ASSERT_EQ(f->up(&error), 0) << error;
    run_for(2500 * kUsecPerMsec);
    f->down();
    const auto within_2s = [&](const std::vector<Frame>& frames) {
        return std::count_if(frames.begin(), frames.end(),
                             [&](const Frame& fr) { return fr.at - start < std::chrono::seconds(2); });
    };

    const auto garps = arp_frames(v4.address, v4.address);
    ASSERT_EQ(garps.size(), kAnnounceSchedule.size()) << "gratuitous ARPs (sender = target = the address)";
    EXPECT_GE(within_2s(garps), 4);
    EXPECT_LT(garps[0].at - start, std::chrono::milliseconds(50)) << "the first goes out at once";
    EXPECT_GT(garps[1].at - garps[0].at, std::chrono::milliseconds(80)) << "then repeated, not in a burst";
    EXPECT_EQ(arp_frames(IpAddress{}, v4.address).size(), kAnnounceSchedule.size()) << "ARP probes from 0.0.0.0";

    const auto adverts = icmp6_frames(ND_NEIGHBOR_ADVERT, v6.address);
    ASSERT_EQ(adverts.size(), kAnnounceSchedule.size());
    EXPECT_GE(within_2s(adverts), 4);
    EXPECT_LT(adverts[0].at - start, std::chrono::milliseconds(50));
    for (const auto& a : adverts) {
        const std::uint8_t* ip = a.bytes.data() + 14;
        const std::uint8_t* icmp = ip + 40;
        EXPECT_EQ(ip[7], 255) << "hop limit";
        EXPECT_EQ(ip[24], 0xff) << "to ff02::1";
        EXPECT_EQ(ip[39], 1) << "to ff02::1";
        EXPECT_EQ(icmp[4] & 0xe0, 0x20) << "override set, solicited and router clear";
        ASSERT_GE(a.bytes.size(), 14u + 40 + 32);
        EXPECT_EQ(icmp[24], ND_OPT_TARGET_LINKADDR);
        EXPECT_TRUE(std::equal(veth0_mac_.begin(), veth0_mac_.end(), icmp + 26)) << "target link-layer address";
    }
    const auto solicitations = icmp6_frames(ND_NEIGHBOR_SOLICIT, v6.address);
    ASSERT_EQ(solicitations.size(), kAnnounceSchedule.size());
    const std::uint8_t* ip = solicitations[0].bytes.data() + 14;
    EXPECT_TRUE(std::all_of(ip + 8, ip + 24, [](std::uint8_t b) { return b == 0; })) << "from ::";
    EXPECT_EQ(ip[24 + 11], 1);
    EXPECT_EQ(ip[24 + 12], 0xff) << "to the solicited-node group";
    EXPECT_TRUE(foreign_.empty());
}

TEST_F(FloatingAddressesTest, AnnounceRefreshRepeatsWhileUp) {
    const auto v4 = address("192.0.2.10", 24, "veth0");
    start_capture();
    auto f = make({v4}, 300 * kUsecPerMsec);
    std::string error;
    ASSERT_EQ(f->up(&error), 0) << error;
    // The initial rounds until 1.5 s, then one every 300 ms: at 1.8, 2.1, 2.4 s.
    const auto seen = [&] { return arp_frames(v4.address, v4.address); };
    ASSERT_TRUE(run_until([&] { return seen().size() == kAnnounceSchedule.size() + 3; }, 4 * kUsecPerSec));
    const auto garps = seen();
    for (std::size_t i = kAnnounceSchedule.size(); i < garps.size(); ++i)
        EXPECT_GT(garps[i].at - garps[i - 1].at, std::chrono::milliseconds(250)) << "the refresh period, round " << i;
    f->down();
    const auto before = seen().size();
    run_for(700 * kUsecPerMsec);
    EXPECT_EQ(seen().size(), before) << "none after down()";
}

TEST_F(FloatingAddressesTest, AddressRemovedByHandIsLostOnce) {
    auto f = make({address("192.0.2.10", 24, "veth0"), address("2001:db8::10", 64, "veth0")});
    std::string error;
    ASSERT_EQ(f->up(&error), 0) << error;
    shell("ip addr del 192.0.2.10/24 dev veth0");
    ASSERT_TRUE(run_until([&] { return !lost_.empty(); }, Usec(500 * kUsecPerMsec)));
    EXPECT_EQ(lost_, std::vector<std::string>{"192.0.2.10/24 removed from veth0"});
    EXPECT_FALSE(f->status()[0].up);
    EXPECT_TRUE(f->status()[1].up);
    shell("ip addr del 2001:db8::10/64 dev veth0");
    run_for(300 * kUsecPerMsec);
    EXPECT_EQ(lost_.size(), 1u) << "once per up()";
    f->down();
    ASSERT_EQ(f->up(&error), 0) << error;
    shell("ip addr del 2001:db8::10/64 dev veth0");
    ASSERT_TRUE(run_until([&] { return lost_.size() == 2; }, Usec(500 * kUsecPerMsec)));
    EXPECT_EQ(lost_[1], "2001:db8::10/64 removed from veth0");
}

TEST_F(FloatingAddressesTest, RemovalLostInANotificationOverrunIsFoundAnyway) {
    auto f = make({address("192.0.2.10", 24, "veth0")});
    std::string error;
    ASSERT_EQ(f->up(&error), 0) << error;
    // With the loop not reading, changes elsewhere fill the notification
    // socket, and the removal's own notification is dropped.
    char batch[] = "/tmp/freeha-net-batch-XXXXXX";
    const int fd = mkstemp(batch);
    ASSERT_GE(fd, 0);
    FILE* out = fdopen(fd, "w");
    for (int i = 0; i < 8000; ++i) std::fprintf(out, "addr add 10.%d.%d.1/32 dev veth1\n", i / 250, i % 250);
    std::fclose(out);
    shell(std::string("ip -batch ") + batch + " && ip addr del 192.0.2.10/24 dev veth0");
    unlink(batch);
    ASSERT_TRUE(run_until([&] { return !lost_.empty(); }, 2 * kUsecPerSec));
    EXPECT_EQ(lost_, std::vector<std::string>{"192.0.2.10/24 removed from veth0"});
}

TEST_F(FloatingAddressesTest, LinkDownIsLost) {
    auto f = make({address("192.0.2.10", 24, "veth0")});
    std::string error;
    ASSERT_EQ(f->up(&error), 0) << error;
    shell("ip link set veth1 down");  // veth0 loses its carrier
    ASSERT_TRUE(run_until([&] { return !lost_.empty(); }, Usec(500 * kUsecPerMsec)));
    EXPECT_EQ(lost_, std::vector<std::string>{"veth0 went down"});
    f->down();
    EXPECT_EQ(f->up(&error), -ENETDOWN);
    EXPECT_EQ(error, "192.0.2.10/24 on veth0: veth0 is down");
}

TEST_F(FloatingAddressesTest, DeviceRemovedIsLost) {
    shell("ip link add gone0 type veth peer name gone1 && ip link set gone0 up && ip link set gone1 up");
    auto f = make({address("2001:db8::10", 64, "gone0")});
    std::string error;
    ASSERT_EQ(f->up(&error), 0) << error;
    shell("ip link del gone0");
    ASSERT_TRUE(run_until([&] { return !lost_.empty(); }, Usec(500 * kUsecPerMsec)));
    // The kernel takes the link down before it removes it.
    EXPECT_EQ(lost_, std::vector<std::string>{"gone0 went down"});
    run_for(100 * kUsecPerMsec);
    EXPECT_EQ(lost_.size(), 1u);
}

TEST_F(FloatingAddressesTest, DownThenUpAtOnceReportsNothing) {
    auto f = make({address("192.0.2.10", 24, "veth0"), address("2001:db8::10", 64, "veth0")});
    std::string error;
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(f->up(&error), 0) << error;
        f->down();
    }
    ASSERT_EQ(f->up(&error), 0) << error;
    run_for(300 * kUsecPerMsec);
    EXPECT_TRUE(lost_.empty()) << "the earlier down()s' removals are not this up()'s: " << lost_[0];
    EXPECT_EQ(addresses_on("veth0").size(), 2u);
}

TEST_F(FloatingAddressesTest, MissingDeviceFailsClearlyAndMayAppearLater) {
    auto f = make({address("192.0.2.10", 24, "veth0"), address("192.0.2.11", 24, "late0")});
    std::string error;
    EXPECT_EQ(f->up(&error), -ENODEV);
    EXPECT_EQ(error, "192.0.2.11/24 on late0: no such device");
    EXPECT_FALSE(f->is_up());
    EXPECT_EQ(addresses_on("veth0"), std::vector<std::string>{"192.0.2.10/24"}) << "added before the failure";
    f->down();
    EXPECT_TRUE(addresses_on("veth0").empty()) << "down() removes what a failed up() added";

    shell("ip link add late0 type veth peer name late1 && ip link set late0 up && ip link set late1 up");
    ASSERT_EQ(f->up(&error), 0) << error;
    EXPECT_EQ(addresses_on("late0"), std::vector<std::string>{"192.0.2.11/24"});
    f->down();
    EXPECT_TRUE(lost_.empty());
}

TEST_F(FloatingAddressesTest, UnreadyNamesAMissingOrDownDeviceAndLinkChangesAreReportedWhileNotUp) {
    auto f = make({address("192.0.2.10", 24, "veth0"), address("192.0.2.11", 24, "late0")});
    EXPECT_EQ(f->unready(), "Address=192.0.2.11/24 late0: late0 does not exist");
    shell("ip link add late0 type veth peer name late1");
    ASSERT_TRUE(run_until([&] { return links_changed_ > 0; }, Usec(500 * kUsecPerMsec))) << "not up, still told";
    EXPECT_EQ(f->unready(), "Address=192.0.2.11/24 late0: late0 is down");
    int before = links_changed_;
    shell("ip link set late0 up && ip link set late1 up");
    ASSERT_TRUE(run_until([&] { return links_changed_ > before && f->unready().empty(); }, Usec(500 * kUsecPerMsec)));
    EXPECT_EQ(f->unready(), "");
    EXPECT_TRUE(lost_.empty());
}

TEST_F(FloatingAddressesTest, RemoveAddressesRemovesLeftovers) {
    shell("ip addr add 192.0.2.10/24 dev veth0 label veth0:web && ip addr add 2001:db8::10/64 dev veth0 nodad");
    const std::vector<FloatingAddress> configured{address("192.0.2.10", 24, "veth0"),
                                                  address("2001:db8::10", 64, "veth0"),
                                                  address("192.0.2.12", 24, "gone0")};
    std::string error;
    EXPECT_EQ(remove_addresses(configured, &error), 2) << error;
    EXPECT_TRUE(addresses_on("veth0").empty());
    EXPECT_EQ(remove_addresses(configured, &error), 0) << "nothing left: " << error;
}

TEST_F(FloatingAddressesTest, LabelAndDadAreApplied) {
    auto v4 = address("192.0.2.10", 24, "veth0");
    v4.label = "veth0:web";
    const auto v6 = address("2001:db8::10", 64, "veth0", true);
    shell("sysctl -qw net.ipv6.conf.veth0.accept_dad=1");
    start_capture();
    auto f = make({v4, v6});
    std::string error;
    ASSERT_EQ(f->up(&error), 0) << error;
    Link link;
    ASSERT_EQ(rtnetlink_.get_link("veth0", &link), 0);
    std::vector<InterfaceAddress> present;
    ASSERT_EQ(rtnetlink_.addresses(link.index, &present), 0);
    bool labelled = false, tentative = false;
    for (const auto& p : present) {
        if (p.address == v4.address) labelled = p.label == "veth0:web";
        if (p.address == v6.address) tentative = p.flags & IFA_F_TENTATIVE;
    }
    EXPECT_TRUE(labelled);
    EXPECT_TRUE(tentative) << "with dad the kernel runs duplicate address detection";
    run_for(200 * kUsecPerMsec);
    EXPECT_TRUE(icmp6_frames(ND_NEIGHBOR_ADVERT, v6.address).empty()) << "a tentative address is not announced";
    // DAD takes RetransTimer (1 s) per probe; then the announcements start.
    ASSERT_TRUE(run_until([&] { return !icmp6_frames(ND_NEIGHBOR_ADVERT, v6.address).empty(); }, 3 * kUsecPerSec));
    EXPECT_TRUE(lost_.empty());
}

TEST_F(FloatingAddressesTest, FailedDadIsLost) {
    // Another host on the link holds the address: veth1 (IPv6 lets one host have it on two links).
    shell("ip addr add 2001:db8::10/64 dev veth1 nodad && sysctl -qw net.ipv6.conf.veth0.accept_dad=1");
    auto f = make({address("2001:db8::10", 64, "veth0", true)});
    std::string error;
    ASSERT_EQ(f->up(&error), 0) << error;
    ASSERT_TRUE(run_until([&] { return !lost_.empty(); }, 3 * kUsecPerSec));
    EXPECT_EQ(lost_, std::vector<std::string>{"2001:db8::10/64 on veth0: duplicate address detection failed"});
}

TEST_F(FloatingAddressesTest, PresentAddressCountsAsAdded) {
    shell("ip addr add 192.0.2.10/24 dev veth0 && ip addr add 2001:db8::10/64 dev veth0 nodad && "
          "sysctl -qw net.ipv6.conf.veth0.accept_dad=1");
    const auto v4 = address("192.0.2.10", 24, "veth0"), v6 = address("2001:db8::10", 64, "veth0", true);
    start_capture();
    auto f = make({v4, v6});
    std::string error;
    ASSERT_EQ(f->up(&error), 0) << error;
    for (const auto& s : f->status()) EXPECT_TRUE(s.up) << s.address;
    // Already there and usable, it is not tested again: announced at once.
    run_for(50 * kUsecPerMsec);
    EXPECT_EQ(icmp6_frames(ND_NEIGHBOR_ADVERT, v6.address).size(), 1u);
    EXPECT_EQ(arp_frames(v4.address, v4.address).size(), 1u);
    shell("ip addr del 192.0.2.10/24 dev veth0");
    ASSERT_TRUE(run_until([&] { return !lost_.empty(); }, Usec(500 * kUsecPerMsec)));
    EXPECT_EQ(lost_[0], "192.0.2.10/24 removed from veth0");
}

TEST_F(FloatingAddressesTest, ReconfigureChangesOnlyTheDifferences) {
    const auto a = address("192.0.2.10", 24, "veth0"), b = address("2001:db8::10", 64, "veth0"),
               c = address("192.0.2.11", 24, "veth0");
    auto f = make({a, b});
    std::string error;
    ASSERT_EQ(f->up(&error), 0) << error;
    run_for(50 * kUsecPerMsec);
    std::vector<std::string> changes;
    RtnetlinkWatch watch;
    ASSERT_EQ(watch.open(event_.get(),
                         [&](const RtnetlinkChange& ch) {
                             if (ch.kind == RtnetlinkChange::Kind::NewAddress ||
                                 ch.kind == RtnetlinkChange::Kind::DeletedAddress)
                                 changes.push_back(
                                     (ch.kind == RtnetlinkChange::Kind::NewAddress ? "+" : "-") +
                                     ch.address.address.to_string());
                         }),
              0);
    ASSERT_EQ(f->reconfigure({b, c}, Usec(0), &error), 0) << error;
    run_for(200 * kUsecPerMsec);
    EXPECT_EQ(changes, (std::vector<std::string>{"-192.0.2.10", "+192.0.2.11"})) << "b is kept as it is";
    EXPECT_EQ(addresses_on("veth0"), (std::vector<std::string>{"192.0.2.11/24", "2001:db8::10/64"}));
    EXPECT_TRUE(lost_.empty()) << "a removal by reconfigure() is not a loss: " << lost_[0];
    ASSERT_EQ(f->status().size(), 2u);
    EXPECT_EQ(f->status()[1].address, "192.0.2.11/24");
    EXPECT_TRUE(f->status()[1].up);

    // A changed line (a label now) is the address removed and added again, and no loss either.
    auto labelled = c;
    labelled.label = "veth0:web";
    ASSERT_EQ(f->reconfigure({b, labelled}, Usec(0), &error), 0) << error;
    run_for(200 * kUsecPerMsec);
    EXPECT_TRUE(lost_.empty()) << lost_[0];
    EXPECT_TRUE(f->status()[1].up);

    // While down, a reconfiguration touches nothing; the next up() adds the new list.
    f->down();
    run_for(50 * kUsecPerMsec);
    changes.clear();
    ASSERT_EQ(f->reconfigure({a}, Usec(0), &error), 0);
    run_for(50 * kUsecPerMsec);
    EXPECT_TRUE(changes.empty());
    ASSERT_EQ(f->up(&error), 0) << error;
    EXPECT_EQ(addresses_on("veth0"), std::vector<std::string>{"192.0.2.10/24"});
}

TEST_F(FloatingAddressesTest, AnotherHostAnsweringIsForeign) {
    const auto v4 = address("192.0.2.10", 24, "veth0"), v6 = address("2001:db8::10", 64, "veth0");
    auto f = make({v4, v6});
    std::string error;
    ASSERT_EQ(f->up(&error), 0) << error;
    run_for(50 * kUsecPerMsec);
    const std::vector<std::uint8_t> other{0x02, 0, 0, 0, 0, 0x99};
    send_arp_reply(v4.address, other);
    ASSERT_TRUE(run_until([&] { return !foreign_.empty(); }, Usec(500 * kUsecPerMsec)));
    EXPECT_EQ(foreign_, std::vector<std::string>{std::string("192.0.2.10/24 ") + kForeignMac});
    send_arp_reply(v4.address, other);
    send_neighbour_advertisement(v6.address, other);
    ASSERT_TRUE(run_until([&] { return foreign_.size() == 2; }, Usec(500 * kUsecPerMsec)));
    EXPECT_EQ(foreign_[1], std::string("2001:db8::10/64 ") + kForeignMac);
    run_for(50 * kUsecPerMsec);
    EXPECT_EQ(foreign_.size(), 2u) << "reported once per MAC and up()";
    const auto status = f->status();
    EXPECT_EQ(status[0].foreign_mac, kForeignMac);
    EXPECT_EQ(status[0].conflicts, 2u) << "every sighting counts";
    EXPECT_EQ(status[1].conflicts, 1u);
    EXPECT_TRUE(lost_.empty());

    // Not while down: the address is not ours then.
    f->down();
    send_arp_reply(v4.address, other);
    run_for(100 * kUsecPerMsec);
    EXPECT_EQ(f->status()[0].conflicts, 2u);
}

}  // namespace
}  // namespace freeha
