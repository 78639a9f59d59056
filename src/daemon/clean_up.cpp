#include "daemon/clean_up.h"

#include <chrono>
#include <memory>
#include <vector>
#include <optional>

#include "bus/sd_ptr.h"
#include "core/claims.h"
#include "core/node.h"
#include "daemon/floating_addresses.h"
#include "daemon/hook_path.h"
#include "daemon/hook_runner.h"
#include "daemon/log.h"
#include "daemon/self_fence.h"
#include "daemon/state_store.h"

namespace freeha {
namespace {

// CLOCK_MONOTONIC, as sd-event's timers and the deadline use it.
Usec monotonic_now() {
    auto since_boot = std::chrono::steady_clock::now().time_since_epoch();
    return Usec(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(since_boot).count()));
}

// Runs stophasrv of every group in scripts mode (`groups`) at once in a loop
// of its own and returns each one's outcome, in order, or nullopt for one
// that has not ended by `deadline`: its process group is then killed (and
// systemd kills whatever else is left of the unit, every group's cgroup,
// once ExecStopPost= has run).
std::vector<std::optional<HookOutcome>> run_stop_hooks(const Config& config,
                                                       const std::vector<const GroupConfig*>& groups, Usec deadline,
                                                       std::string* error) {
    std::vector<std::optional<HookOutcome>> outcomes(groups.size());
    auto failed_all = [&] {
        for (auto& o : outcomes) o = HookOutcome{false, *error};
        return outcomes;
    };
    sd_event* raw = nullptr;
    int r = sd_event_new(&raw);
    if (r < 0) {
        *error = log::with_errno("cannot create an event loop", r);
        return failed_all();
    }
    EventPtr event(raw);
    std::size_t pending = groups.size();
    std::vector<std::unique_ptr<HookRunner>> runners;
    for (std::size_t i = 0; i < groups.size(); ++i) {
        runners.push_back(std::make_unique<HookRunner>(
            event.get(), groups[i]->hooks_directory, nullptr,
            [&, i](HookKind, const HookOutcome& o) {
                outcomes[i] = o;
                if (--pending == 0) sd_event_exit(event.get(), 0);
            },
            [] {}));
        if (r = runners.back()->init(error); r < 0) return failed_all();
    }
    sd_event_source* timer = nullptr;
    r = sd_event_add_time(
        event.get(), &timer, CLOCK_MONOTONIC, deadline.count(), 0,
        [](sd_event_source* s, uint64_t, void* userdata) {
            for (auto& runner : *static_cast<std::vector<std::unique_ptr<HookRunner>>*>(userdata))
                runner->kill_services();
            return sd_event_exit(sd_event_source_get_event(s), 0);
        },
        &runners);
    if (r < 0) {
        *error = log::with_errno("cannot bound stophasrv by the deadline", r);
        return failed_all();
    }
    EventSourcePtr deadline_source(timer);
    // main() blocked SIGCHLD first thing, as the child source needs.
    Usec now = monotonic_now();
    Usec left = deadline > now ? deadline - now : Usec(1);
    for (std::size_t i = 0; i < groups.size(); ++i)
        runners[i]->run(HookKind::Stop, left,
                        hook_environment(config, *groups[i],
                                         effect::StateChanged{NodeState::Running, NodeState::Stopping, "freehad died",
                                                              0, config.node_name}));
    r = sd_event_loop(event.get());
    if (r < 0) {
        *error = log::with_errno("the clean-up's event loop failed", r);
        for (auto& o : outcomes)
            if (!o) o = HookOutcome{false, *error};
    }
    return outcomes;
}

}  // namespace

int clean_up_after_daemon(const Config& config) {
    Usec started = monotonic_now();
    if (config.role != Role::Member) {
        log::info("--clean-up: an arbitrator runs no services; nothing to clean up");
        return 0;
    }
    // Maintenance mode: what runs here, addresses included, is the admin's.
    std::string unreadable_mode;
    if (auto m = stored_maintenance(default_state_directory(config.bus), &unreadable_mode); m && m->on) {
        log::notice("--clean-up: maintenance mode is on: the services and floating addresses are left as they are");
        return 0;
    }
    if (!unreadable_mode.empty()) log::warning("--clean-up: " + unreadable_mode);
    // Address=: freehad's own, so whatever the mode or the marker says: a
    // standby has none, and removing none costs one netlink round trip.
    std::vector<FloatingAddress> addresses;
    for (const GroupConfig* g : config.all_groups())
        addresses.insert(addresses.end(), g->addresses.begin(), g->addresses.end());
    if (!addresses.empty()) {
        std::string error;
        int removed = remove_addresses(addresses, &error);
        if (removed < 0) {
            LeaseTimings t{config.interval, config.dead_time, config.fence_timeout};
            self_fence(config.self_fence, "freehad died and its floating addresses could not be removed: " + error,
                       clean_up_deadline(started, t) + kill_margin(t) / 2);
            return 1;
        }
        if (removed > 0)
            log::notice("--clean-up: removed " + std::to_string(removed) + " floating address(es) in " +
                        format_timespan(monotonic_now() - started));
    }
    // Target mode: the target is bound to freehad.service (BindsTo=), so systemd stopped it with freehad.
    std::vector<const GroupConfig*> scripts;
    for (const GroupConfig* g : config.all_groups()) {
        if (g->target.empty())
            scripts.push_back(g);
        else
            log::info("--clean-up: target mode; " + g->target +
                      " is bound to freehad.service (BindsTo=), so systemd stopped it with freehad");
    }
    if (scripts.empty()) return 0;
    std::string directory = unit_runtime_directory();
    if (directory.empty()) {
        log::error("--clean-up: $RUNTIME_DIRECTORY is not set; run it as freehad.service's ExecStopPost= "
                   "(RuntimeDirectory=freeha)");
        return 1;
    }
    std::string unreadable;
    auto marker = read_services_marker(directory, ServicesMarker{config.dead_time, config.interval}, &unreadable);
    if (!unreadable.empty()) log::warning("--clean-up: " + unreadable + "; cleaning up with the configured timings");
    if (!marker) {
        log::info("--clean-up: freehad ended with no services running here; nothing to clean up");
        return 0;
    }
    // The timings the cluster counted on are those freehad ran with; a file
    // edited since and not yet reloaded counts only if it is stricter.
    LeaseTimings t{std::min(marker->interval, config.interval), std::min(marker->dead_time, config.dead_time),
                   config.fence_timeout};
    t.interval = std::min(t.interval, t.dead_time / 2);
    Usec deadline = clean_up_deadline(started, t);
    log::warning("--clean-up: freehad ended while its services may run here; stophasrv cleans up what they "
                 "left, by " + format_timespan(deadline - started) + " from now (before a peer can take over)");
    std::string error;
    std::vector<std::optional<HookOutcome>> outcomes = run_stop_hooks(config, scripts, deadline, &error);
    std::string why;  // the failures, each named by its group when there are several
    for (std::size_t i = 0; i < scripts.size(); ++i) {
        const std::optional<HookOutcome>& outcome = outcomes[i];
        if (outcome && outcome->success) continue;
        std::string failure = outcome ? "stophasrv " + outcome->description
                                      : "stophasrv did not end within " + format_timespan(deadline - started);
        if (config.all_groups().size() > 1) failure = "group " + scripts[i]->name + ": " + failure;
        why += (why.empty() ? "" : "; ") + failure;
    }
    if (why.empty()) {
        if (std::string e = remove_services_marker(directory); !e.empty()) log::warning("--clean-up: " + e);
        log::notice("--clean-up: stophasrv cleaned up in " + format_timespan(monotonic_now() - started));
        return 0;
    }
    self_fence(config.self_fence, "freehad died while its services ran, and the clean-up failed: " + why,
               deadline + kill_margin(t) / 2);
    return 1;
}

}  // namespace freeha
