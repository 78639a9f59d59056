// The Prometheus text exposition (format 0.0.4) of one node's status document, for `freehactl metrics`.
#pragma once

#include <string>

#include "ctl/client.h"

namespace freeha::ctl {

// Every freeha_* family (freeha-status(5), METRICS), read from the status
// document through ClusterView, the reading `freehactl status` uses: one
// source of facts. `view` is nullptr when freehad did not answer: then only
// freeha_up 0, with `why` as a comment, so that a scrape says so and never
// shows stale values.
std::string metrics_text(const ClusterView* view, const std::string& why = "");

// A label value in the exposition's escaping (backslash, double quote, newline).
std::string escape_label_value(const std::string& value);

}  // namespace freeha::ctl
