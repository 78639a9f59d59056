#include "core/membership.h"

#include <algorithm>

namespace freeha {

Observation Membership::observe(const wire::Heartbeat& hb, std::size_t channel, Usec now) {
    Observation obs;
    auto [it, inserted] = peers_.try_emplace(hb.node);
    Peer& p = it->second;
    if (inserted) {
        p.name = hb.node;
        p.channel_last_heard.resize(channel_count_);
        obs.joined = true;
    } else {
        if (hb.incarnation < p.incarnation) {
            obs.stale = true;
            return obs;
        }
        obs.restarted = hb.incarnation > p.incarnation;
        obs.joined = p.timed_out;
        obs.previous_state = p.state();
    }
    p.announced = hb.state;
    p.role = hb.role;
    p.term = hb.term;
    p.incarnation = hb.incarnation;
    p.last_sequence = hb.sequence;
    p.flags = hb.flags;
    p.handover_to = hb.handover_to;
    p.last_heard = std::max(p.last_heard, now);
    if (channel < p.channel_last_heard.size()) p.channel_last_heard[channel] = now;
    p.timed_out = false;
    return obs;
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

std::optional<Usec> Membership::next_expiry(Usec dead_time) const {
    std::optional<Usec> next;
    for (const auto& [name, p] : peers_)
        if (!p.timed_out) next = std::min(next.value_or(p.last_heard + dead_time), p.last_heard + dead_time);
    return next;
}

unsigned Membership::reachable_count() const {
    return static_cast<unsigned>(
        std::count_if(peers_.begin(), peers_.end(), [](const auto& kv) { return kv.second.reachable(); }));
}

}  // namespace freeha
