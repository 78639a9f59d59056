// The logger: a caller never waits for the journal; what a full queue drops is counted and reported.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bus/sd_ptr.h"
#include "daemon/log.h"

using namespace freeha;
using namespace std::chrono_literals;

namespace {

// stderr replaced by a socket nobody reads, filled to the brim: the next
// write to it blocks, as a write to a stopped journald's stream does.
class StalledStderr {
public:
    StalledStderr() {
        int fds[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) throw std::runtime_error("socketpair");
        reader_.reset(fds[0]);
        UniqueFd writer(fds[1]);
        fcntl(writer.get(), F_SETFL, O_NONBLOCK);
        std::string chunk(4096, 'x');
        while (write(writer.get(), chunk.data(), chunk.size()) > 0) {
        }
        while (write(writer.get(), "x", 1) > 0) {  // a short line must not fit either
        }
        fcntl(writer.get(), F_SETFL, 0);
        saved_.reset(dup(STDERR_FILENO));
        dup2(writer.get(), STDERR_FILENO);
    }
    ~StalledStderr() { dup2(saved_.get(), STDERR_FILENO); }

    // Reads what the logger wrote until `wanted` appears or `timeout` passes.
    std::string read_until(const std::string& wanted, std::chrono::milliseconds timeout) {
        auto end = std::chrono::steady_clock::now() + timeout;
        std::string seen;
        char buf[65536];
        while (seen.find(wanted) == std::string::npos && std::chrono::steady_clock::now() < end) {
            pollfd p{reader_.get(), POLLIN, 0};
            if (poll(&p, 1, 50) <= 0) continue;
            ssize_t n = read(reader_.get(), buf, sizeof buf);
            if (n <= 0) break;
            seen.append(buf, static_cast<std::size_t>(n));
        }
        return seen;
    }

private:
    UniqueFd reader_;
    UniqueFd saved_;
};

TEST(Log, AStalledStderrNeverHoldsTheCallerAndWhatAFullQueueDropsIsCountedAndReported) {
    StalledStderr stalled;
    std::uint64_t dropped_before = log::dropped_lines();
    constexpr std::size_t kLines = 3 * log::kQueuedLines;
    // Run in a thread of its own so that a logger that waits fails the test instead of hanging it.
    auto longest = std::async(std::launch::async, [] {
        auto worst = std::chrono::steady_clock::duration::zero();
        for (std::size_t i = 0; i < kLines; ++i) {
            auto start = std::chrono::steady_clock::now();
            log::info("line " + std::to_string(i));
            worst = std::max(worst, std::chrono::steady_clock::now() - start);
        }
        return worst;
    });
    bool returned = longest.wait_for(5s) == std::future_status::ready;
    // At most one queue's worth is written (the batch the writer took before it blocked) and one is queued.
    std::uint64_t dropped = log::dropped_lines() - dropped_before;
    bool flushed_while_stalled = log::flush(100ms);
    std::string written = stalled.read_until("dropped", 10s);  // the writer catches up
    ASSERT_TRUE(returned) << "log::info() waited for a stderr nobody reads";
    EXPECT_LT(longest.get(), 50ms);  // a queued line, not a write (generous: the machine may be loaded)
    EXPECT_GE(dropped, kLines - 2 * log::kQueuedLines);
    EXPECT_LE(dropped, kLines - log::kQueuedLines);
    EXPECT_FALSE(flushed_while_stalled);  // the exit's flush gives up on a stalled journal
    EXPECT_NE(written.find("<6>line 0\n"), std::string::npos);
    EXPECT_NE(written.find("<4>" + std::to_string(dropped) + " log line(s) dropped"), std::string::npos) << written.substr(written.size() - 300);
    EXPECT_TRUE(log::flush(5s));
}

TEST(Log, LinesAreWrittenInOrderAndFlushWaitsForThem) {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    UniqueFd reader(fds[0]), writer(fds[1]);
    UniqueFd saved(dup(STDERR_FILENO));
    dup2(writer.get(), STDERR_FILENO);
    log::warning("first");
    log::event(LOG_NOTICE, log::message_id::kStateChanged, "second", {{"FREEHA_NODE", "alpha"}});
    bool flushed = log::flush(5s);
    dup2(saved.get(), STDERR_FILENO);
    writer.reset();
    ASSERT_TRUE(flushed);
    std::string out(4096, '\0');
    ssize_t n = read(reader.get(), out.data(), out.size());
    ASSERT_GT(n, 0);
    out.resize(static_cast<std::size_t>(n));
    EXPECT_EQ(out, "<4>first\n<5>second\n");
}

}  // namespace
