#include "bus/manager_object.h"

#include <cstdlib>
#include <cstring>
#include <vector>

#include <unistd.h>

namespace freeha {
namespace {

using Getter = int (*)(sd_bus_message* reply, const Status& s);

// Returns the entry named `name` in `entries` (Status::nodes, Status::groups), or nullptr.
template <class Entry>
const Entry* named(const std::vector<Entry>& entries, const std::string& name) {
    for (const auto& e : entries)
        if (e.name == name) return &e;
    return nullptr;
}

// Returns the entry of `entries` whose object is at `path` under `prefix`, or nullptr.
template <class Entry>
const Entry* entry_of_path(const std::vector<Entry>& entries, const char* prefix, const char* path) {
    char* raw = nullptr;
    if (sd_bus_path_decode(path, prefix, &raw) <= 0) return nullptr;
    std::string name(raw);
    std::free(raw);
    return named(entries, name);
}

const NodeStatus* node_of_path(const Status& s, const char* path) {
    return entry_of_path(s.nodes, kNodePathPrefix, path);
}
const GroupStatus* group_of_path(const Status& s, const char* path) {
    return entry_of_path(s.groups, kGroupPathPrefix, path);
}
const GroupStatus* group_named(const Status& s, const std::string& name) { return named(s.groups, name); }

// The object paths of `entries`, as sd_bus_add_node_enumerator wants them.
template <class Entry>
int object_paths(const std::vector<Entry>& entries, std::string (*path_of)(const std::string&), char*** paths) {
    auto** list = static_cast<char**>(std::calloc(entries.size() + 1, sizeof(char*)));
    if (list == nullptr) return -ENOMEM;
    for (std::size_t i = 0; i < entries.size(); ++i) list[i] = strdup(path_of(entries[i].name).c_str());
    *paths = list;
    return 0;
}

bool channel_healthy(const std::optional<Usec>& age, Usec dead_time) { return age && *age <= dead_time; }

using Counters = std::vector<std::pair<std::string, std::uint64_t>>;

// Counters by name as an a{st} (Packets, EtcdCounters).
int append_counters(sd_bus_message* reply, const Counters& counters) {
    int r = sd_bus_message_open_container(reply, 'a', "{st}");
    for (const auto& [name, value] : counters) {
        if (r < 0) return r;
        r = sd_bus_message_append(reply, "{st}", name.c_str(), value);
    }
    return r < 0 ? r : sd_bus_message_close_container(reply);
}

// The manager properties that change at run time, compared for PropertiesChanged.
std::vector<std::string> changed_manager_properties(const Status& a, const Status& b) {
    auto nodes_differ = [&] {
        if (a.nodes.size() != b.nodes.size()) return true;
        for (std::size_t i = 0; i < a.nodes.size(); ++i) {
            const auto &x = a.nodes[i], &y = b.nodes[i];
            if (x.name != y.name || x.state != y.state || x.role != y.role || x.reachable != y.reachable) return true;
        }
        return false;
    };
    std::vector<std::string> out;
    if (a.state != b.state) out.emplace_back("State");
    if (a.term != b.term) out.emplace_back("Term");
    if (a.quorate != b.quorate) out.emplace_back("Quorate");
    if (a.active_node != b.active_node) out.emplace_back("ActiveNode");
    if (a.expected_nodes != b.expected_nodes) out.emplace_back("ExpectedNodes");
    if (a.standby != b.standby) out.emplace_back("Standby");
    if (a.errored != b.errored) out.emplace_back("Errored");
    if (a.last_error != b.last_error) out.emplace_back("LastError");
    if (nodes_differ()) out.emplace_back("Nodes");
    if (a.addresses != b.addresses) out.emplace_back("Addresses");
    if (a.maintenance != b.maintenance) out.emplace_back("Maintenance");
    if (a.maintenance_since_realtime_usec != b.maintenance_since_realtime_usec)
        out.emplace_back("MaintenanceSinceUSec");
    if (a.wire_version != b.wire_version) out.emplace_back("WireVersion");
    auto etcd_text = [](const Status& s, std::string EtcdLinkStatus::*field) { return s.etcd ? *s.etcd.*field : ""; };
    if (etcd_text(a, &EtcdLinkStatus::endpoint) != etcd_text(b, &EtcdLinkStatus::endpoint))
        out.emplace_back("EtcdEndpoint");
    if (etcd_text(a, &EtcdLinkStatus::last_failure) != etcd_text(b, &EtcdLinkStatus::last_failure))
        out.emplace_back("EtcdLastFailure");
    return out;
}

std::vector<std::string> changed_node_properties(const NodeStatus& a, const NodeStatus& b) {
    std::vector<std::string> out;
    if (a.state != b.state) out.emplace_back("State");
    if (a.role != b.role) out.emplace_back("Role");
    if (a.reachable != b.reachable) out.emplace_back("Reachable");
    if (a.term != b.term) out.emplace_back("Term");
    if (a.standby != b.standby) out.emplace_back("Standby");
    if (a.errored != b.errored) out.emplace_back("Errored");
    if (a.version != b.version) out.emplace_back("Version");
    if (a.wire_version != b.wire_version) out.emplace_back("WireVersion");
    if (a.maintenance != b.maintenance) out.emplace_back("Maintenance");
    if (a.left != b.left) out.emplace_back("Left");
    return out;
}

std::vector<std::string> changed_group_properties(const GroupStatus& a, const GroupStatus& b) {
    auto nodes_differ = [&] {
        if (a.nodes.size() != b.nodes.size()) return true;
        for (std::size_t i = 0; i < a.nodes.size(); ++i) {
            const auto &x = a.nodes[i], &y = b.nodes[i];
            if (x.name != y.name || x.state != y.state || x.term != y.term || x.errored != y.errored) return true;
        }
        return false;
    };
    std::vector<std::string> out;
    if (a.state != b.state) out.emplace_back("State");
    if (a.phase != b.phase) out.emplace_back("Phase");
    if (a.active_node != b.active_node) out.emplace_back("ActiveNode");
    if (a.term != b.term) out.emplace_back("Term");
    if (a.errored != b.errored) out.emplace_back("Errored");
    if (a.last_error != b.last_error) out.emplace_back("LastError");
    if (a.handover_to != b.handover_to) out.emplace_back("HandoverTo");
    if (a.unavailable != b.unavailable) out.emplace_back("Unavailable");
    if (nodes_differ()) out.emplace_back("Nodes");
    return out;
}

void emit_changed(sd_bus* bus, const std::string& path, const char* interface, std::vector<std::string> names) {
    if (names.empty()) return;
    std::vector<char*> strv;
    for (auto& n : names) strv.push_back(n.data());
    strv.push_back(nullptr);
    sd_bus_emit_properties_changed_strv(bus, path.c_str(), interface, strv.data());
}

// Root, or the daemon's own user (for --user runs): the same rule the
// shipped policy file applies on the system bus.
bool privileged(uid_t caller) { return caller == 0 || caller == geteuid(); }

// The body of an sd-bus callback that answers a caller: no exception may
// unwind into sd-bus, so one becomes the caller's error.
template <typename Body>
int answering(sd_bus_error* error, Body&& body) noexcept {
    try {
        return body();
    } catch (const std::exception& e) {
        return sd_bus_error_set(error, kErrorFailed, e.what());
    } catch (...) {
        return sd_bus_error_set(error, kErrorFailed, "unknown exception");
    }
}

int reply_error(sd_bus_message* call, const char* name, const std::string& text) {
    sd_bus_error e = SD_BUS_ERROR_NULL;
    sd_bus_error_set(&e, name, text.c_str());
    int r = sd_bus_reply_method_error(call, &e);
    sd_bus_error_free(&e);
    return r;
}

}  // namespace

std::string node_object_path(const std::string& node_name) {
    char* raw = nullptr;
    if (sd_bus_path_encode(kNodePathPrefix, node_name.c_str(), &raw) < 0) return kNodePathPrefix;
    std::string path(raw);
    std::free(raw);
    return path;
}

std::string group_object_path(const std::string& group_name) {
    char* raw = nullptr;
    if (sd_bus_path_encode(kGroupPathPrefix, group_name.c_str(), &raw) < 0) return kGroupPathPrefix;
    std::string path(raw);
    std::free(raw);
    return path;
}

ManagerObject::ManagerObject(std::shared_ptr<const Status> status, Handler handler)
    : handler_(std::move(handler)), status_(std::move(status)) {}

int ManagerObject::get_manager_property(sd_bus*, const char*, const char*, const char* property, sd_bus_message* reply,
                                        void* userdata, sd_bus_error* error) {
    return answering(error, [&]() -> int {
        const Status& s = *static_cast<ManagerObject*>(userdata)->status_;
        std::string_view p = property;
        if (p == "NodeName") return sd_bus_message_append(reply, "s", s.node.c_str());
        if (p == "ClusterName") return sd_bus_message_append(reply, "s", s.cluster.c_str());
        if (p == "State") return sd_bus_message_append(reply, "s", std::string(to_string(s.state)).c_str());
        if (p == "Role") return sd_bus_message_append(reply, "s", std::string(to_string(s.role)).c_str());
        if (p == "Term") return sd_bus_message_append(reply, "t", s.term);
        if (p == "Quorate") return sd_bus_message_append(reply, "b", static_cast<int>(s.quorate));
        if (p == "ActiveNode") return sd_bus_message_append(reply, "s", s.active_node.c_str());
        if (p == "ExpectedNodes") return sd_bus_message_append(reply, "u", s.expected_nodes);
        if (p == "Standby") return sd_bus_message_append(reply, "b", static_cast<int>(s.standby));
        if (p == "Errored") return sd_bus_message_append(reply, "b", static_cast<int>(s.errored));
        if (p == "LastError") return sd_bus_message_append(reply, "s", s.last_error.c_str());
        if (p == "Mode") return sd_bus_message_append(reply, "s", s.mode.c_str());
        if (p == "ServicesTarget") return sd_bus_message_append(reply, "s", s.services_target.c_str());
        if (p == "Maintenance") return sd_bus_message_append(reply, "b", static_cast<int>(s.maintenance));
        if (p == "MaintenanceSinceUSec") return sd_bus_message_append(reply, "t", s.maintenance_since_realtime_usec);
        if (p == "Version") return sd_bus_message_append(reply, "s", s.version.c_str());
        if (p == "WireVersion") return sd_bus_message_append(reply, "y", static_cast<std::uint8_t>(s.wire_version));
        if (p == "Packets") return append_counters(reply, s.counters.by_name());
        // Backend=etcd's link; "", 0 and nothing with the heartbeats.
        if (p == "EtcdEndpoint") return sd_bus_message_append(reply, "s", s.etcd ? s.etcd->endpoint.c_str() : "");
        if (p == "EtcdLastFailure")
            return sd_bus_message_append(reply, "s", s.etcd ? s.etcd->last_failure.c_str() : "");
        if (p == "EtcdLeaseRemainingUSec")
            return sd_bus_message_append(reply, "t",
                                         s.etcd ? s.etcd->lease_remaining.value_or(Usec{0}).count() : 0);
        if (p == "EtcdCounters") return append_counters(reply, s.etcd ? s.etcd->counters_by_name() : Counters{});
        if (p == "Nodes") {
            int r = sd_bus_message_open_container(reply, 'a', "(sssb)");
            for (const auto& n : s.nodes) {
                if (r < 0) return r;
                r = sd_bus_message_append(reply, "(sssb)", n.name.c_str(), std::string(to_string(n.state)).c_str(),
                                          std::string(to_string(n.role)).c_str(), static_cast<int>(n.reachable));
            }
            return r < 0 ? r : sd_bus_message_close_container(reply);
        }
        if (p == "Addresses") {
            int r = sd_bus_message_open_container(reply, 'a', "(ssbst)");
            for (const auto& a : s.addresses) {
                if (r < 0) return r;
                r = sd_bus_message_append(reply, "(ssbst)", a.address.c_str(), a.device.c_str(),
                                          static_cast<int>(a.up), a.foreign_mac.c_str(), a.conflicts);
            }
            return r < 0 ? r : sd_bus_message_close_container(reply);
        }
        return -ENOENT;
    });
}

int ManagerObject::get_node_property(sd_bus*, const char* path, const char*, const char* property,
                                     sd_bus_message* reply, void* userdata, sd_bus_error* error) {
    return answering(error, [&]() -> int {
        const Status& s = *static_cast<ManagerObject*>(userdata)->status_;
        const NodeStatus* n = node_of_path(s, path);
        if (n == nullptr) return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_OBJECT, "no node at %s", path);
        std::string_view p = property;
        if (p == "Name") return sd_bus_message_append(reply, "s", n->name.c_str());
        if (p == "State") return sd_bus_message_append(reply, "s", std::string(to_string(n->state)).c_str());
        if (p == "Role") return sd_bus_message_append(reply, "s", std::string(to_string(n->role)).c_str());
        if (p == "Reachable") return sd_bus_message_append(reply, "b", static_cast<int>(n->reachable));
        if (p == "Term") return sd_bus_message_append(reply, "t", n->term);
        if (p == "Standby") return sd_bus_message_append(reply, "b", static_cast<int>(n->standby));
        if (p == "Errored") return sd_bus_message_append(reply, "b", static_cast<int>(n->errored));
        if (p == "LastHeardUSec") return sd_bus_message_append(reply, "t", n->last_heard_usec_ago.count());
        if (p == "Version") return sd_bus_message_append(reply, "s", n->version.c_str());
        if (p == "WireVersion") return sd_bus_message_append(reply, "y", static_cast<std::uint8_t>(n->wire_version));
        if (p == "Maintenance") return sd_bus_message_append(reply, "b", static_cast<int>(n->maintenance));
        if (p == "Left") return sd_bus_message_append(reply, "b", static_cast<int>(n->left));
        if (p == "Channels") {
            int r = sd_bus_message_open_container(reply, 'a', "(sbt)");
            for (std::size_t i = 0; i < n->channel_heard_usec_ago.size(); ++i) {
                if (r < 0) return r;
                const auto& age = n->channel_heard_usec_ago[i];
                std::string name = s.channel_name(i);
                int healthy = channel_healthy(age, s.dead_time);
                r = sd_bus_message_append(reply, "(sbt)", name.c_str(), healthy, age.value_or(Usec::max()).count());
            }
            return r < 0 ? r : sd_bus_message_close_container(reply);
        }
        if (p == "Links") {
            int r = sd_bus_message_open_container(reply, 'a', "(sttdb)");
            for (std::size_t i = 0; i < n->links.size(); ++i) {
                if (r < 0) return r;
                const LinkStatus& link = n->links[i];
                std::string name = s.channel_name(i);
                r = sd_bus_message_append(reply, "(sttdb)", name.c_str(), link.received, link.lost,
                                          link.recent_loss_ratio().value_or(0.0), static_cast<int>(link.lossy));
            }
            return r < 0 ? r : sd_bus_message_close_container(reply);
        }
        return -ENOENT;
    });
}

int ManagerObject::find_node(sd_bus*, const char* path, const char*, void* userdata, void** found,
                             sd_bus_error* error) {
    return answering(error, [&]() -> int {
        auto* self = static_cast<ManagerObject*>(userdata);
        if (node_of_path(*self->status_, path) == nullptr) return 0;
        *found = self;
        return 1;
    });
}

int ManagerObject::enumerate_nodes(sd_bus*, const char*, void* userdata, char*** nodes, sd_bus_error* error) {
    return answering(error, [&]() -> int {
        return object_paths(static_cast<ManagerObject*>(userdata)->status_->nodes, node_object_path, nodes);
    });
}

int ManagerObject::get_group_property(sd_bus*, const char* path, const char*, const char* property,
                                      sd_bus_message* reply, void* userdata, sd_bus_error* error) {
    return answering(error, [&]() -> int {
        const Status& s = *static_cast<ManagerObject*>(userdata)->status_;
        const GroupStatus* g = group_of_path(s, path);
        if (g == nullptr) return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_OBJECT, "no group at %s", path);
        std::string_view p = property;
        if (p == "Name") return sd_bus_message_append(reply, "s", g->name.c_str());
        if (p == "State") return sd_bus_message_append(reply, "s", std::string(to_string(g->state)).c_str());
        if (p == "Phase") return sd_bus_message_append(reply, "s", g->phase.c_str());
        if (p == "ActiveNode") return sd_bus_message_append(reply, "s", g->active_node.c_str());
        if (p == "Term") return sd_bus_message_append(reply, "t", g->term);
        if (p == "LeaseRemainingUSec")
            return sd_bus_message_append(reply, "t", g->lease_remaining.value_or(Usec{0}).count());
        if (p == "Errored") return sd_bus_message_append(reply, "b", static_cast<int>(g->errored));
        if (p == "LastError") return sd_bus_message_append(reply, "s", g->last_error.c_str());
        if (p == "HandoverTo") return sd_bus_message_append(reply, "s", g->handover_to.c_str());
        if (p == "Unavailable") return sd_bus_message_append(reply, "s", g->unavailable.c_str());
        if (p == "Placement")
            return sd_bus_message_append(reply, "s", std::string(kPlacementPolicyNames(g->placement)).c_str());
        if (p == "Nodes") {
            int r = sd_bus_message_open_container(reply, 'a', "(sstb)");
            for (const auto& n : g->nodes) {
                if (r < 0) return r;
                r = sd_bus_message_append(reply, "(sstb)", n.name.c_str(), std::string(to_string(n.state)).c_str(),
                                          n.term, static_cast<int>(n.errored));
            }
            return r < 0 ? r : sd_bus_message_close_container(reply);
        }
        return -ENOENT;
    });
}

int ManagerObject::find_group(sd_bus*, const char* path, const char*, void* userdata, void** found,
                              sd_bus_error* error) {
    return answering(error, [&]() -> int {
        auto* self = static_cast<ManagerObject*>(userdata);
        if (group_of_path(*self->status_, path) == nullptr) return 0;
        *found = self;
        return 1;
    });
}

int ManagerObject::enumerate_groups(sd_bus*, const char*, void* userdata, char*** groups, sd_bus_error* error) {
    return answering(error, [&]() -> int {
        return object_paths(static_cast<ManagerObject*>(userdata)->status_->groups, group_object_path, groups);
    });
}

struct ManagerObject::PendingRequest {
    ManagerObject* self;
    BusMessagePtr call;  // answered once the caller is known
    BusSlotPtr lookup;
};

ManagerObject::~ManagerObject() = default;

// Asks the bus who the caller is, and answers the call when it says.
int ManagerObject::method_request(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    return answering(error, [&]() -> int {
        auto* self = static_cast<ManagerObject*>(userdata);
        const char* sender = sd_bus_message_get_sender(m);
        if (sender == nullptr)
            return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, "cannot determine the caller's user");
        auto pending =
            std::make_unique<PendingRequest>(PendingRequest{self, BusMessagePtr(sd_bus_message_ref(m)), nullptr});
        sd_bus_message* lookup = nullptr;
        int r = sd_bus_message_new_method_call(self->bus_, &lookup, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                               "org.freedesktop.DBus", "GetConnectionUnixUser");
        BusMessagePtr owned(lookup);
        if (r >= 0) r = sd_bus_message_append(lookup, "s", sender);
        sd_bus_slot* slot = nullptr;
        if (r >= 0)
            r = sd_bus_call_async(self->bus_, &slot, lookup, on_caller_uid, pending.get(), kCallerLookupTimeoutUsec);
        if (r < 0) return sd_bus_error_set(error, SD_BUS_ERROR_ACCESS_DENIED, "cannot determine the caller's user");
        pending->lookup.reset(slot);
        self->pending_.push_back(std::move(pending));
        return 1;  // answered later
    });
}

int ManagerObject::on_caller_uid(sd_bus_message* reply, void* userdata, sd_bus_error*) {
    auto* pending = static_cast<PendingRequest*>(userdata);
    ManagerObject* self = pending->self;
    BusMessagePtr call = std::move(pending->call);
    // sd-bus keeps the slot alive for the duration of this callback.
    self->pending_.remove_if([pending](const auto& p) { return p.get() == pending; });
    std::uint32_t uid = 0;
    if (sd_bus_message_is_method_error(reply, nullptr) || sd_bus_message_read(reply, "u", &uid) < 0) {
        reply_error(call.get(), SD_BUS_ERROR_ACCESS_DENIED, "cannot determine the caller's user");
        return 0;
    }
    sd_bus_error error = SD_BUS_ERROR_NULL;
    int r = answering(&error, [&] {
        self->carry_out(call.get(), static_cast<uid_t>(uid));
        return 0;
    });
    if (r < 0) sd_bus_reply_method_error(call.get(), &error);
    sd_bus_error_free(&error);
    return 0;
}

void ManagerObject::carry_out(sd_bus_message* m, uid_t caller) {
    if (!privileged(caller)) {
        reply_error(m, SD_BUS_ERROR_ACCESS_DENIED,
                    std::string(sd_bus_message_get_member(m)) + " changes the cluster and requires root");
        return;
    }
    std::string_view member = sd_bus_message_get_member(m);
    BusRequest request{BusRequest::Kind::Stop, false, false, "", ""};
    if (const char* interface = sd_bus_message_get_interface(m);
        interface != nullptr && std::string_view(interface) == kGroupInterface) {
        char* raw = nullptr;
        if (sd_bus_path_decode(sd_bus_message_get_path(m), kGroupPathPrefix, &raw) <= 0) {
            reply_error(m, SD_BUS_ERROR_UNKNOWN_OBJECT, "no group at this path");
            return;
        }
        request.group = raw;
        std::free(raw);
    }
    int r = 0;
    if (member == "Stop") {
        request.kind = BusRequest::Kind::Stop;
    } else if (member == "ForceStart") {
        request.kind = BusRequest::Kind::ForceStart;
    } else if (member == "ClearError") {
        request.kind = BusRequest::Kind::ClearError;
    } else if (member == "ReloadConfig") {
        request.kind = BusRequest::Kind::ReloadConfig;
    } else if (member == "SetStandby") {
        int standby = 0;
        r = sd_bus_message_read(m, "b", &standby);
        request.kind = BusRequest::Kind::SetStandby;
        request.standby = standby != 0;
    } else if (member == "Switchover") {
        const char* node = nullptr;
        r = sd_bus_message_read(m, "s", &node);
        request.kind = BusRequest::Kind::Switchover;
        request.node = node != nullptr ? node : "";
    } else if (member == "SetMaintenance") {
        int on = 0;
        r = sd_bus_message_read(m, "b", &on);
        request.kind = BusRequest::Kind::SetMaintenance;
        request.maintenance = on != 0;
    }
    if (r < 0) {
        reply_error(m, SD_BUS_ERROR_INVALID_ARGS, std::string(member) + ": malformed arguments");
        return;
    }
    // Answered from the reply, which may outlive this object (the bus went away meanwhile).
    std::shared_ptr<sd_bus_message> call(sd_bus_message_ref(m), sd_bus_message_unref);
    handler_(request, [call](const std::optional<std::string>& refused) {
        if (refused)
            reply_error(call.get(), kErrorFailed, *refused);
        else
            sd_bus_reply_method_return(call.get(), nullptr);
    });
}

int ManagerObject::method_list_nodes(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    return answering(error, [&]() -> int {
        const Status& s = *static_cast<ManagerObject*>(userdata)->status_;
        sd_bus_message* raw = nullptr;
        int r = sd_bus_message_new_method_return(m, &raw);
        if (r < 0) return r;
        BusMessagePtr reply(raw);
        r = sd_bus_message_open_container(raw, 'a', "(sssbt)");
        for (const auto& n : s.nodes) {
            if (r < 0) return r;
            r = sd_bus_message_append(raw, "(sssbt)", n.name.c_str(), std::string(to_string(n.state)).c_str(),
                                      std::string(to_string(n.role)).c_str(), static_cast<int>(n.reachable),
                                      n.last_heard_usec_ago.count());
        }
        if (r >= 0) r = sd_bus_message_close_container(raw);
        if (r < 0) return r;
        return sd_bus_send(nullptr, raw, nullptr);
    });
}

int ManagerObject::method_get_status(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    return answering(error, [&]() -> int {
        std::string document = to_json(*static_cast<ManagerObject*>(userdata)->status_).dump();
        return sd_bus_reply_method_return(m, "s", document.c_str());
    });
}

namespace {

constexpr auto kEmits = SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE;
constexpr auto kConst = SD_BUS_VTABLE_PROPERTY_CONST;
// The daemon checks the caller itself (require_privileged_caller) so that
// the refusal names the method; sd-bus's own check would be equivalent.
constexpr auto kMutating = SD_BUS_VTABLE_UNPRIVILEGED;

}  // namespace

int ManagerObject::publish(sd_bus* bus, std::string* error) {
    static const sd_bus_vtable kManagerVtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("NodeName", "s", get_manager_property, 0, kConst),
        SD_BUS_PROPERTY("ClusterName", "s", get_manager_property, 0, kConst),
        SD_BUS_PROPERTY("State", "s", get_manager_property, 0, kEmits),
        SD_BUS_PROPERTY("Role", "s", get_manager_property, 0, kConst),
        SD_BUS_PROPERTY("Term", "t", get_manager_property, 0, kEmits),
        SD_BUS_PROPERTY("Quorate", "b", get_manager_property, 0, kEmits),
        SD_BUS_PROPERTY("ActiveNode", "s", get_manager_property, 0, kEmits),
        SD_BUS_PROPERTY("ExpectedNodes", "u", get_manager_property, 0, kEmits),
        SD_BUS_PROPERTY("Standby", "b", get_manager_property, 0, kEmits),
        SD_BUS_PROPERTY("Errored", "b", get_manager_property, 0, kEmits),
        SD_BUS_PROPERTY("LastError", "s", get_manager_property, 0, kEmits),
        SD_BUS_PROPERTY("Mode", "s", get_manager_property, 0, kConst),
        SD_BUS_PROPERTY("ServicesTarget", "s", get_manager_property, 0, kConst),
        // Maintenance mode, cluster-wide (SetMaintenance), and when it was last turned on or off
        // (wall clock of the deciding node, usec since the epoch; 0: never).
        SD_BUS_PROPERTY("Maintenance", "b", get_manager_property, 0, kEmits),
        SD_BUS_PROPERTY("MaintenanceSinceUSec", "t", get_manager_property, 0, kEmits),
        // This build's release, and the heartbeat wire version it speaks now (the previous one
        // while a node of an earlier release is heard).
        SD_BUS_PROPERTY("Version", "s", get_manager_property, 0, kConst),
        SD_BUS_PROPERTY("WireVersion", "y", get_manager_property, 0, kEmits),
        SD_BUS_PROPERTY("Nodes", "a(sssb)", get_manager_property, 0, kEmits),
        // Address=: (address/prefix, device, up here, the MAC of another host seen answering for it or "", times seen).
        SD_BUS_PROPERTY("Addresses", "a(ssbst)", get_manager_property, 0, kEmits),
        // Received datagrams by fate; changes with every packet, so read it rather than wait for signals.
        SD_BUS_PROPERTY("Packets", "a{st}", get_manager_property, 0, 0),
        // Backend=etcd: the endpoint in use, the newest failed call's line, how long the etcd lease
        // still runs (0: none), the link's counters ("", "", 0, empty with the heartbeats).
        SD_BUS_PROPERTY("EtcdEndpoint", "s", get_manager_property, 0, kEmits),
        SD_BUS_PROPERTY("EtcdLastFailure", "s", get_manager_property, 0, kEmits),
        SD_BUS_PROPERTY("EtcdLeaseRemainingUSec", "t", get_manager_property, 0, 0),
        SD_BUS_PROPERTY("EtcdCounters", "a{st}", get_manager_property, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("Stop", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_request, kMutating),
        SD_BUS_METHOD_WITH_ARGS("ForceStart", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_request, kMutating),
        SD_BUS_METHOD_WITH_ARGS("ClearError", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_request, kMutating),
        SD_BUS_METHOD_WITH_ARGS("SetStandby", SD_BUS_ARGS("b", standby), SD_BUS_NO_RESULT, method_request, kMutating),
        SD_BUS_METHOD_WITH_ARGS("Switchover", SD_BUS_ARGS("s", node), SD_BUS_NO_RESULT, method_request, kMutating),
        SD_BUS_METHOD_WITH_ARGS("ReloadConfig", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_request, kMutating),
        // Cluster-wide; answered once this node has applied it (peers learn of it from its next heartbeat).
        SD_BUS_METHOD_WITH_ARGS("SetMaintenance", SD_BUS_ARGS("b", on), SD_BUS_NO_RESULT, method_request, kMutating),
        SD_BUS_METHOD_WITH_ARGS("ListNodes", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sssbt)", nodes), method_list_nodes,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        // The whole status as the status file has it (JSON, schema_version 1): one document, one builder.
        SD_BUS_METHOD_WITH_ARGS("GetStatus", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", json), method_get_status,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
    };
    static const sd_bus_vtable kGroupVtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", get_group_property, 0, kConst),
        SD_BUS_PROPERTY("State", "s", get_group_property, 0, kEmits),
        SD_BUS_PROPERTY("Phase", "s", get_group_property, 0, kEmits),
        SD_BUS_PROPERTY("ActiveNode", "s", get_group_property, 0, kEmits),
        SD_BUS_PROPERTY("Term", "t", get_group_property, 0, kEmits),
        SD_BUS_PROPERTY("Errored", "b", get_group_property, 0, kEmits),
        SD_BUS_PROPERTY("LastError", "s", get_group_property, 0, kEmits),
        SD_BUS_PROPERTY("HandoverTo", "s", get_group_property, 0, kEmits),
        // Why the group cannot run on this node now ("" when it can).
        SD_BUS_PROPERTY("Unavailable", "s", get_group_property, 0, kEmits),
        SD_BUS_PROPERTY("Placement", "s", get_group_property, 0, kConst),
        // What each node announces of the group: (name, state, term, errored).
        SD_BUS_PROPERTY("Nodes", "a(sstb)", get_group_property, 0, kEmits),
        // This node's lease on the group (0 without a claim); it runs down continuously: read it, no signal.
        SD_BUS_PROPERTY("LeaseRemainingUSec", "t", get_group_property, 0, 0),
        SD_BUS_METHOD_WITH_ARGS("Switchover", SD_BUS_ARGS("s", node), SD_BUS_NO_RESULT, method_request, kMutating),
        SD_BUS_METHOD_WITH_ARGS("ClearError", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_request, kMutating),
        SD_BUS_VTABLE_END,
    };
    static const sd_bus_vtable kNodeVtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Name", "s", get_node_property, 0, kConst),
        SD_BUS_PROPERTY("State", "s", get_node_property, 0, kEmits),
        SD_BUS_PROPERTY("Role", "s", get_node_property, 0, kEmits),
        SD_BUS_PROPERTY("Reachable", "b", get_node_property, 0, kEmits),
        SD_BUS_PROPERTY("Term", "t", get_node_property, 0, kEmits),
        SD_BUS_PROPERTY("Standby", "b", get_node_property, 0, kEmits),
        SD_BUS_PROPERTY("Errored", "b", get_node_property, 0, kEmits),
        // Its release ("" for a node of a release before 0.2, whose wire version 2 carries none),
        // the wire version of its last heartbeat (0: never heard), its maintenance flag, and
        // whether it said it leaves (its machine shuts down).
        SD_BUS_PROPERTY("Version", "s", get_node_property, 0, kEmits),
        SD_BUS_PROPERTY("WireVersion", "y", get_node_property, 0, kEmits),
        SD_BUS_PROPERTY("Maintenance", "b", get_node_property, 0, kEmits),
        SD_BUS_PROPERTY("Left", "b", get_node_property, 0, kEmits),
        // Ages change continuously: read them, no signal.
        SD_BUS_PROPERTY("LastHeardUSec", "t", get_node_property, 0, 0),
        SD_BUS_PROPERTY("Channels", "a(sbt)", get_node_property, 0, 0),
        // Per channel: (name, heartbeats received, lost, lost of the recent ones (0..1; 0 while none
        // was judged), warned as lossy): the status document's nodes[].channels[] counts.
        SD_BUS_PROPERTY("Links", "a(sttdb)", get_node_property, 0, 0),
        SD_BUS_VTABLE_END,
    };
    bus_ = bus;
    sd_bus_slot* slot = nullptr;
    int r = sd_bus_add_object_vtable(bus, &slot, kManagerPath, kManagerInterface, kManagerVtable, this);
    if (r >= 0) {
        manager_slot_.reset(slot);
        r = sd_bus_add_fallback_vtable(bus, &slot, kNodePathPrefix, kNodeInterface, kNodeVtable, find_node, this);
    }
    if (r >= 0) {
        node_slot_.reset(slot);
        r = sd_bus_add_node_enumerator(bus, &slot, kNodePathPrefix, enumerate_nodes, this);
    }
    if (r >= 0) {
        enumerator_slot_.reset(slot);
        r = sd_bus_add_fallback_vtable(bus, &slot, kGroupPathPrefix, kGroupInterface, kGroupVtable, find_group, this);
    }
    if (r >= 0) {
        group_slot_.reset(slot);
        r = sd_bus_add_node_enumerator(bus, &slot, kGroupPathPrefix, enumerate_groups, this);
    }
    if (r >= 0) {
        group_enumerator_slot_.reset(slot);
        r = sd_bus_add_object_manager(bus, &slot, kManagerPath);
    }
    if (r < 0) {
        *error = std::string("cannot register the D-Bus objects: ") + std::strerror(-r);
        return r;
    }
    object_manager_slot_.reset(slot);
    return 0;
}

void ManagerObject::flush(std::shared_ptr<const Status> now) {
    // A group removed by a reload: announced while the object still shows it.
    if (bus_ != nullptr)
        for (const auto& g : status_->groups)
            if (group_named(*now, g.name) == nullptr) sd_bus_emit_object_removed(bus_, group_object_path(g.name).c_str());
    std::shared_ptr<const Status> told = std::exchange(status_, std::move(now));
    if (bus_ == nullptr) return;
    for (const auto& g : status_->groups) {
        std::string path = group_object_path(g.name);
        if (const GroupStatus* before = group_named(*told, g.name))
            emit_changed(bus_, path, kGroupInterface, changed_group_properties(*before, g));
        else
            sd_bus_emit_object_added(bus_, path.c_str());
    }
    emit_changed(bus_, kManagerPath, kManagerInterface, changed_manager_properties(*told, *status_));
    for (const auto& n : status_->nodes) {
        const NodeStatus* before = nullptr;
        for (const auto& b : told->nodes)
            if (b.name == n.name) before = &b;
        std::string path = node_object_path(n.name);
        if (before == nullptr)
            sd_bus_emit_object_added(bus_, path.c_str());
        else
            emit_changed(bus_, path, kNodeInterface, changed_node_properties(*before, n));
    }
}

}  // namespace freeha
