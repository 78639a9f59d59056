#include "daemon/service_group.h"

#include "daemon/hook_path.h"
#include "daemon/process_tree.h"
#include "daemon/service_cgroup.h"

namespace freeha {

ServiceGroup::ServiceGroup(sd_event* event, Node& node, std::size_t index, const Config& config,
                           const GroupConfig& settings, Links links)
    : event_(event),
      node_(node),
      index_(index),
      settings_(settings),
      links_(std::move(links)),
      node_config_(config),
      lines_(settings.is_default() ? log::GroupLines() : log::GroupLines(settings.name)) {}

ServiceGroup::~ServiceGroup() = default;

std::string ServiceGroup::named(const std::string& text) const { return lines_.named(text); }

std::vector<log::Field> ServiceGroup::fields(std::vector<log::Field> fields) const {
    return lines_.fields(std::move(fields));
}

void ServiceGroup::log(int priority, const std::string& text) const { lines_.message(priority, text); }

int ServiceGroup::setup(const Config& config) {
    auto finished = [this](HookKind kind, const HookOutcome& outcome) {
        // The addresses go once the stop has ended, before the core hears of
        // it and may release the lease; whatever the outcome: a failed stop
        // leaves the services to the fence, never an address to a peer.
        if (kind == HookKind::Stop && addresses_) addresses_->down();
        links_.apply(node_.on_hook_finished(index_, kind, outcome, links_.now()));
    };
    auto killed = [this] { links_.apply(node_.on_services_killed(index_, links_.now())); };
    bool member = config.role == Role::Member;
    if (member && !target_mode()) {
        if (int r = setup_scope(config); r < 0) return r;
        // Checked here, not by main: a group whose hooks are missing stands
        // aside alone (check_available()), the other groups run.
        hooks_missing_ = check_group_hooks(config, settings_);
    }
    hooks_ = std::make_unique<HookRunner>(event_, settings_.hooks_directory, scope_.get(), finished, killed);
    if (!is_default()) hooks_->set_group(name());
    std::string error;
    if (int r = hooks_->init(&error); r < 0) {
        log::error(error);
        return r;
    }
    if (member) {
        addresses_ = std::make_unique<FloatingAddresses>(
            event_, settings_.addresses, settings_.announce_refresh,
            FloatingAddresses::Callbacks{
                [this](const std::string& why) { links_.apply(node_.on_services_failed(index_, why, links_.now())); },
                [this](const FloatingAddress& a, const std::string& mac) { on_address_conflict(a, mac); },
                [this] { sd_event_source_set_enabled(links_changed_source_.get(), SD_EVENT_ONESHOT); }});
        addresses_->set_lines(lines_);
        if (!settings_.addresses.empty())
            if (int r = open_addresses(); r < 0) return r;
        sd_event_source* s = nullptr;
        int r = sd_event_add_defer(event_, &s, on_address_failure, this);
        if (r >= 0) {
            address_failure_source_.reset(s);
            sd_event_source_set_enabled(s, SD_EVENT_OFF);
            r = sd_event_add_defer(event_, &s, on_links_changed, this);
        }
        if (r < 0) {
            log::error(log::with_errno("cannot create the daemon's event sources", r));
            return r;
        }
        links_changed_source_.reset(s);
        sd_event_source_set_enabled(s, SD_EVENT_OFF);
    }
    if (target_mode()) {
        units_ = std::make_unique<UnitController>(
            event_, settings_.target, config.fence_timeout,
            UnitController::Callbacks{
                finished,
                [this](const std::string& why) { links_.apply(node_.on_services_failed(index_, why, links_.now())); },
                [this](const std::string& what) { links_.apply(node_.on_services_seen(index_, what, links_.now())); },
                [this](const std::string& why) {
                    // systemd stops the target for us: it is bound to freehad.service.
                    links_.fatal(named(why + "; exiting so that systemd stops it (BindsTo=freehad.service)"));
                },
                killed,
                [this](const std::string& load_state) {
                    // A Target= systemd cannot load (not found, masked, broken) stands aside alone.
                    std::string missing;
                    if (load_state == "not-found")
                        missing = "Target=" + settings_.target + ": no such unit";
                    else if (load_state != "loaded")
                        missing = "Target=" + settings_.target + ": the unit cannot be loaded (LoadState=" +
                                  load_state + ")";
                    if (missing == target_missing_) return;
                    target_missing_ = missing;
                    if (begun_) check_available();
                }});
        units_->set_lines(lines_);
    }
    return 0;
}

// The fence must reach whatever a hook detached (setsid, double fork): the
// delegated cgroup under systemd, else freehad's process tree as a child
// subreaper. Quorum mode promises that a node cut off from the majority has
// stopped everything by its lease's end; without either it cannot, and says so.
// One group: every descendant of freehad is its; several: each keeps to its own (process_tree.h).
void ServiceGroup::keep_tree_to_own_processes() {
    if (tree_ != nullptr)
        tree_->keep_to(name(), [this](pid_t pid) { return links_.any_hook_watches(pid) && !watches(pid); });
}

int ServiceGroup::setup_scope(const Config& config) {
    std::string no_cgroup, no_tree;
    scope_ = ServiceCgroup::open(event_, ServiceCgroup::leaf_name(name()), &no_cgroup);
    if (!scope_) {
        if (auto reaper = links_.orphan_reaper(&no_tree)) {
            auto tree = std::make_unique<ProcessTree>(event_, std::move(reaper));
            tree_ = tree.get();
            scope_ = std::move(tree);
            if (!config.groups.empty()) keep_tree_to_own_processes();
        }
    }
    if (scope_) {
        log(LOG_INFO, "hooks and everything they start run in " + scope_->describe() + "; a fence kills all of it");
        if (!no_cgroup.empty()) log(LOG_INFO, "no cgroup for the services: " + no_cgroup);
        return 0;
    }
    std::string missing = "no complete fence: no cgroup for the services (" + no_cgroup + ") and no subreaper (" +
                          no_tree + ")";
    if (quorum_rules_apply(node_.settings())) {
        log(LOG_ERR, missing + "; a holder bound by a lease (ExpectedNodes>2 with NoQuorumPolicy=stop, or Backend=etcd) needs one");
        return -ENOTSUP;
    }
    log(LOG_WARNING, missing + ". A fence kills only the hook's process group, so a daemon a hook detached "
                               "(setsid, double fork) survives it; see freeha-safety(7)");
    return 0;
}

int ServiceGroup::open_addresses() {
    if (addresses_open_) return 0;
    if (int r = addresses_->open(); r < 0) {
        log(LOG_ERR, log::with_errno("Address=: cannot open the sockets that own and announce floating addresses "
                                     "(freehad needs CAP_NET_ADMIN, CAP_NET_RAW, AF_NETLINK and AF_PACKET)",
                                     r));
        return r;
    }
    addresses_open_ = true;
    return 0;
}

std::vector<AddressStatus> ServiceGroup::address_status() const {
    return addresses_ ? addresses_->status() : std::vector<AddressStatus>{};
}

bool ServiceGroup::addresses_up(AddressFailure failure) {
    // Opened: up() even for an empty list, so that a reload that adds an
    // address while the services run here puts it up at once.
    if (!addresses_ || !addresses_open_) return true;
    std::string error;
    if (int r = addresses_->up(&error); r < 0) {
        address_failure_why_ = "Address=: " + (error.empty() ? log::with_errno("cannot add an address", r) : error);
        address_failure_ = failure;
        log(LOG_ERR, address_failure_why_);
        sd_event_source_set_enabled(address_failure_source_.get(), SD_EVENT_ONESHOT);
        return false;
    }
    return true;
}

int ServiceGroup::on_address_failure(sd_event_source*, void* userdata) {
    return log::guarded("ServiceGroup::on_address_failure", [&]() -> int {
        auto* self = static_cast<ServiceGroup*>(userdata);
        Usec now = self->links_.now();
        if (self->address_failure_ == AddressFailure::FailsTheStart)
            self->links_.apply(self->node_.on_hook_finished(self->index_, HookKind::Start,
                                                            HookOutcome{false, self->address_failure_why_}, now));
        else
            self->links_.apply(self->node_.on_services_failed(self->index_, self->address_failure_why_, now));
        return 0;
    });
}

int ServiceGroup::on_links_changed(sd_event_source*, void* userdata) {
    return log::guarded("ServiceGroup::on_links_changed", [&]() -> int {
        static_cast<ServiceGroup*>(userdata)->check_available();
        return 0;
    });
}

void ServiceGroup::on_address_conflict(const FloatingAddress& address, const std::string& mac) {
    std::string text = "another host (MAC " + mac + ") answers for the floating address " + address.to_string() +
                       "; freehad keeps it and announces it again: find that host (an address configured by "
                       "hand, a machine outside the cluster)";
    log::event(LOG_WARNING, log::message_id::kAddressConflict, named(text),
               fields({{"FREEHA_NODE", node_config_.node_name},
                       {"FREEHA_ADDRESS", address_with_prefix(address)},
                       {"FREEHA_DEVICE", address.device},
                       {"FREEHA_FOREIGN_MAC", mac}}));
    links_.status_changed();
}

void ServiceGroup::run_hook(HookKind kind, Usec timeout, bool under_lease) {
    // The addresses first, so that the services can bind to them.
    if (kind == HookKind::Start && !addresses_up(AddressFailure::FailsTheStart)) return;
    if (units_)
        units_->run(kind, timeout);
    else
        hooks_->run(kind, timeout, hook_environment(node_config_, settings_, last_change_, under_lease));
}

void ServiceGroup::cancel(HookKind kind) {
    if (units_)
        units_->cancel(kind);
    else
        hooks_->cancel(kind);
}

void ServiceGroup::kill() {
    if (units_)
        units_->kill();
    else
        hooks_->kill_services();
    if (addresses_) addresses_->down();  // with the services, at the deadline, not after their stop
}

void ServiceGroup::state_changed(const effect::StateChanged& change) {
    // Services found running at start-up are kept without a starthasrv: their
    // addresses go up as they are claimed (after a start, they already are).
    if (change.to_phase == Phase::Running && addresses_ && !addresses_->is_up())
        addresses_up(AddressFailure::FailsTheServices);
    if (change.from != change.to) last_change_ = change;
}

void ServiceGroup::alert(const effect::StateChanged& change) {
    hooks_->alert(change.to, settings_.monitor_timeout, hook_environment(node_config_, settings_, change));
}

void ServiceGroup::maintenance_ended() {
    // An address lost meanwhile was not reported (nothing reacts in
    // maintenance); put back, and watched again.
    if (node_.group(index_).phase() == Phase::Running && addresses_ && addresses_->is_up())
        addresses_up(AddressFailure::FailsTheServices);
}

void ServiceGroup::remove_leftover_addresses(bool maintenance) {
    if (settings_.addresses.empty()) return;
    // In maintenance mode what runs here is the admin's, addresses included:
    // the node holds no lease, and no node takes the services meanwhile.
    if (maintenance) {
        log(LOG_NOTICE, "Address=: maintenance mode: floating addresses on this node are left as they are");
        return;
    }
    std::string error;
    int removed = remove_addresses(settings_.addresses, &error);
    if (removed < 0)
        log(LOG_ERR, "Address=: cannot remove what a previous run left: " + error);
    else if (removed > 0)
        log(LOG_WARNING, "Address=: removed " + std::to_string(removed) +
                             " floating address(es) that a previous run left on this node");
}

void ServiceGroup::check_available() {
    begun_ = true;
    std::string why = !hooks_missing_.empty() ? hooks_missing_ : target_missing_;
    bool device = why.empty();
    if (device && addresses_ && addresses_open_) why = addresses_->unready();
    if (why == unavailable_) return;
    if (why.empty())
        log(LOG_NOTICE, "this node can take the services again: " + unavailable_ + " no longer holds");
    else if (device)
        log(LOG_WARNING, "this node stands aside until its floating address's device is there: " + why);
    else if (!hooks_missing_.empty())
        log(LOG_WARNING, "this node stands aside until the hooks are there (then reload the configuration): " + why);
    else
        log(LOG_WARNING, "this node stands aside until the unit is there (then reload the configuration): " + why);
    unavailable_ = why;
    // With one group the node stands aside as a whole, as before groups (the core's heartbeat says so).
    links_.apply(node_.set_unavailable(index_, why, links_.now()));
}

std::string ServiceGroup::prepare_reload(const GroupConfig& reread) {
    if (addresses_ && !reread.addresses.empty() && open_addresses() < 0)
        return named("Address= needs sockets freehad cannot open (see the journal)");
    return "";
}

void ServiceGroup::reconfigure(const Config& config) {
    // A group no longer in the files keeps its settings for as long as the node runs it.
    if (const GroupConfig* settings = config.group(name())) settings_ = *settings;
    node_config_ = config;
    if (units_) {
        units_->set_fence_timeout(config.fence_timeout);  // how long a stop may wait for systemd
        units_->reread();  // the target may exist now (its LoadState comes back, check_available() follows)
    }
    if (config.role == Role::Member && !target_mode()) hooks_missing_ = check_group_hooks(config, settings_);
    if (addresses_) {
        // On the active node: the new addresses go up, the removed ones go,
        // the others stay as they are; the services do not move. One that
        // cannot go up is a failure of the services, as if it were removed.
        std::string error;
        int r = addresses_->reconfigure(settings_.addresses, settings_.announce_refresh, &error);
        // The first Address= of a node that already runs the services: they were started without any.
        Phase phase = node_.group(index_).phase();
        bool services_run_here = phase == Phase::StartingHook || phase == Phase::Running;
        if (r >= 0 && !addresses_->is_up() && addresses_open_ && services_run_here) r = addresses_->up(&error);
        if (r < 0) {
            log(LOG_ERR, "Address=: " + error);
            links_.apply(node_.on_services_failed(index_, "Address=: " + error, links_.now()));
        }
    }
    check_available();  // the new Address= lines may name other devices; the hooks may be there now
}

}  // namespace freeha
