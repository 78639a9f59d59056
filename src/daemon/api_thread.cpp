#include "daemon/api_thread.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <system_error>
#include <utility>

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "daemon/log.h"

namespace freeha {
namespace {

// How much lower the thread's priority is than the daemon's.
constexpr int kNiceAboveMain = 10;

void wake(const UniqueFd& fd) {
    std::uint64_t one = 1;
    // Non-blocking; the counter cannot fill up (2^64 - 2 wake-ups unread).
    [[maybe_unused]] ssize_t n = ::write(fd.get(), &one, sizeof one);
}

void drain(int fd) {
    std::uint64_t count = 0;
    [[maybe_unused]] ssize_t n = ::read(fd, &count, sizeof count);
}

}  // namespace

ApiThread::ApiThread(sd_event* main_event, BusKind kind, Handler handler, Fatal fatal)
    : main_event_(main_event), kind_(kind), handler_(std::move(handler)), fatal_(std::move(fatal)) {}

ApiThread::~ApiThread() {
    if (!thread_.joinable()) return;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake(wake_thread_);
    thread_.join();
}

int ApiThread::start(std::shared_ptr<const Status> first) {
    shown_ = std::move(first);  // the thread's from here on
    wake_main_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    wake_thread_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    int r = wake_main_ && wake_thread_ ? 0 : -errno;
    sd_event_source* s = nullptr;
    if (r >= 0) r = sd_event_add_io(main_event_, &s, wake_main_.get(), EPOLLIN, on_main_wakeup, this);
    if (r < 0) {
        log::error(log::with_errno("cannot start the D-Bus API", r));
        return r;
    }
    main_source_.reset(s);
    try {
        thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
        log::error(std::string("cannot start the D-Bus API's thread: ") + e.what());
        main_source_.reset();
        return -EAGAIN;
    }
    return 0;
}

void ApiThread::publish(std::shared_ptr<const Status> status) {
    {
        std::lock_guard lock(mutex_);
        published_.swap(status);
        status_changed_ = true;
    }
    wake(wake_thread_);
    // `status` now holds the previous snapshot, freed here unless the thread still shows it.
}

void ApiThread::run() {
    // The daemon's signals are read from the main loop's signalfd: none may land here.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    // A caller's work (reading and parsing its message, building the reply)
    // yields the CPU to the main loop's heartbeats on a busy machine.
    errno = 0;
    int priority = getpriority(PRIO_PROCESS, 0);  // 0: this thread (Linux)
    if (errno == 0) setpriority(PRIO_PROCESS, 0, std::min(priority + kNiceAboveMain, 19));
    try {
        sd_event* raw = nullptr;
        int r = sd_event_new(&raw);
        event_.reset(raw);
        sd_event_source* s = nullptr;
        if (r >= 0) r = sd_event_add_io(raw, &s, wake_thread_.get(), EPOLLIN, on_thread_wakeup, this);
        EventSourcePtr wakeup(s);
        if (r < 0) {
            log::error(log::with_errno("the D-Bus API is unavailable: cannot create its event loop", r));
        } else {
            connection_ = std::make_unique<BusConnection>(
                raw, kind_, kBusName, "the D-Bus API",
                BusConnection::Callbacks{
                    [this](sd_bus* bus) {
                        api_ = std::make_unique<ManagerObject>(
                            shown_, [this](const BusRequest& request, ManagerObject::Reply reply) {
                                serve(request, std::move(reply));
                            });
                        std::string error;
                        if (api_->publish(bus, &error) < 0) {
                            log::error(error);
                            api_.reset();
                        }
                    },
                    [] {},
                    [this] { api_.reset(); },
                    [this](const std::string& why) {
                        {
                            std::lock_guard lock(mutex_);
                            fatal_why_ = why;
                        }
                        wake(wake_main_);
                    }});
            connection_->start();
            r = sd_event_loop(raw);
            if (r < 0) log::error(log::with_errno("the D-Bus API's event loop failed", r));
        }
    } catch (const std::exception& e) {
        log::error(std::string("the D-Bus API stopped: ") + e.what());
    }
    // Everything bus-related ends on the thread that used it.
    api_.reset();
    connection_.reset();
    waiting_.clear();
    event_.reset();
}

// The thread: hands a privileged caller's request to the main loop.
void ApiThread::serve(const BusRequest& request, ManagerObject::Reply reply) {
    std::uint64_t id = next_id_++;
    waiting_.emplace(id, std::move(reply));
    {
        std::lock_guard lock(mutex_);
        requests_.push_back({id, request});
    }
    wake(wake_main_);
}

// The main loop: carries out the requests and sends their answers back.
int ApiThread::on_main_wakeup(sd_event_source*, int fd, uint32_t, void* userdata) {
    return log::guarded("ApiThread::on_main_wakeup", [&]() -> int {
        auto* self = static_cast<ApiThread*>(userdata);
        drain(fd);
        std::deque<Request> requests;
        std::optional<std::string> fatal;
        {
            std::lock_guard lock(self->mutex_);
            requests.swap(self->requests_);
            fatal.swap(self->fatal_why_);
        }
        if (!requests.empty()) {
            std::deque<Answer> answers;
            for (const auto& r : requests) {
                Answer a{r.id, std::nullopt};
                try {
                    a.refused = self->handler_(r.request);
                } catch (const std::exception& e) {
                    log::error(std::string("D-Bus request failed: ") + e.what());
                    a.refused = std::string("failed: ") + e.what();
                }
                answers.push_back(std::move(a));
            }
            {
                std::lock_guard lock(self->mutex_);
                for (auto& a : answers) self->answers_.push_back(std::move(a));
            }
            wake(self->wake_thread_);
        }
        if (fatal) self->fatal_(*fatal);
        return 0;
    });
}

// The thread: a new status to show, answers to send, or the end.
int ApiThread::on_thread_wakeup(sd_event_source*, int fd, uint32_t, void* userdata) {
    return log::guarded("ApiThread::on_thread_wakeup", [&]() -> int {
        auto* self = static_cast<ApiThread*>(userdata);
        drain(fd);
        std::shared_ptr<const Status> status;
        std::deque<Answer> answers;
        bool stopping = false;
        {
            std::lock_guard lock(self->mutex_);
            if (self->status_changed_) status = self->published_;
            self->status_changed_ = false;
            answers.swap(self->answers_);
            stopping = self->stopping_;
        }
        if (stopping) return sd_event_exit(self->event_.get(), 0);
        // The status first: it was published before these answers, and shows what the requests did.
        if (status) {
            self->shown_ = status;
            if (self->api_) self->api_->flush(std::move(status));
        }
        for (auto& a : answers) {
            auto waiting = self->waiting_.find(a.id);
            if (waiting == self->waiting_.end()) continue;
            ManagerObject::Reply reply = std::move(waiting->second);
            self->waiting_.erase(waiting);
            reply(a.refused);
        }
        return 0;
    });
}

}  // namespace freeha
