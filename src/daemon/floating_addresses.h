// The floating addresses (Address=) on this node: added and removed through rtnetlink, announced, and watched for loss and for other hosts holding them.
//
// up() adds every address and has the first announcements out before it
// returns; down() removes them again, and nothing else waits on anything but
// the kernel. While up, a change the kernel reports (one of the addresses
// removed by hand, its link down or gone, IPv6 duplicate address detection
// failed) calls Callbacks::lost once per up(), from the event loop: the
// manager handles it like a failed monitorhasrv. Removals by down() or
// reconfigure() are never reported as lost. Another host seen answering for
// an address while it is up calls Callbacks::foreign, once per MAC and up(),
// and counts every sighting in the status.
//
// The object does not remove its addresses when it is destroyed: the
// manager's down(), the unit's `freehad --clean-up` and the start-up clean-up
// (remove_addresses) do, each at its point in the fence.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <systemd/sd-event.h>

#include "bus/sd_ptr.h"
#include "core/config.h"
#include "core/status.h"
#include "daemon/announcer.h"
#include "daemon/rtnetlink.h"
#include "daemon/log.h"

namespace freeha {

class FloatingAddresses {
public:
    struct Callbacks {
        // An address that is up went away: "192.0.2.10/24 removed from eth0", "eth0 went down".
        std::function<void(std::string why)> lost;
        // Another host (`mac`, "02:00:5e:10:00:01") answers for the address.
        std::function<void(const FloatingAddress&, std::string mac)> foreign;
        // A link appeared, went away or changed (up or not up here): unready() may have changed.
        // Called from the event loop, possibly from inside up(), down() or reconfigure().
        std::function<void()> links_changed;
    };

    FloatingAddresses(sd_event* event, std::vector<FloatingAddress> addresses, Usec announce_refresh,
                      Callbacks callbacks);

    // The netlink sockets and subscriptions, the AF_PACKET and ICMPv6 sockets;
    // negative errno (-EPERM without CAP_NET_ADMIN / CAP_NET_RAW).
    int open();
    // Adds every address (one already there counts as added) and announces it
    // at once, then repeatedly. On failure returns a negative errno and sets
    // *error ("192.0.2.10/24 on eth9: no such device"); the addresses added so
    // far stay until down().
    int up(std::string* error);
    // Removes every configured address that is present (also after an up()
    // that failed half-way) and stops announcing; a failure is logged, once.
    void down();
    // New Address= lines and AnnounceRefresh=: while up, adds the new
    // addresses, removes the gone ones and keeps the unchanged ones as they
    // are; otherwise only remembers them for the next up().
    int reconfigure(std::vector<FloatingAddress> addresses, Usec announce_refresh, std::string* error);

    bool is_up() const { return up_; }
    // Why up() would fail now for want of a device: "Address=192.0.2.10/24
    // eth1: eth1 does not exist" or "...: eth1 is down"; "" when every
    // device exists and is up.
    std::string unready();
    std::vector<AddressStatus> status() const;

    // Its own lines name its service group (log::GroupLines), as the group's do.
    void set_lines(log::GroupLines lines) { lines_ = std::move(lines); }

private:
    log::GroupLines lines_;
    struct Entry {
        explicit Entry(FloatingAddress a) : config(std::move(a)) {}
        FloatingAddress config;
        unsigned index = 0;        // the device's ifindex at the last up()
        bool added = false;        // added by up() and, as far as the kernel told, still there
        bool awaiting_dad = false; // IPv6 with `dad`: announced once the kernel no longer holds it tentative
        std::string reported_mac;  // the last foreign MAC reported in this up()
        std::string foreign_mac;
        std::uint64_t conflicts = 0;
    };

    int bring_up(Entry& e, std::string* error);
    void take_down(Entry& e);
    void on_change(const RtnetlinkChange& c);
    void on_foreign(const IpAddress& address, unsigned index, const std::string& mac);
    // Looks at every address and link again, after notifications were lost.
    void recheck();
    // Calls Callbacks::lost from a defer source: never from inside a caller's
    // own call, nor from the netlink read that saw the change.
    void report_lost(std::string why);
    static int on_report_lost(sd_event_source* s, void* userdata);

    sd_event* event_;
    std::vector<Entry> entries_;
    Usec refresh_;
    Callbacks callbacks_;
    Rtnetlink rtnetlink_;
    RtnetlinkWatch watch_;
    Announcer announcer_;
    bool up_ = false;
    bool lost_reported_ = false;  // in this up()
    std::string lost_why_;
    EventSourcePtr lost_source_;
    std::map<std::string, bool> local_macs_;  // MAC -> whether a link of this host has it; cleared on link changes
};

// Removes each of `addresses` that is on its device, without an event loop
// (freehad --clean-up, the start-up clean-up). Returns how many were removed,
// or the first negative errno, with *error naming the address; it goes on
// with the others after a failure.
int remove_addresses(const std::vector<FloatingAddress>& addresses, std::string* error);

}  // namespace freeha
