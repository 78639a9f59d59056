#include "daemon/hook_runner.h"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/log.h"

namespace freeha {

namespace {
constexpr const char* kAlertHook = "alerthasrv";
constexpr std::size_t kMaxLoggedLine = 4096;
}  // namespace

struct HookRunner::Child {
    HookRunner* runner = nullptr;
    std::string name;
    pid_t pid = -1;
    Usec timeout;
    EventSourcePtr exit_source;
    EventSourcePtr timeout_source;
    EventSourcePtr kill_source;
    std::string termination;  // why we signalled it, if we did
};

// Reads a hook's stdout/stderr and logs it line by line. It lives until EOF,
// which may come after the hook exits: starthasrv's background services
// inherit the pipe, and closing it early would hand them SIGPIPE.
struct HookRunner::OutputPipe {
    HookRunner* runner = nullptr;
    UniqueFd fd;
    EventSourcePtr source;
    std::string tag;
    std::string partial;

    static int on_readable(sd_event_source*, int fd, uint32_t, void* userdata) {
        auto* p = static_cast<OutputPipe*>(userdata);
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
        if (n <= 0) {
            if (!p->partial.empty()) log::info(p->tag + p->partial);
            p->runner->pipes_.remove_if([p](const auto& q) { return q.get() == p; });
            return 0;
        }
        p->partial.append(buf, static_cast<std::size_t>(n));
        std::size_t nl;
        while ((nl = p->partial.find('\n')) != std::string::npos) {
            log::info(p->tag + p->partial.substr(0, nl));
            p->partial.erase(0, nl + 1);
        }
        if (p->partial.size() > kMaxLoggedLine) {
            log::info(p->tag + p->partial);
            p->partial.clear();
        }
        return 0;
    }
};

HookRunner::HookRunner(sd_event* event, std::string hooks_directory, Finished finished)
    : event_(event), directory_(std::move(hooks_directory)), finished_(std::move(finished)) {}

HookRunner::~HookRunner() = default;

std::string check_hooks(const std::string& hooks_directory) {
    for (HookKind k : {HookKind::Start, HookKind::Stop, HookKind::Monitor}) {
        std::string path = hooks_directory + "/" + std::string(hook_name(k));
        struct stat st {};
        if (stat(path.c_str(), &st) < 0) return log::with_errno("hook " + path, -errno);
        if (!S_ISREG(st.st_mode) || access(path.c_str(), X_OK) < 0)
            return "hook " + path + " is not an executable file";
    }
    return "";
}

std::unique_ptr<HookRunner::Child> HookRunner::spawn(const std::string& name, const std::vector<std::string>& args,
                                                     Usec timeout, const std::vector<std::string>& environment,
                                                     std::string* error) {
    std::string path = directory_ + "/" + name;
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) < 0) {
        *error = log::with_errno("pipe2", -errno);
        return nullptr;
    }
    UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDERR_FILENO);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t empty, all;
    sigemptyset(&empty);
    sigfillset(&all);
    // The daemon blocks the signals sd-event handles; a hook must not inherit that.
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);

    std::vector<char*> argv{path.data()};
    std::vector<std::string> arg_copies = args;
    for (auto& a : arg_copies) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_copies = environment;
    std::vector<char*> envp;
    for (auto& e : env_copies) envp.push_back(e.data());
    envp.push_back(nullptr);

    pid_t pid = -1;
    int r = posix_spawn(&pid, path.c_str(), &actions, &attr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (r != 0) {
        *error = log::with_errno("cannot run " + path, -r);
        return nullptr;
    }
    write_end.reset();

    auto child = std::make_unique<Child>();
    child->runner = this;
    child->name = name;
    child->pid = pid;
    child->timeout = timeout;
    sd_event_source* raw = nullptr;
    r = sd_event_add_child(event_, &raw, pid, WEXITED, on_child, child.get());
    if (r < 0) {
        // Without a child source nobody would reap it: kill it now.
        ::kill(-pid, SIGKILL);
        *error = log::with_errno("sd_event_add_child for " + name, r);
        return nullptr;
    }
    child->exit_source.reset(raw);
    // If the daemon ends while the hook runs, the source's destruction kills and reaps it.
    sd_event_source_set_child_process_own(raw, true);
    r = sd_event_add_time_relative(event_, &raw, CLOCK_MONOTONIC, timeout.count(), (10 * kUsecPerMsec).count(), on_timeout,
                                   child.get());
    if (r >= 0) child->timeout_source.reset(raw);
    forward_output(std::move(read_end), name, pid);
    log::debug(name + "[" + std::to_string(pid) + "] started");
    return child;
}

void HookRunner::forward_output(UniqueFd read_end, const std::string& name, pid_t pid) {
    auto pipe = std::make_unique<OutputPipe>();
    pipe->runner = this;
    pipe->tag = name + "[" + std::to_string(pid) + "]: ";
    fcntl(read_end.get(), F_SETFL, O_NONBLOCK);
    sd_event_source* raw = nullptr;
    if (sd_event_add_io(event_, &raw, read_end.get(), EPOLLIN, OutputPipe::on_readable, pipe.get()) < 0) return;
    pipe->source.reset(raw);
    pipe->fd = std::move(read_end);
    pipes_.push_back(std::move(pipe));
}

void HookRunner::run(HookKind kind, Usec timeout, const std::vector<std::string>& environment) {
    std::string error;
    service_ = spawn(std::string(hook_name(kind)), {}, timeout, environment, &error);
    service_kind_ = kind;
    if (service_) return;
    // Report the failure from a later loop iteration, as every other outcome.
    log::error(error);
    spawn_failure_outcome_ = HookOutcome{false, "could not be started: " + error};
    sd_event_source* raw = nullptr;
    if (sd_event_add_defer(event_, &raw, on_spawn_failed, this) >= 0) spawn_failure_.reset(raw);
}

int HookRunner::on_spawn_failed(sd_event_source*, void* userdata) {
    auto* self = static_cast<HookRunner*>(userdata);
    HookKind kind = *self->service_kind_;
    HookOutcome outcome = *std::exchange(self->spawn_failure_outcome_, std::nullopt);
    self->service_kind_.reset();
    self->spawn_failure_.reset();
    self->finished_(kind, outcome);
    return 0;
}

void HookRunner::cancel(HookKind kind) {
    if (service_ && service_kind_ == kind) terminate(service_.get(), "canceled");
}

void HookRunner::kill(HookKind kind) {
    if (!service_ || service_kind_ != kind) return;
    Child* child = service_.get();
    if (child->termination.empty()) child->termination = "killed";
    child->timeout_source.reset();
    child->kill_source.reset();
    ::kill(-child->pid, SIGKILL);
}

void HookRunner::alert(NodeState state, Usec timeout, const std::vector<std::string>& environment) {
    std::string path = directory_ + "/" + kAlertHook;
    if (access(path.c_str(), X_OK) < 0) return;  // optional, as in FreeHA
    alert_queue_.push_back(PendingAlert{state, timeout, environment});
    if (!alert_) start_next_alert();
}

void HookRunner::start_next_alert() {
    while (!alert_ && !alert_queue_.empty()) {
        PendingAlert a = std::move(alert_queue_.front());
        alert_queue_.pop_front();
        std::string error;
        alert_ = spawn(kAlertHook, {std::to_string(freeha_state_number(a.state)), std::string(to_string(a.state))},
                       a.timeout, a.environment, &error);
        if (!alert_) log::error(error);
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
    if (sd_event_add_time_relative(event_, &raw, CLOCK_MONOTONIC, kHookKillGrace.count(), (10 * kUsecPerMsec).count(), on_kill,
                                   child) >= 0)
        child->kill_source.reset(raw);
}

int HookRunner::on_timeout(sd_event_source*, uint64_t, void* userdata) {
    auto* child = static_cast<Child*>(userdata);
    log::warning(child->name + "[" + std::to_string(child->pid) + "] timed out after " +
                 format_timespan(child->timeout) + ": sending SIGTERM to its process group");
    child->runner->terminate(child, "timed out after " + format_timespan(child->timeout));
    return 0;
}

int HookRunner::on_kill(sd_event_source*, uint64_t, void* userdata) {
    auto* child = static_cast<Child*>(userdata);
    log::warning(child->name + "[" + std::to_string(child->pid) + "] still running " +
                 format_timespan(kHookKillGrace) + " after SIGTERM: sending SIGKILL to its process group");
    ::kill(-child->pid, SIGKILL);
    child->kill_source.reset();
    return 0;
}

int HookRunner::on_child(sd_event_source*, const siginfo_t* si, void* userdata) {
    auto* child = static_cast<Child*>(userdata);
    child->runner->child_exited(child, *si);
    return 0;
}

void HookRunner::child_exited(Child* child, const siginfo_t& info) {
    HookOutcome outcome;
    if (!child->termination.empty()) {
        outcome.description = child->termination;
    } else if (info.si_code == CLD_EXITED) {
        outcome.success = info.si_status == 0;
        outcome.description = "exited with status " + std::to_string(info.si_status);
    } else {
        outcome.description = std::string("killed by signal SIG") + sigabbrev_np(info.si_status);
    }
    log::message(outcome.success ? LOG_DEBUG : LOG_INFO,
                 child->name + "[" + std::to_string(child->pid) + "] " + outcome.description);

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
        finished_(kind, outcome);
    }
}

}  // namespace freeha
