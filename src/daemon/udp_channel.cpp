#include "daemon/udp_channel.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <sys/socket.h>

#include "daemon/log.h"

namespace freeha {
namespace {

// Bounds the work of one dispatch so that a flood cannot starve the timers.
constexpr int kMaxDatagramsPerWakeup = 64;

sockaddr_in make_address(Ipv4 address, std::uint16_t port) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(address.value);
    sa.sin_port = htons(port);
    return sa;
}

constexpr int kReceiveBuffer = 1 << 20;

int set_int_option(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof value) < 0 ? -errno : 0;
}

// A non-blocking UDP socket bound to address:port; *step names what failed.
int bound_socket(Ipv4 address, std::uint16_t port, bool reuse, UniqueFd* out, std::string* step) {
    UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        *step = "socket()";
        return -errno;
    }
    // Room for a burst (a junk flood, a backlog after a stall) so that the
    // kernel does not drop heartbeats before the loop drains the socket.
    // Best effort: FORCE needs CAP_NET_ADMIN, the plain option is capped by rmem_max.
    if (set_int_option(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, kReceiveBuffer) < 0)
        set_int_option(fd.get(), SOL_SOCKET, SO_RCVBUF, kReceiveBuffer);
    if (reuse) {
        if (int r = set_int_option(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1); r < 0) {
            *step = "SO_REUSEADDR";
            return r;
        }
    }
    sockaddr_in sa = make_address(address, port);
    if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
        *step = "bind " + to_string(address) + ":" + std::to_string(port);
        return -errno;
    }
    *out = std::move(fd);
    return 0;
}

}  // namespace

std::unique_ptr<UdpChannel> UdpChannel::open(const ChannelSpec& spec, std::uint16_t port, std::size_t index,
                                             sd_event* event, Receiver receiver, std::string* error) {
    std::unique_ptr<UdpChannel> ch(new UdpChannel());
    ch->name_ = spec.to_string();
    ch->index_ = index;
    ch->receiver_ = std::move(receiver);
    std::string step;
    auto fail = [&](int r) -> std::unique_ptr<UdpChannel> {
        *error = "channel '" + ch->name_ + "': " + log::with_errno(step, r);
        return nullptr;
    };

    UniqueFd sender;
    if (int r = bound_socket(spec.source, port, false, &sender, &step); r < 0) return fail(r);
    switch (spec.kind) {
    case ChannelKind::Broadcast:
        if (int r = set_int_option(sender.get(), SOL_SOCKET, SO_BROADCAST, 1); r < 0) {
            step = "SO_BROADCAST";
            return fail(r);
        }
        ch->destinations_.push_back(make_address(spec.group_or_broadcast, port));
        break;
    case ChannelKind::Multicast: {
        in_addr source{htonl(spec.source.value)};
        if (setsockopt(sender.get(), IPPROTO_IP, IP_MULTICAST_IF, &source, sizeof source) < 0) {
            step = "IP_MULTICAST_IF";
            return fail(-errno);
        }
        // TTL 1: heartbeats never leave the local network segment.
        if (int r = set_int_option(sender.get(), IPPROTO_IP, IP_MULTICAST_TTL, 1); r < 0) {
            step = "IP_MULTICAST_TTL";
            return fail(r);
        }
        ch->destinations_.push_back(make_address(spec.group_or_broadcast, port));
        break;
    }
    case ChannelKind::Unicast:
        for (const auto& peer : spec.peers) ch->destinations_.push_back(make_address(peer.address, peer.port.value_or(port)));
        break;
    }
    if (int r = ch->add_socket(std::move(sender), event); r < 0) {
        step = "sd_event_add_io";
        return fail(r);
    }

    if (spec.kind != ChannelKind::Unicast) {
        UniqueFd listener;
        if (int r = bound_socket(spec.group_or_broadcast, port, true, &listener, &step); r < 0) return fail(r);
        if (spec.kind == ChannelKind::Multicast) {
            ip_mreq mreq{};
            mreq.imr_multiaddr.s_addr = htonl(spec.group_or_broadcast.value);
            mreq.imr_interface.s_addr = htonl(spec.source.value);
            if (setsockopt(listener.get(), IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof mreq) < 0) {
                step = "IP_ADD_MEMBERSHIP " + to_string(spec.group_or_broadcast);
                return fail(-errno);
            }
        }
        if (int r = ch->add_socket(std::move(listener), event); r < 0) {
            step = "sd_event_add_io";
            return fail(r);
        }
    }
    return ch;
}

int UdpChannel::add_socket(UniqueFd fd, sd_event* event) {
    sd_event_source* raw = nullptr;
    int r = sd_event_add_io(event, &raw, fd.get(), EPOLLIN, on_readable, this);
    if (r < 0) return r;
    EventSourcePtr source(raw);
    // Heartbeats outrank everything else on the loop.
    sd_event_source_set_priority(raw, SD_EVENT_PRIORITY_IMPORTANT);
    sd_event_source_set_description(raw, "heartbeat-socket");
    sockets_.push_back(Socket{std::move(fd), std::move(source)});
    return 0;
}

int UdpChannel::on_readable(sd_event_source*, int fd, uint32_t, void* userdata) {
    auto* self = static_cast<UdpChannel*>(userdata);
    std::uint8_t buf[2048];
    for (int i = 0; i < kMaxDatagramsPerWakeup; ++i) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                log::warning(log::with_errno("channel '" + self->name_ + "': recv", -errno));
            break;
        }
        try {
            self->receiver_(std::span<const std::uint8_t>(buf, static_cast<std::size_t>(n)), self->index_);
        } catch (const std::exception& e) {
            log::error("channel '" + self->name_ + "': " + e.what());
        }
    }
    return 0;
}

void UdpChannel::send(std::span<const std::uint8_t> datagram) {
    int first_errno = 0;
    for (const auto& dest : destinations_) {
        ssize_t n = sendto(sockets_.front().fd.get(), datagram.data(), datagram.size(), 0,
                           reinterpret_cast<const sockaddr*>(&dest), sizeof dest);
        if (n < 0 && first_errno == 0) first_errno = errno;
    }
    if (first_errno != last_send_errno_) {
        if (first_errno != 0)
            log::warning(log::with_errno("channel '" + name_ + "': sending heartbeats fails", -first_errno));
        else
            log::notice("channel '" + name_ + "': sending heartbeats works again");
        last_send_errno_ = first_errno;
    }
}

}  // namespace freeha
