// What this node did since it started: its claims and stops by cause, and its hook runs with their durations.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/effects.h"
#include "core/enum_names.h"
#include "core/timespan.h"

namespace freeha {

// Why this node claimed the services (a claim is counted when it is made,
// whether or not its services then start).
enum class ClaimCause : std::uint8_t {
    Startup,       // elected, and no node of the cluster has held them since it started (term 0)
    Failover,      // elected after the node that held them died, stopped or failed
    Switchover,    // elected as the node a switchover (or a leaving node) hands them to
    Forced,        // ForceStart(), SIGUSR1, -m: other nodes not checked
    FoundRunning,  // the start-up probe (or maintenance mode's end) found them running here
};
inline constexpr std::size_t kClaimCauseCount = 5;
static_assert(static_cast<std::size_t>(ClaimCause::FoundRunning) + 1 == kClaimCauseCount);
inline constexpr EnumNames<ClaimCause, kClaimCauseCount> kClaimCauseNames{"startup", "failover", "switchover",
                                                                            "forced", "found_running"};

// Why this node gave up the services (or its claim to them), counted when
// the stop begins.
enum class StopCause : std::uint8_t {
    Operator,     // Stop(), SIGHUP, `systemctl reload freehad`
    Standby,      // SetStandby(true)
    Switchover,   // Switchover()
    Shutdown,     // the daemon stops (SIGTERM)
    Leave,        // the machine shuts down: handed to the next node
    Failed,       // a hook or the target failed (the error latch is set)
    LeaseLost,    // no majority renewed the lease
    Rival,        // another node holds a better claim (a dual active resolved)
    QuorumLost,   // a claim not started yet, dropped with the quorum
    Maintenance,  // maintenance mode withdrew a claim, or found the services gone at its end
};
inline constexpr std::size_t kStopCauseCount = 10;
static_assert(static_cast<std::size_t>(StopCause::Maintenance) + 1 == kStopCauseCount);
inline constexpr EnumNames<StopCause, kStopCauseCount> kStopCauseNames{
    "operator", "standby", "switchover", "shutdown", "leave", "failed", "lease_lost", "rival", "quorum_lost",
    "maintenance"};

// One hook's runs (or, in target mode, the start, stop or check of the
// target), counted when each ends; the durations as a histogram with
// Prometheus' cumulative buckets.
struct HookRuns {
    // Upper bounds of the buckets, in seconds: from a quick check to the
    // longest start timeout an admin would set; +Inf is `runs`.
    static constexpr std::array<double, 12> kBucketSeconds{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
    std::uint64_t runs = 0;
    std::uint64_t failures = 0;  // ended with a failure: a non-zero exit, a timeout, a kill, a failed job
    Usec duration_sum;
    std::array<std::uint64_t, kBucketSeconds.size()> buckets{};  // runs that took at most kBucketSeconds[i]

    void count(Usec duration, bool failed);
    bool operator==(const HookRuns&) const = default;
};

struct History {
    std::array<std::uint64_t, kClaimCauseCount> claims{};
    std::array<std::uint64_t, kStopCauseCount> stops{};
    std::array<HookRuns, kHookKindCount> hooks{};  // by HookKind

    bool operator==(const History&) const = default;
};

// The status document's "history" object, and back (freehactl reads it);
// nullopt when `j` is not one.
nlohmann::json to_json(const History& h);
std::optional<History> history_from_json(const nlohmann::json& j);

}  // namespace freeha
