// kill_first(): the daemon kills before it logs why, and never reorders actions.
#include <gtest/gtest.h>

#include <string>

#include "core/effects.h"

using namespace freeha;

namespace {

// One letter per effect: S StateChanged, P PeerStateChanged, N Notice, K
// KillServices, F SelfFence, H SendHeartbeat, R RunHook, C CancelHook, X Exit.
Effects parse(const std::string& letters) {
    Effects out;
    for (char c : letters) {
        switch (c) {
        case 'S': out.push_back(effect::StateChanged{NodeState::Stopping, NodeState::Stopping, "why", 1, ""}); break;
        case 'P': out.push_back(effect::PeerStateChanged{"bravo", NodeState::Standby, NodeState::Running, 2}); break;
        case 'N': out.push_back(effect::Notice{NoticeKind::LeaseLost, "alpha", "lease lost"}); break;
        case 'K': out.push_back(effect::KillServices{}); break;
        case 'F': out.push_back(effect::SelfFence{"late", Usec(5)}); break;
        case 'H': out.push_back(effect::SendHeartbeat{}); break;
        case 'R': out.push_back(effect::RunHook{HookKind::Stop}); break;
        case 'C': out.push_back(effect::CancelHook{HookKind::Monitor}); break;
        case 'X': out.push_back(effect::Exit{0}); break;
        }
    }
    return out;
}

std::string letters(const Effects& effects) {
    static constexpr std::string_view kLetters = "HRCKSPNXF";  // the variant's order
    std::string out;
    for (const auto& e : effects) out += kLetters.at(e.index());
    return out;
}

struct Case {
    std::string in, out;
};

class KillFirst : public testing::TestWithParam<Case> {};

TEST_P(KillFirst, MovesTheFenceAheadOfTheReportsBeforeIt) {
    Effects effects = parse(GetParam().in);
    ASSERT_EQ(letters(effects), GetParam().in);
    kill_first(effects);
    EXPECT_EQ(letters(effects), GetParam().out);
}

INSTANTIATE_TEST_SUITE_P(Effects, KillFirst,
                         testing::Values(Case{"", ""}, Case{"SNP", "SNP"}, Case{"K", "K"},
                                         Case{"SK", "KS"},          // the fence's phase change, then the kill
                                         Case{"NSK", "KNS"},        // a lease lost, the phase change, the kill
                                         Case{"SKF", "KFS"},        // two fences keep their order
                                         Case{"SKNF", "KFSN"},
                                         Case{"HSK", "HKS"},        // a heartbeat sent before stays before
                                         Case{"RSK", "RKS"},        // never ahead of a hook started before it
                                         Case{"CNKS", "CKNS"},      // nor of a cancel
                                         Case{"XSF", "XFS"},
                                         Case{"NKRSK", "KNRKS"}));  // each kill passes only its own reports

}  // namespace
