#include "ctl/links.h"

#include <algorithm>
#include <cmath>

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

}  // namespace freeha::ctl
