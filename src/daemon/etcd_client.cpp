#include "daemon/etcd_client.h"

#include <cstring>
#include <mutex>
#include <utility>

#include <sys/epoll.h>

#include "daemon/udp_channel.h"

namespace freeha {

namespace {

// An answer larger than this is no answer of etcd's to freehad's calls.
constexpr std::size_t kMaxBody = 4 * 1024 * 1024;

std::once_flag curl_initialized;

}  // namespace

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
    sd_event_source* timer = nullptr;
    int r = sd_event_add_time(event, &timer, CLOCK_MONOTONIC, UINT64_MAX, kEtcdTimerAccuracy.count(),
                              &EtcdClient::on_timer, client.get());
    if (r < 0) {
        *error = "cannot add the etcd client's timer: " + std::string(strerror(-r));
        return nullptr;
    }
    client->timer_.reset(timer);
    sd_event_source_set_enabled(timer, SD_EVENT_OFF);
    // etcd's answers renew the holder's lease: right after the heartbeat sockets.
    sd_event_source_set_priority(timer, kHeartbeatSocketPriority);
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

void EtcdClient::post(std::uint64_t id, std::size_t endpoint, std::string_view path, std::string body, Usec timeout) {
    auto transfer = std::make_unique<Transfer>();
    transfer->client = this;
    transfer->id = id;
    transfer->streaming = timeout == Usec();
    CURL* easy = curl_easy_init();
    if (easy == nullptr) {
        fail_soon(id, "curl_easy_init failed");
        return;
    }
    transfer->easy = easy;
    const std::string url = endpoints_.at(endpoint) + std::string(path);
    transfer->headers = curl_slist_append(nullptr, "Content-Type: application/json");
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
    if (!transfer->streaming) curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count() / 1000));
    // A dead endpoint is found out within the call's timeout; a watch's connect within 2 s.
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(transfer->streaming ? 2000 : timeout.count() / 1000));
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
    on_timer_change(multi_, 0, this);  // collect() runs from the loop
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
    sd_event_source_set_time(self->timer_.get(), now + static_cast<std::uint64_t>(timeout_ms) * 1000);
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
    for (auto failed = std::exchange(failed_, {}); const auto& [id, why] : failed) done_(id, false, why);
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
            std::string why = t->too_large          ? "answer over 4 MiB"
                              : t->error[0] != '\0' ? std::string(t->error)
                                                    : std::string(curl_easy_strerror(msg->data.result));
            finish(id, false, why);
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

void EtcdClient::finish(std::uint64_t id, bool answered, const std::string& text) {
    auto it = transfers_.find(id);
    if (it == transfers_.end()) return;
    const std::string copy = text;  // `text` may be the transfer's own body
    transfers_.erase(it);
    done_(id, answered, copy);
}

}  // namespace freeha
