#include "ctl/links.h"

#include <algorithm>
#include <cmath>

#include "core/timespan.h"

namespace freeha::ctl {
namespace {

std::string percent(double ratio) { return std::to_string(std::lround(ratio * 100)) + "%"; }

}  // namespace

std::string loss_text(const ClusterView::Node& n) {
    std::optional<double> worst;
    for (const auto& link : n.links)
        if (link.recent_loss_ratio) worst = std::max(worst.value_or(0.0), *link.recent_loss_ratio);
    return worst ? percent(*worst) : "-";
}

std::vector<std::string> lossy_lines(const ClusterView& v) {
    std::vector<std::string> out;
    for (const auto& n : v.nodes)
        for (const auto& link : n.links)
            if (link.lossy)
                out.push_back(n.name + ": heartbeats lost on channel '" + link.channel + "': " +
                              std::to_string(link.recent_lost) + " of the last " +
                              std::to_string(link.recent_expected) + " (" +
                              percent(link.recent_loss_ratio.value_or(0.0)) + ")");
    return out;
}

std::vector<std::string> etcd_lines(const ClusterView::Etcd& e) {
    std::vector<std::string> out;
    std::string lease = e.lease_id.empty() ? "no lease" : "lease " + e.lease_id;
    if (e.lease_remaining) lease += ", " + format_timespan(*e.lease_remaining / kUsecPerMsec * kUsecPerMsec) + " left";
    out.push_back("etcd: " + e.endpoint + " (endpoint " + std::to_string(e.endpoint_index + 1) + " of " +
                  std::to_string(e.endpoint_count) + "); " + lease + "; " +
                  (e.synced ? "view current" : "view NOT current"));
    std::string calls = "0", troubles;
    for (const auto& [name, value] : e.counters) {
        if (name == "calls") calls = std::to_string(value);
        if (name == "calls" || value == 0) continue;
        troubles += (troubles.empty() ? "" : ", ") + std::to_string(value) + " " + name;
    }
    out.push_back("etcd calls: " + calls + "; " + (troubles.empty() ? "no failure" : troubles));
    if (!e.last_failure.empty()) out.push_back("etcd's last failure: " + e.last_failure);
    return out;
}

}  // namespace freeha::ctl
