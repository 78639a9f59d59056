// Hook sequencing: at most one service hook runs; the phase says which, and its end moves the phase on.
#include "core/group.h"
#include "core/node.h"

#include <array>

namespace freeha {

// The hook the phase runs, when none runs yet. Each of these phases is left
// when its hook ends, so "no hook running" means "not run yet".
std::optional<HookKind> Group::hook_wanted(Usec now) const {
    switch (phase_) {
    case Phase::InitialProbe: return HookKind::Monitor;
    case Phase::InitialCleanup: return HookKind::Stop;
    case Phase::StartingHook: return HookKind::Start;
    case Phase::Running:
        if (next_monitor_ && now >= *next_monitor_ && !node_.maintenance_.on) return HookKind::Monitor;
        return std::nullopt;
    case Phase::StoppingHook:
    case Phase::StoppingFenced:
    case Phase::StoppingCleanup: return HookKind::Stop;
    default: return std::nullopt;
    }
}

// Whether a running hook may go on in this phase; any other is canceled.
bool Group::hook_belongs(HookKind kind) const {
    switch (phase_) {
    case Phase::InitialProbe: return kind == HookKind::Monitor;
    case Phase::Running: return kind == HookKind::Monitor && !node_.maintenance_.on;
    case Phase::StartingHook: return kind == HookKind::Start;
    case Phase::StoppingKilled: return true;  // being killed: it ends on its own
    default: return kind == HookKind::Stop;  // a stop, or a clean-up of services found running here
    }
}

void Group::drive_hooks(Usec now, Effects& out) {
    if (hook_) {
        if (!hook_belongs(hook_->kind) && !hook_->canceled && !hook_->killed) {
            hook_->canceled = true;
            out.push_back(effect::CancelHook{hook_->kind, index_});
        }
        return;  // the next one runs when it has ended
    }
    if (auto kind = hook_wanted(now)) {
        if (*kind == HookKind::Monitor) next_monitor_.reset();
        run_hook(*kind, now, out);
    }
}

void Group::run_hook(HookKind kind, Usec now, Effects& out) {
    hook_ = RunningHook{kind, now};
    out.push_back(effect::RunHook{kind, index_});
}

Effects Group::on_hook_finished(HookKind kind, const HookOutcome& outcome, Usec now) {
    Effects out;
    if (!hook_ || hook_->kind != kind) return out;  // not ours to judge
    RunningHook ended = *hook_;
    hook_.reset();
    history_.hooks.at(static_cast<std::size_t>(kind)).count(now - ended.started, !outcome.success);
    if (ended.killed) {
        notice(out, effect::Notice{NoticeKind::HookFailed, node_.settings_.node_name,
                                     step_name(kind) + " killed with the services: the stop did not end by its deadline"});
    } else if (ended.canceled) {
        // The result of a canceled hook means nothing: the phase runs what it needs next.
    } else if (outcome.success) {
        hook_succeeded(kind, now, out);
    } else {
        hook_failed(kind, outcome, now, out);
    }
    node_.evaluate(now, out);
    return out;
}

std::string Group::step_name(HookKind kind) const {
    if (settings().services_target.empty()) return std::string(hook_name(kind));
    static constexpr std::array<std::string_view, kHookKindCount> kSteps{"the start of ", "the stop of ", "the check of "};
    return std::string(kSteps.at(static_cast<std::size_t>(kind))) + settings().services_target;
}

void Group::hook_succeeded(HookKind kind, Usec now, Effects& out) {
    switch (phase_) {
    case Phase::InitialProbe: claim_running_services(now, out); break;
    case Phase::InitialCleanup:
        set_phase(Phase::InitialListening, "start-up clean-up done; listening for the cluster", now, out);
        break;
    case Phase::StartingHook:
        set_phase(Phase::Running, step_name(kind) + " succeeded", now, out);
        next_monitor_ = now + settings().monitor_interval;
        break;
    case Phase::Running:
        probe_after_maintenance_ = false;
        next_monitor_ = now + settings().monitor_interval;
        break;
    case Phase::StoppingHook:
    case Phase::StoppingFenced:
    case Phase::StoppingCleanup: services_stopped(now, out); break;
    default: break;  // a clean-up of services found running here: nothing to move
    }
}

void Group::hook_failed(HookKind kind, const HookOutcome& outcome, Usec now, Effects& out) {
    std::string what = step_name(kind) + (settings().services_target.empty() ? " " : " failed: ") + outcome.description;
    switch (phase_) {
    case Phase::InitialProbe:  // nothing runs here (as expected): clean up anyway, as FreeHA did
        set_phase(Phase::InitialCleanup, "services not running here; cleaning up", now, out);
        break;
    case Phase::Running:
        if (probe_after_maintenance_) {  // stopped by hand in maintenance mode: no error
            stop_services(StopCause::Maintenance,
                          "maintenance mode off and " + what + ": the services do not run here; cleaning up", now, out);
            break;
        }
        [[fallthrough]];
    case Phase::StartingHook:
        notice(out, effect::Notice{NoticeKind::HookFailed, node_.settings_.node_name, what});
        fail_services(what, now, out);
        break;
    case Phase::StoppingHook:
    case Phase::StoppingFenced:
        // A failed stop may have left the services running, and once they
        // count as stopped this node releases every promise it holds: kill
        // what is left first (confirmed by the cgroup or systemd), then let
        // stophasrv clean up once more.
        notice(out, effect::Notice{NoticeKind::HookFailed, node_.settings_.node_name,
                                     what + "; killing whatever is left of the services"});
        kill_services(what, now, out);
        break;
    case Phase::InitialCleanup:
    case Phase::StoppingCleanup:
        // After a kill (or before anything ran here) stophasrv's status is
        // logged, never judged (FreeHA): the services count as stopped.
        notice(out, effect::Notice{NoticeKind::HookFailed, node_.settings_.node_name, what});
        hook_succeeded(kind, now, out);
        break;
    default: notice(out, effect::Notice{NoticeKind::HookFailed, node_.settings_.node_name, what}); break;
    }
}

}  // namespace freeha
