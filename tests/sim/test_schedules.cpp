// Random fault schedules on the simulated cluster, checked for safety at every step and for liveness at the end.
//
// Faults: crashes and restarts (some with another configuration), pauses,
// partitions, one-way cuts, loss, wall clock jumps, stops, and reloads of
// DeadTime=, Interval=, FenceTimeout= and ExpectedNodes= on any node.
//
// FREEHA_SIM_SCHEDULES (default 100000) schedules run on every core; schedule
// i uses seed FREEHA_SIM_SEED + i (default 1). A failure prints its seed and
// the schedule; FREEHA_SIM_SEED=<seed> FREEHA_SIM_SCHEDULES=1 replays it.
// FREEHA_SIM_DIGEST=FILE writes each seed's steps and digest (SimCluster::digest()) to FILE.
// FREEHA_SIM_GROUPS_EVERY=N (default 10): one schedule in N runs 2-8
// service groups, the others one; N=1: every schedule runs 1-8 groups (the
// issue's 100,000, by hand: about 8 times the CPU of one group).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/claims.h"
#include "core/election.h"
#include "sim/sim_cluster.h"

using namespace freeha;
using namespace freeha::sim;

namespace {

constexpr Usec ms = kUsecPerMsec;
constexpr Usec sec = kUsecPerSec;
constexpr std::int64_t kHour = 3600LL * static_cast<std::int64_t>(sec.count());

constexpr Usec kFaultsFrom = 2 * sec;
constexpr Usec kFaultsUntil = 10 * sec;  // then the network heals and every node runs
constexpr Usec kSettle = 15 * sec;       // the liveness bound after that
constexpr Usec kSteadyAtEnd = 3 * sec;   // the one active node must not change during this

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

Usec uniform(std::mt19937_64& rng, Usec lo, Usec hi) { return lo + Usec(rng() % ((hi - lo).count() + 1)); }

// One random schedule: the cluster, its settings and the faults, in time order.
class Schedule {
public:
    Schedule(std::uint64_t seed, std::uint64_t groups_every) : rng_(seed) {
        unsigned n = 2 + static_cast<unsigned>(rng_() % 6);  // 2..7 nodes
        static const char* kNames[] = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"};
        for (unsigned i = 0; i < n; ++i) names_.emplace_back(kNames[i]);
        settings_.cluster_name = "sim";
        settings_.expected_nodes = n;
        settings_.init_dead = 3 * sec;
        // 10ms .. the most a lease leaves room for (500ms at the default timings)
        settings_.fence_timeout = uniform(rng_, 10 * ms, max_fence_timeout(settings_.interval, settings_.dead_time));
        settings_.no_quorum_policy = rng_() % 8 == 0 ? NoQuorumPolicy::Ignore : NoQuorumPolicy::Stop;
        if (n >= 3 && rng_() % 3 == 0) arbitrator_ = names_[rng_() % n];
        // The service groups, drawn apart from rng_ so that a schedule of one
        // group is the same as before groups existed; several spread by name.
        std::uint64_t mixed = seed * 0x9e3779b97f4a7c15ULL;
        mixed ^= mixed >> 29;
        std::size_t groups = groups_every <= 1         ? 1 + static_cast<std::size_t>(mixed % 8)
                             : mixed % groups_every == 0 ? 2 + static_cast<std::size_t>(mixed / groups_every % 7)
                                                         : 1;
        for (std::size_t i = 1; i < groups; ++i)
            settings_.groups.push_back(
                GroupSettings{"g" + std::to_string(i), "", 2 * kUsecPerSec, PlacementPolicy::Rendezvous, {}});
        if (groups > 1)
            for (auto& g : settings_.groups) g.placement = PlacementPolicy::Rendezvous;
        log_ << n << " nodes" << (arbitrator_.empty() ? "" : ", arbitrator " + arbitrator_) << ", FenceTimeout "
             << format_timespan(settings_.fence_timeout) << ", NoQuorumPolicy " << to_string(settings_.no_quorum_policy)
             << (groups > 1 ? ", " + std::to_string(groups) + " service groups" : std::string()) << "\n";
    }

    // Runs the whole schedule; returns "" or what went wrong, with the log.
    std::string run() {
        SimCluster c(names_, settings_, rng_());
        std::string failure = run(c);
        steps_ = c.steps();
        digest_ = c.digest();
        return failure;
    }
    std::uint64_t steps() const { return steps_; }
    std::size_t group_count() const { return settings_.groups.size(); }
    std::uint64_t digest() const { return digest_; }

private:
    std::string run(SimCluster& c) {
        for (auto& name : names_) {
            SimNode& node = c[name];
            if (name == arbitrator_) node.role = Role::Arbitrator;
            node.hooks.start_duration = slow() ? uniform(rng_, 1 * sec, 4 * sec) : uniform(rng_, 1 * ms, 300 * ms);
            node.hooks.stop_duration = slow() ? uniform(rng_, 1 * sec, 5 * sec) : uniform(rng_, 1 * ms, 300 * ms);
        }
        c.start_all();
        std::string failure;
        auto check = [&] {
            if (failure.empty()) failure = check_safety(c);
        };
        c.run_until(kFaultsFrom, check);
        while (failure.empty() && c.now() < kFaultsUntil) {
            c.run_for(uniform(rng_, 10 * ms, 1500 * ms), check);
            inject_fault(c);
        }
        if (!failure.empty()) return failure + "\n" + log_.str();
        std::string holder = secure_holder(c);
        stabilize(c, check);
        end_maintenance(c, check);
        c.run_for(kSettle - kSteadyAtEnd, check);
        std::vector<std::vector<std::string>> steady;
        for (std::size_t g = 0; g < c.group_count(); ++g) steady.push_back(c.services_up(g));
        c.run_for(kSteadyAtEnd, [&] {
            check();
            for (std::size_t g = 0; g < c.group_count() && failure.empty(); ++g)
                if (!c.services_up_on(steady[g], g))
                    failure = "liveness: group " + std::to_string(g) +
                              " moved or stopped after the network had been stable for " +
                              format_timespan(kSettle - kSteadyAtEnd);
        });
        for (std::size_t g = 0; g < c.group_count() && failure.empty(); ++g) failure = check_liveness(c, steady[g], g);
        // Healing never moves the services away from a node that held them securely.
        if (failure.empty() && !holder.empty() && steady.front() != std::vector<std::string>{holder})
            failure = "healing moved the services from " + holder;
        return failure.empty() ? "" : at(c) + failure + "\n" + log_.str();
    }

    bool slow() { return rng_() % 5 == 0; }
    const std::string& any_node() { return names_[rng_() % names_.size()]; }
    std::string at(const SimCluster& c) const { return "at " + format_timespan(c.now()) + ": "; }

    void note(const SimCluster& c, const std::string& what) { log_ << "  " << format_timespan(c.now()) << " " << what << "\n"; }

    void inject_fault(SimCluster& c) {
        const std::string& victim = any_node();
        SimNode& v = c[victim];
        switch (rng_() % 14) {
        case 0:
            if (v.alive) {
                c.crash(victim);
                note(c, "crash " + victim);
            } else {
                std::string changed = maybe_change_settings(c, victim);  // while it was down
                c.start(victim);
                note(c, "restart " + victim + changed);
            }
            break;
        case 9:  // freehactl reload-config (a frozen daemon gets it when it restarts)
        case 10:
            c.reconfigure(victim, random_settings());
            note(c, std::string(v.alive && !v.paused ? "reload " : "configuration changed on ") + victim + ": " +
                        describe(v.settings));
            break;
        case 8:  // kill -9 and an immediate restart: the daemon forgets everything but its services are gone
            if (v.alive && !v.paused) {
                std::string changed = maybe_change_settings(c, victim);
                c.crash(victim);
                c.start(victim);
                note(c, "crash and restart " + victim + " at once" + changed);
            }
            break;
        case 1:
            if (v.paused) {
                c.resume(victim);
                note(c, "resume " + victim);
            } else if (v.alive) {
                c.pause(victim);
                note(c, "pause " + victim);
            }
            break;
        case 2: {
            std::set<std::string> side;
            for (auto& name : names_)
                if (rng_() % 2) side.insert(name);
            c.partition(side);
            std::string text;
            for (auto& name : side) text += name + " ";
            note(c, "partition {" + text + "} from the rest");
            break;
        }
        case 3: {
            const std::string& to = any_node();
            if (to == victim) break;
            c.cut(victim, to);
            note(c, "cut " + victim + " -> " + to + " (one way)");
            break;
        }
        case 4: {
            double loss = static_cast<double>(rng_() % 60) / 100.0;
            c.set_loss(loss);
            note(c, "loss " + std::to_string(static_cast<int>(loss * 100)) + "%");
            break;
        }
        case 5:
            c.heal();
            c.set_loss(0);
            note(c, "heal");
            break;
        case 6: {
            std::int64_t jump = rng_() % 2 ? kHour : -kHour;
            c.jump_clock(victim, jump);
            note(c, "wall clock of " + victim + (jump > 0 ? " +1h" : " -1h"));
            break;
        }
        case 7:
            if (v.alive && !v.paused && rng_() % 2) {
                c.command(victim, Command::Stop);
                note(c, "freehactl stop on " + victim);
            }
            break;
        case 11:  // systemctl reboot: hand over, leave, and the machine is down until a restart
            if (v.alive && !v.paused) {
                c.command(victim, Command::Leave);
                note(c, "reboot " + victim);
            }
            break;
        case 12:  // systemctl stop freehad (in maintenance mode the services are left running)
            if (v.alive && !v.paused && rng_() % 2) {
                c.command(victim, Command::Shutdown);
                note(c, "systemctl stop freehad on " + victim);
            }
            break;
        case 13: {
            bool on = !v.maintenance.on;
            std::string refused = c.set_maintenance(victim, on);
            note(c, std::string("freehactl maintenance ") + (on ? "on" : "off") + " on " + victim +
                        (refused.empty() ? "" : ": refused: " + refused));
            break;
        }
        }
    }

    // A configuration config.cpp accepts, and that a cluster mixing it with
    // any other such one runs with: DeadTime= 1..3s (the base is 1s),
    // Interval= 150..250ms, a FenceTimeout= that fits the shortest lease a
    // peer may grant, ExpectedNodes= from the node count up to what still
    // leaves a majority among them.
    NodeSettings random_settings() {
        NodeSettings s = settings_;
        s.interval = Usec(150 + 50 * (rng_() % 3)) * 1000;
        // The extremes most often: a promise made with one and renewed with the other.
        switch (rng_() % 3) {
        case 0: s.dead_time = 1 * sec; break;
        case 1: s.dead_time = 3 * sec; break;
        default: s.dead_time = uniform(rng_, 1 * sec, 3 * sec); break;
        }
        s.fence_timeout = uniform(rng_, 10 * ms, max_fence_timeout(s.interval, 1 * sec));
        auto n = static_cast<unsigned>(names_.size());
        s.expected_nodes = n + static_cast<unsigned>(rng_() % (std::min(n + 2, 2 * n - 1) - n + 1));
        return s;
    }
    // Half the time, the admin changes the node's configuration (before a restart); says how.
    std::string maybe_change_settings(SimCluster& c, const std::string& name) {
        if (rng_() % 2 == 0) return "";
        c.reconfigure(name, random_settings());
        return " with " + describe(c[name].settings);
    }
    static std::string describe(const NodeSettings& s) {
        return "DeadTime " + format_timespan(s.dead_time) + ", Interval " + format_timespan(s.interval) +
               ", FenceTimeout " + format_timespan(s.fence_timeout) + ", ExpectedNodes " +
               std::to_string(s.expected_nodes);
    }

    // The node that runs the services when the network heals, if exactly one
    // does, awake, and its lease has at least an interval before its graceful
    // stop (one about to run out may rightly stop): healing must leave them there.
    std::string secure_holder(SimCluster& c) const {
        if (!quorum_rules_apply(settings_)) return "";
        auto up = c.services_up();
        if (up.size() != 1) return "";
        const SimNode& n = c[up.front()];
        if (!n.alive || n.paused || n.node->phase() != Phase::Running) return "";
        auto lease = n.node->lease();
        LeaseTimings t = lease_timings(n.node->settings());
        if (!lease || c.now() + t.interval >= graceful_stop_at(*lease, t)) return "";
        // Healing the network only: restarting nodes (which back nothing for
        // their promise horizon after they start) or waking frozen ones (which
        // may still run them) is not.
        for (const auto& name : names_) {
            const SimNode& m = c[name];
            if (!m.alive || m.paused || m.node->state() == NodeState::Initial) return "";
            const NodeSettings& s = m.node->settings();
            if (c.now() < m.started_at + std::max(s.dead_time, s.previous_dead_time)) return "";
        }
        // Nor is raising ExpectedNodes=: a larger count the holder hears once
        // the network heals takes effect at once, and its lease may lack the votes.
        for (const auto& name : names_)
            if (c[name].settings.expected_nodes > n.node->expected_nodes()) return "";
        return up.front();
    }

    // The admin turns maintenance mode off once every node runs again; a
    // refusal (a node not heard yet, a stop under way) is retried.
    void end_maintenance(SimCluster& c, const std::function<void()>& check) {
        auto on_somewhere = [&] {
            for (auto& name : names_)
                if (c[name].maintenance.on) return true;
            return false;
        };
        for (int attempt = 0; attempt < 30 && on_somewhere(); ++attempt) {
            c.run_for(200 * ms, check);
            std::string refused = c.set_maintenance(names_[static_cast<std::size_t>(attempt) % names_.size()], false);
            if (refused.empty()) note(c, "freehactl maintenance off");
        }
    }

    // Heals the network and (re)starts every node; a daemon still stopping
    // (systemctl stop, a reboot) is waited for and started again once it has exited.
    void stabilize(SimCluster& c, const std::function<void()>& check) {
        c.heal();
        c.set_loss(0);
        for (auto& name : names_)
            if (c[name].paused) c.resume(name);
        for (int waited = 0; waited < 100; ++waited) {
            bool stopping = false;
            for (auto& name : names_) {
                if (!c[name].alive) c.start(name);
                stopping = stopping || c[name].node->shutting_down();
            }
            if (!stopping) break;
            c.run_for(100 * ms, check);
        }
        note(c, "network healed, every node running");
    }

    // A node may overlap with another only while it is frozen, and for the
    // moment it then needs to notice that its lease is gone and kill the
    // services (its kill margin, half its interval): that is freeha-safety(7)'s
    // one exception when quorum rules apply. Otherwise at most one node may
    // hold the services (a 2-node cluster or NoQuorumPolicy=ignore may split).
    std::string check_safety(const SimCluster& c) const {
        if (!quorum_rules_apply(settings_)) return "";
        for (std::size_t g = 0; g < c.group_count(); ++g)
            if (std::string failure = check_safety(c, g); !failure.empty()) return failure;
        return "";
    }
    std::string check_safety(const SimCluster& c, std::size_t group) const {
        if (c.services_up_count(group) <= 1) return "";
        auto up = c.services_up(group);
        unsigned unexcused = 0;
        for (auto& name : up) {
            const SimNode& n = c[name];
            Usec excuse = kill_margin(lease_timings(n.node->settings()));
            bool frozen_lately = n.paused || (n.resumed_at != Usec() && c.now() < n.resumed_at + excuse);
            if (!frozen_lately) ++unexcused;
        }
        if (unexcused <= 1) return "";
        std::string who;
        for (auto& name : up) who += name + " ";
        return at(c) + "safety: services of group " + std::to_string(group) + " up on " + who;
    }

    std::string check_liveness(SimCluster& c, const std::vector<std::string>& up, std::size_t group) const {
        std::string which = group == 0 ? std::string() : " of group " + std::to_string(group);
        if (up.size() != 1) return "liveness: " + std::to_string(up.size()) + " nodes run the services" + which;
        const std::string& active = up.front();
        if (c[active].node->group(group).state() != NodeState::Running)
            return "liveness: " + active + " is not RUNNING" + which;
        for (auto& name : names_)
            if (std::string seen = c[name].node->group(group).active_node(); seen != active)
                return "liveness: " + name + " sees '" + seen + "' as active" + which + ", not " + active;
        return "";
    }

    std::mt19937_64 rng_;
    std::vector<std::string> names_;
    std::string arbitrator_;
    NodeSettings settings_;
    std::ostringstream log_;
    std::uint64_t steps_ = 0;
    std::uint64_t digest_ = 0;
};

}  // namespace

TEST(Schedules, RandomFaultsNeverBreakSafetyAndTheClusterSettlesOnOneActiveNode) {
    const std::uint64_t count = env_number("FREEHA_SIM_SCHEDULES", 100000);
    const std::uint64_t first_seed = env_number("FREEHA_SIM_SEED", 1);
    const std::uint64_t groups_every = env_number("FREEHA_SIM_GROUPS_EVERY", 10);
    // FREEHA_SIM_DIGEST=FILE: one line per seed (seed, steps, digest, ok or
    // failed) into FILE, to compare the simulation before and after a change.
    const char* digest_file = std::getenv("FREEHA_SIM_DIGEST");
    std::atomic<std::uint64_t> next{0}, steps{0}, with_groups{0};
    std::mutex failures_lock;
    std::vector<std::pair<std::uint64_t, std::string>> failures;
    std::vector<std::string> digests;
    auto worker = [&] {
        for (std::uint64_t i = next++; i < count; i = next++) {
            std::uint64_t seed = first_seed + i;
            Schedule schedule(seed, groups_every);
            std::string failure = schedule.run();
            steps += schedule.steps();
            if (schedule.group_count() > 1) ++with_groups;
            if (digest_file != nullptr && *digest_file != '\0') {
                char line[96];
                std::snprintf(line, sizeof line, "%llu %llu %016llx %s\n", static_cast<unsigned long long>(seed),
                              static_cast<unsigned long long>(schedule.steps()),
                              static_cast<unsigned long long>(schedule.digest()), failure.empty() ? "ok" : "failed");
                std::lock_guard lock(failures_lock);
                digests.emplace_back(line);
            }
            if (failure.empty()) continue;
            std::lock_guard lock(failures_lock);
            failures.emplace_back(seed, std::move(failure));
            if (failures.size() >= 5) next = count;  // enough to go on
        }
    };
    auto began = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < std::max(1u, std::thread::hardware_concurrency()); ++t) threads.emplace_back(worker);
    for (auto& t : threads) t.join();
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    std::printf("%llu schedules (seeds %llu..%llu; %llu with 2-8 service groups), %llu steps, in %.1f s\n",
                static_cast<unsigned long long>(count), static_cast<unsigned long long>(first_seed),
                static_cast<unsigned long long>(first_seed + count - 1),
                static_cast<unsigned long long>(with_groups.load()), static_cast<unsigned long long>(steps.load()),
                seconds);
    if (digest_file != nullptr && *digest_file != '\0') {
        std::sort(digests.begin(), digests.end(), [](const std::string& a, const std::string& b) {
            return std::strtoull(a.c_str(), nullptr, 10) < std::strtoull(b.c_str(), nullptr, 10);
        });
        std::ofstream out(digest_file);
        for (const auto& line : digests) out << line;
        EXPECT_TRUE(out.good()) << "cannot write " << digest_file;
    }
    for (auto& [seed, text] : failures)
        ADD_FAILURE() << "seed " << seed << " (replay: FREEHA_SIM_SEED=" << seed << " FREEHA_SIM_SCHEDULES=1)\n"
                      << text;
}
