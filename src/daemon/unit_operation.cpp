#include "daemon/unit_operation.h"

#include <algorithm>
#include <array>

namespace freeha {
namespace {

constexpr std::array<std::string_view, 6> kMethodNames{"ResetFailedUnit", "StartUnit",   "StopUnit",
                                                       "KillUnit",        "ReadMembers", "ReadState"};
static_assert(kMethodNames.size() == static_cast<std::size_t>(UnitOperation::Method::ReadState) + 1);

constexpr std::array<std::string_view, 4> kVerbs{"starting ", "stopping ", "checking ", "killing "};
static_assert(kVerbs.size() == static_cast<std::size_t>(UnitOperation::Kind::Kill) + 1);

}  // namespace

std::string_view UnitOperation::method_name(Method method) { return kMethodNames.at(static_cast<std::size_t>(method)); }

UnitOperation::UnitOperation(Kind kind, std::string target, std::vector<std::string> members, bool connected)
    : kind_(kind), target_(std::move(target)), members_(std::move(members)), connected_(connected) {}

UnitOperation::Actions UnitOperation::begin() {
    Actions out;
    if (connected_) restart(out);
    return out;
}

void UnitOperation::restart(Actions& out) {
    in_flight_.clear();
    jobs_.clear();
    early_.clear();
    unknown_jobs_.clear();
    unread_states_.clear();
    members_unread_ = false;
    awaiting_down_.clear();
    states_.clear();
    failure_.clear();
    switch (kind_) {
    case Kind::Start:
        step_ = Step::ResetFailed;
        send(Method::ResetFailedUnit, target_, out);
        break;
    case Kind::Stop:
    case Kind::Check:
        load_members(out);
        break;
    case Kind::Kill:
        step_ = Step::Kill;
        for (const auto& unit : units()) {
            awaiting_down_.insert(unit);
            // A target has no processes, and systemd refuses KillUnit on one: stop
            // it instead, which also stops its PartOf= members and so keeps a
            // member with Restart= from coming back after the SIGKILL.
            send(unit == target_ ? Method::StopUnit : Method::KillUnit, unit, out);
        }
        out.poll = true;  // the states decide, whatever the replies say
        break;
    }
}

void UnitOperation::send(Method method, const std::string& unit, Actions& out) {
    Call call{next_id_++, method, unit};
    in_flight_.emplace(call.id, call);
    out.calls.push_back(std::move(call));
}

std::vector<std::string> UnitOperation::units() const {
    std::vector<std::string> units{target_};
    units.insert(units.end(), members_.begin(), members_.end());
    return units;
}

std::string UnitOperation::what(const Call& call) const {
    bool read = call.method == Method::ReadMembers || call.method == Method::ReadState;
    return read ? "reading " + call.unit : std::string(method_name(call.method)) + " " + call.unit;
}

bool UnitOperation::asking(const std::string& unit) const {
    return std::any_of(in_flight_.begin(), in_flight_.end(), [&](const auto& c) { return c.second.unit == unit; });
}

void UnitOperation::fail_once(std::string why) {
    if (failure_.empty()) failure_ = std::move(why);
}

void UnitOperation::finish(bool success, std::string description, Actions& out) {
    step_ = Step::Over;
    in_flight_.clear();
    out.calls.clear();  // nothing more to ask
    out.poll = false;
    out.outcome = Outcome{success, std::move(description)};
}

// --- inputs -----------------------------------------------------------------

UnitOperation::Actions UnitOperation::on_reply(std::uint64_t id, const Reply& reply) {
    Actions out;
    auto it = in_flight_.find(id);
    if (over() || it == in_flight_.end()) return out;  // a call of an earlier attempt
    Call call = it->second;
    in_flight_.erase(it);
    if (step_ == Step::Kill) {
        kill_reply(call, reply, out);
        advance(out);
        return out;
    }
    using Status = Reply::Status;
    switch (call.method) {
    case Method::ResetFailedUnit: break;  // a failed reset (no such failed unit) does not matter
    case Method::StartUnit:
    case Method::StopUnit:
        if (reply.status == Status::Ok) {
            job_queued(call.unit, reply.text);
        } else if (reply.status == Status::NoReply) {
            out.warnings.push_back(what(call) +
                                   ": no reply from systemd (re-executing?); waiting for the unit to settle");
            unknown_jobs_.insert(call.unit);
            out.poll = true;
        } else {
            fail_once(what(call) + ": " + reply.text);
        }
        break;
    case Method::ReadMembers:
        if (reply.status == Status::Ok) {
            members_ = reply.members;
            std::sort(members_.begin(), members_.end());
            members_.erase(std::unique(members_.begin(), members_.end()), members_.end());
        } else if (reply.status == Status::NoReply) {
            members_unread_ = true;
            out.poll = true;
        } else {
            fail_once(what(call) + ": " + reply.text);
        }
        break;
    case Method::ReadState: state_read(call.unit, reply, out); break;
    case Method::KillUnit: break;  // only a kill sends it
    }
    advance(out);
    return out;
}

void UnitOperation::kill_reply(const Call& call, const Reply& reply, Actions& out) {
    using Status = Reply::Status;
    switch (reply.status) {
    case Status::Ok:
        if (call.method == Method::ReadState && is_down(reply.text)) awaiting_down_.erase(call.unit);
        break;
    case Status::NoSuchUnit: awaiting_down_.erase(call.unit); break;  // not loaded: nothing left to kill
    case Status::NoReply: break;                                      // the poll asks again
    case Status::Error:
        // Logged; the unit's state still decides when the kill is over.
        if (call.method != Method::ReadState) out.warnings.push_back(what(call) + ": " + reply.text);
        break;
    }
}

void UnitOperation::state_read(const std::string& unit, const Reply& reply, Actions& out) {
    using Status = Reply::Status;
    if (unknown_jobs_.count(unit) != 0) {  // the poll of a job whose fate is unknown
        if (reply.status == Status::Ok) settle_unknown_job(unit, reply.text);
        return;
    }
    switch (reply.status) {
    case Status::Ok:
        unread_states_.erase(unit);
        states_[unit] = reply.text;
        break;
    case Status::NoReply:
        unread_states_.insert(unit);
        out.poll = true;
        break;
    case Status::Error:
    case Status::NoSuchUnit:
        unread_states_.erase(unit);
        states_[unit] = "unreadable (" + reply.text + ")";
        break;
    }
}

void UnitOperation::settle_unknown_job(const std::string& unit, const std::string& active_state) {
    if (unknown_jobs_.count(unit) == 0) return;
    bool starting = kind_ == Kind::Start;
    if (starting ? (is_up(active_state) || active_state == "failed") : is_down(active_state)) {
        unknown_jobs_.erase(unit);
        job_done(unit, starting && active_state == "failed" ? "failed" : "done");
    }
}

UnitOperation::Actions UnitOperation::on_not_sent(std::uint64_t id, const std::string& error, bool connection_gone) {
    Actions out;
    auto it = in_flight_.find(id);
    if (over() || it == in_flight_.end()) return out;
    if (connection_gone) return on_disconnected();  // everything else in flight is lost with it
    Call call = it->second;
    in_flight_.erase(it);
    if (step_ == Step::Kill) {
        out.warnings.push_back(what(call) + ": " + error);  // the poll goes on
        out.poll = true;
        return out;
    }
    finish(false, what(call) + ": " + error, out);
    return out;
}

UnitOperation::Actions UnitOperation::on_job_removed(const std::string& job, const std::string& result) {
    Actions out;
    if (step_ != Step::StartJob && step_ != Step::StopJobs) return out;
    auto it = jobs_.find(job);
    if (it == jobs_.end()) {
        // Its StartUnit/StopUnit reply may still be on its way.
        if (!in_flight_.empty()) early_[job] = result;
        return out;
    }
    std::string unit = it->second;
    jobs_.erase(it);
    job_done(unit, result);
    advance(out);
    return out;
}

UnitOperation::Actions UnitOperation::on_state_seen(const std::string& unit, const std::string& active_state) {
    Actions out;
    if (over() || !connected_) return out;
    if (step_ == Step::Kill) {
        if (is_down(active_state)) awaiting_down_.erase(unit);
    } else {
        settle_unknown_job(unit, active_state);
    }
    advance(out);
    return out;
}

UnitOperation::Actions UnitOperation::on_disconnected() {
    // Replies will never come: the operation starts over on the next connection.
    connected_ = false;
    in_flight_.clear();
    return {};
}

UnitOperation::Actions UnitOperation::on_reconnected() {
    Actions out;
    connected_ = true;
    if (!over()) restart(out);
    return out;
}

UnitOperation::Actions UnitOperation::on_poll() {
    Actions out;
    if (over() || !connected_) return out;
    if (members_unread_ && !asking(target_)) {
        members_unread_ = false;
        send(Method::ReadMembers, target_, out);
    }
    std::set<std::string> units = unknown_jobs_;
    units.insert(unread_states_.begin(), unread_states_.end());
    units.insert(awaiting_down_.begin(), awaiting_down_.end());
    // One question per unit at a time: a systemd that is slow to answer must
    // not collect a new call every poll until the bus queue overflows.
    for (const auto& unit : units)
        if (!asking(unit)) send(Method::ReadState, unit, out);
    out.poll = !units.empty() || members_unread_;
    return out;
}

UnitOperation::Actions UnitOperation::on_timeout() {
    Actions out;
    if (over() || kind_ == Kind::Kill) return out;  // a kill ends only on systemd's word
    std::string description = std::string(kVerbs.at(static_cast<std::size_t>(kind_))) + target_ + " timed out";
    if (!connected_) description += " while the bus was away";
    finish(false, std::move(description), out);
    return out;
}

// --- steps ------------------------------------------------------------------

void UnitOperation::job_queued(const std::string& unit, const std::string& job) {
    if (auto it = early_.find(job); it != early_.end()) {
        job_done(unit, it->second);
        early_.erase(it);
        return;
    }
    jobs_[job] = unit;
}

void UnitOperation::job_done(const std::string& unit, const std::string& result) {
    if (result != "done") fail_once("job for " + unit + " finished with result '" + result + "'");
}

// A stop and a check act on the target's members as systemd lists them now.
void UnitOperation::load_members(Actions& out) {
    step_ = Step::LoadMembers;
    send(Method::ReadMembers, target_, out);
}

void UnitOperation::advance(Actions& out) {
    if (over() || !connected_) return;
    if (step_ == Step::Kill) {
        // Only the states decide: a unit seen down needs no reply to its kill.
        if (awaiting_down_.empty())
            finish(true,
                   "the fence of " + target_ +
                       " (SIGKILL to its units, the target stopped): " + "systemd reports them all down",
                   out);
        return;
    }
    if (!in_flight_.empty() || !jobs_.empty() || !unknown_jobs_.empty() || !unread_states_.empty() || members_unread_)
        return;
    switch (step_) {
    case Step::ResetFailed:
        step_ = Step::StartJob;
        send(Method::StartUnit, target_, out);
        break;
    case Step::StartJob:
        if (!failure_.empty()) return finish(false, failure_, out);
        load_members(out);
        break;
    case Step::LoadMembers:
        if (!failure_.empty()) return finish(false, failure_, out);
        step_ = kind_ == Kind::Stop ? Step::StopJobs : Step::Check;
        for (const auto& unit : units())
            send(step_ == Step::StopJobs ? Method::StopUnit : Method::ReadState, unit, out);
        break;
    case Step::StopJobs:
        if (!failure_.empty()) return finish(false, failure_, out);
        finish(true, "stopped " + target_, out);
        break;
    case Step::Check:
        for (const auto& unit : units()) {
            const std::string& state = states_[unit];
            if (!is_up(state)) return finish(false, "unit " + unit + " is " + state, out);
        }
        finish(true, target_ + " and " + std::to_string(members_.size()) + " unit(s) active", out);
        break;
    case Step::Kill:
    case Step::Over: break;
    }
}

}  // namespace freeha
