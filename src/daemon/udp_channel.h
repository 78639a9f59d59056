// One heartbeat channel: its UDP sockets (IPv4 or IPv6) on the event loop, sending and receiving datagrams.
//
// Every channel has a socket bound to SOURCE:port that sends (and receives
// unicast). Broadcast and multicast channels add a receive socket bound to the
// broadcast address or group (SO_REUSEADDR, so several daemons and channels can
// share a host), because a socket bound to a unicast address never sees them.
//
// At boot the network may not be ready: SOURCE may not be on the host yet
// (DHCP, a late `ip addr add`, IPv6 duplicate address detection) and the
// interface may not exist yet (udev renames, VLANs, bridges). The sockets
// bind with IP_FREEBIND / IPV6_FREEBIND, so they bind anyway and receive as
// soon as the address is there; what cannot be done yet (finding the
// interface, binding to it, joining the group on it) is retried every second
// from the event loop. The channel logs once when it starts waiting and once
// when it is ready; the daemon never has to exit and restart for it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <sys/socket.h>

#include "bus/sd_ptr.h"
#include "core/channel_spec.h"

namespace freeha {

// The loop's order under load. The core's timer (heartbeat sends, lease, fence
// and dead-time deadlines) goes first, after one bounded batch per socket of
// what was already queued (receive_queued): a send or a deadline that is due
// waits for no receive backlog, only for those batches (kMaxDatagramsPerWakeup
// each), and a deadline is judged on what had arrived. Then the heartbeat sockets, ahead of everything
// else (bus, hooks, signals); a batch per wake-up, so they get the loop
// between two timer dispatches and a renewing heartbeat is never starved.
inline constexpr std::int64_t kCoreTimerPriority = SD_EVENT_PRIORITY_IMPORTANT;
inline constexpr std::int64_t kHeartbeatSocketPriority = SD_EVENT_PRIORITY_IMPORTANT + 1;
static_assert(kCoreTimerPriority < kHeartbeatSocketPriority && kHeartbeatSocketPriority < SD_EVENT_PRIORITY_NORMAL,
              "sd-event dispatches the lowest value first");
// Datagrams one socket reads per wake-up (about 10 us each at 64 nodes).
inline constexpr int kMaxDatagramsPerWakeup = 32;

class UdpChannel {
public:
    using Receiver = std::function<void(std::span<const std::uint8_t> datagram, std::size_t channel)>;

    // Opens what can be opened now and waits for the rest. Returns nullptr
    // and sets *error for what waiting cannot cure (the port already in use,
    // a permission refused).
    static std::unique_ptr<UdpChannel> open(const ChannelSpec& spec, std::uint16_t port, std::size_t index,
                                            sd_event* event, Receiver receiver, std::string* error);

    // Sends to every destination of the channel; failures are logged when they
    // start and when they stop, not for every datagram.
    void send(std::span<const std::uint8_t> datagram);

    // Reads one bounded batch of what is already queued on each socket, as a
    // wake-up of the socket would. The core's timer calls it first: a lease,
    // fence or dead-time deadline is then judged on the heartbeats that had
    // arrived when it fired (a node descheduled past a deadline finds the
    // renewing acknowledgements queued), and a send waits for one batch at most.
    void receive_queued();

    const std::string& name() const { return name_; }

private:
    struct Socket {
        UniqueFd fd;
        EventSourcePtr source;
    };
    struct Destination {
        sockaddr_storage address;
        socklen_t length;
    };

    UdpChannel() = default;
    // Does whatever is still missing, in order; 0 once everything is there,
    // else the negative errno of the step that failed, named in *step.
    int set_up(std::string* step);
    int open_sender(std::string* step);
    int open_listener(std::string* step);
    int join_group(std::string* step);
    int add_socket(UniqueFd fd, Socket* slot);
    void retry_in_a_second();
    static int on_retry(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_readable(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    void receive_batch(int fd);

    ChannelSpec spec_;
    std::uint16_t port_ = 0;
    std::string name_;
    std::size_t index_ = 0;
    Receiver receiver_;
    sd_event* event_ = nullptr;
    unsigned ifindex_ = 0;  // of spec_.device(), once it exists
    Socket sender_;
    Socket listener_;  // broadcast and multicast only
    bool joined_ = false;
    bool source_present_ = false;
    std::vector<Destination> destinations_;
    EventSourcePtr retry_timer_;
    std::string waiting_for_;  // the step set-up waits for, as last logged; empty once ready
    int last_send_errno_ = 0;
};

}  // namespace freeha
