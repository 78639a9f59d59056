#include "core/etcd_watch.h"

#include <algorithm>
#include <cassert>

namespace freeha::etcd {

// The watch's calls share the client with the session's: its ids start far above any the session reaches.
constexpr std::uint64_t kFirstWatchRequest = std::uint64_t{1} << 62;

Watch::Watch(std::string prefix, std::vector<std::string> endpoints, Usec call_timeout, Usec backoff_base)
    : prefix_(std::move(prefix)),
      endpoints_(std::move(endpoints)),
      call_timeout_(call_timeout),
      backoff_base_(backoff_base),
      next_request_(kFirstWatchRequest) {
    assert(!endpoints_.empty());
}

WatchStep Watch::start(Usec now) {
    WatchStep out;
    started_ = true;
    act(now, out);
    return out;
}

void Watch::send(Call call, Usec now, WatchStep& out) {
    const std::uint64_t id = next_request_++;
    call_ = id;
    call_kind_ = call;
    watch_live_ = false;
    // A range must answer, and a watch say it was created, within the call timeout.
    deadline_ = now + call_timeout_;
    out.requests.push_back(
        Request{id, call, endpoint_, call == Call::Range ? range_body(prefix_) : watch_body(prefix_, revision_ + 1)});
}

void Watch::act(Usec now, WatchStep& out) {
    if (!started_ || call_ || now < retry_at_) return;
    send(revision_ == 0 ? Call::Range : Call::Watch, now, out);
}

void Watch::failed(const std::string& why, Usec now, WatchStep& out) {
    ++failures_;
    out.failures.push_back(failed_call_line(call_kind_.value_or(Call::Watch), endpoints_.at(endpoint_), why));
    call_.reset();
    call_kind_.reset();
    deadline_.reset();
    watch_live_ = false;
    endpoint_ = (endpoint_ + 1) % endpoints_.size();
    if (++failures_in_row_ >= endpoints_.size())
        retry_at_ = now + backoff(failures_in_row_ / endpoints_.size(), backoff_base_);
}

WatchStep Watch::on_reply(std::uint64_t request, std::string_view body, Usec now) {
    WatchStep out;
    if (!call_ || *call_ != request || call_kind_ != Call::Range) return out;
    auto snapshot = decode_range(body);
    if (!snapshot) {
        failed(snapshot.error, now, out);
        act(now, out);
        return out;
    }
    call_.reset();
    deadline_.reset();
    failures_in_row_ = 0;
    // Every key that differs from the view changed: those gone, and those new or rewritten.
    std::map<std::string, KeyValue> fresh;
    for (auto& kv : snapshot.value->kvs) fresh.emplace(kv.key, std::move(kv));
    for (const auto& [key, kv] : view_)
        if (!fresh.contains(key)) out.changed.push_back(key);
    for (const auto& [key, kv] : fresh) {
        auto old = view_.find(key);
        if (old == view_.end() || old->second.mod_revision != kv.mod_revision) out.changed.push_back(key);
    }
    view_ = std::move(fresh);
    revision_ = snapshot.value->revision;
    act(now, out);
    return out;
}

WatchStep Watch::on_line(std::uint64_t request, std::string_view line, Usec now) {
    WatchStep out;
    if (!call_ || *call_ != request || call_kind_ != Call::Watch) return out;
    auto batch = decode_watch_line(line);
    if (!batch) {
        out.cancel.push_back(request);
        failed(batch.error, now, out);
        act(now, out);
        return out;
    }
    if (batch.value->compact_revision > 0) {
        // Changes after revision_ are gone from etcd's history: read everything again.
        out.cancel.push_back(request);
        call_.reset();
        deadline_.reset();
        watch_live_ = false;
        revision_ = 0;
        act(now, out);
        return out;
    }
    if (batch.value->created) {
        watch_live_ = true;
        failures_in_row_ = 0;
        deadline_.reset();
        return out;  // its header names the store's revision, not what this watch has delivered
    }
    // How far the watch has got: its events' revisions, or a progress
    // notice's header (no events: everything up to it was delivered).
    if (batch.value->events.empty()) revision_ = std::max(revision_, batch.value->revision);
    for (auto& e : batch.value->events) {
        revision_ = std::max(revision_, e.kv.mod_revision);
        out.changed.push_back(e.kv.key);
        if (e.deleted)
            view_.erase(e.kv.key);
        else
            view_[e.kv.key] = std::move(e.kv);
    }
    return out;
}

WatchStep Watch::on_failure(std::uint64_t request, const std::string& why, Usec now) {
    WatchStep out;
    if (!call_ || *call_ != request) return out;
    failed(why, now, out);
    act(now, out);
    return out;
}

WatchStep Watch::on_timer(Usec now) {
    WatchStep out;
    if (call_ && deadline_ && now >= *deadline_) {
        out.cancel.push_back(*call_);
        failed("no answer in " + format_timespan(call_timeout_), now, out);
    }
    act(now, out);
    return out;
}

std::optional<Usec> Watch::next_wakeup() const {
    if (!started_) return std::nullopt;
    if (call_) return deadline_;
    return retry_at_;
}

WatchStep Watch::follow(std::size_t endpoint, Usec now) {
    WatchStep out;
    if (endpoint == endpoint_ || endpoint >= endpoints_.size()) return out;
    endpoint_ = endpoint;
    if (call_) out.cancel.push_back(*call_);
    call_.reset();
    call_kind_.reset();
    deadline_.reset();
    watch_live_ = false;
    retry_at_ = Usec();
    act(now, out);
    return out;
}

}  // namespace freeha::etcd
