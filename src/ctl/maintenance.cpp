#include "ctl/maintenance.h"

#include <ctime>

#include "core/election.h"

namespace freeha::ctl {

MaintenanceProgress maintenance_progress(const ClusterView& v, bool on) {
    const char* mode = on ? "on" : "off";
    if (v.maintenance != on)
        return {MaintenanceProgress::Failed, std::string("maintenance mode was turned ") + (on ? "off" : "on") +
                                                 " again by a newer decision (on another node)"};
    unsigned announcing = 0, reachable = 0;
    std::string lagging;
    for (const auto& n : v.nodes) {
        if (!n.reachable || n.left) continue;
        ++reachable;
        if (n.maintenance == on)
            ++announcing;
        else if (n.wire_version >= 3 && lagging.empty())
            lagging = n.name;
    }
    unsigned needed = quorum_votes_needed(v.expected_nodes);
    std::string count = std::to_string(announcing) + " of " + std::to_string(v.expected_nodes) + " nodes";
    if (announcing < needed)
        return {MaintenanceProgress::Wait, count + " announce it, " + std::to_string(needed) + " needed"};
    if (!lagging.empty()) return {MaintenanceProgress::Wait, lagging + " does not announce it yet"};
    std::string then = on ? "freehad starts, stops, monitors and fails over nothing until freehactl maintenance off"
                          : "each node probes for the services and carries on from what it finds";
    return {MaintenanceProgress::Done, std::string("maintenance mode ") + mode + " (" + count + " announce it): " + then};
}

std::string maintenance_line(const ClusterView& v) {
    if (!v.maintenance) return {};
    std::string since;
    if (v.maintenance_since_realtime_usec != 0) {
        std::time_t when = static_cast<std::time_t>(v.maintenance_since_realtime_usec / 1000000);
        std::tm tm{};
        char buf[64] = "";
        if (localtime_r(&when, &tm) != nullptr) std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &tm);
        since = std::string(" since ") + buf;
    }
    return "MAINTENANCE MODE: on" + since + " \u2014 freehad starts, stops and monitors nothing";
}

std::string version_text(const ClusterView::Node& n) {
    if (!n.version.empty()) return n.version;
    if (n.wire_version == 0) return "-";
    return "<0.2 (wire " + std::to_string(n.wire_version) + ")";
}

}  // namespace freeha::ctl
