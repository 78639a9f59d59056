// A test driver of the daemon's etcd link (EtcdBackend): commands on stdin, what it sees as JSON lines on stdout.
//
// Usage: etcd-probe --prefix P --dead-time 1s --interval 200ms [--ca F --cert F --key F] URL...
// Commands, one per line: "claim KEY VALUE", "release KEY", "publish KEY VALUE",
// "mark KEY VALUE" (the cluster's mark), "revoke", "quit".
// Every line out carries "t", CLOCK_MONOTONIC in microseconds (one clock for
// every namespace of the machine: the tests compare probes' times), and the
// session's lease end on that clock ("lease_until", null without a lease).
// A published record's line ("published") comes when etcd's acknowledged value
// of it changes: acknowledged, or gone with a lost lease (null).
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "bus/sd_ptr.h"
#include "daemon/etcd_backend.h"

using namespace freeha;
using nlohmann::json;

namespace {

void emit(const EtcdBackend& b, json line) {
    line["t"] = b.now().count();
    auto until = b.session().lease_until();
    line["lease_until"] = until ? json(until->count()) : json(nullptr);
    std::cout << line.dump() << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
    EtcdBackendSettings settings;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << "etcd-probe: " << arg << " needs a value\n";
                std::exit(2);
            }
            return argv[++i];
        };
        auto span = [&]() {
            auto v = parse_timespan(value());
            if (!v) {
                std::cerr << "etcd-probe: " << arg << ": not a time span\n";
                std::exit(2);
            }
            return *v;
        };
        if (arg == "--prefix") settings.prefix = value();
        else if (arg == "--dead-time") settings.session.dead_time = span();
        else if (arg == "--interval") settings.session.interval = span();
        else if (arg == "--call-timeout") settings.session.call_timeout = span();
        else if (arg == "--ca") settings.tls.ca_file = value();
        else if (arg == "--cert") settings.tls.cert_file = value();
        else if (arg == "--key") settings.tls.key_file = value();
        else settings.session.endpoints.push_back(arg);
    }
    if (settings.session.endpoints.empty() || settings.prefix.empty()) {
        std::cerr << "etcd-probe: usage: etcd-probe --prefix P [--dead-time T] [--interval T] URL...\n";
        return 2;
    }

    sd_event* raw = nullptr;
    if (sd_event_default(&raw) < 0) return 1;
    EventPtr event(raw);
    std::unique_ptr<EtcdBackend> backend;
    std::string error;
    backend = EtcdBackend::create(
        event.get(), settings,
        EtcdBackend::Listener{
            {},  // the lease's end: reported by the tick below
            [&](const etcd::Event& e) {
                emit(*backend, {{"event", etcd::to_string(e.kind)}, {"key", e.key}, {"detail", e.detail}});
            },
            [&](const std::vector<std::string>& changed) {
                for (const auto& key : changed) {
                    auto it = backend->watch().view().find(key);
                    emit(*backend, {{"changed", key},
                                    {"present", it != backend->watch().view().end()},
                                    {"value", it != backend->watch().view().end() ? it->second.value : ""}});
                }
            },
            [&](const std::string& f) { emit(*backend, {{"watch_failure", f}}); }},
        &error);
    if (!backend) {
        std::cerr << "etcd-probe: " << error << "\n";
        return 1;
    }

    // What the callbacks below share: the commands read so far, the lease end and the records last reported.
    struct State {
        EtcdBackend* backend;
        std::string input;
        std::optional<Usec> reported;
        std::map<std::string, std::optional<std::string>> published;  // key -> the value acknowledged, as reported
    } state{backend.get(), {}, {}, {}};
    sd_event_source* input = nullptr;
    auto on_input = [](sd_event_source* s, int fd, std::uint32_t, void* userdata) -> int {
        auto* st = static_cast<State*>(userdata);
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) return sd_event_exit(sd_event_source_get_event(s), 0);
        st->input.append(buf, static_cast<std::size_t>(n));
        for (std::size_t nl; (nl = st->input.find('\n')) != std::string::npos;) {
            std::istringstream line(st->input.substr(0, nl));
            st->input.erase(0, nl + 1);
            std::string command, key, value;
            line >> command >> key >> value;
            if (command == "claim") st->backend->claim(key, value);
            else if (command == "release") st->backend->release(key);
            else if (command == "publish") {
                st->published.try_emplace(key);
                st->backend->publish(key, value);
            } else if (command == "mark") st->backend->mark_cluster(key, value);
            else if (command == "revoke") st->backend->revoke();
            else if (command == "quit") return sd_event_exit(sd_event_source_get_event(s), 0);
            else std::cerr << "etcd-probe: unknown command '" << command << "'\n";
        }
        return 0;
    };
    if (sd_event_add_io(event.get(), &input, STDIN_FILENO, EPOLLIN, on_input, &state) < 0) return 1;
    EventSourcePtr input_source(input);
    // Every change of the lease's end (each acknowledged keepalive), within 10 ms: the tests
    // compare a successor's start with the last end the holder counted on. Likewise each
    // published record's acknowledged value ("published": KEY, "value": null while none).
    auto on_tick = [](sd_event_source* s, std::uint64_t usec, void* userdata) -> int {
        auto* st = static_cast<State*>(userdata);
        const auto& session = st->backend->session();
        auto until = session.lease_until();
        if (until && until != st->reported) emit(*st->backend, {{"renewed", true}});
        st->reported = until;
        for (auto& [key, reported] : st->published) {
            auto now = session.published(key);
            if (now == reported) continue;
            reported = now;
            emit(*st->backend, {{"published", key}, {"value", now ? json(*now) : json(nullptr)}});
        }
        sd_event_source_set_time(s, usec + 10 * 1000);
        return 0;
    };
    sd_event_source* tick = nullptr;
    if (sd_event_add_time_relative(event.get(), &tick, CLOCK_MONOTONIC, 10 * 1000, 0, on_tick, &state) < 0) return 1;
    sd_event_source_set_enabled(tick, SD_EVENT_ON);
    EventSourcePtr tick_source(tick);
    backend->start();
    emit(*backend, {{"started", true}});
    int r = sd_event_loop(event.get());
    input_source.reset();
    tick_source.reset();
    backend.reset();
    return r < 0 ? 1 : 0;
}
