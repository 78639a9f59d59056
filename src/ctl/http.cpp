#include "ctl/http.h"

#include <poll.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace freeha::ctl {
namespace {

// Every status this endpoint answers with, and its reason phrase.
constexpr std::array<std::pair<int, std::string_view>, 7> kStatuses{{
    {200, "OK"},
    {400, "Bad Request"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {431, "Request Header Fields Too Large"},
    {505, "HTTP Version Not Supported"},
}};

std::string_view reason_phrase(int status) {
    for (const auto& [code, phrase] : kStatuses)
        if (code == status) return phrase;
    return "Error";
}

// RFC 9110's tchar: the characters of a method or a field name.
bool is_token(std::string_view s) {
    if (s.empty()) return false;
    for (unsigned char c : s) {
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) == std::string_view::npos)
            return false;
    }
    return true;
}

// Where the head's blank line ends (bare LF accepted, as RFC 9112 allows), or npos.
std::size_t head_end(std::string_view data, std::size_t from) {
    for (std::size_t i = from; i < data.size(); ++i) {
        if (data[i] != '\n') continue;
        if (i + 1 < data.size() && data[i + 1] == '\n') return i + 2;
        if (i + 2 < data.size() && data[i + 1] == '\r' && data[i + 2] == '\n') return i + 3;
    }
    return std::string_view::npos;
}

}  // namespace

HeadRead read_request_head(int fd, std::string* head, std::size_t max_bytes, Usec timeout) {
    head->clear();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(timeout.count());
    char buffer[4096];
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return HeadRead::TimedOut;
        pollfd p{fd, POLLIN, 0};
        int r = poll(&p, 1, static_cast<int>(left.count()) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return HeadRead::Failed;
        if (r == 0) return HeadRead::TimedOut;
        std::size_t want = std::min(sizeof buffer, max_bytes - head->size());
        ssize_t n = read(fd, buffer, want);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0) return HeadRead::Failed;
        if (n == 0) return HeadRead::Truncated;
        // A blank line may straddle two reads: look from just before the new bytes.
        std::size_t from = head->size() < 2 ? 0 : head->size() - 2;
        head->append(buffer, static_cast<std::size_t>(n));
        if (std::size_t end = head_end(*head, from); end != std::string::npos) {
            head->resize(end);
            return HeadRead::Complete;
        }
        if (head->size() >= max_bytes) return HeadRead::TooLarge;
    }
}

namespace {

struct RequestLine {
    std::string_view method, target, version;
};

// "METHOD TARGET HTTP/d.d", split; nullopt when it is not one.
std::optional<RequestLine> parse_request_line(std::string_view line) {
    std::size_t sp1 = line.find(' ');
    std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) return std::nullopt;
    RequestLine r{line.substr(0, sp1), line.substr(sp1 + 1, sp2 - sp1 - 1), line.substr(sp2 + 1)};
    bool http_version = r.version.size() == 8 && r.version.substr(0, 5) == "HTTP/" && r.version[6] == '.' &&
                        r.version[5] >= '0' && r.version[5] <= '9' && r.version[7] >= '0' && r.version[7] <= '9';
    if (!is_token(r.method) || r.target.empty() || !http_version) return std::nullopt;
    return r;
}

// A head that arrived whole.
HttpVerdict judge_head(std::string_view head) {
    for (unsigned char c : head)
        if ((c < 0x20 && c != '\r' && c != '\n' && c != '\t') || c == 0x7f)
            return {400, false, "a control character in the request head"};
    // The lines, each without its line ending.
    std::vector<std::string_view> lines;
    for (std::size_t at = 0; at < head.size();) {
        std::size_t nl = head.find('\n', at);
        if (nl == std::string_view::npos) nl = head.size();
        std::string_view line = head.substr(at, nl - at);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        lines.push_back(line);
        at = nl + 1;
    }
    if (lines.empty() || lines[0].empty()) return {400, false, "no request line"};
    auto request = parse_request_line(lines[0]);
    if (!request) return {400, false, "not an HTTP request line (METHOD TARGET HTTP/1.x)"};
    auto [method, target, version] = *request;
    if (version[5] != '1') return {505, false, "only HTTP/1.0 and HTTP/1.1 are served"};
    for (std::size_t i = 1; i < lines.size(); ++i) {
        std::string_view field = lines[i];
        if (field.empty()) break;  // the blank line: the end of the head
        std::size_t colon = field.find(':');
        if (colon == std::string_view::npos || !is_token(field.substr(0, colon)))
            return {400, false, "a malformed header field"};
    }
    std::string_view path = target.substr(0, target.find('?'));
    if (path != "/metrics") return {404, false, "nothing here: the metrics are at /metrics"};
    if (method != "GET" && method != "HEAD") return {405, false, "only GET and HEAD are served"};
    return {200, method == "HEAD", ""};
}

}  // namespace

HttpVerdict judge_request(HeadRead read, std::string_view head) {
    switch (read) {
        case HeadRead::Complete:
            return judge_head(head);
        case HeadRead::TooLarge:
            return {431, false, "the request head is larger than " + std::to_string(kMaxRequestHead) + " bytes"};
        case HeadRead::TimedOut:
            return {408, false, "no whole request head within " + format_timespan(kRequestTimeout)};
        case HeadRead::Truncated:
            return {400, false, "the connection ended before the request head did"};
        case HeadRead::Failed:
            return {400, false, "the request could not be read"};
    }
    return {400, false, "the request could not be read"};
}

std::string http_response(int status, std::string_view content_type, std::string_view body, bool head_only) {
    std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason_phrase(status)) + "\r\n";
    out += "Content-Type: " + std::string(content_type) + "\r\n";
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    if (status == 405) out += "Allow: GET, HEAD\r\n";
    out += "Connection: close\r\n\r\n";
    if (!head_only) out += body;
    return out;
}

}  // namespace freeha::ctl
