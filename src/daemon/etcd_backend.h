// The node's link to etcd: its session (lease, keys) and its watch of the prefix, on one client and timer.
//
// The step machines (core/etcd_session.h, core/etcd_watch.h) decide every
// call; this runs them: it posts their requests, feeds them the answers,
// lines and failures, arms one timer for their next wake-up, and keeps the
// watch on the endpoint the session uses (the one that answers). The listener
// runs from the loop, never from within a call of the backend (what a call
// causes is told from a deferred event source, in order), and must not
// destroy the backend.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bus/sd_ptr.h"
#include "core/etcd_session.h"
#include "core/etcd_watch.h"
#include "core/status.h"
#include "daemon/etcd_client.h"

namespace freeha {

struct EtcdBackendSettings {
    EtcdTls tls;
    std::string prefix;  // every key of the cluster starts with it ("/freeha/NAME/")
    etcd::SessionSettings session;  // with the endpoints' URLs (http://host:port or https://host:port)
};

class EtcdBackend {
public:
    // What changed, as it happens.
    struct Listener {
        // session().lease_id() or lease_until() moved (renewed, granted, lost): told before the events.
        std::function<void()> lease;
        std::function<void(const etcd::Event&)> event;  // the session's events, in order
        // The watched keys changed (`changed`, in order; watch().view() has
        // them), or the watch became current (watch().synced()).
        std::function<void(const std::vector<std::string>& changed)> view;
        std::function<void(const std::string&)> watch_failure;  // one line: which call, which endpoint, why
    };

    static std::unique_ptr<EtcdBackend> create(sd_event* event, EtcdBackendSettings settings, Listener listener,
                                               std::string* error);
    EtcdBackend(const EtcdBackend&) = delete;
    EtcdBackend& operator=(const EtcdBackend&) = delete;

    void start();
    void claim(const std::string& key, const std::string& value);
    void release(const std::string& key);
    void publish(const std::string& key, const std::string& value);
    void mark_cluster(const std::string& key, const std::string& value);
    // Gives the lease back (every key on it goes at once); `done` runs once
    // etcd has answered, or the call has failed (then the keys go with the TTL).
    void revoke(std::function<void()> done = {});

    // What the link is and has met now: the status document's "etcd".
    EtcdLinkStatus link_status() const;
    const etcd::Session& session() const { return session_; }
    const etcd::Watch& watch() const { return watch_; }
    Usec now() const;

private:
    EtcdBackend(sd_event* event, EtcdBackendSettings settings, Listener listener);
    void run(etcd::Step step);
    void run(etcd::WatchStep step);
    void post(const etcd::Request& r);
    void on_done(std::uint64_t id, bool answered, const std::string& text);
    void on_line(std::uint64_t id, const std::string& line);
    void arm();
    static int on_timer(sd_event_source* s, std::uint64_t usec, void* userdata);
    // Tells the listener what the steps since the last call queued.
    static int on_notify(sd_event_source* s, void* userdata);
    void notify_soon();

    sd_event* event_;
    EtcdBackendSettings settings_;
    Listener listener_;
    etcd::Session session_;
    etcd::Watch watch_;
    std::size_t session_endpoint_ = 0;  // the session's endpoint when the watch last followed it
    std::optional<Usec> lease_until_;   // as the listener last heard of it
    std::optional<std::int64_t> lease_id_;
    bool synced_ = false;               // watch_.synced() as the listener last heard of it
    std::function<void()> revoke_done_;
    std::string last_failure_;  // the newest failed call's line, the session's or the watch's
    // What the listener has yet to hear, and the source that tells it.
    std::vector<etcd::Event> queued_events_;
    std::vector<std::string> queued_changes_;
    std::vector<std::string> queued_failures_;
    bool lease_moved_ = false;
    bool view_moved_ = false;
    bool revoke_ended_ = false;
    EventSourcePtr notify_;
    std::unique_ptr<EtcdClient> client_;
    EventSourcePtr timer_;
};

}  // namespace freeha
