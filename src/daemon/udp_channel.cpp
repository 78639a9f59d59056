#include "daemon/udp_channel.h"

#include <array>
#include <cerrno>
#include <cstring>

#include <linux/filter.h>
#include <net/if.h>
#include <netinet/in.h>

#include "core/wire.h"
#include "daemon/log.h"

namespace freeha {
namespace {

constexpr int kReceiveBuffer = 1 << 20;
constexpr std::uint64_t kRetryInterval = 1000000;  // usec

// Errors that a missing interface or address causes, which its appearance cures.
bool is_not_there_yet(int negative_errno) {
    return negative_errno == -ENODEV || negative_errno == -ENXIO || negative_errno == -EADDRNOTAVAIL;
}

int set_int_option(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof value) < 0 ? -errno : 0;
}

int domain_of(const IpAddress& a) { return a.family == Family::Ipv4 ? AF_INET : AF_INET6; }

// `ifindex` becomes the scope of addresses that need one (link-local, IPv6 multicast).
sockaddr_storage socket_address(const IpAddress& a, std::uint16_t port, unsigned ifindex, socklen_t* length) {
    sockaddr_storage ss{};
    if (a.family == Family::Ipv4) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        std::memcpy(&sin->sin_addr, a.bytes.data(), 4);
        sin->sin_port = htons(port);
        *length = sizeof(sockaddr_in);
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sin6->sin6_family = AF_INET6;
        std::memcpy(&sin6->sin6_addr, a.bytes.data(), 16);
        sin6->sin6_port = htons(port);
        sin6->sin6_scope_id = a.needs_device() ? ifindex : 0;
        *length = sizeof(sockaddr_in6);
    }
    return ss;
}

// A non-blocking UDP socket bound to address:port; *step names what failed.
// `freebind`: bind even while the address is not on this host (yet).
int bound_socket(const IpAddress& address, std::uint16_t port, unsigned ifindex, bool reuse, bool freebind,
                 UniqueFd* out, std::string* step) {
    const bool v6 = address.family == Family::Ipv6;
    UniqueFd fd(socket(domain_of(address), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        *step = "socket()";
        return -errno;
    }
    // Room for a burst (a junk flood, a backlog after a stall) so that the
    // kernel does not drop heartbeats before the loop drains the socket.
    // Best effort: FORCE needs CAP_NET_ADMIN, the plain option is capped by rmem_max.
    if (set_int_option(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, kReceiveBuffer) < 0)
        set_int_option(fd.get(), SOL_SOCKET, SO_RCVBUF, kReceiveBuffer);
    struct Option {
        bool wanted;
        int level, name;
        const char* text;
    };
    const Option options[] = {
        {v6, IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY"},  // an IPv6 channel is IPv6 only; IPv4 has its own channels
        {reuse, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR"},
        {freebind && !v6, IPPROTO_IP, IP_FREEBIND, "IP_FREEBIND"},
        {freebind && v6, IPPROTO_IPV6, IPV6_FREEBIND, "IPV6_FREEBIND"},
    };
    for (const auto& o : options) {
        if (!o.wanted) continue;
        if (int r = set_int_option(fd.get(), o.level, o.name, 1); r < 0) {
            *step = o.text;
            return r;
        }
    }
    socklen_t length = 0;
    sockaddr_storage sa = socket_address(address, port, ifindex, &length);
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), length) < 0) {
        *step = "bind " + Endpoint{address, port}.to_string();
        return -errno;
    }
    *out = std::move(fd);
    return 0;
}

// A socket filter for the listener: drops this node's own broadcasts and
// multicasts, which the kernel loops back (from SOURCE:port, which only the
// sender socket is bound to), before they are queued, so that they cost no
// receive, no decode and no loop iteration. Classic BPF: the loads are
// relative to the UDP header, SKF_NET_OFF reaches the IP header, and a load
// gives the big-endian value. Best effort: without it they are counted as
// `own`, as before.
int drop_own_datagrams(int fd, const IpAddress& source, std::uint16_t port) {
    auto word = [&](std::size_t at) {
        return static_cast<std::uint32_t>(source.bytes[at]) << 24 | static_cast<std::uint32_t>(source.bytes[at + 1]) << 16 |
               static_cast<std::uint32_t>(source.bytes[at + 2]) << 8 | source.bytes[at + 3];
    };
    const bool v4 = source.family == Family::Ipv4;
    const std::uint32_t source_at = v4 ? 12 : 8;  // the source address in the IPv4 or IPv6 header
    const std::size_t words = v4 ? 1 : 4;
    std::vector<sock_filter> code;
    // Each jump that fails skips to the accepting return at the end.
    for (std::size_t i = 0; i < words; ++i) {
        code.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<std::uint32_t>(SKF_NET_OFF + source_at + 4 * i)));
        code.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, word(4 * i), 0, 0));  // jf set below
    }
    code.push_back(BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 0));  // the UDP source port
    code.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, port, 0, 1));
    code.push_back(BPF_STMT(BPF_RET | BPF_K, 0));           // own: dropped
    code.push_back(BPF_STMT(BPF_RET | BPF_K, 0xffffffffU));  // anything else: kept whole
    const std::size_t accept = code.size() - 1;
    for (std::size_t i = 0; i < words; ++i) code[2 * i + 1].jf = static_cast<std::uint8_t>(accept - (2 * i + 1) - 1);
    sock_fprog program{static_cast<unsigned short>(code.size()), code.data()};
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) < 0 ? -errno : 0;
}

}  // namespace

std::unique_ptr<UdpChannel> UdpChannel::open(const ChannelSpec& spec, std::uint16_t port, std::size_t index,
                                             sd_event* event, Receiver receiver, std::string* error) {
    std::unique_ptr<UdpChannel> ch(new UdpChannel());
    ch->spec_ = spec;
    ch->port_ = port;
    ch->name_ = spec.to_string();
    ch->index_ = index;
    ch->receiver_ = std::move(receiver);
    ch->event_ = event;
    std::string step;
    int r = ch->set_up(&step);
    if (r < 0 && !is_not_there_yet(r)) {
        *error = "channel '" + ch->name_ + "': " + log::with_errno(step, r);
        return nullptr;
    }
    if (r < 0) {
        ch->waiting_for_ = step;
        log::warning("channel '" + ch->name_ + "': waiting for " + log::with_errno(step, r) +
                     "; retrying every second (heartbeats flow once it is there)");
        ch->retry_in_a_second();
    }
    return ch;
}

int UdpChannel::set_up(std::string* step) {
    const std::string device = spec_.device();
    if (!device.empty() && ifindex_ == 0) {
        ifindex_ = if_nametoindex(device.c_str());
        if (ifindex_ == 0) {
            *step = "interface " + device;
            return -errno;
        }
    }
    if (!sender_.fd) {
        if (int r = open_sender(step); r < 0) return r;
    }
    if (spec_.kind != ChannelKind::Unicast && !listener_.fd) {
        if (int r = open_listener(step); r < 0) return r;
    }
    if (spec_.kind == ChannelKind::Multicast && !joined_) {
        if (int r = join_group(step); r < 0) return r;
        joined_ = true;
    }
    if (!source_present_) {
        // Binding without IP_FREEBIND succeeds only for an address this host
        // has (and, for IPv6, has finished duplicate address detection on).
        UniqueFd probe;
        if (int r = bound_socket(spec_.source, 0, ifindex_, false, false, &probe, step); r < 0) {
            if (r == -EADDRNOTAVAIL) *step = "address " + spec_.source.to_string() + " on this host";
            return r;
        }
        source_present_ = true;
    }
    return 0;
}

int UdpChannel::open_sender(std::string* step) {
    UniqueFd fd;
    if (int r = bound_socket(spec_.source, port_, ifindex_, false, true, &fd, step); r < 0) return r;
    const bool v6 = spec_.family() == Family::Ipv6;
    switch (spec_.kind) {
    case ChannelKind::Broadcast:
        if (int r = set_int_option(fd.get(), SOL_SOCKET, SO_BROADCAST, 1); r < 0) {
            *step = "SO_BROADCAST";
            return r;
        }
        break;
    case ChannelKind::Multicast:
        // TTL / hop limit 1: heartbeats never leave the local network segment.
        // An IPv4 group needs no IP_MULTICAST_IF, which would fail until
        // SOURCE exists: with the socket bound to SOURCE the kernel sends out
        // of the interface that has it. IPv6 names the interface.
        if (int r = v6 ? set_int_option(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 1)
                       : set_int_option(fd.get(), IPPROTO_IP, IP_MULTICAST_TTL, 1);
            r < 0) {
            *step = v6 ? "IPV6_MULTICAST_HOPS" : "IP_MULTICAST_TTL";
            return r;
        }
        if (v6) {
            if (int r = set_int_option(fd.get(), IPPROTO_IPV6, IPV6_MULTICAST_IF, static_cast<int>(ifindex_)); r < 0) {
                *step = "IPV6_MULTICAST_IF " + spec_.device();
                return r;
            }
        }
        break;
    case ChannelKind::Unicast: break;
    }
    destinations_.clear();
    auto add_destination = [&](const IpAddress& address, std::uint16_t port) {
        Destination d{};
        d.address = socket_address(address, port, ifindex_, &d.length);
        destinations_.push_back(d);
    };
    if (spec_.kind == ChannelKind::Unicast)
        for (const auto& peer : spec_.peers) add_destination(peer.address, peer.port.value_or(port_));
    else
        add_destination(spec_.group_or_broadcast, port_);
    if (int r = add_socket(std::move(fd), &sender_); r < 0) {
        *step = "sd_event_add_io";
        return r;
    }
    return 0;
}

int UdpChannel::open_listener(std::string* step) {
    UniqueFd fd;
    // IP_FREEBIND: a subnet broadcast address is "local" only once SOURCE is.
    if (int r = bound_socket(spec_.group_or_broadcast, port_, ifindex_, true, true, &fd, step); r < 0) return r;
    if (int r = drop_own_datagrams(fd.get(), spec_.source, port_); r < 0)
        log::info(log::with_errno("channel '" + name_ + "': cannot filter out this node's own heartbeats (they are "
                                  "read and counted as own)", r));
    if (int r = add_socket(std::move(fd), &listener_); r < 0) {
        *step = "sd_event_add_io";
        return r;
    }
    return 0;
}

int UdpChannel::join_group(std::string* step) {
    const IpAddress& group = spec_.group_or_broadcast;
    int r = 0;
    if (spec_.family() == Family::Ipv4) {
        // Joined on the interface that has SOURCE: ENODEV until it has it.
        ip_mreqn mreq{};
        std::memcpy(&mreq.imr_multiaddr, group.bytes.data(), 4);
        std::memcpy(&mreq.imr_address, spec_.source.bytes.data(), 4);
        if (setsockopt(listener_.fd.get(), IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof mreq) < 0) r = -errno;
        *step = "membership of " + group.to_string() + " on the interface of " + spec_.source.to_string();
    } else {
        ipv6_mreq mreq{};
        std::memcpy(&mreq.ipv6mr_multiaddr, group.bytes.data(), 16);
        mreq.ipv6mr_interface = ifindex_;
        if (setsockopt(listener_.fd.get(), IPPROTO_IPV6, IPV6_JOIN_GROUP, &mreq, sizeof mreq) < 0) r = -errno;
        *step = "membership of " + group.to_string();
    }
    return r;
}

int UdpChannel::add_socket(UniqueFd fd, Socket* slot) {
    sd_event_source* raw = nullptr;
    int r = sd_event_add_io(event_, &raw, fd.get(), EPOLLIN, on_readable, this);
    if (r < 0) return r;
    EventSourcePtr source(raw);
    // Below the core's timer, above everything else (kHeartbeatSocketPriority).
    if (r = sd_event_source_set_priority(raw, kHeartbeatSocketPriority); r < 0) return r;
    sd_event_source_set_description(raw, "heartbeat-socket");
    *slot = Socket{std::move(fd), std::move(source)};
    return 0;
}

void UdpChannel::retry_in_a_second() {
    int r = 0;
    if (!retry_timer_) {
        sd_event_source* s = nullptr;
        r = sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, kRetryInterval, kRetryInterval / 10, on_retry, this);
        if (r >= 0) {
            retry_timer_.reset(s);
            sd_event_source_set_description(s, "channel-retry");
        }
    } else {
        r = sd_event_source_set_time_relative(retry_timer_.get(), kRetryInterval);
        if (r >= 0) r = sd_event_source_set_enabled(retry_timer_.get(), SD_EVENT_ONESHOT);
    }
    if (r < 0) log::error(log::with_errno("channel '" + name_ + "': cannot arm its retry timer", r));
}

int UdpChannel::on_retry(sd_event_source*, uint64_t, void* userdata) {
    auto* self = static_cast<UdpChannel*>(userdata);
    try {
        std::string step;
        int r = self->set_up(&step);
        if (r == 0) {
            log::notice("channel '" + self->name_ + "': ready (no longer waiting for " + self->waiting_for_ + ")");
            self->waiting_for_.clear();
            return 0;
        }
        if (step != self->waiting_for_) {
            self->waiting_for_ = step;
            log::message(is_not_there_yet(r) ? LOG_INFO : LOG_WARNING,
                         "channel '" + self->name_ + "': waiting for " + log::with_errno(step, r));
        }
        self->retry_in_a_second();
    } catch (const std::exception& e) {
        log::error("channel '" + self->name_ + "': " + e.what());
    }
    return 0;
}

int UdpChannel::on_readable(sd_event_source*, int fd, uint32_t, void* userdata) {
    static_cast<UdpChannel*>(userdata)->receive_batch(fd);
    return 0;
}

void UdpChannel::receive_queued() {
    for (const Socket* socket : {&sender_, &listener_})
        if (socket->fd) receive_batch(socket->fd.get());
}

void UdpChannel::receive_batch(int fd) {
    // Every heartbeat fits (wire.h): one that did not would arrive cut.
    static std::array<std::uint8_t, wire::kMaxDatagramSize> buf;  // the loop's thread only
    for (int i = 0; i < kMaxDatagramsPerWakeup; ++i) {
        ssize_t n = recv(fd, buf.data(), buf.size(), 0);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) log::warning(log::with_errno("channel '" + name_ + "': recv", -errno));
            break;
        }
        try {
            receiver_(std::span<const std::uint8_t>(buf.data(), static_cast<std::size_t>(n)), index_);
        } catch (const std::exception& e) {
            log::error("channel '" + name_ + "': " + e.what());
        }
    }
}

void UdpChannel::send(std::span<const std::uint8_t> datagram) {
    if (!sender_.fd) return;  // waiting for the interface; logged then
    int first_errno = 0;
    for (const auto& dest : destinations_) {
        ssize_t n = sendto(sender_.fd.get(), datagram.data(), datagram.size(), 0,
                           reinterpret_cast<const sockaddr*>(&dest.address), dest.length);
        if (n < 0 && first_errno == 0) first_errno = errno;
    }
    // While SOURCE is missing sending fails, as the waiting line already said.
    if (!source_present_) return;
    if (first_errno != last_send_errno_) {
        if (first_errno != 0)
            log::warning(log::with_errno("channel '" + name_ + "': sending heartbeats fails", -first_errno));
        else
            log::notice("channel '" + name_ + "': sending heartbeats works again");
        last_send_errno_ = first_errno;
    }
}

}  // namespace freeha
