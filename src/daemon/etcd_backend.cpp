#include "daemon/etcd_backend.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace freeha {

namespace {

// The watch's ids start here (etcd_watch.cpp): below are the session's.
bool is_watch_call(std::uint64_t id) { return id >= (std::uint64_t{1} << 62); }

}  // namespace

std::unique_ptr<EtcdBackend> EtcdBackend::create(sd_event* event, EtcdBackendSettings settings, Listener listener,
                                                 std::string* error) {
    std::unique_ptr<EtcdBackend> b(new EtcdBackend(event, std::move(settings), std::move(listener)));
    b->client_ = EtcdClient::create(
        event, b->settings_.session.endpoints, b->settings_.tls,
        [self = b.get()](std::uint64_t id, bool answered, const std::string& text) { self->on_done(id, answered, text); },
        [self = b.get()](std::uint64_t id, const std::string& line) { self->on_line(id, line); }, error);
    if (!b->client_) return nullptr;
    if (int r = add_etcd_timer(event, &EtcdBackend::on_timer, b.get(), &b->timer_); r < 0) {
        *error = "cannot add the etcd timer: " + std::string(strerror(-r));
        return nullptr;
    }
    sd_event_source* notify = nullptr;
    if (int r = sd_event_add_defer(event, &notify, &EtcdBackend::on_notify, b.get()); r < 0) {
        *error = "cannot add the etcd link's notifier: " + std::string(strerror(-r));
        return nullptr;
    }
    b->notify_.reset(notify);
    sd_event_source_set_enabled(notify, SD_EVENT_OFF);
    return b;
}

EtcdBackend::EtcdBackend(sd_event* event, EtcdBackendSettings settings, Listener listener)
    : event_(event),
      settings_(std::move(settings)),
      listener_(std::move(listener)),
      session_(settings_.session),
      watch_(settings_.prefix, settings_.session.endpoints, settings_.session.call_timeout, settings_.session.interval) {}

Usec EtcdBackend::now() const {
    std::uint64_t usec = 0;
    sd_event_now(event_, CLOCK_MONOTONIC, &usec);
    return Usec(usec);
}

EtcdLinkStatus EtcdBackend::link_status() const {
    EtcdLinkStatus s;
    s.endpoint_index = session_.endpoint();
    s.endpoint_count = settings_.session.endpoints.size();
    s.endpoint = settings_.session.endpoints.at(s.endpoint_index);
    s.lease_id = session_.lease_id().value_or(0);
    if (std::optional<Usec> until = session_.lease_until()) s.lease_remaining = *until - now();  // (saturates at 0)
    s.synced = watch_.synced();
    const etcd::SessionCounters& c = session_.counters();
    s.calls = c.calls;
    s.call_failures = c.failures;
    s.watch_failures = watch_.failures();
    s.endpoint_switches = c.endpoint_switches;
    s.leases_lost = c.leases_lost;
    s.last_failure = last_failure_;
    return s;
}

void EtcdBackend::start() {
    run(session_.start(now()));
    run(watch_.start(now()));
}

void EtcdBackend::claim(const std::string& key, const std::string& value) { run(session_.claim(key, value, now())); }

void EtcdBackend::release(const std::string& key) { run(session_.release(key, now())); }

void EtcdBackend::publish(const std::string& key, const std::string& value) {
    run(session_.publish(key, value, now()));
}

void EtcdBackend::mark_cluster(const std::string& key, const std::string& value) {
    run(session_.mark_cluster(key, value, now()));
}

void EtcdBackend::revoke(std::function<void()> done) {
    revoke_done_ = std::move(done);
    run(session_.revoke(now()));
}

void EtcdBackend::post(const etcd::Request& r) {
    // A watch streams until it fails or is replaced; every other call has the session's timeout.
    client_->post(r.id, r.endpoint, etcd::path(r.call), r.body,
                  r.call == etcd::Call::Watch ? EtcdClient::Kind::Stream : EtcdClient::Kind::Call,
                  settings_.session.call_timeout);
}

void EtcdBackend::run(etcd::Step step) {
    for (std::uint64_t id : step.cancel) client_->cancel(id);
    for (const auto& r : step.requests) post(r);
    for (const auto& e : step.events)
        if (e.kind == etcd::EventKind::CallFailed) last_failure_ = e.detail;
    queued_events_.insert(queued_events_.end(), step.events.begin(), step.events.end());
    if (session_.lease_until() != lease_until_ || session_.lease_id() != lease_id_) {
        lease_until_ = session_.lease_until();
        lease_id_ = session_.lease_id();
        lease_moved_ = true;
    }
    if (revoke_done_ && !session_.revoking()) revoke_ended_ = true;
    notify_soon();
    // Where the session goes after a failure, the watch follows: an endpoint
    // that cannot renew a lease may well have lost its quorum, and a watch
    // there would see no change.
    if (session_.endpoint() != session_endpoint_) {
        session_endpoint_ = session_.endpoint();
        run(watch_.follow(session_endpoint_, now()));
    }
    arm();
}

void EtcdBackend::run(etcd::WatchStep step) {
    for (std::uint64_t id : step.cancel) client_->cancel(id);
    for (const auto& r : step.requests) post(r);
    if (!step.failures.empty()) last_failure_ = step.failures.back();
    queued_failures_.insert(queued_failures_.end(), step.failures.begin(), step.failures.end());
    queued_changes_.insert(queued_changes_.end(), step.changed.begin(), step.changed.end());
    const bool moved = !step.changed.empty() || watch_.synced() != synced_;
    if (moved) {
        synced_ = watch_.synced();
        view_moved_ = true;
    }
    notify_soon();
    arm();
    // The session checks its keys against a current view (a late call may have changed them).
    if (moved && synced_) run(session_.on_view(watch_.view(), watch_.revision(), now()));
}

void EtcdBackend::on_done(std::uint64_t id, bool answered, const std::string& text) {
    if (is_watch_call(id)) {
        run(answered ? watch_.on_reply(id, text, now()) : watch_.on_failure(id, text, now()));
        return;
    }
    run(answered ? session_.on_reply(id, text, now()) : session_.on_failure(id, text, now()));
}

void EtcdBackend::on_line(std::uint64_t id, const std::string& line) {
    if (is_watch_call(id)) run(watch_.on_line(id, line, now()));
}

void EtcdBackend::notify_soon() {
    if (!queued_events_.empty() || !queued_failures_.empty() || lease_moved_ || view_moved_ || revoke_ended_)
        sd_event_source_set_enabled(notify_.get(), SD_EVENT_ONESHOT);
}

int EtcdBackend::on_notify(sd_event_source*, void* userdata) {
    auto* self = static_cast<EtcdBackend*>(userdata);
    const Listener& l = self->listener_;
    // The lease first: a claim answered on a new lease is read knowing that the old one is gone.
    if (std::exchange(self->lease_moved_, false) && l.lease) l.lease();
    for (const auto& e : std::exchange(self->queued_events_, {}))
        if (l.event) l.event(e);
    for (const auto& f : std::exchange(self->queued_failures_, {}))
        if (l.watch_failure) l.watch_failure(f);
    std::vector<std::string> changed = std::exchange(self->queued_changes_, {});
    if (std::exchange(self->view_moved_, false) && l.view) l.view(changed);
    if (std::exchange(self->revoke_ended_, false) && self->revoke_done_) std::exchange(self->revoke_done_, {})();
    return 0;
}

void EtcdBackend::arm() {
    std::optional<Usec> at = session_.next_wakeup();
    if (auto w = watch_.next_wakeup()) at = at ? std::min(*at, *w) : *w;
    if (!at) {
        sd_event_source_set_enabled(timer_.get(), SD_EVENT_OFF);
        return;
    }
    // (Setting the time fails only on a loop that is going away.)
    if (sd_event_source_set_time(timer_.get(), at->count()) >= 0)
        sd_event_source_set_enabled(timer_.get(), SD_EVENT_ONESHOT);
}

int EtcdBackend::on_timer(sd_event_source*, std::uint64_t, void* userdata) {
    auto* self = static_cast<EtcdBackend*>(userdata);
    self->run(self->session_.on_timer(self->now()));
    self->run(self->watch_.on_timer(self->now()));
    return 0;
}

}  // namespace freeha
