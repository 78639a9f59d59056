#include "core/status.h"

#include <cstdio>
#include <ctime>
#include <numeric>

namespace freeha {

std::uint64_t ReceiveCounters::malformed_total() const {
    return std::accumulate(malformed.begin(), malformed.end(), std::uint64_t{0});
}

std::vector<std::pair<std::string, std::uint64_t>> ReceiveCounters::by_name() const {
    std::vector<std::pair<std::string, std::uint64_t>> out{
        {"accepted", accepted},         {"own", own},
        {"foreign_cluster", foreign_cluster}, {"stale_incarnation", stale_incarnation},
        {"replayed", replayed},         {"unauthenticated", unauthenticated},
        {"bad_signature", bad_signature}, {"duplicate_name", duplicate_name},
        {"implausible", implausible},   {"peer_table_full", peer_table_full},
    };
    for (int i = 0; i < wire::kRejectCount; ++i)
        out.emplace_back("malformed_" + std::string(wire::to_string(static_cast<wire::Reject>(i))), malformed[i]);
    return out;
}

std::vector<std::pair<std::string, std::uint64_t>> EtcdLinkStatus::counters_by_name() const {
    return {{"calls", calls},
            {"call_failures", call_failures},
            {"watch_failures", watch_failures},
            {"endpoint_switches", endpoint_switches},
            {"leases_lost", leases_lost}};
}

std::string EtcdLinkStatus::lease_hex() const {
    if (lease_id == 0) return "";
    char buf[24];
    std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(lease_id));
    return buf;
}

std::optional<double> LinkStatus::recent_loss_ratio() const {
    if (recent_expected == 0) return std::nullopt;
    return static_cast<double>(recent_lost) / recent_expected;
}

nlohmann::json to_json(const Status& s) {
    using nlohmann::json;
    json nodes = json::array();
    for (const auto& n : s.nodes) {
        json channels = json::array();
        for (std::size_t i = 0; i < n.channel_heard_usec_ago.size(); ++i) {
            const auto& age = n.channel_heard_usec_ago[i];
            LinkStatus link = i < n.links.size() ? n.links[i] : LinkStatus{};
            auto ratio = link.recent_loss_ratio();
            channels.push_back({{"name", s.channel_name(i)},
                                {"last_heard_usec_ago", age ? json(age->count()) : json(nullptr)},
                                {"received", link.received},
                                {"lost", link.lost},
                                {"expected", link.expected()},
                                {"recent_expected", link.recent_expected},
                                {"recent_lost", link.recent_lost},
                                {"recent_loss_ratio", ratio ? json(*ratio) : json(nullptr)},
                                {"lossy", link.lossy}});
        }
        nodes.push_back({{"name", n.name},
                         {"state", to_string(n.state)},
                         {"role", to_string(n.role)},
                         {"reachable", n.reachable},
                         {"last_heard_usec_ago", n.last_heard_usec_ago.count()},
                         {"term", n.term},
                         {"standby", n.standby},
                         {"errored", n.errored},
                         {"self", n.self},
                         {"channels", std::move(channels)},
                         {"not_counted", n.not_counted.empty() ? json(nullptr) : json(n.not_counted)},
                         {"version", n.version.empty() ? json(nullptr) : json(n.version)},
                         {"wire_version", n.wire_version},
                         {"maintenance", n.maintenance},
                         {"left", n.left}});
    }
    // One list of counter names (by_name) for JSON and D-Bus; JSON nests the malformed ones.
    constexpr std::string_view kMalformed = "malformed_";
    json packets = json::object();
    json malformed = json::object();
    for (const auto& [name, value] : s.counters.by_name()) {
        if (name.starts_with(kMalformed))
            malformed[name.substr(kMalformed.size())] = value;
        else
            packets[name] = value;
    }
    packets["malformed"] = std::move(malformed);
    json addresses = json::array();
    for (const auto& a : s.addresses)
        addresses.push_back({{"address", a.address},
                             {"device", a.device},
                             {"up", a.up},
                             {"foreign_mac", a.foreign_mac.empty() ? json(nullptr) : json(a.foreign_mac)},
                             {"conflicts", a.conflicts}});
    auto text_or_null = [](const std::string& t) { return t.empty() ? json(nullptr) : json(t); };
    json groups = json::array();
    for (const auto& g : s.groups) {
        json rows = json::array();
        for (const auto& n : g.nodes)
            rows.push_back({{"name", n.name},
                            {"state", to_string(n.state)},
                            {"term", n.term},
                            {"errored", n.errored},
                            {"handover_to", text_or_null(n.handover_to)},
                            {"self", n.self},
                            {"aside", n.aside}});
        groups.push_back({{"name", g.name},
                          {"state", to_string(g.state)},
                          {"phase", g.phase},
                          {"active_node", g.active_node},
                          {"term", g.term},
                          {"lease_remaining_usec", g.lease_remaining ? json(g.lease_remaining->count()) : json(nullptr)},
                          {"errored", g.errored},
                          {"last_error", text_or_null(g.last_error)},
                          {"handover_to", text_or_null(g.handover_to)},
                          {"unavailable", text_or_null(g.unavailable)},
                          {"placement", kPlacementPolicyNames(g.placement)},
                          {"nodes", std::move(rows)}});
    }
    json etcd = nullptr;
    if (s.etcd) {
        const EtcdLinkStatus& e = *s.etcd;
        json counters = json::object();
        for (const auto& [name, value] : e.counters_by_name()) counters[name] = value;
        etcd = {{"endpoint", e.endpoint},
                {"endpoint_index", e.endpoint_index},
                {"endpoint_count", e.endpoint_count},
                {"lease_id", text_or_null(e.lease_hex())},
                {"lease_remaining_usec", e.lease_remaining ? json(e.lease_remaining->count()) : json(nullptr)},
                {"synced", e.synced},
                {"counters", std::move(counters)},
                {"last_failure", text_or_null(e.last_failure)}};
    }
    json rebalance = json::array();
    for (const auto& m : s.rebalance) rebalance.push_back({{"group", m.group}, {"from", m.from}, {"to", m.to}});
    return json{
        {"schema_version", 1},
        {"cluster", s.cluster},
        {"node", s.node},
        {"state", to_string(s.state)},
        {"phase", s.phase},
        {"role", to_string(s.role)},
        {"term", s.term},
        {"quorate", s.quorate},
        {"expected_nodes", s.expected_nodes},
        {"active_node", s.active_node},
        {"standby", s.standby},
        {"errored", s.errored},
        {"last_error", s.last_error.empty() ? json(nullptr) : json(s.last_error)},
        {"unavailable", s.unavailable.empty() ? json(nullptr) : json(s.unavailable)},
        {"mode", s.mode},
        {"services_target", s.services_target.empty() ? json(nullptr) : json(s.services_target)},
        {"updated_realtime_usec", s.updated_realtime_usec},
        {"nodes", std::move(nodes)},
        {"packets", std::move(packets)},
        {"unexpected_services", s.unexpected_services},
        {"lease_remaining_usec", s.lease_remaining ? json(s.lease_remaining->count()) : json(nullptr)},
        {"addresses", std::move(addresses)},
        {"log_lines_dropped", s.log_lines_dropped},
        {"maintenance",
         {{"on", s.maintenance},
          {"since_realtime_usec", s.maintenance_since_realtime_usec != 0 ? json(s.maintenance_since_realtime_usec)
                                                                         : json(nullptr)}}},
        {"version", s.version},
        {"wire_version", s.wire_version},
        {"leaving", s.leaving},
        {"history", to_json(s.history)},
        {"groups", std::move(groups)},
        {"rebalance", std::move(rebalance)},
        {"etcd", std::move(etcd)},
    };
}

namespace {

// `s` without what same_facts() leaves out.
Status facts_of(Status s) {
    s.updated_realtime_usec = 0;
    s.counters.accepted = 0;
    s.counters.own = 0;
    if (s.lease_remaining) s.lease_remaining = Usec{0};
    for (auto& g : s.groups)
        if (g.lease_remaining) g.lease_remaining = Usec{0};
    if (s.etcd) {
        // Renewals move these on their own; failures, switches and lost leases are news.
        s.etcd->calls = 0;
        if (s.etcd->lease_remaining) s.etcd->lease_remaining = Usec{0};
    }
    for (auto& n : s.nodes) {
        n.last_heard_usec_ago = Usec{0};  // reachable, and the channels below, say what it means
        for (auto& age : n.channel_heard_usec_ago)
            if (age) age = *age <= s.dead_time ? Usec{0} : s.dead_time + Usec{1};
        // A link's counts move with every heartbeat; its verdict is the fact.
        for (auto& link : n.links) link = LinkStatus{.lossy = link.lossy};
    }
    // A monitor run every MonitorInterval= is no news; claims and stops are.
    s.history.hooks = {};
    return s;
}

}  // namespace

bool same_facts(const Status& a, const Status& b) { return facts_of(a) == facts_of(b); }

std::string to_freeha_text(const Status& s) {
    std::string out;
    for (const auto& n : s.nodes) {
        std::time_t when = static_cast<std::time_t>((Usec(s.updated_realtime_usec) - n.last_heard_usec_ago) / kUsecPerSec);
        std::tm tm{};
        char buf[64] = "";
        if (localtime_r(&when, &tm) != nullptr) std::strftime(buf, sizeof buf, "%a %b %e %H:%M:%S %Y", &tm);
        out += n.name + " [" + std::string(to_string(n.state)) + "] " + buf + "\n";
    }
    return out;
}

}  // namespace freeha
