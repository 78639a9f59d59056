#include "ctl/client.h"

#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "bus/manager_object.h"

namespace freeha::ctl {
namespace {

// Errors that mean "nobody answers at org.freeha1" rather than "freehad said no".
bool means_unreachable(const sd_bus_error& e) {
    return sd_bus_error_has_names(&e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                  SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_TIMEOUT, SD_BUS_ERROR_DISCONNECTED,
                                  SD_BUS_ERROR_UNKNOWN_OBJECT);
}

CallError from_bus_error(const sd_bus_error& e, int r) {
    CallError out;
    out.unreachable = means_unreachable(e) || r == -ECONNREFUSED || r == -ENOENT || r == -ENOTCONN;
    out.message = e.message != nullptr ? e.message : std::strerror(-r);
    if (out.unreachable) out.message = "freehad is not reachable on the bus: " + out.message;
    return out;
}

// Reads one property; returns false and fills *error on failure.
template <typename T>
bool read_property(sd_bus* bus, const char* name, char type, T* out, CallError* error) {
    sd_bus_error e = SD_BUS_ERROR_NULL;
    int r = 0;
    if constexpr (std::is_same_v<T, std::string>) {
        char* s = nullptr;
        r = sd_bus_get_property_string(bus, kBusName, kManagerPath, kManagerInterface, name, &e, &s);
        if (r >= 0) {
            *out = s;
            std::free(s);
        }
    } else if constexpr (std::is_same_v<T, bool>) {
        int b = 0;
        r = sd_bus_get_property_trivial(bus, kBusName, kManagerPath, kManagerInterface, name, &e, type, &b);
        if (r >= 0) *out = b != 0;
    } else {
        r = sd_bus_get_property_trivial(bus, kBusName, kManagerPath, kManagerInterface, name, &e, type, out);
    }
    if (r < 0) *error = from_bus_error(e, r);
    sd_bus_error_free(&e);
    return r >= 0;
}

bool read_packets(sd_bus* bus, std::vector<std::pair<std::string, std::uint64_t>>* out, CallError* error) {
    sd_bus_error e = SD_BUS_ERROR_NULL;
    sd_bus_message* raw = nullptr;
    int r = sd_bus_get_property(bus, kBusName, kManagerPath, kManagerInterface, "Packets", &e, &raw, "a{st}");
    BusMessagePtr reply(raw);
    if (r < 0) {
        *error = from_bus_error(e, r);
        sd_bus_error_free(&e);
        return false;
    }
    r = sd_bus_message_enter_container(raw, 'a', "{st}");
    while (r > 0) {
        const char* name = nullptr;
        std::uint64_t value = 0;
        r = sd_bus_message_read(raw, "{st}", &name, &value);
        if (r > 0) out->emplace_back(name, value);
    }
    if (r < 0) *error = CallError{"malformed Packets property from freehad", false};
    return r >= 0;
}

}  // namespace

const ClusterView::Node* ClusterView::find(const std::string& name) const {
    for (const auto& n : nodes)
        if (n.name == name) return &n;
    return nullptr;
}

std::optional<Client> Client::connect(bool user_bus, CallError* error) {
    sd_bus* raw = nullptr;
    int r = user_bus ? sd_bus_open_user(&raw) : sd_bus_open_system(&raw);
    if (r < 0) {
        *error = CallError{std::string("cannot connect to the ") + (user_bus ? "user" : "system") +
                               " bus: " + std::strerror(-r),
                           true};
        return std::nullopt;
    }
    return Client(BusPtr(raw));
}

std::optional<ClusterView> Client::read(CallError* error) {
    sd_bus* b = bus_.get();
    ClusterView v;
    bool ok = read_property(b, "NodeName", 's', &v.node, error) && read_property(b, "ClusterName", 's', &v.cluster, error) &&
              read_property(b, "State", 's', &v.state, error) && read_property(b, "Role", 's', &v.role, error) &&
              read_property(b, "Term", 't', &v.term, error) && read_property(b, "Quorate", 'b', &v.quorate, error) &&
              read_property(b, "ActiveNode", 's', &v.active_node, error) &&
              read_property(b, "ExpectedNodes", 'u', &v.expected_nodes, error) &&
              read_property(b, "Standby", 'b', &v.standby, error) && read_property(b, "Errored", 'b', &v.errored, error) &&
              read_property(b, "LastError", 's', &v.last_error, error) && read_property(b, "Mode", 's', &v.mode, error) &&
              read_property(b, "ServicesTarget", 's', &v.services_target, error);
    if (!ok) return std::nullopt;

    if (!read_packets(b, &v.packets, error)) return std::nullopt;

    sd_bus_error e = SD_BUS_ERROR_NULL;
    sd_bus_message* raw = nullptr;
    int r = sd_bus_call_method(b, kBusName, kManagerPath, kManagerInterface, "ListNodes", &e, &raw, "");
    BusMessagePtr reply(raw);
    if (r < 0) {
        *error = from_bus_error(e, r);
        sd_bus_error_free(&e);
        return std::nullopt;
    }
    r = sd_bus_message_enter_container(raw, 'a', "(sssbt)");
    while (r > 0) {
        const char *name = nullptr, *state = nullptr, *role = nullptr;
        int reachable = 0;
        std::uint64_t age = 0;
        r = sd_bus_message_read(raw, "(sssbt)", &name, &state, &role, &reachable, &age);
        if (r > 0) v.nodes.push_back({name, state, role, reachable != 0, age});
    }
    if (r < 0) {
        *error = CallError{"malformed ListNodes() reply from freehad", false};
        return std::nullopt;
    }
    return v;
}

namespace {

template <typename... Args>
bool call_method(sd_bus* bus, const char* method, CallError* error, const char* signature, Args... args) {
    sd_bus_error e = SD_BUS_ERROR_NULL;
    int r = sd_bus_call_method(bus, kBusName, kManagerPath, kManagerInterface, method, &e, nullptr, signature, args...);
    if (r < 0) *error = from_bus_error(e, r);
    sd_bus_error_free(&e);
    return r >= 0;
}

}  // namespace

bool Client::call(const char* method, CallError* error) { return call_method(bus_.get(), method, error, ""); }

bool Client::call(const char* method, bool argument, CallError* error) {
    return call_method(bus_.get(), method, error, "b", static_cast<int>(argument));
}

bool Client::call(const char* method, const std::string& argument, CallError* error) {
    return call_method(bus_.get(), method, error, "s", argument.c_str());
}

}  // namespace freeha::ctl
