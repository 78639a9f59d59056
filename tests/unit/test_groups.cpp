// Several service groups in one cluster: real Node cores exchanging heartbeats
// (as values, without the wire), with hooks that end on their own, checked
// at every step that no group runs on two nodes.
#include <gtest/gtest.h>

#include <algorithm>
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
        : previous_(previous) {
        for (const auto& name : nodes) {
            NodeSettings s = settings(name, nodes.size(), groups);
            s.no_quorum_policy = policy;
            if (previous.contains(name)) s.groups.resize(1);
            Member& m = members_[name];
            m.node = std::make_unique<Node>(s);
            for (const auto& g : s.groups) m.names.push_back(g.name);
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
        apply(name, members_.at(name).node->set_unavailable(index(name, group), why, now_));
    }
    void clear_error(const std::string& name, const std::string& group) {
        apply(name, members_.at(name).node->clear_error(index(name, group), now_));
    }
    // systemctl stop freehad on `name`.
    void shut_down(const std::string& name) {
        apply(name, members_.at(name).node->on_command(Command::Shutdown, now_));
    }
    // systemctl reload freehad on `name` with these groups configured.
    void reload(const std::string& name, const std::vector<std::string>& groups) {
        Member& m = members_.at(name);
        NodeSettings s = settings(name, members_.size(), groups);
        // As the core does: the groups it lacks go after the ones it has.
        for (const auto& g : groups)
            if (std::find(m.names.begin(), m.names.end(), g) == m.names.end()) m.names.push_back(g);
        apply(name, m.node->reconfigure(s, now_));
    }
    // The stophasrv of `group` on `name` takes `span` (else kHookTime).
    void slow_stop(const std::string& name, const std::string& group, Usec span) {
        members_.at(name).slow_stops[group] = span;
    }
    bool alive(const std::string& name) const { return members_.at(name).alive; }
    // The next monitor of `group` on `name` fails.
    void fail_monitor(const std::string& name, const std::string& group) { members_.at(name).failing.insert(group); }

    // Group -> the node whose services of it are up.
    std::map<std::string, std::string> running() const {
        std::map<std::string, std::string> out;
        for (const auto& [name, m] : members_)
            for (const auto& g : m.up) out[g] = name;
        return out;
    }
    std::size_t load(const std::string& name) const { return members_.at(name).up.size(); }
    const Node& node(const std::string& name) const { return *members_.at(name).node; }
    // `group` as node `name` has it.
    const Group& group(const std::string& name, const std::string& group) const {
        return node(name).group(index(name, group));
    }
    std::size_t starts() const { return starts_; }
    std::size_t heartbeats(const std::string& name) const { return members_.at(name).sent; }
    Usec now() const { return now_; }
    // freehactl switchover GROUP NODE on `name`; the core's refusal, or "".
    std::string switchover(const std::string& name, const std::string& group, const std::string& to) {
        std::string error;
        Effects effects = members_.at(name).node->switchover(index(name, group), to, now_, &error);
        apply(name, std::move(effects));
        return error;
    }
    // How many of the node's GroupRemoved effects named `group`.
    std::size_t removed(const std::string& name, const std::string& group) const {
        const auto& r = members_.at(name).removed;
        return static_cast<std::size_t>(std::count(r.begin(), r.end(), group));
    }
    bool has_group(const std::string& name, const std::string& group) const {
        const auto& n = members_.at(name).names;
        return std::find(n.begin(), n.end(), group) != n.end();
    }

private:
    struct Hook {
        std::string group;
        HookKind kind;
        Usec ends;
    };
    // Everything by group name: a node's group indexes change when a reload removes a group.
    struct Member {
        std::unique_ptr<Node> node;
        std::vector<std::string> names;  // the node's groups, by index (the daemon's mirror)
        bool alive = true;
        std::vector<wire::Heartbeat> inbox;
        std::vector<Hook> hooks;
        std::set<std::string> up;       // groups whose services run here
        std::set<std::string> failing;  // groups whose next monitor fails
        std::map<std::string, Usec> slow_stops;
        std::vector<std::string> killed;
        std::vector<std::string> removed;  // GroupRemoved, in order
        std::size_t sent = 0;  // heartbeats
    };

    static NodeSettings settings(const std::string& name, std::size_t nodes, const std::vector<std::string>& groups) {
        NodeSettings s;
        s.cluster_name = "test";
        s.node_name = name;
        s.incarnation = 100;
        s.expected_nodes = static_cast<unsigned>(nodes);
        s.init_dead = 5 * sec;
        s.groups.clear();
        for (const auto& group : groups)
            s.groups.push_back(GroupSettings{group, "", 2 * sec, PlacementPolicy::Rendezvous, {}});
        return s;
    }

    std::size_t index(const std::string& name, const std::string& group) const {
        const auto& n = members_.at(name).names;
        auto it = std::find(n.begin(), n.end(), group);
        EXPECT_NE(it, n.end()) << name << " has no group " << group;
        return static_cast<std::size_t>(it - n.begin());
    }

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
                const std::string& group = m.names.at(run->group);
                auto slow = m.slow_stops.find(group);
                Usec span = run->kind == HookKind::Stop && slow != m.slow_stops.end() ? slow->second : kHookTime;
                m.hooks.push_back(Hook{group, run->kind, now_ + span});
            } else if (auto* kill = std::get_if<effect::KillServices>(&e)) {
                m.up.erase(m.names.at(kill->group));
                m.killed.push_back(m.names.at(kill->group));
            } else if (auto* removed = std::get_if<effect::GroupRemoved>(&e)) {
                EXPECT_EQ(m.names.at(removed->group), removed->name);
                EXPECT_FALSE(m.up.contains(removed->name)) << removed->name << " removed with its services up";
                m.names.erase(m.names.begin() + static_cast<std::ptrdiff_t>(removed->group));
                m.removed.push_back(removed->name);
            } else if (std::holds_alternative<effect::Exit>(e)) {
                m.alive = false;
            }
        }
    }

    void finish_hooks(const std::string& name, Member& m) {
        for (const auto& group : std::exchange(m.killed, {}))
            apply(name, m.node->on_services_killed(index(name, group), now_));
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
            apply(name, m.node->on_hook_finished(index(name, h.group), h.kind,
                                                 HookOutcome{success, success ? "" : "failed"}, now_));
        }
    }

    void check_safety() {
        std::map<std::string, std::string> seen;
        for (const auto& [name, m] : members_)
            for (const auto& g : m.up) {
                auto [it, fresh] = seen.emplace(g, name);
                ASSERT_TRUE(fresh) << "group " << g << " runs on " << it->second << " and " << name << " at "
                                   << now_.count();
            }
    }

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
    EXPECT_EQ(c.group("alpha", failing).state(), NodeState::Errored);
    for (const auto& [group, node] : before)
        if (group != failing) {
            EXPECT_EQ(after.at(group), node) << group << " moved";
        }

    // Clearing that group's error makes alpha eligible for it again, and touches nothing else.
    c.clear_error("alpha", failing);
    c.run(1 * sec);
    EXPECT_EQ(c.group("alpha", failing).state(), NodeState::Standby);
    EXPECT_FALSE(c.group("alpha", failing).error_latched());
    EXPECT_EQ(c.running(), after) << "clearing an error moves nothing";
}

// systemctl stop freehad: the daemon exits once every group has stopped. A
// group whose stop ended first waits (stopping/exit), still announcing
// STOPPING, so that nobody takes it before the node is gone, as FreeHA's
// single group did.
TEST(Groups, AStoppedDaemonExitsOnceEveryGroupHasStopped) {
    GroupCluster c({"alpha", "bravo", "charlie"}, kSixGroups);
    c.run(4 * sec);
    std::vector<std::string> held;
    for (const auto& [group, node] : c.running())
        if (node == "alpha") held.push_back(group);
    ASSERT_EQ(held.size(), 2u);
    c.slow_stop("alpha", held[0], 2 * sec);
    c.shut_down("alpha");
    c.run(1 * sec);
    ASSERT_TRUE(c.alive("alpha")) << "exited while " << held[0] << " was still stopping";
    EXPECT_EQ(c.group("alpha", held[1]).phase(), Phase::StoppingExit);
    EXPECT_EQ(c.group("alpha", held[1]).state(), NodeState::Stopping);
    EXPECT_EQ(c.group("alpha", held[0]).phase(), Phase::StoppingHook);
    EXPECT_FALSE(c.running().contains(held[1])) << held[1] << " taken while alpha still announced STOPPING";
    c.run(1500 * ms);
    EXPECT_FALSE(c.alive("alpha")) << "the last group's stop ended: the daemon exits";
    c.run(3 * sec);
    auto running = c.running();
    ASSERT_EQ(running.size(), 6u) << "alpha's groups run elsewhere";
    EXPECT_EQ(c.load("bravo"), 3u);
    EXPECT_EQ(c.load("charlie"), 3u);
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
    EXPECT_TRUE(c.group(home, group).unavailable().empty());
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
    for (const auto& [group, node] : before) {
        if (node != "alpha") {
            EXPECT_EQ(after.at(group), node) << group << " moved";
        }
    }
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

// The status document's groups x nodes view (issue 20, interfaces): one
// entry per group, the default first, each with what every node announces of it.
TEST(Groups, TheStatusShowsEachGroupWhereItRunsAndWhatEveryNodeAnnouncesOfIt) {
    GroupCluster c({"alpha", "bravo", "charlie"}, kSixGroups);
    c.run(4 * sec);
    auto running = c.running();
    ASSERT_EQ(running.size(), 6u);
    Status s = c.node("bravo").status(c.now());
    ASSERT_EQ(s.groups.size(), kSixGroups.size());
    for (std::size_t i = 0; i < kSixGroups.size(); ++i) {
        const GroupStatus& g = s.groups[i];
        const std::string& runs_on = running.at(kSixGroups[i]);
        EXPECT_EQ(g.name, kSixGroups[i]);
        EXPECT_EQ(g.active_node, runs_on) << g.name;
        EXPECT_EQ(g.state, runs_on == "bravo" ? NodeState::Running : NodeState::Standby) << g.name;
        EXPECT_EQ(g.lease_remaining.has_value(), runs_on == "bravo") << g.name;
        EXPECT_GE(g.term, 1u) << g.name;
        EXPECT_EQ(g.placement, PlacementPolicy::Rendezvous);
        ASSERT_EQ(g.nodes.size(), 3u);
        for (const auto& n : g.nodes) {
            EXPECT_EQ(n.state, n.name == runs_on ? NodeState::Running : NodeState::Standby) << g.name << " " << n.name;
            EXPECT_EQ(n.self, n.name == "bravo");
            if (n.name == runs_on) {
                EXPECT_EQ(n.term, g.term) << g.name;
            }
        }
    }
    // The document's top-level fields stay the default group's.
    EXPECT_EQ(s.active_node, s.groups[0].active_node);
    EXPECT_EQ(s.state, s.groups[0].state);
    EXPECT_EQ(s.term, s.groups[0].term);
    EXPECT_TRUE(s.rebalance.empty()) << "the spread is even";
    c.isolate("charlie", true);
    c.run(3 * sec);
    s = c.node("bravo").status(c.now());
    for (const auto& g : s.groups) EXPECT_EQ(g.nodes[2].state, NodeState::TimedOut) << g.name;
}

TEST(Groups, TheStatusPlansTheRebalancingMovesAndFollowingThemEvensTheSpread) {
    GroupCluster c({"alpha", "bravo", "charlie"}, kSixGroups);
    c.run(4 * sec);
    c.isolate("alpha", true);
    c.run(4 * sec);
    c.isolate("alpha", false);
    c.run(3 * sec);
    ASSERT_EQ(c.load("alpha"), 0u) << "no fail-back";
    auto plan = c.node("alpha").status(c.now()).rebalance;
    ASSERT_EQ(plan.size(), 2u);
    for (const auto& move : plan) {
        EXPECT_EQ(move.to, "alpha");
        EXPECT_EQ(c.running().at(move.group), move.from);
    }
    EXPECT_EQ(c.node("bravo").status(c.now()).rebalance, plan) << "every node plans the same moves";
    EXPECT_NE(c.switchover("alpha", plan[0].group, "bravo"), "") << "only the node running a group hands it over";
    for (const auto& move : plan) {
        EXPECT_EQ(c.switchover(move.from, move.group, move.to), "");
        c.run(2 * sec);
        EXPECT_EQ(c.running().at(move.group), move.to);
    }
    for (const char* n : {"alpha", "bravo", "charlie"}) EXPECT_EQ(c.load(n), 2u) << n;
    EXPECT_TRUE(c.node("charlie").status(c.now()).rebalance.empty());
}

TEST(Groups, OneGroupIsAlwaysEvenlySpreadSoNothingIsPlannedToFailBack) {
    GroupCluster c({"alpha", "bravo", "charlie"}, {"default"});
    c.run(4 * sec);
    std::string first = c.running().at("default");
    c.isolate(first, true);
    c.run(4 * sec);
    c.isolate(first, false);
    c.run(3 * sec);
    ASSERT_NE(c.running().at("default"), first);
    EXPECT_TRUE(c.node(first).status(c.now()).rebalance.empty());
}

TEST(Groups, ClearingOneGroupsErrorLeavesTheOthersLatched) {
    GroupCluster c({"alpha", "bravo", "charlie"}, kSixGroups);
    c.run(4 * sec);
    std::vector<std::string> on_alpha;
    for (const auto& [group, node] : c.running())
        if (node == "alpha") on_alpha.push_back(group);
    ASSERT_EQ(on_alpha.size(), 2u);
    for (const auto& group : on_alpha) c.fail_monitor("alpha", group);
    c.run(4 * sec);
    for (const auto& group : on_alpha)
        ASSERT_EQ(c.group("alpha", group).state(), NodeState::Errored) << group;
    c.clear_error("alpha", on_alpha[0]);
    const Group& cleared = c.group("alpha", on_alpha[0]);
    EXPECT_EQ(cleared.state(), NodeState::Standby);
    EXPECT_FALSE(cleared.error_latched());
    EXPECT_EQ(cleared.last_error(), "");
    const Group& other = c.group("alpha", on_alpha[1]);
    EXPECT_EQ(other.state(), NodeState::Errored);
    EXPECT_TRUE(other.error_latched());
    c.run(1 * sec);
    EXPECT_EQ(c.group("alpha", on_alpha[1]).state(), NodeState::Errored);
}

}  // namespace

// systemctl reload with a group more: it starts as at start-up (probe,
// listen) and runs somewhere; the other groups stay where they run.
TEST(Groups, AReloadAddsAGroupWithoutMovingTheOthers) {
    GroupCluster c({"alpha", "bravo", "charlie"}, kSixGroups);
    c.run(4 * sec);
    auto before = c.running();
    ASSERT_EQ(before.size(), 6u);
    std::vector<std::string> more = kSixGroups;
    more.push_back("extra");
    for (const char* n : {"alpha", "bravo", "charlie"}) c.reload(n, more);
    c.run(4 * sec);
    auto after = c.running();
    ASSERT_EQ(after.size(), 7u);
    for (const auto& [group, node] : before) EXPECT_EQ(after.at(group), node) << group << " moved";
}

// systemctl reload with a group fewer: the node running it stops it, every
// node drops it once done (GroupRemoved), and the others do not move; the
// groups after it in each node's list keep working under their new indexes.
TEST(Groups, AReloadRemovesAGroupWithoutTouchingTheOthers) {
    GroupCluster c({"alpha", "bravo", "charlie"}, kSixGroups);
    c.run(4 * sec);
    auto before = c.running();
    ASSERT_EQ(before.size(), 6u);
    std::vector<std::string> fewer = kSixGroups;
    std::erase(fewer, "files");
    for (const char* n : {"alpha", "bravo", "charlie"}) c.reload(n, fewer);
    c.run(4 * sec);
    auto after = c.running();
    EXPECT_FALSE(after.contains("files"));
    ASSERT_EQ(after.size(), 5u);
    for (const char* n : {"alpha", "bravo", "charlie"}) {
        EXPECT_EQ(c.removed(n, "files"), 1u) << n;
        EXPECT_FALSE(c.has_group(n, "files")) << n;
        EXPECT_EQ(c.node(n).group_count(), 5u) << n;
    }
    for (const auto& [group, node] : before)
        if (group != "files") {
            EXPECT_EQ(after.at(group), node) << group << " moved";
        }
    // "queue" moved down one index on every node: its failed monitor still moves it alone.
    const std::string holder = after.at("queue");
    c.fail_monitor(holder, "queue");
    c.run(4 * sec);
    auto last = c.running();
    ASSERT_EQ(last.size(), 5u);
    EXPECT_NE(last.at("queue"), holder);
    EXPECT_EQ(c.group(holder, "queue").state(), NodeState::Errored);
}

// Removed on the node that runs it alone: it stops there and another node,
// where it is still configured, takes it; nothing runs it twice.
TEST(Groups, AGroupRemovedOnItsHolderAloneMovesToANodeThatStillHasIt) {
    GroupCluster c({"alpha", "bravo", "charlie"}, kSixGroups);
    c.run(4 * sec);
    const std::string holder = c.running().at("web");
    std::vector<std::string> fewer = kSixGroups;
    std::erase(fewer, "web");
    c.reload(holder, fewer);
    c.run(4 * sec);
    auto after = c.running();
    ASSERT_EQ(after.size(), 6u);
    EXPECT_NE(after.at("web"), holder);
    EXPECT_FALSE(c.has_group(holder, "web"));
}
