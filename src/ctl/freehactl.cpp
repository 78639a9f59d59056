// freehactl: show and steer the local freehad over D-Bus; mutating verbs wait for the cluster to get there.
#include <getopt.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <cstdio>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "build_config.h"
#include "bus/manager_object.h"
#include "core/timespan.h"
#include "ctl/client.h"
#include "ctl/groups.h"
#include "ctl/http.h"
#include "ctl/keygen.h"
#include "ctl/links.h"
#include "ctl/maintenance.h"
#include "ctl/metrics.h"

using namespace freeha;
using namespace freeha::ctl;

namespace {

enum Exit { kOk = 0, kFailed = 1, kUsage = 2, kUnreachable = 3 };

constexpr Usec kDefaultTimeout = 2 * 60 * kUsecPerSec;
// The longest wait: a command waits at most for StartTimeout= or StopTimeout= (at most 24h
// each) and a switchover's two; far beyond it a deadline on the steady clock would overflow.
constexpr Usec kMaxTimeout = 7 * 24 * 3600 * kUsecPerSec;
constexpr auto kPollInterval = std::chrono::milliseconds(100);
// A scrape must end before Prometheus's own timeout (10 s by default) gives up on it.
constexpr Usec kMetricsCallTimeout = 5 * kUsecPerSec;

struct Options {
    bool user_bus = false;
    bool json = false;
    bool wait = true;
    bool http = false;
    Usec timeout = kDefaultTimeout;
    std::string verb;
    std::vector<std::string> args;
};

const char* kUsageText =
    "Usage: freehactl [OPTIONS] COMMAND [ARG]\n"
    "\n"
    "Show and steer the freehad of this machine over D-Bus (org.freeha1).\n"
    "\n"
    "Commands:\n"
    "  status [--json]      the cluster as this node sees it\n"
    "  metrics [--http]     the status in Prometheus's text format (freeha_up 0 when freehad\n"
    "                       does not answer within 5s); --http: answer one HTTP request on\n"
    "                       stdin/stdout (freeha-metrics@.service)\n"
    "  watch                status, redrawn whenever it changes (Ctrl-C ends)\n"
    "  stop                 stop the services here; the daemon stays up (SIGHUP)\n"
    "  force-start          start the services here without asking the others (SIGUSR1)\n"
    "  clear-error [GROUP]  clear this node's error latch (SIGUSR2), or its latch for GROUP alone\n"
    "  standby              stop the services here and never take them\n"
    "  unstandby            this node may take the services again\n"
    "  switchover [NODE]    hand the services to NODE, or to the next eligible node\n"
    "  switchover GROUP NODE  hand the service group GROUP (run on the node running it) to NODE\n"
    "  rebalance            move the groups this node runs back to an even spread, one planned\n"
    "                       switchover at a time; names the moves other nodes must make\n"
    "  reload-config        re-read the configuration; the services are not touched\n"
    "  maintenance on|off   maintenance mode, cluster-wide: no node starts, stops, monitors or\n"
    "                       fails over anything (on); off probes where the services run\n"
    "  keygen [FILE]        write a new heartbeat key (64 random bytes, mode 0400) to FILE,\n"
    "                       default " FREEHA_SYSCONFDIR "/authkey; copy it to every node\n"
    "\n"
    "Options:\n"
    "      --user           talk to the freehad on the user bus\n"
    "      --json           status as JSON: the status file's document (schema_version 1)\n"
    "      --timeout SPAN   how long a command waits for its result (default 2min)\n"
    "      --no-wait        return once freehad has accepted the command\n"
    "      --http           metrics: read one HTTP/1.x request from stdin, answer on stdout\n"
    "  -h, --help           this text\n"
    "      --version        the version\n"
    "\n"
    "Exit status: 0 done, 1 failed or timed out, 2 usage error, 3 freehad not reachable.\n";

int usage_error(const std::string& what) {
    std::cerr << "freehactl: " << what << " (see freehactl --help)\n";
    return kUsage;
}

int report(const CallError& e) {
    std::cerr << "freehactl: " << e.message << "\n";
    return e.unreachable ? kUnreachable : kFailed;
}

std::string age_text(Usec age) {
    if (age < kUsecPerSec) return std::to_string(age / kUsecPerMsec) + "ms ago";
    return format_timespan(age / kUsecPerMsec * kUsecPerMsec) + " ago";
}

// "Packets: 1234 accepted; dropped: 3 replayed, 12 malformed_bad_magic" (own echoes left out).
std::string packets_line(const ClusterView& v) {
    std::string accepted = "0", dropped;
    for (const auto& [name, value] : v.packets) {
        if (name == "accepted") accepted = std::to_string(value);
        if (name == "accepted" || name == "own" || value == 0) continue;
        dropped += (dropped.empty() ? "" : ", ") + std::to_string(value) + " " + name;
    }
    return "Packets: " + accepted + " accepted; dropped: " + (dropped.empty() ? "none" : dropped);
}

std::string render(const ClusterView& v) {
    char line[256];
    std::string out;
    if (std::string m = maintenance_line(v); !m.empty()) out += m + "\n";
    out += "Cluster " + v.cluster + ", seen from " + v.node + " (" + v.role + ", mode " + v.mode +
           (v.services_target.empty() ? "" : " " + v.services_target) + ")\n";
    unsigned reachable = 0;
    for (const auto& n : v.nodes) reachable += n.reachable;
    // With etcd, its majority makes the quorum, and a node is reachable while its member key exists.
    std::string counted = v.etcd ? " (from etcd; " + std::to_string(reachable) + " nodes in etcd)"
                                 : " (" + std::to_string(reachable) + " of " + std::to_string(v.expected_nodes) +
                                       " nodes reachable)";
    out += "Quorum: " + std::string(v.quorate ? "yes" : "NO") + counted + "    Term: " + std::to_string(v.term) + "\n";
    out += "Active node: " + (v.active_node.empty() ? std::string("none") : v.active_node) + "\n";
    out += "This node: " + v.state + " (" + v.phase + ")" +
           (v.lease_remaining ? ", lease " + format_timespan(*v.lease_remaining / 1000 * 1000) + " left" : "") + "\n";
    if (v.unexpected_services != 0)
        out += "Services found running here unbidden and stopped: " + std::to_string(v.unexpected_services) + " time(s)\n";
    if (v.log_lines_dropped != 0)
        out += "Log lines dropped (the journal did not take them in time): " + std::to_string(v.log_lines_dropped) + "\n";
    for (const auto& a : v.addresses) out += "Address: " + a.describe() + "\n";
    if (v.standby) out += "This node is in standby.\n";
    if (!v.unavailable.empty()) out += "This node stands aside (it cannot take the services): " + v.unavailable + "\n";
    if (v.errored) out += "This node is errored: " + v.last_error + "\n";
    out += "\n";
    std::snprintf(line, sizeof line, "%-20s %-9s %-10s %-9s %-15s %-5s %s\n", "NODE", "STATE", "ROLE", "REACHABLE",
                  "VERSION", "LOSS", "LAST HEARD");
    out += line;
    for (const auto& n : v.nodes) {
        bool self = n.name == v.node;
        std::string heard = self ? "(this node)" : age_text(n.last_heard_usec_ago);
        std::string name = n.name + (n.name == v.active_node ? " *" : "");
        std::snprintf(line, sizeof line, "%-20s %-9s %-10s %-9s %-15s %-5s %s\n", name.c_str(), n.state.c_str(),
                      n.role.c_str(), n.reachable ? "yes" : "no", version_text(n).c_str(), loss_text(n).c_str(),
                      heard.c_str());
        out += line;
    }
    for (const auto& n : v.nodes)
        if (!n.not_counted.empty()) out += n.name + " is not counted: " + n.not_counted + "\n";
    for (const auto& n : v.nodes)
        if (n.reachable && n.wire_version >= 3 && n.maintenance != v.maintenance)
            out += n.name + " does not announce maintenance mode " + (v.maintenance ? "on" : "off") + " yet\n";
    for (const auto& n : v.nodes)
        if (n.left) out += n.name + " left (its machine shut down)\n";
    for (const auto& l : lossy_lines(v)) out += l + "\n";
    if (auto groups = group_lines(v); !groups.empty()) {
        out += "\n";
        for (const auto& l : groups) out += l + "\n";
    }
    out += "\n" + packets_line(v) + "\n";
    if (v.etcd)
        for (const auto& l : etcd_lines(*v.etcd)) out += l + "\n";
    return out;
}

bool holds_services(const std::string& state) {
    return state == "STARTING" || state == "RUNNING" || state == "STOPPING";
}

// What a waiting verb decides from one view: keep waiting, done, or failed (with why).
struct Verdict {
    enum Kind { Wait, Done, Failed } kind = Wait;
    std::string message;
};
using Goal = std::function<Verdict(const ClusterView&)>;

int wait_for(Client& client, const Options& o, const std::string& what, const Goal& goal) {
    if (!o.wait) return kOk;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(o.timeout.count());
    std::string last;
    while (true) {
        CallError error;
        auto view = client.read(&error);
        if (!view) return report(error);
        Verdict v = goal(*view);
        if (v.kind == Verdict::Done) {
            if (!v.message.empty()) std::cout << v.message << "\n";
            return kOk;
        }
        if (v.kind == Verdict::Failed) {
            std::cerr << "freehactl: " << what << " failed: " << v.message << "\n";
            return kFailed;
        }
        last = v.message;
        if (std::chrono::steady_clock::now() >= deadline) {
            std::cerr << "freehactl: " << what << ": timed out after " << format_timespan(o.timeout)
                      << (last.empty() ? "" : " (" + last + ")") << "\n";
            return kFailed;
        }
        std::this_thread::sleep_for(kPollInterval);
    }
}

// A reachable member that may take the services when no node runs them: the
// one a standby here waits for, if there is one.
const ClusterView::Node* takeover_candidate(const ClusterView& v) {
    if (!v.quorate) return nullptr;
    for (const auto& n : v.nodes)
        if (n.name != v.node && n.reachable && n.role == "member" && n.state == "STANDBY" && !n.standby && !n.errored)
            return &n;
    return nullptr;
}

Verdict errored_here(const ClusterView& v) { return {Verdict::Failed, "this node is ERRORED: " + v.last_error}; }

Verdict services_elsewhere(const ClusterView& v, const std::string& what) {
    if (holds_services(v.state)) return {Verdict::Wait, "this node is " + v.state};
    const auto* active = v.find(v.active_node);
    if (active == nullptr || active->name == v.node) return {Verdict::Wait, "no other node runs the services yet"};
    if (active->state != "RUNNING") return {Verdict::Wait, active->name + " is " + active->state};
    return {Verdict::Done, what + "; the services run on " + active->name};
}

int watch(Client& client) {
    sd_bus* bus = client.get();
    // Any PropertiesChanged from freehad wakes the loop; a 1 s tick refreshes the ages.
    sd_bus_add_match(bus, nullptr,
                     "type='signal',sender='org.freeha1',interface='org.freedesktop.DBus.Properties',"
                     "member='PropertiesChanged',path_namespace='/org/freeha1'",
                     nullptr, nullptr);
    bool tty = isatty(STDOUT_FILENO) != 0;
    while (true) {
        CallError error;
        auto view = client.read(&error);
        if (tty) std::cout << "\033[H\033[2J";
        if (view)
            std::cout << render(*view);
        else
            std::cout << error.message << "\n";
        if (!tty) std::cout << "--\n";
        std::cout.flush();
        while (sd_bus_process(bus, nullptr) > 0) {
        }
        if (sd_bus_wait(bus, kUsecPerSec.count()) < 0) return report(CallError{"lost the bus connection", true});
        while (sd_bus_process(bus, nullptr) > 0) {
        }
    }
}

// The exposition even when freehad does not answer (freeha_up 0 alone): a
// scrape or a textfile collector must say so, never keep stale values.
// Whether freehad answered goes to *answered, its error to *error.
std::string read_metrics(const Options& o, CallError* error, bool* answered) {
    std::optional<ClusterView> view;
    auto started = std::chrono::steady_clock::now();
    if (auto client = Client::connect(o.user_bus, kMetricsCallTimeout, error)) view = client->read(error);
    // sd-bus says "Connection timed out", or "Transport endpoint is not
    // connected" when the bus itself never answered Hello: say what happened.
    if (!view && std::chrono::steady_clock::now() - started >= std::chrono::microseconds(kMetricsCallTimeout.count()))
        error->message = "no answer within " + format_timespan(kMetricsCallTimeout) + " (" + error->message + ")";
    *answered = view.has_value();
    return metrics_text(view ? &*view : nullptr, view ? std::string() : error->message);
}

bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

// freeha-metrics@.service: one connection accepted by systemd on stdin and
// stdout. The request head is read with a bound on its size and its time,
// freehad is asked only for a GET of /metrics, and the answer closes the
// connection. freehad down or silent is no HTTP error: 200 with freeha_up 0
// (and why, as a comment), so that Prometheus tells a node whose freehad does
// not answer (freeha_up 0) from one it cannot scrape at all (up 0).
int metrics_http(const Options& o) {
    std::signal(SIGPIPE, SIG_IGN);  // a client gone before the answer: a failed write, not a death
    // A client that reads nothing must not hold the process: at most this long per write.
    timeval send_timeout{static_cast<time_t>(kRequestTimeout / kUsecPerSec), 0};
    setsockopt(STDOUT_FILENO, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);  // ENOTSOCK on a pipe: fine
    std::string head;
    HeadRead read = read_request_head(STDIN_FILENO, &head);
    HttpVerdict verdict = judge_request(read, head);
    std::string response;
    if (verdict.status != 200) {
        std::cerr << "freehactl: metrics --http: answered " << verdict.status << ": " << verdict.why << "\n";
        response = http_response(verdict.status, "text/plain; charset=utf-8", verdict.why + "\n");
    } else {
        CallError error;
        bool answered = false;
        std::string body = read_metrics(o, &error, &answered);
        response = http_response(200, kExpositionType, body, verdict.head_only);
    }
    if (!write_all(STDOUT_FILENO, response)) {
        std::cerr << "freehactl: metrics --http: the answer could not be sent: " << std::strerror(errno) << "\n";
        return kFailed;
    }
    return kOk;
}

int metrics(const Options& o) {
    if (o.http) return metrics_http(o);
    CallError error;
    bool answered = false;
    std::cout << read_metrics(o, &error, &answered);
    return answered ? kOk : report(error);
}

int failed(const std::string& what) {
    std::cerr << "freehactl: " << what << "\n";
    return kFailed;
}

// `switchover GROUP NODE`, and each move of `rebalance`: the Group object's
// Switchover(), then wait until `to` runs the group.
int switchover_group(Client& client, const Options& o, const ClusterView& before, const std::string& group,
                     const std::string& to) {
    if (auto unknown = unknown_group_or_node(before, group, to)) return failed("switchover: " + *unknown);
    CallError error;
    if (!client.call_group(group, "Switchover", to, &error)) return report(error);
    return wait_for(client, o, "switchover of group " + group,
                    [group, to, term = before.find_group(group)->term](const ClusterView& v) -> Verdict {
                        GroupProgress p = group_switchover_progress(v, group, to, term);
                        return {p.kind == GroupProgress::Done     ? Verdict::Done
                                : p.kind == GroupProgress::Failed ? Verdict::Failed
                                                                  : Verdict::Wait,
                                p.message};
                    });
}

// `rebalance`: the status's planned moves of the groups this node runs, one
// at a time, each awaited before the next (a switchover is made on the node
// running the group, so the moves of other nodes are named, not made).
int rebalance(Client& client, const Options& o) {
    std::size_t moved = 0;
    while (true) {
        CallError error;
        auto view = client.read(&error);
        if (!view) return report(error);
        if (view->maintenance) return failed("rebalance: maintenance mode is on: freehad moves nothing");
        RebalanceStep step = rebalance_step(*view);
        if (!step.here) {
            if (step.elsewhere.empty()) {
                std::cout << "rebalance done: the spread is even (" << moved << " group(s) moved from this node)\n";
                return kOk;
            }
            std::set<std::string> nodes;
            for (const auto& m : step.elsewhere) nodes.insert(m.from);
            std::string where, moves;
            for (const auto& n : nodes) where += (where.empty() ? "" : ", ") + n;
            for (const auto& m : step.elsewhere) moves += (moves.empty() ? "" : "; ") + describe(m);
            return failed("rebalance: " + std::to_string(moved) + " group(s) moved from this node; " +
                          std::to_string(step.elsewhere.size()) + " move(s) left that only " + where +
                          " can make (run freehactl rebalance there): " + moves);
        }
        // Each move goes straight to its place: more moves than groups means the plan keeps changing.
        if (moved > view->groups.size()) return failed("rebalance: the plan keeps changing; stopped after " +
                                                       std::to_string(moved) + " moves");
        std::cout << "rebalance: moving " << describe(*step.here) << "\n" << std::flush;
        if (int r = switchover_group(client, o, *view, step.here->group, step.here->to); r != kOk) return r;
        ++moved;
        if (!o.wait) return kOk;  // one move, not awaited
    }
}

int run(const Options& o) {
    if (o.verb == "metrics") return metrics(o);
    CallError error;
    auto client = Client::connect(o.user_bus, &error);
    if (!client) return report(error);
    if (o.verb == "status" && o.json) {  // the status file's document, as the daemon builds it
        auto document = client->status(&error);
        if (!document) return report(error);
        std::cout << document->dump(2) << "\n";
        return kOk;
    }
    auto self = client->read(&error);
    if (!self) return report(error);

    if (o.verb == "status") {
        std::cout << render(*self);
        return kOk;
    }
    if (o.verb == "watch") return watch(*client);

    if (o.verb == "stop") {
        if (!client->call("Stop", &error)) return report(error);
        return wait_for(*client, o, "stop", [](const ClusterView& v) -> Verdict {
            if (v.state == "STOPPING") return {Verdict::Wait, "stopping"};
            return {Verdict::Done, "stop done; this node is now " + v.state};
        });
    }
    if (o.verb == "force-start") {
        if (!client->call("ForceStart", &error)) return report(error);
        return wait_for(*client, o, "force-start", [](const ClusterView& v) -> Verdict {
            if (v.state == "RUNNING") return {Verdict::Done, "services running here"};
            if (v.state == "ERRORED") return errored_here(v);
            return {Verdict::Wait, "this node is " + v.state};
        });
    }
    if (o.verb == "clear-error" && !o.args.empty()) {
        const std::string group = o.args[0];
        if (auto unknown = unknown_group_or_node(*self, group, "")) return failed("clear-error: " + *unknown);
        if (!client->call_group(group, "ClearError", &error)) return report(error);
        return wait_for(*client, o, "clear-error " + group, [group](const ClusterView& v) -> Verdict {
            const auto* g = v.find_group(group);
            if (g == nullptr) return {Verdict::Failed, "group " + group + " is no longer configured"};
            if (g->errored || g->state == "ERRORED") return {Verdict::Wait, "still errored"};
            return {Verdict::Done, "error of group " + group + " cleared (" + g->state + ")"};
        });
    }
    if (o.verb == "clear-error") {
        if (!client->call("ClearError", &error)) return report(error);
        return wait_for(*client, o, "clear-error", [](const ClusterView& v) -> Verdict {
            if (v.errored || v.state == "ERRORED") return {Verdict::Wait, "still errored"};
            return {Verdict::Done, "error cleared (" + v.state + ")"};
        });
    }
    if (o.verb == "standby") {
        if (!client->call("SetStandby", true, &error)) return report(error);
        return wait_for(*client, o, "standby", [](const ClusterView& v) -> Verdict {
            if (!v.standby) return {Verdict::Wait, "standby not yet announced"};
            if (holds_services(v.state)) return {Verdict::Wait, "this node is " + v.state};
            // A takeover under way elsewhere is part of the request: see it through.
            if (const auto* active = v.find(v.active_node); active != nullptr && active->state != "RUNNING")
                return {Verdict::Wait, active->name + " is " + active->state};
            // Between this node's stop and the next node's claim no node is
            // active: wait for the takeover while a node can make it.
            if (const auto* next = takeover_candidate(v); v.active_node.empty() && next != nullptr)
                return {Verdict::Wait, "no node runs the services yet; " + next->name + " may take them"};
            return {Verdict::Done, "this node is in standby; active node: " +
                                       (v.active_node.empty() ? std::string("none") : v.active_node)};
        });
    }
    if (o.verb == "unstandby") {
        if (!client->call("SetStandby", false, &error)) return report(error);
        return wait_for(*client, o, "unstandby", [](const ClusterView& v) -> Verdict {
            if (v.standby) return {Verdict::Wait, "still in standby"};
            return {Verdict::Done, "this node may take the services again"};
        });
    }
    if (o.verb == "switchover" && o.args.size() == 2) return switchover_group(*client, o, *self, o.args[0], o.args[1]);
    if (o.verb == "rebalance") return rebalance(*client, o);
    if (o.verb == "switchover") {
        std::string to = o.args.empty() ? "" : o.args[0];
        // The term before: a claim of this node after it is the services
        // coming back here (the target failed to start them), however fast.
        auto before = client->read(&error);
        if (!before) return report(error);
        if (!client->call("Switchover", to, &error)) return report(error);
        return wait_for(*client, o, "switchover", [to, term = before->term](const ClusterView& v) -> Verdict {
            if (v.state == "ERRORED") return errored_here(v);
            if ((v.state == "STARTING" || v.state == "RUNNING") && v.term > term) {
                const auto* target = to.empty() ? nullptr : v.find(to);
                return {Verdict::Failed, "the services came back to this node" +
                                             (target && target->errored ? ": " + to + " is ERRORED" : std::string())};
            }
            Verdict moved = services_elsewhere(v, "switched over");
            if (moved.kind == Verdict::Done && !to.empty() && v.active_node != to)
                return {Verdict::Failed, "the services went to " + v.active_node + ", not " + to};
            return moved;
        });
    }
    if (o.verb == "maintenance") {
        bool on = o.args[0] == "on";
        if (!client->call("SetMaintenance", on, &error)) return report(error);
        return wait_for(*client, o, std::string("maintenance ") + o.args[0], [on](const ClusterView& v) -> Verdict {
            MaintenanceProgress p = maintenance_progress(v, on);
            if (p.kind == MaintenanceProgress::Done) return {Verdict::Done, p.message};
            if (p.kind == MaintenanceProgress::Failed) return {Verdict::Failed, p.message};
            return {Verdict::Wait, p.message};
        });
    }
    if (o.verb == "reload-config") {
        if (!client->call("ReloadConfig", &error)) return report(error);
        std::cout << "configuration reloaded\n";
        return kOk;
    }
    return usage_error("unknown command '" + o.verb + "'");
}

}  // namespace

int main(int argc, char** argv) {
    enum { kOptUser = 256, kOptJson, kOptTimeout, kOptNoWait, kOptVersion, kOptHttp };
    static const option kLong[] = {
        {"user", no_argument, nullptr, kOptUser},       {"json", no_argument, nullptr, kOptJson},
        {"timeout", required_argument, nullptr, kOptTimeout}, {"no-wait", no_argument, nullptr, kOptNoWait},
        {"help", no_argument, nullptr, 'h'},            {"version", no_argument, nullptr, kOptVersion},
        {"http", no_argument, nullptr, kOptHttp},
        {nullptr, 0, nullptr, 0},
    };
    Options o;
    opterr = 0;
    int c = 0;
    while ((c = getopt_long(argc, argv, ":h", kLong, nullptr)) != -1) {
        switch (c) {
        case kOptUser: o.user_bus = true; break;
        case kOptJson: o.json = true; break;
        case kOptNoWait: o.wait = false; break;
        case kOptHttp: o.http = true; break;
        case kOptTimeout: {
            auto span = parse_timespan(optarg);
            if (!span || *span == Usec()) return usage_error(std::string("--timeout ") + optarg + ": not a time span such as 30s");
            if (*span > kMaxTimeout)
                return usage_error(std::string("--timeout ") + optarg + ": at most " + format_timespan(kMaxTimeout));
            o.timeout = *span;
            break;
        }
        case 'h': std::cout << kUsageText; return kOk;
        case kOptVersion: std::cout << "freehactl " FREEHA_VERSION "\n"; return kOk;
        case ':': return usage_error(std::string(argv[optind - 1]) + " needs a value");
        default: return usage_error(std::string("unknown option '") + argv[optind - 1] + "'");
        }
    }
    if (optind >= argc) return usage_error("no command given");
    o.verb = argv[optind++];
    static const std::set<std::string> kVerbs{"status",    "watch",     "stop",       "force-start",   "clear-error",
                                              "standby",   "unstandby", "switchover", "reload-config", "keygen", "metrics",
                                              "maintenance", "rebalance"};
    if (kVerbs.count(o.verb) == 0) return usage_error("unknown command '" + o.verb + "'");
    for (; optind < argc; ++optind) o.args.emplace_back(argv[optind]);
    std::size_t max_args = o.verb == "switchover"                                                 ? 2
                           : o.verb == "keygen" || o.verb == "maintenance" || o.verb == "clear-error" ? 1
                                                                                                    : 0;
    if (o.args.size() > max_args) return usage_error(o.verb + ": unexpected argument '" + o.args[max_args] + "'");
    if (o.json && o.verb != "status") return usage_error("--json only applies to status");
    if (o.http && o.verb != "metrics") return usage_error("--http only applies to metrics");
    if (o.verb == "maintenance" && (o.args.empty() || (o.args[0] != "on" && o.args[0] != "off")))
        return usage_error(o.args.empty() ? "maintenance: say on or off"
                                          : "maintenance: '" + o.args[0] + "' is neither on nor off");
    if (o.verb == "keygen") {  // local: no daemon involved
        std::string path = o.args.empty() ? std::string(FREEHA_SYSCONFDIR "/authkey") : o.args[0];
        if (std::string error = ctl::write_new_key(path); !error.empty()) {
            std::cerr << "freehactl: keygen: " << error << "\n";
            return kFailed;
        }
        std::cout << "wrote a " << ctl::kKeygenBytes << "-byte key to " << path
                  << " (mode 0400); copy it to every node and set AuthKeyFile=" << path << "\n";
        return kOk;
    }
    return run(o);
}
