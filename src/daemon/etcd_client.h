// etcd's JSON gateway over HTTP(S) from the sd-event loop: libcurl's multi interface on sd-event.
//
// Nothing here blocks: name resolution, connects, TLS handshakes and
// transfers all run inside curl's multi handle, whose sockets and one timer
// sd-event watches (as systemd's importers drive curl). Calls are POSTs of a
// JSON body to one endpoint; what they mean is the session's business
// (core/etcd_session.h). A watch is a POST whose answer is a stream of JSON
// lines, handed over one line at a time until it ends.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <curl/curl.h>

#include "bus/sd_ptr.h"
#include "core/timespan.h"

namespace freeha {

// A disarmed timer for etcd's deadlines (the client's, the session's): 1 ms
// accuracy (sd-event's default, 250 ms, would let a lease's end pass
// unnoticed for as long), dispatched with the heartbeat sockets, since
// etcd's answers renew the holder's lease. Negative errno on failure.
int add_etcd_timer(sd_event* event, sd_event_time_handler_t handler, void* userdata, EventSourcePtr* timer);

struct EtcdTls {
    std::string ca_file;    // empty: the system's CAs
    std::string cert_file;  // client certificate and key: both or neither
    std::string key_file;
};

class EtcdClient {
public:
    // A call's end: its body when etcd answered (whatever the HTTP status,
    // when the body is JSON: etcd's errors are), else why it failed (curl's
    // words, or "HTTP 502" for a body that is not etcd's).
    using Done = std::function<void(std::uint64_t id, bool answered, const std::string& body_or_error)>;
    using Line = std::function<void(std::uint64_t id, const std::string& line)>;

    // Returns nullptr and sets *error when curl cannot be set up.
    static std::unique_ptr<EtcdClient> create(sd_event* event, std::vector<std::string> endpoints, EtcdTls tls,
                                              Done done, Line line, std::string* error);
    ~EtcdClient();
    EtcdClient(const EtcdClient&) = delete;
    EtcdClient& operator=(const EtcdClient&) = delete;

    // POSTs `body` to endpoints[endpoint] + path; `done` is called once, from
    // the loop (never from within post()), at the latest `timeout` later
    // (rounded up to a millisecond). Every call asks etcd to refuse it (or,
    // a stream, to end it) while the member has no leader. A stream (a
    // watch) has no timeout: its lines go to `line` until it fails, ends or
    // is cancelled; TCP keepalives find a peer that vanished.
    enum class Kind { Call, Stream };
    void post(std::uint64_t id, std::size_t endpoint, std::string_view path, std::string body, Kind kind,
              Usec timeout);
    // Ends a call without calling `done`.
    void cancel(std::uint64_t id);
    // `done` and `line` run from the loop, never from inside curl; they may
    // post and cancel calls, but must not destroy the client.
    std::size_t endpoint_count() const { return endpoints_.size(); }

private:
    struct Transfer;
    EtcdClient(sd_event* event, std::vector<std::string> endpoints, EtcdTls tls, Done done, Line line);

    static int on_socket(CURL* easy, int fd, int what, void* userp, void* socketp);
    static int on_timer_change(CURLM* multi, long timeout_ms, void* userp);
    static int on_io(sd_event_source* s, int fd, std::uint32_t revents, void* userdata);
    static int on_timer(sd_event_source* s, std::uint64_t usec, void* userdata);
    static int on_deferred(sd_event_source* s, void* userdata);
    static std::size_t on_data(char* data, std::size_t size, std::size_t count, void* userp);
    void act(int fd, int events);
    // Hands finished transfers to `done`.
    void collect();
    void finish(std::uint64_t id, bool answered, const std::string& text);
    // A call that could not even start: reported from the loop like any other failure.
    void fail_soon(std::uint64_t id, std::string why);
    // curl's words for a failed transfer, with what they most likely mean where curl cannot say it.
    std::string failure_words(CURLcode result, const Transfer& t) const;

    sd_event* event_;
    std::vector<std::string> endpoints_;
    EtcdTls tls_;
    Done done_;
    Line line_;
    CURLM* multi_ = nullptr;
    EventSourcePtr timer_;
    EventSourcePtr deferred_;  // hands over the calls that could not start (failed_)
    std::map<int, EventSourcePtr> sockets_;
    std::map<std::uint64_t, std::unique_ptr<Transfer>> transfers_;
    std::vector<std::pair<std::uint64_t, std::string>> failed_;
};

}  // namespace freeha
