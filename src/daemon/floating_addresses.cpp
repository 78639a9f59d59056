#include "daemon/floating_addresses.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <linux/if_addr.h>

#include "daemon/log.h"

namespace freeha {
namespace {

std::string on_device(const FloatingAddress& a) { return address_with_prefix(a) + " on " + a.device; }

// Removes `a` from its device if it is there: 1 when removed, 0 when it was
// not there (no such device, no such address), else a negative errno.
int remove_one(Rtnetlink& rtnetlink, const FloatingAddress& a) {
    Link link;
    int r = rtnetlink.get_link(a.device, &link);
    if (r == -ENODEV) return 0;
    if (r < 0) return r;
    r = rtnetlink.remove_address(link.index, a);
    // ENODEV/ENXIO: the device has no IPv4/IPv6 configuration, so not the address either.
    if (r == -EADDRNOTAVAIL || r == -ENODEV || r == -ENXIO) return 0;
    return r < 0 ? r : 1;
}

bool same_address(const FloatingAddress& a, const InterfaceAddress& b) {
    return a.address.family == b.address.family && a.address.bytes == b.address.bytes && a.prefix == b.prefix;
}

}  // namespace

FloatingAddresses::FloatingAddresses(sd_event* event, std::vector<FloatingAddress> addresses, Usec announce_refresh,
                                     Callbacks callbacks)
    : event_(event), refresh_(announce_refresh), callbacks_(std::move(callbacks)) {
    for (auto& a : addresses) entries_.emplace_back(std::move(a));
}

int FloatingAddresses::open() {
    if (int r = rtnetlink_.open(); r < 0) return r;
    if (int r = watch_.open(event_, [this](const RtnetlinkChange& c) { on_change(c); }); r < 0) return r;
    if (int r = announcer_.open(event_, [this](const IpAddress& address, unsigned index,
                                               const std::string& mac) { on_foreign(address, index, mac); });
        r < 0)
        return r;
    announcer_.set_refresh(refresh_);
    sd_event_source* s = nullptr;
    if (int r = sd_event_add_defer(event_, &s, on_report_lost, this); r < 0) return r;
    lost_source_.reset(s);
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
    sd_event_source_set_description(s, "address-lost");
    return 0;
}

int FloatingAddresses::up(std::string* error) {
    // What the kernel reported before (our own removals) is settled while not up.
    watch_.drain();
    lost_reported_ = false;
    sd_event_source_set_enabled(lost_source_.get(), SD_EVENT_OFF);
    for (auto& e : entries_) e.reported_mac.clear();
    for (auto& e : entries_)
        if (int r = bring_up(e, error); r < 0) return r;
    up_ = true;
    return 0;
}

int FloatingAddresses::bring_up(Entry& e, std::string* error) {
    Link link;
    if (int r = rtnetlink_.get_link(e.config.device, &link); r < 0) {
        *error = r == -ENODEV ? on_device(e.config) + ": no such device"
                              : log::with_errno(on_device(e.config) + ": cannot look up the device", r);
        return r;
    }
    // Added to a link without a carrier, the address would serve nobody, and
    // no change would ever report it lost.
    if (!link.running()) {
        *error = on_device(e.config) + ": " + e.config.device + " is down";
        return -ENETDOWN;
    }
    e.index = link.index;
    if (int r = rtnetlink_.add_address(link.index, e.config); r < 0) {
        *error = log::with_errno(on_device(e.config) + ": cannot add it", r);
        return r;
    }
    e.added = true;
    // A tentative address is not announced: that would override the host DAD
    // may find. The kernel's notification of the address ends the wait: also
    // for one that was there already (not tested again), as NLM_F_REPLACE notifies.
    e.awaiting_dad = e.config.address.family == Family::Ipv6 && e.config.dad;
    if (e.awaiting_dad) return 0;
    if (int r = announcer_.start(e.config.address, link.index, link.mac); r < 0) {
        *error = log::with_errno(on_device(e.config) + ": cannot listen for other hosts answering for it", r);
        return r;
    }
    return 0;
}

void FloatingAddresses::down() {
    up_ = false;
    sd_event_source_set_enabled(lost_source_.get(), SD_EVENT_OFF);
    announcer_.stop_all();
    for (auto& e : entries_) take_down(e);
    // The notifications of these removals are queued already: settle them now,
    // while not up, so that none looks like a loss after the next up().
    watch_.drain();
}

void FloatingAddresses::take_down(Entry& e) {
    e.added = false;
    e.awaiting_dad = false;
    announcer_.stop(e.config.address);
    if (int r = remove_one(rtnetlink_, e.config); r < 0)
        lines_.error(log::with_errno("cannot remove " + on_device(e.config), r));
}

int FloatingAddresses::reconfigure(std::vector<FloatingAddress> addresses, Usec announce_refresh,
                                   std::string* error) {
    refresh_ = announce_refresh;
    announcer_.set_refresh(refresh_);
    std::vector<Entry> next;
    for (auto& a : addresses) {
        auto kept = std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.config == a; });
        if (kept != entries_.end()) {
            kept->config.origin = a.origin;
            next.push_back(std::move(*kept));
            entries_.erase(kept);
        } else {
            next.emplace_back(std::move(a));
        }
    }
    // What is left in entries_ is gone from the configuration.
    for (auto& e : entries_)
        if (up_) take_down(e);
    entries_ = std::move(next);
    if (!up_) return 0;
    watch_.drain();  // settles the removals' notifications before anything new is added
    for (auto& e : entries_)
        if (!e.added)
            if (int r = bring_up(e, error); r < 0) return r;
    return 0;
}

std::string FloatingAddresses::unready() {
    for (const auto& e : entries_) {
        Link link;
        int r = rtnetlink_.get_link(e.config.device, &link);
        if (r == -ENODEV) return "Address=" + e.config.to_string() + ": " + e.config.device + " does not exist";
        if (r == 0 && !link.running()) return "Address=" + e.config.to_string() + ": " + e.config.device + " is down";
        // Another error: up() will say it, if it persists.
    }
    return "";
}

std::vector<AddressStatus> FloatingAddresses::status() const {
    std::vector<AddressStatus> out;
    for (const auto& e : entries_)
        out.push_back({address_with_prefix(e.config), e.config.device, e.added, e.foreign_mac, e.conflicts});
    return out;
}

void FloatingAddresses::on_change(const RtnetlinkChange& c) {
    using Kind = RtnetlinkChange::Kind;
    if (c.kind != Kind::NewAddress && c.kind != Kind::DeletedAddress) {
        local_macs_.clear();  // a MAC may have moved
        if (callbacks_.links_changed) callbacks_.links_changed();
    }
    if (!up_) return;
    if (c.kind == Kind::Overrun) return recheck();
    for (auto& e : entries_) {
        if (!e.added) continue;
        switch (c.kind) {
        case Kind::DeletedAddress:
            if (c.address.index == e.index && same_address(e.config, c.address)) {
                e.added = false;
                announcer_.stop(e.config.address);
                report_lost(address_with_prefix(e.config) + " removed from " + e.config.device);
            }
            break;
        case Kind::NewAddress:
            if (!e.awaiting_dad || c.address.index != e.index || !same_address(e.config, c.address)) break;
            if (c.address.flags & IFA_F_DADFAILED) {
                report_lost(on_device(e.config) + ": duplicate address detection failed");
            } else if (!(c.address.flags & IFA_F_TENTATIVE)) {
                e.awaiting_dad = false;
                Link link;
                if (rtnetlink_.get_link(e.config.device, &link) == 0)
                    announcer_.start(e.config.address, e.index, link.mac);
            }
            break;
        case Kind::NewLink:
            if (c.link.index == e.index && !c.link.running()) report_lost(e.config.device + " went down");
            break;
        case Kind::DeletedLink:
            if (c.link.index == e.index) report_lost(e.config.device + " went away");
            break;
        case Kind::Overrun:
            break;
        }
    }
}

void FloatingAddresses::recheck() {
    lines_.warning("rtnetlink notifications were lost; looking at the floating addresses again");
    for (auto& e : entries_) {
        if (!e.added) continue;
        Link link;
        if (rtnetlink_.get_link(e.config.device, &link) < 0 || link.index != e.index)
            return report_lost(e.config.device + " went away");
        if (!link.running()) return report_lost(e.config.device + " went down");
        std::vector<InterfaceAddress> present;
        if (rtnetlink_.addresses(e.index, &present) < 0) continue;  // cannot tell: the next change will
        if (std::none_of(present.begin(), present.end(),
                         [&](const InterfaceAddress& p) { return same_address(e.config, p); })) {
            e.added = false;
            return report_lost(address_with_prefix(e.config) + " removed from " + e.config.device);
        }
    }
}

void FloatingAddresses::on_foreign(const IpAddress& address, unsigned index, const std::string& mac) {
    // Another interface of this host on the same link answers ARP for every
    // local address by default (arp_ignore=0): that is no other host.
    auto local = local_macs_.find(mac);
    std::vector<Link> links;
    if (local == local_macs_.end() && rtnetlink_.links(&links) == 0)
        local = local_macs_.emplace(mac, std::any_of(links.begin(), links.end(), [&](const Link& l) {
                                        return mac_to_string(l.mac) == mac;
                                    })).first;
    if (local != local_macs_.end() && local->second) return;
    for (auto& e : entries_) {
        if (!(e.config.address == address) || e.index != index) continue;
        ++e.conflicts;
        e.foreign_mac = mac;
        if (mac == e.reported_mac) return;
        e.reported_mac = mac;
        callbacks_.foreign(e.config, mac);
        return;
    }
}

void FloatingAddresses::report_lost(std::string why) {
    if (lost_reported_) return;
    lost_reported_ = true;
    lost_why_ = std::move(why);
    sd_event_source_set_enabled(lost_source_.get(), SD_EVENT_ONESHOT);
}

int FloatingAddresses::on_report_lost(sd_event_source*, void* userdata) {
    return log::guarded("floating address lost", [&] {
        auto* self = static_cast<FloatingAddresses*>(userdata);
        if (self->up_) self->callbacks_.lost(self->lost_why_);
        return 0;
    });
}

int remove_addresses(const std::vector<FloatingAddress>& addresses, std::string* error) {
    Rtnetlink rtnetlink;
    if (int r = rtnetlink.open(); r < 0) {
        *error = log::with_errno("cannot open an rtnetlink socket", r);
        return r;
    }
    int removed = 0, first_error = 0;
    for (const auto& a : addresses) {
        const int r = remove_one(rtnetlink, a);
        if (r > 0) ++removed;
        if (r < 0 && first_error == 0) {
            first_error = r;
            *error = log::with_errno("cannot remove " + on_device(a), r);
        }
    }
    return first_error < 0 ? first_error : removed;
}

}  // namespace freeha
