// The hook runner: its fence confirmed only once the services' scope is known to be empty, and its spawn of a hook.
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <vector>

#include <csignal>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "daemon/hook_runner.h"
#include "daemon/log.h"
#include "daemon/service_scope.h"

using namespace freeha;

namespace {

// A scope whose kill fails `failures` times (as cgroup.kill does on EMFILE)
// and which is empty once a kill went through.
class FlakyScope : public ServiceScope {
public:
    explicit FlakyScope(int failures) : failures_(failures) {}
    std::string describe() const override { return "a test scope"; }
    int kill() override {
        ++kills;
        if (failures_ > 0) {
            --failures_;
            return -EMFILE;
        }
        killed_ = true;
        return 0;
    }
    int when_empty(std::function<void()> emptied) override {
        if (killed_) emptied();
        return 0;
    }
    int kills = 0;

private:
    int failures_;
    bool killed_ = false;
};

struct Loop {
    sd_event* event = nullptr;
    Loop() { sd_event_new(&event); }
    ~Loop() { sd_event_unref(event); }
    // Runs the loop until `done` or `limit` iterations.
    void run_until(const std::function<bool()>& done, int limit = 100) {
        for (int i = 0; i < limit && !done(); ++i) sd_event_run(event, 200 * 1000);
    }
};

}  // namespace

TEST(HookRunnerFence, AFailedKillIsRetriedAndConfirmedOnlyOnceItWentThrough) {
    for (int failures : {0, 1, 3}) {
        Loop loop;
        FlakyScope scope(failures);
        bool killed = false;
        HookRunner runner(loop.event, "/nonexistent", &scope, [](HookKind, const HookOutcome&) {},
                          [&] { killed = true; });
        std::string error;
        ASSERT_GE(runner.init(&error), 0) << error;
        runner.kill_services();
        // On main, a failed kill with no hook running was confirmed at once.
        loop.run_until([&] { return killed || scope.kills > failures; }, 1);
        if (failures > 0) {
            EXPECT_FALSE(killed) << failures << " failure(s): confirmed before any kill went through";
        }
        loop.run_until([&] { return killed; });
        EXPECT_TRUE(killed) << failures;
        EXPECT_EQ(scope.kills, failures + 1) << "the kill is tried until it goes through, then no more";
    }
}

// --- spawning (issue 19: a spawn that does not copy the daemon) --------------

namespace {

// A scope whose "cgroup.procs" is a pipe: what a hook writes to join it can be read back.
class PipeScope : public ServiceScope {
public:
    PipeScope() {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) throw std::runtime_error("pipe2");
        read_end_.reset(fds[0]);
        write_end_.reset(fds[1]);
    }
    std::string describe() const override { return "a pipe"; }
    int procs_fd() const override { return write_end_.get(); }
    int kill() override { return 0; }
    int when_empty(std::function<void()> emptied) override {
        emptied();
        return 0;
    }
    std::string joined() {
        char buf[64];
        ssize_t n = read(read_end_.get(), buf, sizeof buf);
        return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
    }

private:
    UniqueFd read_end_, write_end_;
};

// A hooks directory, SIGCHLD blocked as in freehad (sd-event watches children only so), and stderr
// (where the log writes outside journald) captured in a file.
class HookSpawn : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/freeha-hooks-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        sigprocmask(SIG_BLOCK, &chld, &saved_mask_);
        std::string log_path = dir_ + "/log";
        captured_.reset(open(log_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        saved_stderr_.reset(dup(STDERR_FILENO));
        dup2(captured_.get(), STDERR_FILENO);
    }
    void TearDown() override {
        log::flush(std::chrono::seconds(2));
        dup2(saved_stderr_.get(), STDERR_FILENO);
        sigprocmask(SIG_SETMASK, &saved_mask_, nullptr);
        std::filesystem::remove_all(dir_);
    }
    void write_hook(const std::string& name, const std::string& body, mode_t mode = 0755) {
        std::string path = dir_ + "/" + name;
        std::ofstream(path) << "#!/bin/sh\n" << body;
        chmod(path.c_str(), mode);
    }
    // What freehad has logged so far.
    std::string logged() {
        log::flush(std::chrono::seconds(2));
        std::ifstream in(dir_ + "/log");
        return std::string(std::istreambuf_iterator<char>(in), {});
    }
    // Runs `kind` once and waits for its outcome.
    HookOutcome run_once(HookRunner& runner, HookKind kind) {
        std::optional<HookOutcome> got;
        outcome_ = &got;
        runner.run(kind, Usec(10 * 1000 * 1000), {"FREEHA_TEST=1"});
        loop_.run_until([&] { return got.has_value(); }, 200);
        outcome_ = nullptr;
        return got.value_or(HookOutcome{false, "no outcome"});
    }
    HookRunner make_runner(ServiceScope* scope) {
        return HookRunner(loop_.event, dir_, scope, [this](HookKind, const HookOutcome& o) {
            if (outcome_) *outcome_ = o;
        }, [] {});
    }

    std::string dir_;
    Loop loop_;
    std::optional<HookOutcome>* outcome_ = nullptr;
    sigset_t saved_mask_{};
    UniqueFd captured_, saved_stderr_;
};

}  // namespace

TEST_F(HookSpawn, AMissingOrNotExecutableHookIsReportedAsNotStarted) {
    HookRunner runner = make_runner(nullptr);
    std::string error;
    ASSERT_GE(runner.init(&error), 0) << error;
    HookOutcome missing = run_once(runner, HookKind::Monitor);
    EXPECT_FALSE(missing.success);
    EXPECT_EQ(missing.description,
              "could not be started: cannot run " + dir_ + "/monitorhasrv: No such file or directory");
    write_hook("monitorhasrv", "exit 0\n", 0644);
    HookOutcome not_executable = run_once(runner, HookKind::Monitor);
    EXPECT_FALSE(not_executable.success);
    EXPECT_EQ(not_executable.description, "could not be started: cannot run " + dir_ + "/monitorhasrv: Permission denied");
    // Once fixed, it runs: a failed spawn left nothing behind that stands in the way.
    chmod((dir_ + "/monitorhasrv").c_str(), 0755);
    EXPECT_TRUE(run_once(runner, HookKind::Monitor).success);
}

TEST_F(HookSpawn, AHookJoinsTheScopeAndRunsInASessionOfItsOwnWithACleanSlateAndItsOutputLogged) {
    // Its session id is its pid; stdin is /dev/null; no signal blocked (freehad blocks those sd-event
    // handles, and the spawn blocks all of them for a moment); only the environment it was given.
    // The mask is read first, by the shell's builtins alone: while dash waits for a command it
    // forked it blocks every signal itself, so a grep of /proc/$$/status could see that mask.
    write_hook("monitorhasrv",
               "while read key value; do [ \"$key\" = SigBlk: ] && printf 'SigBlk:\\t%s\\n' \"$value\"; done"
               " < /proc/self/status\n"
               "set -- $(cut -d' ' -f6 /proc/$$/stat)\n"
               "[ \"$1\" = $$ ] && echo own-session\n"
               "read line || echo stdin-empty\n"
               "echo \"env=$FREEHA_TEST\" >&2\n"
               "exit 3\n");
    PipeScope scope;
    HookRunner runner = make_runner(&scope);
    std::string error;
    ASSERT_GE(runner.init(&error), 0) << error;
    HookOutcome outcome = run_once(runner, HookKind::Monitor);
    EXPECT_FALSE(outcome.success);
    EXPECT_EQ(outcome.description, "exited with status 3");
    EXPECT_EQ(scope.joined(), "0") << "the hook wrote 0 to the scope's procs file before its exec";
    loop_.run_until([&] { return logged().find("env=") != std::string::npos; }, 50);
    std::string log = logged();
    for (const char* line : {"]: own-session", "]: stdin-empty", "]: SigBlk:\t0000000000000000", "]: env=1"})
        EXPECT_NE(log.find(line), std::string::npos) << line << " not in:\n" << log;
    EXPECT_NE(log.find("monitorhasrv["), std::string::npos) << log;
}

// A spawn used to fork freehad: its page tables copied, then a copy-on-write
// fault for every page the daemon wrote afterwards, every MonitorInterval=
// on the active node. The child now shares the daemon's memory until its
// exec: the daemon's own thread takes no such faults.
TEST_F(HookSpawn, ASpawnDoesNotCopyTheDaemon) {
    write_hook("monitorhasrv", "exit 0\n");
    HookRunner runner = make_runner(nullptr);
    std::string error;
    ASSERT_GE(runner.init(&error), 0) << error;
    // Heap the daemon keeps, written between spawns as its loop writes its state.
    std::vector<char> state(256 * 1024, 1);
    auto faults = [] {
        rusage usage{};
        getrusage(RUSAGE_THREAD, &usage);
        return usage.ru_minflt;
    };
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(run_once(runner, HookKind::Monitor).success);  // warmed up
    constexpr int kSpawns = 20;
    long before = faults();
    for (int i = 0; i < kSpawns; ++i) {
        ASSERT_TRUE(run_once(runner, HookKind::Monitor).success);
        for (std::size_t at = 0; at < state.size(); at += 4096) state[at] = static_cast<char>(i);
    }
    long per_spawn = (faults() - before) / kSpawns;
    std::cout << "page faults of the daemon's thread per spawn: " << per_spawn << "\n";
    // A fork makes every written page fault again: the 64 pages of `state` and more.
    EXPECT_LT(per_spawn, 8);
}

// The monitor runs every 2 s by default: a routine run is not logged (it was
// two journal lines each time), a failing one is, and other hooks as before.
TEST_F(HookSpawn, ARoutineMonitorRunIsNotLoggedAFailingOneAndOtherHooksAre) {
    write_hook("monitorhasrv", "[ -f \"$(dirname \"$0\")/fail\" ] && exit 1\nexit 0\n");
    write_hook("starthasrv", "exit 0\n");
    HookRunner runner = make_runner(nullptr);
    std::string error;
    ASSERT_GE(runner.init(&error), 0) << error;
    ASSERT_TRUE(run_once(runner, HookKind::Monitor).success);
    EXPECT_EQ(logged(), "");
    ASSERT_TRUE(run_once(runner, HookKind::Start).success);
    std::string log = logged();
    EXPECT_NE(log.find("<7>starthasrv["), std::string::npos) << log;
    EXPECT_NE(log.find("] exited with status 0"), std::string::npos) << log;
    std::ofstream(dir_ + "/fail").close();
    ASSERT_FALSE(run_once(runner, HookKind::Monitor).success);
    EXPECT_NE(logged().find("<6>monitorhasrv["), std::string::npos) << logged();
    EXPECT_NE(logged().find("] exited with status 1"), std::string::npos) << logged();
}
