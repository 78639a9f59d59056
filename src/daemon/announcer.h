// Floating addresses on the wire: gratuitous ARP and unsolicited neighbour advertisements, and other hosts answering for them.
//
// When an address comes up the Announcer tells the link at once (IPv4: an ARP
// request with sender = target = the address, RFC 5227's announcement; IPv6:
// a neighbour advertisement to ff02::1 with the override flag and the target
// link-layer address), then repeats it (kAnnounceSchedule), then every
// AnnounceRefresh= while the address is up. Each of the first rounds also
// carries a probe that a host still holding the address must answer (an ARP
// probe with sender 0.0.0.0; a DAD-style neighbour solicitation from ::); the
// takeover never waits for the answers. A listener (an AF_PACKET ARP socket
// per device, a raw ICMPv6 socket filtered to neighbour advertisements)
// reports any other MAC that answers for or announces an address while it is
// announced here.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <systemd/sd-event.h>

#include "bus/sd_ptr.h"
#include "core/channel_spec.h"
#include "core/timespan.h"

namespace freeha {

// When the announcements of an address go out, after the address came up: at
// once, then with doubling gaps (100, 200, 400, 800 ms), so that one lost frame
// or a switch port still learning costs a client at most a few hundred ms, and
// five frames in 1.5 s flood nobody. The probes go with these rounds too.
inline constexpr std::array<Usec, 5> kAnnounceSchedule{Usec(0), 100 * kUsecPerMsec, 300 * kUsecPerMsec,
                                                       700 * kUsecPerMsec, 1500 * kUsecPerMsec};

// "02:00:5e:10:00:01"
std::string mac_to_string(const std::vector<std::uint8_t>& mac);

class Announcer {
public:
    // Another host, `mac`, answers for or announces `address` on the link `index`.
    using Foreign = std::function<void(const IpAddress& address, unsigned index, const std::string& mac)>;

    // Opens the sending sockets and the IPv6 listener; negative errno
    // (-EPERM without CAP_NET_RAW).
    int open(sd_event* event, Foreign foreign);
    // Starts announcing `address` on the link `index` whose MAC is `mac` (a
    // link without an Ethernet MAC gets no announcements), and listening for
    // other hosts answering for it. The first round goes out before it returns.
    // Negative errno when the device's ARP listener cannot be opened.
    int start(const IpAddress& address, unsigned index, const std::vector<std::uint8_t>& mac);
    // Stops announcing and listening for `address`.
    void stop(const IpAddress& address);
    void stop_all();
    // AnnounceRefresh=: 0 for none.
    void set_refresh(Usec refresh);
    // How many announcements of `address` went out since its start() (the tests' and debugging's view).
    unsigned rounds(const IpAddress& address) const;

private:
    struct Announced {
        Announcer* owner = nullptr;
        IpAddress address;
        unsigned index = 0;
        std::vector<std::uint8_t> mac;
        unsigned round = 0;  // announcements sent
        EventSourcePtr timer;
        int last_errno = 0;  // of the last send, logged when it changes
    };
    struct Listener {
        UniqueFd fd;
        EventSourcePtr source;
    };

    void announce(Announced& a);
    void schedule_next(Announced& a);
    int send_arp(const Announced& a, bool probe);
    int send_neighbour_advertisement(const Announced& a);
    int send_neighbour_solicitation(const Announced& a);
    int open_arp_listener(unsigned index);
    void close_unused_listeners();
    // Calls foreign_ when `mac` is not ours and `address` is announced on `index`; whether it did.
    bool report(const IpAddress& address, unsigned index, const std::uint8_t* mac);
    static int on_timer(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_arp(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    static int on_icmp6(sd_event_source* s, int fd, uint32_t revents, void* userdata);

    sd_event* event_ = nullptr;
    Foreign foreign_;
    Usec refresh_;
    UniqueFd packet_;  // AF_PACKET, SOCK_DGRAM: ARP frames and the IPv6 probes
    Listener icmp6_;   // raw ICMPv6: sends the advertisements, hears the others'
    std::map<unsigned, Listener> arp_listeners_;  // by ifindex
    std::vector<std::unique_ptr<Announced>> announced_;
};

}  // namespace freeha
