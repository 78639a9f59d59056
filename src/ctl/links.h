// freehactl's view of link health: the LOSS column, the lines that name a lossy channel, and etcd's link.
#pragma once

#include <string>
#include <vector>

#include "ctl/client.h"

namespace freeha::ctl {

// The LOSS column: the recent loss ratio of the node's worst channel, in
// whole percent ("0%", "25%"); "-" for this node, a node of a daemon before
// link health, or one of whose heartbeats none was judged yet.
std::string loss_text(const ClusterView::Node& n);

// One line per channel warned as lossy (as the journal's warning was):
// "bravo: heartbeats lost on channel 'broadcast 10.0.0.1': 16 of the last 64 (25%)".
std::vector<std::string> lossy_lines(const ClusterView& v);

// Backend=etcd's link, for freehactl status:
//   etcd: http://192.0.2.1:2379 (endpoint 1 of 3); lease 694d7b0d2c0e4a05, 1s 200ms left; view current
//   etcd calls: 1234; 2 call_failures, 1 endpoint_switches     (the counters that are not 0)
//   etcd's last failure: keepalive on http://192.0.2.1:2379: ...  (once one failed)
std::vector<std::string> etcd_lines(const ClusterView::Etcd& e);

}  // namespace freeha::ctl
