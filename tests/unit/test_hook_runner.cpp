// The hook runner's fence: confirmed only once the services' scope is known to be empty, whatever fails on the way.
#include <gtest/gtest.h>

#include <cerrno>
#include <functional>

#include <systemd/sd-event.h>

#include "daemon/hook_runner.h"
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
