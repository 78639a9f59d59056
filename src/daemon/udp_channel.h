// One heartbeat channel: its UDP sockets on the event loop, sending and receiving datagrams.
//
// Every channel has a socket bound to SOURCE:port that sends (and receives
// unicast). Broadcast and multicast channels add a receive socket bound to the
// broadcast address or group (SO_REUSEADDR, so several daemons and channels can
// share a host), because a socket bound to a unicast address never sees them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <netinet/in.h>

#include "core/channel_spec.h"
#include "bus/sd_ptr.h"

namespace freeha {

class UdpChannel {
public:
    using Receiver = std::function<void(std::span<const std::uint8_t> datagram, std::size_t channel)>;

    // Opens and registers the sockets; on failure returns nullptr and sets *error.
    static std::unique_ptr<UdpChannel> open(const ChannelSpec& spec, std::uint16_t port, std::size_t index,
                                            sd_event* event, Receiver receiver, std::string* error);

    // Sends to every destination of the channel; failures are logged when they
    // start and when they stop, not for every datagram.
    void send(std::span<const std::uint8_t> datagram);

    const std::string& name() const { return name_; }

private:
    struct Socket {
        UniqueFd fd;
        EventSourcePtr source;
    };

    UdpChannel() = default;
    int add_socket(UniqueFd fd, sd_event* event);
    static int on_readable(sd_event_source* s, int fd, uint32_t revents, void* userdata);

    std::string name_;
    std::size_t index_ = 0;
    Receiver receiver_;
    std::vector<Socket> sockets_;  // [0] sends
    std::vector<sockaddr_in> destinations_;
    int last_send_errno_ = 0;
};

}  // namespace freeha
