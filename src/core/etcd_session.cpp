#include "core/etcd_session.h"

#include <algorithm>
#include <cassert>

#include "core/claims.h"

namespace freeha::etcd {

namespace {
Usec ttl(std::int64_t seconds) { return kUsecPerSec * static_cast<std::uint64_t>(seconds); }
}  // namespace

std::string_view to_string(EventKind k) { return kEventKindNames(k); }

std::string failed_call_line(Call call, const std::string& url, const std::string& why) {
    return std::string(to_string(call)) + " on " + url + ": " + why;
}

Usec backoff(std::size_t rounds, Usec base) {
    assert(rounds >= 1);
    return std::min(base * (std::uint64_t{1} << std::min<std::size_t>(rounds - 1, 10)), Session::kMaxBackoff);
}

std::int64_t ttl_seconds(Usec dead_time) {
    return std::max<std::int64_t>(1, static_cast<std::int64_t>((dead_time + kUsecPerSec - Usec(1)) / kUsecPerSec));
}

Session::Session(SessionSettings settings) : settings_(std::move(settings)) {
    assert(!settings_.endpoints.empty());
}

Step Session::start(Usec now) {
    Step out;
    started_ = true;
    act(now, out);
    return out;
}

bool Session::holds(const std::string& key) const {
    auto it = claims_.find(key);
    return lease_ && it != claims_.end() && it->second.state == ClaimState::Held;
}

bool Session::pending(Call call, const std::string& key) const {
    const std::int64_t lease = lease_ ? lease_->id : 0;
    return std::any_of(pending_.begin(), pending_.end(), [&](const auto& p) {
        return p.second.call == call && p.second.key == key && (call != Call::KeepAlive || p.second.lease == lease);
    });
}

bool Session::claims_waiting() const {
    return std::any_of(claims_.begin(), claims_.end(), [&](const auto& c) {
        return c.second.state == ClaimState::Wanted ||
               (c.second.state == ClaimState::Releasing && !pending(Call::Release, c.first) &&
                !pending(Call::Claim, c.first));
    });
}

bool Session::acknowledged(const Record& record) const {
    return lease_ && record.acked_lease == lease_->id && record.acked == record.value;
}

bool Session::puts_waiting() const {
    return lease_ && std::any_of(records_.begin(), records_.end(), [&](const auto& r) {
               return !acknowledged(r.second) && !pending(Call::Put, r.first);
           });
}

bool Session::marks_waiting() const {
    return std::any_of(marks_.begin(), marks_.end(), [&](const auto& m) { return !pending(Call::Mark, m.first); });
}

std::optional<std::string> Session::published(const std::string& key) const {
    auto it = records_.find(key);
    if (!lease_ || it == records_.end() || it->second.acked_lease != lease_->id) return std::nullopt;
    return it->second.acked;
}

Usec Session::renewal_period() const {
    // A holder renews every interval, so that its lease stays a dead time
    // ahead; a node that holds nothing only keeps its membership alive.
    const bool claims = std::any_of(claims_.begin(), claims_.end(),
                                    [](const auto& c) { return c.second.state != ClaimState::Wanted; });
    return claims ? settings_.interval : ttl(ttl_seconds(settings_.dead_time)) / 3;
}

void Session::send(Call call, std::string body, const std::string& key, Usec now, Step& out, std::string value,
                   std::int64_t create_revision) {
    const std::uint64_t id = next_request_++;
    pending_[id] = Pending{call, key, lease_ ? lease_->id : 0, std::move(value), create_revision, endpoint_, now,
                           now + settings_.call_timeout};
    out.requests.push_back(Request{id, call, endpoint_, std::move(body)});
    ++counters_.calls;
}

void Session::act(Usec now, Step& out) {
    if (!started_ || revoked_ || now < retry_at_) return;
    // The cluster's mark has no lease: it need not wait for one.
    for (const auto& [key, value] : marks_)
        if (!pending(Call::Mark, key)) send(Call::Mark, claim_body(key, value, 0), key, now, out, value);
    if (!lease_) {
        if (!pending(Call::Grant)) send(Call::Grant, grant_body(ttl_seconds(settings_.dead_time)), {}, now, out);
        return;
    }
    if (now >= lease_->renewed_from + renewal_period() && !pending(Call::KeepAlive))
        send(Call::KeepAlive, keepalive_body(lease_->id), {}, now, out);
    for (auto& [key, claim] : claims_) {
        if (claim.state == ClaimState::Wanted) {
            claim.state = ClaimState::Claiming;
            send(Call::Claim, claim_body(key, claim.value, lease_->id), key, now, out);
        } else if (claim.state == ClaimState::Releasing && !pending(Call::Release, key) && !pending(Call::Claim, key)) {
            // A release needs the key's creation: unknown (the claim's answer
            // was lost), the claim is made again to learn it (if it creates
            // the key, the release deletes it).
            if (claim.create_revision == 0)
                send(Call::Claim, claim_body(key, claim.value, lease_->id), key, now, out);
            else
                send(Call::Release, release_body(key, lease_->id, claim.create_revision), key, now, out, {},
                     claim.create_revision);
        }
    }
    // One put per key at a time, of the newest value (those published while one was out are skipped).
    for (const auto& [key, record] : records_)
        if (!acknowledged(record) && !pending(Call::Put, key))
            send(Call::Put, put_body(key, record.value, lease_->id), key, now, out, record.value);
}

void Session::fail(const Pending& pending, const std::string& why, Usec now, Step& out) {
    ++counters_.failures;
    out.events.push_back(Event{EventKind::CallFailed, pending.key,
                               failed_call_line(pending.call, settings_.endpoints.at(pending.endpoint), why)});
    // A failed claim is made again (finding the key on this lease means it was created).
    if (pending.call == Call::Claim) {
        auto it = claims_.find(pending.key);
        if (it != claims_.end() && it->second.state == ClaimState::Claiming) it->second.state = ClaimState::Wanted;
    }
    // Calls sent together to one endpoint fail together: the endpoint is
    // left once, and a call that failed where the session no longer is moves nothing.
    if (pending.endpoint != endpoint_) return;
    if (settings_.endpoints.size() > 1) {
        endpoint_ = (endpoint_ + 1) % settings_.endpoints.size();
        ++counters_.endpoint_switches;
    }
    if (++failures_in_row_ >= settings_.endpoints.size())
        retry_at_ = now + backoff(failures_in_row_ / settings_.endpoints.size(), settings_.interval);
}

void Session::lose_lease(const std::string& why, Step& out) {
    lease_.reset();
    ++counters_.leases_lost;
    // Every claim key went with the lease: the node claims again when it
    // should. Its records went too, and are put again on the next lease
    // (acknowledged on this one, they no longer count).
    claims_.clear();
    released_.clear();
    out.events.push_back(Event{EventKind::LeaseLost, {}, why});
}

Step Session::on_reply(std::uint64_t request, std::string_view body, Usec now) {
    Step out;
    auto it = pending_.find(request);
    if (it == pending_.end()) return out;  // timed out already: its failure was counted
    const Pending p = it->second;
    pending_.erase(it);
    const bool current_lease = lease_ && lease_->id == p.lease;

    switch (p.call) {
    case Call::Grant: {
        auto grant = decode_grant(body);
        if (!grant) {
            fail(p, grant.error, now, out);
            break;
        }
        failures_in_row_ = 0;
        if (revoked_) {
            // The daemon stopped meanwhile: give this lease back too.
            send(Call::Revoke, revoke_body(grant.value->lease), {}, now, out);
            break;
        }
        lease_ = Lease{grant.value->lease, promise_grant(p.sent_at, ttl(grant.value->ttl_seconds)),
                       p.sent_at};
        leases_.push_back(grant.value->lease);
        if (leases_.size() > kLeasesKept) leases_.erase(leases_.begin());
        out.events.push_back(Event{EventKind::LeaseGranted, {}, std::to_string(grant.value->lease)});
        break;
    }
    case Call::KeepAlive: {
        auto renewed = decode_keepalive(body);
        if (!renewed) {
            fail(p, renewed.error, now, out);
            break;
        }
        if (renewed.value->lease != 0 && renewed.value->lease != p.lease) {
            fail(p, "keepalive answered for lease " + std::to_string(renewed.value->lease), now, out);
            break;
        }
        failures_in_row_ = 0;
        if (!current_lease) break;
        if (renewed.value->ttl_seconds == 0) {
            lose_lease("etcd no longer knows lease " + std::to_string(p.lease), out);
            break;
        }
        // Only later: an answer to an earlier keepalive never shortens the lease.
        lease_->until = std::max(lease_->until, promise_grant(p.sent_at, ttl(renewed.value->ttl_seconds)));
        lease_->renewed_from = std::max(lease_->renewed_from, p.sent_at);
        break;
    }
    case Call::Claim: {
        auto outcome = decode_claim(body);
        if (!outcome) {
            if (outcome.code == kCodeNotFound && current_lease) {
                lose_lease("etcd no longer knows lease " + std::to_string(p.lease) + " (" + outcome.error + ")", out);
                break;
            }
            fail(p, outcome.error, now, out);
            break;
        }
        failures_in_row_ = 0;
        auto claim = claims_.find(p.key);
        if (!current_lease || claim == claims_.end()) break;
        const auto& existing = outcome.value->existing;
        const bool ours = outcome.value->created || (existing && existing->lease == p.lease);
        if (ours) {
            claim->second.create_revision =
                outcome.value->created ? outcome.value->revision : existing->create_revision;
        }
        if (claim->second.state == ClaimState::Releasing) {
            if (!ours) {
                // Nothing of ours to delete.
                if (claim->second.reclaim) {
                    claim->second = Claim{claim->second.value, ClaimState::Wanted};
                } else {
                    claims_.erase(claim);
                    out.events.push_back(Event{EventKind::Released, p.key, {}});
                }
            }
            break;  // ours: act() deletes it below
        }
        if (ours) {
            claim->second.state = ClaimState::Held;
            out.events.push_back(Event{EventKind::ClaimWon, p.key, {}});
        } else if (existing) {
            claims_.erase(claim);
            out.events.push_back(Event{EventKind::ClaimRefused, p.key, existing->value});
        } else {
            claim->second.state = ClaimState::Wanted;  // it vanished between the compare and the read: again
        }
        break;
    }
    case Call::Release: {
        auto deleted = decode_release(body);
        if (!deleted) {
            fail(p, deleted.error, now, out);
            break;
        }
        failures_in_row_ = 0;
        if (current_lease) released_.insert(p.create_revision);
        // Deleted or not (gone already), the key is no longer this node's.
        auto claim = claims_.find(p.key);
        if (claim != claims_.end() && claim->second.state == ClaimState::Releasing) {
            if (claim->second.reclaim) {
                claim->second = Claim{claim->second.value, ClaimState::Wanted};
            } else {
                claims_.erase(claim);
                out.events.push_back(Event{EventKind::Released, p.key, {}});
            }
        }
        break;
    }
    case Call::Put: {
        auto put = decode_put(body);
        if (!put && put.code == kCodeNotFound) {
            // The put's lease is gone, and the record with it. An earlier
            // lease's put answered so is no endpoint's fault: the record goes
            // on the current lease all the same.
            failures_in_row_ = 0;
            if (current_lease)
                lose_lease("etcd no longer knows lease " + std::to_string(p.lease) + " (" + put.error + ")", out);
            break;
        }
        if (!put) {
            fail(p, put.error, now, out);
            break;
        }
        failures_in_row_ = 0;
        auto record = records_.find(p.key);
        if (current_lease && record != records_.end()) {
            record->second.acked = p.value;
            record->second.acked_lease = p.lease;
            record->second.acked_revision = *put.value;
        }
        break;
    }
    case Call::Mark: {
        auto outcome = decode_claim(body);
        if (!outcome) {
            fail(p, outcome.error, now, out);
            break;
        }
        failures_in_row_ = 0;
        auto mark = marks_.find(p.key);
        if (mark == marks_.end()) break;  // forgotten by a revoke
        const auto& existing = outcome.value->existing;
        if (!outcome.value->created && !existing) break;  // deleted between the compare and the read: again
        marks_.erase(mark);
        const std::string& holds = outcome.value->created ? p.value : existing->value;
        out.events.push_back(Event{EventKind::ClusterMarked, p.key, holds});
        break;
    }
    case Call::Revoke:
    case Call::Range:
    case Call::Watch:
        break;  // a revoke's answer changes nothing: the lease was dropped when it was sent
    }
    act(now, out);
    return out;
}

Step Session::on_failure(std::uint64_t request, const std::string& why, Usec now) {
    Step out;
    auto it = pending_.find(request);
    if (it == pending_.end()) return out;
    const Pending p = it->second;
    pending_.erase(it);
    if (p.call != Call::Revoke) fail(p, why, now, out);
    act(now, out);
    return out;
}

Step Session::on_view(const std::map<std::string, KeyValue>& view, std::int64_t revision, Usec now) {
    Step out;
    if (!lease_ || revoked_) return out;
    const std::int64_t lease = lease_->id;
    // A record etcd acknowledged, which the view, current past that put,
    // shows otherwise: gone, or put later by this node, on this lease or an
    // earlier one. Not one another daemon put on its own lease (a second
    // daemon with this node's name, which the node reports): both would put
    // again after each other for ever.
    for (auto& [key, record] : records_) {
        if (record.acked_lease != lease || record.acked_revision > revision || pending(Call::Put, key)) continue;
        auto kv = view.find(key);
        if (kv != view.end() && (kv->second.mod_revision == record.acked_revision ||
                                 std::find(leases_.begin(), leases_.end(), kv->second.lease) == leases_.end()))
            continue;
        record.acked_lease = 0;  // act() puts it again
        out.events.push_back(Event{EventKind::Repaired, key,
                                   key + (kv == view.end() ? " was deleted" : " was changed") +
                                       " in etcd after this node's put at revision " +
                                       std::to_string(record.acked_revision) +
                                       " (likely an earlier put given up on here and applied late): putting it again"});
    }
    // A key on this node's lease that it neither holds, claims nor publishes.
    std::set<std::int64_t> still_shown;
    for (const auto& [key, kv] : view) {
        if (kv.lease != lease) continue;
        if (released_.contains(kv.create_revision)) {
            still_shown.insert(kv.create_revision);
            continue;
        }
        if (claims_.contains(key) || records_.contains(key) || pending(Call::Claim, key) ||
            pending(Call::Release, key))
            continue;
        out.events.push_back(Event{EventKind::Repaired, key,
                                   key + " is on this node's lease, created at revision " +
                                       std::to_string(kv.create_revision) +
                                       ", but not held here (a claim given up on here and applied late): deleting it"});
        // Released as this node's own claims are: act() sends it, and again after a failure.
        claims_.emplace(key, Claim{kv.value, ClaimState::Releasing, kv.create_revision});
    }
    // A key deleted is no longer shown by a view past its creation: then nothing can be mistaken for it.
    std::erase_if(released_, [&](std::int64_t r) { return r <= revision && !still_shown.contains(r); });
    act(now, out);
    return out;
}

Step Session::on_timer(Usec now) {
    Step out;
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (now < it->second.deadline) {
            ++it;
            continue;
        }
        const Pending p = it->second;
        out.cancel.push_back(it->first);
        it = pending_.erase(it);
        if (p.call != Call::Revoke) fail(p, "no answer in " + format_timespan(settings_.call_timeout), now, out);
    }
    if (lease_ && now >= lease_->until) lose_lease("lease ran out: no keepalive acknowledged in time", out);
    act(now, out);
    return out;
}

std::optional<Usec> Session::next_wakeup() const {
    if (!started_) return std::nullopt;
    std::optional<Usec> at;
    auto earliest = [&](Usec t) { at = at ? std::min(*at, t) : t; };
    for (const auto& [id, p] : pending_) earliest(p.deadline);
    if (revoked_) return at;
    if (marks_waiting()) earliest(retry_at_);
    if (lease_) {
        earliest(lease_->until);
        if (!pending(Call::KeepAlive)) earliest(std::max(retry_at_, lease_->renewed_from + renewal_period()));
        if (claims_waiting() || puts_waiting()) earliest(retry_at_);
    } else if (!pending(Call::Grant)) {
        earliest(retry_at_);
    }
    return at;
}

Step Session::claim(const std::string& key, const std::string& value, Usec now) {
    Step out;
    auto [it, added] = claims_.try_emplace(key, Claim{value, ClaimState::Wanted});
    if (!added && it->second.state == ClaimState::Releasing) it->second.reclaim = true;
    act(now, out);
    return out;
}

Step Session::release(const std::string& key, Usec now) {
    Step out;
    auto it = claims_.find(key);
    if (it == claims_.end()) return out;
    if (it->second.state == ClaimState::Wanted || !lease_) {
        claims_.erase(it);
        out.events.push_back(Event{EventKind::Released, key, {}});
        return out;
    }
    it->second.state = ClaimState::Releasing;
    it->second.reclaim = false;
    act(now, out);
    return out;
}

Step Session::publish(const std::string& key, const std::string& value, Usec now) {
    Step out;
    if (revoked_) return out;  // the records went with the lease
    records_[key].value = value;
    act(now, out);
    return out;
}

Step Session::mark_cluster(const std::string& key, const std::string& value, Usec now) {
    Step out;
    if (revoked_) return out;
    marks_[key] = value;
    act(now, out);
    return out;
}

Step Session::revoke(Usec now) {
    Step out;
    revoked_ = true;
    claims_.clear();
    records_.clear();
    marks_.clear();
    if (lease_) {
        send(Call::Revoke, revoke_body(lease_->id), {}, now, out);
        lease_.reset();
    }
    return out;
}

}  // namespace freeha::etcd
