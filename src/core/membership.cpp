#include "core/membership.h"

#include <algorithm>
#include <bit>
#include <iterator>
#include <limits>

namespace freeha {

bool ReplayWindow::accept(std::uint64_t sequence) {
    if (sequence > highest_) {
        std::uint64_t shift = sequence - highest_;
        seen_ = shift >= kSize ? 0 : seen_ << shift;
        seen_ |= 1;
        highest_ = sequence;
        return true;
    }
    std::uint64_t age = highest_ - sequence;
    if (age >= kSize) return false;
    std::uint64_t bit = std::uint64_t{1} << age;
    if (seen_ & bit) return false;
    seen_ |= bit;
    return true;
}

void LinkHealth::start(std::uint64_t first) {
    judging_ = true;
    next_ = first;
    arrived_ = 0;
}

void LinkHealth::record(bool arrived) {
    if (arrived)
        ++received_;
    else
        ++lost_;
    recent_ = (recent_ << 1) | (arrived ? 0 : 1);
    if (recent_count_ < kRecent) ++recent_count_;
}

void LinkHealth::judge_until(std::uint64_t last) {
    if (!judging_) return;
    while (next_ <= last) {
        std::uint64_t left = last - next_ + 1;
        if (arrived_ == 0 && left >= kRecent) {
            // Nothing arrived in the rest (a long silence on this channel): all lost, at once.
            lost_ += left;
            recent_ = ~std::uint64_t{0};
            recent_count_ = kRecent;
            next_ = last + 1;
            return;
        }
        record((arrived_ & 1) != 0);
        arrived_ >>= 1;
        ++next_;
    }
}

void LinkHealth::judge(std::uint64_t channel_newest, std::uint64_t peer_newest) {
    if (!judging_) return;
    std::optional<std::uint64_t> last;
    if (channel_newest >= next_ + kLate) last = channel_newest - kLate;
    if (peer_newest >= next_ + ReplayWindow::kSize) last = std::max(last.value_or(0), peer_newest - ReplayWindow::kSize);
    if (last) judge_until(*last);
}

void LinkHealth::settle(std::uint64_t peer_newest) { judge_until(peer_newest); }

void LinkHealth::arrived(std::uint64_t sequence) {
    if (!judging_ || sequence < next_) return;  // judged already: too late to count
    std::uint64_t offset = sequence - next_;
    if (offset < 64) arrived_ |= std::uint64_t{1} << offset;  // judge() keeps it below 64
}

unsigned LinkHealth::recent_lost() const { return static_cast<unsigned>(std::popcount(recent_)); }

bool LinkHealth::update_lossy() {
    std::uint64_t lost = recent_lost(), judged = recent_count_;
    bool lossy = lossy_ ? lost * 100 > kRecoveredPercent * judged
                        : judged == kRecent && lost * 100 > kLossyPercent * judged;
    if (lossy == lossy_) return false;
    lossy_ = lossy;
    return true;
}

const PeerGroup& Peer::group(std::uint32_t id) const {
    static const PeerGroup kNothingSaid;
    auto it = groups.find(id);
    return it == groups.end() ? kNothingSaid : it->second;
}

bool Peer::hears(std::uint64_t node_id) const { return std::find(heard.begin(), heard.end(), node_id) != heard.end(); }

bool Membership::make_room() {
    if (peers_.size() < kMaxPeers) return true;
    // The timed-out peer heard longest ago goes; live peers never do.
    auto victim = peers_.end();
    for (auto it = peers_.begin(); it != peers_.end(); ++it)
        if (it->second.timed_out && (victim == peers_.end() || it->second.last_heard < victim->second.last_heard))
            victim = it;
    if (victim == peers_.end()) return false;
    peers_.erase(victim);
    return true;
}

Observation Membership::observe(const wire::Heartbeat& hb, std::size_t channel, Usec now) {
    Observation obs;
    auto it = peers_.find(hb.node);
    bool inserted = it == peers_.end();
    if (inserted) {
        if (!make_room()) {
            obs.table_full = true;
            return obs;
        }
        it = peers_.try_emplace(hb.node).first;
    }
    Peer& p = it->second;
    std::uint64_t newest_before = p.last_sequence;
    if (inserted) {
        p.name = hb.node;
        p.channel_last_heard.resize(channel_count_);
        p.windows.resize(channel_count_);
        p.links.resize(channel_count_);
        obs.joined = true;
    } else {
        // A lower incarnation is a replay; but without a key a silent record
        // may hold a forged one, so once it has timed out a lower one starts over.
        bool heal = hb.incarnation < p.incarnation && p.timed_out && !trust_timed_out_;
        if (hb.incarnation < p.incarnation && !heal) {
            obs.stale = true;
            return obs;
        }
        if (hb.incarnation != p.incarnation) {
            obs.restarted = true;
            p.last_sequence = 0;
            // A new run may be another release (a downgrade speaks version 2,
            // which carries none): its release is unknown until it says it.
            p.release.clear();
            p.windows.assign(channel_count_, ReplayWindow{});
        } else {
            // A real sender cannot be further ahead than one heartbeat per
            // millisecond since it was last heard (plus bursts at state changes).
            std::uint64_t reachable = (now - p.last_heard).count() / 1000 + kSequenceBurst;
            if (hb.sequence > p.last_sequence && hb.sequence - p.last_sequence > reachable) {
                obs.implausible = true;
                return obs;
            }
        }
        obs.joined = p.timed_out;
        obs.previous_state = p.state();
    }
    if (channel < p.windows.size() && !p.windows[channel].accept(hb.sequence)) {
        obs.replayed = true;
        return obs;
    }
    if (channel < p.channel_last_heard.size()) p.channel_last_heard[channel] = now;
    count_link(p, hb.sequence, channel, inserted || obs.restarted, newest_before, obs);
    // A copy that came first over another channel, or a late one: it proves
    // the channel works but must not extend the peer's life or roll its state back.
    if (!inserted && !obs.restarted && hb.sequence <= p.last_sequence) {
        obs.redundant = true;
        obs.joined = false;
        return obs;
    }
    p.role = hb.role;
    p.incarnation = hb.incarnation;
    p.last_sequence = hb.sequence;
    p.flags = hb.flags & ~(wire::kFlagErrorLatched | wire::kFlagClaimPending | wire::kFlagDefaultAside);  // the group's
    // What it says of each group replaces what it said: a group it no longer
    // names is gone there. One pass: both are in ascending id order (decode()
    // refuses groups out of order).
    auto known = p.groups.begin();
    auto drop_until = [&](std::uint32_t id) {
        while (known != p.groups.end() && known->first < id)
            known = known->first == kDefaultGroupId ? std::next(known) : p.groups.erase(known);
    };
    for (const wire::GroupBeat& beat : hb.groups) {
        if (beat.group == kDefaultGroupId) continue;  // only the header speaks of the default group
        drop_until(beat.group);
        PeerGroup said{beat.state,       beat.term,     beat.error_latched, beat.claim_pending, beat.aside,
                       beat.handover_to, beat.claimant, beat.grant};
        if (known != p.groups.end() && known->first == beat.group)
            (known++)->second = std::move(said);
        else
            p.groups.emplace_hint(known, beat.group, std::move(said));
    }
    drop_until(std::numeric_limits<std::uint32_t>::max());
    if (known != p.groups.end() && known->first != kDefaultGroupId) p.groups.erase(known);
    PeerGroup& header = p.groups[kDefaultGroupId];
    header.announced = hb.state;
    header.term = hb.term;
    header.error_latched = (hb.flags & wire::kFlagErrorLatched) != 0;
    header.claim_pending = (hb.flags & wire::kFlagClaimPending) != 0;
    header.aside = (hb.flags & wire::kFlagDefaultAside) != 0;
    header.handover_to = hb.handover_to;
    header.claimant = hb.claimant;
    header.grant = hb.grant;
    p.sent_at = hb.sent_at;
    p.heard = hb.heard;
    p.states_expected = hb.expected_nodes != 0;
    p.states_claimant_incarnation = hb.claimant_incarnation.has_value();
    if (p.states_expected) p.expected_nodes = hb.expected_nodes;
    p.wire_version = hb.version;
    p.understands = hb.understands;
    if (hb.version >= wire::kVersion) {
        p.release = hb.release;
        p.maintenance = Maintenance{(hb.flags & wire::kFlagMaintenance) != 0, hb.maintenance_epoch};
    }
    p.last_heard = std::max(p.last_heard, now);
    p.left = (hb.flags & wire::kFlagLeaving) != 0;
    p.timed_out = p.left;
    obs.left = p.left;
    return obs;
}

void Membership::count_link(Peer& p, std::uint64_t sequence, std::size_t channel, bool new_run,
                            std::uint64_t newest_before, Observation& obs) {
    // A new run, or a silent peer heard again: what it sent meanwhile was not
    // expected (the timeout said it); the rest of the old numbers are judged now.
    bool applies = new_run || sequence > p.last_sequence;
    if (new_run || (p.timed_out && applies)) {
        for (auto& link : p.links) {
            link.settle(newest_before);
            link.start(sequence);
        }
    }
    std::uint64_t newest = applies ? sequence : p.last_sequence;
    for (std::size_t i = 0; i < p.links.size(); ++i) p.links[i].judge(p.windows[i].highest(), newest);
    if (channel < p.links.size()) p.links[channel].arrived(sequence);
    for (std::size_t i = 0; i < p.links.size(); ++i)
        if (p.links[i].update_lossy()) obs.links_changed.push_back(i);
}

std::vector<std::string> Membership::expire(Usec now, Usec dead_time) {
    std::vector<std::string> expired;
    for (auto& [name, p] : peers_) {
        if (!p.timed_out && now >= p.last_heard + dead_time) {
            p.timed_out = true;
            expired.push_back(name);
        }
    }
    return expired;
}

bool Membership::time_out(const std::string& name) {
    auto it = peers_.find(name);
    if (it == peers_.end() || it->second.timed_out) return false;
    it->second.timed_out = true;
    return true;
}

std::optional<Usec> Membership::next_expiry(Usec dead_time) const {
    std::optional<Usec> next;
    for (const auto& [name, p] : peers_)
        if (!p.timed_out) next = std::min(next.value_or(p.last_heard + dead_time), p.last_heard + dead_time);
    return next;
}

unsigned Membership::two_way_count(std::uint64_t node_id) const {
    return static_cast<unsigned>(std::count_if(peers_.begin(), peers_.end(), [&](const auto& kv) {
        return kv.second.reachable() && kv.second.hears(node_id);
    }));
}

unsigned Membership::reachable_count() const {
    return static_cast<unsigned>(
        std::count_if(peers_.begin(), peers_.end(), [](const auto& kv) { return kv.second.reachable(); }));
}

}  // namespace freeha
