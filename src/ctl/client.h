// freehactl's side of the org.freeha1 API: a blocking client (a CLI may block; the daemon never does).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <systemd/sd-bus.h>

#include "bus/sd_ptr.h"
#include "core/history.h"
#include "core/placement.h"
#include "core/timespan.h"

namespace freeha::ctl {

// The facts freehactl shows and waits on, read from the status document
// (GetStatus(): the status file's JSON, built by core/status.cpp).
struct ClusterView {
    std::string node, cluster, state, phase, role, active_node, last_error, unavailable, mode, services_target;
    std::uint64_t term = 0;
    std::uint32_t expected_nodes = 0;
    bool quorate = false, standby = false, errored = false;
    std::optional<Usec> lease_remaining;
    std::uint64_t unexpected_services = 0;
    std::uint64_t log_lines_dropped = 0;
    // Absent from documents of daemons before 0.2: off, "", 0.
    bool maintenance = false, leaving = false;
    std::uint64_t maintenance_since_realtime_usec = 0;  // 0: never turned on or off
    std::string version;
    unsigned wire_version = 0;
    std::optional<History> history;  // absent from documents of daemons before it
    struct Node {
        std::string name, state, role;
        bool reachable = false;
        std::uint64_t term = 0;
        Usec last_heard_usec_ago;
        bool standby = false, errored = false;
        std::string not_counted;  // why it does not count towards quorum; "" when it does
        std::string version;        // "" for a node of a release before 0.2
        unsigned wire_version = 0;  // 0: never heard
        bool maintenance = false, left = false;
        // Its link on each channel (the document's nodes[].channels[]); empty
        // from daemons before link health was counted.
        struct Link {
            std::string channel;
            std::uint64_t received = 0, lost = 0;
            unsigned recent_expected = 0, recent_lost = 0;
            std::optional<double> recent_loss_ratio;  // nullopt while nothing was judged
            bool lossy = false;
        };
        std::vector<Link> links;
    };
    std::vector<Node> nodes;
    std::vector<std::pair<std::string, std::uint64_t>> packets;  // every counter, in the document's order
    // Backend=etcd's link (the document's "etcd"); nullopt with the heartbeats.
    struct Etcd {
        std::string endpoint, lease_id, last_failure;  // lease_id: hexadecimal, "" without a lease
        std::size_t endpoint_index = 0, endpoint_count = 0;
        std::optional<Usec> lease_remaining;
        bool synced = false;
        std::vector<std::pair<std::string, std::uint64_t>> counters;  // in the document's order
    };
    std::optional<Etcd> etcd;
    // A floating address (Address=), as the status document's "addresses" has it.
    struct Address {
        std::string address, device;
        bool up = false;
        std::string foreign_mac;  // "" when no other host was seen answering for it
        std::uint64_t conflicts = 0;
        // "192.0.2.10/24 on eth0: up here", "... not here", then " (another host
        // answers for it: MAC 52:54:00:12:34:56, 3 times)" once one was seen.
        std::string describe() const;
    };
    std::vector<Address> addresses;

    // Every service group, the default one first (the document's "groups");
    // empty from daemons before service groups.
    struct Group {
        std::string name, state, phase, active_node, last_error, handover_to, placement;
        std::string unavailable;  // why the group cannot run on this node now; "" when it can
        std::uint64_t term = 0;
        std::optional<Usec> lease_remaining;
        bool errored = false;
        // What one node announces of the group.
        struct Member {
            std::string name, state;
            std::uint64_t term = 0;
            bool errored = false;
            std::string handover_to;
            bool self = false;
            bool aside = false;  // the group cannot run there now
        };
        std::vector<Member> nodes;
        const Member* find(const std::string& node) const;
    };
    std::vector<Group> groups;
    std::vector<PlannedMove> rebalance;  // the planned switchovers to an even spread (empty from older daemons)

    const Node* find(const std::string& name) const;
    const Group* find_group(const std::string& name) const;
    // Reads the document; nullopt when it is not a schema_version 1 status.
    static std::optional<ClusterView> from(const nlohmann::json& status);
};

// A failed call: `unreachable` when the daemon could not be reached at all.
struct CallError {
    std::string message;
    bool unreachable = false;
};

class Client {
public:
    // Connects to the system bus, or the user bus; nullopt and *error on failure.
    static std::optional<Client> connect(bool user_bus, CallError* error);
    // As connect(), with every call, the bus's Hello included, failing (timed
    // out) after `timeout`: a bus that never answers holds the caller no longer.
    static std::optional<Client> connect(bool user_bus, Usec timeout, CallError* error);

    // The daemon's whole status document.
    std::optional<nlohmann::json> status(CallError* error);
    // status(), read into a view.
    std::optional<ClusterView> read(CallError* error);
    // Calls a Manager method with no or one argument ('b' or 's').
    bool call(const char* method, CallError* error);
    bool call(const char* method, bool argument, CallError* error);
    bool call(const char* method, const std::string& argument, CallError* error);
    // Calls a method of the Group object of `group` (/org/freeha1/group/NAME).
    bool call_group(const std::string& group, const char* method, CallError* error);
    bool call_group(const std::string& group, const char* method, const std::string& argument, CallError* error);

    sd_bus* get() const { return bus_.get(); }

private:
    explicit Client(BusPtr bus) : bus_(std::move(bus)) {}
    BusPtr bus_;
};

}  // namespace freeha::ctl
