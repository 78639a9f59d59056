#include "core/history.h"

#include "core/effects.h"

namespace freeha {

void HookRuns::count(Usec duration, bool failed) {
    ++runs;
    if (failed) ++failures;
    duration_sum += duration;
    for (std::size_t i = 0; i < kBucketSeconds.size(); ++i)
        if (static_cast<double>(duration.count()) <= kBucketSeconds[i] * 1e6) ++buckets[i];
}

namespace {

template <typename Enum, std::size_t N>
nlohmann::json by_name(const std::array<std::uint64_t, N>& counts, const EnumNames<Enum, N>& names) {
    nlohmann::json out = nlohmann::json::object();
    for (std::size_t i = 0; i < N; ++i) out[std::string(names(static_cast<Enum>(i)))] = counts[i];
    return out;
}

// Absent names count 0: a document of an older daemon may know fewer causes.
template <typename Enum, std::size_t N>
void from_names(const nlohmann::json& j, std::array<std::uint64_t, N>& counts, const EnumNames<Enum, N>& names) {
    for (std::size_t i = 0; i < N; ++i) counts[i] = j.value(std::string(names(static_cast<Enum>(i))), std::uint64_t{0});
}

}  // namespace

nlohmann::json to_json(const History& h) {
    nlohmann::json hooks = nlohmann::json::object();
    for (HookKind kind : kHookKinds) {
        const HookRuns& r = h.hooks.at(static_cast<std::size_t>(kind));
        nlohmann::json buckets = nlohmann::json::array();
        for (std::size_t i = 0; i < r.buckets.size(); ++i)
            buckets.push_back({{"le_seconds", HookRuns::kBucketSeconds[i]}, {"runs", r.buckets[i]}});
        hooks[std::string(hook_name(kind))] = {{"runs", r.runs},
                                               {"failures", r.failures},
                                               {"duration_sum_usec", r.duration_sum.count()},
                                               {"duration_buckets", std::move(buckets)}};
    }
    return {{"claims", by_name(h.claims, kClaimCauseNames)},
            {"stops", by_name(h.stops, kStopCauseNames)},
            {"hooks", std::move(hooks)}};
}

std::optional<History> history_from_json(const nlohmann::json& j) {
    try {
        History h;
        from_names(j.at("claims"), h.claims, kClaimCauseNames);
        from_names(j.at("stops"), h.stops, kStopCauseNames);
        for (HookKind kind : kHookKinds) {
            const auto& r = j.at("hooks").at(std::string(hook_name(kind)));
            HookRuns& runs = h.hooks.at(static_cast<std::size_t>(kind));
            runs.runs = r.at("runs");
            runs.failures = r.at("failures");
            runs.duration_sum = Usec(r.at("duration_sum_usec").get<std::uint64_t>());
            const auto& buckets = r.at("duration_buckets");
            if (buckets.size() != runs.buckets.size()) return std::nullopt;
            for (std::size_t i = 0; i < runs.buckets.size(); ++i) {
                if (buckets[i].at("le_seconds").get<double>() != HookRuns::kBucketSeconds[i]) return std::nullopt;
                runs.buckets[i] = buckets[i].at("runs");
            }
        }
        return h;
    } catch (const nlohmann::json::exception&) {
        return std::nullopt;
    }
}

}  // namespace freeha
