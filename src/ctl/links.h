// freehactl's view of link health: the LOSS column and the lines that name a lossy channel.
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

}  // namespace freeha::ctl
