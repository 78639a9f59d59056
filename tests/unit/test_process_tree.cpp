// The process-tree fence: as a child subreaper freehad finds, kills and reaps what a hook detached, and never reaps a watched child.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <string>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/process_tree.h"

using namespace freeha;
using ::testing::Contains;
using ::testing::Not;

namespace {

// Forks a child that forks a grandchild and exits at once, as a daemon's
// double fork does; the grandchild leaves the session too and then runs
// `body`. Returns the grandchild's PID, orphaned (re-parented to us, the subreaper).
template <class Body>
pid_t detach(Body body) {
    int fds[2];
    if (pipe(fds) < 0) return -1;
    pid_t child = fork();
    if (child == 0) {
        pid_t grandchild = fork();
        if (grandchild == 0) {
            setsid();
            body();
            _exit(0);
        }
        (void)!write(fds[1], &grandchild, sizeof grandchild);
        _exit(0);
    }
    pid_t grandchild = -1;
    (void)!read(fds[0], &grandchild, sizeof grandchild);
    close(fds[0]);
    close(fds[1]);
    waitpid(child, nullptr, 0);
    return grandchild;
}

char state_of(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line)) return '-';  // gone: reaped
    return line[line.rfind(')') + 2];
}

class ProcessTreeTest : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_GE(sd_event_new(&event_), 0);
        std::string why;
        reaper_ = OrphanReaper::open(event_, [this](pid_t pid) { return pid == watched_; }, &why);
        ASSERT_TRUE(reaper_) << why;
        tree_ = std::make_unique<ProcessTree>(event_, reaper_);
    }
    void TearDown() override {
        tree_.reset();
        reaper_.reset();
        sd_event_unref(event_);
    }
    // Runs the loop until `done` holds, or for at most 5 s.
    template <class Done>
    bool run_until(Done done) {
        for (int i = 0; i < 500 && !done(); ++i) sd_event_run(event_, 10 * 1000);
        return done();
    }

    sd_event* event_ = nullptr;
    std::shared_ptr<OrphanReaper> reaper_;
    std::unique_ptr<ProcessTree> tree_;
    pid_t watched_ = -1;
};

TEST_F(ProcessTreeTest, AFenceKillsAndReapsWhatADoubleForkDetached) {
    pid_t daemon = detach([] {
        for (;;) pause();
    });
    ASSERT_GT(daemon, 0);
    EXPECT_THAT(ProcessTree::running_descendants(getpid()), Contains(daemon));
    bool emptied = false;
    ASSERT_GE(tree_->kill(), 0);
    ASSERT_GE(tree_->when_empty([&] { emptied = true; }), 0);
    ASSERT_TRUE(run_until([&] { return emptied; })) << "the tree never emptied";
    EXPECT_THAT(ProcessTree::running_descendants(getpid()), Not(Contains(daemon)));
    // Re-parented to us and killed: reaped here, no zombie is left.
    EXPECT_TRUE(run_until([&] { return state_of(daemon) == '-'; })) << "state " << state_of(daemon);
}

// No fence, no wait: the one reaper every group's tree shares reaps an ended orphan on its own timer.
TEST_F(ProcessTreeTest, AnOrphanThatEndsIsReapedWithoutAFence) {
    pid_t daemon = detach([] { usleep(50 * 1000); });
    ASSERT_GT(daemon, 0);
    EXPECT_TRUE(run_until([&] { return state_of(daemon) == '-'; })) << "state " << state_of(daemon);
}

TEST_F(ProcessTreeTest, AKillReachesWhatAForkInFlightAdds) {
    // A daemon that forks without pause: each check kills again what appeared.
    pid_t daemon = detach([] {
        for (;;)
            if (fork() == 0) pause();
    });
    ASSERT_GT(daemon, 0);
    bool emptied = false;
    ASSERT_GE(tree_->kill(), 0);
    ASSERT_GE(tree_->when_empty([&] { emptied = true; }), 0);
    ASSERT_TRUE(run_until([&] { return emptied; })) << "the tree never emptied";
    EXPECT_TRUE(ProcessTree::running_descendants(getpid()).empty());
}

TEST_F(ProcessTreeTest, WaitingForEmptinessKillsNothing) {
    char marker[] = "/tmp/freeha-process-tree-XXXXXX";
    int fd = mkstemp(marker);
    ASSERT_GE(fd, 0);
    close(fd);
    unlink(marker);
    pid_t daemon = detach([&] {
        usleep(200 * 1000);
        close(open(marker, O_CREAT | O_WRONLY, 0600));  // it ran to its end
    });
    ASSERT_GT(daemon, 0);
    bool emptied = false;
    ASSERT_GE(tree_->when_empty([&] { emptied = true; }), 0);
    EXPECT_FALSE(emptied);
    ASSERT_TRUE(run_until([&] { return emptied; }));
    EXPECT_EQ(access(marker, F_OK), 0) << "the daemon did not run to its end";
    unlink(marker);
    EXPECT_TRUE(run_until([&] { return state_of(daemon) == '-'; })) << "not reaped";
}

TEST_F(ProcessTreeTest, AWatchedChildsExitStatusIsLeftToItsWatcher) {
    pid_t hook = fork();
    if (hook == 0) _exit(7);
    watched_ = hook;
    ASSERT_TRUE(run_until([&] { return state_of(hook) == 'Z'; }));
    bool emptied = false;
    ASSERT_GE(tree_->when_empty([&] { emptied = true; }), 0);  // reaps orphans first
    EXPECT_TRUE(emptied);  // a zombie runs nothing
    siginfo_t info{};
    ASSERT_EQ(waitid(P_PID, static_cast<id_t>(hook), &info, WEXITED | WNOHANG), 0);
    EXPECT_EQ(info.si_pid, hook);
    EXPECT_EQ(info.si_code, CLD_EXITED);
    EXPECT_EQ(info.si_status, 7);
}

}  // namespace

// A daemon detached by a hook, running `sleep` with the environment `env` (what /proc/PID/environ then shows).
pid_t detached_sleep(const char* env) {
    return detach([env] {
        char* const argv[] = {const_cast<char*>("sleep"), const_cast<char*>("100"), nullptr};
        char* const with[] = {const_cast<char*>(env), nullptr};
        char* const without[] = {nullptr};
        execve("/bin/sleep", argv, env ? with : without);
    });
}

// Several service groups without a cgroup: each group's tree keeps to the
// processes whose environment names it; one that names none is every group's.
TEST_F(ProcessTreeTest, AGroupsFenceKillsItsOwnProcessesAndTheUnnamedOnes) {
    auto db = std::make_unique<ProcessTree>(event_, reaper_);
    auto web = std::make_unique<ProcessTree>(event_, reaper_);
    db->keep_to("db", [](pid_t) { return false; });
    web->keep_to("web", [](pid_t) { return false; });
    EXPECT_EQ(db->describe(),
              "freehad's process tree (a child subreaper), the processes whose environment says FREEHA_GROUP=db");
    pid_t db_sleep = detached_sleep("FREEHA_GROUP=db");
    pid_t web_sleep = detached_sleep("FREEHA_GROUP=web");
    pid_t unnamed = detached_sleep(nullptr);
    // Until their exec they show this process's environment: wait for the sleeps.
    auto exec_done = [](pid_t pid) {
        std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
        std::string comm;
        return std::getline(in, comm) && comm == "sleep";
    };
    ASSERT_TRUE(run_until([&] { return exec_done(db_sleep) && exec_done(web_sleep) && exec_done(unnamed); }));
    EXPECT_TRUE(ProcessTree::in_group(db_sleep, "db"));
    EXPECT_FALSE(ProcessTree::in_group(db_sleep, "web"));
    EXPECT_TRUE(ProcessTree::in_group(unnamed, "web"));

    bool emptied = false;
    ASSERT_GE(db->kill(), 0);
    ASSERT_GE(db->when_empty([&] { emptied = true; }), 0);
    ASSERT_TRUE(run_until([&] { return emptied; })) << "db's share never emptied";
    auto running = ProcessTree::running_descendants(getpid());
    EXPECT_THAT(running, Not(Contains(db_sleep)));
    EXPECT_THAT(running, Not(Contains(unnamed)));
    EXPECT_THAT(running, Contains(web_sleep)) << "db's fence killed web's process";

    emptied = false;
    ASSERT_GE(web->kill(), 0);
    ASSERT_GE(web->when_empty([&] { emptied = true; }), 0);
    ASSERT_TRUE(run_until([&] { return emptied; }));
    EXPECT_TRUE(ProcessTree::running_descendants(getpid()).empty());
}
