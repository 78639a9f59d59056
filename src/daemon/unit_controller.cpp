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

bool is_down(const std::string& active_state) { return UnitOperation::is_down(active_state); }
// Active, or on its way there: what a unit started behind our back looks like first.
bool is_coming_up(const std::string& active_state) {
    return UnitOperation::is_up(active_state) || active_state == "activating";
}

// The reply is an error that means "systemd did not answer", not "systemd said no".
bool is_no_reply(const sd_bus_error* e) {
    return e != nullptr && sd_bus_error_has_names(e, SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_DISCONNECTED,
                                                  SD_BUS_ERROR_TIMEOUT, SD_BUS_ERROR_SERVICE_UNKNOWN,
                                                  SD_BUS_ERROR_NAME_HAS_NO_OWNER);
}

// The connection itself is gone: the operation waits for the next one.
bool is_connection_gone(int r) { return r == -ENOTCONN || r == -ECONNRESET || r == -EPIPE; }

std::string error_text(const sd_bus_error* e) { return e->message != nullptr ? e->message : e->name; }

UnitOperation::Kind operation_of(HookKind kind) {
    return kind == HookKind::Start  ? UnitOperation::Kind::Start
           : kind == HookKind::Stop ? UnitOperation::Kind::Stop
                                    : UnitOperation::Kind::Check;
}

}  // namespace

// A method call in flight, for the running operation or for the watch.
struct UnitController::Call {
    UnitController* self;
    UnitOperation::Call call;
    BusSlotPtr slot;
};

struct UnitController::Operation {
    HookKind kind;  // what `finished` reports (a kill reports `killed` instead)
    UnitOperation steps;
    std::list<std::unique_ptr<Call>> calls;  // in flight
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
    reread();
    if (op_) apply(op_->steps.on_reconnected());
    update_unreachable_deadline();
    return 0;
}

void UnitController::reread() {
    if (bus_ == nullptr) return;
    sd_bus_slot* slot = nullptr;
    auto call = std::make_unique<Call>(Call{this, {0, UnitOperation::Method::ReadMembers, target_}, nullptr});
    if (call_method(call->call, on_watch_members, call.get(), &slot) >= 0) {
        call->slot.reset(slot);
        watch_calls_.push_back(std::move(call));
    }
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
        op_->calls.clear();  // their replies will never come
        op_->poll.reset();
        apply(op_->steps.on_disconnected());
    }
    update_unreachable_deadline();
}

// A stop or kill needs systemd; without it for FenceTimeout, give up the
// services the only way left (the caller exits; BindsTo= does the rest).
void UnitController::update_unreachable_deadline() {
    bool needs_systemd = op_ && op_->kind == HookKind::Stop;  // a kill is a stop too
    if (!needs_systemd || op_->steps.connected()) {
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
    if (kind == HookKind::Stop) watching_ = false;  // our own stop is not a failure
    begin(kind, operation_of(kind), timeout);
}

void UnitController::cancel(HookKind kind) {
    if (!op_ || op_->kind != kind || op_->steps.kind() == UnitOperation::Kind::Kill) return;  // a kill is not canceled
    finish(false, "canceled");
}

void UnitController::kill() {
    if (op_ && op_->steps.kind() == UnitOperation::Kind::Kill) return;
    if (op_) finish(false, "killed");  // the stop (or start) in progress ends here
    watching_ = false;
    begin(HookKind::Stop, UnitOperation::Kind::Kill, Usec(0));  // no timeout: it ends when the units are down
}

void UnitController::begin(HookKind kind, UnitOperation::Kind what, Usec timeout) {
    if (op_) finish(false, "superseded");
    UnitOperation steps(what, target_, members_, bus_ != nullptr);
    op_ = std::make_unique<Operation>(Operation{kind, std::move(steps), {}, {}, {}});
    if (what != UnitOperation::Kind::Kill) {
        sd_event_source* s = nullptr;
        int r = sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, timeout.count(),
                                           (10 * kUsecPerMsec).count(), on_timeout, this);
        if (r < 0) {
            lines_.error(log::with_errno("target mode: cannot bound the operation on " + target_, r));
            finish(false, "could not be bounded by a timeout");
            return;
        }
        op_->timeout.reset(s);
    }
    apply(op_->steps.begin());
}

void UnitController::apply(UnitOperation::Actions actions) {
    // Kill first, log after: the warnings (a failed KillUnit, say) follow what the step does.
    auto log_warnings = [&] {
        for (const auto& warning : actions.warnings) lines_.warning("target mode: " + warning);
    };
    if (actions.outcome) {
        if (op_->steps.kind() != UnitOperation::Kind::Kill) {
            finish(actions.outcome->success, std::move(actions.outcome->description));
            return log_warnings();
        }
        lines_.info(actions.outcome->description);
        op_.reset();
        unreachable_.reset();
        killed_owed_ = true;
        sd_event_source_set_enabled(deliver_.get(), SD_EVENT_ONESHOT);
        return log_warnings();
    }
    for (const auto& call : actions.calls) {
        if (!op_) return log_warnings();  // ended by a call that could not be sent
        send(call);
    }
    if (actions.poll && op_) arm_poll();
    update_unreachable_deadline();
    log_warnings();
}

void UnitController::send(const UnitOperation::Call& call) {
    if (!op_->steps.awaits(call.id)) return;  // an earlier call of the batch lost the connection
    auto pending = std::make_unique<Call>(Call{this, call, nullptr});
    sd_bus_slot* slot = nullptr;
    int r = bus_ == nullptr ? -ENOTCONN : call_method(call, on_reply, pending.get(), &slot);
    if (r < 0) {
        return apply(op_->steps.on_not_sent(call.id, std::strerror(-r), is_connection_gone(r)));
    }
    pending->slot.reset(slot);
    op_->calls.push_back(std::move(pending));
}

int UnitController::call_method(const UnitOperation::Call& call, sd_bus_message_handler_t handler, void* userdata,
                                sd_bus_slot** slot) {
    using Method = UnitOperation::Method;
    const char* unit = call.unit.c_str();
    std::string member(UnitOperation::method_name(call.method));
    switch (call.method) {
    case Method::ResetFailedUnit:
        return sd_bus_call_method_async(bus_, slot, kSystemd, kSystemdPath, kSystemdManager, member.c_str(), handler,
                                        userdata, "s", unit);
    case Method::StartUnit:
    case Method::StopUnit:
        return sd_bus_call_method_async(bus_, slot, kSystemd, kSystemdPath, kSystemdManager, member.c_str(), handler,
                                        userdata, "ss", unit, "replace");
    case Method::KillUnit:
        return sd_bus_call_method_async(bus_, slot, kSystemd, kSystemdPath, kSystemdManager, member.c_str(), handler,
                                        userdata, "ssi", unit, "all", SIGKILL);
    case Method::ReadMembers:
        return sd_bus_call_method_async(bus_, slot, kSystemd, unit_path(call.unit).c_str(), kProperties, "GetAll",
                                        handler, userdata, "s", kUnitInterface);
    case Method::ReadState:
        return sd_bus_call_method_async(bus_, slot, kSystemd, unit_path(call.unit).c_str(), kProperties, "Get",
                                        handler, userdata, "ss", kUnitInterface, "ActiveState");
    }
    return -EINVAL;
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
                self->lines_.error(std::string("target mode: ") + e.what());
            }
        }
        if (std::exchange(self->killed_owed_, false)) self->callbacks_.killed();
        return 0;
    });
}

void UnitController::arm_poll() {
    if (op_->poll) {
        int enabled = SD_EVENT_OFF;
        sd_event_source_get_enabled(op_->poll.get(), &enabled);
        if (enabled != SD_EVENT_OFF) return;  // a tick is due already
        sd_event_source_set_time_relative(op_->poll.get(), kPendingPoll.count());
        sd_event_source_set_enabled(op_->poll.get(), SD_EVENT_ONESHOT);
        return;
    }
    sd_event_source* s = nullptr;
    int r = sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, kPendingPoll.count(), (10 * kUsecPerMsec).count(),
                                       on_poll, this);
    if (r < 0) {
        // Signals may still settle it; the operation's timeout bounds the wait.
        lines_.error(log::with_errno("target mode: cannot poll " + target_, r));
        return;
    }
    op_->poll.reset(s);
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
    if (op_) apply(op_->steps.on_state_seen(unit, active_state));
}

// --- callbacks --------------------------------------------------------------

namespace {

// Reads the units a target pulls in from its GetAll reply; false on a malformed reply.
// `load_state`, when given, gets the unit's LoadState ("loaded", "not-found", ...).
bool read_members(sd_bus_message* m, std::vector<std::string>* members, std::string* load_state = nullptr) {
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
        } else if (n == "LoadState" && load_state != nullptr) {
            const char* state = nullptr;
            r = sd_bus_message_read(m, "v", "s", &state);
            if (r >= 0 && state != nullptr) *load_state = state;
        } else if (r >= 0) {
            r = sd_bus_message_skip(m, "v");
        }
        if (r >= 0) r = sd_bus_message_exit_container(m);
        if (r >= 0) r = 1;
    }
    return r >= 0;
}

}  // namespace

namespace {

// A reply as the step machine reads it.
UnitOperation::Reply read_reply(sd_bus_message* m, UnitOperation::Method method) {
    using Status = UnitOperation::Reply::Status;
    UnitOperation::Reply reply;
    if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
        reply.status = is_no_reply(e) ? Status::NoReply
                       : sd_bus_error_has_names(e, "org.freedesktop.systemd1.NoSuchUnit",
                                                "org.freedesktop.systemd1.NoUnitForInvocationID")
                           ? Status::NoSuchUnit
                           : Status::Error;
        reply.text = error_text(e);
        return reply;
    }
    using Method = UnitOperation::Method;
    const char* text = nullptr;  // a job path or an ActiveState
    int r = 0;
    switch (method) {
    case Method::ResetFailedUnit:
    case Method::KillUnit: break;
    case Method::StartUnit:
    case Method::StopUnit: r = sd_bus_message_read(m, "o", &text); break;
    case Method::ReadState: r = sd_bus_message_read(m, "v", "s", &text); break;
    case Method::ReadMembers: r = read_members(m, &reply.members) ? 0 : -EBADMSG; break;
    }
    bool wants_text = method == Method::StartUnit || method == Method::StopUnit || method == Method::ReadState;
    if (r < 0 || (wants_text && text == nullptr)) {
        reply.status = Status::Error;
        reply.text = "malformed reply";
    } else if (text != nullptr) {
        reply.text = text;
    }
    return reply;
}

}  // namespace

int UnitController::on_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("UnitController::on_reply", [&]() -> int {
        auto* pending = static_cast<Call*>(userdata);
        UnitController* self = pending->self;
        UnitOperation::Call call = pending->call;
        auto& calls = self->op_->calls;  // a call outlives neither its operation nor its connection
        // sd-bus holds its own reference to the slot during this callback.
        calls.remove_if([pending](const auto& c) { return c.get() == pending; });
        UnitOperation::Reply reply = read_reply(m, call.method);
        if (call.method == UnitOperation::Method::ReadMembers && reply.status == UnitOperation::Reply::Status::Ok)
            self->set_members(reply.members);
        self->apply(self->op_->steps.on_reply(call.id, reply));
        return 0;
    });
}

int UnitController::on_watch_members(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("UnitController::on_watch_members", [&]() -> int {
        auto* call = static_cast<Call*>(userdata);
        UnitController* self = call->self;
        self->watch_calls_.remove_if([call](const auto& c) { return c.get() == call; });
        std::vector<std::string> members;
        std::string load_state;
        if (sd_bus_message_get_error(m) != nullptr || !read_members(m, &members, &load_state)) return 0;
        if (self->callbacks_.load_state && !load_state.empty()) self->callbacks_.load_state(load_state);
        self->set_members(std::move(members));
        for (const auto& unit : self->watched_units()) {
            auto read = std::make_unique<Call>(Call{self, {0, UnitOperation::Method::ReadState, unit}, nullptr});
            sd_bus_slot* slot = nullptr;
            if (self->call_method(read->call, on_watch_state, read.get(), &slot) < 0) continue;
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
        std::string unit = call->call.unit;
        self->watch_calls_.remove_if([call](const auto& c) { return c.get() == call; });
        const char* state = nullptr;
        if (sd_bus_message_get_error(m) == nullptr && sd_bus_message_read(m, "v", "s", &state) >= 0 && state != nullptr)
            self->watch_state(unit, state);
        return 0;
    });
}

int UnitController::on_job_removed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("UnitController::on_job_removed", [&]() -> int {
        auto* self = static_cast<UnitController*>(userdata);
        std::uint32_t id = 0;
        const char *job = nullptr, *unit = nullptr, *result = nullptr;
        if (!self->op_ || sd_bus_message_read(m, "uoss", &id, &job, &unit, &result) < 0) return 0;
        self->apply(self->op_->steps.on_job_removed(job, result));
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
        self->lines_.notice("systemd is back on the bus; subscribing to its unit signals again");
        sd_bus_slot* slot = nullptr;
        if (sd_bus_call_method_async(self->bus_, &slot, kSystemd, kSystemdPath, kSystemdManager, "Subscribe",
                                     on_subscribed, self, "") >= 0)
            self->subscribe_slot_.reset(slot);
        return 0;
    });
}

int UnitController::on_subscribed(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return log::guarded("UnitController::on_subscribed", [&]() -> int {
        // Without the subscription a failing unit is only seen by the periodic check.
        const sd_bus_error* e = sd_bus_message_get_error(m);
        if (e != nullptr && !sd_bus_error_has_name(e, "org.freedesktop.systemd1.AlreadySubscribed"))
            static_cast<UnitController*>(userdata)->lines_.warning(
                "target mode: Subscribe() to systemd failed (" + error_text(e) +
                "); failed units will be noticed at the next monitor check only");
        return 0;
    });
}

int UnitController::on_timeout(sd_event_source*, uint64_t, void* userdata) {
    return log::guarded("UnitController::on_timeout", [&]() -> int {
        auto* self = static_cast<UnitController*>(userdata);
        if (self->op_) self->apply(self->op_->steps.on_timeout());
        return 0;
    });
}

int UnitController::on_poll(sd_event_source*, uint64_t, void* userdata) {
    return log::guarded("UnitController::on_poll", [&]() -> int {
        auto* self = static_cast<UnitController*>(userdata);
        if (self->op_) self->apply(self->op_->steps.on_poll());
        return 0;
    });
}

}  // namespace freeha
