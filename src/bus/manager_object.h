// The org.freeha1 D-Bus API: the Manager object at /org/freeha1 and one Node object per cluster node.
//
// Everything it shows comes from a status snapshot taken when a client asks
// (GetStatus() returns the whole snapshot as the status file's JSON);
// flush() compares a fresh snapshot with what clients were last told and
// emits one PropertiesChanged per object that changed. The daemon calls
// flush() from its post handler, so changes are coalesced per loop iteration.
// Mutating methods are answered once the bus has told who called them
// (GetConnectionUnixUser, asynchronously): a slow bus delays the answer,
// never the daemon.
#pragma once

#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>

#include <sys/types.h>

#include <systemd/sd-bus.h>

#include "bus/sd_ptr.h"
#include "core/status.h"

namespace freeha {

inline constexpr const char* kBusName = "org.freeha1";
inline constexpr const char* kManagerPath = "/org/freeha1";
inline constexpr const char* kManagerInterface = "org.freeha1.Manager";
inline constexpr const char* kNodePathPrefix = "/org/freeha1/node";
inline constexpr const char* kNodeInterface = "org.freeha1.Node";
inline constexpr const char* kErrorFailed = "org.freeha1.Error.Failed";

// "/org/freeha1/node/<bus-escaped name>"
std::string node_object_path(const std::string& node_name);

// A mutating method call, already checked for the caller's privileges.
struct BusRequest {
    enum class Kind { Stop, ForceStart, ClearError, SetStandby, Switchover, ReloadConfig };
    Kind kind;
    bool standby = false;  // SetStandby
    std::string node;      // Switchover; "" = the next eligible node
};

class ManagerObject {
public:
    using Snapshot = std::function<Status()>;
    // Carries out a request; returns why it was refused, or nullopt.
    using Handler = std::function<std::optional<std::string>(const BusRequest&)>;

    // How long the bus may take to tell who called a mutating method.
    static constexpr std::uint64_t kCallerLookupTimeoutUsec = 5 * 1000 * 1000;

    ManagerObject(Snapshot snapshot, Handler handler);
    ~ManagerObject();

    // Registers the objects on `bus`; sets *error and returns a negative errno on failure.
    int publish(sd_bus* bus, std::string* error);
    // Emits PropertiesChanged (and InterfacesAdded for new nodes) for what
    // changed between the last flush and `now`.
    void flush(const Status& now);

private:
    static int get_manager_property(sd_bus* bus, const char* path, const char* interface, const char* property,
                                    sd_bus_message* reply, void* userdata, sd_bus_error* error);
    static int get_node_property(sd_bus* bus, const char* path, const char* interface, const char* property,
                                 sd_bus_message* reply, void* userdata, sd_bus_error* error);
    static int find_node(sd_bus* bus, const char* path, const char* interface, void* userdata, void** found,
                         sd_bus_error* error);
    static int enumerate_nodes(sd_bus* bus, const char* prefix, void* userdata, char*** nodes, sd_bus_error* error);
    struct PendingRequest;

    static int method_request(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_caller_uid(sd_bus_message* reply, void* userdata, sd_bus_error* error);
    // Answers `call` (a mutating method) for a caller whose uid is known.
    void carry_out(sd_bus_message* call, uid_t caller);
    static int method_list_nodes(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int method_get_status(sd_bus_message* m, void* userdata, sd_bus_error* error);

    Snapshot snapshot_;
    Handler handler_;
    sd_bus* bus_ = nullptr;
    BusSlotPtr manager_slot_;
    BusSlotPtr node_slot_;
    BusSlotPtr enumerator_slot_;
    BusSlotPtr object_manager_slot_;
    std::optional<Status> told_;  // what clients were last told
    std::list<std::unique_ptr<PendingRequest>> pending_;  // mutating calls waiting for their caller's uid
};

}  // namespace freeha
