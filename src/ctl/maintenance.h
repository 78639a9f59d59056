// freehactl's view of maintenance mode and releases: when `freehactl maintenance` is done, and the status lines that show them.
#pragma once

#include <string>

#include "ctl/client.h"

namespace freeha::ctl {

// How far `freehactl maintenance on|off` has got, from one status view.
struct MaintenanceProgress {
    enum Kind { Wait, Done, Failed } kind = Wait;
    std::string message;
};
// Done once a quorum of the nodes (ExpectedNodes/2+1 with more than 2, else
// one) and every reachable node that knows the mode (wire version 3)
// announce `on`; failed when this node's own mode is no longer `on` (a newer
// decision, made on another node, won). Only reachable nodes count, this one
// included: with Backend=etcd, a node without its etcd lease counts none.
MaintenanceProgress maintenance_progress(const ClusterView& v, bool on);

// "MAINTENANCE MODE: on since 2026-12-02 21:05:00 UTC — freehad starts, stops
// and monitors nothing" (local time); "" when the mode is off.
std::string maintenance_line(const ClusterView& v);

// A node's release for the VERSION column: "0.2.0"; "<0.2 (wire 2)" for a
// node of an earlier release (which announces none); "-" for one never heard.
std::string version_text(const ClusterView::Node& n);

}  // namespace freeha::ctl
