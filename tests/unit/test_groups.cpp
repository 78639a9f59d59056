// Several service groups in one cluster: real Node cores exchanging heartbeats
// (as values, without the wire), with hooks that end on their own, checked
// at every step that no group runs on two nodes.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/node.h"

using namespace freeha;

namespace {

constexpr Usec ms = kUsecPerMsec;
constexpr Usec sec = kUsecPerSec;
constexpr Usec kStep = 10 * ms;
constexpr Usec kHookTime = 50 * ms;  // every hook takes this long

class GroupCluster {
public:
    // `previous`: nodes of the previous release, which speak wire version 2 and run the default group alone.
    GroupCluster(const std::vector<std::string>& nodes, const std::vector<std::string>& groups,
                 const std::set<std::string>& previous = {}, NoQuorumPolicy policy = NoQuorumPolicy::Stop)
        : groups_(groups), previous_(previous) {
        for (const auto& name : nodes) {
            NodeSettings s;
            s.cluster_name = "test";
            s.node_name = name;
            s.incarnation = 100;
            s.expected_nodes = static_cast<unsigned>(nodes.size());
            s.init_dead = 5 * sec;
            s.no_quorum_policy = policy;
            s.groups.clear();
            for (const auto& group : groups) {
                s.groups.push_back(GroupSettings{group, "", 2 * sec, PlacementPolicy::Rendezvous, {}});
                if (previous.contains(name)) break;
            }
            members_[name].node = std::make_unique<Node>(s);
        }
        for (auto& [name, m] : members_) apply(name, m.node->start(now_, false));
    }

    // Runs the cluster for `span`, checking after every step that no group runs twice.
    void run(Usec span) {
        for (Usec until = now_ + span; now_ < until;) {
            now_ += kStep;
            for (auto& [name, m] : members_) {
                if (!m.alive) continue;
                for (auto& hb : std::exchange(m.inbox, {})) apply(name, m.node->on_heartbeat(hb, 0, now_));
                finish_hooks(name, m);
                if (auto wake = m.node->next_wakeup(now_); wake && *wake <= now_) apply(name, m.node->on_timer(now_));
            }
            check_safety();
            if (::testing::Test::HasFatalFailure()) return;
        }
    }

    // The node's machine loses power: its services die with it, it sends nothing more.
    void power_cut(const std::string& name) {
        Member& m = members_.at(name);
        m.alive = false;
        m.up.clear();
    }
    // Cuts `name` off from every other node (both ways), or heals that.
    void isolate(const std::string& name, bool cut) {
        if (cut)
            isolated_.insert(name);
        else
            isolated_.erase(name);
    }
    // `group` cannot run on `name` ("" : it can again), as the daemon says when its hooks are missing.
    void set_unavailable(const std::string& name, const std::string& group, const std::string& why) {
        apply(name, members_.at(name).node->set_unavailable(index(group), why, now_));
    }
    void clear_error(const std::string& name, const std::string& group) {
        apply(name, members_.at(name).node->clear_error(index(group), now_));
    }
    // The next monitor of `group` on `name` fails.
    void fail_monitor(const std::string& name, const std::string& group) {
        members_.at(name).failing.insert(index(group));
    }

    // Group -> the node whose services of it are up.
    std::map<std::string, std::string> running() const {
        std::map<std::string, std::string> out;
        for (const auto& [name, m] : members_)
            for (std::size_t g : m.up) out[groups_.at(g)] = name;
        return out;
    }
    std::size_t load(const std::string& name) const { return members_.at(name).up.size(); }
    const Node& node(const std::string& name) const { return *members_.at(name).node; }
    std::size_t index(const std::string& group) const {
        return static_cast<std::size_t>(std::find(groups_.begin(), groups_.end(), group) - groups_.begin());
    }
    std::size_t starts() const { return starts_; }
    std::size_t heartbeats(const std::string& name) const { return members_.at(name).sent; }

private:
    struct Hook {
        std::size_t group;
        HookKind kind;
        Usec ends;
    };
    struct Member {
        std::unique_ptr<Node> node;
        bool alive = true;
        std::vector<wire::Heartbeat> inbox;
        std::vector<Hook> hooks;
        std::set<std::size_t> up;       // groups whose services run here
        std::set<std::size_t> failing;  // groups whose next monitor fails
        std::vector<std::size_t> killed;
        std::size_t sent = 0;  // heartbeats
    };

    void apply(const std::string& name, Effects effects) {
        Member& m = members_.at(name);
        for (auto& e : effects) {
            if (auto* send = std::get_if<effect::SendHeartbeat>(&e)) {
                ++m.sent;
                wire::Heartbeat hb = send->heartbeat;
                if (previous_.contains(name)) {
                    hb.version = hb.understands = wire::kPreviousVersion;
                    hb.groups.clear();
                }
                if (hb.version == wire::kPreviousVersion) hb.groups.clear();  // as encode() does
                for (auto& [other, o] : members_)
                    if (other != name && o.alive && !isolated_.contains(name) && !isolated_.contains(other))
                        o.inbox.push_back(hb);
            } else if (auto* run = std::get_if<effect::RunHook>(&e)) {
                m.hooks.push_back(Hook{run->group, run->kind, now_ + kHookTime});
            } else if (auto* kill = std::get_if<effect::KillServices>(&e)) {
                m.up.erase(kill->group);
                m.killed.push_back(kill->group);
            } else if (std::holds_alternative<effect::Exit>(e)) {
                m.alive = false;
            }
        }
    }

    void finish_hooks(const std::string& name, Member& m) {
        for (std::size_t group : std::exchange(m.killed, {})) apply(name, m.node->on_services_killed(group, now_));
        std::vector<Hook> done;
        std::erase_if(m.hooks, [&](const Hook& h) {
            if (h.ends > now_) return false;
            done.push_back(h);
            return true;
        });
        for (const Hook& h : done) {
            bool success = true;
            if (h.kind == HookKind::Start) {
                m.up.insert(h.group);
                ++starts_;
            } else if (h.kind == HookKind::Stop) {
                m.up.erase(h.group);
            } else if (m.failing.erase(h.group) != 0) {
                success = false;
            } else {
                success = m.up.contains(h.group);  // a start-up probe finds nothing running
            }
            apply(name, m.node->on_hook_finished(h.group, h.kind, HookOutcome{success, success ? "" : "failed"},
                                                 now_));
        }
    }

    void check_safety() {
        std::map<std::size_t, std::string> seen;
        for (const auto& [name, m] : members_)
            for (std::size_t g : m.up) {
                auto [it, fresh] = seen.emplace(g, name);
                ASSERT_TRUE(fresh) << "group " << groups_[g] << " runs on " << it->second << " and " << name
                                   << " at " << now_.count();
            }
    }

    std::vector<std::string> groups_;
    std::map<std::string, Member> members_;
    std::set<std::string> isolated_;
    std::set<std::string> previous_;
    Usec now_{0};
    std::size_t starts_ = 0;
};

const std::vector<std::string> kSixGroups{"default", "db", "files", "mail", "queue", "web"};

TEST(Groups, SixGroupsSpreadTwoToEachOfThreeNodes) {
    GroupCluster c({"alpha", "bravo", "charlie"}, kSixGroups);
    c.run(4 * sec);
    EXPECT_EQ(c.running().size(), 6u);
    for (const char* n : {"alpha", "bravo", "charlie"}) EXPECT_EQ(c.load(n), 2u) << n;
    EXPECT_EQ(c.starts(), 6u) << "each group started once";
    // A node that holds groups and backs the others' answers their heartbeats,
    // but not their answers: one heartbeat an interval, and the replies.
    std::size_t sent = c.heartbeats("alpha");
    c.run(2 * sec);
    EXPECT_LE(c.heartbeats("alpha") - sent, 2 * 10 * 3u) << "more than three heartbeats an interval";
    // Each group is its own claim: the node's own term is its default group's.
    for (const char* n : {"alpha", "bravo", "charlie"})
        for (std::size_t g = 0; g < kSixGroups.size(); ++g)
            EXPECT_EQ(c.node(n).group(g).state() == NodeState::Running, c.running().at(kSixGroups[g]) == n);
}

TEST(Groups, APowerCutMovesExactlyTheDeadNodesGroupsAndSpreadsThem) {
    GroupCluster c({"alpha", "bravo", "charlie"}, kSixGroups);
    c.run(4 * sec);
    auto before = c.running();
    ASSERT_EQ(before.size(), 6u);
    c.power_cut("bravo");
    c.run(3 * sec);
    auto after = c.running();
    ASSERT_EQ(after.size(), 6u) << "every group runs again";
    for (const auto& [group, node] : before) {
        if (node == "bravo")
            EXPECT_NE(after.at(group), "bravo") << group;
        else
            EXPECT_EQ(after.at(group), node) << group << " moved although its node lives";
    }
    EXPECT_EQ(c.load("alpha"), 3u);
    EXPECT_EQ(c.load("charlie"), 3u);
}

TEST(Groups, AFailedMonitorMovesThatGroupAlone) {
    GroupCluster c({"alpha", "bravo", "charlie"}, kSixGroups);
    c.run(4 * sec);
    auto before = c.running();
    std::string failing;
    for (const auto& [group, node] : before)
        if (node == "alpha") failing = group;
    ASSERT_FALSE(failing.empty());
    c.fail_monitor("alpha", failing);
    c.run(4 * sec);
    auto after = c.running();
    ASSERT_EQ(after.size(), 6u);
    EXPECT_NE(after.at(failing), "alpha");
    EXPECT_EQ(c.node("alpha").group(c.index(failing)).state(), NodeState::Errored);
    for (const auto& [group, node] : before)
        if (group != failing) EXPECT_EQ(after.at(group), node) << group << " moved";

    // Clearing that group's error makes alpha eligible for it again, and touches nothing else.
    c.clear_error("alpha", failing);
    c.run(1 * sec);
    EXPECT_EQ(c.node("alpha").group(c.index(failing)).state(), NodeState::Standby);
    EXPECT_FALSE(c.node("alpha").group(c.index(failing)).error_latched());
    EXPECT_EQ(c.running(), after) << "clearing an error moves nothing";
}

// A group whose hooks are missing on a node runs elsewhere; the node runs its
// other groups. The default group stands aside with its own flag
// (kFlagDefaultAside), not the node's standby flag.
class GroupsUnavailable : public ::testing::TestWithParam<std::string> {};

TEST_P(GroupsUnavailable, TheGroupRunsElsewhereAndTheNodeRunsOthers) {
    const std::string& group = GetParam();
    std::string home;
    {
        GroupCluster free({"alpha", "bravo", "charlie"}, kSixGroups);
        free.run(4 * sec);
        home = free.running().at(group);
    }
    GroupCluster c({"alpha", "bravo", "charlie"}, kSixGroups);
    c.set_unavailable(home, group, "the hooks directory /etc/freeha/" + group + " is missing");
    c.run(4 * sec);
    auto running = c.running();
    ASSERT_EQ(running.size(), 6u);
    EXPECT_NE(running.at(group), home);
    EXPECT_GE(c.load(home), 1u) << home << " runs none of its other groups";
    EXPECT_FALSE(c.node(home).standby());

    // Available again: nothing moves back (no fail-back), but the node may take the group.
    c.set_unavailable(home, group, "");
    c.run(1 * sec);
    EXPECT_EQ(c.running(), running);
    EXPECT_TRUE(c.node(home).group(c.index(group)).unavailable().empty());
}

INSTANTIATE_TEST_SUITE_P(Groups, GroupsUnavailable, ::testing::Values("default", "web"));

TEST(Groups, APartitionedNodeStopsItsGroupsBeforeTheMajorityTakesThem) {
    GroupCluster c({"alpha", "bravo", "charlie"}, kSixGroups);
    c.run(4 * sec);
    auto before = c.running();
    c.isolate("alpha", true);  // every step checks that no group runs twice meanwhile
    c.run(4 * sec);
    auto after = c.running();
    ASSERT_EQ(after.size(), 6u);
    EXPECT_EQ(c.load("alpha"), 0u) << "alpha lost quorum: its leases ran out";
    for (const auto& [group, node] : before)
        if (node != "alpha") EXPECT_EQ(after.at(group), node) << group << " moved";
    c.isolate("alpha", false);  // healed: nothing moves back (no fail-back)
    c.run(4 * sec);
    EXPECT_EQ(c.running(), after);
}

TEST(Groups, BesideANodeOfThePreviousReleaseOnlyTheDefaultGroupRuns) {
    // Version 2 carries the default group alone: nobody could see the other
    // groups' claims, and without quorum rules no lease would keep two
    // nodes from starting one (every step checks that none runs twice).
    GroupCluster c({"alpha", "bravo", "charlie"}, kSixGroups, {"charlie"}, NoQuorumPolicy::Ignore);
    c.run(4 * sec);
    auto running = c.running();
    ASSERT_EQ(running.size(), 1u);
    EXPECT_EQ(running.begin()->first, "default");
    EXPECT_EQ(c.node("alpha").wire_version(), wire::kPreviousVersion);
}

}  // namespace
