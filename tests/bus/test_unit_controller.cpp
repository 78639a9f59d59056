// Target mode's UnitController against a fake org.freedesktop.systemd1 on a private dbus-daemon.
//
// The fake runs on its own connection in the same sd-event loop: it answers
// StartUnit/StopUnit with a job path and emits JobRemoved with the result
// each test scripts, exposes unit objects with ActiveState and dependency
// lists, and can answer with NoReply the way a re-executing systemd does.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <signal.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "bus/sd_ptr.h"
#include "daemon/unit_controller.h"
#include "private_bus.h"

using namespace freeha;

namespace {

constexpr const char* kTarget = "freeha-services.target";
constexpr const char* kMember = "app.service";

struct FakeSystemd {
    // Scripted behaviour.
    std::string job_result = "done";  // what JobRemoved says; "" = never ends
    bool no_reply = false;            // answer StartUnit/StopUnit with NoReply
    bool kill_takes_effect = true;    // KillUnit brings the unit down at once
    std::map<std::string, std::string> state{{kTarget, "inactive"}, {kMember, "inactive"}};
    std::vector<std::string> requires_{kMember};
    std::map<std::string, std::string> load{{kTarget, "loaded"}, {kMember, "loaded"}};  // LoadState

    // What happened.
    std::vector<std::string> calls;  // "StartUnit freeha-services.target", ...
    int members_reads = 0;           // GetAll of the target's dependency lists answered
    unsigned next_job = 1;
    sd_bus* bus = nullptr;

    std::string unit_of(const char* path) {
        char* raw = nullptr;
        if (sd_bus_path_decode(path, "/org/freedesktop/systemd1/unit", &raw) <= 0) return {};
        std::string unit(raw);
        std::free(raw);
        return unit;
    }

    void set_state(const std::string& unit, const std::string& s) {
        state[unit] = s;
        char* path = nullptr;
        sd_bus_path_encode("/org/freedesktop/systemd1/unit", unit.c_str(), &path);
        sd_bus_emit_properties_changed(bus, path, "org.freedesktop.systemd1.Unit", "ActiveState", nullptr);
        std::free(path);
    }

    static int job_method(sd_bus_message* m, void* userdata, sd_bus_error* error) {
        auto* self = static_cast<FakeSystemd*>(userdata);
        const char* unit = nullptr;
        const char* mode = nullptr;
        sd_bus_message_read(m, "ss", &unit, &mode);
        std::string member = sd_bus_message_get_member(m);
        self->calls.push_back(member + " " + unit);
        if (self->no_reply) return sd_bus_error_set(error, SD_BUS_ERROR_NO_REPLY, "re-executing");
        std::string job = "/org/freedesktop/systemd1/job/" + std::to_string(self->next_job);
        unsigned id = self->next_job++;
        int r = sd_bus_reply_method_return(m, "o", job.c_str());
        bool starting = member == "StartUnit";
        // A target has no processes of its own: stopping one is done at once
        // (only its members' stops can hang).
        std::string result = !starting && std::string(unit) == kTarget ? "done" : self->job_result;
        if (result.empty()) return r;
        if (result == "done") {
            self->set_state(unit, starting ? "active" : "inactive");
            if (starting && std::string(unit) == kTarget)
                for (const auto& dep : self->requires_) self->set_state(dep, "active");
        }
        sd_bus_emit_signal(self->bus, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager", "JobRemoved",
                           "uoss", id, job.c_str(), unit, result.c_str());
        return r;
    }

    static int simple_method(sd_bus_message* m, void* userdata, sd_bus_error*) {
        auto* self = static_cast<FakeSystemd*>(userdata);
        std::string call = sd_bus_message_get_member(m);
        const char* unit = nullptr;
        if (sd_bus_message_read(m, "s", &unit) > 0) call += std::string(" ") + unit;
        self->calls.push_back(call);
        return sd_bus_reply_method_return(m, nullptr);
    }

    static int kill_method(sd_bus_message* m, void* userdata, sd_bus_error* error) {
        auto* self = static_cast<FakeSystemd*>(userdata);
        const char* unit = nullptr;
        const char* whom = nullptr;
        std::int32_t signo = 0;
        sd_bus_message_read(m, "ssi", &unit, &whom, &signo);
        self->calls.push_back(std::string("KillUnit ") + unit + " " + whom + " " + std::to_string(signo));
        // As systemd: a target has no processes to signal.
        if (std::string(unit) == kTarget)
            return sd_bus_error_set(error, SD_BUS_ERROR_NOT_SUPPORTED, "Unit type does not support process killing.");
        int r = sd_bus_reply_method_return(m, nullptr);
        if (self->kill_takes_effect) self->set_state(unit, "failed");
        return r;
    }

    static int get_unit_property(sd_bus*, const char* path, const char*, const char* property, sd_bus_message* reply,
                                 void* userdata, sd_bus_error*) {
        auto* self = static_cast<FakeSystemd*>(userdata);
        std::string unit = self->unit_of(path);
        std::string_view p = property;
        if (p == "ActiveState") return sd_bus_message_append(reply, "s", self->state[unit].c_str());
        if (p == "LoadState") return sd_bus_message_append(reply, "s", self->load[unit].c_str());
        std::vector<const char*> list;
        if (p == "Requires" && unit == kTarget) ++self->members_reads;
        if (p == "Requires" && unit == kTarget)
            for (const auto& d : self->requires_) list.push_back(d.c_str());
        list.push_back(nullptr);
        return sd_bus_message_append_strv(reply, const_cast<char**>(list.data()));
    }

    static int find_unit(sd_bus*, const char*, const char*, void* userdata, void** found, sd_bus_error*) {
        *found = userdata;
        return 1;
    }

    void publish(sd_bus* b) {
        bus = b;
        static const sd_bus_vtable kManager[] = {
            SD_BUS_VTABLE_START(0),
            SD_BUS_METHOD("StartUnit", "ss", "o", job_method, SD_BUS_VTABLE_UNPRIVILEGED),
            SD_BUS_METHOD("StopUnit", "ss", "o", job_method, SD_BUS_VTABLE_UNPRIVILEGED),
            SD_BUS_METHOD("ResetFailedUnit", "s", "", simple_method, SD_BUS_VTABLE_UNPRIVILEGED),
            SD_BUS_METHOD("Subscribe", "", "", simple_method, SD_BUS_VTABLE_UNPRIVILEGED),
            SD_BUS_METHOD("KillUnit", "ssi", "", kill_method, SD_BUS_VTABLE_UNPRIVILEGED),
            SD_BUS_SIGNAL("JobRemoved", "uoss", 0),
            SD_BUS_VTABLE_END,
        };
        static const sd_bus_vtable kUnit[] = {
            SD_BUS_VTABLE_START(0),
            SD_BUS_PROPERTY("ActiveState", "s", get_unit_property, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
            SD_BUS_PROPERTY("LoadState", "s", get_unit_property, 0, 0),
            SD_BUS_PROPERTY("Requires", "as", get_unit_property, 0, 0),
            SD_BUS_PROPERTY("Wants", "as", get_unit_property, 0, 0),
            SD_BUS_PROPERTY("ConsistsOf", "as", get_unit_property, 0, 0),
            SD_BUS_PROPERTY("Requisite", "as", get_unit_property, 0, 0),
            SD_BUS_VTABLE_END,
        };
        sd_bus_add_object_vtable(b, nullptr, "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                                 kManager, this);
        sd_bus_add_fallback_vtable(b, nullptr, "/org/freedesktop/systemd1/unit", "org.freedesktop.systemd1.Unit",
                                   kUnit, find_unit, this);
        sd_bus_request_name(b, "org.freedesktop.systemd1", 0);
    }
};

class UnitControllerTest : public PrivateBusTest {
protected:
    void SetUp() override {
        PrivateBusTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        fake_bus_ = connect();
        client_bus_ = connect();
        fake_.publish(fake_bus_.get());
        controller_ = std::make_unique<UnitController>(
            event_.get(), kTarget, kFence,
            UnitController::Callbacks{
                [this](HookKind kind, const HookOutcome& o) { outcomes_.push_back({kind, o}); },
                [this](const std::string& why) { failures_.push_back(why); },
                [this](const std::string& what) { activated_.push_back(what); },
                [this](const std::string& why) { unreachable_.push_back(why); },
                [this] { ++killed_; },
                [this](const std::string& state) { load_states_.push_back(state); }});
        std::string error;
        ASSERT_GE(controller_->attach(client_bus_.get(), &error), 0) << error;
        run_until([&] { return !fake_.calls.empty(); });  // Subscribe has arrived
        run_until([] { return false; }, 100 * kUsecPerMsec);  // and the watch has read the units
        fake_.calls.clear();
    }

    void TearDown() override {
        controller_.reset();
        client_bus_.reset();
        fake_bus_.reset();
        PrivateBusTest::TearDown();
    }

    std::optional<HookOutcome> outcome_of(HookKind kind, Usec timeout = 5 * kUsecPerSec) {
        controller_->run(kind, timeout);
        if (!run_until([&] { return !outcomes_.empty(); }, timeout + kUsecPerSec)) return std::nullopt;
        EXPECT_EQ(outcomes_.front().first, kind);
        HookOutcome o = outcomes_.front().second;
        outcomes_.clear();
        return o;
    }

    // Starts `kind` and closes the client's connection (its sending side, as
    // a dying dbus-daemon does) right after systemd answered the read of the
    // target's members: the calls of the operation's next step find the
    // connection closed, before the controller has heard of the loss.
    void run_and_lose_bus_after_members(HookKind kind) {
        int before = fake_.members_reads;
        controller_->run(kind, 5 * kUsecPerSec);
        ASSERT_TRUE(run_until([&] { return fake_.members_reads > before; }));
        // The reply is on its way through the dbus-daemon (another process):
        // let it reach the client's socket, unread.
        usleep(100 * 1000);
        ASSERT_EQ(shutdown(sd_bus_get_fd(client_bus_.get()), SHUT_WR), 0);
    }

    void reconnect() {
        controller_->detach();  // as BusConnection does once sd-bus reports the loss
        client_bus_ = connect();
        std::string error;
        ASSERT_GE(controller_->attach(client_bus_.get(), &error), 0) << error;
    }

    BusPtr fake_bus_;
    BusPtr client_bus_;
    FakeSystemd fake_;
    std::unique_ptr<UnitController> controller_;
    std::vector<std::pair<HookKind, HookOutcome>> outcomes_;
    std::vector<std::string> failures_;
    std::vector<std::string> activated_;
    std::vector<std::string> unreachable_;
    int killed_ = 0;
    std::vector<std::string> load_states_;
    static constexpr Usec kFence = Usec(300 * 1000);
};

TEST_F(UnitControllerTest, StartResetsFailedThenStartsAndSucceedsOnlyOnDone) {
    auto o = outcome_of(HookKind::Start);
    ASSERT_TRUE(o);
    EXPECT_TRUE(o->success) << o->description;
    ASSERT_GE(fake_.calls.size(), 2u);
    EXPECT_EQ(fake_.calls[0], "ResetFailedUnit freeha-services.target");
    EXPECT_EQ(fake_.calls[1], "StartUnit freeha-services.target");
}

// Issue 20: a group whose Target= systemd cannot load stands aside; the watch says so at attach and reread().
TEST_F(UnitControllerTest, TheWatchReportsTheTargetsLoadState) {
    ASSERT_FALSE(load_states_.empty());
    EXPECT_EQ(load_states_.back(), "loaded");
    fake_.load[kTarget] = "not-found";
    load_states_.clear();
    controller_->reread();
    ASSERT_TRUE(run_until([&] { return !load_states_.empty(); }, kUsecPerSec));
    EXPECT_EQ(load_states_.back(), "not-found");
}

TEST_F(UnitControllerTest, EveryOtherJobResultIsAFailureNamingIt) {
    for (const char* result : {"failed", "timeout", "canceled", "dependency"}) {
        fake_.job_result = result;
        auto o = outcome_of(HookKind::Start);
        ASSERT_TRUE(o) << result;
        EXPECT_FALSE(o->success) << result;
        EXPECT_NE(o->description.find(std::string("result '") + result + "'"), std::string::npos) << o->description;
    }
}

TEST_F(UnitControllerTest, AMemberFailingWhileActiveIsReportedAtOnce) {
    ASSERT_TRUE(outcome_of(HookKind::Start)->success);
    fake_.set_state(kMember, "failed");
    ASSERT_TRUE(run_until([&] { return !failures_.empty(); }, kUsecPerSec));
    EXPECT_EQ(failures_[0], "unit app.service is failed");
    fake_.set_state(kTarget, "inactive");  // reported once per start, not again
    run_until([] { return false; }, 200 * kUsecPerMsec);
    EXPECT_EQ(failures_.size(), 1u);
}

TEST_F(UnitControllerTest, OurOwnStopIsNotAFailureAndStopsTargetAndMembers) {
    ASSERT_TRUE(outcome_of(HookKind::Start)->success);
    fake_.calls.clear();
    auto o = outcome_of(HookKind::Stop);
    ASSERT_TRUE(o);
    EXPECT_TRUE(o->success) << o->description;
    EXPECT_EQ(fake_.calls, (std::vector<std::string>{"StopUnit freeha-services.target", "StopUnit app.service"}));
    EXPECT_TRUE(failures_.empty());
}

TEST_F(UnitControllerTest, MonitorChecksTheTargetAndEveryMember) {
    ASSERT_TRUE(outcome_of(HookKind::Start)->success);
    EXPECT_TRUE(outcome_of(HookKind::Monitor)->success);
    fake_.state[kMember] = "inactive";  // silently, as if a signal were lost
    auto o = outcome_of(HookKind::Monitor);
    ASSERT_TRUE(o);
    EXPECT_FALSE(o->success);
    EXPECT_EQ(o->description, "unit app.service is inactive");
}

TEST_F(UnitControllerTest, NoReplyIsPendingUntilTheUnitSettles) {
    fake_.no_reply = true;
    controller_->run(HookKind::Start, 5 * kUsecPerSec);
    run_until([] { return false; }, 600 * kUsecPerMsec);
    EXPECT_TRUE(outcomes_.empty()) << outcomes_.front().second.description;  // not a failure
    fake_.set_state(kTarget, "active");  // systemd came back and finished the job
    fake_.set_state(kMember, "active");
    ASSERT_TRUE(run_until([&] { return !outcomes_.empty(); }));
    EXPECT_TRUE(outcomes_[0].second.success) << outcomes_[0].second.description;
}

TEST_F(UnitControllerTest, AJobThatNeverEndsTimesOut) {
    fake_.job_result = "";
    auto o = outcome_of(HookKind::Start, 300 * kUsecPerMsec);
    ASSERT_TRUE(o);
    EXPECT_FALSE(o->success);
    EXPECT_EQ(o->description, "starting freeha-services.target timed out");
}

TEST_F(UnitControllerTest, CancelEndsTheWaitWithAnOutcome) {
    fake_.job_result = "";
    controller_->run(HookKind::Start, 5 * kUsecPerSec);
    run_until([&] { return fake_.calls.size() >= 2; });
    controller_->cancel(HookKind::Start);
    ASSERT_TRUE(run_until([&] { return !outcomes_.empty(); }, kUsecPerSec));
    EXPECT_EQ(outcomes_[0].second.description, "canceled");
}

TEST_F(UnitControllerTest, KillStopsTheTargetSendsSigkillToEveryMemberAndEndsTheStop) {
    ASSERT_TRUE(outcome_of(HookKind::Start)->success);
    fake_.job_result = "";  // the stop hangs
    controller_->run(HookKind::Stop, 60 * kUsecPerSec);
    run_until([&] { return fake_.calls.size() >= 2; });
    fake_.calls.clear();
    controller_->kill();
    ASSERT_TRUE(run_until([&] { return killed_ == 1 && fake_.calls.size() >= 2; }, kUsecPerSec));
    ASSERT_EQ(outcomes_.size(), 1u);  // the stop that hung ends as killed
    EXPECT_FALSE(outcomes_[0].second.success);
    EXPECT_EQ(outcomes_[0].second.description, "killed");
    EXPECT_EQ(fake_.calls, (std::vector<std::string>{"StopUnit freeha-services.target", "KillUnit app.service all 9"}));
}

TEST_F(UnitControllerTest, AKillEndsOnlyOnceSystemdReportsEveryUnitDown) {
    ASSERT_TRUE(outcome_of(HookKind::Start)->success);
    fake_.job_result = "";  // the stop hangs
    fake_.kill_takes_effect = false;  // and so do the processes, for a while
    controller_->run(HookKind::Stop, 200 * kUsecPerMsec);
    run_until([&] { return fake_.calls.size() >= 2; });
    controller_->kill();
    // Neither a timeout nor the KillUnit replies end it: only systemd's word.
    run_until([] { return false; }, 600 * kUsecPerMsec);
    EXPECT_EQ(killed_, 0);
    fake_.set_state(kTarget, "inactive");
    run_until([] { return false; }, 200 * kUsecPerMsec);
    EXPECT_EQ(killed_, 0) << "app.service is still up";
    fake_.state[kMember] = "failed";  // silently: the poll finds it
    ASSERT_TRUE(run_until([&] { return killed_ == 1; }, kUsecPerSec));
}

TEST_F(UnitControllerTest, AKillWithNothingRunningStillKillsEveryUnit) {
    // A node frozen past its lease wakes up RUNNING: no operation is under way.
    ASSERT_TRUE(outcome_of(HookKind::Start)->success);
    fake_.calls.clear();
    controller_->kill();
    ASSERT_TRUE(run_until([&] { return killed_ == 1; }, kUsecPerSec));
    EXPECT_EQ(fake_.calls, (std::vector<std::string>{"StopUnit freeha-services.target", "KillUnit app.service all 9"}));
    EXPECT_TRUE(outcomes_.empty());
    EXPECT_TRUE(failures_.empty());  // our own kill is not a failure of the services
}

TEST_F(UnitControllerTest, UnitsStartedBehindOurBackAreReportedOncePerActivation) {
    fake_.set_state(kTarget, "activating");
    fake_.set_state(kTarget, "active");
    fake_.set_state(kMember, "active");
    ASSERT_TRUE(run_until([&] { return activated_.size() >= 2; }, kUsecPerSec));
    run_until([] { return false; }, 100 * kUsecPerMsec);
    EXPECT_EQ(activated_, (std::vector<std::string>{"unit freeha-services.target is activating",
                                                    "unit app.service is active"}));
    EXPECT_TRUE(failures_.empty());  // not ours: no failure when they stop either
    fake_.set_state(kTarget, "inactive");
    fake_.set_state(kTarget, "active");
    ASSERT_TRUE(run_until([&] { return activated_.size() == 3; }, kUsecPerSec));
}

TEST_F(UnitControllerTest, AfterAReconnectionTheOperationResumesOnTheNewConnection) {
    fake_.job_result = "";  // the start's job never ends on the first connection
    controller_->run(HookKind::Start, 5 * kUsecPerSec);
    run_until([&] { return fake_.calls.size() >= 2; });
    controller_->detach();
    client_bus_ = connect();
    fake_.job_result = "done";
    fake_.calls.clear();
    std::string error;
    ASSERT_GE(controller_->attach(client_bus_.get(), &error), 0) << error;
    ASSERT_TRUE(run_until([&] { return !outcomes_.empty(); }));
    EXPECT_TRUE(outcomes_[0].second.success) << outcomes_[0].second.description;
    EXPECT_NE(std::find(fake_.calls.begin(), fake_.calls.end(), "Subscribe"), fake_.calls.end());
    EXPECT_NE(std::find(fake_.calls.begin(), fake_.calls.end(), "StartUnit freeha-services.target"), fake_.calls.end());
    EXPECT_TRUE(unreachable_.empty());
    // The watch works on the new connection too.
    fake_.set_state(kMember, "failed");
    ASSERT_TRUE(run_until([&] { return !failures_.empty(); }, kUsecPerSec));
}

TEST_F(UnitControllerTest, AStopThatCannotReachSystemdForFenceTimeoutIsReported) {
    ASSERT_TRUE(outcome_of(HookKind::Start)->success);
    controller_->detach();  // the bus goes away...
    run_until([] { return false; }, 2 * kFence);
    EXPECT_TRUE(unreachable_.empty()) << "no stop was needed: the units run on";
    controller_->run(HookKind::Stop, 60 * kUsecPerSec);  // ...and now one is
    ASSERT_TRUE(run_until([&] { return !unreachable_.empty(); }, 3 * kFence));
    EXPECT_NE(unreachable_[0].find("FenceTimeout=300ms"), std::string::npos) << unreachable_[0];
    EXPECT_TRUE(outcomes_.empty());  // never "stopped" without systemd's word
}

TEST_F(UnitControllerTest, TheBusComingBackInTimeAvoidsTheExit) {
    ASSERT_TRUE(outcome_of(HookKind::Start)->success);
    controller_->detach();
    controller_->run(HookKind::Stop, 60 * kUsecPerSec);
    run_until([] { return false; }, kFence / 2);
    client_bus_ = connect();
    std::string error;
    ASSERT_GE(controller_->attach(client_bus_.get(), &error), 0) << error;
    ASSERT_TRUE(run_until([&] { return !outcomes_.empty(); }));
    EXPECT_TRUE(outcomes_[0].second.success) << outcomes_[0].second.description;
    run_until([] { return false; }, 2 * kFence);
    EXPECT_TRUE(unreachable_.empty());
}

TEST_F(UnitControllerTest, AStopWhoseCallsFindTheConnectionClosedIsNotDoneUntilTheUnitsAreStopped) {
    ASSERT_TRUE(outcome_of(HookKind::Start)->success);
    fake_.calls.clear();
    run_and_lose_bus_after_members(HookKind::Stop);
    run_until([] { return false; }, kFence / 2);
    // Nothing reached systemd: the units still run, and the stop is not over.
    EXPECT_TRUE(fake_.calls.empty()) << fake_.calls.front();
    EXPECT_EQ(fake_.state[kMember], "active");
    EXPECT_TRUE(outcomes_.empty()) << outcomes_.front().second.description;
    reconnect();
    ASSERT_TRUE(run_until([&] { return !outcomes_.empty(); }));
    EXPECT_TRUE(outcomes_[0].second.success) << outcomes_[0].second.description;
    EXPECT_EQ(outcomes_[0].second.description, "stopped freeha-services.target");
    EXPECT_EQ(fake_.state[kMember], "inactive");
    EXPECT_NE(std::find(fake_.calls.begin(), fake_.calls.end(), "StopUnit app.service"), fake_.calls.end());
    EXPECT_TRUE(unreachable_.empty());
}

TEST_F(UnitControllerTest, AStopThatLostTheBusStillNeedsTheBusWithinFenceTimeout) {
    ASSERT_TRUE(outcome_of(HookKind::Start)->success);
    run_and_lose_bus_after_members(HookKind::Stop);
    // Nobody tells the controller the connection is gone: its own failed
    // calls are enough to start the FenceTimeout.
    ASSERT_TRUE(run_until([&] { return !unreachable_.empty(); }, 3 * kFence));
    EXPECT_TRUE(outcomes_.empty()) << outcomes_.front().second.description;
}

TEST_F(UnitControllerTest, ACheckWhoseReadsFindTheConnectionClosedIsNoFailure) {
    ASSERT_TRUE(outcome_of(HookKind::Start)->success);
    run_and_lose_bus_after_members(HookKind::Monitor);
    run_until([] { return false; }, 300 * kUsecPerMsec);
    EXPECT_TRUE(outcomes_.empty()) << outcomes_.front().second.description;
    EXPECT_TRUE(failures_.empty());
    reconnect();
    ASSERT_TRUE(run_until([&] { return !outcomes_.empty(); }));
    EXPECT_TRUE(outcomes_[0].second.success) << outcomes_[0].second.description;
    EXPECT_TRUE(unreachable_.empty()) << "a check does not need systemd to give the services up";
}

}  // namespace
