// The bus tests' bed: a private dbus-daemon, an sd-event loop, connections to that bus, and the loop run until something holds.
#pragma once

#include <gtest/gtest.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus/sd_ptr.h"
#include "core/timespan.h"

namespace freeha {

class PrivateBusTest : public ::testing::Test {
protected:
    // Starts the daemon and the loop; skips the test where dbus-daemon is missing.
    void SetUp() override {
        FILE* p = popen("dbus-daemon --session --fork --print-address=1 --print-pid=1 2>/dev/null", "r");
        char address[512] = "", pid[64] = "";
        if (p == nullptr || fgets(address, sizeof address, p) == nullptr || fgets(pid, sizeof pid, p) == nullptr) {
            if (p) pclose(p);
            GTEST_SKIP() << "dbus-daemon is not available";
        }
        pclose(p);
        address[strcspn(address, "\n")] = 0;
        address_ = address;
        daemon_pid_ = std::atoi(pid);
        sd_event* e = nullptr;
        ASSERT_GE(sd_event_new(&e), 0);
        event_.reset(e);
    }

    // Derived fixtures drop their connections first.
    void TearDown() override {
        if (daemon_pid_ > 0) kill(daemon_pid_, SIGTERM);
    }

    // A new client connection to the private bus, attached to the loop.
    BusPtr connect() {
        sd_bus* b = nullptr;
        EXPECT_GE(sd_bus_new(&b), 0);
        sd_bus_set_address(b, address_.c_str());
        sd_bus_set_bus_client(b, 1);
        EXPECT_GE(sd_bus_start(b), 0);
        sd_bus_attach_event(b, event_.get(), 0);
        return BusPtr(b);
    }

    // Runs the loop until `done` holds or `limit` passes; returns whether it held.
    template <typename F>
    bool run_until(F done, Usec limit = 5 * kUsecPerSec) {
        std::uint64_t start = 0, now = 0;
        sd_event_now(event_.get(), CLOCK_MONOTONIC, &start);
        while (!done()) {
            sd_event_run(event_.get(), (50 * kUsecPerMsec).count());
            sd_event_now(event_.get(), CLOCK_MONOTONIC, &now);
            if (Usec(now - start) > limit) return false;
        }
        return true;
    }

    pid_t daemon_pid_ = 0;
    std::string address_;
    EventPtr event_;
};

}  // namespace freeha
