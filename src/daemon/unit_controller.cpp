#include "daemon/unit_controller.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "daemon/log.h"

namespace freeha {
namespace {

constexpr const char* kSystemd = "org.freedesktop.systemd1";
constexpr const char* kSystemdPath = "/org/freedesktop/systemd1";
constexpr const char* kSystemdManager = "org.freedesktop.systemd1.Manager";
constexpr const char* kUnitInterface = "org.freedesktop.systemd1.Unit";
constexpr const char* kProperties = "org.freedesktop.DBus.Properties";

std::string unit_path(const std::string& unit) {
    char* raw = nullptr;
    if (sd_bus_path_encode("/org/freedesktop/systemd1/unit", unit.c_str(), &raw) < 0) return {};
    std::string path(raw);
    std::free(raw);
    return path;
}

bool is_up(const std::string& active_state) { return active_state == "active" || active_state == "reloading"; }
bool is_down(const std::string& active_state) { return active_state == "inactive" || active_state == "failed"; }
// Active, or on its way there: what a unit started behind our back looks like first.
bool is_coming_up(const std::string& active_state) { return is_up(active_state) || active_state == "activating"; }

// The reply is an error that means "systemd did not answer", not "systemd said no".
bool is_no_reply(const sd_bus_error* e) {
    return e != nullptr && sd_bus_error_has_names(e, SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_DISCONNECTED,
                                                  SD_BUS_ERROR_TIMEOUT, SD_BUS_ERROR_SERVICE_UNKNOWN,
                                                  SD_BUS_ERROR_NAME_HAS_NO_OWNER);
}

// The connection itself is gone: the operation resumes on the next one.
bool is_connection_gone(int r) { return r == -ENOTCONN || r == -ECONNRESET || r == -EPIPE; }

std::string error_text(const sd_bus_error* e) { return e->message != nullptr ? e->message : e->name; }

const char* verb(HookKind kind) {
    return kind == HookKind::Start ? "starting " : kind == HookKind::Stop ? "stopping " : "checking ";
}

}  // namespace

struct UnitController::Call {
    UnitController* self;
    std::string unit;
    BusSlotPtr slot;
};

struct UnitController::Operation {
    enum class Step { ResetFailed, StartJob, LoadMembers, StopJobs, Check, Kill };
    HookKind kind;
    bool killing = false;  // kill() was called: the operation ends once every unit is down
    Step step = Step::ResetFailed;
    std::list<std::unique_ptr<Call>> calls;     // in flight
    std::map<std::string, std::string> jobs;    // job path -> unit, awaiting JobRemoved
    std::map<std::string, std::string> early;   // job path -> result, removed before its reply came
    std::set<std::string> unknown_jobs;         // units whose job call got NoReply: poll their state
    std::set<std::string> unread_states;        // units whose state read got NoReply: read again
    std::set<std::string> awaiting_down;        // Kill: units systemd has not yet reported down
    std::map<std::string, std::string> states;  // Check: unit -> ActiveState
    std::string failure;                        // the first thing that went wrong
    EventSourcePtr timeout;
    EventSourcePtr poll;
};

UnitController::UnitController(sd_event* event, std::string target, Usec fence_timeout, Callbacks callbacks)
    : event_(event), target_(std::move(target)), fence_timeout_(fence_timeout), callbacks_(std::move(callbacks)) {
    watched_paths_[unit_path(target_)] = target_;
    sd_event_source* s = nullptr;
    // Created once: delivering an outcome must never depend on allocating a source then.
    if (sd_event_add_defer(event_, &s, on_deliver, this) >= 0) {
        deliver_.reset(s);
        sd_event_source_set_enabled(s, SD_EVENT_OFF);
    }
}

UnitController::~UnitController() = default;

// --- the connection ---------------------------------------------------------

int UnitController::attach(sd_bus* bus, std::string* error) {
    if (!deliver_) {
        *error = "target mode: cannot create an event source";
        return -ENOMEM;
    }
    detach();
    bus_ = bus;
    sd_bus_slot* slot = nullptr;
    // The JobRemoved match exists before any job is queued.
    int r = sd_bus_match_signal_async(bus_, &slot, kSystemd, kSystemdPath, kSystemdManager, "JobRemoved",
                                      on_job_removed, nullptr, this);
    if (r >= 0) {
        job_removed_slot_.reset(slot);
        // Only the Unit interface: systemd also signals Service, Job and Manager changes.
        r = sd_bus_add_match_async(bus_, &slot,
                                   "type='signal',sender='org.freedesktop.systemd1',"
                                   "interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
                                   "arg0='org.freedesktop.systemd1.Unit'",
                                   on_properties_changed, nullptr, this);
    }
    if (r >= 0) {
        properties_slot_.reset(slot);
        // A new owner of systemd's name is a re-executed manager: subscribe again.
        r = sd_bus_match_signal_async(bus_, &slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                      "org.freedesktop.DBus", "NameOwnerChanged", on_systemd_owner_changed, nullptr,
                                      this);
    }
    if (r >= 0) {
        owner_slot_.reset(slot);
        r = sd_bus_call_method_async(bus_, &slot, kSystemd, kSystemdPath, kSystemdManager, "Subscribe", on_subscribed,
                                     this, "");
    }
    if (r < 0) {
        *error = log::with_errno("target mode: cannot watch systemd over D-Bus", r);
        detach();
        return r;
    }
    subscribe_slot_.reset(slot);
    // Whatever happened while we were away: read the units again.
    auto call = std::make_unique<Call>(Call{this, target_, nullptr});
    std::string path = unit_path(target_);
    if (sd_bus_call_method_async(bus_, &slot, kSystemd, path.c_str(), kProperties, "GetAll", on_watch_members,
                                 call.get(), "s", kUnitInterface) >= 0) {
        call->slot.reset(slot);
        watch_calls_.push_back(std::move(call));
    }
    if (op_) perform();
    update_unreachable_deadline();
    return 0;
}

void UnitController::detach() {
    bus_ = nullptr;
    job_removed_slot_.reset();
    properties_slot_.reset();
    owner_slot_.reset();
    subscribe_slot_.reset();
    watch_calls_.clear();
    last_state_.clear();  // re-read on the next connection
    if (op_) {
        // Replies will never come: the operation starts over on the next connection.
        op_->calls.clear();
        op_->jobs.clear();
        op_->early.clear();
        op_->unknown_jobs.clear();
        op_->unread_states.clear();
        op_->poll.reset();
    }
    update_unreachable_deadline();
}

// A stop or kill needs systemd; without the bus for FenceTimeout, give up
// the services the only way left (the caller exits; BindsTo= does the rest).
void UnitController::update_unreachable_deadline() {
    bool needs_systemd = op_ && (op_->kind == HookKind::Stop || op_->killing);
    if (bus_ != nullptr || !needs_systemd) {
        unreachable_.reset();
        return;
    }
    if (unreachable_) return;
    sd_event_source* s = nullptr;
    int r = sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, fence_timeout_.count(),
                                       (10 * kUsecPerMsec).count(), on_unreachable, this);
    if (r < 0) {
        callbacks_.unreachable(log::with_errno("target mode: cannot arm the fence timer", r));
        return;
    }
    unreachable_.reset(s);
}

int UnitController::on_unreachable(sd_event_source*, uint64_t, void* userdata) {
    return log::guarded("UnitController::on_unreachable", [&]() -> int {
        auto* self = static_cast<UnitController*>(userdata);
        self->unreachable_.reset();
        self->callbacks_.unreachable("target mode: the bus has been away for FenceTimeout=" +
                                     format_timespan(self->fence_timeout_) + " while " + self->target_ +
                                     " must stop; systemd cannot be asked to stop it");
        return 0;
    });
}

// --- operations -------------------------------------------------------------

void UnitController::run(HookKind kind, Usec timeout) {
    begin_operation(kind, timeout);
    if (kind == HookKind::Stop) watching_ = false;  // our own stop is not a failure
    perform();
    update_unreachable_deadline();
}

void UnitController::perform() {
    if (bus_ == nullptr) return;  // attach() performs it
    op_->calls.clear();
    op_->jobs.clear();
    op_->early.clear();
    op_->unknown_jobs.clear();
    op_->unread_states.clear();
    op_->states.clear();
    op_->failure.clear();
    if (op_->killing) return kill_units();
    switch (op_->kind) {
    case HookKind::Start:
        op_->step = Operation::Step::ResetFailed;
        if (call_manager("ResetFailedUnit", target_, "s", on_reset_failed) < 0) finish(false, op_->failure);
        break;
    case HookKind::Stop: load_members_then(&UnitController::stop_units); break;
    case HookKind::Monitor: load_members_then(&UnitController::check_units); break;
    }
}

void UnitController::cancel(HookKind kind) {
    if (!op_ || op_->kind != kind || op_->killing) return;  // a kill is not canceled
    finish(false, "canceled");
}

void UnitController::kill() {
    if (op_ && op_->killing) return;
    if (op_) finish(false, "killed");  // the stop (or start) in progress ends here
    op_ = std::make_unique<Operation>();
    op_->kind = HookKind::Stop;
    op_->killing = true;  // no timeout: it ends when systemd says the units are down
    watching_ = false;
    perform();
    update_unreachable_deadline();
}

void UnitController::kill_units() {
    op_->step = Operation::Step::Kill;
    for (const auto& unit : watched_units()) {
        op_->awaiting_down.insert(unit);
        // A target has no processes, and systemd refuses KillUnit on one: stop
        // it instead, which also stops its PartOf= members and so keeps a
        // member with Restart= from coming back after the SIGKILL.
        bool target = unit == target_;
        if (call_manager(target ? "StopUnit" : "KillUnit", unit, target ? "ss" : "ssi", on_kill_reply) < 0 &&
            !op_->failure.empty())
            log::error(op_->failure);
    }
    arm_poll();
}

void UnitController::begin_operation(HookKind kind, Usec timeout) {
    if (op_) finish(false, "superseded");
    op_ = std::make_unique<Operation>();
    op_->kind = kind;
    sd_event_source* s = nullptr;
    int r = sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, timeout.count(), (10 * kUsecPerMsec).count(),
                                       on_timeout, this);
    if (r < 0) {
        log::error(log::with_errno(std::string("target mode: cannot bound ") + verb(kind) + target_, r));
        finish(false, "could not be bounded by a timeout");
        return;
    }
    op_->timeout.reset(s);
}

void UnitController::finish(bool success, std::string description) {
    if (!op_) return;
    HookKind kind = op_->kind;
    op_.reset();  // drops in-flight calls: their callbacks never run
    unreachable_.reset();
    if (kind == HookKind::Start && success) watching_ = true;
    outcomes_.emplace_back(kind, HookOutcome{success, std::move(description)});
    sd_event_source_set_enabled(deliver_.get(), SD_EVENT_ONESHOT);
}

int UnitController::on_deliver(sd_event_source*, void* userdata) {
    return log::guarded("UnitController::on_deliver", [&]() -> int {
        auto* self = static_cast<UnitController*>(userdata);
        while (!self->outcomes_.empty()) {
            auto [kind, outcome] = std::move(self->outcomes_.front());
            self->outcomes_.pop_front();
            try {
                self->callbacks_.finished(kind, outcome);
            } catch (const std::exception& e) {
                log::error(std::string("target mode: ") + e.what());
            }
        }
        if (std::exchange(self->killed_owed_, false)) self->callbacks_.killed();
        return 0;
    });
}

int UnitController::call_manager(const char* member, const std::string& unit, const char* signature,
                                 sd_bus_message_handler_t handler) {
    auto call = std::make_unique<Call>(Call{this, unit, nullptr});
    sd_bus_slot* slot = nullptr;
    std::string_view sig = signature;
    int r = sig == "ss"   ? sd_bus_call_method_async(bus_, &slot, kSystemd, kSystemdPath, kSystemdManager, member,
                                                     handler, call.get(), "ss", unit.c_str(), "replace")
            : sig == "ssi" ? sd_bus_call_method_async(bus_, &slot, kSystemd, kSystemdPath, kSystemdManager, member,
                                                      handler, call.get(), "ssi", unit.c_str(), "all", SIGKILL)
                           : sd_bus_call_method_async(bus_, &slot, kSystemd, kSystemdPath, kSystemdManager, member,
                                                      handler, call.get(), "s", unit.c_str());
    if (r < 0) {
        if (is_connection_gone(r)) return 0;  // resumed on the next connection
        op_->failure = log::with_errno(std::string(member) + " " + unit, r);
        return r;
    }
    call->slot.reset(slot);
    op_->calls.push_back(std::move(call));
    return 0;
}

int UnitController::get_property(const std::string& unit, const char* property, sd_bus_message_handler_t handler) {
    auto call = std::make_unique<Call>(Call{this, unit, nullptr});
    sd_bus_slot* slot = nullptr;
    std::string path = unit_path(unit);
    int r = std::string_view(property) == "*"
                ? sd_bus_call_method_async(bus_, &slot, kSystemd, path.c_str(), kProperties, "GetAll", handler,
                                           call.get(), "s", kUnitInterface)
                : sd_bus_call_method_async(bus_, &slot, kSystemd, path.c_str(), kProperties, "Get", handler,
                                           call.get(), "ss", kUnitInterface, property);
    if (r < 0) {
        if (is_connection_gone(r)) return 0;
        op_->failure = log::with_errno("reading " + unit, r);
        return r;
    }
    call->slot.reset(slot);
    op_->calls.push_back(std::move(call));
    return 0;
}

void UnitController::load_members_then(void (UnitController::*next)()) {
    op_->step = Operation::Step::LoadMembers;
    pending_next_ = next;
    if (get_property(target_, "*", on_members) < 0) finish(false, op_->failure);
}

void UnitController::start_target() {
    op_->step = Operation::Step::StartJob;
    if (call_manager("StartUnit", target_, "ss", on_job_reply) < 0) finish(false, op_->failure);
}

void UnitController::stop_units() {
    op_->step = Operation::Step::StopJobs;
    for (const auto& unit : watched_units())
        if (call_manager("StopUnit", unit, "ss", on_job_reply) < 0) return finish(false, op_->failure);
}

void UnitController::check_units() {
    op_->step = Operation::Step::Check;
    for (const auto& unit : watched_units())
        if (get_property(unit, "ActiveState", on_active_state) < 0) return finish(false, op_->failure);
}

std::vector<std::string> UnitController::watched_units() const {
    std::vector<std::string> units{target_};
    units.insert(units.end(), members_.begin(), members_.end());
    return units;
}

void UnitController::set_members(std::vector<std::string> members) {
    std::sort(members.begin(), members.end());
    members.erase(std::unique(members.begin(), members.end()), members.end());
    members_ = std::move(members);
    watched_paths_.clear();
    for (const auto& u : watched_units()) watched_paths_[unit_path(u)] = u;
}

// Called whenever something the current step waited for has arrived.
void UnitController::step_done_if_complete() {
    if (!op_ || !op_->calls.empty() || !op_->jobs.empty() || !op_->unknown_jobs.empty() ||
        !op_->unread_states.empty())
        return;
    using Step = Operation::Step;
    switch (op_->step) {
    case Step::ResetFailed:
        start_target();  // a failed reset (no such failed unit) does not matter
        break;
    case Step::StartJob:
        if (!op_->failure.empty()) return finish(false, op_->failure);
        load_members_then(&UnitController::check_units);
        break;
    case Step::LoadMembers:
        if (!op_->failure.empty()) return finish(false, op_->failure);
        (this->*pending_next_)();
        step_done_if_complete();  // nothing to wait for (cannot happen: the target is always there)
        break;
    case Step::StopJobs:
        finish(op_->failure.empty(), op_->failure.empty() ? "stopped " + target_ : op_->failure);
        break;
    case Step::Check:
        for (const auto& unit : watched_units()) {
            const std::string& state = op_->states[unit];
            if (!is_up(state)) return finish(false, "unit " + unit + " is " + state);
        }
        finish(true, target_ + " and " + std::to_string(members_.size()) + " unit(s) active");
        break;
    case Step::Kill:
        if (!op_->awaiting_down.empty()) return;
        log::info("the fence of " + target_ + " (SIGKILL to its units, the target stopped): "
                  "systemd reports them all down");
        op_.reset();
        unreachable_.reset();
        killed_owed_ = true;
        sd_event_source_set_enabled(deliver_.get(), SD_EVENT_ONESHOT);
        break;
    }
}

void UnitController::job_queued(const std::string& unit, const std::string& job) {
    if (auto it = op_->early.find(job); it != op_->early.end()) {
        job_done(unit, it->second);
        return;
    }
    op_->jobs[job] = unit;
}

void UnitController::job_done(const std::string& unit, const std::string& result) {
    if (result != "done" && op_->failure.empty())
        op_->failure = "job for " + unit + " finished with result '" + result + "'";
}

// A unit's state as read during an operation.
void UnitController::unit_state(const std::string& unit, const std::string& active_state) {
    if (op_->step == Operation::Step::Kill) {
        if (is_down(active_state)) op_->awaiting_down.erase(unit);
        return;
    }
    if (op_->unknown_jobs.count(unit) != 0) {  // its job's fate is unknown (NoReply): the state decides
        bool starting = op_->kind == HookKind::Start;
        if (starting ? (is_up(active_state) || active_state == "failed") : is_down(active_state)) {
            op_->unknown_jobs.erase(unit);
            job_done(unit, starting && active_state == "failed" ? "failed" : "done");
        }
        return;
    }
    op_->unread_states.erase(unit);
    op_->states[unit] = active_state;
}

void UnitController::poll_pending() {
    if (!op_ || bus_ == nullptr) return;
    std::set<std::string> units = op_->unknown_jobs;
    units.insert(op_->unread_states.begin(), op_->unread_states.end());
    units.insert(op_->awaiting_down.begin(), op_->awaiting_down.end());
    // One question per unit at a time: a systemd that is slow to answer must
    // not collect a new call every poll until the bus queue overflows.
    auto in_flight = [this](const std::string& unit) {
        return std::any_of(op_->calls.begin(), op_->calls.end(), [&](const auto& c) { return c->unit == unit; });
    };
    for (const auto& unit : units)
        if (!in_flight(unit)) get_property(unit, "ActiveState", on_active_state);
    if (units.empty()) return;
    sd_event_source_set_time_relative(op_->poll.get(), kPendingPoll.count());
    sd_event_source_set_enabled(op_->poll.get(), SD_EVENT_ONESHOT);
}

void UnitController::arm_poll() {
    if (op_->poll) return;
    sd_event_source* s = nullptr;
    int r = sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, kPendingPoll.count(), (10 * kUsecPerMsec).count(),
                                       on_poll, this);
    if (r < 0) {
        // Signals may still settle it; the operation's timeout bounds the wait.
        log::error(log::with_errno("target mode: cannot poll " + target_, r));
        return;
    }
    op_->poll.reset(s);
}

void UnitController::report_failure_once(const std::string& why) {
    if (!watching_) return;
    watching_ = false;
    callbacks_.failed(why);
}

// A watched unit's state, whatever we are doing: failures of our running
// services, and units that come up (started by us or behind our back).
void UnitController::watch_state(const std::string& unit, const std::string& active_state) {
    if (watching_ && (is_down(active_state) || active_state == "deactivating"))
        report_failure_once("unit " + unit + " is " + active_state);
    // Transitions only: systemd repeats ActiveState with every change of a unit.
    bool was_coming_up = is_coming_up(last_state_[unit]);
    last_state_[unit] = active_state;
    if (is_coming_up(active_state) && !was_coming_up) callbacks_.activated("unit " + unit + " is " + active_state);
    if (op_ && op_->step == Operation::Step::Kill && is_down(active_state)) {
        op_->awaiting_down.erase(unit);
        step_done_if_complete();
    }
}

// --- callbacks --------------------------------------------------------------

// Unlinks `call` from the running operation and returns the operation, or
// nullptr when the call belongs to an operation that has ended.
UnitController::Reply UnitController::take(void* userdata) {
    auto* call = static_cast<Call*>(userdata);
    Reply reply{call->self, call->unit, nullptr};
    auto& op = reply.self->op_;
    if (!op) return reply;
    for (auto it = op->calls.begin(); it != op->calls.end(); ++it) {
        if (it->get() != call) continue;
        op->calls.erase(it);  // sd-bus holds its own reference to the slot during this callback
        reply.op = op.get();
        break;
    }
    return reply;
}

int UnitController::on_reset_failed(sd_bus_message*, void* userdata, sd_bus_error*) {
    return log::guarded("UnitController::on_reset_failed", [&]() -> int {
        auto [self, unit, op] = take(userdata);
        if (op != nullptr) self->step_done_if_complete();
        return 0;
    });
}

namespace {

// Reads the units a target pulls in from its GetAll reply; false on a malformed reply.
bool read_members(sd_bus_message* m, std::vector<std::string>* members) {
    int r = sd_bus_message_enter_container(m, 'a', "{sv}");
    while (r > 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
        const char* name = nullptr;
        r = sd_bus_message_read(m, "s", &name);
        std::string_view n = r >= 0 ? name : "";
        // Not BindsTo=: the shipped target binds to freehad.service itself.
        if (n == "Requires" || n == "Requisite" || n == "Wants" || n == "ConsistsOf") {
            char** list = nullptr;
            r = sd_bus_message_enter_container(m, 'v', "as");
            if (r >= 0) r = sd_bus_message_read_strv(m, &list);
            for (char** p = list; p != nullptr && *p != nullptr; ++p) {
                members->emplace_back(*p);
                std::free(*p);
            }
            std::free(list);
            if (r >= 0) r = sd_bus_message_exit_container(m);
        } else if (r >= 0) {
            r = sd_bus_message_skip(m, "v");
        }
        if (r >= 0) r = sd_bus_message_exit_container(m);
        if (r >= 0) r = 1;
    }
    return r >= 0;
}

}  // namespace

int UnitController::on_members(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("UnitController::on_members", [&]() -> int {
        auto [self, unit, op] = take(userdata);
        if (op == nullptr) return 0;
        if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
            if (is_no_reply(e)) {
                op->unread_states.insert(unit);  // read again: LoadMembers restarts from perform()
                self->arm_poll();
            } else {
                op->failure = "reading " + unit + ": " + error_text(e);
            }
            self->step_done_if_complete();
            return 0;
        }
        std::vector<std::string> members;
        if (!read_members(m, &members))
            op->failure = "reading " + unit + ": malformed reply";
        else
            self->set_members(std::move(members));
        self->step_done_if_complete();
        return 0;
    });
}

int UnitController::on_watch_members(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("UnitController::on_watch_members", [&]() -> int {
        auto* call = static_cast<Call*>(userdata);
        UnitController* self = call->self;
        self->watch_calls_.remove_if([call](const auto& c) { return c.get() == call; });
        std::vector<std::string> members;
        if (sd_bus_message_get_error(m) != nullptr || !read_members(m, &members)) return 0;
        self->set_members(std::move(members));
        for (const auto& unit : self->watched_units()) {
            auto read = std::make_unique<Call>(Call{self, unit, nullptr});
            sd_bus_slot* slot = nullptr;
            std::string path = unit_path(unit);
            if (sd_bus_call_method_async(self->bus_, &slot, kSystemd, path.c_str(), kProperties, "Get", on_watch_state,
                                         read.get(), "ss", kUnitInterface, "ActiveState") < 0)
                continue;
            read->slot.reset(slot);
            self->watch_calls_.push_back(std::move(read));
        }
        return 0;
    });
}

int UnitController::on_watch_state(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("UnitController::on_watch_state", [&]() -> int {
        auto* call = static_cast<Call*>(userdata);
        UnitController* self = call->self;
        std::string unit = call->unit;
        self->watch_calls_.remove_if([call](const auto& c) { return c.get() == call; });
        const char* state = nullptr;
        if (sd_bus_message_get_error(m) == nullptr && sd_bus_message_read(m, "v", "s", &state) >= 0 && state != nullptr)
            self->watch_state(unit, state);
        return 0;
    });
}

int UnitController::on_job_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("UnitController::on_job_reply", [&]() -> int {
        auto [self, unit, op] = take(userdata);
        if (op == nullptr) return 0;
        const char* member = op->kind == HookKind::Start ? "StartUnit" : "StopUnit";
        if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
            if (is_no_reply(e)) {
                log::warning(std::string(member) + " " + unit + ": no reply from systemd (re-executing?); " +
                             "waiting for the unit to settle");
                op->unknown_jobs.insert(unit);
                self->arm_poll();
            } else if (op->failure.empty()) {
                op->failure = std::string(member) + " " + unit + ": " + error_text(e);
            }
        } else {
            const char* job = nullptr;
            if (sd_bus_message_read(m, "o", &job) >= 0 && job != nullptr)
                self->job_queued(unit, job);
            else if (op->failure.empty())
                op->failure = std::string(member) + " " + unit + ": malformed reply";
        }
        self->step_done_if_complete();
        return 0;
    });
}

int UnitController::on_kill_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("UnitController::on_kill_reply", [&]() -> int {
        auto [self, unit, op] = take(userdata);
        if (op == nullptr) return 0;
        if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
            // A unit that is not loaded has nothing left to kill; anything else is
            // logged, and the unit's state still decides when the kill is over.
            if (sd_bus_error_has_names(e, "org.freedesktop.systemd1.NoSuchUnit",
                                       "org.freedesktop.systemd1.NoUnitForInvocationID"))
                op->awaiting_down.erase(unit);
            else if (!is_no_reply(e))
                log::error("KillUnit " + unit + ": " + error_text(e));
        }
        self->step_done_if_complete();
        return 0;
    });
}

int UnitController::on_active_state(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("UnitController::on_active_state", [&]() -> int {
        auto [self, unit, op] = take(userdata);
        if (op == nullptr) return 0;
        const char* state = nullptr;
        if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
            if (is_no_reply(e)) {
                if (op->unknown_jobs.count(unit) == 0 && op->step != Operation::Step::Kill)
                    op->unread_states.insert(unit);
                self->arm_poll();
            } else if (op->unknown_jobs.count(unit) == 0) {
                self->unit_state(unit, "unreadable (" + error_text(e) + ")");
            }
        } else if (sd_bus_message_read(m, "v", "s", &state) >= 0 && state != nullptr) {
            self->unit_state(unit, state);
        }
        self->step_done_if_complete();
        return 0;
    });
}

int UnitController::on_job_removed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("UnitController::on_job_removed", [&]() -> int {
        auto* self = static_cast<UnitController*>(userdata);
        std::uint32_t id = 0;
        const char *job = nullptr, *unit = nullptr, *result = nullptr;
        if (!self->op_ || sd_bus_message_read(m, "uoss", &id, &job, &unit, &result) < 0) return 0;
        auto it = self->op_->jobs.find(job);
        if (it == self->op_->jobs.end()) {
            // Its StartUnit/StopUnit reply may still be on its way.
            if (!self->op_->calls.empty()) self->op_->early[job] = result;
            return 0;
        }
        std::string owner = it->second;
        self->op_->jobs.erase(it);
        self->job_done(owner, result);
        self->step_done_if_complete();
        return 0;
    });
}

int UnitController::on_properties_changed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("UnitController::on_properties_changed", [&]() -> int {
        auto* self = static_cast<UnitController*>(userdata);
        auto watched = self->watched_paths_.find(sd_bus_message_get_path(m));
        if (watched == self->watched_paths_.end()) return 0;
        std::string unit = watched->second;
        const char* interface = nullptr;
        if (sd_bus_message_read(m, "s", &interface) < 0 || std::string_view(interface) != kUnitInterface) return 0;
        int r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r > 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
            const char* name = nullptr;
            const char* state = nullptr;
            r = sd_bus_message_read(m, "s", &name);
            if (r >= 0 && std::string_view(name) == "ActiveState") {
                r = sd_bus_message_read(m, "v", "s", &state);
                if (r >= 0) self->watch_state(unit, state);
                return 0;
            }
            if (r >= 0) r = sd_bus_message_skip(m, "v");
            if (r >= 0) r = sd_bus_message_exit_container(m);
            if (r >= 0) r = 1;
        }
        return 0;
    });
}

int UnitController::on_systemd_owner_changed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("UnitController::on_systemd_owner_changed", [&]() -> int {
        auto* self = static_cast<UnitController*>(userdata);
        const char *name = nullptr, *old_owner = nullptr, *new_owner = nullptr;
        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || std::string_view(name) != kSystemd ||
            *new_owner == '\0')
            return 0;
        log::notice("systemd is back on the bus; subscribing to its unit signals again");
        sd_bus_slot* slot = nullptr;
        if (sd_bus_call_method_async(self->bus_, &slot, kSystemd, kSystemdPath, kSystemdManager, "Subscribe",
                                     on_subscribed, self, "") >= 0)
            self->subscribe_slot_.reset(slot);
        return 0;
    });
}

int UnitController::on_subscribed(sd_bus_message* m, void*, sd_bus_error*) {
    return log::guarded("UnitController::on_subscribed", [&]() -> int {
        // Without the subscription a failing unit is only seen by the periodic check.
        const sd_bus_error* e = sd_bus_message_get_error(m);
        if (e != nullptr && !sd_bus_error_has_name(e, "org.freedesktop.systemd1.AlreadySubscribed"))
            log::warning("target mode: Subscribe() to systemd failed (" + error_text(e) +
                         "); failed units will be noticed at the next monitor check only");
        return 0;
    });
}

int UnitController::on_timeout(sd_event_source*, uint64_t, void* userdata) {
    return log::guarded("UnitController::on_timeout", [&]() -> int {
        auto* self = static_cast<UnitController*>(userdata);
        if (self->op_ && !self->op_->killing)
            self->finish(false, std::string(verb(self->op_->kind)) + self->target_ + " timed out");
        return 0;
    });
}

int UnitController::on_poll(sd_event_source*, uint64_t, void* userdata) {
    return log::guarded("UnitController::on_poll", [&]() -> int {
        static_cast<UnitController*>(userdata)->poll_pending();
        return 0;
    });
}

}  // namespace freeha
