#include "daemon/hook_runner.h"

#include <cerrno>
#include <cstddef>
#include <csignal>
#include <pthread.h>
#include <sched.h>
#include <cstring>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/service_scope.h"

namespace freeha {

namespace {
constexpr const char* kAlertHook = "alerthasrv";
constexpr std::size_t kMaxLoggedLine = 4096;
constexpr const char* kJournalStdout = "/run/systemd/journal/stdout";
constexpr int kJournalStreamBuffer = 8 * 1024 * 1024;  // what journald's own clients ask for

// What sd_journal_stream_fd(name, LOG_INFO, 0) returns, without its waits:
// it connects, and writes the stream's header, blocking, and a stopped
// journald with a full listen backlog holds its connect for as long as it
// is stopped. Here a connection journald cannot take at once fails
// (EAGAIN), and the caller forwards the hook's output through freehad's own
// log instead. The hook gets a blocking descriptor, as any stdout.
UniqueFd journal_stream(const std::string& identifier) {
    UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return fd;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, kJournalStdout, sizeof address.sun_path - 1);
    auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + std::strlen(address.sun_path));
    if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), length) < 0) return UniqueFd();
    if (shutdown(fd.get(), SHUT_RD) < 0) return UniqueFd();
    (void)setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &kJournalStreamBuffer, sizeof kJournalStreamBuffer);
    // Identifier, unit id (none), priority, level prefix, then no forwarding to syslog, kmsg or the console.
    std::string header = identifier + "\n\n" + std::to_string(LOG_INFO) + "\n0\n0\n0\n0\n";
    if (send(fd.get(), header.data(), header.size(), MSG_NOSIGNAL | MSG_DONTWAIT) != static_cast<ssize_t>(header.size()))
        return UniqueFd();
    if (fcntl(fd.get(), F_SETFL, 0) < 0) return UniqueFd();
    return fd;
}

// What the child of a spawn needs, built before it starts; `error` is the
// one thing it writes back (it shares the parent's memory until its exec).
struct SpawnArgs {
    const char* path;
    char* const* argv;
    char* const* envp;
    int output_fd;
    int procs_fd;
    int error;  // the errno of the step that failed, 0 when exec succeeded
};

// The child's side of spawning. It runs on its own small stack in the
// parent's memory (CLONE_VM | CLONE_VFORK) with every signal blocked, until
// its exec or its exit, while the parent waits: only async-signal-safe
// calls, nothing allocated, nothing of the parent's written but `error`.
[[noreturn]] void exec_child(SpawnArgs* a) {
    int saved = 0;
    // Into the services cgroup first (if the scope is one): everything the hook starts is then inside.
    if (a->procs_fd >= 0 && write(a->procs_fd, "0", 1) < 0) saved = errno;
    if (saved == 0 && setsid() < 0) saved = errno;
    // Without a cgroup, at least the hook does not outlive freehad.
    if (saved == 0 && a->procs_fd < 0) prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (saved == 0) {
        // Default dispositions before the mask opens: no handler of the
        // parent's may run here, on memory the parent owns.
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        for (int s = 1; s < NSIG; ++s)
            if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, nullptr);
        int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(a->output_fd, STDOUT_FILENO) < 0 ||
            dup2(a->output_fd, STDERR_FILENO) < 0)
            saved = errno;
    }
    if (saved == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, nullptr);  // the daemon blocks the signals sd-event handles
        execve(a->path, a->argv, a->envp);
        saved = errno;
    }
    a->error = saved;
    _exit(127);
}

int exec_child_entry(void* args) { exec_child(static_cast<SpawnArgs*>(args)); }

// The child's stack, on the parent's (which waits meanwhile): exec_child's
// few frames, with room for a sanitizer's interceptors.
constexpr std::size_t kSpawnStack = 32 * 1024;

// Starts `a`'s child as vfork() does: the child shares the parent's memory
// until its exec, so that spawning copies no page tables and takes no
// copy-on-write faults afterwards (a fork of freehad's whole process every
// MonitorInterval= was much of an idle active node's CPU time), and the
// parent resumes once the exec has happened or failed. Returns the pid, or a
// negative errno; a failure before or of the exec is in a->error.
pid_t spawn_child(SpawnArgs* a) {
    alignas(16) unsigned char stack[kSpawnStack];
    // Every signal blocked across the clone: a handler must never run in
    // the child, on the parent's memory; the child restores the defaults.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    a->error = 0;
    pid_t pid = clone(exec_child_entry, stack + sizeof stack, CLONE_VM | CLONE_VFORK | SIGCHLD, a);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return pid < 0 ? -clone_errno : pid;
}
}  // namespace

struct HookRunner::Child {
    HookRunner* runner = nullptr;
    std::string name;
    pid_t pid = -1;
    Usec timeout;
    Usec deadline;  // CLOCK_MONOTONIC: started + timeout
    EventSourcePtr exit_source;
    EventSourcePtr timeout_source;
    EventSourcePtr kill_source;
    std::string termination;  // why we signalled it, if we did
};

// Reads a hook's stdout/stderr and logs it line by line (outside journald).
// It lives until EOF, which may come after the hook exits: starthasrv's
// background services inherit the pipe, and closing it early would hand
// them SIGPIPE. Past kMaxLingeringOutputs such pipes the oldest is let go.
struct HookRunner::OutputPipe {
    HookRunner* runner = nullptr;
    UniqueFd fd;
    EventSourcePtr source;
    pid_t pid = -1;
    std::string tag;
    std::string partial;
    bool hook_ended = false;

    void flush_partial() {
        if (!partial.empty()) runner->say(LOG_INFO, tag + partial);
        partial.clear();
    }

    static int on_readable(sd_event_source*, int fd, uint32_t, void* userdata) {
        return log::guarded("hook output", [&]() -> int {
            auto* p = static_cast<OutputPipe*>(userdata);
            char buf[4096];
            ssize_t n = read(fd, buf, sizeof buf);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
            if (n <= 0) {
                p->flush_partial();
                p->runner->pipes_.remove_if([p](const auto& q) { return q.get() == p; });
                return 0;
            }
            p->partial.append(buf, static_cast<std::size_t>(n));
            std::size_t nl;
            while ((nl = p->partial.find('\n')) != std::string::npos) {
                p->runner->say(LOG_INFO, p->tag + p->partial.substr(0, nl));
                p->partial.erase(0, nl + 1);
            }
            if (p->partial.size() > kMaxLoggedLine) p->flush_partial();
            return 0;
        });
    }
};

HookRunner::HookRunner(sd_event* event, std::string hooks_directory, ServiceScope* scope, Finished finished,
                       Killed killed)
    : event_(event),
      directory_(std::move(hooks_directory)),
      scope_(scope),
      finished_(std::move(finished)),
      killed_(std::move(killed)) {}

HookRunner::~HookRunner() = default;

void HookRunner::say(int priority, const std::string& text) const {
    if (group_.empty())
        log::message(priority, text);
    else
        log::event(priority, {}, "group " + group_ + ": " + text, {{"FREEHA_GROUP", group_}});
}

int HookRunner::init(std::string* error) {
    sd_event_source* s = nullptr;
    // Created once, so that reporting an outcome never depends on allocating a source then.
    int r = sd_event_add_defer(event_, &s, on_deliver, this);
    if (r < 0) {
        *error = log::with_errno("cannot create the hook runner's event source", r);
        return r;
    }
    deliver_.reset(s);
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
    return 0;
}

std::string check_hooks(const std::string& hooks_directory) {
    for (HookKind k : kHookKinds) {
        std::string path = hooks_directory + "/" + std::string(hook_name(k));
        struct stat st {};
        if (stat(path.c_str(), &st) < 0) return log::with_errno("hook " + path, -errno);
        if (!S_ISREG(st.st_mode) || access(path.c_str(), X_OK) < 0)
            return "hook " + path + " is not an executable file";
    }
    return "";
}

UniqueFd HookRunner::output_for(const std::string& name, UniqueFd* pipe_read, std::string* error) {
    if (log::to_journal()) {
        // journald holds the other end: background services that inherit it
        // keep logging under the hook's name, and freehad holds nothing open.
        if (UniqueFd stream = journal_stream(name)) return stream;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        *error = log::with_errno("pipe2", -errno);
        return UniqueFd();
    }
    pipe_read->reset(fds[0]);
    return UniqueFd(fds[1]);
}

std::unique_ptr<HookRunner::Child> HookRunner::spawn(const std::string& name, const std::vector<std::string>& args,
                                                     Usec timeout, const std::vector<std::string>& environment,
                                                     std::string* error) {
    std::string path = directory_ + "/" + name;
    UniqueFd read_end;
    UniqueFd output = output_for(name, &read_end, error);
    if (!output) return nullptr;
    // Everything the child needs is built before it starts: it only calls async-signal-safe functions.
    std::vector<std::string> arg_copies{path};
    arg_copies.insert(arg_copies.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : arg_copies) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_copies = environment;
    std::vector<char*> envp;
    for (auto& e : env_copies) envp.push_back(e.data());
    envp.push_back(nullptr);

    SpawnArgs spawn_args{path.c_str(), argv.data(), envp.data(), output.get(), scope_ ? scope_->procs_fd() : -1, 0};
    pid_t pid = spawn_child(&spawn_args);
    if (pid < 0) {
        *error = log::with_errno("cannot start a process for " + path, pid);
        return nullptr;
    }
    output.reset();
    // The parent resumes once the child has exec'd, or has failed and exited.
    if (spawn_args.error != 0) {
        waitpid(pid, nullptr, 0);  // it has exited already: _exit(127) after its failure
        *error = log::with_errno("cannot run " + path, -spawn_args.error);
        return nullptr;
    }

    auto child = std::make_unique<Child>();
    child->runner = this;
    child->name = name;
    child->pid = pid;
    child->timeout = timeout;
    std::uint64_t started = 0;
    sd_event_now(event_, CLOCK_MONOTONIC, &started);
    child->deadline = Usec(started) + timeout;
    sd_event_source* raw = nullptr;
    int r = sd_event_add_child(event_, &raw, pid, WEXITED, on_child, child.get());
    if (r < 0) {
        // Without a child source nobody would reap it: kill and reap it now (quick: SIGKILL).
        ::kill(-pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        *error = log::with_errno("cannot watch " + name, r);
        return nullptr;
    }
    child->exit_source.reset(raw);
    // If the daemon ends while the hook runs, the source's destruction kills and reaps it.
    sd_event_source_set_child_process_own(raw, true);
    r = sd_event_add_time_relative(event_, &raw, CLOCK_MONOTONIC, timeout.count(), (10 * kUsecPerMsec).count(),
                                   on_timeout, child.get());
    if (r < 0) {
        // An unbounded hook would hold the node for ever: end it now, it counts as failed.
        ::kill(-pid, SIGKILL);
        child->termination = "could not be bounded by a timeout";
        say(LOG_ERR, log::with_errno("cannot bound " + name + " by a timeout; killed it", r));
    } else {
        child->timeout_source.reset(raw);
    }
    if (read_end) forward_output(std::move(read_end), name, pid);
    // The monitor runs every MonitorInterval=: its routine runs are not
    // logged (two journal entries every 2 s, and a wake-up of the log's
    // thread for each), only a failing one, by its end.
    if (name != hook_name(HookKind::Monitor)) say(LOG_DEBUG, name + "[" + std::to_string(pid) + "] started");
    return child;
}

void HookRunner::forward_output(UniqueFd read_end, const std::string& name, pid_t pid) {
    auto pipe = std::make_unique<OutputPipe>();
    pipe->runner = this;
    pipe->pid = pid;
    pipe->tag = name + "[" + std::to_string(pid) + "]: ";
    fcntl(read_end.get(), F_SETFL, O_NONBLOCK);
    sd_event_source* raw = nullptr;
    int r = sd_event_add_io(event_, &raw, read_end.get(), EPOLLIN, OutputPipe::on_readable, pipe.get());
    if (r < 0) {
        say(LOG_WARNING, log::with_errno("cannot forward the output of " + name, r));
        return;  // the read end closes: the hook's writes fail, it still runs
    }
    pipe->source.reset(raw);
    pipe->fd = std::move(read_end);
    pipes_.push_back(std::move(pipe));
}

void HookRunner::report_later(HookKind kind, HookOutcome outcome) {
    outcomes_.emplace_back(kind, std::move(outcome));
    sd_event_source_set_enabled(deliver_.get(), SD_EVENT_ONESHOT);
}

int HookRunner::on_deliver(sd_event_source*, void* userdata) {
    return log::guarded("HookRunner::on_deliver", [&]() -> int {
        auto* self = static_cast<HookRunner*>(userdata);
        while (!self->outcomes_.empty()) {
            auto [kind, outcome] = std::move(self->outcomes_.front());
            self->outcomes_.pop_front();
            self->finished_(kind, outcome);
        }
        if (std::exchange(self->killed_owed_, false)) self->killed_();
        return 0;
    });
}

void HookRunner::run(HookKind kind, Usec timeout, const std::vector<std::string>& environment) {
    std::string error;
    service_ = spawn(std::string(hook_name(kind)), {}, timeout, environment, &error);
    service_kind_ = kind;
    if (service_) return;
    // Reported from a later loop iteration, as every other outcome.
    say(LOG_ERR, error);
    service_kind_.reset();
    report_later(kind, HookOutcome{false, "could not be started: " + error});
}

void HookRunner::cancel(HookKind kind) {
    if (service_ && service_kind_ == kind) terminate(service_.get(), "canceled");
}

bool HookRunner::watches(pid_t pid) const {
    return pid == exiting_ || (service_ && service_->pid == pid) || (alert_ && alert_->pid == pid);
}

void HookRunner::kill_done() {
    killing_ = false;
    kill_ends_at_reap_ = false;
    // A stop that was waiting for its leftovers: the kill has ended them.
    if (stop_outcome_) report_later(HookKind::Stop, HookOutcome{false, "killed"});
    stop_outcome_.reset();
    killed_owed_ = true;
    sd_event_source_set_enabled(deliver_.get(), SD_EVENT_ONESHOT);
    start_next_alert();
}

void HookRunner::kill_services() {
    if (killing_) return;
    killing_ = true;
    if (service_) {
        service_->termination = "killed";
        service_->timeout_source.reset();
        service_->kill_source.reset();
    }
    leftovers_deadline_.reset();
    if (scope_ != nullptr) {
        kill_scope();
        return;
    }
    if (!service_) {  // no scope and no hook: nothing of the services is within reach
        kill_done();
        return;
    }
    kill_ends_at_reap_ = true;
    ::kill(-service_->pid, SIGKILL);
}

// The fence is confirmed only once the scope is known to be empty: a kill or
// a watch that fails (EMFILE, ENOMEM) is retried, never taken for done. Kill
// first, log after; the first failure is logged, the retries are not.
void HookRunner::kill_scope() {
    int r = scope_->kill();
    if (r >= 0) r = scope_->when_empty([this] {
        kill_retry_.reset();
        kill_done();
    });
    if (r >= 0) return;
    if (service_) ::kill(-service_->pid, SIGKILL);  // what can be reached meanwhile
    bool first = !kill_retry_;
    sd_event_source* raw = nullptr;
    int t = sd_event_add_time_relative(event_, &raw, CLOCK_MONOTONIC, kKillRetry.count(), 0, on_kill_retry, this);
    if (t >= 0) kill_retry_.reset(raw);
    if (first)
        say(LOG_ERR, log::with_errno("cannot kill " + scope_->describe() + "; retrying every " +
                                       format_timespan(kKillRetry) + ", the fence is not confirmed until it is empty",
                                   r));
    if (t < 0) say(LOG_ERR, log::with_errno("cannot arm the fence's retry timer; the fence stays unconfirmed", t));
}

int HookRunner::on_kill_retry(sd_event_source*, uint64_t, void* userdata) {
    return log::guarded("HookRunner::on_kill_retry", [&]() -> int {
        static_cast<HookRunner*>(userdata)->kill_scope();
        return 0;
    });
}

void HookRunner::alert(NodeState state, Usec timeout, const std::vector<std::string>& environment) {
    std::string path = directory_ + "/" + kAlertHook;
    if (access(path.c_str(), X_OK) < 0) return;  // optional, as in FreeHA
    alert_queue_.push_back(PendingAlert{state, timeout, environment});
    if (!alert_) start_next_alert();
}

void HookRunner::start_next_alert() {
    // Not into a cgroup that is being emptied: the kill must be able to end.
    while (!alert_ && !alert_queue_.empty() && !killing_) {
        PendingAlert a = std::move(alert_queue_.front());
        alert_queue_.pop_front();
        std::string error;
        alert_ = spawn(kAlertHook, {std::to_string(freeha_state_number(a.state)), std::string(to_string(a.state))},
                       a.timeout, a.environment, &error);
        if (!alert_) say(LOG_ERR, error);
    }
}

void HookRunner::terminate(Child* child, std::string reason) {
    if (!child->termination.empty()) return;
    child->termination = std::move(reason);
    child->timeout_source.reset();
    // The hook's session id is its pid: signal the whole group, so that
    // whatever it started in the foreground goes too.
    ::kill(-child->pid, SIGTERM);
    sd_event_source* raw = nullptr;
    int r = sd_event_add_time_relative(event_, &raw, CLOCK_MONOTONIC, kHookKillGrace.count(),
                                       (10 * kUsecPerMsec).count(), on_kill, child);
    if (r < 0) {
        ::kill(-child->pid, SIGKILL);
        say(LOG_ERR, log::with_errno("cannot time the SIGKILL of " + child->name + "; sent it at once", r));
        return;
    }
    child->kill_source.reset(raw);
}

int HookRunner::on_timeout(sd_event_source*, uint64_t, void* userdata) {
    return log::guarded("HookRunner::on_timeout", [&]() -> int {
        auto* child = static_cast<Child*>(userdata);
        child->runner->terminate(child, "timed out after " + format_timespan(child->timeout));
        child->runner->say(LOG_WARNING, child->name + "[" + std::to_string(child->pid) + "] timed out after " +
                     format_timespan(child->timeout) + ": sent SIGTERM to its process group");
        return 0;
    });
}

int HookRunner::on_kill(sd_event_source*, uint64_t, void* userdata) {
    return log::guarded("HookRunner::on_kill", [&]() -> int {
        auto* child = static_cast<Child*>(userdata);
        ::kill(-child->pid, SIGKILL);
        child->kill_source.reset();
        child->runner->say(LOG_WARNING, child->name + "[" + std::to_string(child->pid) + "] still running " +
                     format_timespan(kHookKillGrace) + " after SIGTERM: sent SIGKILL to its process group");
        return 0;
    });
}

int HookRunner::on_child(sd_event_source*, const siginfo_t* si, void* userdata) {
    return log::guarded("HookRunner::on_child", [&]() -> int {
        auto* child = static_cast<Child*>(userdata);
        HookRunner* runner = child->runner;
        // Its source reaps it once this returns: until then it is still watched.
        runner->exiting_ = child->pid;
        struct ResetExiting {
            pid_t& pid;
            ~ResetExiting() { pid = -1; }
        } reset{runner->exiting_};
        runner->child_exited(child, *si);
        return 0;
    });
}

void HookRunner::child_exited(Child* child, const siginfo_t& info) {
    HookOutcome outcome;
    if (!child->termination.empty()) {
        outcome.description = child->termination;
    } else if (info.si_code == CLD_EXITED) {
        outcome.success = info.si_status == 0;
        outcome.description = "exited with status " + std::to_string(info.si_status);
    } else {
        outcome.description = "killed by signal " + log::signal_name(info.si_status);
    }
    if (!outcome.success || child->name != hook_name(HookKind::Monitor))
        say(outcome.success ? LOG_DEBUG : LOG_INFO,
                     child->name + "[" + std::to_string(child->pid) + "] " + outcome.description);

    // Its output may outlive it (background services); bound how many such outputs stay open.
    std::size_t lingering = 0;
    for (auto& p : pipes_) {
        if (p->pid == child->pid) p->hook_ended = true;
        lingering += p->hook_ended;
    }
    for (auto it = pipes_.begin(); lingering > kMaxLingeringOutputs && it != pipes_.end();) {
        if (!(*it)->hook_ended) {
            ++it;
            continue;
        }
        say(LOG_WARNING, (*it)->tag + "no longer logged: processes this hook left running still hold its output; "
                                  "redirect the output of background services");
        (*it)->flush_partial();
        it = pipes_.erase(it);
        --lingering;
    }

    // The child is reaped when this handler returns; its source must outlive
    // the call, so move ownership out before resetting.
    if (child == alert_.get()) {
        std::unique_ptr<Child> done = std::move(alert_);
        sd_event_source_set_child_process_own(done->exit_source.get(), false);
        start_next_alert();
        return;
    }
    if (child == service_.get()) {
        std::unique_ptr<Child> done = std::move(service_);
        sd_event_source_set_child_process_own(done->exit_source.get(), false);
        HookKind kind = *std::exchange(service_kind_, std::nullopt);
        if (kill_ends_at_reap_) kill_done();  // a process-group kill is done when its hook is reaped
        if (kind == HookKind::Stop && scope_ != nullptr && !killing_) {
            confirm_stop(std::move(outcome), done->deadline);
            return;
        }
        finished_(kind, outcome);
    }
}

// A stop counts once nothing the hooks started is left, whatever stophasrv's
// exit status says: a `kill $(cat pidfile)` that does not wait returns while
// the daemon still runs, and a STANDBY announced then lets a peer start the
// services beside it. What is left at stophasrv's own deadline is killed.
void HookRunner::confirm_stop(HookOutcome outcome, Usec deadline) {
    stop_outcome_ = std::move(outcome);
    int r = scope_->when_empty([this] { stop_confirmed(); });
    if (r < 0) {
        say(LOG_ERR, log::with_errno("cannot watch " + scope_->describe() + " for the end of the stop", r));
        kill_leftovers();
        return;
    }
    if (!stop_outcome_) return;  // empty already
    say(LOG_INFO, "stophasrv ended; waiting for the processes it stopped to exit (at most until its timeout)");
    sd_event_source* raw = nullptr;
    r = sd_event_add_time(event_, &raw, CLOCK_MONOTONIC, deadline.count(), (10 * kUsecPerMsec).count(),
                          on_leftovers_deadline, this);
    if (r < 0) {
        say(LOG_ERR, log::with_errno("cannot time the wait for the end of the stop", r));
        kill_leftovers();
        return;
    }
    leftovers_deadline_.reset(raw);
}

void HookRunner::stop_confirmed() {
    leftovers_deadline_.reset();
    if (!stop_outcome_) return;
    HookOutcome outcome = std::move(*stop_outcome_);
    stop_outcome_.reset();
    finished_(HookKind::Stop, outcome);
}

void HookRunner::kill_leftovers() {
    leftovers_deadline_.reset();
    // Kill first, log after.
    int r = scope_->kill();
    say(LOG_WARNING, "stophasrv " + stop_outcome_->description + ", but processes the hooks started still run at "
                 "its timeout: killing them with SIGKILL");
    // The stop failed: in a stop phase the core kills (at once: nothing is left) and cleans up once more.
    stop_outcome_ = HookOutcome{false, stop_outcome_->description + ", but left processes running at its timeout "
                                                                     "(killed)"};
    if (r >= 0) r = scope_->when_empty([this] { stop_confirmed(); });
    // Never confirmed on a guess: the stop stays unfinished (the node
    // announces STOPPING, so no peer starts), and with quorum rules the
    // lease's deadline fences it.
    if (r < 0) say(LOG_ERR, log::with_errno("cannot kill what is left in " + scope_->describe(), r));
}

int HookRunner::on_leftovers_deadline(sd_event_source*, uint64_t, void* userdata) {
    return log::guarded("HookRunner::on_leftovers_deadline", [&]() -> int {
        static_cast<HookRunner*>(userdata)->kill_leftovers();
        return 0;
    });
}

}  // namespace freeha
