#include "daemon/manager.h"

#include "build_config.h"

#include <algorithm>
#include <csignal>
#include <ctime>

#include "daemon/auth_key.h"
#include "daemon/hook_path.h"
#include "daemon/log.h"
#include "daemon/process_tree.h"
#include "daemon/self_fence.h"
#include "daemon/state_store.h"

namespace freeha {
namespace {

constexpr Usec kTimerAccuracy = 1 * kUsecPerMsec;
// Every second a fresh snapshot goes to the D-Bus API (its LastHeardUSec,
// Packets and LeaseRemainingUSec move on) and is compared with what the
// status files say; they are rewritten only when a fact changed, or at the
// slow refresh for the ages and counters (freeha-status(5)). Rewriting them
// every second was most of an idle node's CPU time (issue 19).
constexpr Usec kStatusRefresh = 1 * kUsecPerSec;
constexpr Usec kStatusFileRefresh = 10 * kUsecPerSec;
// Slack of the refresh timer: at least an Interval= of the defaults, so that
// it is dispatched in the wake-up of a heartbeat instead of one of its own.
constexpr Usec kStatusRefreshAccuracy = 250 * kUsecPerMsec;
// Headroom on top of the stop hook's own bound when extending systemd's stop timeout.
constexpr Usec kStopTimeoutMargin = 5 * kUsecPerSec;
// How long a node that holds nothing waits, at SIGTERM, for systemd to say
// whether the machine shuts down, before it exits as after a plain stop.
constexpr Usec kShutdownQueryWait = 250 * kUsecPerMsec;

std::string_view notice_message_id(NoticeKind k) {
    switch (k) {
    case NoticeKind::PeerTimedOut: return log::message_id::kPeerTimedOut;
    case NoticeKind::QuorumGained: return log::message_id::kQuorumGained;
    case NoticeKind::QuorumLost: return log::message_id::kQuorumLost;
    case NoticeKind::Takeover: return log::message_id::kTakeover;
    case NoticeKind::DualActiveResolved: return log::message_id::kDualActiveResolved;
    case NoticeKind::HookFailed: return log::message_id::kHookFailed;
    case NoticeKind::UnexpectedServices: return log::message_id::kUnexpectedServices;
    case NoticeKind::LeaseLost: return log::message_id::kLeaseLost;
    case NoticeKind::PeerLeft: return log::message_id::kPeerLeft;
    case NoticeKind::MaintenanceChanged: return log::message_id::kMaintenanceChanged;
    case NoticeKind::LinkLossy: return log::message_id::kLinkLossy;
    case NoticeKind::LinkRecovered: return log::message_id::kLinkRecovered;
    default: return {};
    }
}

int notice_priority(NoticeKind k) {
    switch (k) {
    case NoticeKind::PeerJoined:
    case NoticeKind::PeerRestarted:
    case NoticeKind::PeerRefusalEnded:
    case NoticeKind::PeerLeft:
    case NoticeKind::QuorumGained: return LOG_INFO;
    case NoticeKind::MaintenanceChanged: return LOG_NOTICE;
    case NoticeKind::Takeover: return LOG_NOTICE;
    case NoticeKind::LinkRecovered: return LOG_NOTICE;
    case NoticeKind::DuplicateNodeName:
    case NoticeKind::UnexpectedServices: return LOG_ERR;
    default: return LOG_WARNING;
    }
}

std::string notice_text(const effect::Notice& n) {
    switch (n.kind) {
    case NoticeKind::PeerJoined: return "node " + n.peer + " joined (" + n.text + ")";
    case NoticeKind::PeerTimedOut: return "node " + n.peer + " timed out: " + n.text;
    case NoticeKind::PeerRestarted: return "node " + n.peer + " restarted (" + n.text + ")";
    case NoticeKind::QuorumGained: return "quorum gained: " + n.text;
    case NoticeKind::QuorumLost: return "quorum lost: " + n.text;
    case NoticeKind::Takeover: return "taking over the services: " + n.text;
    case NoticeKind::DualActiveResolved: return "dual-active resolved: " + n.text;
    case NoticeKind::HookFailed: return "hook failed: " + n.text;
    case NoticeKind::StartupWaitExpired: return "start-up wait: " + n.text;
    case NoticeKind::DuplicateNodeName: return "node name " + n.peer + " in use elsewhere: " + n.text;
    case NoticeKind::UnexpectedServices: return "services started behind freehad's back: " + n.text;
    case NoticeKind::LeaseLost: return "lease lost: " + n.text;
    case NoticeKind::PeerRefused: return "refusing the heartbeats of node " + n.peer + ": " + n.text;
    case NoticeKind::PeerRefusalEnded: return "no longer refusing the heartbeats of node " + n.peer + ": " + n.text;
    case NoticeKind::PeerLeft: return "node " + n.peer + " left: " + n.text;
    case NoticeKind::MaintenanceChanged: return n.text;
    case NoticeKind::UnknownWireVersion: return n.text;
    case NoticeKind::LinkLossy:
        return "heartbeats of node " + n.peer + " on channel '" + n.channel + "' are being lost: " + n.text;
    case NoticeKind::LinkRecovered:
        return "heartbeats of node " + n.peer + " on channel '" + n.channel + "' arrive again: " + n.text;
    case NoticeKind::UnknownPreferredNode: return "Nodes= names node " + n.peer + ", but " + n.text;
    }
    return n.text;
}

// The node's settings at start: the configuration, and the horizon of the previous run's promises.
NodeSettings first_settings(const Config& config, std::uint64_t incarnation, auth::KeySet auth_keys,
                            Usec promise_horizon) {
    NodeSettings s = node_settings(config, incarnation, std::move(auth_keys));
    s.previous_dead_time = promise_horizon;
    s.release = FREEHA_VERSION;
    return s;
}

}  // namespace

Manager::Manager(Config config, CommandLine cmdline, auth::KeySet auth_keys, std::uint64_t incarnation,
                 std::string state_directory, Usec promise_horizon)
    : config_(std::move(config)),
      cmdline_(std::move(cmdline)),
      state_directory_(std::move(state_directory)),
      node_(first_settings(config_, incarnation, std::move(auth_keys), promise_horizon)),
      status_writer_(config_.json_file, config_.state_file),
      stored_horizon_(std::max(promise_horizon, config_.dead_time)),
      longest_dead_time_(config_.dead_time) {}

Manager::~Manager() = default;

Usec Manager::now() const {
    std::uint64_t t = 0;
    sd_event_now(event_.get(), CLOCK_MONOTONIC, &t);
    return Usec(t);
}

int Manager::setup() {
    int r = setup_loop();
    if (r >= 0) r = config_.backend == Backend::Etcd ? setup_etcd() : setup_channels();
    if (r >= 0) r = setup_services();
    if (r >= 0) r = setup_timers();
    if (r >= 0 && config_.bus != BusKind::None) setup_bus();
    return r;
}

int Manager::setup_loop() {
    sd_event* raw = nullptr;
    int r = sd_event_default(&raw);
    if (r < 0) {
        log::error(log::with_errno("cannot create the event loop", r));
        return r;
    }
    event_.reset(raw);
    // main() blocked these (and SIGCHLD, which sd_event_add_child needs)
    // first thing, so a signal in the first milliseconds waits for us here.
    for (int signo : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) {
        sd_event_source* s = nullptr;
        r = sd_event_add_signal(event_.get(), &s, signo, on_signal_cb, this);
        if (r < 0) {
            log::error(log::with_errno("cannot handle " + log::signal_name(signo), r));
            return r;
        }
        signal_sources_.emplace_back(s);
    }
    arm_watchdog();
    return 0;
}

void Manager::arm_watchdog() {
    Usec allowed = max_watchdog(config_.interval, config_.dead_time);
    std::optional<Usec> period = notifier_.set_watchdog(allowed);
    if (!period) return;
    bool changed = *period != watchdog_ping_every_ * 3;
    if (changed && *period < *notifier_.unit_watchdog())
        log::info("watchdog: WatchdogSec=" + format_timespan(*notifier_.unit_watchdog()) + " lowered to " +
                  format_timespan(*period) + ", what DeadTime= less 2 x Interval= allows (freeha-safety(7))");
    // A ping every third of the period, so that a loop that runs is never
    // taken for a hung one, whatever the timer's slack.
    watchdog_ping_every_ = *period / 3;
    if (!watchdog_timer_) {
        sd_event_source* s = nullptr;
        int r = sd_event_add_time_relative(event_.get(), &s, CLOCK_MONOTONIC, 0, (watchdog_ping_every_ / 4).count(),
                                           on_watchdog_timer, this);
        if (r < 0) {
            log::warning(log::with_errno("cannot send watchdog pings; the unit's watchdog will end freehad", r));
            return;
        }
        watchdog_timer_.reset(s);
        sd_event_source_set_description(s, "watchdog");
    } else if (changed) {
        // A reload: the next ping follows the new period, not the old one
        // (a lowered watchdog would end freehad before the old one is due).
        sd_event_source_set_time_relative(watchdog_timer_.get(), watchdog_ping_every_.count());
        sd_event_source_set_enabled(watchdog_timer_.get(), SD_EVENT_ONESHOT);
    }
    sd_event_source_set_time_accuracy(watchdog_timer_.get(), (watchdog_ping_every_ / 4).count());
}

int Manager::on_watchdog_timer(sd_event_source* s, uint64_t, void* userdata) {
    auto* self = static_cast<Manager*>(userdata);
    self->notifier_.ping();
    sd_event_source_set_time_relative(s, self->watchdog_ping_every_.count());
    sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
    return 0;
}

int Manager::setup_channels() {
    for (std::size_t i = 0; i < config_.channels.size(); ++i) {
        std::string error;
        auto channel = UdpChannel::open(
            config_.channels[i], config_.port, i, event_.get(),
            [this](std::span<const std::uint8_t> datagram, std::size_t index) {
                apply(node_.on_datagram(datagram, index, now()));
                // on_post, which re-arms the timer too, waits while a backlog lasts.
                arm_core_timer();
            },
            &error);
        if (!channel) {
            log::error(error);
            return -EADDRNOTAVAIL;
        }
        channels_.push_back(std::move(channel));
    }
    return 0;
}

int Manager::setup_etcd() {
    EtcdBackendSettings s;
    s.session.endpoints = config_.etcd_endpoints;
    s.tls = EtcdTls{config_.etcd_ca_file, config_.etcd_cert_file, config_.etcd_key_file};
    s.prefix = effective_etcd_prefix(config_);
    s.session.dead_time = config_.dead_time;
    s.session.interval = config_.interval;
    etcd_keys_ = etcd::KeyLayout(s.prefix);
    std::string error;
    etcd_ = EtcdBackend::create(
        event_.get(), std::move(s),
        EtcdBackend::Listener{
            [this] {
                const etcd::Session& session = etcd_->session();
                apply(node_.on_etcd_lease(session.lease_id().value_or(0), session.lease_until(), now()));
                arm_core_timer();
            },
            [this](const etcd::Event& e) { on_etcd_event(e); },
            [this](const std::vector<std::string>&) { on_etcd_view(); },
            [this](const std::string& failure) {
                log::warning("etcd watch: " + failure);
                status_dirty_ = true;  // counted in the status at once
            }},
        &error);
    if (!etcd_) {
        log::error("etcd: " + error);
        return -EINVAL;
    }
    return 0;
}

void Manager::on_etcd_event(const etcd::Event& e) {
    switch (e.kind) {
    case etcd::EventKind::LeaseGranted: log::info("etcd: lease granted"); break;
    case etcd::EventKind::LeaseLost: log::warning("etcd: lease lost: " + e.detail); break;
    case etcd::EventKind::CallFailed:
        log::warning("etcd: " + e.detail);
        status_dirty_ = true;  // counted in the status at once
        break;
    case etcd::EventKind::Released: break;  // asked for by the core, which has moved on
    case etcd::EventKind::Repaired: log::warning("etcd: " + e.detail); break;
    case etcd::EventKind::ClusterMarked:
        if (e.detail != config_.cluster_name && !etcd_conflict_logged_) {
            etcd_conflict_logged_ = true;
            log::error("etcd: the prefix " + etcd_keys_.prefix() + " belongs to cluster '" + e.detail +
                       "' (its key " + e.key + "), not '" + config_.cluster_name +
                       "': give each cluster its own [Etcd] Prefix=; no services start here meanwhile");
        }
        break;
    case etcd::EventKind::ClaimWon:
    case etcd::EventKind::ClaimRefused: {
        std::optional<std::string> group = etcd_keys_.holder_group(e.key);
        if (!group) break;  // (the session claims holder keys alone)
        apply(node_.on_etcd_claim(*group, e.kind == etcd::EventKind::ClaimWon, e.detail, now()));
        arm_core_timer();
        break;
    }
    }
}

void Manager::on_etcd_view() {
    if (!etcd_->watch().synced()) return;  // a view that may lag behind tells the core nothing
    apply(node_.on_etcd_view(etcd::read_view(etcd_keys_, etcd_->watch().view()), now()));
    arm_core_timer();
}

int Manager::setup_services() {
    group_links_ = ServiceGroup::Links{
        [this](Effects effects) { apply(std::move(effects)); },
        [this] { return now(); },
        [this](pid_t pid) {
            for (const auto& g : groups_)
                if (g->watches(pid)) return true;
            return false;
        },
        [this](const std::string& why) {
            log::error(why);
            sd_event_exit(event_.get(), 1);
        },
        [this] { status_dirty_ = true; },
        [this](std::string* why) {
            std::shared_ptr<OrphanReaper> reaper = orphan_reaper_.lock();
            if (!reaper) orphan_reaper_ = reaper = OrphanReaper::open(event_.get(), group_links_.any_hook_watches, why);
            return reaper;
        }};
    group_phases_.assign(node_.group_count(), Phase::InitialProbe);
    for (std::size_t i = 0; i < node_.group_count(); ++i) {
        groups_.push_back(std::make_unique<ServiceGroup>(event_.get(), node_, i, config_, *config_.all_groups().at(i),
                                                         group_links_));
        if (int r = groups_.back()->setup(config_); r < 0) return r;
    }
    return 0;
}

std::string Manager::add_groups(const Config& reread) {
    std::vector<std::unique_ptr<ServiceGroup>> added;
    for (const GroupConfig* settings : reread.all_groups()) {
        bool known = std::any_of(groups_.begin(), groups_.end(), [&](const auto& g) { return g->name() == settings->name; });
        if (known) continue;
        // Hooks or a target missing: it stands aside alone, as at start-up (check_available()).
        // The core appends the groups it lacks in this same order (Node::reconfigure).
        auto g = std::make_unique<ServiceGroup>(event_.get(), node_, groups_.size() + added.size(), reread, *settings,
                                                group_links_);
        if (g->setup(reread) < 0) return "[Group " + settings->name + "] cannot be set up here (see the journal)";
        // Target mode: systemd is driven over the connection that is up, else from its next one.
        if (std::string error; g->units() && units_bus_connection_ && g->units()->attach(units_bus_connection_, &error) < 0)
            log::error(error);
        added.push_back(std::move(g));
    }
    for (auto& g : added) {
        g->log(LOG_NOTICE, "group added by the reload: it probes for its services, then joins the election");
        groups_.push_back(std::move(g));
        group_phases_.push_back(Phase::InitialProbe);
    }
    // A node of one group whose fence held every descendant of freehad: now
    // it must spare the added groups' processes.
    if (groups_.size() > 1)
        for (auto& g : groups_) g->keep_tree_to_own_processes();
    return "";
}

void Manager::remove_group(const effect::GroupRemoved& removed) {
    groups_.at(removed.group)->log(LOG_NOTICE, "group removed by a reload: its services are stopped here");
    // Destroyed from on_post(), not here: this may run inside one of its own callbacks.
    removed_groups_.push_back(std::move(groups_[removed.group]));
    groups_.erase(groups_.begin() + static_cast<std::ptrdiff_t>(removed.group));
    group_phases_.erase(group_phases_.begin() + static_cast<std::ptrdiff_t>(removed.group));
    for (std::size_t i = removed.group; i < groups_.size(); ++i) groups_[i]->set_index(i);
}

bool Manager::holds_any() const {
    for (std::size_t i = 0; i < node_.group_count(); ++i)
        if (node_.group(i).holding()) return true;
    return false;
}

bool Manager::any_group_in_mode(bool target_mode) const {
    return std::any_of(groups_.begin(), groups_.end(),
                       [&](const auto& g) { return g->target_mode() == target_mode; });
}

int Manager::setup_timers() {
    sd_event_source* s = nullptr;
    // Armed only when the node has a deadline (arm_core_timer): a timer with
    // none would fire on every loop iteration and starve everything else.
    int r = sd_event_add_time(event_.get(), &s, CLOCK_MONOTONIC, UINT64_MAX, kTimerAccuracy.count(), on_core_timer,
                              this);
    if (r >= 0) {
        core_timer_.reset(s);
        sd_event_source_set_description(s, "core-timer");
        // Ahead of the heartbeat sockets: a due send or deadline never waits behind a receive backlog.
        r = sd_event_source_set_priority(s, kCoreTimerPriority);
        if (r >= 0) r = sd_event_source_set_enabled(s, SD_EVENT_OFF);
    }
    if (r >= 0)
        r = sd_event_add_time_relative(event_.get(), &s, CLOCK_MONOTONIC, kStatusRefresh.count(),
                                       kStatusRefreshAccuracy.count(), on_status_timer, this);
    if (r >= 0) {
        status_timer_.reset(s);
        r = sd_event_add_post(event_.get(), &s, on_post, this);
    }
    if (r < 0) {
        log::error(log::with_errno("cannot create the daemon's timers", r));
        return r;
    }
    post_.reset(s);
    return 0;
}

void Manager::setup_bus() {
    api_ = std::make_unique<ApiThread>(
        event_.get(), config_.bus,
        [this](const BusRequest& request) {
            std::optional<std::string> refused = handle(request);
            // Published before the answer, so that the caller then reads what it
            // changed; a request may change what no effect reports (the standby flag).
            status_dirty_ = true;
            flush_status();
            return refused;
        },
        [this](const std::string& why) { bus_fatal(why); });
    if (api_->start(std::make_shared<const Status>(snapshot())) < 0) api_.reset();  // logged; the HA function goes on
    // Only a daemon under a manager can be told of its machine's shutdown;
    // without the bus (--no-bus), every stop is a plain one.
    shutdown_watch_ = std::make_unique<ShutdownWatch>(
        config_.bus, [this](const std::string& how) { on_machine_shutdown(how); }, [this] { stop_and_exit(); });
    bool target_mode = any_group_in_mode(/*target_mode=*/true);
    units_bus_ = std::make_unique<BusConnection>(
        event_.get(), config_.bus, kUnitControlBusName,
        target_mode ? "the control of systemd" : "the watch for a machine shutdown (a reboot is then a plain stop)",
        BusConnection::Callbacks{[this](sd_bus* bus) {
                                     units_bus_connection_ = bus;
                                     std::string error;
                                     for (auto& g : groups_) {
                                         if (g->units() && g->units()->attach(bus, &error) < 0) log::error(error);
                                         error.clear();
                                     }
                                     if (shutdown_watch_->attach(bus, &error) < 0) log::info(error);
                                 },
                                 [this] {
                                     // Target mode starts once systemd can be reached.
                                     if (any_group_in_mode(/*target_mode=*/true) && !begun_) begin();
                                 },
                                 [this] {
                                     units_bus_connection_ = nullptr;
                                     for (auto& g : groups_)
                                         if (g->units()) g->units()->detach();
                                     shutdown_watch_->detach();
                                 },
                                 [this](const std::string& why) { bus_fatal(why); }});
    if (!target_mode) units_bus_->set_optional();
    units_bus_->start();
}

void Manager::bus_fatal(const std::string& why) {
    log::error(why);
    exit_code_ = 1;
    shut_down(1);
}

void Manager::on_machine_shutdown(const std::string& how) {
    if (!begun_) {
        log::notice("the machine shuts down (" + how + ") before freehad has started: nothing to hand over");
        return;
    }
    // One line for what this node does about it; the core's state change
    // that follows names the node the services go to.
    std::string doing;
    if (node_.maintenance().on)
        doing = "maintenance mode: nothing is handed over, the services go down with the machine";
    else if (!node_.handover_to().empty())
        doing = "the switchover to " + node_.handover_to() + " under way ends first, then this node leaves";
    else if (node_.state() == NodeState::Stopping)
        doing = "the stop under way ends first, then the services go to the next node and this node leaves";
    else if (node_.state() == NodeState::Running || node_.state() == NodeState::Starting)
        doing = "handing the services to the next node instead of leaving the peers a dead time to notice";
    else
        doing = "telling the peers that this node leaves, so that no one waits for it";
    log::notice("the machine shuts down (" + how + "): " + doing);
    shutdown_query_timer_.reset();  // a SIGTERM that waited for this answer
    notifier_.stopping();
    apply(node_.on_command(Command::Leave, now()));
}

void Manager::stop_and_exit() {
    if (!shutdown_query_timer_) return;  // SIGTERM's stop is already under way (or a Leave)
    shutdown_query_timer_.reset();
    apply(node_.on_command(Command::Shutdown, now()));
}

int Manager::on_shutdown_query_expired(sd_event_source*, uint64_t, void* userdata) {
    return log::guarded("Manager::on_shutdown_query_expired", [&]() -> int {
        log::info("systemd did not say within " + format_timespan(kShutdownQueryWait) +
                  " whether the machine shuts down: a plain stop");
        static_cast<Manager*>(userdata)->stop_and_exit();
        return 0;
    });
}

void Manager::shut_down(int code) {
    if (code != 0) exit_code_ = code;
    if (!begun_) {
        // Nothing was started: there is nothing to stop.
        sd_event_exit(event_.get(), exit_code_);
        return;
    }
    notifier_.stopping();
    // systemd's stop of freehad may come before its JobNew for the shutdown
    // is read: ask once. Services that run stop at once, and the core
    // upgrades the stop if the answer is a shutdown. A node that holds
    // nothing would exit at once, announcing a plain stop: it waits for the
    // answer (kShutdownQueryWait at most) so that its peers learn it leaves.
    bool asked = code == 0 && shutdown_watch_ && !shutdown_query_timer_ && shutdown_watch_->check_queued_jobs();
    if (asked && !holds_any()) {
        sd_event_source* s = nullptr;
        if (sd_event_add_time_relative(event_.get(), &s, CLOCK_MONOTONIC, kShutdownQueryWait.count(),
                                       kTimerAccuracy.count(), on_shutdown_query_expired, this) >= 0) {
            shutdown_query_timer_.reset(s);
            return;
        }
    }
    apply(node_.on_command(Command::Shutdown, now()));
}

int Manager::run() {
    if (setup() < 0) return 1;
    // Scripts mode starts now; target mode once the bus answers.
    if (!any_group_in_mode(/*target_mode=*/true) || config_.bus == BusKind::None) begin();
    int r = sd_event_loop(event_.get());
    if (r < 0) {
        log::error(log::with_errno("event loop failed", r));
        return 1;
    }
    return r;
}

void Manager::begin() {
    begun_ = true;
    std::string membership = etcd_ ? "etcd at " + std::to_string(config_.etcd_endpoints.size()) +
                                         " endpoint(s), keys under " + etcd_keys_.prefix()
                                   : std::to_string(config_.expected_nodes) + " nodes expected, " +
                                         std::to_string(channels_.size()) + " channel(s)";
    log::notice("freehad " + config_.node_name + " starting in cluster '" + config_.cluster_name + "' (" + membership +
                ", interval " + format_timespan(config_.interval) + ", dead time " + format_timespan(config_.dead_time) +
                ")");
    if (config_.force_start) log::warning("-m: force-starting the services without checking the other nodes");
    std::string unreadable;
    if (auto m = stored_maintenance(state_directory_, &unreadable)) {
        node_.keep_maintenance(*m);
        if (m->on)
            log::notice("maintenance mode is on, as before the restart: freehad starts, stops and monitors nothing "
                        "until freehactl maintenance off");
    }
    if (!unreadable.empty()) log::warning(unreadable + "; maintenance mode is learned from the other nodes");
    if (standby_stored(state_directory_)) {
        log::notice("staying in standby, as requested before the restart; freehactl unstandby ends it");
        node_.keep_standby();
    }
    if (any_group_in_mode(/*target_mode=*/false) && config_.role == Role::Member) {
        runtime_directory_ = unit_runtime_directory();
        if (!runtime_directory_.empty() && read_services_marker(runtime_directory_, {config_.dead_time, config_.interval}))
            services_marker_ = inherited_marker_ = true;
    }
    // Whatever a previous run left (its clean-up failed, or freehad was
    // killed outside its unit): this node holds no lease yet, so no floating
    // address may be here.
    for (auto& g : groups_) g->remove_leftover_addresses(node_.maintenance().on);
    // Before the first heartbeat, which says which groups this node stands aside for.
    for (auto& g : groups_) g->check_available();
    notifier_.ready();  // the sockets are bound (target mode: and systemd can be reached)
    apply(node_.start(now(), config_.force_start));
    if (etcd_) {
        etcd_->mark_cluster(etcd_keys_.cluster_key(), config_.cluster_name);
        etcd_->start();
    }
    // Once the previous run's promises have run out, only this run's
    // DeadTime= values matter: a lowered horizon shortens the next restart's wait.
    if (stored_horizon_ > longest_dead_time_) {
        sd_event_source* s = nullptr;
        int r = sd_event_add_time(event_.get(), &s, CLOCK_MONOTONIC, (now() + stored_horizon_).count(),
                                  kUsecPerSec.count(), on_horizon_passed, this);
        if (r < 0)
            log::warning(log::with_errno("cannot arm the promise horizon's timer; keeping " +
                                             format_timespan(stored_horizon_) + " for the next start",
                                         r));
        else
            horizon_timer_.reset(s);
    }
    flush_status();
}

// --- effects ----------------------------------------------------------------

void Manager::apply(Effects effects) {
    kill_first(effects);
    for (auto& e : effects) {
        std::visit(
            [this](auto& x) {
                using T = std::decay_t<decltype(x)>;
                if constexpr (std::is_same_v<T, effect::SendHeartbeat>) {
                    send(x.datagram);
                    return;  // routine: the status needs no rewrite for it
                } else if constexpr (std::is_same_v<T, effect::RunHook>) {
                    run_hook(x.group, x.kind);
                    // A check shows only in the hook runs, no fact (same_facts()): the next
                    // refresh carries it. With 64 groups, a snapshot per check was a tenth of the CPU time.
                    if (x.kind == HookKind::Monitor) return;
                } else if constexpr (std::is_same_v<T, effect::CancelHook>) {
                    ServiceGroup& g = *groups_.at(x.group);
                    g.cancel(x.kind);
                    g.log(LOG_INFO, std::string(hook_name(x.kind)) + " canceled");
                } else if constexpr (std::is_same_v<T, effect::KillServices>) {
                    // Kill first, log after; the core's phase change, logged next, says why.
                    ServiceGroup& g = *groups_.at(x.group);
                    g.kill();
                    g.log(LOG_WARNING, "killing the services with SIGKILL");
                } else if constexpr (std::is_same_v<T, effect::StateChanged>) {
                    apply_state_change(x);
                } else if constexpr (std::is_same_v<T, effect::PeerStateChanged>) {
                    log::info("node " + x.peer + ": " + std::string(to_string(x.from)) + " -> " +
                              std::string(to_string(x.to)) + " (term " + std::to_string(x.term) + ")");
                } else if constexpr (std::is_same_v<T, effect::Notice>) {
                    apply_notice(x);
                } else if constexpr (std::is_same_v<T, effect::EtcdClaim>) {
                    if (etcd_) etcd_->claim(etcd_keys_.holder_key(x.group), node_.settings().node_name);
                } else if constexpr (std::is_same_v<T, effect::EtcdRelease>) {
                    if (etcd_) etcd_->release(etcd_keys_.holder_key(x.group));
                } else if constexpr (std::is_same_v<T, effect::GroupRemoved>) {
                    remove_group(x);
                } else if constexpr (std::is_same_v<T, effect::SelfFence>) {
                    self_fence(config_.self_fence, groups_.at(x.group)->named(x.reason), x.lease_end);
                } else if constexpr (std::is_same_v<T, effect::MaintenanceChanged>) {
                    maintenance_unsaved_ = store_maintenance(state_directory_, Maintenance{x.on, x.epoch});
                    if (!maintenance_unsaved_.empty())
                        log::warning(std::string("maintenance mode ") + (x.on ? "on" : "off") +
                                     " not saved: " + maintenance_unsaved_ + "; after a restart of freehad this "
                                     "node learns it from the other nodes");
                    if (!x.on)
                        for (auto& g : groups_) g->maintenance_ended();
                } else if constexpr (std::is_same_v<T, effect::Exit>) {
                    // The stop is confirmed, nothing ran, or (maintenance mode)
                    // the services are the admin's: the unit's clean-up leaves them.
                    set_services_marker(false);
                    if (x.services_left)
                        log::notice("maintenance mode: the services were left running as they are, floating "
                                    "addresses included; freehad --clean-up leaves them too");
                    if (shutdown_watch_) shutdown_watch_->release();  // logind may carry on with a shutdown
                    log::notice("freehad " + config_.node_name + " exiting");
                    int code = exit_code_ != 0 ? exit_code_ : x.code;
                    if (etcd_) {
                        // The lease goes back at once, and every key on it: no node
                        // waits out a TTL for this one (nothing of its services runs).
                        etcd_->revoke([this, code] { sd_event_exit(event_.get(), code); });
                        return;
                    }
                    sd_event_exit(event_.get(), code);
                }
                status_dirty_ = true;
            },
            e);
    }
}

void Manager::send(const std::vector<std::uint8_t>& datagram) {
    // etcd: the heartbeat is this node's member record (the core sends it when what it says changes).
    if (etcd_) etcd_->publish(etcd_keys_.member_key(node_.settings().node_name), std::string(datagram.begin(), datagram.end()));
    for (auto& ch : channels_) ch->send(datagram);
}

void Manager::run_hook(std::size_t group, HookKind kind) {
    ServiceGroup& g = *groups_.at(group);
    const GroupConfig& settings = g.settings();
    Usec timeout = kind == HookKind::Start  ? settings.start_timeout
                   : kind == HookKind::Stop ? settings.stop_timeout
                                            : settings.monitor_timeout;
    // systemd must not SIGKILL us while stophasrv still runs at shutdown.
    if (kind == HookKind::Stop && node_.shutting_down())
        notifier_.extend_timeout(timeout + kHookKillGrace + kStopTimeoutMargin);
    // FREEHA_LEASE=held: no cluster node can still run this group (Node::under_enforced_lease(), per group).
    // By name: the core may have removed a group before it (effect::GroupRemoved, applied after this).
    const Group* core = node_.find_group(g.name());
    bool under_lease = core != nullptr && core->lease_enforced() &&
                       (node_.etcd_backend() ||
                        quorum_rules_apply(node_.expected_nodes(), node_.settings().no_quorum_policy));
    g.run_hook(kind, timeout, under_lease);
}

void Manager::apply_state_change(const effect::StateChanged& change) {
    ServiceGroup& g = *groups_.at(change.group);
    track_services_marker(change);
    g.state_changed(change);  // addresses of found-running services
    std::string phases = " (" + std::string(to_string(change.from_phase)) + " -> " +
                         std::string(to_string(change.to_phase)) + ")";
    if (change.from == change.to) {
        // A step within a state (a claim starting, a stop being fenced or killed): no alert, no MESSAGE_ID.
        g.log(LOG_INFO, "phase " + std::string(to_string(change.from_phase)) + " -> " +
                            std::string(to_string(change.to_phase)) + ": " + change.reason);
        return;
    }
    std::string text = "state " + std::string(to_string(change.from)) + " -> " + std::string(to_string(change.to)) +
                       ": " + change.reason + phases;
    log::event(change.to == NodeState::Errored ? LOG_ERR : LOG_NOTICE, log::message_id::kStateChanged, g.named(text),
               g.fields({{"FREEHA_NODE", config_.node_name},
                         {"FREEHA_STATE", std::string(to_string(change.to))},
                         {"FREEHA_OLD_STATE", std::string(to_string(change.from))},
                         {"FREEHA_PHASE", std::string(to_string(change.to_phase))},
                         {"FREEHA_TERM", std::to_string(change.term)},
                         {"FREEHA_ACTIVE_NODE", change.active_node}}));
    g.alert(change);
    if (reloading_ && change.from == NodeState::Stopping) {
        // SIGHUP stopped every group: READY=1 once the last of them has stopped.
        bool stopping = false;
        for (std::size_t i = 0; i < node_.group_count(); ++i)
            stopping = stopping || (i != change.group && node_.group(i).state() == NodeState::Stopping);
        if (!stopping) {
            reloading_ = false;
            notifier_.ready();
        }
    }
}

void Manager::track_services_marker(const effect::StateChanged& change) {
    group_phases_.at(change.group) = change.to_phase;
    // The previous daemon's marker holds until every group has settled what it found.
    bool initial = false, may_run = false, settling = false;
    for (Phase p : group_phases_) {
        initial = initial || state_of(p) == NodeState::Initial;
        may_run = may_run || holds_services(state_of(p));
        settling = settling || p == Phase::InitialProbe || p == Phase::InitialCleanup;
    }
    if (!initial) inherited_marker_ = false;
    set_services_marker(may_run || (inherited_marker_ && settling));
}

void Manager::set_services_marker(bool may_run) {
    if (runtime_directory_.empty() || may_run == services_marker_) return;
    std::string error = may_run ? store_services_marker(runtime_directory_, {config_.dead_time, config_.interval})
                                : remove_services_marker(runtime_directory_);
    if (!error.empty()) {
        log::warning("the unit cannot tell whether to clean up after freehad's death (--clean-up): " + error);
        return;
    }
    services_marker_ = may_run;
}

void Manager::apply_notice(const effect::Notice& notice) {
    // A notice about a group other than the default one: that group's state,
    // term and active node, and its name in the text (once) and in FREEHA_GROUP.
    std::size_t index = 0;
    for (std::size_t i = 1; i < groups_.size() && !notice.group.empty(); ++i)
        if (groups_[i]->name() == notice.group) index = i;
    std::vector<log::Field> fields{{"FREEHA_NODE", config_.node_name}};
    // The core may have removed the group already (its last stop ended in
    // the same step; effect::GroupRemoved follows): it has no state left to tell.
    if (const Group* group = node_.find_group(groups_[index]->name())) {
        fields.push_back({"FREEHA_STATE", std::string(to_string(group->state()))});
        fields.push_back({"FREEHA_TERM", std::to_string(group->cluster_term())});
        fields.push_back({"FREEHA_ACTIVE_NODE", group->active_node()});
    }
    if (notice.peer != config_.node_name) fields.push_back({"FREEHA_PEER", notice.peer});
    if (!notice.channel.empty()) fields.push_back({"FREEHA_CHANNEL", notice.channel});
    if (notice.kind == NoticeKind::MaintenanceChanged)
        fields.push_back({"FREEHA_MAINTENANCE", node_.maintenance().on ? "on" : "off"});
    std::string text = notice_text(notice);
    if (index != 0) {
        fields = groups_[index]->fields(std::move(fields));
        if (text.find("group " + notice.group) == std::string::npos) text = groups_[index]->named(text);
    }
    log::event(notice_priority(notice.kind), notice_message_id(notice.kind), text, fields);
}

// --- status -----------------------------------------------------------------

std::string Manager::status_line() const {
    std::string active = node_.active_node();
    unsigned reachable = node_.reachable_nodes();
    std::string line = std::string(to_string(node_.state()));
    if (node_.maintenance().on) line = "MAINTENANCE MODE (nothing started, stopped or monitored); " + line;
    if (node_.error_latched()) line += " (error: " + node_.last_error() + ")";
    line += "; active: " + (active.empty() ? std::string("none") : active);
    line += "; term " + std::to_string(node_.cluster_term());
    if (node_.etcd_backend()) {
        // etcd's majority, not this count, makes the quorum: say why it is missing.
        line += "; " + std::to_string(reachable) + " nodes in etcd";
        line += node_.quorate() ? ", quorate" : ", NOT quorate: " + node_.etcd_unquorate_reason(now());
        return line;
    }
    line += "; " + std::to_string(reachable) + "/" + std::to_string(config_.expected_nodes) + " nodes";
    line += node_.quorate() ? ", quorate" : ", NOT quorate";
    return line;
}

Status Manager::snapshot() const {
    Status s = node_.status(now());
    std::uint64_t realtime = 0;
    sd_event_now(event_.get(), CLOCK_REALTIME, &realtime);
    s.updated_realtime_usec = realtime;
    s.log_lines_dropped = log::dropped_lines();
    if (etcd_) s.etcd = etcd_->link_status();
    for (const auto& g : groups_)
        for (auto& a : g->address_status()) s.addresses.push_back(std::move(a));
    if (!config_.services.target.empty()) {
        s.mode = "target";
        s.services_target = config_.services.target;
    }
    return s;
}

void Manager::flush_status() {
    if (!status_dirty_) return;
    status_dirty_ = false;
    Status s = snapshot();
    status_writer_.update(s, now(), kStatusFileRefresh);
    notifier_.status(status_line());
    if (api_) api_->publish(std::make_shared<const Status>(std::move(s)));
}

// --- D-Bus requests ---------------------------------------------------------

std::optional<std::string> Manager::handle(const BusRequest& request) {
    if (!begun_) return "freehad is still starting";
    Usec t = now();
    if (!request.group.empty()) return handle_group(request, t);
    switch (request.kind) {
    case BusRequest::Kind::Stop:
        if (node_.maintenance().on)
            return "maintenance mode is on: Stop() stops nothing; stop the services by hand, or run freehactl "
                   "maintenance off first";
        log::notice("D-Bus Stop(): stopping the services here; the daemon stays up");
        apply(node_.on_command(Command::Stop, t));
        break;
    case BusRequest::Kind::ForceStart:
        if (node_.maintenance().on)
            return "maintenance mode is on: ForceStart() starts nothing; start the services by hand, or run "
                   "freehactl maintenance off first";
        log::warning("D-Bus ForceStart(): force-starting the services here without checking the other nodes");
        apply(node_.on_command(Command::ForceStart, t));
        break;
    case BusRequest::Kind::ClearError:
        log::notice("D-Bus ClearError(): clearing the error latch");
        apply(node_.on_command(Command::ClearError, t));
        break;
    case BusRequest::Kind::SetStandby: {
        log::notice(std::string("D-Bus SetStandby(") + (request.standby ? "true" : "false") + ")");
        // Applied even when it cannot be kept: an admin who asks for a
        // standby wants the services off this node now, and one who ends it
        // wants this node eligible now. The caller is told what a restart
        // of freehad would bring back.
        apply(node_.on_command(request.standby ? Command::Standby : Command::Unstandby, t));
        if (std::string error = store_standby(state_directory_, request.standby); !error.empty()) {
            std::string unsaved = request.standby ? "standby applied but not saved: " + error +
                                                        "; after a restart of freehad this node is no longer in standby"
                                                  : "unstandby applied but not saved: " + error +
                                                        "; after a restart of freehad this node is in standby again";
            log::warning(unsaved);
            return unsaved;
        }
        break;
    }
    case BusRequest::Kind::Switchover: {
        std::string error;
        Effects effects = node_.switchover(request.node, t, &error);
        if (!error.empty()) return "switchover refused: " + error;
        log::notice("D-Bus Switchover(" + request.node + "): handing the services to " + node_.handover_to());
        apply(std::move(effects));
        break;
    }
    case BusRequest::Kind::ReloadConfig:
        return reload_config();
    case BusRequest::Kind::SetMaintenance: {
        const char* mode = request.maintenance ? "on" : "off";
        std::string error;
        Effects effects = node_.set_maintenance(request.maintenance, t, &error);
        if (!error.empty()) return std::string("maintenance ") + mode + " refused: " + error;
        log::notice(std::string("D-Bus SetMaintenance(") + (request.maintenance ? "true" : "false") +
                    "): maintenance mode " + mode + " for the whole cluster");
        maintenance_unsaved_.clear();
        apply(std::move(effects));
        if (!maintenance_unsaved_.empty())
            return std::string("maintenance mode ") + mode + " applied but not saved: " + maintenance_unsaved_ +
                   "; after a restart of freehad this node learns it from the other nodes";
        break;
    }
    }
    return std::nullopt;
}

// A method of a Group object (/org/freeha1/group/NAME): Switchover or ClearError of that group alone.
std::optional<std::string> Manager::handle_group(const BusRequest& request, Usec t) {
    std::size_t index = 0;
    while (index < node_.group_count() && node_.group(index).name() != request.group) ++index;
    if (index == node_.group_count()) return "no group named '" + request.group + "'";
    const Group& group = node_.group(index);
    if (request.kind == BusRequest::Kind::Switchover) {
        std::string error;
        Effects effects = node_.switchover(index, request.node, t, &error);
        if (!error.empty()) return "switchover of group " + request.group + " refused: " + error;
        log::notice("D-Bus Switchover(" + request.node + ") of group " + request.group + ": handing it to " +
                    group.handover_to());
        apply(std::move(effects));
        return std::nullopt;
    }
    if (request.kind == BusRequest::Kind::ClearError) {
        log::notice("D-Bus ClearError() of group " + request.group + ": clearing its error latch");
        apply(node_.clear_error(index, t));
        return std::nullopt;
    }
    return "not a method of a group";
}

std::optional<std::string> Manager::reload_config() {
    std::string error;
    auto reread = load_config(cmdline_, &error);
    if (!reread) return "configuration not reloaded: " + error;
    if (auto fixed = fixed_setting_changed(config_, *reread)) return "configuration not reloaded: " + *fixed;
    if (auto shadowed = shadowed_setting_changed(config_, *reread))
        return "configuration not reloaded: " + *shadowed;
    auto keys = read_auth_keys(reread->auth_key_files, &error);
    if (!keys) return "configuration not reloaded: " + error;
    // Promises made with a longer DeadTime= must be honoured after a restart:
    // recorded before they can be made.
    if (reread->dead_time > stored_horizon_) {
        if (std::string stored = store_promise_horizon(state_directory_, reread->dead_time); !stored.empty())
            return "configuration not reloaded: cannot record the longer DeadTime= (" + stored + ")";
        stored_horizon_ = reread->dead_time;
    }
    longest_dead_time_ = std::max(longest_dead_time_, reread->dead_time);
    reread->bus = config_.bus;
    reread->force_start = config_.force_start;
    // Each group the node runs takes its new settings; one that is no longer
    // configured keeps its own until the core has stopped and removed it
    // (effect::GroupRemoved); one added is set up here, before the core
    // starts it, or the reload is refused.
    for (auto& g : groups_)
        if (const GroupConfig* settings = reread->group(g->name()))
            if (std::string refused = g->prepare_reload(*settings); !refused.empty())
                return "configuration not reloaded: " + refused;
    std::size_t kept = groups_.size();
    if (std::string refused = add_groups(*reread); !refused.empty()) return "configuration not reloaded: " + refused;
    std::vector<ServiceGroup*> added;
    for (std::size_t i = kept; i < groups_.size(); ++i) added.push_back(groups_[i].get());
    config_ = std::move(*reread);
    for (std::size_t i = 0; i < kept; ++i) groups_[i]->reconfigure(config_);
    arm_watchdog();  // for the new DeadTime= and Interval=
    if (services_marker_) {  // the clean-up after a death keeps to the new timings
        if (std::string e = store_services_marker(runtime_directory_, {config_.dead_time, config_.interval}); !e.empty())
            log::warning("the unit's clean-up keeps the old timings: " + e);
    }
    apply(node_.reconfigure(node_settings(config_, node_.settings().incarnation, std::move(*keys)), now()));
    for (ServiceGroup* g : added) g->check_available();  // the core has them now: a missing target or device
    log::notice("configuration reloaded: interval " + format_timespan(config_.interval) + ", dead time " +
                format_timespan(config_.dead_time) + ", " + std::to_string(config_.expected_nodes) +
                " nodes expected, " + describe_auth_keys(config_));
    status_dirty_ = true;
    return std::nullopt;
}

// --- event sources ----------------------------------------------------------

void Manager::on_signal(int signo) {
    if (!begun_) {
        // Nothing has started yet (target mode waits for the bus): only an
        // exit request means anything, and it needs nothing stopped.
        if (signo == SIGTERM || signo == SIGINT) {
            log::notice(log::signal_name(signo) + " before start-up: exiting");
            shut_down(0);
        } else {
            log::notice(log::signal_name(signo) + " ignored: freehad has not started yet");
        }
        return;
    }
    Usec t = now();
    switch (signo) {
    case SIGTERM:
    case SIGINT:
        log::notice(log::signal_name(signo) + (node_.maintenance().on
                                                   ? ": exiting; maintenance mode is on, the services are left as "
                                                     "they are"
                                                   : ": stopping the services and exiting"));
        shut_down(0);
        break;
    case SIGHUP:
        if (node_.maintenance().on)
            log::warning("SIGHUP: maintenance mode is on: nothing is stopped (freehactl maintenance off first)");
        else
            log::notice("SIGHUP: stopping the services here; the daemon stays up");
        notifier_.reloading(t);
        apply(node_.on_command(Command::Stop, t));
        if (node_.state() == NodeState::Stopping)
            reloading_ = true;  // READY=1 once the stop has finished
        else
            notifier_.ready();
        break;
    case SIGUSR1:
        if (node_.maintenance().on)
            log::warning("SIGUSR1: maintenance mode is on: nothing is started (freehactl maintenance off first)");
        else
            log::warning("SIGUSR1: force-starting the services here without checking the other nodes");
        apply(node_.on_command(Command::ForceStart, t));
        break;
    case SIGUSR2:
        log::notice("SIGUSR2: clearing the error latch");
        apply(node_.on_command(Command::ClearError, t));
        break;
    }
}

int Manager::on_signal_cb(sd_event_source*, const signalfd_siginfo* si, void* userdata) {
    auto* self = static_cast<Manager*>(userdata);
    try {
        self->on_signal(static_cast<int>(si->ssi_signo));
    } catch (const std::exception& e) {
        log::error(std::string("signal handling failed: ") + e.what());
    }
    return 0;
}

int Manager::on_core_timer(sd_event_source*, uint64_t, void* userdata) {
    auto* self = static_cast<Manager*>(userdata);
    try {
        // What had arrived first (one batch per socket): a deadline is judged
        // on it, as when the sockets ran first, and a send waits no longer.
        for (auto& channel : self->channels_) channel->receive_queued();
        self->apply(self->node_.on_timer(self->now()));
        // Re-armed here, not only by on_post: that runs at normal priority, so
        // not while the sockets have a backlog, and the next send would wait.
        self->arm_core_timer();
    } catch (const std::exception& e) {
        log::error(std::string("timer handling failed: ") + e.what());
    }
    return 0;
}

int Manager::on_status_timer(sd_event_source* s, uint64_t, void* userdata) {
    auto* self = static_cast<Manager*>(userdata);
    self->status_dirty_ = true;  // the last-heard ages move on: a new snapshot for the API, the files compare it
    sd_event_source_set_time_relative(s, kStatusRefresh.count());
    sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
    return 0;
}

int Manager::on_horizon_passed(sd_event_source*, uint64_t, void* userdata) {
    auto* self = static_cast<Manager*>(userdata);
    if (std::string error = store_promise_horizon(self->state_directory_, self->longest_dead_time_); !error.empty()) {
        log::warning("cannot lower the promise horizon (" + error + "); the next start waits " +
                     format_timespan(self->stored_horizon_) + " before backing a claim");
        return 0;
    }
    self->stored_horizon_ = self->longest_dead_time_;
    return 0;
}

// Runs after every dispatch: re-arm the core's timer for its next deadline and
// write the status once per loop iteration, however many changes it saw.
int Manager::on_post(sd_event_source*, void* userdata) {
    auto* self = static_cast<Manager*>(userdata);
    self->removed_groups_.clear();
    try {
        self->arm_core_timer();
        self->flush_status();
    } catch (const std::exception& e) {
        log::error(std::string("status update failed: ") + e.what());
    }
    return 0;
}

void Manager::arm_core_timer() {
    std::optional<Usec> next = node_.next_wakeup(now());
    if (!next) {
        sd_event_source_set_enabled(core_timer_.get(), SD_EVENT_OFF);
        return;
    }
    sd_event_source_set_time(core_timer_.get(), next->count());
    sd_event_source_set_enabled(core_timer_.get(), SD_EVENT_ONESHOT);
}

}  // namespace freeha
