// Target mode's unit operations as conversations: each row feeds one
// UnitOperation a script of inputs (replies, JobRemoved, unit states, "could
// not send", the bus going and coming back, poll ticks, the timeout) and
// checks what it asks for after each one.
#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "daemon/unit_operation.h"

using namespace freeha;
using Kind = UnitOperation::Kind;
using Method = UnitOperation::Method;
using Status = UnitOperation::Reply::Status;

namespace {

constexpr const char* kTarget = "t.target";

// Drives one operation from lines such as "ok StopUnit a.service /job/2".
// Inputs:
//   begin | disconnected | reconnected | poll | timeout
//   ok|error|noreply|nosuchunit <Method> <unit> [text...]   a reply to the latest such call
//   old ok|error|... <Method> <unit> [text...]               a reply to the first such call ever made
//   notsent <Method> <unit> <error...>                       it could not be sent
//   gone <Method> <unit>                                     it could not be sent: the connection is closed
//   removed <job> <result>                                   JobRemoved
//   seen <unit> <state>                                      a PropertiesChanged of ActiveState
// Actions render as "Method unit, ... | poll | warn: ... | => ok: ..." ("" for none).
class Conversation {
public:
    Conversation(Kind kind, bool connected, std::vector<std::string> members = {"a.service"})
        : op_(kind, kTarget, std::move(members), connected) {}

    std::string feed(const std::string& line) {
        std::istringstream in(line);
        std::string word;
        in >> word;
        bool old = word == "old";
        if (old) in >> word;
        if (word == "begin") return render(op_.begin());
        if (word == "disconnected") return render(op_.on_disconnected());
        if (word == "reconnected") return render(op_.on_reconnected());
        if (word == "poll") return render(op_.on_poll());
        if (word == "timeout") return render(op_.on_timeout());
        if (word == "removed" || word == "seen") {
            std::string a, b;
            in >> a >> b;
            return render(word == "removed" ? op_.on_job_removed(a, b) : op_.on_state_seen(a, b));
        }
        std::string method, unit, text;
        in >> method >> unit;
        std::getline(in >> std::ws, text);
        auto ids = ids_.find(method + " " + unit);
        if (ids == ids_.end()) return "no call " + method + " " + unit + " was made";
        std::uint64_t id = old ? ids->second.front() : ids->second.back();
        if (word == "notsent") return render(op_.on_not_sent(id, text, false));
        if (word == "gone") return render(op_.on_not_sent(id, "Transport endpoint is not connected", true));
        UnitOperation::Reply reply;
        reply.status = word == "ok"           ? Status::Ok
                       : word == "error"      ? Status::Error
                       : word == "noreply"    ? Status::NoReply
                       : word == "nosuchunit" ? Status::NoSuchUnit
                                              : throw std::invalid_argument("bad input: " + line);
        if (method == "ReadMembers" && reply.status == Status::Ok) {
            std::istringstream list(text);
            for (std::string m; list >> m;) reply.members.push_back(m);
        } else {
            reply.text = text;
        }
        return render(op_.on_reply(id, reply));
    }

    const UnitOperation& op() const { return op_; }

private:
    std::string render(const UnitOperation::Actions& actions) {
        std::vector<std::string> parts;
        std::string calls;
        for (const auto& call : actions.calls) {
            std::string name = std::string(UnitOperation::method_name(call.method)) + " " + call.unit;
            ids_[name].push_back(call.id);
            calls += (calls.empty() ? "" : ", ") + name;
        }
        if (!calls.empty()) parts.push_back(calls);
        if (actions.poll) parts.emplace_back("poll");
        for (const auto& w : actions.warnings) parts.push_back("warn: " + w);
        if (actions.outcome)
            parts.push_back(std::string("=> ") + (actions.outcome->success ? "ok: " : "failed: ") +
                            actions.outcome->description);
        std::string out;
        for (const auto& p : parts) out += (out.empty() ? "" : " | ") + p;
        return out;
    }

    UnitOperation op_;
    std::map<std::string, std::vector<std::uint64_t>> ids_;  // "Method unit" -> ids, oldest first
};

struct Line {
    std::string input;
    std::string expect;
};

struct Row {
    std::string name;
    Kind kind;
    std::vector<Line> script;
    bool connected = true;
};
void PrintTo(const Row& row, std::ostream* os) { *os << row.name; }

std::vector<Line> then(std::vector<Line> prefix, const std::vector<Line>& rest) {
    prefix.insert(prefix.end(), rest.begin(), rest.end());
    return prefix;
}

// The start up to its job.
const std::vector<Line> kStartJob = {
    {"begin", "ResetFailedUnit t.target"},
    {"ok ResetFailedUnit t.target", "StartUnit t.target"},
};
// The start up to its check of every unit.
const std::vector<Line> kStarted =
    then(kStartJob, {{"ok StartUnit t.target /job/1", ""},
                     {"removed /job/1 done", "ReadMembers t.target"},
                     {"ok ReadMembers t.target a.service", "ReadState t.target, ReadState a.service"}});
// The stop up to its jobs.
const std::vector<Line> kStopping = {
    {"begin", "ReadMembers t.target"},
    {"ok ReadMembers t.target a.service", "StopUnit t.target, StopUnit a.service"},
};
// The check up to its reads.
const std::vector<Line> kChecking = {
    {"begin", "ReadMembers t.target"},
    {"ok ReadMembers t.target a.service", "ReadState t.target, ReadState a.service"},
};
const char* const kKills = "StopUnit t.target, KillUnit a.service | poll";
const char* const kFenced =
    "=> ok: the fence of t.target (SIGKILL to its units, the target stopped): "
    "systemd reports them all down";

class Conversations : public ::testing::TestWithParam<Row> {};

TEST_P(Conversations, AskForWhatIsNeededAndEndOnlyOnSystemdsWord) {
    const Row& row = GetParam();
    Conversation c(row.kind, row.connected);
    for (std::size_t i = 0; i < row.script.size(); ++i)
        EXPECT_EQ(c.feed(row.script[i].input), row.script[i].expect) << "line " << i << ": " << row.script[i].input;
}

INSTANTIATE_TEST_SUITE_P(
    Table, Conversations,
    ::testing::Values(
        // --- start
        Row{"StartSucceedsOnceJobDoneAndEveryUnitActive", Kind::Start,
            then(kStarted, {{"ok ReadState t.target active", ""},
                            {"ok ReadState a.service active", "=> ok: t.target and 1 unit(s) active"}})},
        Row{"AFailedResetDoesNotMatter",
            Kind::Start,
            {{"begin", "ResetFailedUnit t.target"},
             {"error ResetFailedUnit t.target Unit t.target is not failed.", "StartUnit t.target"}}},
        Row{"AResetWithoutReplyDoesNotMatterEither",
            Kind::Start,
            {{"begin", "ResetFailedUnit t.target"}, {"noreply ResetFailedUnit t.target", "StartUnit t.target"}}},
        Row{"EveryJobResultButDoneIsAFailure", Kind::Start,
            then(kStartJob,
                 {{"ok StartUnit t.target /job/1", ""},
                  {"removed /job/1 dependency", "=> failed: job for t.target finished with result 'dependency'"}})},
        Row{"ARefusedStartIsAFailureNamingTheError", Kind::Start,
            then(kStartJob,
                 {{"error StartUnit t.target Access denied", "=> failed: StartUnit t.target: Access denied"}})},
        Row{"AJobRemovedBeforeItsReplyIsKept", Kind::Start,
            then(kStartJob, {{"removed /job/1 done", ""}, {"ok StartUnit t.target /job/1", "ReadMembers t.target"}})},
        Row{"AnEarlyFailedJobIsAFailure", Kind::Start,
            then(kStartJob,
                 {{"removed /job/1 failed", ""},
                  {"ok StartUnit t.target /job/1", "=> failed: job for t.target finished with result 'failed'"}})},
        Row{"AnotherJobsRemovalIsIgnored", Kind::Start,
            then(kStartJob, {{"ok StartUnit t.target /job/1", ""},
                             {"removed /job/7 done", ""},
                             {"poll", ""},
                             {"timeout", "=> failed: starting t.target timed out"}})},
        Row{"NoReplyToStartLetsTheUnitStateDecide", Kind::Start,
            then(kStartJob, {{"noreply StartUnit t.target",
                              "poll | warn: StartUnit t.target: no reply from systemd (re-executing?); waiting for the "
                              "unit to settle"},
                             {"poll", "ReadState t.target | poll"},
                             {"poll", "poll"},  // one question per unit at a time
                             {"ok ReadState t.target activating", ""},
                             {"poll", "ReadState t.target | poll"},
                             {"error ReadState t.target Access denied", ""},  // still unknown: asked again
                             {"poll", "ReadState t.target | poll"},
                             {"ok ReadState t.target active", "ReadMembers t.target"},
                             {"poll", ""}})},
        Row{"NoReplyToStartThenFailedUnitIsAFailure", Kind::Start,
            then(kStartJob, {{"noreply StartUnit t.target",
                              "poll | warn: StartUnit t.target: no reply from systemd (re-executing?); waiting for the "
                              "unit to settle"},
                             {"seen t.target failed", "=> failed: job for t.target finished with result 'failed'"}})},
        Row{"AStartedMemberThatIsNotActiveFailsTheStart", Kind::Start,
            then(kStarted, {{"ok ReadState t.target active", ""},
                            {"ok ReadState a.service activating", "=> failed: unit a.service is activating"}})},
        Row{"AnUnreadableStateFailsTheCheck", Kind::Start,
            then(kStarted, {{"ok ReadState t.target active", ""},
                            {"error ReadState a.service Access denied",
                             "=> failed: unit a.service is unreadable (Access denied)"}})},
        Row{"AStartThatCouldNotBeSentIsAFailureWithTheError", Kind::Start,
            then(kStartJob, {{"notsent StartUnit t.target Cannot allocate memory",
                              "=> failed: StartUnit t.target: Cannot allocate memory"},
                             {"timeout", ""}})},  // over: nothing more
        Row{"AStartOverALostConnectionStartsOverOnTheNextOne", Kind::Start,
            then(kStartJob, {{"gone StartUnit t.target", ""},
                             {"poll", ""},
                             {"reconnected", "ResetFailedUnit t.target"},
                             {"ok ResetFailedUnit t.target", "StartUnit t.target"}})},

        // --- stop
        Row{"StopEndsOnlyWhenEveryJobIsDone", Kind::Stop,
            then(kStopping, {{"ok StopUnit t.target /job/1", ""},
                             {"ok StopUnit a.service /job/2", ""},
                             {"removed /job/1 done", ""},
                             {"poll", ""},
                             {"removed /job/2 done", "=> ok: stopped t.target"}})},
        Row{"StopStopsEveryMemberRead",
            Kind::Stop,
            {{"begin", "ReadMembers t.target"},
             {"ok ReadMembers t.target b.service a.service b.service",
              "StopUnit t.target, StopUnit a.service, StopUnit b.service"}}},
        Row{"AStopThatLostItsConnectionWaitsAndStartsOver", Kind::Stop,
            then(kStopping, {{"ok StopUnit t.target /job/1", ""},
                             {"removed /job/1 done", ""},
                             {"disconnected", ""},
                             {"poll", ""},
                             {"seen a.service inactive", ""},
                             {"old ok StopUnit a.service /job/2", ""},  // a reply can no longer come; if it did...
                             {"reconnected", "ReadMembers t.target"},
                             {"ok ReadMembers t.target a.service", "StopUnit t.target, StopUnit a.service"},
                             {"ok StopUnit t.target /job/3", ""},
                             {"ok StopUnit a.service /job/4", ""},
                             {"removed /job/2 done", ""},  // the old job is not this attempt's
                             {"removed /job/3 done", ""},
                             {"removed /job/4 done", "=> ok: stopped t.target"}})},
        Row{"StopUnitsThatCouldNotBeSentOverALostConnectionAreNeverDone", Kind::Stop,
            then(kStopping, {{"gone StopUnit t.target", ""},
                             {"gone StopUnit a.service", ""},
                             {"poll", ""},
                             {"reconnected", "ReadMembers t.target"},
                             {"ok ReadMembers t.target a.service", "StopUnit t.target, StopUnit a.service"},
                             {"ok StopUnit t.target /job/3", ""},
                             {"ok StopUnit a.service /job/4", ""},
                             {"removed /job/3 done", ""},
                             {"removed /job/4 done", "=> ok: stopped t.target"}})},
        Row{"AStopBegunWithoutTheBusWaitsForIt",
            Kind::Stop,
            {{"begin", ""}, {"poll", ""}, {"seen a.service inactive", ""}, {"reconnected", "ReadMembers t.target"}},
            false},
        Row{"AStopThatTimesOutWithoutTheBusSaysSo",
            Kind::Stop,
            {{"begin", ""}, {"timeout", "=> failed: stopping t.target timed out while the bus was away"}},
            false},
        Row{"ARefusedStopFailsOnceTheOtherJobsEnd", Kind::Stop,
            then(kStopping, {{"ok StopUnit t.target /job/1", ""},
                             {"error StopUnit a.service Access denied", ""},
                             {"removed /job/1 done", "=> failed: StopUnit a.service: Access denied"}})},
        Row{"AStopJobThatDoesNotEndDoneIsAFailure", Kind::Stop,
            then(kStopping, {{"ok StopUnit t.target /job/1", ""},
                             {"ok StopUnit a.service /job/2", ""},
                             {"removed /job/2 canceled", ""},
                             {"removed /job/1 done", "=> failed: job for a.service finished with result 'canceled'"}})},
        Row{"NoReplyToStopWaitsForTheUnitToBeDown", Kind::Stop,
            then(kStopping, {{"ok StopUnit t.target /job/1", ""},
                             {"noreply StopUnit a.service",
                              "poll | warn: StopUnit a.service: no reply from systemd "
                              "(re-executing?); waiting for the unit to settle"},
                             {"removed /job/1 done", ""},
                             {"poll", "ReadState a.service | poll"},
                             {"ok ReadState a.service deactivating", ""},
                             {"seen a.service active", ""},
                             {"poll", "ReadState a.service | poll"},
                             {"ok ReadState a.service inactive", "=> ok: stopped t.target"}})},
        Row{"AnUnreadableTargetFailsTheStop",
            Kind::Stop,
            {{"begin", "ReadMembers t.target"},
             {"error ReadMembers t.target Access denied", "=> failed: reading t.target: Access denied"}}},
        Row{"MembersWithoutReplyAreReadAgain",
            Kind::Stop,
            {{"begin", "ReadMembers t.target"},
             {"noreply ReadMembers t.target", "poll"},
             {"poll", "ReadMembers t.target"},
             {"poll", ""},
             {"ok ReadMembers t.target a.service", "StopUnit t.target, StopUnit a.service"}}},
        Row{"AStopThatCouldNotBeSentIsAFailureWithTheError", Kind::Stop,
            then(kStopping,
                 {{"notsent StopUnit a.service Invalid argument", "=> failed: StopUnit a.service: Invalid argument"},
                  {"ok StopUnit t.target /job/1", ""}})},
        Row{"AStopThatTimesOutIsAFailure", Kind::Stop,
            then(kStopping,
                 {{"timeout", "=> failed: stopping t.target timed out"}, {"ok StopUnit t.target /job/1", ""}})},

        // --- check
        Row{"CheckSucceedsWhenEveryUnitIsActive", Kind::Check,
            then(kChecking, {{"ok ReadState t.target active", ""},
                             {"ok ReadState a.service reloading", "=> ok: t.target and 1 unit(s) active"}})},
        Row{"ACheckFindsAnInactiveMember", Kind::Check,
            then(kChecking, {{"ok ReadState a.service inactive", ""},
                             {"ok ReadState t.target active", "=> failed: unit a.service is inactive"}})},
        Row{"ACheckWhoseReadsWereNeverSentWaitsForTheBus", Kind::Check,
            then(kChecking, {{"gone ReadState t.target", ""},
                             {"gone ReadState a.service", ""},
                             {"old ok ReadState a.service active", ""},
                             {"poll", ""},
                             {"reconnected", "ReadMembers t.target"},
                             {"ok ReadMembers t.target a.service", "ReadState t.target, ReadState a.service"},
                             {"ok ReadState t.target active", ""},
                             {"ok ReadState a.service active", "=> ok: t.target and 1 unit(s) active"}})},
        Row{"ACheckThatLostTheBusWaitsForIt", Kind::Check,
            then(kChecking, {{"ok ReadState t.target active", ""},
                             {"disconnected", ""},
                             {"timeout", "=> failed: checking t.target timed out while the bus was away"}})},
        Row{"AReadWithoutReplyIsAskedAgain", Kind::Check,
            then(kChecking, {{"ok ReadState t.target active", ""},
                             {"noreply ReadState a.service", "poll"},
                             {"poll", "ReadState a.service | poll"},
                             {"ok ReadState a.service active", "=> ok: t.target and 1 unit(s) active"}})},
        Row{"ACheckThatCouldNotBeSentIsAFailureWithTheError", Kind::Check,
            then(kChecking,
                 {{"notsent ReadState a.service Invalid argument", "=> failed: reading a.service: Invalid argument"}})},
        Row{"ACheckOfATargetWithoutMembers",
            Kind::Check,
            {{"begin", "ReadMembers t.target"},
             {"ok ReadMembers t.target", "ReadState t.target"},
             {"ok ReadState t.target active", "=> ok: t.target and 0 unit(s) active"}}},

        // --- kill
        Row{"AKillEndsOnlyWhenEveryUnitIsSeenDown",
            Kind::Kill,
            {{"begin", kKills},
             {"ok StopUnit t.target /job/9", ""},
             {"ok KillUnit a.service", ""},
             {"timeout", ""},  // no timeout ends a kill
             {"seen t.target inactive", ""},
             {"poll", "ReadState a.service | poll"},
             {"ok ReadState a.service deactivating", ""},
             {"poll", "ReadState a.service | poll"},
             {"ok ReadState a.service failed", kFenced}}},
        Row{"AKilledUnitThatIsNotLoadedIsDown",
            Kind::Kill,
            {{"begin", kKills}, {"nosuchunit KillUnit a.service", ""}, {"seen t.target inactive", kFenced}}},
        Row{"AKillRefusedIsLoggedAndTheStatesStillDecide",
            Kind::Kill,
            {{"begin", kKills},
             {"error KillUnit a.service Access denied", "warn: KillUnit a.service: Access denied"},
             {"notsent StopUnit t.target Invalid argument", "poll | warn: StopUnit t.target: Invalid argument"},
             {"poll", "ReadState a.service, ReadState t.target | poll"},
             {"ok ReadState t.target inactive", ""},
             {"noreply ReadState a.service", ""},
             {"seen a.service failed", kFenced}}},
        Row{"AKillOverALostConnectionKillsAgainOnTheNextOne",
            Kind::Kill,
            {{"begin", kKills},
             {"seen t.target inactive", ""},
             {"disconnected", ""},
             {"poll", ""},
             {"reconnected", kKills},
             {"ok StopUnit t.target /job/2", ""},
             {"seen a.service failed", ""},
             {"poll", "ReadState t.target | poll"},
             {"ok ReadState t.target inactive", kFenced}}},
        Row{"AKillWithoutTheBusWaitsForIt",
            Kind::Kill,
            {{"begin", ""}, {"poll", ""}, {"seen a.service failed", ""}, {"reconnected", kKills}},
            false}),
    [](const auto& info) { return info.param.name; });

// "Sent nothing" is never "done", in every step: wherever the bus goes away
// (or a call finds the connection closed), nothing ends the operation but
// its timeout until the bus is back, and then it starts over.
struct StepCase {
    std::string name;
    Kind kind;
    std::vector<Line> to_step;  // reaches the step
    std::string first;          // what the operation asks first
};
void PrintTo(const StepCase& step, std::ostream* os) { *os << step.name; }

class EveryStep : public ::testing::TestWithParam<StepCase> {};

TEST_P(EveryStep, WaitsWithoutTheBusThenStartsOver) {
    const StepCase& step = GetParam();
    for (const char* loss : {"disconnected", "gone"}) {
        Conversation c(step.kind, true);
        std::string asked;
        for (const auto& line : step.to_step) asked = c.feed(line.input);
        // Or the first call the step asked for finds the connection closed.
        std::string lost = loss == std::string("gone") ? "gone " + asked.substr(0, asked.find_first_of(",|")) : loss;
        while (lost.back() == ' ') lost.pop_back();
        SCOPED_TRACE(lost);
        EXPECT_EQ(c.feed(lost), "");
        EXPECT_FALSE(c.op().connected());
        for (const char* input : {"poll", "seen t.target inactive", "seen a.service inactive", "seen t.target active",
                                  "seen a.service active", "removed /job/1 done", "removed /job/2 done", "poll"})
            EXPECT_EQ(c.feed(input), "") << input;
        EXPECT_FALSE(c.op().over());
        EXPECT_EQ(c.feed("reconnected"), step.first);
        EXPECT_TRUE(c.op().connected());
    }
}

INSTANTIATE_TEST_SUITE_P(
    Table, EveryStep,
    ::testing::Values(StepCase{"StartResetFailed", Kind::Start, {{"begin", ""}}, "ResetFailedUnit t.target"},
                      StepCase{"StartJob",
                               Kind::Start,
                               {{"begin", ""}, {"ok ResetFailedUnit t.target", ""}},
                               "ResetFailedUnit t.target"},
                      StepCase{"StartLoadMembers",
                               Kind::Start,
                               {{"begin", ""},
                                {"ok ResetFailedUnit t.target", ""},
                                {"ok StartUnit t.target /job/1", ""},
                                {"removed /job/1 done", ""}},
                               "ResetFailedUnit t.target"},
                      StepCase{"StartCheck", Kind::Start, kStarted, "ResetFailedUnit t.target"},
                      StepCase{"StopLoadMembers", Kind::Stop, {{"begin", ""}}, "ReadMembers t.target"},
                      StepCase{"StopJobs", Kind::Stop, kStopping, "ReadMembers t.target"},
                      StepCase{"CheckLoadMembers", Kind::Check, {{"begin", ""}}, "ReadMembers t.target"},
                      StepCase{"CheckReads", Kind::Check, kChecking, "ReadMembers t.target"},
                      StepCase{"Kill", Kind::Kill, {{"begin", ""}}, kKills}),
    [](const auto& info) { return info.param.name; });

}  // namespace
