// Planned work: maintenance mode (cluster-wide, newest decision wins), leaving at a machine shutdown, and the wire version spoken.
#include "core/election.h"
#include "core/group.h"
#include "core/node.h"

namespace freeha {

std::uint8_t Node::wire_version() const {
    for (const auto& [name, p] : membership_.peers())
        if (p.reachable() && p.understands < wire::kVersion) return wire::kPreviousVersion;
    return wire::kVersion;
}

// --- maintenance mode -------------------------------------------------------

Effects Node::set_maintenance(bool on, Usec now, std::string* error) {
    Effects out;
    auto refuse = [&](std::string why) {
        *error = std::move(why);
        return out;
    };
    const char* mode = on ? "on" : "off";
    if (!started_ || exited_) return refuse("freehad is not running the cluster yet");
    if (shutting_down_) return refuse("this node is shutting down");
    if (maintenance_.on == on) return refuse(std::string("maintenance mode is already ") + mode);
    if (!quorate_)
        return refuse("this node has no quorum (" + std::to_string(live_votes()) + " of " +
                      std::to_string(expected_nodes()) + " nodes reachable, " +
                      std::to_string(quorum_votes_needed(expected_nodes())) +
                      " needed): a majority must agree on maintenance mode");
    for (const auto& [name, p] : membership_.peers()) {
        if (!p.reachable()) continue;
        if (p.understands < wire::kVersion)
            return refuse("node " + name + " runs an earlier release (wire version " +
                          std::to_string(p.wire_version) + ") that knows no maintenance mode: upgrade it first");
    }
    if (!on) {
        if (auto silent = unwatched_holder(now))
            return refuse("node " + *silent + " last said it runs the services and cannot be heard: start freehad "
                          "there first, else what it still runs could run beside the services another node starts");
    }
    for (const auto& g : groups_) {
        if (!g->handover_to().empty())
            return refuse("a switchover to " + g->handover_to() + " is under way: try again once it has ended");
        if (NodeState state = g->state(); state == NodeState::Starting || state == NodeState::Stopping)
            return refuse(std::string("this node is ") + (state == NodeState::Starting ? "starting" : "stopping") +
                      " the services: try again once that has ended");
    }
    for (const auto& [name, p] : membership_.peers()) {
        if (!p.reachable()) continue;
        if (!p.header().handover_to.empty())
            return refuse("a switchover from " + name + " to " + p.header().handover_to +
                          " is under way: try again once it has ended");
        if (p.announced() == NodeState::Starting || p.announced() == NodeState::Stopping)
            return refuse("node " + name + " is " + (p.announced() == NodeState::Starting ? "starting" : "stopping") +
                          " the services: try again once that has ended");
    }
    // Above every epoch known, so that this decision wins everywhere.
    std::uint64_t epoch = std::max(wall_estimate(now), maintenance_.epoch + 1);
    apply_maintenance(Maintenance{on, epoch}, std::string(), now, out);
    evaluate(now, out);
    return out;
}

void Node::learn_maintenance(const wire::Heartbeat& hb, Usec now, Effects& out) {
    if (hb.version < wire::kVersion || !started_) return;
    Maintenance theirs{(hb.flags & wire::kFlagMaintenance) != 0, hb.maintenance_epoch};
    bool newer = theirs.epoch > maintenance_.epoch ||
                 (theirs.epoch == maintenance_.epoch && theirs.on && !maintenance_.on);
    if (newer) apply_maintenance(theirs, hb.node, now, out);
}

void Node::apply_maintenance(Maintenance m, const std::string& source, Usec now, Effects& out) {
    bool was_on = maintenance_.on;
    maintenance_ = m;
    out.push_back(effect::MaintenanceChanged{m.on, m.epoch});
    if (was_on == m.on) return;  // a newer decision to the same effect
    std::string from = source.empty() ? "asked on this node" : "learned from node " + source;
    if (m.on) {
        out.push_back(effect::Notice{NoticeKind::MaintenanceChanged, settings_.node_name,
                                     "maintenance mode on (" + from +
                                         "): freehad starts, stops, monitors and fails over nothing until it is "
                                         "turned off"});
        for (auto& g : groups_) g->enter_maintenance(now, out);
    } else {
        out.push_back(effect::Notice{NoticeKind::MaintenanceChanged, settings_.node_name,
                                     "maintenance mode off (" + from +
                                         "): probing for the services, carrying on from what is found"});
        for (auto& g : groups_) g->leave_maintenance(now, out);
    }
    send_heartbeat(now, out);  // peers learn of it at once
}

void Node::in_maintenance(Command command, Usec now, Effects& out) {
    switch (command) {
    case Command::Stop:
    case Command::ForceStart:
    case Command::Leave: break;  // nothing starts or stops (the daemon says so)
    case Command::Shutdown:
        if (!maintenance_shared()) {
            shut_down("daemon shutting down; maintenance mode is not known to enough nodes to leave the services "
                      "running: they stop as outside it",
                      now, out);
            break;
        }
        shutting_down_ = true;
        leaves_services_ = true;
        if (any_group([](const Group& g) { return g.state() == NodeState::Stopping; }))
            break;  // a stop for the lease: it ends first
        // The services are left as they are, and the unit's clean-up leaves
        // them too. The last heartbeat says the node leaves, still holding
        // them: nobody starts them elsewhere until it is heard again.
        leaving_ = true;
        exited_ = true;
        send_heartbeat(now, out);
        out.push_back(effect::Exit{0, any_group([](const Group& g) { return g.holding() || g.hook_running(); })});
        break;
    case Command::ClearError:
        for (auto& g : groups_) g->clear_error(now, out);
        break;
    case Command::Standby:
    case Command::Unstandby:
        standby_ = command == Command::Standby;
        send_heartbeat(now, out);
        break;
    }
}

void Group::enter_maintenance(Usec now, Effects& out) {
    probe_after_maintenance_ = false;
    next_monitor_.reset();
    switch (phase_) {
    case Phase::InitialProbe:
    case Phase::InitialCleanup:
        set_phase(Phase::InitialListening, "maintenance mode: the start-up probe is dropped", now, out);
        break;
    case Phase::StartingPending:
        stop_services(StopCause::Maintenance, "maintenance mode: the claim is withdrawn", now, out);
        break;
    default: break;  // a start or stop under way runs to its end; a monitor running is canceled (drive_hooks)
    }
}

void Group::leave_maintenance(Usec now, Effects& out) {
    if (node_.settings_.role != Role::Member || error_latched_ || node_.shutting_down_) return;
    switch (phase_) {
    case Phase::Running:
        // The holder checks its services at once; if they are gone, it lets
        // them go (stophasrv cleans up) without latching an error.
        probe_after_maintenance_ = true;
        next_monitor_ = now;
        break;
    case Phase::Standby:
    case Phase::InitialListening:
        // As at start-up: INITIAL until the probe (and a clean-up when
        // nothing runs here) has ended, which holds every election back
        // until each node has said what it found.
        listen_until_ = std::max(listen_until_, now + node_.settings_.dead_time);
        init_deadline_ = listen_until_;
        set_phase(Phase::InitialProbe, "maintenance mode off: probing for the services", now, out);
        break;
    default: break;  // a start or stop under way: its end decides
    }
}

// Peers that know this node is in maintenance mode elect nothing while it is
// on, and wait for a holder that falls silent in it (unwatched_holder). A
// node that decided it while already cut off, or whose decision has not
// reached them, has no such peers: they fail over as soon as it falls silent,
// so its services must not outlive its daemon. Enough means what a claim
// needs: a majority, or both nodes of a two-node cluster (which fails over
// without one). A peer counts when it hears this node and announces the
// same decision.
bool Node::maintenance_shared() const {
    unsigned sharing = 1;
    for (const auto& [name, p] : membership_.peers())
        // (etcd: a peer whose member key exists learns of this node from etcd, not by hearing it.)
        if (p.reachable() && (etcd_ || p.hears(own_id_)) && p.maintenance.on &&
            p.maintenance.epoch == maintenance_.epoch)
            ++sharing;
    return sharing >= startup_votes_needed(expected_nodes());
}

std::optional<std::string> Node::unwatched_holder(Usec now) const {
    for (const auto& g : groups_)
        if (auto silent = g->unwatched_holder(now)) return silent;
    return std::nullopt;
}

std::optional<std::string> Group::unwatched_holder(Usec now) const {
    for (const auto& [name, p] : node_.membership_.peers()) {
        if (!holds_services(view_of(p).announced) || !p.maintenance.on) continue;
        // etcd: records are put when they change, not every interval; its member key is its life.
        if (!p.reachable() || (!node_.etcd_ && now >= p.last_heard + 2 * node_.settings_.interval)) return name;
    }
    return std::nullopt;
}

// --- leaving at a machine shutdown ------------------------------------------

void Node::leave(Usec now, Effects& out) {
    if (leaving_) return;
    leaving_ = true;
    shutting_down_ = true;
    if (maintenance_.on && maintenance_shared() &&
        !any_group([](const Group& g) { return g.state() == NodeState::Stopping; })) {
        // Nothing is handed over in maintenance mode: the services go down
        // with the machine, so the last heartbeat says this node holds nothing.
        // Peers that do not know the mode would start them at once: then
        // they are handed over as outside it (maintenance_shared).
        bool left = any_group([](const Group& g) { return g.holding() || g.hook_running(); });
        for (auto& g : groups_)
            if (g->holding()) g->set_phase(Phase::Standby, "the machine shuts down in maintenance mode", now, out);
        exited_ = true;
        send_heartbeat(now, out);
        out.push_back(effect::Exit{0, left});
        return;
    }
    for (auto& g : groups_) g->leave(now, out);
}

void Group::leave(Usec now, Effects& out) {
    if (handover_to_.empty() && (holding() || hook_)) handover_to_ = next_eligible_peer().value_or(std::string());
    std::string reason = "the machine shuts down" +
                         (handover_to_.empty() ? std::string() : ": handing the services to " + handover_to_);
    if (phase_ == Phase::StoppingExit) {
        services_stopped(now, out);  // stopped already, waiting for the others: hand over as a stopped group
    } else if (state() == NodeState::Stopping) {
        node_.send_heartbeat(now, out);  // the handover target, if it is new, learns of it now
    } else if (holding() || hook_) {
        stop_services(StopCause::Leave, std::move(reason), now, out);
    } else {
        services_stopped(now, out);
    }
}

void Node::leave_when_handed_over(Usec now, Effects& out) {
    if (!leaving_ || exited_ ||
        any_group([](const Group& g) { return g.holding() || g.hook_running() || !g.handover_to().empty(); }))
        return;
    exited_ = true;           // own_flags(): this is the last heartbeat, kFlagLeaving
    send_heartbeat(now, out);
    out.push_back(effect::Exit{0});
}

void Node::exit_when_stopped(const Group& last, Usec now, Effects& out) {
    if (exited_) return;
    // FreeHA: exit still announcing STOPPING; peers wait out the dead time.
    send_heartbeat(now, out);
    // In maintenance mode, the other groups' services are left as they are.
    bool left = any_group([&](const Group& g) {
        return &g != &last && g.phase() != Phase::StoppingExit && (g.holding() || g.hook_running());
    });
    out.push_back(effect::Exit{0, left});
    exited_ = true;
}

}  // namespace freeha
