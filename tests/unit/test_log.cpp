// The logger: a caller never waits for the journal; what a full queue drops is counted and reported.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <future>
#include <regex>
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

// What the "N log line(s) dropped" lines in `written` add up to: the writer
// reports the drops after each batch it took.
std::uint64_t drops_reported(const std::string& written) {
    static const std::regex kDropped("<4>([0-9]+) log line\\(s\\) dropped");
    std::uint64_t total = 0;
    for (std::sregex_iterator it(written.begin(), written.end(), kDropped), end; it != end; ++it)
        total += std::stoull((*it)[1]);
    return total;
}

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
    // Lets the writer finish whatever it still writes there, so that no later test finds it blocked.
    ~StalledStderr() {
        dup2(saved_.get(), STDERR_FILENO);
        read_until([](const std::string&) { return log::flush(10ms); }, 10s);
    }

    // Reads what the logger wrote until `done(everything read so far)` or `timeout`.
    std::string read_until(const std::function<bool(const std::string&)>& done, std::chrono::milliseconds timeout) {
        auto end = std::chrono::steady_clock::now() + timeout;
        std::string seen;
        char buf[65536];
        while (!done(seen) && std::chrono::steady_clock::now() < end) {
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
    // At most one queue's worth is written (the batch the writer took before
    // it blocked), and the share of info lines is queued.
    std::uint64_t dropped = log::dropped_lines() - dropped_before;
    // The routine lines left room for the ones that matter.
    log::notice("a state change");
    bool notice_queued = log::dropped_lines() - dropped_before == dropped;
    bool flushed_while_stalled = log::flush(100ms);
    std::string written = stalled.read_until(  // the writer catches up
        [&](const std::string& w) { return drops_reported(w) >= dropped && w.find("a state change") != std::string::npos; },
        10s);
    ASSERT_TRUE(returned) << "log::info() waited for a stderr nobody reads";
    EXPECT_LT(longest.get(), 50ms);  // a queued line, not a write (generous: the machine may be loaded)
    EXPECT_GE(dropped, kLines - log::kQueuedLines - log::kQueuedRoutineLines);
    EXPECT_LE(dropped, kLines - log::kQueuedRoutineLines);
    EXPECT_FALSE(flushed_while_stalled);  // the exit's flush gives up on a stalled journal
    EXPECT_TRUE(notice_queued);
    EXPECT_NE(written.find("<6>line 0\n"), std::string::npos);
    EXPECT_NE(written.find("<5>a state change\n"), std::string::npos);
    EXPECT_EQ(drops_reported(written), dropped) << written.substr(written.size() - std::min<std::size_t>(written.size(), 300));
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

TEST(Log, AGroupsLinesAreNamedAndCarryItsFieldTheDefaultGroupsArePlain) {
    log::GroupLines web("web");
    EXPECT_EQ(web.named("floating address lost"), "group web: floating address lost");
    auto fields = web.fields({{"FREEHA_PEER", "bravo"}});
    ASSERT_EQ(fields.size(), 2u);
    EXPECT_EQ(fields[1].name, "FREEHA_GROUP");
    EXPECT_EQ(fields[1].value, "web");
    log::GroupLines plain;
    EXPECT_EQ(plain.named("floating address lost"), "floating address lost");
    EXPECT_EQ(plain.fields({}).size(), 0u);
}
