// What etcd holds under the cluster's prefix, kept current by a watch: a pure step machine, calls out, answers in.
//
// It reads the prefix once (a range: the keys and the store's revision),
// then watches it from the next revision, so that no change falls between
// the two. A watch that ends or fails is made again from the revision after
// the last one seen, on the next endpoint (backing off after a round, as the
// session does); one whose start revision etcd compacted away starts over
// with a range. A line that cannot be decoded ends the watch the same way, as
// does a range not answered, or a watch not created, within the call timeout.
// How far the watch got is taken from its events' revisions (and from
// progress notices), never from the header of its first message: that names
// the store's revision, and a watch that broke before its catch-up events
// came must be made again from before them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/etcd_gateway.h"
#include "core/etcd_session.h"
#include "core/timespan.h"

namespace freeha::etcd {

struct WatchStep {
    std::vector<Request> requests;
    std::vector<std::uint64_t> cancel;  // calls to end (a watch replaced)
    // Keys that changed (their new values are in view(); absent: deleted), in order.
    std::vector<std::string> changed;
    std::vector<std::string> failures;  // one line each: which call, which endpoint, why
};

class Watch {
public:
    // endpoints: the etcd members' client URLs, as the session has them (at least one).
    Watch(std::string prefix, std::vector<std::string> endpoints, Usec call_timeout, Usec backoff_base);

    WatchStep start(Usec now);
    WatchStep on_reply(std::uint64_t request, std::string_view body, Usec now);
    WatchStep on_line(std::uint64_t request, std::string_view line, Usec now);
    // A call failed, or the watch's stream ended.
    WatchStep on_failure(std::uint64_t request, const std::string& why, Usec now);
    WatchStep on_timer(Usec now);
    std::optional<Usec> next_wakeup() const;
    // Moves to `endpoint` (the session found the current one failing): the watch is made again there.
    WatchStep follow(std::size_t endpoint, Usec now);

    const std::map<std::string, KeyValue>& view() const { return view_; }
    // Whether the view is current: read, and watched since.
    bool synced() const { return watch_live_; }
    std::int64_t revision() const { return revision_; }
    std::uint64_t failures() const { return failures_; }

private:
    void send(Call call, Usec now, WatchStep& out);
    void failed(const std::string& why, Usec now, WatchStep& out);
    void act(Usec now, WatchStep& out);

    std::string prefix_;
    std::vector<std::string> endpoints_;
    Usec call_timeout_;
    Usec backoff_base_;
    bool started_ = false;
    std::map<std::string, KeyValue> view_;
    std::int64_t revision_ = 0;  // 0: not read yet (or compacted: read again)
    std::optional<std::uint64_t> call_;  // the range or watch in flight
    std::optional<Call> call_kind_;
    std::optional<Usec> deadline_;  // the range's answer, or the watch's "created", is due by then
    bool watch_live_ = false;  // the watch said it was created
    std::uint64_t next_request_ = 1;
    std::size_t endpoint_ = 0;
    std::size_t failures_in_row_ = 0;
    std::uint64_t failures_ = 0;
    Usec retry_at_;
};

}  // namespace freeha::etcd
