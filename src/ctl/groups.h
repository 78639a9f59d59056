// freehactl's view of service groups: the groups x nodes lines of `status`, and when `switchover GROUP NODE` and `rebalance` are done.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/placement.h"
#include "ctl/client.h"

namespace freeha::ctl {

// The groups x nodes view `freehactl status` shows when there is more than
// one group (nothing for one group: its facts are the node's lines). A header
//   GROUP  ACTIVE  TERM  LEASE  alpha  bravo  ...
// then one row per group, the default one first: the node running it, its
// term, this node's lease on it ("-" without one), and what each node
// announces of it (RUNNING, STANDBY, TIMEDOUT...; ASIDE for a standby where
// the group cannot run now); then a line per group errored here, unable to
// run here or handed over, and one when the spread is uneven.
std::vector<std::string> group_lines(const ClusterView& v);

// Why `group` (and `node`, unless empty) cannot be named in a command, in one
// line: "no group 'x' (groups: default, web)", "no node 'y' in this cluster
// (nodes: alpha, bravo)"; nullopt when both are known.
std::optional<std::string> unknown_group_or_node(const ClusterView& v, const std::string& group,
                                                 const std::string& node);

// How far `freehactl switchover GROUP NODE` (or a move of `rebalance`) has
// got, from one view of this node, the node that ran the group: done once
// another node (`to`, when given) runs it; failed when it came back here (a
// claim newer than `term_before`), or this node's error latch for it is set.
struct GroupProgress {
    enum Kind { Wait, Done, Failed } kind = Wait;
    std::string message;
};
GroupProgress group_switchover_progress(const ClusterView& v, const std::string& group, const std::string& to,
                                        std::uint64_t term_before);

// What `freehactl rebalance` does next on this node: the first planned move
// (the status's "rebalance") of a group this node runs, and the moves that
// other nodes must make (a switchover is made on the node running the group).
struct RebalanceStep {
    std::optional<PlannedMove> here;
    std::vector<PlannedMove> elsewhere;
};
RebalanceStep rebalance_step(const ClusterView& v);

// "group web: bravo -> alpha"
std::string describe(const PlannedMove& m);

}  // namespace freeha::ctl
