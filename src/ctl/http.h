// One HTTP/1.x request read from a socket-activated connection and its answer, for `freehactl metrics --http`.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/timespan.h"

namespace freeha::ctl {

// The most a request head (request line and header fields) may take: a
// Prometheus scrape sends about 300 bytes.
constexpr std::size_t kMaxRequestHead = 8192;
// How long a client may take to send it: Prometheus sends it at once, so
// only a slow or stalled client waits this long, and then it is closed.
constexpr Usec kRequestTimeout = 3 * kUsecPerSec;

// What reading the request head came to.
enum class HeadRead {
    Complete,   // the head and its blank line arrived
    TooLarge,   // kMaxRequestHead bytes without the blank line
    TimedOut,   // the client sent no whole head in time
    Truncated,  // the client closed the connection before the blank line
    Failed,     // read(2) or poll(2) failed
};

// Reads the request head from `fd` (the connection, freehactl's stdin) up to
// and including its blank line, at most `max_bytes`, for at most `timeout`;
// the head goes to *head. Reads nothing past the blank line but what arrived
// with it (a body is never read: the answer closes the connection).
HeadRead read_request_head(int fd, std::string* head, std::size_t max_bytes = kMaxRequestHead,
                           Usec timeout = kRequestTimeout);

// The verdict on one request: 200 for GET (or HEAD) of /metrics, else the
// status to answer with and why, in one line.
struct HttpVerdict {
    int status = 400;
    bool head_only = false;  // HEAD: the answer without its body
    std::string why;         // "" for 200
};

// Judges what read_request_head() came to and, when it is Complete, the
// head (pure: no I/O).
HttpVerdict judge_request(HeadRead read, std::string_view head);

// The whole answer: status line, Content-Type, Content-Length,
// Connection: close (and Allow: for 405), then the body unless head_only.
std::string http_response(int status, std::string_view content_type, std::string_view body, bool head_only = false);

// The exposition's media type, as Prometheus asks for format 0.0.4.
inline constexpr std::string_view kExpositionType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace freeha::ctl
