// The org.freeha1 API on a thread of its own: whatever a bus client sends, the daemon's loop never reads it.
//
// A D-Bus message is read and parsed whole before anyone can refuse it (the
// bus allows 32 MiB), and one Properties.Get with a 30 MB argument cost the
// loop that read it over a second: the heartbeats stopped and the lease ran
// out. So the API connection (BusConnection owning org.freeha1, and the
// ManagerObject on it) lives on this thread, with its own sd-event loop; an
// sd_bus and its sd_event are used by this thread only.
//
// The main loop publishes each new status as an immutable snapshot (a
// pointer swap under a mutex that guards nothing longer); the thread shows
// it and emits PropertiesChanged. Mutating methods go to the main loop
// through a queue and an eventfd, and their answers come back the same way.
// The main loop never waits for this thread, except for the join when the
// daemon exits. The thread runs at a lower priority (nice +10) than the
// main loop, so that on a busy machine a caller's work yields to heartbeats.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <systemd/sd-event.h>

#include "bus/manager_object.h"
#include "bus/sd_ptr.h"
#include "core/config.h"
#include "daemon/bus_connection.h"

namespace freeha {

class ApiThread {
public:
    // Run on the main loop: a request's answer (why it was refused, or nullopt)...
    using Handler = std::function<std::optional<std::string>(const BusRequest&)>;
    // ...and a bus refusal that retrying cannot fix (the name is someone else's).
    using Fatal = std::function<void(const std::string& why)>;

    ApiThread(sd_event* main_event, BusKind kind, Handler handler, Fatal fatal);
    // Stops the thread and waits for it.
    ~ApiThread();
    ApiThread(const ApiThread&) = delete;
    ApiThread& operator=(const ApiThread&) = delete;

    // Starts the thread, which shows `first` until the next publish(); logs
    // its failure once and returns a negative errno.
    int start(std::shared_ptr<const Status> first);
    // What the API shows from now on. Never waits for the thread.
    void publish(std::shared_ptr<const Status> status);

private:
    struct Request {
        std::uint64_t id;
        BusRequest request;
    };
    struct Answer {
        std::uint64_t id;
        std::optional<std::string> refused;
    };

    // The thread's body: its loop, until the destructor says stop.
    void run();
    void serve(const BusRequest& request, ManagerObject::Reply reply);
    static int on_main_wakeup(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    static int on_thread_wakeup(sd_event_source* s, int fd, uint32_t revents, void* userdata);

    // Set once, then read by both threads.
    sd_event* main_event_;
    BusKind kind_;
    Handler handler_;
    Fatal fatal_;
    UniqueFd wake_main_;    // eventfd: requests or a fatal error for the main loop
    UniqueFd wake_thread_;  // eventfd: a new status, answers, or stop for the thread
    EventSourcePtr main_source_;  // main loop only

    std::mutex mutex_;  // guards the mailbox below, for a push, a pop or a swap
    std::shared_ptr<const Status> published_;
    bool status_changed_ = false;
    std::deque<Request> requests_;
    std::deque<Answer> answers_;
    std::optional<std::string> fatal_why_;
    bool stopping_ = false;

    // The thread's own: created, used and destroyed there.
    EventPtr event_;
    std::unique_ptr<BusConnection> connection_;
    std::unique_ptr<ManagerObject> api_;  // while the bus is connected
    std::shared_ptr<const Status> shown_;
    std::uint64_t next_id_ = 0;
    std::map<std::uint64_t, ManagerObject::Reply> waiting_;  // requests the main loop has not answered

    std::thread thread_;
};

}  // namespace freeha
