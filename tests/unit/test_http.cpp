// freehactl metrics --http's reading of one request from a connection, its verdict and its answer.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "ctl/http.h"

using namespace freeha;
using namespace freeha::ctl;
using namespace std::chrono_literals;

namespace {

const std::string kPrometheusScrape =
    "GET /metrics HTTP/1.1\r\n"
    "Host: 10.214.0.10:3891\r\n"
    "User-Agent: Prometheus/2.42.0\r\n"
    "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
    "Accept-Encoding: gzip\r\n"
    "X-Prometheus-Scrape-Timeout-Seconds: 10\r\n"
    "\r\n";

struct Case {
    const char* name;
    std::vector<std::string> chunks;  // written one after the other, `gap` apart
    std::chrono::milliseconds gap;
    bool close_after;  // the client shuts its side down after the last chunk
    int status;
    bool head_only;
};

// The client's side of a connection: writes its chunks from a thread of its own.
struct Client {
    int server_fd = -1, client_fd = -1;
    std::thread writer;
    explicit Client(const Case& c) {
        int fds[2];
        EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
        server_fd = fds[0];
        client_fd = fds[1];
        writer = std::thread([this, chunks = c.chunks, gap = c.gap, close_after = c.close_after] {
            for (std::size_t i = 0; i < chunks.size(); ++i) {
                if (i != 0) std::this_thread::sleep_for(gap);
                if (send(client_fd, chunks[i].data(), chunks[i].size(), MSG_NOSIGNAL) < 0) return;  // the server gave up
            }
            if (close_after) shutdown(client_fd, SHUT_WR);
        });
    }
    ~Client() {
        close(server_fd);  // ends a writer still trickling (EPIPE)
        writer.join();
        close(client_fd);
    }
};

std::vector<std::string> bytes_of(const std::string& s) {
    std::vector<std::string> out;
    for (char c : s) out.emplace_back(1, c);
    return out;
}

constexpr Usec kTestTimeout{300 * 1000};

class Request : public ::testing::TestWithParam<Case> {};

}  // namespace

TEST_P(Request, IsJudgedWithinTheTimeout) {
    const Case& c = GetParam();
    Client client(c);
    std::string head;
    auto started = std::chrono::steady_clock::now();
    HeadRead read = read_request_head(client.server_fd, &head, 1024, kTestTimeout);
    auto took = std::chrono::steady_clock::now() - started;
    HttpVerdict verdict = judge_request(read, head);
    EXPECT_EQ(verdict.status, c.status) << verdict.why;
    EXPECT_EQ(verdict.head_only, c.head_only);
    EXPECT_EQ(verdict.why.empty(), c.status == 200) << verdict.why;
    // Never longer than the timeout, however the client trickles.
    EXPECT_LT(took, 300ms + 150ms);
}

INSTANTIATE_TEST_SUITE_P(
    Http, Request,
    ::testing::Values(
        Case{"PrometheusScrape", {kPrometheusScrape}, 0ms, false, 200, false},
        Case{"Http10WithBareLineFeeds", {"GET /metrics HTTP/1.0\n\n"}, 0ms, false, 200, false},
        Case{"QueryIgnored", {"GET /metrics?name[]=freeha_up HTTP/1.1\r\nHost: x\r\n\r\n"}, 0ms, false, 200, false},
        Case{"Head", {"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"}, 0ms, false, 200, true},
        // The blank line split between two reads.
        Case{"BlankLineStraddlesTwoReads", {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r", "\n"}, 50ms, false, 200, false},
        // A body after the head is never read.
        Case{"BodyIgnored", {"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"}, 0ms, false, 200, false},
        Case{"TricklingButInTime", bytes_of("GET /metrics HTTP/1.1\r\n\r\n"), 5ms, false, 200, false},
        Case{"Root", {"GET / HTTP/1.1\r\nHost: x\r\n\r\n"}, 0ms, false, 404, false},
        Case{"OtherPath", {"GET /metrics/ HTTP/1.1\r\n\r\n"}, 0ms, false, 404, false},
        Case{"AbsoluteForm", {"GET http://x:3891/metrics HTTP/1.1\r\n\r\n"}, 0ms, false, 404, false},
        Case{"Post", {"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"}, 0ms, false, 405, false},
        Case{"Delete", {"DELETE /metrics HTTP/1.1\r\n\r\n"}, 0ms, false, 405, false},
        Case{"PostElsewhereIsNotFound", {"POST /admin HTTP/1.1\r\n\r\n"}, 0ms, false, 404, false},
        Case{"Http2", {"GET /metrics HTTP/2.0\r\n\r\n"}, 0ms, false, 505, false},
        Case{"Http09", {"GET /metrics\r\n\r\n"}, 0ms, false, 400, false},
        Case{"NotHttp", {"hello\r\n\r\n"}, 0ms, false, 400, false},
        Case{"DoubleSpace", {"GET  /metrics HTTP/1.1\r\n\r\n"}, 0ms, false, 400, false},
        Case{"LowercaseVersion", {"GET /metrics http/1.1\r\n\r\n"}, 0ms, false, 400, false},
        Case{"FieldWithoutColon", {"GET /metrics HTTP/1.1\r\nHost x\r\n\r\n"}, 0ms, false, 400, false},
        Case{"SpaceBeforeColon", {"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n"}, 0ms, false, 400, false},
        Case{"FoldedField", {"GET /metrics HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n"}, 0ms, false, 400, false},
        Case{"NulByte", {std::string("GET /metrics HTTP/1.1\r\nX: a\0b\r\n\r\n", 33)}, 0ms, false, 400, false},
        // A TLS ClientHello sent to the plain port.
        Case{"TlsHello", {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n", 13)}, 0ms, false, 400, false},
        Case{"Oversize", {"GET /metrics HTTP/1.1\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n"}, 0ms, false,
             431, false},
        Case{"OversizeWithoutEnd", {std::string(5000, 'G')}, 0ms, false, 431, false},
        Case{"TruncatedHead", {"GET /metrics HTTP/1.1\r\nHost: x\r\n"}, 0ms, true, 400, false},
        Case{"ClosedAtOnce", {}, 0ms, true, 400, false},
        Case{"StalledAfterTheRequestLine", {"GET /metrics HTTP/1.1\r\n"}, 0ms, false, 408, false},
        Case{"SilentClient", {}, 0ms, false, 408, false},
        // One byte every 50 ms: the deadline is the whole head's, not each read's.
        Case{"TricklingTooSlowly", bytes_of("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 50ms, false, 408, false}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(HttpRead, StopsAtTheBlankLineAndKeepsOnlyTheHead) {
    Case c{"", {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nBODY"}, 0ms, false, 200, false};
    Client client(c);
    std::string head;
    ASSERT_EQ(read_request_head(client.server_fd, &head, 1024, kTestTimeout), HeadRead::Complete);
    EXPECT_EQ(head, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
}

TEST(HttpVerdictText, SaysWhatWasWrongInOneLine) {
    EXPECT_EQ(judge_request(HeadRead::TooLarge, "").why, "the request head is larger than 8192 bytes");
    EXPECT_EQ(judge_request(HeadRead::TimedOut, "").why, "no whole request head within 3s");
    EXPECT_EQ(judge_request(HeadRead::Complete, "PUT /metrics HTTP/1.1\r\n\r\n").why, "only GET and HEAD are served");
    EXPECT_EQ(judge_request(HeadRead::Complete, "GET /x HTTP/1.1\r\n\r\n").why,
              "nothing here: the metrics are at /metrics");
}

TEST(HttpResponse, CarriesTheExpositionTypeAndLengthAndClosesTheConnection) {
    EXPECT_EQ(http_response(200, kExpositionType, "freeha_up 1\n"),
              "HTTP/1.1 200 OK\r\n"
              "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
              "Content-Length: 12\r\n"
              "Connection: close\r\n"
              "\r\n"
              "freeha_up 1\n");
    // HEAD: the same head, no body.
    EXPECT_EQ(http_response(200, kExpositionType, "freeha_up 1\n", true),
              "HTTP/1.1 200 OK\r\n"
              "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
              "Content-Length: 12\r\n"
              "Connection: close\r\n"
              "\r\n");
    EXPECT_EQ(http_response(405, "text/plain; charset=utf-8", "only GET and HEAD are served\n"),
              "HTTP/1.1 405 Method Not Allowed\r\n"
              "Content-Type: text/plain; charset=utf-8\r\n"
              "Content-Length: 29\r\n"
              "Allow: GET, HEAD\r\n"
              "Connection: close\r\n"
              "\r\n"
              "only GET and HEAD are served\n");
    EXPECT_EQ(http_response(431, "text/plain", "").substr(0, 46), "HTTP/1.1 431 Request Header Fields Too Large\r\n");
}
