#include "daemon/process_tree.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string_view>
#include <utility>

#include <dirent.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/log.h"

namespace freeha {
namespace {

// Orphans that end between two fences are reaped this often.
constexpr Usec kReapInterval = 1 * kUsecPerSec;
constexpr Usec kReapAccuracy = 250 * kUsecPerMsec;  // in the wake-up of a heartbeat rather than one of its own
// How often an awaited emptiness is checked (and a kill repeated).
constexpr Usec kPollInterval = 10 * kUsecPerMsec;

struct ProcEntry {
    pid_t parent = 0;
    bool running = false;  // neither a zombie nor dead
};

// /proc/PID/stat: "PID (COMM) STATE PPID ..."; COMM may hold spaces and parentheses.
bool read_stat(pid_t pid, ProcEntry* entry) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line)) return false;
    std::size_t close = line.rfind(')');
    if (close == std::string::npos || close + 4 > line.size()) return false;
    char state = line[close + 2];
    entry->running = state != 'Z' && state != 'X' && state != 'x';
    entry->parent = static_cast<pid_t>(std::strtol(line.c_str() + close + 4, nullptr, 10));
    return true;
}

}  // namespace

std::shared_ptr<OrphanReaper> OrphanReaper::open(sd_event* event, WatchedChild watched, std::string* why) {
    // The walk starts from our PID as /proc numbers it: it must be ours.
    char self[32] = {};
    ssize_t n = readlink("/proc/self", self, sizeof self - 1);
    if (n <= 0 || std::atol(self) != getpid()) {
        *why = "/proc does not show freehad's own PID namespace";
        return nullptr;
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
        *why = log::with_errno("cannot become a child subreaper", -errno);
        return nullptr;
    }
    std::shared_ptr<OrphanReaper> reaper(new OrphanReaper(std::move(watched)));
    sd_event_source* s = nullptr;
    int r = sd_event_add_time_relative(event, &s, CLOCK_MONOTONIC, kReapInterval.count(), kReapAccuracy.count(),
                                       on_timer, reaper.get());
    if (r < 0) {
        *why = log::with_errno("cannot create the timer that reaps orphans", r);
        return nullptr;
    }
    reaper->timer_.reset(s);
    return reaper;
}

void OrphanReaper::reap() {
    for (;;) {
        siginfo_t info{};
        // A look without reaping: a watched child's status is its child source's.
        if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 || info.si_pid == 0) return;
        if (watched_(info.si_pid)) return;  // reaped by its source first; the others at the next pass
        waitid(P_PID, static_cast<id_t>(info.si_pid), &info, WEXITED | WNOHANG);
    }
}

int OrphanReaper::on_timer(sd_event_source* s, uint64_t, void* userdata) {
    return log::guarded("OrphanReaper::on_timer", [&]() -> int {
        static_cast<OrphanReaper*>(userdata)->reap();
        int r = sd_event_source_set_time_relative(s, kReapInterval.count());
        if (r >= 0) r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        if (r < 0) log::error(log::with_errno("cannot re-arm the orphans' reaping timer", r));
        return 0;
    });
}

ProcessTree::ProcessTree(sd_event* event, std::shared_ptr<OrphanReaper> reaper)
    : event_(event), reaper_(std::move(reaper)) {}

ProcessTree::~ProcessTree() = default;

std::vector<pid_t> ProcessTree::running_descendants(pid_t root) {
    std::multimap<pid_t, std::pair<pid_t, bool>> children;  // parent -> (pid, running)
    if (DIR* proc = opendir("/proc")) {
        while (dirent* d = readdir(proc)) {
            char* end = nullptr;
            long pid = std::strtol(d->d_name, &end, 10);
            ProcEntry e;
            if (*end != '\0' || pid <= 0 || !read_stat(static_cast<pid_t>(pid), &e)) continue;
            children.emplace(e.parent, std::make_pair(static_cast<pid_t>(pid), e.running));
        }
        closedir(proc);
    }
    std::vector<pid_t> found;
    std::vector<pid_t> parents{root};
    while (!parents.empty()) {
        pid_t parent = parents.back();
        parents.pop_back();
        auto [first, last] = children.equal_range(parent);
        for (auto it = first; it != last; ++it) {
            parents.push_back(it->second.first);
            if (it->second.second) found.push_back(it->second.first);
        }
    }
    return found;
}

std::string ProcessTree::describe() const {
    std::string text = "freehad's process tree (a child subreaper)";
    if (!group_.empty()) text += ", the processes whose environment says FREEHA_GROUP=" + group_;
    return text;
}

bool ProcessTree::in_group(pid_t pid, const std::string& group) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/environ");
    if (!in) return true;  // gone (then not running anyway) or unreadable: not known to be another group's
    static constexpr std::string_view kKey = "FREEHA_GROUP=";
    std::string entry;
    while (std::getline(in, entry, '\0'))
        if (entry.starts_with(kKey)) return entry.compare(kKey.size(), std::string::npos, group) == 0;
    return true;
}

std::vector<pid_t> ProcessTree::members() const {
    std::vector<pid_t> found = running_descendants(getpid());
    if (!group_.empty())
        std::erase_if(found, [this](pid_t pid) {
            return (foreign_hook_ && foreign_hook_(pid)) || !in_group(pid, group_);
        });
    return found;
}

bool ProcessTree::environment_empty(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/environ");
    return !in || in.peek() == std::ifstream::traits_type::eof();
}

void ProcessTree::kill_members() {
    std::vector<pid_t> empty_now;
    for (pid_t pid : members()) {
        bool seen_empty = std::find(empty_before_.begin(), empty_before_.end(), pid) != empty_before_.end();
        if (!group_.empty() && environment_empty(pid) && !seen_empty) {
            empty_now.push_back(pid);
            continue;
        }
        ::kill(pid, SIGKILL);
    }
    empty_before_ = std::move(empty_now);
}

int ProcessTree::kill() {
    killing_ = true;
    empty_before_.clear();
    kill_members();
    return 0;
}

int ProcessTree::when_empty(std::function<void()> emptied) {
    emptied_ = std::move(emptied);
    check();
    return emptied_ ? arm(kPollInterval) : 0;
}

int ProcessTree::arm(Usec after) {
    if (!timer_) {
        sd_event_source* s = nullptr;
        int r = sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, after.count(), (5 * kUsecPerMsec).count(),
                                           on_timer, this);
        if (r < 0) return r;
        timer_.reset(s);
        return 0;
    }
    int r = sd_event_source_set_time_relative(timer_.get(), after.count());
    if (r >= 0) r = sd_event_source_set_enabled(timer_.get(), SD_EVENT_ONESHOT);
    return r;
}

void ProcessTree::check() {
    reaper_->reap();
    if (!emptied_) return;
    std::vector<pid_t> left = members();
    if (!left.empty()) {
        if (killing_) kill_members();
        return;
    }
    killing_ = false;
    std::exchange(emptied_, nullptr)();
}

int ProcessTree::on_timer(sd_event_source*, uint64_t, void* userdata) {
    return log::guarded("ProcessTree::on_timer", [&]() -> int {
        auto* self = static_cast<ProcessTree*>(userdata);
        self->check();
        if (self->emptied_)
            if (int r = self->arm(kPollInterval); r < 0)
                log::error(log::with_errno("cannot re-arm the process tree's timer", r));
        return 0;
    });
}

}  // namespace freeha
