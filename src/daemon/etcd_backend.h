// The node's link to etcd: its session (lease, keys) and its watch of the prefix, on one client and timer.
//
// The step machines (core/etcd_session.h, core/etcd_watch.h) decide every
// call; this runs them: it posts their requests, feeds them the answers,
// lines and failures, arms one timer for their next wake-up, and keeps the
// watch on the endpoint the session uses (the one that answers). The listener
// runs from the loop and must not destroy the backend.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bus/sd_ptr.h"
#include "core/etcd_session.h"
#include "core/etcd_watch.h"
#include "daemon/etcd_client.h"

namespace freeha {

struct EtcdBackendSettings {
    std::vector<std::string> endpoints;  // URLs: http://host:port or https://host:port
    EtcdTls tls;
    std::string prefix;  // every key of the cluster starts with it ("/freeha/NAME/")
    etcd::SessionSettings session;
};

class EtcdBackend {
public:
    // What changed: the session's events (in order), then the watched keys that changed.
    using Listener = std::function<void(const std::vector<etcd::Event>& events, const std::vector<std::string>& changed,
                                        const std::vector<std::string>& watch_failures)>;

    static std::unique_ptr<EtcdBackend> create(sd_event* event, EtcdBackendSettings settings, Listener listener,
                                               std::string* error);
    EtcdBackend(const EtcdBackend&) = delete;
    EtcdBackend& operator=(const EtcdBackend&) = delete;

    void start();
    void claim(const std::string& key, const std::string& value);
    void release(const std::string& key);
    void publish(const std::string& key, const std::string& value);
    void mark_cluster(const std::string& key, const std::string& value);
    void revoke();

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

    sd_event* event_;
    EtcdBackendSettings settings_;
    Listener listener_;
    etcd::Session session_;
    etcd::Watch watch_;
    std::size_t session_endpoint_ = 0;  // the session's endpoint when the watch last followed it
    std::unique_ptr<EtcdClient> client_;
    EventSourcePtr timer_;
};

}  // namespace freeha
