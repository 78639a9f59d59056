#include "daemon/announcer.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip6.h>
#include <sys/socket.h>

#include "daemon/log.h"

namespace freeha {
namespace {

constexpr std::size_t kMacLength = 6;
// Bounds the work of one dispatch so that an ARP storm cannot starve the timers.
constexpr int kMaxPacketsPerWakeup = 64;
constexpr int kNeighbourDiscoveryHopLimit = 255;  // RFC 4861: receivers drop anything else

// An Ethernet/IPv4 ARP packet (RFC 826), as on the wire.
struct [[gnu::packed]] ArpPacket {
    std::uint16_t hardware_type;
    std::uint16_t protocol_type;
    std::uint8_t hardware_length;
    std::uint8_t protocol_length;
    std::uint16_t operation;
    std::uint8_t sender_mac[kMacLength];
    std::uint8_t sender_ip[4];
    std::uint8_t target_mac[kMacLength];
    std::uint8_t target_ip[4];
};
static_assert(sizeof(ArpPacket) == 28);

struct [[gnu::packed]] LinkLayerOption {
    std::uint8_t type;
    std::uint8_t length;  // in units of 8 bytes
    std::uint8_t mac[kMacLength];
};
static_assert(sizeof(LinkLayerOption) == 8);

struct [[gnu::packed]] NeighbourAdvertisement {
    nd_neighbor_advert header;
    LinkLayerOption target;
};

struct [[gnu::packed]] NeighbourSolicitationPacket {
    ip6_hdr ip;
    nd_neighbor_solicit solicitation;
};

bool is_ethernet(const std::vector<std::uint8_t>& mac) { return mac.size() == kMacLength; }

std::uint16_t internet_checksum(const std::uint8_t* data, std::size_t length, std::uint32_t sum) {
    for (std::size_t i = 0; i + 1 < length; i += 2) sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
    if (length % 2) sum += static_cast<std::uint32_t>(data[length - 1] << 8);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return htons(static_cast<std::uint16_t>(~sum));
}

// The ICMPv6 checksum over the IPv6 pseudo-header (RFC 8200 8.1) and the message.
std::uint16_t icmp6_checksum(const ip6_hdr& ip, const std::uint8_t* message, std::size_t length) {
    std::uint8_t pseudo[40]{};
    std::memcpy(pseudo, &ip.ip6_src, 16);
    std::memcpy(pseudo + 16, &ip.ip6_dst, 16);
    const std::uint32_t upper = htonl(static_cast<std::uint32_t>(length));
    std::memcpy(pseudo + 32, &upper, 4);
    pseudo[39] = IPPROTO_ICMPV6;
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < sizeof pseudo; i += 2) sum += static_cast<std::uint32_t>(pseudo[i] << 8 | pseudo[i + 1]);
    return internet_checksum(message, length, sum);
}

int set_int_option(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof value) < 0 ? -errno : 0;
}

}  // namespace

std::string mac_to_string(const std::vector<std::uint8_t>& mac) {
    std::string text;
    char byte[4];
    for (std::size_t i = 0; i < mac.size(); ++i) {
        std::snprintf(byte, sizeof byte, i ? ":%02x" : "%02x", mac[i]);
        text += byte;
    }
    return text;
}

int Announcer::open(sd_event* event, Foreign foreign) {
    event_ = event;
    foreign_ = std::move(foreign);
    // Protocol 0: this socket only sends, and hears nothing.
    packet_ = UniqueFd(socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!packet_) return -errno;
    UniqueFd fd(socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6));
    if (!fd) return -errno;
    icmp6_filter filter;
    ICMP6_FILTER_SETBLOCKALL(&filter);
    ICMP6_FILTER_SETPASS(ND_NEIGHBOR_ADVERT, &filter);
    if (setsockopt(fd.get(), IPPROTO_ICMPV6, ICMP6_FILTER, &filter, sizeof filter) < 0) return -errno;
    // Our own advertisements must not come back as another host's.
    for (auto [name, value] : {std::pair{IPV6_MULTICAST_HOPS, kNeighbourDiscoveryHopLimit},
                               std::pair{IPV6_UNICAST_HOPS, kNeighbourDiscoveryHopLimit},
                               std::pair{IPV6_MULTICAST_LOOP, 0}, std::pair{IPV6_RECVPKTINFO, 1},
                               std::pair{IPV6_RECVHOPLIMIT, 1}})
        if (int r = set_int_option(fd.get(), IPPROTO_IPV6, name, value); r < 0) return r;
    sd_event_source* s = nullptr;
    if (int r = sd_event_add_io(event_, &s, fd.get(), EPOLLIN, on_icmp6, this); r < 0) return r;
    icmp6_.source.reset(s);
    icmp6_.fd = std::move(fd);
    sd_event_source_set_description(s, "neighbour-advertisements");
    return 0;
}

int Announcer::start(const IpAddress& address, unsigned index, const std::vector<std::uint8_t>& mac) {
    stop(address);
    if (!packet_) return -EBADF;
    if (address.family == Family::Ipv4 && is_ethernet(mac))
        if (int r = open_arp_listener(index); r < 0) return r;
    auto a = std::make_unique<Announced>();
    a->owner = this;
    a->address = address;
    a->index = index;
    a->mac = mac;
    if (!is_ethernet(mac)) {
        log::debug("no announcements of " + address.to_string() + ": its link has no Ethernet address");
        announced_.push_back(std::move(a));
        return 0;
    }
    sd_event_source* s = nullptr;
    if (int r = sd_event_add_time(event_, &s, CLOCK_MONOTONIC, UINT64_MAX, 1000, on_timer, a.get()); r < 0) return r;
    a->timer.reset(s);
    sd_event_source_set_description(s, "announce");
    announce(*a);
    announced_.push_back(std::move(a));
    return 0;
}

void Announcer::stop(const IpAddress& address) {
    std::erase_if(announced_, [&](const auto& a) { return a->address == address; });
    close_unused_listeners();
}

void Announcer::stop_all() {
    announced_.clear();
    close_unused_listeners();
}

void Announcer::set_refresh(Usec refresh) {
    refresh_ = refresh;
    for (auto& a : announced_)
        if (a->timer && a->round >= kAnnounceSchedule.size()) schedule_next(*a);
}

unsigned Announcer::rounds(const IpAddress& address) const {
    for (const auto& a : announced_)
        if (a->address == address) return a->round;
    return 0;
}

void Announcer::announce(Announced& a) {
    const bool v4 = a.address.family == Family::Ipv4;
    const bool probing = a.round < kAnnounceSchedule.size();
    int r = 0;
    if (probing) r = v4 ? send_arp(a, true) : send_neighbour_solicitation(a);
    if (int s = v4 ? send_arp(a, false) : send_neighbour_advertisement(a); s < 0) r = s;
    if (r != a.last_errno) {
        // Once when sending starts failing and once when it works again, not per frame.
        if (r < 0)
            log::warning(log::with_errno("cannot announce " + a.address.to_string(), r));
        else
            log::info("announcing " + a.address.to_string() + " again");
        a.last_errno = r;
    }
    ++a.round;
    schedule_next(a);
}

void Announcer::schedule_next(Announced& a) {
    Usec delay;
    if (a.round < kAnnounceSchedule.size())
        delay = kAnnounceSchedule[a.round] - kAnnounceSchedule[a.round - 1];
    else if (refresh_.count() > 0)
        delay = refresh_;
    else {
        sd_event_source_set_enabled(a.timer.get(), SD_EVENT_OFF);
        return;
    }
    sd_event_source_set_time_relative(a.timer.get(), delay.count());
    sd_event_source_set_enabled(a.timer.get(), SD_EVENT_ONESHOT);
}

int Announcer::on_timer(sd_event_source*, uint64_t, void* userdata) {
    return log::guarded("announcement", [&] {
        auto* a = static_cast<Announced*>(userdata);
        a->owner->announce(*a);
        return 0;
    });
}

int Announcer::send_arp(const Announced& a, bool probe) {
    ArpPacket p{};
    p.hardware_type = htons(ARPHRD_ETHER);
    p.protocol_type = htons(ETH_P_IP);
    p.hardware_length = kMacLength;
    p.protocol_length = 4;
    p.operation = htons(1);  // request, as RFC 5227 announcements and probes
    std::memcpy(p.sender_mac, a.mac.data(), kMacLength);
    // A probe's sender is 0.0.0.0, so that it updates nobody's cache; the
    // holder of the address answers it. An announcement names the address twice.
    if (!probe) std::memcpy(p.sender_ip, a.address.bytes.data(), 4);
    std::memcpy(p.target_ip, a.address.bytes.data(), 4);
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_protocol = htons(ETH_P_ARP);
    to.sll_ifindex = static_cast<int>(a.index);
    to.sll_halen = kMacLength;
    std::memset(to.sll_addr, 0xff, kMacLength);
    if (sendto(packet_.get(), &p, sizeof p, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) return -errno;
    return 0;
}

int Announcer::send_neighbour_advertisement(const Announced& a) {
    NeighbourAdvertisement p{};
    p.header.nd_na_type = ND_NEIGHBOR_ADVERT;
    // Override: replace whatever link-layer address a neighbour has for it
    // (the old holder's); not solicited, so nobody takes it as reachability.
    p.header.nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE;
    std::memcpy(&p.header.nd_na_target, a.address.bytes.data(), 16);
    p.target.type = ND_OPT_TARGET_LINKADDR;
    p.target.length = 1;
    std::memcpy(p.target.mac, a.mac.data(), kMacLength);
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "ff02::1", &to.sin6_addr);
    to.sin6_scope_id = a.index;
    // The kernel computes an ICMPv6 raw socket's checksum.
    if (sendto(icmp6_.fd.get(), &p, sizeof p, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) return -errno;
    return 0;
}

// RFC 4862's duplicate address detection probe: from ::, to the address's
// solicited-node group. A socket cannot send from ::, so the frame is built here.
int Announcer::send_neighbour_solicitation(const Announced& a) {
    NeighbourSolicitationPacket p{};
    p.ip.ip6_flow = htonl(6u << 28);
    p.ip.ip6_plen = htons(sizeof p.solicitation);
    p.ip.ip6_nxt = IPPROTO_ICMPV6;
    p.ip.ip6_hlim = kNeighbourDiscoveryHopLimit;
    std::uint8_t group[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff};
    std::memcpy(group + 13, a.address.bytes.data() + 13, 3);
    std::memcpy(&p.ip.ip6_dst, group, 16);
    p.solicitation.nd_ns_type = ND_NEIGHBOR_SOLICIT;
    std::memcpy(&p.solicitation.nd_ns_target, a.address.bytes.data(), 16);
    p.solicitation.nd_ns_cksum =
        icmp6_checksum(p.ip, reinterpret_cast<const std::uint8_t*>(&p.solicitation), sizeof p.solicitation);
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_protocol = htons(ETH_P_IPV6);
    to.sll_ifindex = static_cast<int>(a.index);
    to.sll_halen = kMacLength;
    const std::uint8_t mac[kMacLength] = {0x33, 0x33, group[12], group[13], group[14], group[15]};
    std::memcpy(to.sll_addr, mac, kMacLength);
    if (sendto(packet_.get(), &p, sizeof p, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) return -errno;
    return 0;
}

int Announcer::open_arp_listener(unsigned index) {
    if (arp_listeners_.contains(index)) return 0;
    UniqueFd fd(socket(AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ARP)));
    if (!fd) return -errno;
    sockaddr_ll local{};
    local.sll_family = AF_PACKET;
    local.sll_protocol = htons(ETH_P_ARP);
    local.sll_ifindex = static_cast<int>(index);
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) < 0) return -errno;
    sd_event_source* s = nullptr;
    if (int r = sd_event_add_io(event_, &s, fd.get(), EPOLLIN, on_arp, this); r < 0) return r;
    sd_event_source_set_description(s, "arp-listener");
    Listener& l = arp_listeners_[index];
    l.source.reset(s);
    l.fd = std::move(fd);
    return 0;
}

void Announcer::close_unused_listeners() {
    std::erase_if(arp_listeners_, [&](const auto& entry) {
        return std::none_of(announced_.begin(), announced_.end(), [&](const auto& a) {
            return a->index == entry.first && a->address.family == Family::Ipv4;
        });
    });
}

bool Announcer::report(const IpAddress& address, unsigned index, const std::uint8_t* mac) {
    for (const auto& a : announced_) {
        if (a->index != index || !(a->address == address)) continue;
        if (std::equal(a->mac.begin(), a->mac.end(), mac)) return false;  // our own
        foreign_(address, index, mac_to_string(std::vector<std::uint8_t>(mac, mac + kMacLength)));
        return true;
    }
    return false;
}

int Announcer::on_arp(sd_event_source*, int fd, uint32_t, void* userdata) {
    return log::guarded("ARP listener", [&] {
        auto* self = static_cast<Announcer*>(userdata);
        for (int i = 0; i < kMaxPacketsPerWakeup; ++i) {
            ArpPacket p;
            sockaddr_ll from{};
            socklen_t from_length = sizeof from;
            const ssize_t n =
                recvfrom(fd, &p, sizeof p, MSG_TRUNC, reinterpret_cast<sockaddr*>(&from), &from_length);
            if (n < 0) break;
            // Our own frames come back as outgoing; anything not Ethernet/IPv4 is not about our addresses.
            if (from.sll_pkttype == PACKET_OUTGOING || n < static_cast<ssize_t>(sizeof p) ||
                p.hardware_type != htons(ARPHRD_ETHER) || p.protocol_type != htons(ETH_P_IP) ||
                p.hardware_length != kMacLength || p.protocol_length != 4)
                continue;
            IpAddress sender;
            std::memcpy(sender.bytes.data(), p.sender_ip, 4);
            // A reply to our probe, a gratuitous ARP, a request: any names its sender's address.
            // After a report the callback may have stopped this listener: read no further now.
            if (self->report(sender, static_cast<unsigned>(from.sll_ifindex), p.sender_mac)) break;
        }
        return 0;
    });
}

int Announcer::on_icmp6(sd_event_source*, int fd, uint32_t, void* userdata) {
    return log::guarded("neighbour advertisement listener", [&] {
        auto* self = static_cast<Announcer*>(userdata);
        for (int i = 0; i < kMaxPacketsPerWakeup; ++i) {
            alignas(nd_neighbor_advert) std::uint8_t buffer[1280];
            alignas(cmsghdr) std::uint8_t control[CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(int))];
            iovec iov{buffer, sizeof buffer};
            msghdr m{};
            m.msg_iov = &iov;
            m.msg_iovlen = 1;
            m.msg_control = control;
            m.msg_controllen = sizeof control;
            const ssize_t n = recvmsg(fd, &m, 0);
            if (n < 0) break;
            unsigned index = 0;
            int hop_limit = -1;
            for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
                if (c->cmsg_level != IPPROTO_IPV6) continue;
                if (c->cmsg_type == IPV6_PKTINFO) {
                    in6_pktinfo info;
                    std::memcpy(&info, CMSG_DATA(c), sizeof info);
                    index = info.ipi6_ifindex;
                }
                if (c->cmsg_type == IPV6_HOPLIMIT) std::memcpy(&hop_limit, CMSG_DATA(c), sizeof hop_limit);
            }
            // A hop limit below 255 was routed here: not from the link (RFC 4861 7.1.2).
            if (n < static_cast<ssize_t>(sizeof(nd_neighbor_advert)) || hop_limit != kNeighbourDiscoveryHopLimit)
                continue;
            nd_neighbor_advert advert;
            std::memcpy(&advert, buffer, sizeof advert);
            if (advert.nd_na_type != ND_NEIGHBOR_ADVERT || advert.nd_na_code != 0) continue;
            IpAddress target;
            target.family = Family::Ipv6;
            std::memcpy(target.bytes.data(), &advert.nd_na_target, 16);
            // Only the target link-layer address option names the host; an
            // advertisement without it (a unicast answer to a unicast
            // solicitation, which freehad never sends) cannot be told apart.
            for (std::size_t at = sizeof advert; at + 2 <= static_cast<std::size_t>(n);) {
                const std::size_t length = buffer[at + 1] * 8u;
                if (length == 0 || at + length > static_cast<std::size_t>(n)) break;
                if (buffer[at] == ND_OPT_TARGET_LINKADDR && length >= 2 + kMacLength) {
                    if (self->report(target, index, buffer + at + 2)) return 0;  // as in on_arp
                    break;
                }
                at += length;
            }
        }
        return 0;
    });
}

}  // namespace freeha
