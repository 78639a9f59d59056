// The state directory: the incarnation counter grows across starts, a standby and the promise horizon are kept, and a directory that cannot be written is said.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <sys/stat.h>

#include "core/claims.h"
#include "daemon/state_store.h"

using namespace freeha;

namespace {

std::filesystem::path temp_dir() {
    char pattern[] = "/tmp/freeha-incarnation-XXXXXX";
    return mkdtemp(pattern);
}

}  // namespace

TEST(StateStore, EveryStartTakesALargerOneAndKeepsIt) {
    auto dir = temp_dir() / "state";  // created on first use
    std::string warning;
    std::uint64_t first = claim_incarnation(dir, false, &warning);
    EXPECT_EQ(warning, "");
    // A clock far in the future was once stored: later starts must still grow.
    std::ofstream(dir / "incarnation") << first + 3600ULL * 1000000 << "\n";
    std::uint64_t second = claim_incarnation(dir, false, &warning);
    EXPECT_EQ(second, first + 3600ULL * 1000000 + 1);
    std::uint64_t stored = 0;
    std::ifstream(dir / "incarnation") >> stored;
    EXPECT_EQ(stored, second);
    std::filesystem::remove_all(dir.parent_path());
}

TEST(StateStore, AnIncarnationTakenWhileTheClockRanADayAheadIsGivenUpWithoutAKey) {
    auto dir = temp_dir() / "state";
    std::string warning;
    std::uint64_t now = claim_incarnation(dir, false, &warning);
    constexpr std::uint64_t kTwoDays = 48 * 3600ULL * 1000000;
    std::ofstream(dir / "incarnation") << now + kTwoDays << "\n";
    std::uint64_t fresh = claim_incarnation(dir, false, &warning);
    EXPECT_LT(fresh, now + 60ULL * 1000000);  // from the clock again
    EXPECT_NE(warning.find("/incarnation: 2d ahead of the clock"), std::string::npos) << warning;
    std::uint64_t stored = 0;
    std::ifstream(dir / "incarnation") >> stored;
    EXPECT_EQ(stored, fresh);
    // With a key, peers accept it and refuse anything lower for good: it only grows.
    std::ofstream(dir / "incarnation") << now + kTwoDays << "\n";
    warning.clear();
    EXPECT_EQ(claim_incarnation(dir, true, &warning), now + kTwoDays + 1);
    EXPECT_EQ(warning, "");
    std::filesystem::remove_all(dir.parent_path());
}

TEST(StateStore, AnUnwritableDirectoryIsReportedAndTheWallClockUsed) {
    auto file = temp_dir() / "not-a-directory";
    std::ofstream(file) << "x";
    std::string warning;
    std::uint64_t value = claim_incarnation(file, false, &warning);
    EXPECT_GT(value, 1'700'000'000ULL * 1000000);  // realtime microseconds
    EXPECT_NE(warning.find("cannot keep the incarnation counter"), std::string::npos) << warning;
    std::filesystem::remove_all(file.parent_path());
}

TEST(StateStore, AStandbyIsKeptUntilCleared) {
    auto dir = temp_dir() / "state";
    EXPECT_FALSE(standby_stored(dir));
    EXPECT_EQ(store_standby(dir, false), "");  // clearing what is not there is fine
    EXPECT_EQ(store_standby(dir, true), "");
    EXPECT_TRUE(standby_stored(dir));
    EXPECT_EQ(store_standby(dir, true), "");  // twice is fine
    EXPECT_TRUE(standby_stored(dir));
    EXPECT_EQ(store_standby(dir, false), "");
    EXPECT_FALSE(standby_stored(dir));
    std::filesystem::remove_all(dir.parent_path());
}

TEST(StateStore, AStandbyThatCannotBeStoredIsReported) {
    auto file = temp_dir() / "not-a-directory";
    std::ofstream(file) << "x";
    std::string error = store_standby(file, true);
    EXPECT_NE(error.find("not-a-directory"), std::string::npos) << error;
    std::filesystem::remove_all(file.parent_path());
}

TEST(StateStore, ThePromiseHorizonIsTheLongestDeadTimeUntilLoweredOnPurpose) {
    auto dir = temp_dir() / "state";
    std::string warning;
    // A first start: nothing to honour; the horizon becomes this DeadTime=.
    EXPECT_EQ(claim_promise_horizon(dir, 10 * kUsecPerSec, &warning), Usec());
    EXPECT_EQ(warning, "");
    // Restarted with a shorter DeadTime=: the 10s promises are honoured, and the horizon is kept.
    EXPECT_EQ(claim_promise_horizon(dir, 1 * kUsecPerSec, &warning), 10 * kUsecPerSec);
    EXPECT_EQ(claim_promise_horizon(dir, 1 * kUsecPerSec, &warning), 10 * kUsecPerSec);
    // Restarted with a longer one: raised.
    EXPECT_EQ(claim_promise_horizon(dir, 20 * kUsecPerSec, &warning), 10 * kUsecPerSec);
    EXPECT_EQ(claim_promise_horizon(dir, 1 * kUsecPerSec, &warning), 20 * kUsecPerSec);
    // Lowered once a run has waited it out.
    EXPECT_EQ(store_promise_horizon(dir, 1 * kUsecPerSec), "");
    EXPECT_EQ(claim_promise_horizon(dir, 1 * kUsecPerSec, &warning), 1 * kUsecPerSec);
    EXPECT_EQ(warning, "");
    std::filesystem::remove_all(dir.parent_path());
}

TEST(StateStore, AnUnreadablePromiseHorizonMeansTheLongestDeadTime) {
    auto dir = temp_dir();
    for (const char* text : {"garbage\n", "", "99999999999999\n"}) {
        std::ofstream(dir / "promise-horizon") << text;
        std::string warning;
        EXPECT_EQ(claim_promise_horizon(dir, 1 * kUsecPerSec, &warning), kMaxDeadTime) << text;
        EXPECT_NE(warning.find("promise-horizon: not a number"), std::string::npos) << warning;
    }
    std::filesystem::remove_all(dir);
}

TEST(StateStore, APromiseHorizonThatIsNoRegularFileIsNamedNotWaitedFor) {
    auto dir = temp_dir();
    ASSERT_EQ(mkfifo((dir / "promise-horizon").c_str(), 0600), 0);  // no writer: a blocking read would hang
    std::string warning;
    EXPECT_EQ(claim_promise_horizon(dir, 1 * kUsecPerSec, &warning), kMaxDeadTime);
    EXPECT_EQ(warning.rfind((dir / "promise-horizon").string() + ": is a FIFO, not a regular file; backing no claim", 0),
              0u)
        << warning;
    std::filesystem::remove_all(dir);
}

TEST(StateStore, APromiseHorizonThatCannotBeStoredIsReported) {
    auto file = temp_dir() / "not-a-directory";
    std::ofstream(file) << "x";
    std::string warning;
    EXPECT_EQ(claim_promise_horizon(file, 1 * kUsecPerSec, &warning), Usec());
    EXPECT_NE(warning.find("cannot keep the promise horizon"), std::string::npos) << warning;
    EXPECT_NE(store_promise_horizon(file, 1 * kUsecPerSec).find("not-a-directory"), std::string::npos);
    std::filesystem::remove_all(file.parent_path());
}

TEST(StateStore, TheServicesMarkerKeepsTheTimingsUntilRemoved) {
    auto dir = temp_dir();
    const ServicesMarker fallback{Usec(1000000), Usec(200000)};
    EXPECT_FALSE(read_services_marker(dir, fallback));  // no marker: nothing ran, nothing to clean up
    EXPECT_EQ(store_services_marker(dir, {Usec(3000000), Usec(500000)}), "");
    auto marker = read_services_marker(dir, fallback);
    ASSERT_TRUE(marker);
    EXPECT_EQ(marker->dead_time, Usec(3000000));
    EXPECT_EQ(marker->interval, Usec(500000));
    // A marker that cannot be read still says the services may run.
    std::ofstream(dir / "services-may-run") << "garbage\n";
    marker = read_services_marker(dir, fallback);
    ASSERT_TRUE(marker);
    EXPECT_EQ(marker->dead_time, fallback.dead_time);
    std::string warning;
    marker = read_services_marker(dir, fallback, &warning);
    EXPECT_EQ(warning, (dir / "services-may-run").string() + ": not two numbers of microseconds");
    EXPECT_EQ(remove_services_marker(dir), "");
    // Nor one that is no regular file, and that says so.
    ASSERT_EQ(mkfifo((dir / "services-may-run").c_str(), 0600), 0);
    marker = read_services_marker(dir, fallback, &warning);
    ASSERT_TRUE(marker);
    EXPECT_EQ(marker->interval, fallback.interval);
    EXPECT_EQ(warning, (dir / "services-may-run").string() + ": is a FIFO, not a regular file");
    EXPECT_EQ(remove_services_marker(dir), "");
    warning.clear();
    EXPECT_FALSE(read_services_marker(dir, fallback, &warning));
    EXPECT_EQ(warning, "");
    EXPECT_EQ(remove_services_marker(dir), "");  // removing twice is no error
    std::filesystem::remove_all(dir);
}

TEST(StateStore, MaintenanceModeIsKeptWithItsEpoch) {
    auto dir = temp_dir() / "state";
    std::string warning;
    EXPECT_EQ(stored_maintenance(dir, &warning), std::nullopt);  // never decided
    EXPECT_EQ(warning, "");
    EXPECT_EQ(store_maintenance(dir, Maintenance{true, 1700000000123456ULL}), "");
    EXPECT_EQ(stored_maintenance(dir, &warning), (Maintenance{true, 1700000000123456ULL}));
    EXPECT_EQ(store_maintenance(dir, Maintenance{false, 1700000000999999ULL}), "");
    EXPECT_EQ(stored_maintenance(dir, &warning), (Maintenance{false, 1700000000999999ULL}));
    EXPECT_EQ(warning, "");
    std::filesystem::remove_all(dir.parent_path());
}

TEST(StateStore, AnUnreadableMaintenanceFileIsReportedAndCountsAsNone) {
    auto dir = temp_dir() / "state";
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "maintenance") << "maybe 12\n";
    std::string warning;
    EXPECT_EQ(stored_maintenance(dir, &warning), std::nullopt);
    EXPECT_NE(warning.find("maintenance: not 'on EPOCH' or 'off EPOCH'"), std::string::npos) << warning;
    auto file = temp_dir() / "not-a-directory";
    std::ofstream(file) << "x";
    std::string error = store_maintenance(file, Maintenance{true, 1});
    EXPECT_NE(error.find("not-a-directory"), std::string::npos) << error;
    std::filesystem::remove_all(dir.parent_path());
    std::filesystem::remove_all(file.parent_path());
}
