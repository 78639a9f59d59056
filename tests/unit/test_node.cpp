// State machine conversations: one row per FreeHA rule (DESIGN.md section 1)
// and per term rule (section 3.4), each driving one Node on a fake clock with
// scripted peers.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "core/auth.h"
#include "core/node.h"
#include "core/node_name.h"

using namespace freeha;
using S = NodeState;

namespace freeha {
// Readable failures.
void PrintTo(NodeState s, std::ostream* os) { *os << to_string(s); }
void PrintTo(Phase p, std::ostream* os) { *os << to_string(p); }
}  // namespace freeha

namespace {

constexpr Usec ms = kUsecPerMsec;
constexpr Usec sec = kUsecPerSec;

class Harness {
public:
    explicit Harness(std::string name = "b", unsigned expected = 3) {
        settings_.cluster_name = "test";
        settings_.node_name = std::move(name);
        settings_.incarnation = 100;
        settings_.expected_nodes = expected;
        settings_.init_dead = 5 * sec;
    }
    NodeSettings& settings() { return settings_; }
    Node& node() { return *node_; }
    Usec now() const { return now_; }
    S state() const { return node_->state(); }

    void start(bool force = false) {
        node_ = std::make_unique<Node>(settings_);
        take(node_->start(now_, force));
    }
    void start_in_standby() {
        node_ = std::make_unique<Node>(settings_);
        node_->keep_standby();
        take(node_->start(now_, false));
    }

    // A peer that heartbeats every interval from now on (until silenced).
    void peer(const std::string& name, S state, std::uint64_t term = 0, Role role = Role::Member,
              std::uint16_t flags = 0) {
        wire::Heartbeat hb;
        hb.cluster_id = cluster_id("test");
        hb.incarnation = peers_.count(name) ? peers_[name].incarnation : 1;
        hb.node = name;
        hb.state = state;
        hb.term = term;
        hb.role = role;
        hb.flags = flags;
        hb.heard = {node_id(settings_.node_name)};  // a two-way link unless deaf() says otherwise
        hb.claimant_incarnation = 0;  // a version that names the claimant's incarnation
        // Its ExpectedNodes=: this node's unless expects() said otherwise.
        hb.expected_nodes = expected_.count(name) ? expected_.at(name) : settings_.expected_nodes;
        peers_[name] = hb;
        hear(name);
    }
    // The peer no longer hears this node (a one-way link).
    void deaf(const std::string& name) {
        peers_.at(name).heard.clear();
        hear(name);
    }
    void handing_over(const std::string& name, S state, const std::string& to) {
        peers_.at(name).state = state;
        peers_.at(name).handover_to = to;
        hear(name);
    }
    void silence(const std::string& name) { peers_.erase(name); }
    // This node's claim, once a (running the services with term 3) fell
    // silent; c keeps it quorate but backs nothing (see withhold()).
    void claim_after_a_fell_silent();
    // The peer's ExpectedNodes= (0: a release of wire version 2 that does not state it), from its next heartbeat on.
    void expects(const std::string& name, unsigned expected_nodes) {
        expected_[name] = expected_nodes;
        if (peers_.count(name)) {
            peers_.at(name).expected_nodes = expected_nodes;
            if (expected_nodes == 0) previous_release(name);
            hear(name);
        }
    }
    // The peer is of the previous release: it speaks and understands wire version 2 only.
    void previous_release(const std::string& name) {
        peers_.at(name).version = wire::kPreviousVersion;
        peers_.at(name).understands = wire::kPreviousVersion;
    }
    // The peer holds a claim elsewhere (or is otherwise bound): it never backs this node.
    void withhold(const std::string& name) { withholding_.insert(name); }
    void release(const std::string& name) { withholding_.erase(name); }
    // Like real voters, a peer that hears this node and holds nothing backs
    // this node's claim: it announces it and states the grant of its promise
    // (from the send time of the newest heartbeat of ours it has heard).
    void hear(const std::string& name) {
        auto& hb = peers_.at(name);
        hb.sequence = ++sequences_[name];  // a peer silenced and heard again goes on counting: no replay
        hb.sent_at = now_.count();
        wire::Heartbeat sent = hb;
        bool claims = holds_services(node_->state());
        if (!holds_services(hb.state) && !hb.heard.empty() && claims && node_->term() >= hb.term &&
            withholding_.count(name) == 0 && last_sent_at_ != 0) {
            sent.term = node_->term();
            sent.claimant = settings_.node_name;
            sent.grant = promise_grant(Usec(last_sent_at_), settings_.dead_time).count();
            sent.claimant_incarnation = settings_.incarnation;
        }
        take(node_->on_heartbeat(sent, 0, now_));
    }

    // Advances the fake clock, firing the node's timer and the live peers'
    // heartbeats in time order.
    void advance(Usec span) {
        Usec until = now_ + span;
        int stuck = 0;  // wake-ups in a row without time moving on: a node that never settles
        while (true) {
            ASSERT_LT(stuck, 1000) << "the node keeps waking up at " << now_ << " in phase "
                                   << to_string(node_->phase());
            Usec next_peer = next_peer_beat_;
            Usec next = std::min(node_->next_wakeup(now_).value_or(Usec::max()), next_peer);
            if (next > until) break;
            stuck = next <= now_ ? stuck + 1 : 0;
            now_ = std::max(now_, next);
            if (next == next_peer) {
                for (auto& [name, hb] : peers_) hear(name);
                next_peer_beat_ = now_ + settings_.interval;
            } else {
                take(node_->on_timer(now_));
            }
        }
        now_ = until;
    }

    // An elected claim starts once a majority backs it (the peers' next heartbeats).
    void await_start() {
        for (int i = 0; i < 100 && node_->phase() == Phase::StartingPending; ++i) advance(10 * ms);
    }
    void finish(HookKind kind, bool success, const char* why = "exited with status 1") {
        if (kind == HookKind::Start) await_start();
        take(node_->on_hook_finished(kind, HookOutcome{success, success ? "exited with status 0" : why}, now_));
    }
    void command(Command c) { take(node_->on_command(c, now_)); }
    void unavailable(const std::string& why) { take(node_->set_unavailable(0, why, now_)); }
    std::string switchover(const std::string& to) {
        std::string error;
        take(node_->switchover(to, now_, &error));
        return error;
    }
    void services_failed(const std::string& why) { take(node_->on_services_failed(why, now_)); }
    std::string maintenance(bool on) {
        std::string error;
        take(node_->set_maintenance(on, now_, &error));
        return error;
    }
    void start_in_maintenance(Maintenance m) {
        node_ = std::make_unique<Node>(settings_);
        node_->keep_maintenance(m);
        take(node_->start(now_, false));
    }
    // The peer announces maintenance mode as decided at `epoch`, from its next heartbeat on.
    void announces_maintenance(const std::string& name, bool on, std::uint64_t epoch) {
        auto& hb = peers_.at(name);
        hb.maintenance_epoch = epoch;
        hb.flags = static_cast<std::uint16_t>(on ? hb.flags | wire::kFlagMaintenance : hb.flags & ~wire::kFlagMaintenance);
        hear(name);
    }
    // The peer's last heartbeat: it leaves (its machine shuts down), then falls silent.
    void leaves(const std::string& name) {
        auto& hb = peers_.at(name);
        hb.flags |= wire::kFlagLeaving | wire::kFlagStandby;
        hb.state = S::Standby;
        hear(name);
        silence(name);
    }
    std::optional<effect::Exit> exit_effect() {
        for (auto& e : effects_)
            if (auto* x = std::get_if<effect::Exit>(&e)) return *x;
        return std::nullopt;
    }
    std::vector<effect::MaintenanceChanged> maintenance_changes() {
        std::vector<effect::MaintenanceChanged> found;
        for (auto& e : effects_)
            if (auto* m = std::get_if<effect::MaintenanceChanged>(&e)) found.push_back(*m);
        return found;
    }
    void reconfigure(const NodeSettings& s) { take(node_->reconfigure(s, now_)); }

    // Effects since the last call to these helpers.
    std::vector<HookKind> hooks_run() {
        std::vector<HookKind> out;
        for (auto& e : effects_)
            if (auto* r = std::get_if<effect::RunHook>(&e)) out.push_back(r->kind);
        return out;
    }
    bool ran(HookKind k) {
        for (auto& e : effects_)
            if (auto* r = std::get_if<effect::RunHook>(&e); r && r->kind == k) return true;
        return false;
    }
    bool canceled(HookKind k) {
        for (auto& e : effects_)
            if (auto* r = std::get_if<effect::CancelHook>(&e); r && r->kind == k) return true;
        return false;
    }
    bool noticed(NoticeKind k) { return !notices(k).empty(); }
    // The texts of the notices of kind `k`, each prefixed with the node it concerns.
    std::vector<std::string> notices(NoticeKind k) {
        std::vector<std::string> texts;
        for (auto& e : effects_)
            if (auto* n = std::get_if<effect::Notice>(&e); n && n->kind == k) texts.push_back(n->peer + ": " + n->text);
        return texts;
    }
    std::optional<int> exited() {
        for (auto& e : effects_)
            if (auto* x = std::get_if<effect::Exit>(&e)) return x->code;
        return std::nullopt;
    }
    std::optional<wire::Heartbeat> last_heartbeat() {
        std::optional<wire::Heartbeat> hb;
        for (auto& e : effects_)
            if (auto* s = std::get_if<effect::SendHeartbeat>(&e)) hb = s->heartbeat;
        return hb;
    }
    std::vector<wire::Heartbeat> heartbeats_sent_since_clear() {
        std::vector<wire::Heartbeat> sent;
        for (auto& e : effects_)
            if (auto* s = std::get_if<effect::SendHeartbeat>(&e)) sent.push_back(s->heartbeat);
        return sent;
    }
    int heartbeats_sent() {
        int n = 0;
        for (auto& e : effects_) n += std::holds_alternative<effect::SendHeartbeat>(e);
        return n;
    }
    std::optional<effect::StateChanged> last_change() {
        std::optional<effect::StateChanged> change;
        for (auto& e : effects_)
            if (auto* c = std::get_if<effect::StateChanged>(&e)) change = *c;
        return change;
    }
    void clear() { effects_.clear(); }

    // Start-up as a member with the given live peers, the probe finding nothing.
    void boot_to_standby(std::map<std::string, S> peers) {
        start();
        for (auto& [name, st] : peers) peer(name, st);
        finish(HookKind::Monitor, false);
        finish(HookKind::Stop, true);
        advance(settings_.dead_time);
    }

private:
    void take(Effects e) {
        bool sent_claim = false;
        for (auto& x : e) {
            if (auto* sent = std::get_if<effect::SendHeartbeat>(&x)) {
                last_sent_at_ = sent->heartbeat.sent_at;
                sent_claim = sent_claim || holds_services(sent->heartbeat.state);
            }
            effects_.push_back(std::move(x));
        }
        bool kill = std::any_of(effects_.end() - static_cast<long>(e.size()), effects_.end(),
                                [](const Effect& x) { return std::holds_alternative<effect::KillServices>(x); });
        if (kill && confirm_kills_) services_killed();
        // Real voters acknowledge a claimant's heartbeat at once (in their own heartbeat).
        if (sent_claim && !acking_) {
            acking_ = true;
            std::vector<std::string> names;
            for (const auto& [name, hb] : peers_) names.push_back(name);
            for (const auto& name : names)
                if (peers_.count(name) && !holds_services(peers_.at(name).state) && withholding_.count(name) == 0) hear(name);
            acking_ = false;
        }
    }

public:
    // A raw datagram, as the channel would hand it over.
    void receive(const std::vector<std::uint8_t>& datagram, std::size_t channel = 0) {
        take(node_->on_datagram(datagram, channel, now_));
    }
    void take_effects(Effects e) { take(std::move(e)); }
    bool killed() {
        for (auto& e : effects_)
            if (std::holds_alternative<effect::KillServices>(e)) return true;
        return false;
    }
    void services_killed() { take(node_->on_services_killed(now_)); }
    std::vector<effect::SelfFence> self_fences() {
        std::vector<effect::SelfFence> found;
        for (auto& e : effects_)
            if (auto* f = std::get_if<effect::SelfFence>(&e)) found.push_back(*f);
        return found;
    }
    // Kills are confirmed at once, as the daemon does once the cgroup is empty; off: tests confirm them.
    void confirm_kills(bool automatically) { confirm_kills_ = automatically; }
    // Finishes stophasrv runs (the stop, and the clean-up after a kill) until the node has stopped.
    void finish_stops() {
        for (int i = 0; i < 3 && state() == S::Stopping; ++i) finish(HookKind::Stop, true);
    }

private:
    NodeSettings settings_;
    std::unique_ptr<Node> node_;
    Usec now_ = 10 * sec;
    Usec next_peer_beat_;
    std::map<std::string, wire::Heartbeat> peers_;
    std::map<std::string, std::uint64_t> sequences_;
    std::set<std::string> withholding_;
    std::map<std::string, unsigned> expected_;
    std::uint64_t last_sent_at_ = 0;  // the node's newest heartbeat, which its backers' grants date from
    bool acking_ = false;
    bool confirm_kills_ = true;
    Effects effects_;
};

struct Conversation {
    const char* rule;
    std::function<void()> script;
};

class NodeRules : public ::testing::TestWithParam<Conversation> {};

TEST_P(NodeRules, Hold) {
    SCOPED_TRACE(GetParam().rule);
    GetParam().script();
}

const Conversation kConversations[] = {
    {"start-up: a successful monitor means the services already run here",
     [] {
         Harness h;
         h.start();
         EXPECT_EQ(h.hooks_run(), std::vector{HookKind::Monitor});
         h.finish(HookKind::Monitor, true);
         EXPECT_EQ(h.state(), S::Running);
         EXPECT_EQ(h.node().term(), 0u);  // yields to any node that took over
     }},
    {"start-up: a failing monitor triggers a clean-up stophasrv, then STANDBY",
     [] {
         Harness h;
         h.start();
         h.peer("a", S::Standby);
         h.finish(HookKind::Monitor, false);
         EXPECT_TRUE(h.ran(HookKind::Stop));
         EXPECT_EQ(h.state(), S::Initial);
         h.finish(HookKind::Stop, true);
         h.advance(1 * sec);
         EXPECT_EQ(h.state(), S::Standby);
     }},
    {"start-up: a 2-node cluster waits for all until InitDead",
     [] {
         Harness h("a", 2);
         h.start();
         h.finish(HookKind::Monitor, false);
         h.finish(HookKind::Stop, true);
         h.advance(4 * sec);
         EXPECT_EQ(h.state(), S::Initial);  // the other node has not been seen
         h.clear();
         h.advance(2 * sec);  // InitDead (5s) passes
         EXPECT_TRUE(h.noticed(NoticeKind::StartupWaitExpired));
         EXPECT_EQ(h.state(), S::Starting);  // alone, first, and a 2-node cluster needs no run-time quorum
     }},
    {"start-up: a 2-node cluster proceeds as soon as both are seen",
     [] {
         Harness h("a", 2);
         h.start();
         h.peer("b", S::Initial);
         h.finish(HookKind::Monitor, false);
         h.finish(HookKind::Stop, true);
         h.advance(1 * sec);
         EXPECT_EQ(h.state(), S::Standby);  // b still INITIAL: no election yet
         h.peer("b", S::Standby);
         EXPECT_EQ(h.state(), S::Starting);
     }},
    {"start-up: listen a whole dead time before electing, even with quorum at once",
     [] {
         Harness h("a", 3);
         h.start();
         h.peer("c", S::Standby);
         h.finish(HookKind::Monitor, false);
         h.finish(HookKind::Stop, true);
         h.advance(500 * ms);
         EXPECT_EQ(h.state(), S::Initial);
         h.peer("b", S::Running, 4);  // the active node, heard late
         h.advance(600 * ms);
         EXPECT_EQ(h.state(), S::Standby);
         EXPECT_FALSE(h.ran(HookKind::Start));
     }},
    {"election: the alphabetically first STANDBY node starts, with term above all seen",
     [] {
         Harness h("a");
         h.start();
         h.peer("b", S::Standby, 6);
         h.peer("c", S::Standby);
         h.finish(HookKind::Monitor, false);
         h.finish(HookKind::Stop, true);
         h.advance(1 * sec);
         EXPECT_EQ(h.state(), S::Starting);
         EXPECT_TRUE(h.noticed(NoticeKind::Takeover));
         EXPECT_EQ(h.node().term(), 7u);
         h.finish(HookKind::Start, true);
         EXPECT_EQ(h.state(), S::Running);
         EXPECT_EQ(h.node().active_node(), "a");
     }},
    {"election: the election order is case-insensitive",
     [] {
         Harness h("Beta");
         h.boot_to_standby({{"alpha", S::Standby}, {"Gamma", S::Standby}});
         EXPECT_EQ(h.state(), S::Standby);
         EXPECT_FALSE(h.ran(HookKind::Start));
     }},
    {"election: a node that is not first waits",
     [] {
         Harness h("b");
         h.boot_to_standby({{"a", S::Standby}, {"c", S::Standby}});
         h.advance(3 * sec);
         EXPECT_EQ(h.state(), S::Standby);
         EXPECT_FALSE(h.ran(HookKind::Start));
     }},
    {"election: an INITIAL node blocks the election",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Initial}, {"c", S::Standby}});
         EXPECT_EQ(h.state(), S::Standby);
         h.peer("b", S::Standby);
         EXPECT_EQ(h.state(), S::Starting);
     }},
    {"no fail-back: a restarted first node stays STANDBY while another runs the services",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Running, }, {"c", S::Standby}});
         h.peer("b", S::Running, 3);
         h.advance(5 * sec);
         EXPECT_EQ(h.state(), S::Standby);
         EXPECT_FALSE(h.ran(HookKind::Start));
     }},
    {"failover: the active node's silence for the dead time hands the services on",
     [] {
         Harness h("b");
         h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
         h.peer("a", S::Running, 3);
         h.silence("a");
         h.advance(900 * ms);
         EXPECT_EQ(h.state(), S::Standby);
         h.advance(200 * ms);
         EXPECT_TRUE(h.noticed(NoticeKind::PeerTimedOut));
         EXPECT_EQ(h.state(), S::Starting);
         EXPECT_EQ(h.node().term(), 4u);
     }},
    {"TERM grace: peers keep seeing STOPPING until the dead time, then take over",
     [] {
         Harness h("b");
         h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
         h.peer("a", S::Stopping, 2);
         h.silence("a");  // a exited announcing STOPPING
         h.advance(900 * ms);
         EXPECT_EQ(h.state(), S::Standby);
         h.advance(200 * ms);
         EXPECT_EQ(h.state(), S::Starting);
     }},
    {"ERRORED latch: a failing start stops the services, announcing STOPPING, then ERRORED",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, false);
         EXPECT_EQ(h.state(), S::Stopping);
         EXPECT_TRUE(h.noticed(NoticeKind::HookFailed));
         EXPECT_TRUE(h.ran(HookKind::Stop));
         EXPECT_TRUE(h.last_heartbeat()->flags & wire::kFlagErrorLatched);
         h.finish(HookKind::Stop, true);
         EXPECT_EQ(h.state(), S::Errored);
         EXPECT_EQ(h.node().last_error(), "starthasrv exited with status 1");
     }},
    {"target mode: messages name the target, not the hasrv scripts",
     [] {
         Harness h("a");
         h.settings().groups.front().services_target = "freeha-services.target";
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, true);
         EXPECT_EQ(h.state(), S::Running);
         EXPECT_EQ(h.last_change()->reason, "the start of freeha-services.target succeeded");
         h.advance(2 * sec);
         h.finish(HookKind::Monitor, false, "unit web.service is failed");
         h.finish(HookKind::Stop, true);
         EXPECT_EQ(h.node().last_error(), "the check of freeha-services.target failed: unit web.service is failed");
     }},
    {"standby kept from before a restart: the node never claims and says so in its first heartbeat",
     [] {
         Harness h("a");
         h.settings().groups.front().services_target = "";
         h.start_in_standby();
         EXPECT_TRUE(h.last_heartbeat()->flags & wire::kFlagStandby);
         h.peer("b", S::Standby);
         h.peer("c", S::Standby);
         h.finish(HookKind::Monitor, false);
         h.finish(HookKind::Stop, true);
         h.advance(3 * sec);
         EXPECT_EQ(h.state(), S::Standby);
         EXPECT_FALSE(h.ran(HookKind::Start));
         h.command(Command::Unstandby);
         h.advance(1 * sec);
         EXPECT_EQ(h.state(), S::Starting);
     }},
    {"ERRORED latch: a failing monitor stops the services and the node stays ERRORED",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, true);
         h.clear();
         h.advance(2 * sec);  // MonitorInterval
         EXPECT_TRUE(h.ran(HookKind::Monitor));
         h.finish(HookKind::Monitor, false);
         EXPECT_EQ(h.state(), S::Stopping);
         h.finish(HookKind::Stop, true);
         EXPECT_EQ(h.state(), S::Errored);
         h.clear();
         h.silence("b");
         h.silence("c");
         h.peer("d", S::Standby);
         h.advance(30 * sec);  // never restarts services by itself
         EXPECT_EQ(h.state(), S::Errored);
         EXPECT_FALSE(h.ran(HookKind::Start));
         EXPECT_FALSE(h.ran(HookKind::Monitor));
     }},
    {"SIGUSR2 clears the latch: ERRORED -> STANDBY, and the first node is elected again",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, false);
         h.finish(HookKind::Stop, true);
         ASSERT_EQ(h.state(), S::Errored);
         h.command(Command::ClearError);
         EXPECT_FALSE(h.node().error_latched());
         EXPECT_EQ(h.state(), S::Starting);  // STANDBY, first, nobody running
     }},
    {"SIGUSR2 with another node active: STANDBY and no fail-back",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, false);
         h.finish(HookKind::Stop, true);
         h.peer("b", S::Running, 2);
         h.command(Command::ClearError);
         EXPECT_EQ(h.state(), S::Standby);
     }},
    {"SIGUSR1 forces a start without checking peers and clears the latch",
     [] {
         Harness h("c");
         h.boot_to_standby({{"a", S::Standby}, {"b", S::Standby}});
         h.peer("a", S::Running, 5);
         h.command(Command::ForceStart);
         EXPECT_EQ(h.state(), S::Starting);
         EXPECT_EQ(h.node().term(), 6u);  // above a's: a will step down
     }},
    {"SIGUSR1 from ERRORED",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, false);
         h.finish(HookKind::Stop, true);
         h.command(Command::ForceStart);
         EXPECT_EQ(h.state(), S::Starting);
         EXPECT_FALSE(h.node().error_latched());
     }},
    {"SIGUSR1 while stopping: start again once the stop is done",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, true);
         h.command(Command::Stop);
         h.command(Command::ForceStart);
         EXPECT_EQ(h.state(), S::Stopping);
         h.clear();
         h.finish(HookKind::Stop, true);
         EXPECT_EQ(h.state(), S::Starting);
     }},
    {"SIGHUP on the first node: stop, back to STANDBY, and it is elected again",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, true);
         h.clear();
         h.command(Command::Stop);
         EXPECT_EQ(h.state(), S::Stopping);
         EXPECT_TRUE(h.ran(HookKind::Stop));
         h.finish(HookKind::Stop, true);
         EXPECT_EQ(h.state(), S::Starting);  // FreeHA: "possibly a waste of your time"
         EXPECT_EQ(h.node().term(), 2u);
     }},
    {"a failed stophasrv: kill whatever is left, then clean up once more, then STANDBY",
     [] {
         Harness h("b");
         h.confirm_kills(false);
         h.boot_to_standby({{"a", S::Errored}, {"c", S::Standby}});
         h.finish(HookKind::Start, true);
         h.peer("a", S::Standby);
         h.command(Command::Stop);
         h.clear();
         h.finish(HookKind::Stop, false, "exited with status 1");
         EXPECT_TRUE(h.killed());  // the services may still run: never release the voters first
         EXPECT_EQ(h.node().phase(), Phase::StoppingKilled);
         EXPECT_EQ(h.state(), S::Stopping);
         EXPECT_TRUE(h.noticed(NoticeKind::HookFailed));
         h.services_killed();
         EXPECT_EQ(h.node().phase(), Phase::StoppingCleanup);
         EXPECT_TRUE(h.ran(HookKind::Stop));
         h.finish(HookKind::Stop, false, "exited with status 1");  // the clean-up's status is only logged
         EXPECT_EQ(h.state(), S::Standby);
     }},
    {"SIGHUP on a later node: stop; the first node takes over",
     [] {
         Harness h("b");
         h.boot_to_standby({{"a", S::Errored}, {"c", S::Standby}});
         EXPECT_EQ(h.state(), S::Starting);
         h.finish(HookKind::Start, true);
         h.peer("a", S::Standby);
         h.command(Command::Stop);
         h.finish(HookKind::Stop, true);
         EXPECT_EQ(h.state(), S::Standby);
         EXPECT_FALSE(h.node().error_latched());
     }},
    {"SIGHUP while monitoring: the monitor is canceled, then stophasrv runs",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, true);
         h.advance(2 * sec);
         ASSERT_EQ(h.node().running_hook(), HookKind::Monitor);
         h.clear();
         h.command(Command::Stop);
         EXPECT_TRUE(h.canceled(HookKind::Monitor));
         EXPECT_FALSE(h.ran(HookKind::Stop));
         h.finish(HookKind::Monitor, false, "canceled");
         EXPECT_TRUE(h.ran(HookKind::Stop));
         EXPECT_FALSE(h.node().error_latched());  // a canceled hook's result means nothing
     }},
    {"SIGHUP on a STANDBY node does nothing",
     [] {
         Harness h("b");
         h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
         h.clear();
         h.command(Command::Stop);
         EXPECT_EQ(h.state(), S::Standby);
         EXPECT_TRUE(h.hooks_run().empty());
     }},
    {"SIGTERM while RUNNING: stop, exit still announcing STOPPING",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, true);
         h.command(Command::Shutdown);
         EXPECT_EQ(h.state(), S::Stopping);
         EXPECT_FALSE(h.exited());
         h.clear();
         h.finish(HookKind::Stop, true);
         EXPECT_EQ(h.exited(), 0);
         EXPECT_EQ(h.last_heartbeat()->state, S::Stopping);
         EXPECT_EQ(h.state(), S::Stopping);
     }},
    {"SIGTERM while STANDBY: exit at once, announcing STOPPING",
     [] {
         Harness h("b");
         h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
         h.clear();
         h.command(Command::Shutdown);
         EXPECT_EQ(h.exited(), 0);
         EXPECT_EQ(h.last_heartbeat()->state, S::Stopping);
         EXPECT_TRUE(h.hooks_run().empty());
     }},
    {"SIGTERM while the claim waits for a majority: nothing ran, exit at once",
     [] {
         Harness h("a");
         h.withhold("b");
         h.withhold("c");
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         ASSERT_EQ(h.node().phase(), Phase::StartingPending);
         EXPECT_FALSE(h.ran(HookKind::Start));
         h.clear();
         h.command(Command::Shutdown);
         EXPECT_TRUE(h.hooks_run().empty());
         EXPECT_EQ(h.exited(), 0);
     }},
    {"SIGTERM during starthasrv: cancel it, run stophasrv, exit",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         ASSERT_EQ(h.state(), S::Starting);
         h.await_start();
         ASSERT_TRUE(h.ran(HookKind::Start));
         h.clear();
         h.command(Command::Shutdown);
         EXPECT_TRUE(h.canceled(HookKind::Start));
         h.finish(HookKind::Start, false, "canceled");
         EXPECT_TRUE(h.ran(HookKind::Stop));
         h.finish(HookKind::Stop, true);
         EXPECT_EQ(h.exited(), 0);
     }},
    {"-m forces a start at launch without the probe or peers",
     [] {
         Harness h("z");
         h.start(true);
         EXPECT_EQ(h.hooks_run(), std::vector{HookKind::Start});
         EXPECT_EQ(h.state(), S::Starting);
     }},
    {"quorum: a lone node of a 3-node cluster never starts services",
     [] {
         Harness h("a", 3);
         h.start();
         h.finish(HookKind::Monitor, false);
         h.finish(HookKind::Stop, true);
         h.advance(60 * sec);
         EXPECT_EQ(h.state(), S::Standby);
         EXPECT_FALSE(h.node().quorate());
         EXPECT_FALSE(h.ran(HookKind::Start));
     }},
    {"quorum: losing it stops the services (NoQuorumPolicy=stop)",
     [] {
         Harness h("a", 3);
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, true);
         h.silence("b");
         h.advance(2 * sec);
         EXPECT_EQ(h.state(), S::Running);  // 2 of 3 still quorate
         h.silence("c");
         h.advance(2 * sec);
         EXPECT_TRUE(h.noticed(NoticeKind::QuorumLost));
         EXPECT_EQ(h.state(), S::Stopping);
     }},
    {"quorum: NoQuorumPolicy=ignore keeps the services",
     [] {
         Harness h("a", 3);
         h.settings().no_quorum_policy = NoQuorumPolicy::Ignore;
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, true);
         h.silence("b");
         h.silence("c");
         h.advance(3 * sec);
         EXPECT_EQ(h.state(), S::Running);
     }},
    {"terms: a RUNNING node yields to a RUNNING peer with a higher term",
     [] {
         Harness h("a", 3);
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, true);
         h.peer("c", S::Running, 9);
         EXPECT_TRUE(h.noticed(NoticeKind::DualActiveResolved));
         EXPECT_EQ(h.state(), S::Stopping);
         h.finish(HookKind::Stop, true);
         EXPECT_EQ(h.state(), S::Standby);
     }},
    {"terms: the same term and an earlier name wins",
     [] {
         Harness h("b", 3);
         h.boot_to_standby({{"a", S::Errored}, {"c", S::Standby}});
         h.finish(HookKind::Start, true);
         ASSERT_EQ(h.node().term(), 1u);
         h.peer("c", S::Running, 1);
         EXPECT_EQ(h.state(), S::Running);  // c is later: b keeps the services
         h.peer("a", S::Starting, 1);
         EXPECT_EQ(h.state(), S::Stopping);  // a is earlier: b yields
     }},
    {"terms: a lower term never wins",
     [] {
         Harness h("b", 3);
         h.boot_to_standby({{"a", S::Errored}, {"c", S::Standby}});
         h.finish(HookKind::Start, true);
         h.peer("a", S::Running, 0);  // e.g. found its services at start-up
         EXPECT_EQ(h.state(), S::Running);
     }},
    {"a hanging monitor never stops the heartbeats; its timeout latches the error",
     [] {
         Harness h("a", 3);
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, true);
         h.advance(2 * sec);
         ASSERT_EQ(h.node().running_hook(), HookKind::Monitor);
         h.clear();
         h.advance(30 * sec);  // the monitor hangs all along
         EXPECT_GE(h.heartbeats_sent(), 149);  // every 200ms
         h.finish(HookKind::Monitor, false, "timed out after 30s");
         EXPECT_EQ(h.state(), S::Stopping);
         h.finish(HookKind::Stop, true);
         EXPECT_EQ(h.state(), S::Errored);
         EXPECT_EQ(h.node().last_error(), "monitorhasrv timed out after 30s");
     }},
    {"an arbitrator votes but never runs a hook or the services",
     [] {
         Harness h("a", 3);
         h.settings().role = Role::Arbitrator;
         h.start();
         EXPECT_TRUE(h.hooks_run().empty());
         h.peer("b", S::Standby);
         h.peer("c", S::Standby);
         h.advance(10 * sec);
         EXPECT_EQ(h.state(), S::Standby);
         EXPECT_TRUE(h.hooks_run().empty());
         EXPECT_EQ(h.last_heartbeat()->role, Role::Arbitrator);
     }},
    {"standby on the active node: stop, announce the flag, never elected; unstandby makes it eligible again",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, true);
         h.command(Command::Standby);
         EXPECT_EQ(h.state(), S::Stopping);
         h.finish(HookKind::Stop, true);
         EXPECT_EQ(h.state(), S::Standby);
         EXPECT_TRUE(h.node().standby());
         EXPECT_TRUE(h.last_heartbeat()->flags & wire::kFlagStandby);
         h.advance(5 * sec);
         EXPECT_EQ(h.state(), S::Standby);
         h.clear();
         h.command(Command::Unstandby);
         EXPECT_FALSE(h.node().standby());
         EXPECT_EQ(h.state(), S::Starting);  // the scripted peers still wait in STANDBY
     }},
    {"a node that lacks an Address= device stands aside as in standby, unsaved, and claims once it is there",
     [] {
         Harness h("a");
         h.start();
         h.unavailable("Address=192.0.2.10/24 eth1: eth1 does not exist");
         h.peer("b", S::Standby);
         h.peer("c", S::Standby);
         h.finish(HookKind::Monitor, false);
         h.finish(HookKind::Stop, true);
         h.advance(5 * sec);
         EXPECT_EQ(h.state(), S::Standby);  // the first node, never elected
         EXPECT_TRUE(h.last_heartbeat()->flags & wire::kFlagStandby);  // so b is elected instead
         EXPECT_FALSE(h.node().standby());  // not the admin's standby
         EXPECT_EQ(h.node().status(h.now()).unavailable, "Address=192.0.2.10/24 eth1: eth1 does not exist");
         h.clear();
         h.unavailable("");
         EXPECT_FALSE(h.last_heartbeat()->flags & wire::kFlagStandby);  // at once, not at the next interval
         EXPECT_EQ(h.state(), S::Starting);
         EXPECT_EQ(h.node().status(h.now()).unavailable, "");
     }},
    {"standby on a STANDBY node only announces the flag",
     [] {
         Harness h("b");
         h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
         h.clear();
         h.command(Command::Standby);
         EXPECT_EQ(h.state(), S::Standby);
         EXPECT_TRUE(h.hooks_run().empty());
         EXPECT_TRUE(h.last_heartbeat()->flags & wire::kFlagStandby);
     }},
    {"switchover to a named node: stop, announce it until it runs the services",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, true);
         EXPECT_EQ(h.switchover("c"), "");
         EXPECT_EQ(h.state(), S::Stopping);
         EXPECT_EQ(h.last_heartbeat()->handover_to, "c");
         h.finish(HookKind::Stop, true);
         EXPECT_EQ(h.state(), S::Standby);  // not elected: it is the one handing over
         h.advance(500 * ms);
         EXPECT_EQ(h.state(), S::Standby);
         h.peer("c", S::Running, 2);
         h.clear();
         h.advance(300 * ms);
         EXPECT_EQ(h.node().handover_to(), "");
         EXPECT_EQ(h.last_heartbeat()->handover_to, "");
     }},
    {"switchover that nobody takes: after two dead times the node is eligible again",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, true);
         EXPECT_EQ(h.switchover(""), "");
         EXPECT_EQ(h.node().handover_to(), "b");  // the next node the rule would pick
         h.finish(HookKind::Stop, true);
         h.advance(1 * sec);
         EXPECT_EQ(h.state(), S::Standby);
         h.advance(1500 * ms);
         EXPECT_EQ(h.state(), S::Starting);
     }},
    {"switchover seen by peers: the named node is elected, an earlier name defers",
     [] {
         Harness c("c");
         c.boot_to_standby({{"a", S::Running}, {"b", S::Standby}});
         c.handing_over("a", S::Stopping, "c");
         EXPECT_EQ(c.state(), S::Standby);
         c.handing_over("a", S::Standby, "c");
         EXPECT_EQ(c.state(), S::Starting);
         Harness b("b");
         b.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
         b.handing_over("a", S::Standby, "c");
         EXPECT_EQ(b.state(), S::Standby);
     }},
    {"switchover refusals name the reason and change nothing",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Errored}, {"c", S::Standby}});
         EXPECT_NE(h.switchover("c").find("does not run the services"), std::string::npos);
         h.finish(HookKind::Start, true);
         EXPECT_NE(h.switchover("zed").find("not a reachable node"), std::string::npos);
         EXPECT_NE(h.switchover("b").find("ERRORED"), std::string::npos);
         EXPECT_NE(h.switchover("a").find("already runs"), std::string::npos);
         h.peer("c", S::Standby, 0, Role::Member, wire::kFlagStandby);
         EXPECT_NE(h.switchover("").find("no other node"), std::string::npos);
         EXPECT_EQ(h.state(), S::Running);
     }},
    {"a unit of the services failing while RUNNING acts as a failing monitor",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.services_failed("unit x.service failed");
         EXPECT_EQ(h.state(), S::Starting);  // not running yet: the start job decides
         h.finish(HookKind::Start, true);
         h.clear();
         h.services_failed("unit x.service failed");
         EXPECT_TRUE(h.noticed(NoticeKind::HookFailed));
         EXPECT_EQ(h.state(), S::Stopping);
         EXPECT_TRUE(h.node().error_latched());
         h.finish(HookKind::Stop, true);
         EXPECT_EQ(h.state(), S::Errored);
         EXPECT_EQ(h.node().last_error(), "unit x.service failed");
     }},
    {"reconfigure: a larger expected node count can cost quorum, and the services stop",
     [] {
         Harness h("a");
         h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
         h.finish(HookKind::Start, true);
         NodeSettings s = h.settings();
         s.expected_nodes = 7;
         h.reconfigure(s);
         EXPECT_FALSE(h.node().quorate());
         EXPECT_EQ(h.state(), S::Stopping);
     }},
};

INSTANTIATE_TEST_SUITE_P(FreeHA, NodeRules, ::testing::ValuesIn(kConversations),
                         [](const auto& info) { return "Rule" + std::to_string(info.index); });

// --- the receive path -------------------------------------------------------

void Harness::claim_after_a_fell_silent() {
    withhold("c");
    boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
    peer("a", S::Running, 3);
    silence("a");
    advance(settings_.dead_time);
}

TEST(NodeReceive, GarbageIsCountedAndChangesNothing) {
    Harness h("b");
    h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
    h.clear();
    std::vector<std::uint8_t> junk{'F', 'H', 'A', '1', 9};
    Effects e = h.node().on_datagram(junk, 0, h.now());
    EXPECT_TRUE(e.empty());
    EXPECT_EQ(h.node().counters().malformed[static_cast<int>(wire::Reject::TooShort)], 1u);
    EXPECT_EQ(h.state(), S::Standby);
}

TEST(NodeReceive, ForeignClustersOwnEchoesAndDuplicatesAreCounted) {
    Harness h("b");
    h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
    wire::Heartbeat hb;
    hb.cluster_id = cluster_id("other");
    hb.node = "x";
    h.node().on_datagram(wire::encode(hb), 0, h.now());
    EXPECT_EQ(h.node().counters().foreign_cluster, 1u);
    EXPECT_EQ(h.node().membership().peers().count("x"), 0u);

    hb.cluster_id = cluster_id("test");
    hb.node = "b";
    hb.incarnation = 100;  // our own
    h.node().on_datagram(wire::encode(hb), 0, h.now());
    EXPECT_EQ(h.node().counters().own, 1u);
    hb.incarnation = 555;  // another daemon calling itself b
    Effects e = h.node().on_datagram(wire::encode(hb), 0, h.now());
    EXPECT_EQ(h.node().counters().duplicate_name, 1u);
    ASSERT_EQ(e.size(), 1u);
    EXPECT_EQ(std::get<effect::Notice>(e[0]).kind, NoticeKind::DuplicateNodeName);
}

TEST(NodeReceive, AnOlderIncarnationOfAPeerIsIgnored) {
    Harness h("b");
    h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
    wire::Heartbeat hb;
    hb.cluster_id = cluster_id("test");
    hb.node = "a";
    hb.incarnation = 0;  // older than the 1 the harness uses
    hb.state = S::Standby;
    h.node().on_heartbeat(hb, 0, h.now());
    EXPECT_EQ(h.node().counters().stale_incarnation, 1u);
    EXPECT_EQ(h.node().membership().peers().at("a").announced(), S::Running);
}

TEST(NodeReceive, EveryChannelKeepsAPeerAliveAndIsTrackedApart) {
    Harness h("b");
    h.settings().channel_count = 2;
    h.start();
    wire::Heartbeat hb;
    hb.cluster_id = cluster_id("test");
    hb.node = "a";
    hb.incarnation = 1;
    hb.state = S::Standby;
    h.node().on_heartbeat(hb, 1, h.now());
    const Peer& p = h.node().membership().peers().at("a");
    EXPECT_FALSE(p.channel_last_heard[0].has_value());
    EXPECT_EQ(p.channel_last_heard[1], h.now());
}

TEST(NodeReceive, APeersArrivalIsOneLineAndOnlyARealChangeOfStateIsAnother) {
    Harness h("b");
    h.start();
    auto lines = [](const Effects& effects) {
        std::vector<std::string> out;
        for (const auto& e : effects) {
            if (auto* n = std::get_if<effect::Notice>(&e); n && n->kind == NoticeKind::PeerJoined)
                out.push_back("joined " + n->peer + " (" + n->text + ")");
            if (auto* c = std::get_if<effect::PeerStateChanged>(&e))
                out.push_back(c->peer + " " + std::string(to_string(c->from)) + " -> " + std::string(to_string(c->to)));
        }
        return out;
    };
    wire::Heartbeat hb;
    hb.cluster_id = cluster_id("test");
    hb.node = "a";
    hb.incarnation = 1;
    hb.sequence = 1;
    hb.state = S::Initial;
    // No second "INITIAL -> INITIAL" line beside the arrival (a 64-node start-up logged thousands).
    EXPECT_EQ(lines(h.node().on_heartbeat(hb, 0, h.now())), std::vector<std::string>{"joined a (INITIAL)"});
    hb.sequence = 2;
    EXPECT_TRUE(lines(h.node().on_heartbeat(hb, 0, h.now())).empty());
    hb.sequence = 3;
    hb.state = S::Standby;
    EXPECT_EQ(lines(h.node().on_heartbeat(hb, 0, h.now())), std::vector<std::string>{"a INITIAL -> STANDBY"});
    // A node that arrives holding the services: its state and term, in one line.
    hb.node = "c";
    hb.state = S::Running;
    hb.term = 4;
    EXPECT_EQ(lines(h.node().on_heartbeat(hb, 0, h.now())), std::vector<std::string>{"joined c (RUNNING, term 4)"});
}

// --- authentication and replays ----------------------------------------------

namespace {

const std::vector<std::uint8_t> kKey(32, 0x5a);

wire::Heartbeat heartbeat_of(const std::string& name, S state, std::uint64_t sequence, std::uint64_t incarnation = 1) {
    wire::Heartbeat hb;
    hb.cluster_id = cluster_id("test");
    hb.node = name;
    hb.state = state;
    hb.sequence = sequence;
    hb.incarnation = incarnation;
    return hb;
}

std::vector<std::uint8_t> signed_with(const std::vector<std::uint8_t>& key, const wire::Heartbeat& hb) {
    auto datagram = wire::encode(hb);
    auth::sign(datagram, key);
    return datagram;
}

}  // namespace

TEST(NodeAuth, WithAKeyOnlyCorrectlySignedHeartbeatsAreAdmitted) {
    Harness h("b");
    h.settings().auth_keys = auth::KeySet::copy_of({kKey});
    h.start();
    h.receive(wire::encode(heartbeat_of("a", S::Standby, 1)));
    EXPECT_EQ(h.node().counters().unauthenticated, 1u);
    h.receive(signed_with(std::vector<std::uint8_t>(32, 0x11), heartbeat_of("a", S::Standby, 2)));
    EXPECT_EQ(h.node().counters().bad_signature, 1u);
    auto tampered = signed_with(kKey, heartbeat_of("a", S::Standby, 3));
    tampered[56] = static_cast<std::uint8_t>(S::Running);  // the state byte, after signing
    h.receive(tampered);
    EXPECT_EQ(h.node().counters().bad_signature, 2u);
    EXPECT_EQ(h.node().membership().peers().count("a"), 0u);

    h.receive(signed_with(kKey, heartbeat_of("a", S::Standby, 4)));
    EXPECT_EQ(h.node().counters().accepted, 1u);
    EXPECT_EQ(h.node().membership().peers().count("a"), 1u);
}

TEST(NodeAuth, OwnHeartbeatsAreSignedSoThatAPeerWithTheKeyVerifiesThem) {
    Harness h("b");
    h.settings().auth_keys = auth::KeySet::copy_of({kKey});
    h.start();
    Effects e = h.node().on_timer(h.now() + h.settings().interval);
    const effect::SendHeartbeat* sent = nullptr;
    for (auto& x : e)
        if (auto* s = std::get_if<effect::SendHeartbeat>(&x)) sent = s;
    ASSERT_NE(sent, nullptr);
    auto decoded = wire::decode(sent->datagram);
    ASSERT_TRUE(decoded.decoded);
    EXPECT_TRUE(auth::verify(*decoded.decoded, kKey));
    EXPECT_FALSE(auth::verify(*decoded.decoded, std::vector<std::uint8_t>(40, 0x5a)));
}

TEST(NodeReplay, ASequenceNumberIsAcceptedOncePerChannelAndTooOldOnesNever) {
    Harness h("b");
    h.settings().channel_count = 2;
    h.start();
    auto first = wire::encode(heartbeat_of("a", S::Standby, 100));
    h.receive(first, 0);
    h.receive(first, 0);  // a replay on the same channel
    EXPECT_EQ(h.node().counters().replayed, 1u);
    h.receive(first, 1);  // the same heartbeat over the second channel: redundancy, not a replay
    EXPECT_EQ(h.node().counters().replayed, 1u);
    EXPECT_EQ(h.node().counters().accepted, 2u);
    h.receive(wire::encode(heartbeat_of("a", S::Standby, 100 + ReplayWindow::kSize - 1)), 0);
    h.receive(wire::encode(heartbeat_of("a", S::Standby, 101)), 0);  // out of order, but inside the window
    EXPECT_EQ(h.node().counters().replayed, 1u);
    h.receive(wire::encode(heartbeat_of("a", S::Running, 99)), 0);  // fell out of the window
    EXPECT_EQ(h.node().counters().replayed, 2u);
    EXPECT_EQ(h.node().membership().peers().at("a").announced(), S::Standby);
}

TEST(NodeReplay, ReplayedHeartbeatsOfADeadPeerDoNotKeepItAlive) {
    Harness h("b");
    h.settings().channel_count = 2;
    h.start();
    std::vector<std::vector<std::uint8_t>> captured;
    for (std::uint64_t seq = 1; seq <= 20; ++seq) {
        captured.push_back(wire::encode(heartbeat_of("a", S::Running, seq)));
        h.receive(captured.back(), 0);
    }
    // a dies; an attacker replays everything, on both channels, for longer than the dead time.
    for (int round = 0; round < 8; ++round) {
        h.advance(h.settings().interval);
        for (const auto& d : captured) {
            h.receive(d, 0);
            h.receive(d, 1);
        }
    }
    EXPECT_FALSE(h.node().membership().peers().at("a").reachable());
    EXPECT_EQ(h.node().counters().replayed, 8u * 20u + 7u * 20u);  // channel 1 took each copy once
}

TEST(NodeReplay, AnOlderIncarnationIsAReplayAndANewerOneStartsAFreshWindow) {
    Harness h("b");
    h.start();
    h.receive(wire::encode(heartbeat_of("a", S::Running, 50, 7)));
    h.receive(wire::encode(heartbeat_of("a", S::Standby, 51, 6)));
    EXPECT_EQ(h.node().counters().stale_incarnation, 1u);
    h.receive(wire::encode(heartbeat_of("a", S::Initial, 1, 8)));  // restarted: its sequence starts over
    EXPECT_EQ(h.node().membership().peers().at("a").announced(), S::Initial);
    EXPECT_EQ(h.node().counters().replayed, 0u);
}

TEST(NodeIncarnation, GrowsAcrossRestartsWhateverTheWallClockDid) {
    constexpr std::uint64_t hour = 3600ULL * kUsecPerSec.count();
    for (bool authenticated : {false, true}) {
        std::uint64_t first = next_incarnation(std::nullopt, 1000 * hour, authenticated);
        EXPECT_EQ(first, 1000 * hour);
        EXPECT_GT(next_incarnation(first, 999 * hour, authenticated), first);  // the clock was set back an hour
        EXPECT_EQ(next_incarnation(first, 1001 * hour, authenticated), 1001 * hour);
        // Set back a day less a minute: still within what peers accept.
        EXPECT_EQ(next_incarnation(first, first - 23 * hour - hour / 60 * 59, authenticated), first + 1);
    }
}

// Taken while the clock ran more than a day ahead: peers without a key
// refuse it, so the clock decides again once it is right; with a key they
// accept it, and the counter only grows (a lower one would be a replay).
TEST(NodeIncarnation, OneTakenWhileTheClockRanADayAheadIsGivenUpOnlyWithoutAKey) {
    constexpr std::uint64_t hour = 3600ULL * kUsecPerSec.count();
    struct Case {
        std::uint64_t stored_ahead;
        bool authenticated;
        std::uint64_t expected;  // relative to the clock (1000 hours)
    };
    const std::uint64_t now = 1000 * hour;
    for (const Case& c : {Case{48 * hour, false, now}, Case{24 * hour + 1, false, now},
                          Case{24 * hour, false, now + 24 * hour + 1}, Case{48 * hour, true, now + 48 * hour + 1}}) {
        SCOPED_TRACE(testing::Message() << "stored " << c.stored_ahead << "us ahead, authenticated " << c.authenticated);
        EXPECT_EQ(next_incarnation(now + c.stored_ahead, now, c.authenticated), c.expected);
    }
}

// --- quorum, leases and fencing ---------------------------------------------

TEST(NodeQuorum, BackFromAPartitionANodeListensADeadTimeBeforeElecting) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    h.silence("b");
    h.silence("c");
    h.advance(h.settings().dead_time);
    h.finish_stops();
    ASSERT_EQ(h.state(), S::Standby);  // cut off: it stopped; b took over on the other side
    h.advance(5 * sec);
    h.clear();
    h.peer("c", S::Standby, 5);  // c is heard first again: quorum is back, b not heard yet
    ASSERT_TRUE(h.node().quorate());
    h.advance(h.settings().dead_time - h.settings().interval);
    EXPECT_EQ(h.state(), S::Standby);  // still listening
    h.peer("b", S::Running, 5);
    h.advance(3 * sec);
    EXPECT_EQ(h.state(), S::Standby);  // b keeps the services: no move on healing
    EXPECT_FALSE(h.ran(HookKind::Start));
}

TEST(NodeQuorum, BackFromAPartitionWithNobodyHoldingTheServicesANodeIsElectedAfterListening) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    h.silence("b");
    h.silence("c");
    h.advance(h.settings().dead_time);
    h.finish_stops();
    h.advance(5 * sec);
    h.peer("c", S::Standby);
    h.advance(h.settings().dead_time - h.settings().interval);
    EXPECT_EQ(h.state(), S::Standby);
    h.advance(h.settings().interval);
    EXPECT_EQ(h.state(), S::Starting);
}

TEST(NodeQuorum, APeerThatDoesNotHearThisNodeDoesNotCountTowardsQuorum) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    ASSERT_EQ(h.state(), S::Running);
    h.deaf("b");
    EXPECT_TRUE(h.node().quorate());  // c still hears a: 2 of 3
    h.deaf("c");
    EXPECT_FALSE(h.node().quorate());
    EXPECT_EQ(h.state(), S::Running);  // its lease still runs: no voter can back another claim yet
    h.advance(h.settings().dead_time);  // peers that do not hear it cannot renew it
    EXPECT_EQ(h.state(), S::Stopping);
}

TEST(NodeLease, AClaimStartsAsSoonAsAMajorityBacksItAndNotBefore) {
    Harness h("a", 4);  // quorum is 3: a and two backers
    h.withhold("c");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    ASSERT_EQ(h.node().phase(), Phase::StartingPending);
    EXPECT_EQ(h.last_heartbeat()->state, S::Starting);  // announced at once
    EXPECT_TRUE(h.last_heartbeat()->flags & wire::kFlagClaimPending);
    h.advance(5 * sec);  // b backs it, c never does: 2 of 4 is no majority
    EXPECT_FALSE(h.ran(HookKind::Start));
    EXPECT_FALSE(h.node().lease());
    h.peer("d", S::Standby);  // a third backer
    h.advance(h.settings().interval);
    EXPECT_TRUE(h.ran(HookKind::Start));
    EXPECT_EQ(h.node().phase(), Phase::StartingHook);
    EXPECT_FALSE(h.last_heartbeat()->flags & wire::kFlagClaimPending);
    ASSERT_TRUE(h.node().lease());
    EXPECT_GT(*h.node().lease(), h.now() + h.settings().dead_time / 2);
}

// A grant is on the clock of the claimant's run it names: one to an earlier
// run of this node (replayed, or late: its clock may have started over since)
// must not back this run's claim.
TEST(NodeLease, AGrantBacksOnlyTheClaimantIncarnationItNames) {
    struct Case {
        const char* what;
        std::optional<std::int64_t> names;  // relative to this run's incarnation; nullopt: names none
        bool counts;
    };
    for (const Case& c : {Case{"this run", 0, true}, Case{"an earlier run", -1, false},
                          Case{"a later run", 1, false}, Case{"no run (an older version)", std::nullopt, true}}) {
        SCOPED_TRACE(c.what);
        Harness h("b");
        h.claim_after_a_fell_silent();
        ASSERT_EQ(h.node().phase(), Phase::StartingPending);
        wire::Heartbeat hb = heartbeat_of("d", S::Standby, 1000);
        hb.term = h.node().term();
        hb.claimant = "b";
        hb.grant = promise_grant(Usec(h.last_heartbeat()->sent_at), h.settings().dead_time).count();
        hb.heard = {node_id("b")};
        if (c.names) hb.claimant_incarnation = h.settings().incarnation + *c.names;
        h.node().on_heartbeat(hb, 0, h.now());
        EXPECT_EQ(h.node().lease().has_value(), c.counts);
    }
}

// Versions before kFlagClaimantIncarnation reject it as an unknown flag: a
// node names the claimant's incarnation only while every peer it hears does.
TEST(NodeLease, TheClaimantIncarnationIsSentOnlyWhileEveryPeerSendsIt) {
    Harness h("b");
    h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
    h.clear();
    h.advance(h.settings().interval);
    ASSERT_TRUE(h.last_heartbeat());
    EXPECT_EQ(h.last_heartbeat()->claimant, "a");
    EXPECT_EQ(h.last_heartbeat()->claimant_incarnation, std::optional<std::uint64_t>(1));  // a's
    wire::Heartbeat older = heartbeat_of("d", S::Standby, 1);  // names no claimant's incarnation
    older.version = older.understands = wire::kPreviousVersion;
    older.heard = {node_id("b")};
    h.node().on_heartbeat(older, 0, h.now());
    h.clear();
    h.advance(h.settings().interval);
    ASSERT_TRUE(h.last_heartbeat());
    EXPECT_FALSE(h.last_heartbeat()->claimant_incarnation);
}

TEST(NodeLease, OnlyGrantsToThisClaimCountAndEachIsTakenAsTheVoterStatesIt) {
    Harness h("b");
    h.withhold("c");  // keeps b quorate, backs nothing
    h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
    h.peer("a", S::Running, 3);
    h.silence("a");
    h.advance(h.settings().dead_time);
    ASSERT_EQ(h.node().phase(), Phase::StartingPending);
    std::uint64_t mine = h.node().term();
    std::uint64_t seq = 1000;
    auto c_says = [&](const std::string& claimant, std::uint64_t term, std::uint64_t grant) {
        wire::Heartbeat hb = heartbeat_of("d", S::Standby, ++seq);
        hb.term = term;
        hb.claimant = claimant;
        hb.grant = grant;
        hb.heard = {node_id("b")};
        h.node().on_heartbeat(hb, 0, h.now());
    };
    std::uint64_t claim_heartbeat = h.last_heartbeat()->sent_at;
    c_says("zed", mine, claim_heartbeat);      // credits another claimant
    c_says("b", mine - 1, claim_heartbeat);    // an older claim of ours
    c_says("b", mine, claim_heartbeat - 1);    // ends before this claim was made
    c_says("b", mine, 0);                      // names the claim, but promises nothing
    c_says("b", mine, (h.now() + kMaxDeadTime + 1 * sec).count());  // beyond any promise: forged or broken
    EXPECT_FALSE(h.node().lease());
    EXPECT_EQ(h.node().running_hook(), std::nullopt);
    // A voter whose DeadTime= is shorter than ours (a reload, a mismatched
    // file) grants less: the lease is what it states, not our own DeadTime.
    Usec short_promise = promise_grant(Usec(claim_heartbeat), h.settings().dead_time / 4);
    c_says("b", mine, short_promise.count());
    ASSERT_TRUE(h.node().lease());
    EXPECT_EQ(*h.node().lease(), short_promise);
}

TEST(NodeLease, TheHolderStopsGracefullyWithFenceTimeoutLeftAndKillsAtTheEnd) {
    Harness h("a");
    h.confirm_kills(false);
    h.settings().fence_timeout = 400 * ms;
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    ASSERT_EQ(h.state(), S::Running);
    h.silence("b");
    h.silence("c");  // no more acknowledgements: the lease is what the last ones granted
    Usec lease = *h.node().lease();
    LeaseTimings t = lease_timings(h.settings());
    h.clear();
    h.advance(graceful_stop_at(lease, t) - h.now() - 1 * ms);
    EXPECT_EQ(h.state(), S::Running);
    h.advance(1 * ms);
    EXPECT_EQ(h.node().phase(), Phase::StoppingFenced);
    EXPECT_TRUE(h.noticed(NoticeKind::LeaseLost));
    EXPECT_TRUE(h.ran(HookKind::Stop));
    h.advance(kill_at(lease, t) - h.now() - 1 * ms);
    EXPECT_FALSE(h.killed());
    h.advance(1 * ms);
    EXPECT_TRUE(h.killed());
    EXPECT_EQ(h.node().phase(), Phase::StoppingKilled);
    EXPECT_EQ(h.state(), S::Stopping);  // until the kill is confirmed
    h.finish(HookKind::Stop, false, "killed");
    EXPECT_TRUE(h.noticed(NoticeKind::HookFailed));
    EXPECT_EQ(h.node().phase(), Phase::StoppingKilled);
    h.clear();
    h.services_killed();  // nothing the services ran is left
    EXPECT_EQ(h.node().phase(), Phase::StoppingCleanup);
    EXPECT_TRUE(h.ran(HookKind::Stop));  // once more, for what processes leave behind (addresses, mounts)
    h.finish(HookKind::Stop, true);
    EXPECT_EQ(h.state(), S::Standby);
    h.advance(h.settings().dead_time - 10 * ms);
    EXPECT_EQ(h.state(), S::Standby);  // a lost lease: listen a dead time before claiming again
}

// After a kill at the lease's deadline, stophasrv cleans up what the
// processes left (an address, a mount): it must end before the lease does,
// else the node fences itself (SelfFence=) rather than leave it beside the
// services another node starts once the lease ends.
struct CleanupRace {
    const char* rule;
    unsigned expected_nodes;
    bool kill_confirmed;            // the cgroup emptied at the kill deadline
    Usec cleanup_ends_after_kill;   // when stophasrv's clean-up ends (0: still runs at the end of the lease)
    bool self_fences;
};

class NodeSelfFence : public ::testing::TestWithParam<CleanupRace> {};

TEST_P(NodeSelfFence, TheCleanUpAfterAKillEndsBeforeTheLeaseOrTheNodeFencesItself) {
    const CleanupRace& row = GetParam();
    SCOPED_TRACE(row.rule);
    Harness h("a", row.expected_nodes);
    h.confirm_kills(false);
    h.settings().fence_timeout = 400 * ms;
    std::map<std::string, S> peers{{"b", S::Standby}};
    if (row.expected_nodes > 2) peers["c"] = S::Standby;
    h.boot_to_standby(peers);
    h.finish(HookKind::Start, true);
    ASSERT_EQ(h.state(), S::Running);
    // Every peer falls silent: with quorum rules the lease is what their last
    // acknowledgements granted; a 2-node cluster has no lease, and b takes
    // over a dead time after a's last heartbeat whatever a does.
    Usec last_heard = h.now();
    for (const auto& [name, st] : peers) h.silence(name);
    Usec lease = h.node().lease().value_or(last_heard + h.settings().dead_time);
    LeaseTimings t = lease_timings(h.settings());
    if (row.expected_nodes > 2) {
        h.advance(kill_at(lease, t) - h.now());
        ASSERT_TRUE(h.killed());
    } else {
        h.command(Command::Stop);
        h.finish(HookKind::Stop, false);  // a failed stop is killed, lease or none
        ASSERT_TRUE(h.killed());
    }
    ASSERT_EQ(h.node().phase(), Phase::StoppingKilled);
    h.finish(HookKind::Stop, false, "killed");
    if (row.kill_confirmed) {
        h.services_killed();
        ASSERT_EQ(h.node().phase(), Phase::StoppingCleanup);
    }
    if (row.cleanup_ends_after_kill != Usec()) {
        h.advance(row.cleanup_ends_after_kill);
        h.finish(HookKind::Stop, true);
        EXPECT_EQ(h.state(), S::Standby);
    }
    h.advance(lease + 1 * sec - h.now());
    auto fences = h.self_fences();
    if (!row.self_fences) {
        EXPECT_TRUE(fences.empty()) << fences.front().reason;
        return;
    }
    ASSERT_EQ(fences.size(), 1u);  // once, however long the clean-up hangs
    EXPECT_EQ(fences[0].lease_end, lease);
    EXPECT_NE(fences[0].reason.find(row.kill_confirmed ? "clean-up" : "kill"), std::string::npos) << fences[0].reason;
    // Not a moment early: the same race, stopped just before the self-fence.
    Harness early("a", row.expected_nodes);
    early.confirm_kills(false);
    early.settings().fence_timeout = 400 * ms;
    early.boot_to_standby(peers);
    early.finish(HookKind::Start, true);
    for (const auto& [name, st] : peers) early.silence(name);
    Usec early_lease = *early.node().lease();
    early.advance(kill_at(early_lease, t) - early.now());
    if (row.kill_confirmed) early.services_killed();
    Usec fence_at = self_fence_at(early_lease, t);
    ASSERT_GT(fence_at, kill_at(early_lease, t));  // the clean-up has a share of its own
    ASSERT_LT(fence_at, early_lease);              // and the reboot time to take effect
    early.advance(fence_at - early.now() - 1 * ms);
    EXPECT_TRUE(early.self_fences().empty());
    early.advance(1 * ms);
    EXPECT_EQ(early.self_fences().size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Table, NodeSelfFence,
    ::testing::Values(
        CleanupRace{"a clean-up that ends within its share: no self-fence", 3, true, 20 * ms, false},
        CleanupRace{"a clean-up still running at the lease's end: self-fence", 3, true, Usec(), true},
        CleanupRace{"a clean-up that ends after the self-fence point: self-fence", 3, true, 80 * ms, true},
        CleanupRace{"a kill never confirmed (a process in D state): self-fence", 3, false, Usec(), true},
        CleanupRace{"no quorum rules, no lease: nothing to fence against", 2, true, Usec(), false}),
    [](const auto& info) { return "row" + std::to_string(info.index); });

TEST(NodeLease, AHolderThatWakesPastItsLeaseKillsAtOnceThenCleansUp) {
    // A frozen node (SIGSTOP, a paused VM) wakes long after its lease ended:
    // another node runs the services. Kill first, then stophasrv for the rest.
    Harness h("a");
    h.confirm_kills(false);
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    h.withhold("b");
    h.withhold("c");
    Usec lease = *h.node().lease();
    h.clear();
    h.take_effects(h.node().on_timer(lease + 5 * sec));  // its first wake-up after the freeze
    EXPECT_TRUE(h.killed());
    EXPECT_FALSE(h.ran(HookKind::Stop));  // no graceful stop while the services overlap
    EXPECT_EQ(h.node().phase(), Phase::StoppingKilled);
    h.services_killed();
    EXPECT_TRUE(h.ran(HookKind::Stop));
    EXPECT_EQ(h.node().phase(), Phase::StoppingCleanup);
}

TEST(NodeLease, APlannedStopIsFencedOnlyIfTheLeaseRunsLowDuringIt) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    h.command(Command::Stop);
    ASSERT_EQ(h.node().phase(), Phase::StoppingHook);
    h.advance(10 * sec);  // a slow but legitimate stop: the backers keep renewing the lease
    EXPECT_EQ(h.node().phase(), Phase::StoppingHook);
    EXPECT_FALSE(h.killed());
    h.silence("b");
    h.silence("c");
    h.advance(h.settings().dead_time);
    EXPECT_TRUE(h.killed());
}

TEST(NodeLease, LostAcknowledgementsAreRetriedFast) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    h.advance(1 * sec);
    h.withhold("b");
    h.withhold("c");  // their acknowledgements are lost from now on
    h.clear();
    h.advance(350 * ms);  // the lease (acknowledged just now) has 400ms left before the graceful stop
    // Past the overdue point (an interval and a quarter) the holder sends
    // every eighth of an interval, not every interval: 2 regular ones otherwise.
    EXPECT_GE(h.heartbeats_sent(), 5);
    EXPECT_EQ(h.state(), S::Running);
}

TEST(NodeLease, ServicesForcedWithoutALeaseAreBoundOnlyOnceTheyHaveOne) {
    Harness h("a");
    h.withhold("b");
    h.withhold("c");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.command(Command::ForceStart);  // the operator overrides: nobody backs it
    h.finish(HookKind::Start, true);
    h.advance(5 * sec);
    EXPECT_EQ(h.state(), S::Running);
    Harness g("a");
    g.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    g.command(Command::ForceStart);
    g.finish(HookKind::Start, true);
    g.advance(1 * sec);  // the voters back it: it has a lease now
    g.silence("b");
    g.silence("c");
    g.advance(2 * sec);
    EXPECT_EQ(g.state(), S::Stopping);  // and is bound by it
}

TEST(NodeLease, ServicesFoundRunningAtStartUpNeedALeaseOnceTheyHaveOne) {
    Harness h("a");
    h.start();
    h.peer("b", S::Standby);
    h.peer("c", S::Standby);
    h.finish(HookKind::Monitor, true);
    ASSERT_EQ(h.state(), S::Running);
    h.advance(1 * sec);
    ASSERT_TRUE(h.node().lease());  // term 0, backed like any claim
    h.silence("b");
    h.silence("c");
    h.advance(2 * sec);
    EXPECT_EQ(h.state(), S::Stopping);
}

TEST(NodeClaims, APendingClaimWithdrawsForANodeRunningTheServicesWhateverItsTerm) {
    Harness h("b");
    h.claim_after_a_fell_silent();
    ASSERT_EQ(h.node().phase(), Phase::StartingPending);
    ASSERT_GT(h.node().term(), 3u);
    h.clear();
    h.peer("a", S::Running, 3);  // it was alive all along (a one-way link healed)
    EXPECT_EQ(h.state(), S::Standby);
    EXPECT_FALSE(h.ran(HookKind::Start));
    EXPECT_FALSE(h.ran(HookKind::Stop));  // nothing ran, nothing to stop
}

TEST(NodeClaims, ARunningHolderIgnoresNewsOfABetterClaimThatHasNotStarted) {
    // Healing never moves the services: a claim made behind a partition
    // cannot win a lease from voters bound to the holder, and gives way.
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    std::uint64_t mine = h.node().term();
    h.clear();
    h.peer("b", S::Starting, mine + 5, Role::Member, wire::kFlagClaimPending);
    h.advance(3 * sec);
    EXPECT_EQ(h.state(), S::Running);
    EXPECT_FALSE(h.noticed(NoticeKind::DualActiveResolved));
    h.withhold("d");
    h.peer("d", S::Standby, mine + 7);  // relayed news of a newer claim
    h.advance(1 * sec);
    EXPECT_EQ(h.state(), S::Running);
}

TEST(NodeClaims, APendingClaimWithdrawsForABetterClaimOrNewsOfOne) {
    Harness h("b");
    h.withhold("a");
    h.withhold("c");
    h.boot_to_standby({{"a", S::Errored}, {"c", S::Standby}});
    ASSERT_EQ(h.node().phase(), Phase::StartingPending);
    std::uint64_t mine = h.node().term();
    h.clear();
    wire::Heartbeat hb = heartbeat_of("c", S::Standby, 1000);
    hb.term = mine;
    hb.claimant = "a";  // a claimed the same term behind a partition, and c knows it
    hb.heard = {node_id("b")};
    h.receive(wire::encode(hb));
    EXPECT_TRUE(h.noticed(NoticeKind::DualActiveResolved));
    EXPECT_FALSE(h.ran(HookKind::Stop));  // the claim was still waiting: nothing ran, nothing to stop
    EXPECT_NE(h.node().phase(), Phase::StartingHook);
}

TEST(NodeClaims, TwoRunningHoldersResolveByTermAndName) {
    Harness h("b", 3);
    h.boot_to_standby({{"a", S::Errored}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    std::uint64_t mine = h.node().term();
    h.peer("c", S::Running, mine);  // a later name, same term: b keeps them
    EXPECT_EQ(h.state(), S::Running);
    h.peer("a", S::Running, mine);  // an earlier name (a frozen node woke up, or no quorum rules)
    EXPECT_EQ(h.node().phase(), Phase::StoppingFenced);
}

TEST(NodeBacking, AVoterAcknowledgesTheClaimantAtOnceAndPromisesNoOtherClaim) {
    Harness h("c");
    h.boot_to_standby({{"a", S::Standby}, {"b", S::Standby}});
    h.peer("a", S::Running, 4);
    ASSERT_EQ(h.node().voter().claimant(), "a");
    h.clear();
    h.peer("a", S::Running, 4);
    ASSERT_EQ(h.heartbeats_sent(), 1);  // the acknowledgement goes out at once
    EXPECT_EQ(h.last_heartbeat()->claimant, "a");
    EXPECT_EQ(h.last_heartbeat()->term, 4u);
    // Its grant: a's heartbeat, sent now, plus c's own DeadTime less the drift allowance.
    EXPECT_EQ(h.last_heartbeat()->grant, promise_grant(h.now(), h.settings().dead_time).count());
    // b claims higher: c is bound to a for a dead time after a's last heartbeat.
    h.peer("b", S::Starting, 9, Role::Member, wire::kFlagClaimPending);
    h.silence("a");
    h.advance(h.settings().dead_time - h.settings().interval);
    EXPECT_EQ(h.node().voter().claimant(), "a");
    EXPECT_EQ(h.last_heartbeat()->claimant, "a");
    h.advance(h.settings().interval);  // a timed out: the promise has run out
    EXPECT_EQ(h.node().voter().claimant(), "b");
    EXPECT_EQ(h.last_heartbeat()->claimant, "b");
    EXPECT_NE(h.last_heartbeat()->grant, 0u);
}

TEST(NodeBacking, AClaimantThatStopsReleasesItsVotersAtOnce) {
    Harness h("c");
    h.boot_to_standby({{"a", S::Standby}, {"b", S::Standby}});
    h.peer("a", S::Running, 4);
    h.peer("b", S::Starting, 5, Role::Member, wire::kFlagClaimPending);
    ASSERT_EQ(h.node().voter().claimant(), "a");
    h.clear();
    h.peer("a", S::Standby, 4);  // a stopped its services (a switchover, a stop)
    EXPECT_EQ(h.node().voter().claimant(), "b");
    EXPECT_EQ(h.last_heartbeat()->claimant, "b");
}

TEST(NodeBacking, AVoterPrefersAClaimWhoseServicesRunOverAPendingOne) {
    Harness h("c");
    h.boot_to_standby({{"a", S::Standby}, {"b", S::Standby}});
    h.peer("b", S::Starting, 9, Role::Member, wire::kFlagClaimPending);
    h.peer("a", S::Running, 4);
    h.advance(2 * sec);  // both live; c was free when it chose
    h.silence("b");
    Harness g("c");
    g.boot_to_standby({{"a", S::Standby}, {"b", S::Standby}});
    g.peer("a", S::Running, 4);
    g.peer("b", S::Starting, 9, Role::Member, wire::kFlagClaimPending);
    EXPECT_EQ(g.node().voter().claimant(), "a");
}

TEST(NodeBacking, ARestartedNodeBacksNothingForADeadTime) {
    // Promises of its previous incarnation must run out first.
    Harness h("c");
    h.start();
    h.peer("a", S::Running, 4);
    h.peer("b", S::Standby);
    h.finish(HookKind::Monitor, false);
    h.finish(HookKind::Stop, true);
    EXPECT_EQ(h.last_heartbeat()->grant, 0u);
    h.advance(h.settings().dead_time - 10 * ms);
    EXPECT_TRUE(h.node().voter().claimant().empty());
    h.advance(h.settings().interval);
    EXPECT_EQ(h.node().voter().claimant(), "a");
}

TEST(NodeBacking, ARestartedNodeHonoursTheLongestDeadTimeItMayHavePromisedWith) {
    // The previous daemon ran with DeadTime=5s before a reload (or this
    // restart) lowered it to 1s: its promises may run 5s.
    Harness h("c");
    h.settings().previous_dead_time = 5 * sec;
    h.start();
    h.peer("a", S::Running, 4);
    h.peer("b", S::Standby);
    h.finish(HookKind::Monitor, false);
    h.finish(HookKind::Stop, true);
    h.advance(5 * sec - 10 * ms);
    EXPECT_TRUE(h.node().voter().claimant().empty());
    EXPECT_EQ(h.last_heartbeat()->grant, 0u);
    h.advance(h.settings().interval);
    EXPECT_EQ(h.node().voter().claimant(), "a");
}

TEST(NodeBacking, APeerBackingAnotherLiveClaimBlocksTheElection) {
    // c hears a (which b cannot): a holds, so b must not claim.
    Harness h("b");
    h.start();
    h.finish(HookKind::Monitor, false);
    h.finish(HookKind::Stop, true);
    wire::Heartbeat hb = heartbeat_of("c", S::Standby, 5000);
    hb.claimant = "a";
    hb.term = 3;
    hb.grant = 123;
    hb.heard = {node_id("b")};
    for (int i = 0; i < 20; ++i) {
        hb.sequence++;
        h.receive(wire::encode(hb));
        h.advance(h.settings().interval);
    }
    EXPECT_EQ(h.state(), S::Standby);
    EXPECT_TRUE(h.node().quorate());
    EXPECT_FALSE(h.noticed(NoticeKind::Takeover));
    hb.grant = 0;  // c's promise to a ran out
    hb.sequence++;
    h.receive(wire::encode(hb));
    EXPECT_TRUE(h.noticed(NoticeKind::Takeover));
}

// --- promises across reloads and restarts (issue 15) -------------------------

// The largest grant among `sent` to `claimant`: the holder keeps the largest
// grant it received, so the voter must keep its promise until then.
std::uint64_t largest_grant_to(const std::vector<wire::Heartbeat>& sent, const std::string& claimant) {
    std::uint64_t grant = 0;
    for (const auto& hb : sent)
        if (hb.claimant == claimant) grant = std::max(grant, hb.grant);
    return grant;
}

struct DeadTimeReload {
    const char* what;
    Usec before;
    Usec after;
};

void PrintTo(const DeadTimeReload& row, std::ostream* os) { *os << row.what; }

class NodePromises : public ::testing::TestWithParam<DeadTimeReload> {};

// Voter c backs a; c is reloaded with another DeadTime=, a falls silent and b
// claims. c must not back b before every grant it stated to a has run out
// (a's lease from c runs that long), and it backs b soon after.
TEST_P(NodePromises, AReloadNeverShortensAPromiseTheHolderCountsOn) {
    const auto& row = GetParam();
    Harness h("c");
    h.settings().dead_time = row.before;
    h.boot_to_standby({{"a", S::Standby}, {"b", S::Standby}});
    h.peer("a", S::Running, 4);
    h.advance(3 * h.settings().interval);
    NodeSettings reloaded = h.settings();
    reloaded.dead_time = row.after;
    h.reconfigure(reloaded);
    h.advance(h.settings().interval);  // a's next heartbeat, acknowledged under the new DeadTime=
    h.silence("a");
    h.peer("b", S::Starting, 9, Role::Member, wire::kFlagClaimPending);
    Usec promised(largest_grant_to(h.heartbeats_sent_since_clear(), "a"));
    ASSERT_GT(promised, h.now());
    while (h.now() < promised) {
        h.advance(10 * ms);
        if (h.now() >= promised) break;
        ASSERT_EQ(largest_grant_to(h.heartbeats_sent_since_clear(), "b"), 0u)
            << "c backs b at " << format_timespan(h.now()) << " while its grant to a runs until "
            << format_timespan(promised);
    }
    h.advance(2 * h.settings().interval);
    EXPECT_NE(largest_grant_to(h.heartbeats_sent_since_clear(), "b"), 0u) << "c never backs b";
}

INSTANTIATE_TEST_SUITE_P(
    Reloads, NodePromises,
    ::testing::Values(DeadTimeReload{"lowered from 10s to 1s: the 10s promise stands", 10 * sec, 1 * sec},
                      DeadTimeReload{"unchanged", 1 * sec, 1 * sec},
                      DeadTimeReload{"raised from 1s to 10s: renewals promise 10s at once", 1 * sec, 10 * sec}),
    [](const auto& info) { return "Row" + std::to_string(info.index); });

// --- ExpectedNodes= across reloads (issue 15) --------------------------------

struct ExpectedChange {
    const char* what;
    unsigned configured;                     // this node's ExpectedNodes= (a), after its reload
    std::map<std::string, unsigned> peers;   // every peer and the ExpectedNodes= it states (0: none)
    std::set<std::string> cut_off;           // peers that then fall silent
    bool quorate;                            // a's quorum among what is left
    unsigned stated;                         // what a's heartbeats then state
};

void PrintTo(const ExpectedChange& row, std::ostream* os) { *os << row.what; }

class NodeExpected : public ::testing::TestWithParam<ExpectedChange> {};

// Node a starts as one of as many nodes as it has peers plus one, takes the
// row's ExpectedNodes= by a reload, hears what its peers state, and loses
// some of them: it must count quorum against the largest count any node
// uses, so that its majority overlaps every majority the others could form.
TEST_P(NodeExpected, QuorumCountsAgainstTheLargestExpectedNodesStated) {
    const auto& row = GetParam();
    SCOPED_TRACE(row.what);
    Harness h("a", static_cast<unsigned>(row.peers.size() + 1));
    std::map<std::string, S> standby;
    for (const auto& [name, expected] : row.peers) standby[name] = S::Standby;
    h.boot_to_standby(standby);
    NodeSettings reloaded = h.settings();
    reloaded.expected_nodes = row.configured;
    h.reconfigure(reloaded);
    for (const auto& [name, expected] : row.peers) h.expects(name, expected);
    for (const auto& name : row.cut_off) h.silence(name);
    h.clear();
    h.advance(2 * h.settings().dead_time);
    EXPECT_EQ(h.node().quorate(), row.quorate);
    if (!row.quorate) {
        EXPECT_FALSE(h.noticed(NoticeKind::Takeover));
    }
    ASSERT_TRUE(h.last_heartbeat());
    EXPECT_EQ(h.last_heartbeat()->expected_nodes, row.stated);
}

INSTANTIATE_TEST_SUITE_P(
    Reloads, NodeExpected,
    ::testing::Values(
        ExpectedChange{"5 nodes, a and b lowered to 3 and cut off from the other three: 2 are no majority",
                       3, {{"b", 3}, {"c", 5}, {"d", 5}, {"e", 5}}, {"c", "d", "e"}, false, 3},
        ExpectedChange{"5 nodes, every one lowered to 3: the lowered count takes effect",
                       3, {{"b", 3}, {"c", 3}, {"d", 3}, {"e", 3}}, {"c", "d", "e"}, true, 3},
        ExpectedChange{"3 nodes, c raised to 5: it counts at once, so a and b are no majority",
                       3, {{"b", 3}, {"c", 5}}, {"c"}, false, 3},
        ExpectedChange{"5 nodes, a lowered to 3 beside an older version that states nothing: a states nothing",
                       3, {{"b", 0}, {"c", 5}, {"d", 5}, {"e", 5}}, {}, true, 0}),
    [](const auto& info) { return "Row" + std::to_string(info.index); });

TEST(NodeTakeover, AClaimWaitsWhileAReachablePeerStillStopsTheServices) {
    Harness h("b");
    h.claim_after_a_fell_silent();
    ASSERT_EQ(h.state(), S::Starting);  // a timed out
    h.peer("a", S::Stopping, 3);        // it comes back, still stopping
    h.release("c");                     // c's promise to a has run out: it backs b
    h.advance(3 * sec);
    EXPECT_FALSE(h.ran(HookKind::Start));
    h.peer("a", S::Standby, 4);
    h.advance(h.settings().interval);
    EXPECT_TRUE(h.ran(HookKind::Start));
}

TEST(NodeTakeover, WithoutQuorumRulesThereIsNoLease) {
    Harness h("a", 2);
    h.withhold("b");
    h.boot_to_standby({{"b", S::Standby}});
    ASSERT_EQ(h.state(), S::Starting);
    EXPECT_TRUE(h.ran(HookKind::Start));
    h.finish(HookKind::Start, true);
    h.silence("b");
    h.advance(10 * sec);
    EXPECT_EQ(h.state(), S::Running);
}

// --- services started behind our back, and the peer table --------------------

TEST(NodeUnexpected, ServicesSeenOnANodeThatDoesNotHoldThemAreStoppedAndCounted) {
    Harness h("b");
    h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
    h.clear();
    h.take_effects(h.node().on_services_seen("unit x.target is active", h.now()));
    EXPECT_TRUE(h.noticed(NoticeKind::UnexpectedServices));
    EXPECT_TRUE(h.ran(HookKind::Stop));
    EXPECT_EQ(h.state(), S::Standby);
    EXPECT_EQ(h.node().status(h.now()).unexpected_services, 1u);
    h.clear();
    h.take_effects(h.node().on_services_seen("unit x.target is active", h.now()));  // the clean-up runs already
    EXPECT_FALSE(h.ran(HookKind::Stop));
    h.finish(HookKind::Stop, true);
    EXPECT_EQ(h.state(), S::Standby);
}

TEST(NodeUnexpected, OurOwnServicesAreNotUnexpected) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    h.clear();
    h.take_effects(h.node().on_services_seen("unit x.target is active", h.now()));
    EXPECT_FALSE(h.noticed(NoticeKind::UnexpectedServices));
    EXPECT_EQ(h.node().status(h.now()).unexpected_services, 0u);
}

TEST(NodePeers, TheTableIsBoundedAndOnlyTimedOutPeersMakeRoom) {
    Harness h("b");
    h.start();
    for (std::size_t i = 0; i < Membership::kMaxPeers + 5; ++i)
        h.receive(wire::encode(heartbeat_of("n" + std::to_string(i), S::Standby, 1)));
    EXPECT_EQ(h.node().membership().peers().size(), Membership::kMaxPeers);
    EXPECT_EQ(h.node().counters().peer_table_full, 5u);
    h.advance(h.settings().dead_time + h.settings().interval);  // they all time out
    h.receive(wire::encode(heartbeat_of("newcomer", S::Standby, 1)));
    EXPECT_EQ(h.node().membership().peers().count("newcomer"), 1u);
    EXPECT_EQ(h.node().membership().peers().size(), Membership::kMaxPeers);
}

TEST(NodePeers, ASequenceNumberFarAheadOfWhatTheSenderCanHaveSentIsRefused) {
    Harness h("b");
    h.start();
    h.receive(wire::encode(heartbeat_of("a", S::Standby, 10)));
    h.receive(wire::encode(heartbeat_of("a", S::Running, UINT64_MAX)));  // forged: would blind b to a
    EXPECT_EQ(h.node().counters().implausible, 1u);
    h.receive(wire::encode(heartbeat_of("a", S::Standby, 11)));
    EXPECT_EQ(h.node().membership().peers().at("a").last_sequence, 11u);
    h.advance(10 * sec);  // silent for 10 s: up to ~10,000 heartbeats are believable
    h.receive(wire::encode(heartbeat_of("a", S::Standby, 11 + 9000)));
    EXPECT_EQ(h.node().counters().implausible, 1u);
}

TEST(NodePeers, WithoutAKeyAnIncarnationFromTheFarFutureIsRefused) {
    Harness h("b");
    h.start();
    h.receive(wire::encode(heartbeat_of("a", S::Standby, 1, 500)));
    h.receive(wire::encode(heartbeat_of("a", S::Standby, 1, UINT64_MAX)));  // forged
    EXPECT_EQ(h.node().counters().implausible, 1u);
    h.receive(wire::encode(heartbeat_of("a", S::Standby, 2, 500)));
    EXPECT_EQ(h.node().counters().stale_incarnation, 0u);
    EXPECT_EQ(h.node().membership().peers().at("a").last_sequence, 2u);
}

TEST(NodePeers, WithoutAKeyATimedOutRecordTakesALowerIncarnationAgain) {
    Harness h("b");
    h.start();
    wire::Heartbeat forged = heartbeat_of("a", S::Running, 1, h.settings().incarnation + 1000);
    h.receive(wire::encode(forged));  // plausible, but not a's
    h.receive(wire::encode(heartbeat_of("a", S::Standby, 7, 5)));  // the real a: "stale" while the forgery lives
    EXPECT_EQ(h.node().counters().stale_incarnation, 1u);
    h.advance(h.settings().dead_time + h.settings().interval);
    h.receive(wire::encode(heartbeat_of("a", S::Standby, 8, 5)));  // the forged record has timed out
    EXPECT_EQ(h.node().membership().peers().at("a").announced(), S::Standby);
    EXPECT_TRUE(h.node().membership().peers().at("a").reachable());
    Harness k("b");
    k.settings().auth_keys = auth::KeySet::copy_of({kKey});  // with a key, only a key holder could have set it: it stands
    k.start();
    k.receive(signed_with(kKey, heartbeat_of("a", S::Running, 1, 1000)));
    k.advance(k.settings().dead_time + k.settings().interval);
    k.receive(signed_with(kKey, heartbeat_of("a", S::Standby, 8, 5)));
    EXPECT_EQ(k.node().counters().stale_incarnation, 1u);
}

const NodeStatus* status_of(const Status& s, const std::string& name) {
    for (const auto& n : s.nodes)
        if (n.name == name) return &n;
    return nullptr;
}

// A node whose heartbeats are refused is not silent about it: one notice when
// the refusal begins, one when none was refused for a dead time, and the
// status says why it is not counted, whether or not it was ever accepted.
TEST(NodeRefusals, ARefusalIsLoggedOnceWithItsEndAndShownInTheStatus) {
    constexpr std::uint64_t kTwoDays = 48 * 3600ULL * 1000000;
    struct Case {
        const char* name;
        bool keyed;
        std::function<std::vector<std::uint8_t>(Harness&, std::uint64_t sequence)> refused;
        std::string reason;  // a part of the notice and of the status
        std::uint64_t ReceiveCounters::*counter;
    };
    auto sign = [](Harness& h, const wire::Heartbeat& hb) {
        auto d = wire::encode(hb);
        if (!h.settings().auth_keys.empty()) h.settings().auth_keys.sign(d);
        return d;
    };
    const std::vector<Case> cases{
        {"an incarnation two days ahead, without a key", false,
         [](Harness& h, std::uint64_t seq) {
             return wire::encode(heartbeat_of("c", S::Standby, seq, h.settings().incarnation + kTwoDays));
         },
         "incarnation 2d ahead of this node's clock", &ReceiveCounters::implausible},
        {"a stale incarnation, with a key", true,
         [&](Harness& h, std::uint64_t seq) {
             return sign(h, heartbeat_of("c", S::Standby, seq, 3600ULL * 1000000));
         },
         "stale incarnation, from 1h before the one this node knows", &ReceiveCounters::stale_incarnation},
        {"a term 2^32 + 1 above every term known", false,
         [](Harness&, std::uint64_t seq) {
             wire::Heartbeat hb = heartbeat_of("c", S::Standby, seq);
             hb.term = (std::uint64_t{1} << 32) + 1;
             return wire::encode(hb);
         },
         "term 4294967297 more than 2^32 above the highest this node knows (0)", &ReceiveCounters::implausible},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.name);
        Harness h("b");
        if (c.keyed) h.settings().auth_keys = auth::KeySet::copy_of({kKey});
        h.start();
        if (c.keyed) {  // c was known with a later incarnation, and has timed out since
            h.receive(sign(h, heartbeat_of("c", S::Standby, 1, 2 * 3600ULL * 1000000)));
            h.advance(h.settings().dead_time + h.settings().interval);
        }
        h.clear();
        for (std::uint64_t seq = 2; seq < 12; ++seq) {
            h.receive(c.refused(h, seq));
            h.advance(h.settings().interval);
        }
        EXPECT_EQ(h.node().counters().*c.counter, 10u);
        auto refused = h.notices(NoticeKind::PeerRefused);
        ASSERT_EQ(refused.size(), 1u);
        EXPECT_NE(refused[0].find("c: " + c.reason), std::string::npos) << refused[0];
        Status s = h.node().status(h.now());
        const NodeStatus* n = status_of(s, "c");
        ASSERT_NE(n, nullptr);
        EXPECT_FALSE(n->reachable);
        EXPECT_EQ(n->not_counted.find("refused: " + c.reason), 0u) << n->not_counted;
        EXPECT_FALSE(h.noticed(NoticeKind::PeerRefusalEnded));
        h.advance(h.settings().dead_time + h.settings().interval);
        auto ended = h.notices(NoticeKind::PeerRefusalEnded);
        ASSERT_EQ(ended.size(), 1u);
        EXPECT_NE(ended[0].find("c: none refused for 1s (10 refused over 1s 800ms)"), std::string::npos) << ended[0];
        s = h.node().status(h.now());  // status_of points into it: it must outlive n
        n = status_of(s, "c");
        EXPECT_TRUE(n == nullptr || n->not_counted.empty());
    }
}

TEST(NodeRefusals, APeerThatDoesNotHearThisNodeIsShownAsNotCounted) {
    Harness h("b");
    h.boot_to_standby({{"a", S::Standby}, {"c", S::Standby}});
    h.deaf("c");
    Status s = h.node().status(h.now());
    EXPECT_EQ(status_of(s, "a")->not_counted, "");
    EXPECT_EQ(status_of(s, "c")->not_counted, "does not hear this node");
    EXPECT_EQ(to_json(s)["nodes"][2]["not_counted"], "does not hear this node");
    EXPECT_TRUE(to_json(s)["nodes"][0]["not_counted"].is_null());
}

// Terms rise by one per claim: one forged heartbeat must not carry them to
// the top, where the next claim's term would wrap to 0.
TEST(NodeTerms, ATermFarAboveEveryKnownTermIsRefusedAndNoClaimWrapsToZero) {
    struct Case {
        std::uint64_t known;  // announced first by a, accepted
        std::uint64_t forged;
        bool refused;
    };
    constexpr std::uint64_t kJump = std::uint64_t{1} << 32;
    for (const Case& c : {Case{0, kJump, false}, Case{0, kJump + 1, true}, Case{0, UINT64_MAX, true},
                          Case{5, 5 + kJump, false}, Case{5, 6 + kJump, true}, Case{7, 3, false}}) {
        SCOPED_TRACE(testing::Message() << "known " << c.known << ", then " << c.forged);
        Harness h("a");
        h.start();
        wire::Heartbeat first = heartbeat_of("x", S::Standby, 1);
        first.term = c.known;
        h.receive(wire::encode(first));
        wire::Heartbeat forged = heartbeat_of("y", S::Standby, 1);
        forged.term = c.forged;
        h.receive(wire::encode(forged));
        EXPECT_EQ(h.node().counters().implausible, c.refused ? 1u : 0u);
        EXPECT_EQ(h.node().membership().peers().count("y"), c.refused ? 0u : 1u);
        EXPECT_EQ(h.node().status(h.now()).term, c.refused ? c.known : std::max(c.known, c.forged));
    }
}

TEST(NodePhases, TheStatusNamesThePhaseAndTheClusterTerm) {
    Harness h("b");
    h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
    h.peer("a", S::Running, 3);
    Status s = h.node().status(h.now());
    EXPECT_EQ(s.phase, "standby");
    EXPECT_EQ(s.term, 3u);  // the running claim's, not 0: a standby node shows the cluster's term
    EXPECT_FALSE(s.lease_remaining);
}

// --- leaving at a machine shutdown -------------------------------------------

TEST(NodeLeave, TheActiveNodeHandsOverLikeASwitchoverThenLeaves) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    h.clear();
    h.command(Command::Leave);
    EXPECT_EQ(h.hooks_run(), std::vector{HookKind::Stop});
    EXPECT_EQ(h.last_heartbeat()->handover_to, "b");  // the node the election picks next
    EXPECT_FALSE(h.exited());
    h.finish(HookKind::Stop, true);
    // Holding nothing, it says so at once (b starts on it) and waits for b to take over.
    EXPECT_EQ(h.last_heartbeat()->state, S::Standby);
    EXPECT_EQ(h.last_heartbeat()->handover_to, "b");
    EXPECT_TRUE(h.last_heartbeat()->flags & wire::kFlagStandby);
    EXPECT_FALSE(h.last_heartbeat()->flags & wire::kFlagLeaving);
    EXPECT_FALSE(h.exited());
    h.peer("b", S::Starting, 2);
    ASSERT_TRUE(h.exited());
    EXPECT_FALSE(h.exit_effect()->services_left);
    EXPECT_TRUE(h.last_heartbeat()->flags & wire::kFlagLeaving);
    EXPECT_TRUE(h.last_heartbeat()->flags & wire::kFlagStandby);
    EXPECT_FALSE(h.noticed(NoticeKind::Takeover));
}

TEST(NodeLeave, AHandoverNobodyTakesEndsAfterADeadTime) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    h.command(Command::Leave);
    h.finish(HookKind::Stop, true);
    h.clear();
    h.advance(h.settings().dead_time - 1 * ms);
    EXPECT_FALSE(h.exited());
    h.advance(2 * ms);
    EXPECT_TRUE(h.exited());
    EXPECT_EQ(h.state(), S::Standby);  // never elected itself meanwhile
}

TEST(NodeLeave, AStandbyNodeLeavesAtOnceRunningNothing) {
    Harness h("b");
    h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
    h.clear();
    h.command(Command::Leave);
    EXPECT_TRUE(h.hooks_run().empty());
    ASSERT_TRUE(h.exited());
    EXPECT_TRUE(h.last_heartbeat()->flags & wire::kFlagLeaving);
    EXPECT_EQ(h.last_heartbeat()->state, S::Standby);
    h.clear();
    h.command(Command::Leave);  // twice: nothing more
    h.advance(1 * sec);
    EXPECT_EQ(h.heartbeats_sent(), 0);
}

TEST(NodeLeave, AShutdownDuringASwitchoverKeepsItsTarget) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    EXPECT_EQ(h.switchover("c"), "");
    h.command(Command::Leave);
    EXPECT_EQ(h.node().handover_to(), "c");
    h.finish(HookKind::Stop, true);
    EXPECT_FALSE(h.exited());
    h.peer("c", S::Starting, 2);
    EXPECT_TRUE(h.exited());
}

TEST(NodeLeave, APlainStopLearnedLaterToBeAShutdownHandsOver) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    h.command(Command::Shutdown);  // SIGTERM first: FreeHA's stop
    EXPECT_EQ(h.last_heartbeat()->handover_to, "");
    h.clear();
    h.command(Command::Leave);  // then the daemon learns the machine shuts down
    EXPECT_EQ(h.last_heartbeat()->handover_to, "b");
    EXPECT_TRUE(h.hooks_run().empty());  // the stop under way goes on
    h.finish(HookKind::Stop, true);
    EXPECT_FALSE(h.exited());
    h.peer("b", S::Starting, 2);
    EXPECT_TRUE(h.exited());
}

TEST(NodeLeave, APlainStopStillExitsAnnouncingStopping) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    h.command(Command::Shutdown);
    h.finish(HookKind::Stop, true);
    ASSERT_TRUE(h.exited());
    EXPECT_EQ(h.last_heartbeat()->state, S::Stopping);
    EXPECT_FALSE(h.last_heartbeat()->flags & wire::kFlagLeaving);
}

TEST(NodeLeave, PeersCountALeavingNodeOutAtOnceAndElectWithoutWaiting) {
    Harness h("b");
    h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
    h.peer("a", S::Running, 3);
    h.clear();
    h.handing_over("a", S::Standby, "b");
    h.leaves("a");
    EXPECT_EQ(h.notices(NoticeKind::PeerLeft).size(), 1u);
    const Peer& a = h.node().membership().peers().at("a");
    EXPECT_TRUE(a.left);
    EXPECT_FALSE(a.reachable());
    EXPECT_EQ(h.state(), S::Starting);  // b was handed the services: no dead time waited
    Status s = h.node().status(h.now());
    auto it = std::find_if(s.nodes.begin(), s.nodes.end(), [](const NodeStatus& n) { return n.name == "a"; });
    ASSERT_NE(it, s.nodes.end());
    EXPECT_TRUE(it->left);
    EXPECT_EQ(it->state, S::TimedOut);
    h.peer("a", S::Initial);  // its machine is back
    EXPECT_FALSE(h.node().membership().peers().at("a").left);
}

TEST(NodeLeave, BesideAPreviousReleaseTheLastHeartbeatIsVersion2AndOnlyStandby) {
    Harness h("b");
    h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
    h.expects("c", 0);  // c is of the previous release
    h.clear();
    h.command(Command::Leave);
    ASSERT_TRUE(h.exited());
    auto last = h.last_heartbeat();
    EXPECT_EQ(last->version, wire::kPreviousVersion);
    auto sent = wire::decode(h.heartbeats_sent_since_clear().empty() ? std::vector<std::uint8_t>{}
                                                                      : wire::encode(*last));
    ASSERT_TRUE(sent.decoded);
    EXPECT_FALSE(sent.decoded->heartbeat.flags & wire::kFlagLeaving);
    EXPECT_TRUE(sent.decoded->heartbeat.flags & wire::kFlagStandby);
}

// --- Nodes= naming a node never heard --------------------------------------------

// Whether a name is a node of the cluster is known only from heartbeats: the
// end of the start-up wait says which names of Nodes= nobody answered to, once
// each, and a reload that changes Nodes= says it at once.
TEST(NodePreferredNodes, ANameNeverHeardIsNamedOnceWhenStartUpEndsAndAgainOnlyWhenAReloadAddsIt) {
    Harness h("b");
    h.settings().groups = {GroupSettings{"default", "", 2 * sec, PlacementPolicy::Listed, {"a", "b", "charly"}}};
    h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
    ASSERT_EQ(h.state(), S::Standby);
    auto warned = h.notices(NoticeKind::UnknownPreferredNode);
    ASSERT_EQ(warned.size(), 1u);
    EXPECT_EQ(warned[0].rfind("charly: ", 0), 0u) << warned[0];
    h.clear();
    h.advance(5 * sec);
    EXPECT_TRUE(h.notices(NoticeKind::UnknownPreferredNode).empty());
    NodeSettings reloaded = h.settings();
    reloaded.groups[0].nodes = {"a", "c", "charly", "delta"};
    h.reconfigure(reloaded);
    warned = h.notices(NoticeKind::UnknownPreferredNode);
    ASSERT_EQ(warned.size(), 1u);  // charly was named already
    EXPECT_EQ(warned[0].rfind("delta: ", 0), 0u) << warned[0];
}

// --- maintenance mode ----------------------------------------------------------

TEST(NodeMaintenance, OnStopsMonitoringAndFailoverOnEveryNode) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    h.finish(HookKind::Monitor, true);
    h.clear();
    EXPECT_EQ(h.maintenance(true), "");
    EXPECT_TRUE(h.node().maintenance().on);
    ASSERT_EQ(h.maintenance_changes().size(), 1u);
    EXPECT_TRUE(h.maintenance_changes()[0].on);
    EXPECT_TRUE(h.last_heartbeat()->flags & wire::kFlagMaintenance);
    EXPECT_EQ(h.last_heartbeat()->maintenance_epoch, h.node().maintenance().epoch);
    EXPECT_TRUE(h.noticed(NoticeKind::MaintenanceChanged));
    h.clear();
    h.advance(10 * sec);
    EXPECT_TRUE(h.hooks_run().empty());  // no monitorhasrv
    h.services_failed("web.service failed");
    EXPECT_EQ(h.state(), S::Running);  // nothing reacts
    EXPECT_FALSE(h.node().error_latched());
    h.command(Command::Stop);
    h.command(Command::ForceStart);
    EXPECT_TRUE(h.hooks_run().empty());
    EXPECT_NE(h.switchover("b").find("maintenance mode is on"), std::string::npos);
    EXPECT_EQ(h.state(), S::Running);
}

TEST(NodeMaintenance, ALearnedDecisionStopsFailoverAndAnOlderOneIsIgnored) {
    Harness h("b");
    h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
    h.peer("a", S::Running, 3);
    h.announces_maintenance("a", true, 5000);
    EXPECT_TRUE(h.node().maintenance().on);
    EXPECT_EQ(h.node().maintenance().epoch, 5000u);
    h.announces_maintenance("c", false, 4000);  // older: ignored
    EXPECT_TRUE(h.node().maintenance().on);
    h.silence("a");  // the holder dies (or is stopped by hand)
    h.clear();
    h.advance(5 * sec);
    EXPECT_EQ(h.state(), S::Standby);  // no election
    EXPECT_FALSE(h.noticed(NoticeKind::Takeover));
    EXPECT_TRUE(h.hooks_run().empty());
}

TEST(NodeMaintenance, RefusalsNameTheReasonAndChangeNothing) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    h.peer("b", S::Stopping);
    EXPECT_NE(h.maintenance(true).find("node b is stopping"), std::string::npos);
    h.peer("b", S::Standby);
    h.handing_over("c", S::Standby, "b");
    EXPECT_NE(h.maintenance(true).find("switchover from c to b"), std::string::npos);
    h.handing_over("c", S::Standby, "");
    EXPECT_NE(h.maintenance(false).find("already off"), std::string::npos);
    h.expects("c", 0);  // c is of the previous release
    EXPECT_NE(h.maintenance(true).find("earlier release"), std::string::npos);
    h.silence("c");
    h.silence("b");
    h.advance(2 * h.settings().dead_time);
    EXPECT_NE(h.maintenance(true).find("no quorum"), std::string::npos);
    EXPECT_FALSE(h.node().maintenance().on);
    EXPECT_EQ(h.node().maintenance().epoch, 0u);
    EXPECT_TRUE(h.maintenance_changes().empty());
}

TEST(NodeMaintenance, TwiceIsRefused) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    EXPECT_EQ(h.maintenance(true), "");
    std::uint64_t epoch = h.node().maintenance().epoch;
    EXPECT_NE(h.maintenance(true).find("already on"), std::string::npos);
    EXPECT_EQ(h.node().maintenance().epoch, epoch);
}

TEST(NodeMaintenance, OffOnTheHolderProbesAtOnceAndCarriesOnWhenTheServicesRun) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    std::uint64_t term = h.node().term();
    EXPECT_EQ(h.maintenance(true), "");
    h.advance(5 * sec);
    h.clear();
    EXPECT_EQ(h.maintenance(false), "");
    EXPECT_EQ(h.hooks_run(), std::vector{HookKind::Monitor});
    h.finish(HookKind::Monitor, true);
    EXPECT_EQ(h.state(), S::Running);
    EXPECT_EQ(h.node().term(), term);  // the same claim: nothing moved
    EXPECT_FALSE(h.ran(HookKind::Start));
}

TEST(NodeMaintenance, OffOnAHolderWhoseServicesAreGoneLetsThemGoWithoutAnError) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    EXPECT_EQ(h.maintenance(true), "");
    EXPECT_EQ(h.maintenance(false), "");
    h.clear();
    h.finish(HookKind::Monitor, false);
    EXPECT_TRUE(h.ran(HookKind::Stop));  // cleans up
    EXPECT_FALSE(h.noticed(NoticeKind::HookFailed));
    h.finish(HookKind::Stop, true);
    EXPECT_FALSE(h.node().error_latched());
    EXPECT_NE(h.state(), S::Errored);
}

TEST(NodeMaintenance, OffOnAStandbyNodeProbesAsAtStartUp) {
    Harness h("b");
    h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
    h.peer("a", S::Running, 3);
    h.announces_maintenance("a", true, 5000);
    h.clear();
    h.announces_maintenance("a", false, 6000);
    EXPECT_EQ(h.state(), S::Initial);
    EXPECT_EQ(h.hooks_run(), std::vector{HookKind::Monitor});
    h.finish(HookKind::Monitor, false);  // nothing here: a clean-up, as at start-up
    EXPECT_TRUE(h.ran(HookKind::Stop));
    h.finish(HookKind::Stop, true);
    h.advance(h.settings().dead_time);
    EXPECT_EQ(h.state(), S::Standby);
    EXPECT_FALSE(h.noticed(NoticeKind::Takeover));  // a still runs them
}

TEST(NodeMaintenance, ServicesStartedByHandOnAStandbyNodeAreClaimedThere) {
    Harness h("b");
    h.boot_to_standby({{"a", S::Standby}, {"c", S::Standby}});
    h.peer("a", S::Standby);
    h.announces_maintenance("a", true, 5000);
    h.announces_maintenance("a", false, 6000);
    h.finish(HookKind::Monitor, true);
    EXPECT_EQ(h.state(), S::Running);  // found running here: kept here, nothing starts elsewhere
    EXPECT_FALSE(h.ran(HookKind::Start));
}

TEST(NodeMaintenance, ANodeThatStartsInMaintenanceRunsNoProbe) {
    Harness h("b");
    h.start_in_maintenance(Maintenance{true, 5000});
    EXPECT_TRUE(h.hooks_run().empty());
    EXPECT_EQ(h.node().phase(), Phase::InitialListening);
    h.peer("a", S::Running, 3);
    h.peer("c", S::Standby);
    h.advance(2 * sec);
    EXPECT_EQ(h.state(), S::Standby);
    EXPECT_TRUE(h.hooks_run().empty());
    EXPECT_TRUE(h.last_heartbeat()->flags & wire::kFlagMaintenance);
    // The cluster turned it off meanwhile: the newer decision wins.
    h.announces_maintenance("a", false, 7000);
    EXPECT_FALSE(h.node().maintenance().on);
    EXPECT_EQ(h.hooks_run(), std::vector{HookKind::Monitor});
}

TEST(NodeMaintenance, ADaemonStopLeavesTheServicesRunning) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    EXPECT_EQ(h.maintenance(true), "");
    h.announces_maintenance("b", true, h.node().maintenance().epoch);  // a majority (a and b) has it
    h.clear();
    h.command(Command::Shutdown);
    EXPECT_TRUE(h.hooks_run().empty());
    ASSERT_TRUE(h.exit_effect());
    EXPECT_TRUE(h.exit_effect()->services_left);
}

// Simulator seed 74409: a holder cut off from its peers still counts them
// for a dead time, so it may turn maintenance mode on; nobody hears of it, and
// its peers fail over once it falls silent. Had its stop left the services
// running, they would have run on two nodes.
TEST(NodeMaintenance, ADaemonStopStopsTheServicesWhileTooFewNodesAnnounceTheMode) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    EXPECT_EQ(h.maintenance(true), "");  // b and c still count, but hear nothing of it
    h.announces_maintenance("b", true, h.node().maintenance().epoch - 1);  // an older decision is not this one
    h.clear();
    h.command(Command::Shutdown);
    EXPECT_EQ(h.hooks_run(), std::vector{HookKind::Stop});
    EXPECT_FALSE(h.exit_effect());
    EXPECT_EQ(h.state(), S::Stopping);
    h.finish(HookKind::Stop, true);
    ASSERT_TRUE(h.exit_effect());
    EXPECT_FALSE(h.exit_effect()->services_left);
}

TEST(NodeMaintenance, AMachineShutdownHandsOverWhileTooFewNodesAnnounceTheMode) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    EXPECT_EQ(h.maintenance(true), "");
    h.clear();
    h.command(Command::Leave);
    EXPECT_EQ(h.hooks_run(), std::vector{HookKind::Stop});  // not "holds nothing" while they still run
    EXPECT_EQ(h.last_heartbeat()->handover_to, "b");
    EXPECT_FALSE(h.exit_effect());
}

TEST(NodeMaintenance, AMachineShutdownWithTheModeSharedSaysItHoldsNothing) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    EXPECT_EQ(h.maintenance(true), "");
    h.announces_maintenance("c", true, h.node().maintenance().epoch);
    h.clear();
    h.command(Command::Leave);
    EXPECT_TRUE(h.hooks_run().empty());  // the services go down with the machine
    ASSERT_TRUE(h.exit_effect());
    EXPECT_TRUE(h.last_heartbeat()->flags & wire::kFlagLeaving);
}

TEST(NodeMaintenance, TheLeaseIsStillEnforced) {
    Harness h("a");
    h.boot_to_standby({{"b", S::Standby}, {"c", S::Standby}});
    h.finish(HookKind::Start, true);
    EXPECT_EQ(h.maintenance(true), "");
    h.silence("b");
    h.silence("c");
    h.clear();
    h.advance(2 * h.settings().dead_time);
    EXPECT_TRUE(h.noticed(NoticeKind::LeaseLost));
    EXPECT_TRUE(h.ran(HookKind::Stop) || h.killed());
}

TEST(NodeMaintenance, OffIsRefusedWhileTheNodeThatHeldTheServicesCannotBeHeard) {
    Harness h("b");
    h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
    h.peer("a", S::Running, 3);
    EXPECT_EQ(h.maintenance(true), "");
    h.announces_maintenance("a", true, h.node().maintenance().epoch);
    h.silence("a");  // its freehad stopped, leaving the services (or it died)
    h.advance(3 * h.settings().interval);  // not timed out yet, but silent
    EXPECT_NE(h.maintenance(false).find("node a last said it runs the services"), std::string::npos);
    h.advance(2 * h.settings().dead_time);
    EXPECT_NE(h.maintenance(false).find("node a last said it runs the services"), std::string::npos);
    EXPECT_TRUE(h.node().maintenance().on);
    h.peer("a", S::Standby);  // freehad runs there again
    EXPECT_EQ(h.maintenance(false), "");
}

TEST(NodeMaintenance, NobodyElectsWhileANodeThatRanTheServicesInMaintenanceIsSilent) {
    Harness h("b");
    h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
    h.peer("a", S::Running, 3);
    h.announces_maintenance("a", true, 5000);
    h.silence("a");  // died in maintenance mode: what it ran may still run
    h.advance(2 * h.settings().dead_time);
    h.announces_maintenance("c", false, 6000);  // turned off elsewhere
    h.finish(HookKind::Monitor, false);
    h.finish(HookKind::Stop, true);
    h.advance(3 * h.settings().dead_time);
    EXPECT_EQ(h.state(), S::Standby);
    EXPECT_FALSE(h.noticed(NoticeKind::Takeover));
    h.peer("a", S::Standby, 0, Role::Member, wire::kFlagStandby);  // heard again, found nothing, kept out
    h.advance(2 * h.settings().dead_time);
    EXPECT_TRUE(h.noticed(NoticeKind::Takeover));  // the election goes on: b is the first eligible node
}

// --- wire versions --------------------------------------------------------------

TEST(NodeVersions, AnUnknownWireVersionIsCountedAndNamedOnce) {
    Harness h("b");
    h.boot_to_standby({{"a", S::Standby}, {"c", S::Standby}});
    auto datagram = wire::encode(heartbeat_of("d", S::Standby, 1));
    datagram[4] = 4;
    h.clear();
    h.receive(datagram);
    h.receive(datagram);
    auto texts = h.notices(NoticeKind::UnknownWireVersion);
    ASSERT_EQ(texts.size(), 1u);
    EXPECT_NE(texts[0].find("wire version 4"), std::string::npos);
    EXPECT_EQ(h.node().counters().malformed[static_cast<std::size_t>(wire::Reject::BadVersion)], 2u);
    EXPECT_EQ(h.node().membership().peers().count("d"), 0u);
}

TEST(NodeVersions, SpeaksVersion2WhileAPeerOfThePreviousReleaseIsHeard) {
    Harness h("b");
    h.boot_to_standby({{"a", S::Standby}, {"c", S::Standby}});
    h.clear();
    h.advance(h.settings().interval);
    EXPECT_EQ(h.last_heartbeat()->version, wire::kVersion);
    h.expects("c", 0);
    h.clear();
    h.advance(h.settings().interval);
    EXPECT_EQ(h.last_heartbeat()->version, wire::kPreviousVersion);
    EXPECT_EQ(h.last_heartbeat()->understands, wire::kVersion);
    EXPECT_EQ(h.node().status(h.now()).wire_version, wire::kPreviousVersion);
    h.silence("c");  // upgraded: it restarts as the current release
    h.advance(2 * h.settings().dead_time);
    h.peer("c", S::Standby);
    h.clear();
    h.advance(h.settings().interval);
    EXPECT_EQ(h.last_heartbeat()->version, wire::kVersion);
}


// --- history: claims and stops by cause, hook runs --------------------------

// b, elected at start-up beside c and d, runs the services.
void run_services(Harness& h) {
    h.boot_to_standby({{"c", S::Standby}, {"d", S::Standby}});
    h.finish(HookKind::Start, true);
    ASSERT_EQ(h.node().phase(), Phase::Running);
}

// A script that leads b to one claim or one stop, and the cause it must be counted under.
template <typename Cause>
struct CauseScript {
    Cause cause;
    std::function<void(Harness&)> script;
};

// Exactly one count, under `cause`, and none under any other.
template <typename Cause, std::size_t N>
void expect_counted_once(const std::array<std::uint64_t, N>& counts, const EnumNames<Cause, N>& names, Cause cause) {
    for (std::size_t i = 0; i < N; ++i) {
        auto other = static_cast<Cause>(i);
        EXPECT_EQ(counts[i], other == cause ? 1u : 0u) << names(other);
    }
}

using ClaimScript = CauseScript<ClaimCause>;
class NodeHistoryClaims : public ::testing::TestWithParam<ClaimScript> {};

TEST_P(NodeHistoryClaims, EachClaimIsCountedOnceUnderItsCause) {
    Harness h("b");
    GetParam().script(h);
    expect_counted_once(h.node().status(h.now()).history.claims, kClaimCauseNames, GetParam().cause);
}

const ClaimScript kClaimScripts[] = {
    {ClaimCause::Startup, [](Harness& h) { run_services(h); }},
    {ClaimCause::Failover, [](Harness& h) { h.claim_after_a_fell_silent(); }},
    {ClaimCause::Switchover,
     [](Harness& h) {
         h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
         h.peer("a", S::Running, 3);
         h.handing_over("a", S::Standby, "b");
         h.advance(h.settings().interval);
         EXPECT_TRUE(holds_services(h.state()));
     }},
    {ClaimCause::Forced,
     [](Harness& h) {
         h.boot_to_standby({{"a", S::Running}, {"c", S::Standby}});
         h.peer("a", S::Running, 3);
         h.command(Command::ForceStart);
         EXPECT_EQ(h.node().phase(), Phase::StartingHook);
     }},
    {ClaimCause::FoundRunning,
     [](Harness& h) {
         h.start();
         h.finish(HookKind::Monitor, true);
         EXPECT_EQ(h.node().phase(), Phase::Running);
     }},
};
INSTANTIATE_TEST_SUITE_P(Causes, NodeHistoryClaims, ::testing::ValuesIn(kClaimScripts),
                         [](const auto& info) { return std::string(kClaimCauseNames(info.param.cause)); });

using StopScript = CauseScript<StopCause>;
class NodeHistoryStops : public ::testing::TestWithParam<StopScript> {};

// One stop, under its cause; a stop made urgent on the way (a lease running
// low during a planned stop, a failed stophasrv) is the same stop.
TEST_P(NodeHistoryStops, EachStopIsCountedOnceUnderItsCause) {
    Harness h("b");
    GetParam().script(h);
    h.finish_stops();
    expect_counted_once(h.node().status(h.now()).history.stops, kStopCauseNames, GetParam().cause);
}

// b's claim, elected beside c and d, that neither backs: it stays pending.
void pending_claim(Harness& h) {
    h.withhold("c");
    h.withhold("d");
    h.boot_to_standby({{"c", S::Standby}, {"d", S::Standby}});
    ASSERT_EQ(h.node().phase(), Phase::StartingPending);
}

const StopScript kStopScripts[] = {
    {StopCause::Operator, [](Harness& h) { run_services(h); h.command(Command::Stop); }},
    {StopCause::Standby, [](Harness& h) { run_services(h); h.command(Command::Standby); }},
    {StopCause::Switchover, [](Harness& h) { run_services(h); EXPECT_EQ(h.switchover("c"), ""); }},
    {StopCause::Shutdown, [](Harness& h) { run_services(h); h.command(Command::Shutdown); }},
    {StopCause::Leave, [](Harness& h) { run_services(h); h.command(Command::Leave); }},
    {StopCause::Failed,
     [](Harness& h) {
         run_services(h);
         h.services_failed("the check failed");
         // stophasrv fails too: the stop is killed, still one stop
         h.finish(HookKind::Stop, false);
     }},
    {StopCause::LeaseLost,
     [](Harness& h) {
         run_services(h);
         h.silence("c");
         h.silence("d");
         h.advance(h.settings().dead_time * 2);
     }},
    {StopCause::Rival, [](Harness& h) { run_services(h); h.peer("a", S::Running, 50); }},
    {StopCause::QuorumLost,
     [](Harness& h) {
         pending_claim(h);
         h.silence("c");
         h.silence("d");
         h.advance(h.settings().dead_time * 2);
     }},
    {StopCause::Maintenance,
     [](Harness& h) {  // the admin stopped the services by hand in maintenance mode
         run_services(h);
         EXPECT_EQ(h.maintenance(true), "");
         EXPECT_EQ(h.maintenance(false), "");
         h.finish(HookKind::Monitor, false);
     }},
};
INSTANTIATE_TEST_SUITE_P(Causes, NodeHistoryStops, ::testing::ValuesIn(kStopScripts),
                         [](const auto& info) { return std::string(kStopCauseNames(info.param.cause)); });

TEST(NodeHistory, EachHookRunIsCountedWhenItEndsWithItsOutcomeAndDuration) {
    Harness h("b");
    h.start();
    h.advance(300 * ms);
    h.finish(HookKind::Monitor, false);  // the start-up probe: nothing runs here
    h.advance(20 * ms);
    h.finish(HookKind::Stop, true);
    const History& history = h.node().status(h.now()).history;
    const HookRuns& monitor = history.hooks.at(static_cast<std::size_t>(HookKind::Monitor));
    EXPECT_EQ(monitor.runs, 1u);
    EXPECT_EQ(monitor.failures, 1u);
    EXPECT_EQ(monitor.duration_sum, 300 * ms);
    // Cumulative buckets: 0.3 s is above 0.25 s, within 0.5 s and every larger bound.
    for (std::size_t i = 0; i < HookRuns::kBucketSeconds.size(); ++i)
        EXPECT_EQ(monitor.buckets[i], HookRuns::kBucketSeconds[i] >= 0.3 ? 1u : 0u) << HookRuns::kBucketSeconds[i];
    const HookRuns& stop = history.hooks.at(static_cast<std::size_t>(HookKind::Stop));
    EXPECT_EQ(stop.runs, 1u);
    EXPECT_EQ(stop.failures, 0u);
    EXPECT_EQ(stop.duration_sum, 20 * ms);
    EXPECT_EQ(stop.buckets[0], 0u);  // 10 ms
    EXPECT_EQ(stop.buckets[1], 1u);  // 50 ms
    EXPECT_EQ(history.hooks.at(static_cast<std::size_t>(HookKind::Start)).runs, 0u);
}

TEST(NodeHistory, TheDocumentCarriesTheHistoryAndFreehactlReadsItBack) {
    Harness h("b");
    run_services(h);
    History history = h.node().status(h.now()).history;
    auto back = history_from_json(to_json(history));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, history);
    EXPECT_EQ(to_json(history)["claims"]["startup"], 1);
    // A document whose buckets another release drew differently is not misread.
    auto other = to_json(history);
    other["hooks"]["starthasrv"]["duration_buckets"][0]["le_seconds"] = 0.02;
    EXPECT_FALSE(history_from_json(other));
}

}  // namespace
