#include "sim/sim_cluster.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace freeha::sim {

SimCluster::SimCluster(std::vector<std::string> names, NodeSettings base, std::uint64_t seed)
    : base_(std::move(base)),
      rng_(seed),
      trace_(std::getenv("FREEHA_SIM_TRACE") != nullptr),
      digesting_(std::getenv("FREEHA_SIM_DIGEST") != nullptr),
      etcd_layout_(etcd::default_prefix(base_.cluster_name)) {
    etcd_.keys[etcd_layout_.cluster_key()] = SimEtcd::Key{base_.cluster_name, 0, etcd_.revision++};
    for (auto& n : names) {
        nodes_[n].name = n;
        nodes_[n].settings = base_;
        nodes_[n].groups.resize(base_.groups.size());
    }
    for (auto& [name, n] : nodes_) in_order_.push_back(&n);
}

std::vector<std::string> SimCluster::names() const {
    std::vector<std::string> out;
    for (const auto& [name, n] : nodes_) out.push_back(name);
    return out;
}

namespace {
// A free slot of `slots`, or a new one.
template <typename T>
std::uint32_t take_slot(std::vector<T>& slots, std::vector<std::uint32_t>& free) {
    if (free.empty()) {
        slots.emplace_back();
        return static_cast<std::uint32_t>(slots.size() - 1);
    }
    std::uint32_t slot = free.back();
    free.pop_back();
    return slot;
}
}  // namespace

void SimCluster::push_event(Event e) {
    events_.push_back(e);
    std::push_heap(events_.begin(), events_.end(), std::greater<Event>());
}

void SimCluster::schedule(Usec at, std::function<void()> action) {
    std::uint32_t slot = take_slot(actions_, free_actions_);
    actions_[slot] = std::move(action);
    push_event(Event{at, order_++, nullptr, slot});
}

void SimCluster::start(const std::string& name, bool force_start) {
    SimNode& n = nodes_.at(name);
    NodeSettings s = n.settings;
    s.node_name = name;
    s.role = n.role;
    if (n.alive) crash(name);  // a restart of a live node: its previous run ends here
    s.previous_dead_time = n.promise_horizon;
    n.promise_horizon = std::max(n.promise_horizon, s.dead_time);
    n.longest_dead_time = s.dead_time;
    n.horizon_lowers_at = now_ + n.promise_horizon;
    n.started_at = now_;
    auto wall = static_cast<std::uint64_t>(static_cast<std::int64_t>((kWallEpoch + now_).count()) + n.wall_offset);
    s.incarnation = next_incarnation(n.stored_incarnation, wall, !s.auth_keys.empty());
    n.stored_incarnation = s.incarnation;
    n.incarnation = s.incarnation;
    n.node = std::make_unique<Node>(s);
    n.node->keep_maintenance(n.maintenance);
    n.machine_down = false;
    n.alive = true;
    n.paused = false;
    n.queued.clear();
    n.exit_code.reset();
    n.groups.resize(s.groups.size());
    end_hooks(n);
    bool cut = n.etcd.cut;  // the network outlives the daemon
    n.etcd = SimEtcdLink{};
    n.etcd.cut = cut;
    apply(n, n.node->start(now_, force_start));
    if (etcd_mode()) {
        std::uint64_t incarnation = n.incarnation;
        schedule(now_ + kUsecPerMsec, [this, &n, incarnation] { etcd_renew(n, incarnation); });
    }
}

void SimCluster::restart_daemon(const std::string& name) {
    SimNode& n = nodes_.at(name);
    std::vector<bool> up;
    for (const SimGroup& g : n.groups) up.push_back(g.services_up);
    crash(name);
    for (std::size_t i = 0; i < up.size(); ++i) n.groups[i].services_up = up[i];
    start(name);
}

void SimCluster::start_all() {
    for (auto& [name, n] : nodes_) start(name);
}

void SimCluster::crash(const std::string& name) {
    SimNode& n = nodes_.at(name);
    if (n.alive && now_ >= n.horizon_lowers_at) n.promise_horizon = n.longest_dead_time;
    n.alive = false;
    for (SimGroup& g : n.groups) g.services_up = false;
    n.queued.clear();
    end_hooks(n);
}

void SimCluster::end_hooks(SimNode& n) {
    for (SimGroup& g : n.groups) {
        g.running_hook.reset();
        ++g.hook_generation;
    }
}

void SimCluster::resume(const std::string& name) {
    SimNode& n = nodes_.at(name);
    if (!n.paused) return;
    n.resumed_at = now_;
    n.paused = false;
    // The loop drains its socket first: every datagram that queued up, in order, at once.
    for (auto& datagram : std::exchange(n.queued, {}))
        if (n.alive) apply(n, n.node->on_datagram(datagram, 0, now_));
}

void SimCluster::command(const std::string& name, Command c) {
    SimNode& n = nodes_.at(name);
    if (c == Command::Leave) n.machine_down = true;
    if (n.alive && !n.paused) apply(n, n.node->on_command(c, now_));
}

std::string SimCluster::switchover(const std::string& name, const std::string& target, std::size_t group) {
    SimNode& n = nodes_.at(name);
    if (!n.alive || n.paused) return "not running";
    std::string error;
    Effects effects = n.node->switchover(group, target, now_, &error);
    apply(n, std::move(effects));
    return error;
}

std::string SimCluster::set_maintenance(const std::string& name, bool on) {
    SimNode& n = nodes_.at(name);
    if (!n.alive || n.paused) return "not running";
    std::string error;
    Effects effects = n.node->set_maintenance(on, now_, &error);
    apply(n, std::move(effects));
    return error;
}

void SimCluster::reconfigure(const std::string& name, const NodeSettings& s) {
    SimNode& n = nodes_.at(name);
    n.settings = s;
    n.settings.node_name = name;
    n.settings.role = n.role;
    if (!n.alive) return;
    if (now_ >= n.horizon_lowers_at) n.promise_horizon = n.longest_dead_time;
    n.promise_horizon = std::max(n.promise_horizon, s.dead_time);  // before it takes effect
    n.longest_dead_time = std::max(n.longest_dead_time, s.dead_time);
    if (!n.paused) apply(n, n.node->reconfigure(n.settings, now_));
}

void SimCluster::partition(const std::set<std::string>& side) {
    for (const auto& [a, na] : nodes_)
        for (const auto& [b, nb] : nodes_)
            if (side.count(a) != side.count(b)) cut_.insert({a, b});
}

void SimCluster::inject(const std::string& to, std::vector<std::uint8_t> datagram) {
    SimNode& n = nodes_.at(to);
    if (n.alive && !n.paused) apply(n, n.node->on_datagram(datagram, 0, now_));
}

void SimCluster::deliver(const std::string& from, std::vector<std::uint8_t> datagram) {
    std::uniform_real_distribution<double> coin(0.0, 1.0);
    std::uniform_int_distribution<std::uint64_t> latency(100, 2000);
    std::optional<std::uint32_t> slot;
    for (SimNode* target : in_order_) {
        const std::string& name = target->name;
        if (name == from || (!cut_.empty() && cut_.count({from, name})) || coin(rng_) < loss_) continue;
        if (!slot) {
            slot = take_slot(datagrams_, free_datagrams_);
            datagrams_[*slot].bytes = std::move(datagram);
        }
        ++datagrams_[*slot].receivers;
        push_event(Event{now_ + Usec(latency(rng_)), order_++, target, *slot});
    }
}

void SimCluster::receive(SimNode& t, const std::vector<std::uint8_t>& datagram) {
    if (!t.alive) return;
    if (t.paused) {
        if (t.queued.size() < kQueueLimit) t.queued.push_back(datagram);
        return;
    }
    apply(t, t.node->on_datagram(datagram, 0, now_));
}

void SimCluster::finish_hook(SimNode& n, std::size_t group, HookKind kind, std::uint64_t generation, bool success,
                             const char* why) {
    SimGroup& g = n.groups.at(group);
    if (!n.alive || g.hook_generation != generation || g.running_hook != kind) return;
    if (trace_ && !n.paused)
        std::fprintf(stderr, "%12s %-8s g%zu %s ended: %s\n", format_timespan(now_).c_str(), n.name.c_str(),
                     group, std::string(hook_name(kind)).c_str(), why);
    if (n.paused) {  // a frozen daemon reaps its child when it thaws
        schedule(now_ + kUsecPerMsec, [this, &n, group, kind, generation, success, why] {
            finish_hook(n, group, kind, generation, success, why);
        });
        return;
    }
    g.running_hook.reset();
    if (kind == HookKind::Stop) g.services_up = false;
    if (kind == HookKind::Start && success) g.services_failed = false;
    apply(n, n.node->on_hook_finished(group, kind, HookOutcome{success, why}, now_));
}

// The kill is confirmed (the cgroup is empty) a moment later; a frozen daemon reads it when it thaws.
void SimCluster::confirm_kill(SimNode& n, std::size_t group, std::uint64_t incarnation) {
    schedule(now_ + 2 * kUsecPerMsec, [this, &n, group, incarnation] {
        if (!n.alive || n.incarnation != incarnation) return;
        if (n.paused) return confirm_kill(n, group, incarnation);
        apply(n, n.node->on_services_killed(group, now_));
    });
}

void SimCluster::mix(const void* data, std::size_t size) {
    for (std::size_t i = 0; i < size; ++i) {
        digest_ ^= static_cast<const std::uint8_t*>(data)[i];
        digest_ *= 0x100000001b3ULL;
    }
}

void SimCluster::mix_effect(const Effect& e) {
    mix(e.index());
    if (auto* hb = std::get_if<effect::SendHeartbeat>(&e)) {
        mix(hb->datagram.size());
        mix(hb->datagram.data(), hb->datagram.size());
    } else if (auto* run = std::get_if<effect::RunHook>(&e)) {
        mix(run->kind);
        if (run->group != 0) mix(run->group);  // (so that a single group's digests stay what they were)
    } else if (auto* cancel = std::get_if<effect::CancelHook>(&e)) {
        mix(cancel->kind);
        if (cancel->group != 0) mix(cancel->group);
    } else if (auto* change = std::get_if<effect::StateChanged>(&e)) {
        mix(change->from), mix(change->to), mix(change->reason), mix(change->term), mix(change->active_node);
        mix(change->from_phase), mix(change->to_phase);
    } else if (auto* peer = std::get_if<effect::PeerStateChanged>(&e)) {
        mix(peer->peer), mix(peer->from), mix(peer->to), mix(peer->term);
    } else if (auto* notice = std::get_if<effect::Notice>(&e)) {
        mix(notice->kind), mix(notice->peer), mix(notice->text), mix(notice->channel);
    } else if (auto* exit = std::get_if<effect::Exit>(&e)) {
        mix(exit->code), mix(exit->services_left);
    } else if (auto* fence = std::get_if<effect::SelfFence>(&e)) {
        mix(fence->reason), mix(fence->lease_end);
    } else if (auto* m = std::get_if<effect::MaintenanceChanged>(&e)) {
        mix(m->on), mix(m->epoch);
    }
}

void SimCluster::apply(SimNode& n, Effects effects) {
    n.wakeup.reset();  // the core was called: its wake-up may have moved
    if (digesting_) {
        mix(n.name);
        mix(now_);
        for (const auto& e : effects) mix_effect(e);
    }
    for (auto& e : effects) {
        if (auto* hb = std::get_if<effect::SendHeartbeat>(&e)) {
            if (!etcd_mode()) {
                deliver(n.name, std::move(hb->datagram));
                continue;
            }
            n.etcd.record.assign(hb->datagram.begin(), hb->datagram.end());
            n.etcd.record_due = true;
            etcd_flush(n);
        } else if (auto* claim = std::get_if<effect::EtcdClaim>(&e)) {
            n.etcd.claims.insert(claim->group);
            etcd_flush(n);
        } else if (auto* release = std::get_if<effect::EtcdRelease>(&e)) {
            // A claim not sent yet is forgotten; a key created is deleted.
            if (n.etcd.claims.erase(release->group) == 0) n.etcd.releases.insert(release->group);
            etcd_flush(n);
        } else if (auto* run = std::get_if<effect::RunHook>(&e)) {
            HookKind kind = run->kind;
            std::size_t group = run->group;
            SimGroup& g = n.groups.at(group);
            g.running_hook = kind;
            if (trace_)
                std::fprintf(stderr, "%12s %-8s g%zu %s runs\n", format_timespan(now_).c_str(), n.name.c_str(),
                             group, std::string(hook_name(kind)).c_str());
            std::uint64_t gen = ++g.hook_generation;
            Usec duration;
            bool success = true;
            switch (kind) {
            case HookKind::Start:
                g.services_up = true;  // partly up from the first moment
                ++g.starts;
                duration = n.hooks.start_duration;
                success = n.hooks.start_succeeds;
                break;
            case HookKind::Stop: duration = n.hooks.stop_duration; break;
            case HookKind::Monitor:
                duration = n.hooks.monitor_hangs ? n.hooks.monitor_timeout : n.hooks.monitor_duration;
                success = g.services_up && !g.services_failed && !n.hooks.monitor_hangs;
                break;
            }
            const char* why = success ? "exited with status 0" : "exited with status 1";
            if (kind == HookKind::Monitor && n.hooks.monitor_hangs) why = "timed out";
            schedule(now_ + duration, [this, &n, group, kind, gen, success, why] {
                finish_hook(n, group, kind, gen, success, why);
            });
        } else if (auto* cancel = std::get_if<effect::CancelHook>(&e)) {
            HookKind kind = cancel->kind;
            std::size_t group = cancel->group;
            std::uint64_t gen = n.groups.at(group).hook_generation;
            schedule(now_ + kUsecPerMsec,
                     [this, &n, group, kind, gen] { finish_hook(n, group, kind, gen, false, "canceled"); });
        } else if (auto* kill = std::get_if<effect::KillServices>(&e)) {
            std::size_t group = kill->group;
            SimGroup& g = n.groups.at(group);
            g.services_up = false;  // SIGKILL to the group's services cgroup: everything dies at once
            std::uint64_t gen = g.hook_generation;
            if (g.running_hook) {
                HookKind kind = *g.running_hook;
                schedule(now_ + kUsecPerMsec,
                         [this, &n, group, kind, gen] { finish_hook(n, group, kind, gen, false, "killed"); });
            }
            confirm_kill(n, group, n.incarnation);
        } else if (auto* change = std::get_if<effect::StateChanged>(&e)) {
            if (trace_)
                std::fprintf(stderr, "%12s %-8s g%zu %s -> %s (term %llu): %s\n", format_timespan(now_).c_str(),
                             n.name.c_str(), change->group, std::string(to_string(change->from)).c_str(),
                             std::string(to_string(change->to)).c_str(),
                             static_cast<unsigned long long>(change->term), change->reason.c_str());
            n.history.push_back(*change);
        } else if (auto* exit = std::get_if<effect::Exit>(&e)) {
            if (etcd_mode() && reaches_etcd(n) && n.etcd.lease != 0) {  // the daemon revokes its lease as it exits
                etcd_delete_lease(n.etcd.lease);
                etcd_changed();
            }
            n.exit_code = exit->code;
            n.alive = false;
            // Services left in maintenance mode run on without freehad (the
            // worst case: outside its cgroup), unless the machine goes down.
            if (n.machine_down)
                for (SimGroup& g : n.groups) g.services_up = false;
        } else if (auto* m = std::get_if<effect::MaintenanceChanged>(&e)) {
            n.maintenance = Maintenance{m->on, m->epoch};
        }
    }
}

void SimCluster::run_until(Usec until, const std::function<void()>& check) {
    constexpr Usec kNever = Usec::max();
    for (SimNode* n : in_order_) n->wakeup.reset();  // the caller may have called a core itself
    while (true) {
        SimNode* due = nullptr;
        Usec node_time = kNever;
        for (SimNode* node : in_order_) {
            SimNode& n = *node;
            if (!n.alive || n.paused) continue;
            // A kept wake-up still ahead is what the core would say now (nothing
            // that it depends on changed); once reached, the core is asked again,
            // as it may have nothing to do then after all.
            if (!n.wakeup || *n.wakeup <= now_) n.wakeup = std::max(n.node->next_wakeup(now_).value_or(kNever), now_);
            if (digesting_ && *n.wakeup != std::max(n.node->next_wakeup(now_).value_or(kNever), now_)) {
                std::fprintf(stderr, "%s: kept wake-up %s differs from the core's at %s\n", n.name.c_str(),
                             format_timespan(*n.wakeup).c_str(), format_timespan(now_).c_str());
                std::abort();
            }
            if (*n.wakeup < node_time) {
                node_time = *n.wakeup;
                due = &n;
            }
        }
        Usec event_time = events_.empty() ? kNever : events_.front().at;
        Usec next = std::min(node_time, event_time);
        if (next > until) break;
        now_ = next;
        ++steps_;
        if (digesting_) mix(now_);
        if (event_time <= node_time) {
            std::pop_heap(events_.begin(), events_.end(), std::greater<Event>());
            Event ev = events_.back();
            events_.pop_back();
            if (ev.to != nullptr) {
                receive(*ev.to, datagrams_[ev.slot].bytes);  // (datagrams_ may grow once the core has returned)
                if (--datagrams_[ev.slot].receivers == 0) free_datagrams_.push_back(ev.slot);
            } else {
                std::function<void()> action = std::move(actions_[ev.slot]);
                free_actions_.push_back(ev.slot);
                action();
            }
        } else {
            apply(*due, due->node->on_timer(now_));
        }
        if (check) check();
    }
    now_ = std::max(now_, until);
}

std::vector<std::string> SimCluster::services_up(std::size_t group) const {
    std::vector<std::string> out;
    for (const auto& [name, n] : nodes_)
        if (n.groups.at(group).services_up) out.push_back(name);
    return out;
}

std::size_t SimCluster::services_up_count(std::size_t group) const {
    std::size_t count = 0;
    for (const SimNode* n : in_order_) count += n->groups.at(group).services_up ? 1 : 0;
    return count;
}

bool SimCluster::services_up_on(const std::vector<std::string>& nodes, std::size_t group) const {
    auto next = nodes.begin();
    for (const auto& [name, n] : nodes_) {
        if (!n.groups.at(group).services_up) continue;
        if (next == nodes.end() || *next != name) return false;
        ++next;
    }
    return next == nodes.end();
}

// --- Backend=etcd -------------------------------------------------------------

void SimCluster::etcd_renew(SimNode& n, std::uint64_t incarnation) {
    if (!n.alive || n.incarnation != incarnation) return;
    if (reaches_etcd(n)) {
        if (n.etcd.lease != 0 && !etcd_.leases.contains(n.etcd.lease)) {  // the keepalive finds it gone
            n.etcd.lease = 0;
            apply(n, n.node->on_etcd_lease(0, std::nullopt, now_));
            n.etcd.claims.clear();  // the session forgets what it claimed on the lost lease
        }
        bool granted = n.etcd.lease == 0;
        if (granted) {
            n.etcd.lease = etcd_.next_lease++;
            n.etcd.record_due = !n.etcd.record.empty();
        }
        Usec ttl = etcd::ttl_seconds(n.settings.dead_time) * kUsecPerSec;
        etcd_.leases[n.etcd.lease] = SimEtcd::Lease{n.name, now_ + ttl};
        schedule(now_ + ttl, [this] { etcd_expire(); });
        etcd_flush(n);
        // Acknowledged: the request was sent a moment ago, the lease counts from then.
        if (n.alive) apply(n, n.node->on_etcd_lease(n.etcd.lease, promise_grant(now_ - kUsecPerMsec, ttl), now_));
        if (granted && n.alive) etcd_show(n);  // the watch reads the keys
    }
    schedule(now_ + n.settings.interval, [this, &n, incarnation] { etcd_renew(n, incarnation); });
}

void SimCluster::etcd_flush(SimNode& n) {
    if (!reaches_etcd(n) || !etcd_.leases.contains(n.etcd.lease)) return;
    bool changed = false;
    if (n.etcd.record_due) {
        auto [it, created] = etcd_.keys.try_emplace(etcd_layout_.member_key(n.name));
        if (created || it->second.lease != n.etcd.lease) it->second.create_revision = etcd_.revision;
        it->second.value = n.etcd.record;
        it->second.lease = n.etcd.lease;
        ++etcd_.revision;
        n.etcd.record_due = false;
        changed = true;
    }
    for (const std::string& group : std::exchange(n.etcd.releases, {})) {
        auto it = etcd_.keys.find(etcd_holder_key(group));
        if (it == etcd_.keys.end() || it->second.lease != n.etcd.lease) continue;
        etcd_.keys.erase(it);
        ++etcd_.revision;
        changed = true;
    }
    std::uint64_t incarnation = n.incarnation;
    for (const std::string& group : std::exchange(n.etcd.claims, {})) {
        auto [it, created] = etcd_.keys.try_emplace(etcd_holder_key(group));
        if (created) {
            it->second = SimEtcd::Key{n.name, n.etcd.lease, etcd_.revision++};
            changed = true;
        }
        bool won = it->second.lease == n.etcd.lease;
        etcd_answer(n, incarnation, group, won, it->second.value);
    }
    if (changed) etcd_changed();
}

void SimCluster::etcd_answer(SimNode& n, std::uint64_t incarnation, const std::string& group, bool won,
                             const std::string& holder) {
    schedule(now_ + kUsecPerMsec, [this, &n, incarnation, group, won, holder] {
        if (!n.alive || n.incarnation != incarnation) return;
        if (n.paused) return etcd_answer(n, incarnation, group, won, holder);  // read when it thaws
        apply(n, n.node->on_etcd_claim(group, won, holder, now_));
    });
}

void SimCluster::etcd_delete_lease(std::int64_t lease) {
    etcd_.leases.erase(lease);
    std::erase_if(etcd_.keys, [lease](const auto& kv) { return kv.second.lease == lease; });
    ++etcd_.revision;
}

void SimCluster::etcd_expire() {
    if (!etcd_.quorate) return;  // no leader: nothing expires
    bool expired = false;
    for (auto it = etcd_.leases.begin(); it != etcd_.leases.end();) {
        if (now_ < it->second.expires) {
            ++it;
            continue;
        }
        std::int64_t lease = (it++)->first;
        etcd_delete_lease(lease);
        ++etcd_.leases_expired;
        expired = true;
    }
    if (expired) etcd_changed();
}

void SimCluster::etcd_changed() {
    for (SimNode* n : in_order_) {
        SimNode* target = n;
        std::uint64_t incarnation = n->incarnation;
        schedule(now_ + kUsecPerMsec, [this, target, incarnation] {
            if (reaches_etcd(*target) && target->incarnation == incarnation) etcd_show(*target);
        });
    }
}

void SimCluster::etcd_show(SimNode& n) {
    std::map<std::string, etcd::KeyValue> keys;
    for (const auto& [key, k] : etcd_.keys)
        keys[key] = etcd::KeyValue{key, k.value, k.lease, k.create_revision, k.create_revision};
    apply(n, n.node->on_etcd_view(etcd::read_view(etcd_layout_, keys), now_));
}

void SimCluster::heal_etcd(const std::string& name) {
    SimNode& n = nodes_.at(name);
    n.etcd.cut = false;
    if (!reaches_etcd(n)) return;
    etcd_flush(n);
    etcd_show(n);  // the watch is made again: it reads the keys
}

void SimCluster::set_etcd_quorate(bool quorate) {
    etcd_.quorate = quorate;
    if (!quorate) return;
    // A new leader gives every lease a whole TTL again.
    Usec ttl = etcd::ttl_seconds(base_.dead_time) * kUsecPerSec;
    for (auto& [id, lease] : etcd_.leases) lease.expires = std::max(lease.expires, now_ + ttl);
    schedule(now_ + ttl, [this] { etcd_expire(); });
    for (SimNode* n : in_order_)
        if (reaches_etcd(*n)) {
            etcd_flush(*n);
            etcd_show(*n);
        }
}

std::string SimCluster::etcd_holder(const std::string& group) const {
    auto it = etcd_.keys.find(etcd_layout_.holder_key(group));
    return it == etcd_.keys.end() ? std::string() : it->second.value;
}

std::vector<std::string> SimCluster::running() const {
    std::vector<std::string> out;
    for (const auto& [name, n] : nodes_)
        if (n.alive && n.node->state() == NodeState::Running) out.push_back(name);
    return out;
}

}  // namespace freeha::sim
