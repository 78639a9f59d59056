// The org.freeha1 D-Bus API: the Manager object at /org/freeha1, one Node object per cluster node and one Group object per service group.
//
// Everything it shows comes from the last status snapshot it was given
// (immutable, shared): a read never reaches into the daemon, so the object
// can live on a thread of its own (ApiThread). GetStatus() returns the whole
// snapshot as the status file's JSON. flush() compares a new snapshot with
// what clients were last told and emits one PropertiesChanged per object
// that changed. Mutating methods are handed on once the bus has told who
// called them (GetConnectionUnixUser, asynchronously) and answered when the
// handler replies: a slow bus or a busy daemon delays the answer, nothing
// else. No exception leaves a getter or a method: it becomes the caller's error.
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
inline constexpr const char* kGroupPathPrefix = "/org/freeha1/group";
inline constexpr const char* kGroupInterface = "org.freeha1.Group";
inline constexpr const char* kErrorFailed = "org.freeha1.Error.Failed";

// "/org/freeha1/node/<bus-escaped name>"
std::string node_object_path(const std::string& node_name);
// "/org/freeha1/group/<bus-escaped name>"
std::string group_object_path(const std::string& group_name);

// A mutating method call, already checked for the caller's privileges.
struct BusRequest {
    enum class Kind { Stop, ForceStart, ClearError, SetStandby, Switchover, ReloadConfig, SetMaintenance };
    Kind kind;
    bool standby = false;  // SetStandby
    bool maintenance = false;  // SetMaintenance
    std::string node;      // Switchover; "" = the next eligible node
    // Called on a Group object (Switchover, ClearError): that group's name;
    // "" on the Manager object (the node, or its default group).
    std::string group;
};

class ManagerObject {
public:
    // Answers a request: why it was refused, or nullopt. Called once, on the object's thread.
    using Reply = std::function<void(const std::optional<std::string>& refused)>;
    // Carries out a request (its caller is privileged) and calls `reply` when done.
    using Handler = std::function<void(const BusRequest&, Reply reply)>;

    // How long the bus may take to tell who called a mutating method.
    static constexpr std::uint64_t kCallerLookupTimeoutUsec = 5 * 1000 * 1000;

    ManagerObject(std::shared_ptr<const Status> status, Handler handler);
    ~ManagerObject();

    // Registers the objects on `bus`; sets *error and returns a negative errno on failure.
    int publish(sd_bus* bus, std::string* error);
    // Shows `now` from here on; emits PropertiesChanged (and InterfacesAdded
    // for new nodes) for what changed since the last snapshot.
    void flush(std::shared_ptr<const Status> now);

private:
    static int get_manager_property(sd_bus* bus, const char* path, const char* interface, const char* property,
                                    sd_bus_message* reply, void* userdata, sd_bus_error* error);
    static int get_node_property(sd_bus* bus, const char* path, const char* interface, const char* property,
                                 sd_bus_message* reply, void* userdata, sd_bus_error* error);
    static int find_node(sd_bus* bus, const char* path, const char* interface, void* userdata, void** found,
                         sd_bus_error* error);
    static int enumerate_nodes(sd_bus* bus, const char* prefix, void* userdata, char*** nodes, sd_bus_error* error);
    static int get_group_property(sd_bus* bus, const char* path, const char* interface, const char* property,
                                  sd_bus_message* reply, void* userdata, sd_bus_error* error);
    static int find_group(sd_bus* bus, const char* path, const char* interface, void* userdata, void** found,
                          sd_bus_error* error);
    static int enumerate_groups(sd_bus* bus, const char* prefix, void* userdata, char*** groups, sd_bus_error* error);
    struct PendingRequest;

    static int method_request(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int on_caller_uid(sd_bus_message* reply, void* userdata, sd_bus_error* error);
    // Answers `call` (a mutating method) for a caller whose uid is known.
    void carry_out(sd_bus_message* call, uid_t caller);
    static int method_list_nodes(sd_bus_message* m, void* userdata, sd_bus_error* error);
    static int method_get_status(sd_bus_message* m, void* userdata, sd_bus_error* error);

    Handler handler_;
    sd_bus* bus_ = nullptr;
    BusSlotPtr manager_slot_;
    BusSlotPtr node_slot_;
    BusSlotPtr enumerator_slot_;
    BusSlotPtr group_slot_;
    BusSlotPtr group_enumerator_slot_;
    BusSlotPtr object_manager_slot_;
    std::shared_ptr<const Status> status_;  // what clients see, and were last told
    std::list<std::unique_ptr<PendingRequest>> pending_;  // mutating calls waiting for their caller's uid
};

}  // namespace freeha
