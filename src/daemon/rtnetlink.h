// Route netlink (rtnetlink): interface addresses added and removed, links looked up, and the kernel's notifications of both.
//
// The kernel handles an rtnetlink request inside sendmsg(), so its answer is
// queued before send returns: requests here are sent and answered on a
// non-blocking socket, from the event loop, and never wait. A dump is
// produced in chunks as they are read, also synchronously.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <systemd/sd-event.h>

#include "bus/sd_ptr.h"
#include "core/config.h"

struct nlmsghdr;

namespace freeha {

struct Link {
    unsigned index = 0;
    std::string name;
    unsigned flags = 0;             // IFF_*
    std::vector<std::uint8_t> mac;  // IFLA_ADDRESS; empty for a device without one
    // Administratively up and with a carrier: what a floating address needs.
    bool running() const;
};

struct InterfaceAddress {
    IpAddress address;
    unsigned prefix = 0;
    unsigned index = 0;
    unsigned flags = 0;  // IFA_F_*
    std::string label;   // IPv4 only
};

// "192.0.2.10/24", "fd00::10/64": how an address is named in errors and the status.
std::string address_with_prefix(const FloatingAddress& a);

// The request socket: one request at a time, answered at once.
class Rtnetlink {
public:
    // Negative errno.
    int open();
    // The link named `name`; -ENODEV when there is none.
    int get_link(std::string_view name, Link* out);
    // Adds `a` on the link `index`, or updates it when it is already there.
    // IPv6 gets IFA_F_NODAD unless a.dad; IPv4 gets a.label.
    int add_address(unsigned index, const FloatingAddress& a);
    // Removes `a` from the link `index`; -EADDRNOTAVAIL when it is not there.
    int remove_address(unsigned index, const FloatingAddress& a);
    // Every link of the host.
    int links(std::vector<Link>* out);
    // Every address on the link `index` (IPv4 and IPv6).
    int addresses(unsigned index, std::vector<InterfaceAddress>* out);

private:
    // Sends `request` and reads its answer: each reply message goes to
    // `on_reply`; returns the kernel's error (0 for an ack or a complete dump).
    int transact(nlmsghdr* request, const std::function<void(const nlmsghdr&)>& on_reply);
    int change_address(int type, unsigned index, const FloatingAddress& a);

    UniqueFd fd_;
    std::uint32_t sequence_ = 0;
    std::vector<std::uint8_t> buffer_;
};

// A change the kernel announced.
struct RtnetlinkChange {
    enum class Kind {
        NewAddress,      // added, or its flags changed (e.g. IPv6 no longer tentative)
        DeletedAddress,
        NewLink,         // appeared, or its flags changed
        DeletedLink,
        Overrun,         // the socket overflowed: changes were lost; whoever cares must look again
    };
    Kind kind = Kind::Overrun;
    InterfaceAddress address;  // the address kinds
    Link link;                 // the link kinds
};

// Subscribed to link, IPv4 address and IPv6 address changes, read from an
// sd-event io source.
class RtnetlinkWatch {
public:
    using Handler = std::function<void(const RtnetlinkChange&)>;
    // Negative errno.
    int open(sd_event* event, Handler handler);
    // Handles every change queued now, at once: after a request, the
    // notifications it caused are already queued, so a caller can settle them
    // before it looks at the next ones.
    void drain();

private:
    static int on_readable(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    // Reads up to `max_reads` datagrams (-1: until none is left) and handles their changes.
    void read(int max_reads);

    UniqueFd fd_;
    EventSourcePtr source_;
    Handler handler_;
    std::vector<std::uint8_t> buffer_;
};

}  // namespace freeha
