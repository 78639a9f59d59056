#include "ctl/client.h"

#include <cstdlib>
#include <cstring>

#include "bus/manager_object.h"

namespace freeha::ctl {
namespace {

// Errors that mean "nobody answers at org.freeha1" rather than "freehad said no".
bool means_unreachable(const sd_bus_error& e) {
    return sd_bus_error_has_names(&e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                  SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_TIMEOUT, SD_BUS_ERROR_DISCONNECTED,
                                  SD_BUS_ERROR_UNKNOWN_OBJECT);
}

CallError from_bus_error(const sd_bus_error& e, int r, const char* method) {
    CallError out;
    out.unreachable = means_unreachable(e) || r == -ECONNREFUSED || r == -ENOENT || r == -ENOTCONN;
    out.message = e.message != nullptr ? e.message : std::strerror(-r);
    if (out.unreachable) {
        out.message = "freehad is not reachable on the bus: " + out.message;
    } else if (sd_bus_error_has_name(&e, SD_BUS_ERROR_ACCESS_DENIED) &&
               out.message.rfind("Rejected send message", 0) == 0) {
        // dbus-daemon's own refusal is a page of match rules: say what it means.
        out.message = std::string(method) + " changes the cluster and requires root (refused by the D-Bus policy)";
    }
    return out;
}

template <typename... Args>
bool call_object(sd_bus* bus, const char* path, const char* interface, const char* method, CallError* error,
                 sd_bus_message** reply, const char* signature, Args... args) {
    sd_bus_error e = SD_BUS_ERROR_NULL;
    int r = sd_bus_call_method(bus, kBusName, path, interface, method, &e, reply, signature, args...);
    if (r < 0) *error = from_bus_error(e, r, method);
    sd_bus_error_free(&e);
    return r >= 0;
}

template <typename... Args>
bool call_method(sd_bus* bus, const char* method, CallError* error, sd_bus_message** reply, const char* signature,
                 Args... args) {
    return call_object(bus, kManagerPath, kManagerInterface, method, error, reply, signature, args...);
}

}  // namespace

const ClusterView::Node* ClusterView::find(const std::string& name) const {
    for (const auto& n : nodes)
        if (n.name == name) return &n;
    return nullptr;
}

const ClusterView::Group* ClusterView::find_group(const std::string& name) const {
    for (const auto& g : groups)
        if (g.name == name) return &g;
    return nullptr;
}

const ClusterView::Group::Member* ClusterView::Group::find(const std::string& node) const {
    for (const auto& n : nodes)
        if (n.name == node) return &n;
    return nullptr;
}

std::string ClusterView::Address::describe() const {
    std::string text = address + " on " + device + (up ? ": up here" : ": not here");
    if (conflicts != 0)
        text += " (another host answers for it: MAC " + foreign_mac + ", " + std::to_string(conflicts) +
                (conflicts == 1 ? " time)" : " times)");
    return text;
}

std::optional<ClusterView> ClusterView::from(const nlohmann::json& s) {
    try {
        if (s.at("schema_version") != 1) return std::nullopt;
        ClusterView v;
        auto text = [&](const char* key) { return s.at(key).is_null() ? std::string() : s.at(key).get<std::string>(); };
        v.node = text("node");
        v.cluster = text("cluster");
        v.state = text("state");
        v.phase = text("phase");
        v.role = text("role");
        v.active_node = text("active_node");
        v.last_error = text("last_error");
        if (s.contains("unavailable")) v.unavailable = text("unavailable");  // absent from older daemons
        v.mode = text("mode");
        v.services_target = text("services_target");
        v.term = s.at("term");
        v.expected_nodes = s.at("expected_nodes");
        v.quorate = s.at("quorate");
        v.standby = s.at("standby");
        v.errored = s.at("errored");
        if (!s.at("lease_remaining_usec").is_null()) v.lease_remaining = Usec(s.at("lease_remaining_usec").get<std::uint64_t>());
        v.unexpected_services = s.at("unexpected_services");
        // Absent from a daemon older than the field.
        v.log_lines_dropped = s.value("log_lines_dropped", std::uint64_t{0});
        if (s.contains("maintenance")) {  // absent before 0.2
            const auto& m = s.at("maintenance");
            v.maintenance = m.at("on");
            if (!m.at("since_realtime_usec").is_null()) v.maintenance_since_realtime_usec = m.at("since_realtime_usec");
        }
        v.version = s.value("version", std::string());
        v.wire_version = s.value("wire_version", 0u);
        v.leaving = s.value("leaving", false);
        if (s.contains("history")) v.history = history_from_json(s.at("history"));
        for (const auto& n : s.at("nodes")) {
            // Absent from documents of daemons before it.
            std::string not_counted = n.contains("not_counted") && !n.at("not_counted").is_null()
                                          ? n.at("not_counted").get<std::string>()
                                          : std::string();
            ClusterView::Node node;
            node.name = n.at("name");
            node.state = n.at("state");
            node.role = n.at("role");
            node.reachable = n.at("reachable");
            node.term = n.at("term");
            node.last_heard_usec_ago = Usec(n.at("last_heard_usec_ago").get<std::uint64_t>());
            node.standby = n.at("standby");
            node.errored = n.at("errored");
            node.not_counted = std::move(not_counted);
            // Absent from documents of daemons before 0.2.
            if (n.contains("version") && !n.at("version").is_null()) node.version = n.at("version");
            node.wire_version = n.value("wire_version", 0u);
            node.maintenance = n.value("maintenance", false);
            node.left = n.value("left", false);
            for (const auto& ch : n.value("channels", nlohmann::json::array())) {
                if (!ch.contains("received")) continue;  // a daemon before link health
                ClusterView::Node::Link link;
                link.channel = ch.at("name");
                link.received = ch.at("received");
                link.lost = ch.at("lost");
                link.recent_expected = ch.at("recent_expected");
                link.recent_lost = ch.at("recent_lost");
                if (!ch.at("recent_loss_ratio").is_null()) link.recent_loss_ratio = ch.at("recent_loss_ratio");
                link.lossy = ch.at("lossy");
                node.links.push_back(std::move(link));
            }
            v.nodes.push_back(std::move(node));
        }
        for (const auto& [name, value] : s.at("packets").items()) {
            if (value.is_object()) {  // "malformed": one counter per reason
                for (const auto& [reason, count] : value.items()) v.packets.emplace_back(name + "_" + reason, count);
            } else {
                v.packets.emplace_back(name, value);
            }
        }
        // Absent from documents of daemons before Address=.
        for (const auto& a : s.value("addresses", nlohmann::json::array()))
            v.addresses.push_back({a.at("address"), a.at("device"), a.at("up"),
                                   a.at("foreign_mac").is_null() ? std::string() : a.at("foreign_mac").get<std::string>(),
                                   a.at("conflicts")});
        // Absent from documents of daemons before service groups.
        for (const auto& g : s.value("groups", nlohmann::json::array())) {
            ClusterView::Group group;
            auto text = [&g](const char* key) { return g.at(key).is_null() ? std::string() : g.at(key).get<std::string>(); };
            group.name = text("name");
            group.state = text("state");
            group.phase = text("phase");
            group.active_node = text("active_node");
            group.term = g.at("term");
            if (!g.at("lease_remaining_usec").is_null())
                group.lease_remaining = Usec(g.at("lease_remaining_usec").get<std::uint64_t>());
            group.errored = g.at("errored");
            group.last_error = text("last_error");
            group.handover_to = text("handover_to");
            group.placement = text("placement");
            group.unavailable = text("unavailable");
            for (const auto& n : g.at("nodes"))
                group.nodes.push_back({n.at("name"), n.at("state"), n.at("term"), n.at("errored"),
                                       n.at("handover_to").is_null() ? std::string() : n.at("handover_to").get<std::string>(),
                                       n.at("self"), n.at("aside")});
            v.groups.push_back(std::move(group));
        }
        for (const auto& m : s.value("rebalance", nlohmann::json::array()))
            v.rebalance.push_back(PlannedMove{m.at("group"), m.at("from"), m.at("to")});
        // Null with the heartbeats, absent from documents of daemons before Backend=etcd.
        if (s.contains("etcd") && !s.at("etcd").is_null()) {
            const auto& e = s.at("etcd");
            auto text = [&e](const char* key) { return e.at(key).is_null() ? std::string() : e.at(key).get<std::string>(); };
            ClusterView::Etcd etcd;
            etcd.endpoint = text("endpoint");
            etcd.endpoint_index = e.at("endpoint_index");
            etcd.endpoint_count = e.at("endpoint_count");
            etcd.lease_id = text("lease_id");
            if (!e.at("lease_remaining_usec").is_null())
                etcd.lease_remaining = Usec(e.at("lease_remaining_usec").get<std::uint64_t>());
            etcd.synced = e.at("synced");
            for (const auto& [name, value] : e.at("counters").items()) etcd.counters.emplace_back(name, value);
            etcd.last_failure = text("last_failure");
            v.etcd = std::move(etcd);
        }
        return v;
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;
    }
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

std::optional<Client> Client::connect(bool user_bus, Usec timeout, CallError* error) {
    // sd_bus_open_system() and sd_bus_open_user() send Hello at once with
    // sd-bus's default timeout (25 s), before a timeout set on the open bus
    // could apply: the connection is made here instead, at the address they would use,
    // with the timeout set first.
    std::string address;
    const char* bus_name = user_bus ? "user" : "system";
    if (const char* e = std::getenv(user_bus ? "DBUS_SESSION_BUS_ADDRESS" : "DBUS_SYSTEM_BUS_ADDRESS"); e && *e) {
        address = e;
    } else if (!user_bus) {
        address = "unix:path=/run/dbus/system_bus_socket";
    } else if (const char* runtime = std::getenv("XDG_RUNTIME_DIR"); runtime && *runtime) {
        address = std::string("unix:path=") + runtime + "/bus";
    } else {
        *error = CallError{"cannot connect to the user bus: neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set",
                           true};
        return std::nullopt;
    }
    sd_bus* raw = nullptr;
    int r = sd_bus_new(&raw);
    BusPtr bus(raw);
    if (r >= 0) r = sd_bus_set_address(raw, address.c_str());
    if (r >= 0) r = sd_bus_set_bus_client(raw, 1);
    if (r >= 0) r = sd_bus_set_method_call_timeout(raw, timeout.count());
    if (r >= 0) r = sd_bus_start(raw);
    if (r < 0) {
        *error = CallError{std::string("cannot connect to the ") + bus_name + " bus: " + std::strerror(-r), true};
        return std::nullopt;
    }
    return Client(std::move(bus));
}

std::optional<nlohmann::json> Client::status(CallError* error) {
    sd_bus_message* raw = nullptr;
    if (!call_method(bus_.get(), "GetStatus", error, &raw, "")) return std::nullopt;
    BusMessagePtr reply(raw);
    const char* document = nullptr;
    if (sd_bus_message_read(raw, "s", &document) < 0 || document == nullptr) {
        *error = CallError{"malformed GetStatus() reply from freehad", false};
        return std::nullopt;
    }
    auto parsed = nlohmann::json::parse(document, nullptr, false);
    if (parsed.is_discarded()) {
        *error = CallError{"freehad's status is not valid JSON", false};
        return std::nullopt;
    }
    return parsed;
}

std::optional<ClusterView> Client::read(CallError* error) {
    auto document = status(error);
    if (!document) return std::nullopt;
    auto view = ClusterView::from(*document);
    if (!view) *error = CallError{"freehad's status document is not one freehactl understands (schema_version 1)", false};
    return view;
}

bool Client::call(const char* method, CallError* error) { return call_method(bus_.get(), method, error, nullptr, ""); }

bool Client::call(const char* method, bool argument, CallError* error) {
    return call_method(bus_.get(), method, error, nullptr, "b", static_cast<int>(argument));
}

bool Client::call(const char* method, const std::string& argument, CallError* error) {
    return call_method(bus_.get(), method, error, nullptr, "s", argument.c_str());
}

}  // namespace freeha::ctl

namespace freeha::ctl {

bool Client::call_group(const std::string& group, const char* method, CallError* error) {
    std::string path = group_object_path(group);
    return call_object(bus_.get(), path.c_str(), kGroupInterface, method, error, nullptr, "");
}

bool Client::call_group(const std::string& group, const char* method, const std::string& argument, CallError* error) {
    std::string path = group_object_path(group);
    return call_object(bus_.get(), path.c_str(), kGroupInterface, method, error, nullptr, "s", argument.c_str());
}

}  // namespace freeha::ctl
