#include "core/effects.h"

#include <algorithm>
#include <array>

namespace freeha {

static_assert(static_cast<std::size_t>(NoticeKind::UnknownPreferredNode) + 1 == kNoticeKindCount);

std::string_view to_string(NoticeKind k) {
    static constexpr std::array<std::string_view, kNoticeKindCount> kNames{
        "peer-joined",  "peer-timed-out",       "peer-restarted", "quorum-gained",        "quorum-lost",
        "takeover",     "dual-active-resolved", "hook-failed",    "startup-wait-expired", "duplicate-node-name",
        "unexpected-services", "lease-lost", "peer-refused", "peer-refusal-ended", "peer-left", "maintenance-changed", "unknown-wire-version",
        "link-lossy", "link-recovered", "unknown-preferred-node",
    };
    return kNames.at(static_cast<std::size_t>(k));
}

void kill_first(Effects& effects) {
    auto is_fence = [](const Effect& e) {
        return std::holds_alternative<effect::KillServices>(e) || std::holds_alternative<effect::SelfFence>(e);
    };
    auto is_report = [](const Effect& e) {
        return std::holds_alternative<effect::StateChanged>(e) || std::holds_alternative<effect::PeerStateChanged>(e) ||
               std::holds_alternative<effect::Notice>(e);
    };
    for (auto it = effects.begin(); it != effects.end(); ++it) {
        if (!is_fence(*it)) continue;
        auto to = it;
        while (to != effects.begin() && is_report(*std::prev(to))) --to;
        std::rotate(to, it, std::next(it));
    }
}

}  // namespace freeha
