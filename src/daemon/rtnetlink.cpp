#include "daemon/rtnetlink.h"

#include <cerrno>
#include <cstring>

#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if.h>
#include <sys/socket.h>

#include "daemon/log.h"

namespace freeha {
namespace {

// Big enough for any link message (with statistics and VF lists) and a dump chunk.
constexpr std::size_t kReceiveBuffer = 64 * 1024;
// Bounds the work of one dispatch so that a flood of changes cannot starve the timers.
constexpr int kMaxReadsPerWakeup = 16;

// A request under construction: a header, its family header, then attributes.
class Message {
public:
    Message(std::uint16_t type, std::uint16_t flags, const void* family_header, std::size_t length) {
        auto* h = header();
        h->nlmsg_type = type;
        h->nlmsg_flags = NLM_F_REQUEST | flags;
        h->nlmsg_len = NLMSG_LENGTH(length);
        std::memcpy(NLMSG_DATA(h), family_header, length);
    }
    void add(std::uint16_t type, const void* data, std::size_t length) {
        auto* h = header();
        auto* rta = reinterpret_cast<rtattr*>(buffer_ + NLMSG_ALIGN(h->nlmsg_len));
        rta->rta_type = type;
        rta->rta_len = RTA_LENGTH(length);
        std::memcpy(RTA_DATA(rta), data, length);
        h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(rta->rta_len);
    }
    nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buffer_); }

private:
    alignas(nlmsghdr) std::uint8_t buffer_[512]{};
};

// NLMSG_OK, without its comparison of a signed length with an unsigned one.
bool message_fits(const nlmsghdr* h, int remaining) {
    return remaining >= static_cast<int>(sizeof(nlmsghdr)) && h->nlmsg_len >= sizeof(nlmsghdr) &&
           h->nlmsg_len <= static_cast<unsigned>(remaining);
}

// Each attribute after the family header of `h` (of `header_length` bytes).
template <typename F>
void for_each_attribute(const nlmsghdr& h, std::size_t header_length, F&& f) {
    const auto* rta = reinterpret_cast<const rtattr*>(static_cast<const std::uint8_t*>(NLMSG_DATA(&h)) +
                                                      NLMSG_ALIGN(header_length));
    int remaining = static_cast<int>(h.nlmsg_len) - static_cast<int>(NLMSG_LENGTH(NLMSG_ALIGN(header_length)));
    for (; remaining > 0 && RTA_OK(rta, remaining); rta = RTA_NEXT(rta, remaining))
        f(rta->rta_type, RTA_DATA(rta), RTA_PAYLOAD(rta));
}

std::string string_attribute(const void* data, std::size_t length) {
    const auto* s = static_cast<const char*>(data);
    return std::string(s, strnlen(s, length));
}

bool parse_link(const nlmsghdr& h, Link* out) {
    if (h.nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return false;
    const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(&h));
    *out = Link{};
    out->index = static_cast<unsigned>(ifi->ifi_index);
    out->flags = ifi->ifi_flags;
    for_each_attribute(h, sizeof(ifinfomsg), [&](unsigned type, const void* data, std::size_t length) {
        if (type == IFLA_IFNAME) out->name = string_attribute(data, length);
        if (type == IFLA_ADDRESS) {
            const auto* bytes = static_cast<const std::uint8_t*>(data);
            out->mac.assign(bytes, bytes + length);
        }
    });
    return true;
}

bool parse_address(const nlmsghdr& h, InterfaceAddress* out) {
    if (h.nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return false;
    const auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(&h));
    if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6) return false;
    *out = InterfaceAddress{};
    out->address.family = ifa->ifa_family == AF_INET ? Family::Ipv4 : Family::Ipv6;
    out->prefix = ifa->ifa_prefixlen;
    out->index = ifa->ifa_index;
    out->flags = ifa->ifa_flags;
    const std::size_t size = ifa->ifa_family == AF_INET ? 4 : 16;
    bool have_local = false, have_address = false;
    for_each_attribute(h, sizeof(ifaddrmsg), [&](unsigned type, const void* data, std::size_t length) {
        // IFA_LOCAL is the address itself; IFA_ADDRESS is the peer's on a
        // point-to-point link, and the address itself elsewhere (and for IPv6).
        if ((type == IFA_LOCAL || (type == IFA_ADDRESS && !have_local)) && length == size) {
            std::memcpy(out->address.bytes.data(), data, size);
            have_local = have_local || type == IFA_LOCAL;
            have_address = true;
        }
        if (type == IFA_LABEL) out->label = string_attribute(data, length);
        if (type == IFA_FLAGS && length == sizeof(std::uint32_t)) std::memcpy(&out->flags, data, length);
    });
    return have_address;
}

UniqueFd netlink_socket(std::uint32_t groups, int* error) {
    UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!fd) {
        *error = -errno;
        return fd;
    }
    sockaddr_nl local{};
    local.nl_family = AF_NETLINK;
    local.nl_groups = groups;
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) < 0) {
        *error = -errno;
        return UniqueFd();
    }
    // Room for a burst of changes (a device with many addresses going away).
    int size = 1 << 20;
    if (setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
        setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    *error = 0;
    return fd;
}

}  // namespace

bool Link::running() const { return (flags & IFF_UP) && (flags & IFF_LOWER_UP); }

std::string address_with_prefix(const FloatingAddress& a) {
    return a.address.to_string() + "/" + std::to_string(a.prefix);
}

int Rtnetlink::open() {
    int error = 0;
    fd_ = netlink_socket(0, &error);
    return error;
}

int Rtnetlink::transact(nlmsghdr* request, const std::function<void(const nlmsghdr&)>& on_reply) {
    if (!fd_) return -EBADF;
    request->nlmsg_seq = ++sequence_;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (sendto(fd_.get(), request, request->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
        return -errno;
    buffer_.resize(kReceiveBuffer);
    for (;;) {
        const ssize_t n = recv(fd_.get(), buffer_.data(), buffer_.size(), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            // EAGAIN: the kernel answers inside sendmsg, so there is no answer
            // to wait for; say so rather than block the loop.
            return errno == EAGAIN ? -ETIMEDOUT : -errno;
        }
        int remaining = static_cast<int>(n);
        for (auto* h = reinterpret_cast<nlmsghdr*>(buffer_.data()); message_fits(h, remaining);
             h = NLMSG_NEXT(h, remaining)) {
            if (h->nlmsg_seq != request->nlmsg_seq) continue;  // the answer to an earlier request
            if (h->nlmsg_type == NLMSG_ERROR) {
                if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return -EPROTO;
                return static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;  // 0: the ack
            }
            if (h->nlmsg_type == NLMSG_DONE) return 0;
            on_reply(*h);
            if (!(h->nlmsg_flags & NLM_F_MULTI) && !(request->nlmsg_flags & NLM_F_ACK)) return 0;
        }
    }
}

int Rtnetlink::get_link(std::string_view name, Link* out) {
    if (name.empty() || name.size() >= IFNAMSIZ) return -ENODEV;
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    Message m(RTM_GETLINK, 0, &ifi, sizeof ifi);
    const std::string n(name);
    m.add(IFLA_IFNAME, n.c_str(), n.size() + 1);
    std::uint32_t mask = RTEXT_FILTER_SKIP_STATS;
    m.add(IFLA_EXT_MASK, &mask, sizeof mask);
    bool found = false;
    int r = transact(m.header(), [&](const nlmsghdr& h) {
        if (h.nlmsg_type == RTM_NEWLINK) found = parse_link(h, out);
    });
    if (r < 0) return r;
    return found ? 0 : -ENODEV;
}

int Rtnetlink::links(std::vector<Link>* out) {
    out->clear();
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    Message m(RTM_GETLINK, NLM_F_DUMP, &ifi, sizeof ifi);
    std::uint32_t mask = RTEXT_FILTER_SKIP_STATS;
    m.add(IFLA_EXT_MASK, &mask, sizeof mask);
    return transact(m.header(), [&](const nlmsghdr& h) {
        Link link;
        if (h.nlmsg_type == RTM_NEWLINK && parse_link(h, &link)) out->push_back(std::move(link));
    });
}

int Rtnetlink::change_address(int type, unsigned index, const FloatingAddress& a) {
    const bool v4 = a.address.family == Family::Ipv4;
    ifaddrmsg ifa{};
    ifa.ifa_family = v4 ? AF_INET : AF_INET6;
    ifa.ifa_prefixlen = static_cast<std::uint8_t>(a.prefix);
    ifa.ifa_index = index;
    // Without DAD the kernel does not hold the address back as tentative:
    // it is usable at once (the lease already excludes other cluster nodes).
    if (!v4 && !a.dad && type == RTM_NEWADDR) ifa.ifa_flags = IFA_F_NODAD;
    const std::uint16_t flags = NLM_F_ACK | (type == RTM_NEWADDR ? NLM_F_CREATE | NLM_F_REPLACE : 0);
    Message m(static_cast<std::uint16_t>(type), flags, &ifa, sizeof ifa);
    const std::size_t size = v4 ? 4 : 16;
    m.add(IFA_LOCAL, a.address.bytes.data(), size);
    m.add(IFA_ADDRESS, a.address.bytes.data(), size);
    // Not on removal: the address goes whatever label it carries.
    if (v4 && !a.label.empty() && type == RTM_NEWADDR) m.add(IFA_LABEL, a.label.c_str(), a.label.size() + 1);
    return transact(m.header(), [](const nlmsghdr&) {});
}

int Rtnetlink::add_address(unsigned index, const FloatingAddress& a) { return change_address(RTM_NEWADDR, index, a); }

int Rtnetlink::remove_address(unsigned index, const FloatingAddress& a) {
    return change_address(RTM_DELADDR, index, a);
}

int Rtnetlink::addresses(unsigned index, std::vector<InterfaceAddress>* out) {
    out->clear();
    ifaddrmsg ifa{};
    ifa.ifa_family = AF_UNSPEC;
    ifa.ifa_index = index;  // older kernels ignore it: filtered below too
    Message m(RTM_GETADDR, NLM_F_DUMP, &ifa, sizeof ifa);
    return transact(m.header(), [&](const nlmsghdr& h) {
        InterfaceAddress a;
        if (h.nlmsg_type == RTM_NEWADDR && parse_address(h, &a) && a.index == index) out->push_back(std::move(a));
    });
}

int RtnetlinkWatch::open(sd_event* event, Handler handler) {
    int error = 0;
    // The legacy group bitmask: these three groups are below 32.
    fd_ = netlink_socket((1u << (RTNLGRP_LINK - 1)) | (1u << (RTNLGRP_IPV4_IFADDR - 1)) |
                             (1u << (RTNLGRP_IPV6_IFADDR - 1)),
                         &error);
    if (error < 0) return error;
    handler_ = std::move(handler);
    sd_event_source* s = nullptr;
    if (int r = sd_event_add_io(event, &s, fd_.get(), EPOLLIN, on_readable, this); r < 0) return r;
    source_.reset(s);
    return 0;
}

int RtnetlinkWatch::on_readable(sd_event_source*, int, uint32_t, void* userdata) {
    return log::guarded("rtnetlink notification", [&] {
        static_cast<RtnetlinkWatch*>(userdata)->read(kMaxReadsPerWakeup);
        return 0;
    });
}

void RtnetlinkWatch::drain() { read(-1); }

void RtnetlinkWatch::read(int max_reads) {
    buffer_.resize(kReceiveBuffer);
    for (int reads = 0; fd_ && reads != max_reads; ++reads) {
        const ssize_t n = recv(fd_.get(), buffer_.data(), buffer_.size(), MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == ENOBUFS) {
                handler_(RtnetlinkChange{});  // Overrun
                continue;
            }
            return;  // EAGAIN: all read
        }
        int remaining = static_cast<int>(n);
        for (auto* h = reinterpret_cast<nlmsghdr*>(buffer_.data()); message_fits(h, remaining);
             h = NLMSG_NEXT(h, remaining)) {
            RtnetlinkChange c;
            switch (h->nlmsg_type) {
            case RTM_NEWADDR:
            case RTM_DELADDR:
                if (!parse_address(*h, &c.address)) continue;
                c.kind = h->nlmsg_type == RTM_NEWADDR ? RtnetlinkChange::Kind::NewAddress
                                                      : RtnetlinkChange::Kind::DeletedAddress;
                break;
            case RTM_NEWLINK:
            case RTM_DELLINK:
                if (!parse_link(*h, &c.link)) continue;
                c.kind = h->nlmsg_type == RTM_NEWLINK ? RtnetlinkChange::Kind::NewLink
                                                      : RtnetlinkChange::Kind::DeletedLink;
                break;
            default:
                continue;
            }
            handler_(c);
        }
    }
}

}  // namespace freeha
