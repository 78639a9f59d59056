#include "daemon/log.h"

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <systemd/sd-journal.h>

namespace freeha::log {
namespace {

// Set by init(), read by the writer thread.
std::atomic<bool> journal = false;
std::atomic<bool> stderr_is_tty = false;

bool stderr_is_journal() {
    const char* e = std::getenv("JOURNAL_STREAM");
    if (e == nullptr) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(e, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st {};
    if (fstat(STDERR_FILENO, &st) < 0) return false;
    return st.st_dev == dev && st.st_ino == ino;
}

struct Entry {
    int priority = LOG_INFO;
    std::string message_id;
    std::string text;
    std::vector<Field> fields;
};

void write_stderr(int priority, std::string_view text) {
    // The "<N>" prefix is for journald and syslog; a terminal gets plain lines.
    std::string line = stderr_is_tty ? "freehad: " : "<" + std::to_string(priority) + ">";
    line += text;
    line += '\n';
    // One write per line so that concurrent writers never interleave within it.
    (void)!::write(STDERR_FILENO, line.data(), line.size());
}

void send_journal(const Entry& e) {
    std::vector<std::string> entries;
    entries.push_back("MESSAGE=" + e.text);
    entries.push_back("PRIORITY=" + std::to_string(e.priority));
    entries.push_back("SYSLOG_IDENTIFIER=freehad");
    if (!e.message_id.empty()) entries.push_back("MESSAGE_ID=" + e.message_id);
    for (const auto& f : e.fields) entries.push_back(f.name + "=" + f.value);
    std::vector<iovec> iov;
    for (auto& s : entries) iov.push_back(iovec{s.data(), s.size()});
    if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) < 0) write_stderr(e.priority, e.text);
}

void write_entry(const Entry& e) {
    if (journal)
        send_journal(e);
    else
        write_stderr(e.priority, e.text);
}

// The queue and the thread that empties it. Created on first use and never
// destroyed: the thread may be blocked in a write when the process exits,
// and must not find its queue gone under it.
class Writer {
public:
    static Writer& get() {
        static Writer* writer = new Writer;
        return *writer;
    }

    void queue(Entry e) {
        {
            std::lock_guard guard(lock_);
            if (queue_.size() >= (e.priority <= LOG_NOTICE ? kQueuedLines : kQueuedRoutineLines)) {
                ++unreported_drops_;
                dropped_.fetch_add(1, std::memory_order_relaxed);
                return;
            }
            queue_.push_back(std::move(e));
        }
        wake_.notify_one();
    }

    std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

    bool flush(std::chrono::milliseconds timeout) {
        std::unique_lock guard(lock_);
        return idle_.wait_for(guard, timeout, [this] { return queue_.empty() && unreported_drops_ == 0 && !writing_; });
    }

private:
    Writer() {
        std::thread([this] { run(); }).detach();
        std::atexit([] { get().flush(kExitFlush); });
    }

    void run() {
        // The loop's thread reads its signals from a signalfd: none may land here.
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, nullptr);
        std::unique_lock guard(lock_);
        for (;;) {
            wake_.wait(guard, [this] { return !queue_.empty() || unreported_drops_ != 0; });
            std::deque<Entry> batch;
            batch.swap(queue_);
            // Dropped after the batch was queued, before it was taken: reported after it.
            std::uint64_t drops = std::exchange(unreported_drops_, 0);
            writing_ = true;
            guard.unlock();
            for (const auto& e : batch) write_entry(e);
            if (drops != 0)
                write_entry(Entry{LOG_WARNING, {},
                                  std::to_string(drops) + " log line(s) dropped: the journal did not take them in "
                                                          "time, and freehad never waits for it",
                                  {}});
            guard.lock();
            writing_ = false;
            if (queue_.empty() && unreported_drops_ == 0) idle_.notify_all();
        }
    }

    std::mutex lock_;
    std::condition_variable wake_;
    std::condition_variable idle_;
    std::deque<Entry> queue_;
    bool writing_ = false;
    std::uint64_t unreported_drops_ = 0;
    std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace

void init() {
    journal = stderr_is_journal();
    stderr_is_tty = isatty(STDERR_FILENO) == 1;
    Writer::get();
}

bool to_journal() { return journal; }

void message(int priority, std::string_view text) { Writer::get().queue(Entry{priority, {}, std::string(text), {}}); }

void event(int priority, std::string_view message_id, std::string_view text, const std::vector<Field>& fields) {
    Writer::get().queue(Entry{priority, std::string(message_id), std::string(text), fields});
}

std::uint64_t dropped_lines() { return Writer::get().dropped(); }

bool flush(std::chrono::milliseconds timeout) { return Writer::get().flush(timeout); }

std::string with_errno(std::string_view text, int negative_errno) {
    return std::string(text) + ": " + std::strerror(-negative_errno);
}

std::string signal_name(int signo) {
    // sigabbrev_np() has no name for the real-time signals (it returns NULL).
    if (signo >= SIGRTMIN && signo <= SIGRTMAX)
        return signo == SIGRTMIN ? "SIGRTMIN" : "SIGRTMIN+" + std::to_string(signo - SIGRTMIN);
    if (const char* abbrev = sigabbrev_np(signo)) return std::string("SIG") + abbrev;
    return "signal " + std::to_string(signo);
}

std::string GroupLines::named(std::string_view text) const {
    return group_.empty() ? std::string(text) : "group " + group_ + ": " + std::string(text);
}

std::vector<Field> GroupLines::fields(std::vector<Field> fields) const {
    if (!group_.empty()) fields.push_back({"FREEHA_GROUP", group_});
    return fields;
}

void GroupLines::message(int priority, std::string_view text) const {
    if (group_.empty())
        log::message(priority, text);
    else
        event(priority, {}, named(text), fields({}));
}

}  // namespace freeha::log
