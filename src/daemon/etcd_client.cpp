#include "daemon/etcd_client.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <utility>

#include <sys/epoll.h>

#include "daemon/udp_channel.h"

namespace freeha {

namespace {

// An answer larger than this is no answer of etcd's to freehad's calls.
constexpr std::size_t kMaxBody = 4 * 1024 * 1024;
// A stream's connect, and how soon TCP keepalives start probing a quiet one
// (Linux then gives up after 9 unanswered probes: about 11 s in all).
constexpr long kStreamConnectTimeoutMs = 2000;
constexpr long kStreamKeepaliveIdleSec = 2;
constexpr long kStreamKeepaliveIntervalSec = 1;

std::once_flag curl_initialized;

}  // namespace

int add_etcd_timer(sd_event* event, sd_event_time_handler_t handler, void* userdata, EventSourcePtr* timer) {
    sd_event_source* s = nullptr;
    int r = sd_event_add_time(event, &s, CLOCK_MONOTONIC, UINT64_MAX, 1000, handler, userdata);
    if (r < 0) return r;
    timer->reset(s);
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
    return sd_event_source_set_priority(s, kHeartbeatSocketPriority);
}

struct EtcdClient::Transfer {
    EtcdClient* client;
    std::uint64_t id;
    bool streaming;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    std::string body;                 // the answer so far (a stream: its unfinished line)
    std::vector<std::string> lines;   // a stream's complete lines, not yet handed over
    bool too_large = false;
    char error[CURL_ERROR_SIZE] = {};

    ~Transfer() {
        if (easy != nullptr) {
            curl_multi_remove_handle(client->multi_, easy);
            curl_easy_cleanup(easy);
        }
        curl_slist_free_all(headers);
    }
};

std::unique_ptr<EtcdClient> EtcdClient::create(sd_event* event, std::vector<std::string> endpoints, EtcdTls tls,
                                               Done done, Line line, std::string* error) {
    CURLcode init = CURLE_OK;
    std::call_once(curl_initialized, [&] { init = curl_global_init(CURL_GLOBAL_DEFAULT); });
    if (init != CURLE_OK) {
        *error = std::string("cannot set up libcurl: ") + curl_easy_strerror(init);
        return nullptr;
    }
    std::unique_ptr<EtcdClient> client(
        new EtcdClient(event, std::move(endpoints), std::move(tls), std::move(done), std::move(line)));
    client->multi_ = curl_multi_init();
    if (client->multi_ == nullptr) {
        *error = "cannot set up libcurl: curl_multi_init failed";
        return nullptr;
    }
    curl_multi_setopt(client->multi_, CURLMOPT_SOCKETFUNCTION, &EtcdClient::on_socket);
    curl_multi_setopt(client->multi_, CURLMOPT_SOCKETDATA, client.get());
    curl_multi_setopt(client->multi_, CURLMOPT_TIMERFUNCTION, &EtcdClient::on_timer_change);
    curl_multi_setopt(client->multi_, CURLMOPT_TIMERDATA, client.get());
    int r = add_etcd_timer(event, &EtcdClient::on_timer, client.get(), &client->timer_);
    if (r < 0) {
        *error = "cannot add the etcd client's timer: " + std::string(strerror(-r));
        return nullptr;
    }
    sd_event_source* deferred = nullptr;
    r = sd_event_add_defer(event, &deferred, &EtcdClient::on_deferred, client.get());
    if (r < 0) {
        *error = "cannot add the etcd client's deferred source: " + std::string(strerror(-r));
        return nullptr;
    }
    client->deferred_.reset(deferred);
    sd_event_source_set_enabled(deferred, SD_EVENT_OFF);
    return client;
}

EtcdClient::EtcdClient(sd_event* event, std::vector<std::string> endpoints, EtcdTls tls, Done done, Line line)
    : event_(event),
      endpoints_(std::move(endpoints)),
      tls_(std::move(tls)),
      done_(std::move(done)),
      line_(std::move(line)) {}

EtcdClient::~EtcdClient() {
    transfers_.clear();  // removes every easy handle: curl takes its sockets back
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
    sockets_.clear();
}

void EtcdClient::post(std::uint64_t id, std::size_t endpoint, std::string_view path, std::string body, Kind kind,
                      Usec timeout) {
    auto transfer = std::make_unique<Transfer>();
    transfer->client = this;
    transfer->id = id;
    transfer->streaming = kind == Kind::Stream;
    CURL* easy = curl_easy_init();
    if (easy == nullptr) {
        fail_soon(id, "curl_easy_init failed");
        return;
    }
    transfer->easy = easy;
    const std::string url = endpoints_.at(endpoint) + std::string(path);
    transfer->headers = curl_slist_append(nullptr, "Content-Type: application/json");
    // gRPC's "require leader": a member cut off from its cluster refuses
    // calls and ends watches at once, instead of answering from stale state.
    transfer->headers = curl_slist_append(transfer->headers, "Grpc-Metadata-hasleader: true");
    curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, transfer->headers);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body.c_str());
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &EtcdClient::on_data);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer.get());
    curl_easy_setopt(easy, CURLOPT_PRIVATE, transfer.get());
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->error);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    // Milliseconds, rounded up: 0 would mean no timeout at all to curl.
    const long timeout_ms = static_cast<long>(std::max<std::uint64_t>(1, (timeout.count() + 999) / 1000));
    if (transfer->streaming) {
        curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, kStreamConnectTimeoutMs);
        curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(easy, CURLOPT_TCP_KEEPIDLE, kStreamKeepaliveIdleSec);
        curl_easy_setopt(easy, CURLOPT_TCP_KEEPINTVL, kStreamKeepaliveIntervalSec);
    } else {
        curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    }
    if (!tls_.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, tls_.ca_file.c_str());
    if (!tls_.cert_file.empty()) curl_easy_setopt(easy, CURLOPT_SSLCERT, tls_.cert_file.c_str());
    if (!tls_.key_file.empty()) curl_easy_setopt(easy, CURLOPT_SSLKEY, tls_.key_file.c_str());
    transfers_[id] = std::move(transfer);
    CURLMcode r = curl_multi_add_handle(multi_, easy);
    if (r != CURLM_OK) {
        transfers_.erase(id);
        fail_soon(id, curl_multi_strerror(r));
    }
}

void EtcdClient::fail_soon(std::uint64_t id, std::string why) {
    failed_.emplace_back(id, std::move(why));
    sd_event_source_set_enabled(deferred_.get(), SD_EVENT_ONESHOT);
}

int EtcdClient::on_deferred(sd_event_source*, void* userdata) {
    auto* self = static_cast<EtcdClient*>(userdata);
    for (auto failed = std::exchange(self->failed_, {}); const auto& [id, why] : failed) self->done_(id, false, why);
    return 0;
}

void EtcdClient::cancel(std::uint64_t id) { transfers_.erase(id); }

int EtcdClient::on_socket(CURL*, int fd, int what, void* userp, void*) {
    auto* self = static_cast<EtcdClient*>(userp);
    if (what == CURL_POLL_REMOVE) {
        self->sockets_.erase(fd);
        return 0;
    }
    std::uint32_t events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= EPOLLOUT;
    auto it = self->sockets_.find(fd);
    if (it != self->sockets_.end()) return sd_event_source_set_io_events(it->second.get(), events) < 0 ? -1 : 0;
    sd_event_source* source = nullptr;
    if (sd_event_add_io(self->event_, &source, fd, events, &EtcdClient::on_io, self) < 0) return -1;
    sd_event_source_set_priority(source, kHeartbeatSocketPriority);
    self->sockets_[fd].reset(source);
    return 0;
}

int EtcdClient::on_timer_change(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<EtcdClient*>(userp);
    if (timeout_ms < 0) return sd_event_source_set_enabled(self->timer_.get(), SD_EVENT_OFF) < 0 ? -1 : 0;
    std::uint64_t now = 0;
    sd_event_now(self->event_, CLOCK_MONOTONIC, &now);
    if (sd_event_source_set_time(self->timer_.get(), now + static_cast<std::uint64_t>(timeout_ms) * 1000) < 0) return -1;
    return sd_event_source_set_enabled(self->timer_.get(), SD_EVENT_ONESHOT) < 0 ? -1 : 0;
}

int EtcdClient::on_io(sd_event_source*, int fd, std::uint32_t revents, void* userdata) {
    int flags = 0;
    if (revents & EPOLLIN) flags |= CURL_CSELECT_IN;
    if (revents & EPOLLOUT) flags |= CURL_CSELECT_OUT;
    if (revents & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
    static_cast<EtcdClient*>(userdata)->act(fd, flags);
    return 0;
}

int EtcdClient::on_timer(sd_event_source*, std::uint64_t, void* userdata) {
    static_cast<EtcdClient*>(userdata)->act(CURL_SOCKET_TIMEOUT, 0);
    return 0;
}

std::size_t EtcdClient::on_data(char* data, std::size_t size, std::size_t count, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    const std::size_t n = size * count;
    if (t->body.size() + n > kMaxBody) {
        t->too_large = true;
        return 0;  // curl ends the transfer with CURLE_WRITE_ERROR
    }
    t->body.append(data, n);
    if (t->streaming) {
        // A watch writes one JSON object per line; hand them over after curl returns.
        std::size_t start = 0;
        for (std::size_t nl; (nl = t->body.find('\n', start)) != std::string::npos; start = nl + 1)
            if (nl > start) t->lines.push_back(t->body.substr(start, nl - start));
        t->body.erase(0, start);
    }
    return n;
}

void EtcdClient::act(int fd, int flags) {
    int running = 0;
    curl_multi_socket_action(multi_, fd, flags, &running);
    collect();
}

void EtcdClient::collect() {
    // A stream's lines first: its end, if it ended, comes after them.
    std::vector<std::uint64_t> with_lines;
    for (const auto& [id, t] : transfers_)
        if (!t->lines.empty()) with_lines.push_back(id);
    for (std::uint64_t id : with_lines) {
        auto it = transfers_.find(id);
        if (it == transfers_.end()) continue;  // cancelled by a line handled before
        std::vector<std::string> lines = std::move(it->second->lines);
        it->second->lines.clear();
        for (const auto& line : lines) {
            if (!transfers_.contains(id)) break;
            line_(id, line);
        }
    }
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        Transfer* t = nullptr;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
        if (t == nullptr) continue;
        const std::uint64_t id = t->id;
        if (msg->data.result != CURLE_OK) {
            finish(id, false, failure_words(msg->data.result, *t));
            continue;
        }
        long status = 0;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        if (t->streaming) {
            finish(id, false, "stream ended (HTTP " + std::to_string(status) + ")");
        } else if (status == 200 || (!t->body.empty() && t->body.front() == '{')) {
            finish(id, true, t->body);  // etcd's errors are JSON: the session decodes them
        } else {
            finish(id, false, "HTTP " + std::to_string(status));
        }
    }
}

std::string EtcdClient::failure_words(CURLcode result, const Transfer& t) const {
    if (t.too_large) return "answer over 4 MiB";
    std::string why = t.error[0] != '\0' ? std::string(t.error) : std::string(curl_easy_strerror(result));
    // With TLS 1.3 the client's side of the handshake ends before etcd has
    // checked the client certificate: one etcd does not trust ends the
    // connection while curl sends or reads the request, in words that vary
    // with what curl meets first (etcd's alert, a reset; over HTTP/2, a
    // framing error). Only the alert names the certificate, so say what the
    // others most likely mean.
    long status = 0;
    const bool ended_unanswered = (result == CURLE_SEND_ERROR || result == CURLE_RECV_ERROR ||
                                   result == CURLE_GOT_NOTHING || result == CURLE_HTTP2) &&
                                  curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 0;
    if (tls_.cert_file.empty() || !ended_unanswered) return why;
    return why + " (the connection ended before any answer: if this goes on, does etcd trust the client certificate " +
           tls_.cert_file + "?)";
}

void EtcdClient::finish(std::uint64_t id, bool answered, const std::string& text) {
    auto it = transfers_.find(id);
    if (it == transfers_.end()) return;
    const std::string copy = text;  // `text` may be the transfer's own body
    transfers_.erase(it);
    done_(id, answered, copy);
}

}  // namespace freeha
