#include <gtest/gtest.h>

#include "core/timespan.h"

using namespace freeha;

struct SpanCase {
    const char* text;
    std::optional<Usec> expected;
};

class TimespanParse : public ::testing::TestWithParam<SpanCase> {};

TEST_P(TimespanParse, MatchesSystemd) { EXPECT_EQ(parse_timespan(GetParam().text), GetParam().expected) << GetParam().text; }

INSTANTIATE_TEST_SUITE_P(
    Table, TimespanParse,
    ::testing::Values(SpanCase{"200ms", 200 * kUsecPerMsec}, SpanCase{"2s", 2 * kUsecPerSec},
                      SpanCase{"5min", 300 * kUsecPerSec}, SpanCase{"3", 3 * kUsecPerSec},
                      SpanCase{"1min 30s", 90 * kUsecPerSec}, SpanCase{"1.5s", 1500 * kUsecPerMsec},
                      SpanCase{"50 ms", 50 * kUsecPerMsec}, SpanCase{"10us", 10}, SpanCase{"1h", 3600 * kUsecPerSec},
                      SpanCase{"2d", 2 * 86400 * kUsecPerSec}, SpanCase{"0", 0}, SpanCase{"", std::nullopt},
                      SpanCase{"abc", std::nullopt}, SpanCase{"2x", std::nullopt}, SpanCase{"-1s", std::nullopt},
                      SpanCase{"s", std::nullopt}, SpanCase{".s", std::nullopt},
                      SpanCase{"99999999999999999999", std::nullopt}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

TEST(Timespan, FormatsLikeSystemdAndRoundTrips) {
    EXPECT_EQ(format_timespan(0), "0");
    EXPECT_EQ(format_timespan(200 * kUsecPerMsec), "200ms");
    EXPECT_EQ(format_timespan(90 * kUsecPerSec), "1min 30s");
    EXPECT_EQ(format_timespan(5 * 60 * kUsecPerSec), "5min");
    for (Usec v : {Usec{1}, Usec{1500}, 3 * kUsecPerSec + 7, 86400 * kUsecPerSec + 1})
        EXPECT_EQ(parse_timespan(format_timespan(v)), v);
}
