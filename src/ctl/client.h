// freehactl's side of the org.freeha1 API: a blocking client (a CLI may block; the daemon never does).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <systemd/sd-bus.h>

#include "bus/sd_ptr.h"

namespace freeha::ctl {

// What freehactl shows: the Manager properties plus ListNodes().
struct ClusterView {
    std::string node, cluster, state, role, active_node, last_error, mode, services_target;
    std::uint64_t term = 0;
    std::uint32_t expected_nodes = 0;
    bool quorate = false, standby = false, errored = false;
    struct Node {
        std::string name, state, role;
        bool reachable = false;
        std::uint64_t last_heard_usec_ago = 0;
    };
    std::vector<Node> nodes;
    std::vector<std::pair<std::string, std::uint64_t>> packets;  // the Packets property, in its order

    const Node* find(const std::string& name) const;
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

    std::optional<ClusterView> read(CallError* error);
    // Calls a Manager method with no or one argument ('b' or 's').
    bool call(const char* method, CallError* error);
    bool call(const char* method, bool argument, CallError* error);
    bool call(const char* method, const std::string& argument, CallError* error);

    sd_bus* get() const { return bus_.get(); }

private:
    explicit Client(BusPtr bus) : bus_(std::move(bus)) {}
    BusPtr bus_;
};

}  // namespace freeha::ctl
