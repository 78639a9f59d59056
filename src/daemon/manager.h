// The daemon: one sd-event loop wiring the node core to its adapters (channels, hooks, status, notify, journal).
//
// Member order matters: the loop is declared first so that it is destroyed
// last, after every source that refers to it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/node.h"
#include "daemon/hook_runner.h"
#include "daemon/notify.h"
#include "daemon/sd_ptr.h"
#include "daemon/status_writer.h"
#include "daemon/udp_channel.h"

namespace freeha {

class Manager {
public:
    explicit Manager(Config config);
    ~Manager();

    // Sets up everything, runs the loop until the node exits; returns the exit status.
    int run();

private:
    int setup();
    Usec now() const;
    void apply(Effects effects);
    // The outward half of the state-change chokepoint (Node::set_state is the
    // inward half): log with MESSAGE_ID, alert hook, STATUS=, status dirty.
    void apply_state_change(const effect::StateChanged& change);
    void apply_notice(const effect::Notice& notice);
    void run_hook(HookKind kind);
    void send(const wire::Heartbeat& hb);
    // FREEHA_* for a hook; `change` describes the state change being announced.
    std::vector<std::string> hook_environment(const effect::StateChanged& change) const;
    std::string status_line() const;
    void flush_status();

    void on_signal(int signo);
    static int on_signal_cb(sd_event_source* s, const signalfd_siginfo* si, void* userdata);
    static int on_core_timer(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_status_timer(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_post(sd_event_source* s, void* userdata);

    EventPtr event_;
    Config config_;
    Node node_;
    Notifier notifier_;
    StatusWriter status_writer_;
    std::vector<std::unique_ptr<UdpChannel>> channels_;
    std::unique_ptr<HookRunner> hooks_;
    std::vector<EventSourcePtr> signal_sources_;
    EventSourcePtr core_timer_;
    EventSourcePtr status_timer_;
    EventSourcePtr post_;

    bool status_dirty_ = true;
    bool reloading_ = false;  // RELOADING=1 sent; READY=1 owed once the stop ends
    effect::StateChanged last_change_{NodeState::Initial, NodeState::Initial, "", 0, ""};
};

// The incarnation of this daemon start: wall-clock microseconds, so that it
// grows across restarts of the same node.
std::uint64_t new_incarnation();

}  // namespace freeha
