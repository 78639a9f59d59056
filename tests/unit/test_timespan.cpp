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
                      SpanCase{"50 ms", 50 * kUsecPerMsec}, SpanCase{"10us", Usec(10)}, SpanCase{"1h", 3600 * kUsecPerSec},
                      SpanCase{"2d", 2 * 86400 * kUsecPerSec}, SpanCase{"0", Usec()}, SpanCase{"", std::nullopt},
                      SpanCase{"abc", std::nullopt}, SpanCase{"2x", std::nullopt}, SpanCase{"-1s", std::nullopt},
                      SpanCase{"s", std::nullopt}, SpanCase{".s", std::nullopt},
                      SpanCase{"99999999999999999999", std::nullopt}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

TEST(Timespan, FormatsLikeSystemdAndRoundTrips) {
    EXPECT_EQ(format_timespan(Usec()), "0");
    EXPECT_EQ(format_timespan(200 * kUsecPerMsec), "200ms");
    EXPECT_EQ(format_timespan(90 * kUsecPerSec), "1min 30s");
    EXPECT_EQ(format_timespan(5 * 60 * kUsecPerSec), "5min");
    for (Usec v : {Usec{1}, Usec{1500}, 3 * kUsecPerSec + Usec(7), 86400 * kUsecPerSec + Usec(1)})
        EXPECT_EQ(parse_timespan(format_timespan(v)), v);
}

TEST(Timespan, ArithmeticSaturatesInsteadOfWrapping) {
    using namespace freeha::literals;
    EXPECT_EQ(Usec::max() + 1_s, Usec::max());
    EXPECT_EQ(Usec(Usec::max().count() - 5) + Usec(10), Usec::max());
    EXPECT_EQ(Usec::max() * 2, Usec::max());
    EXPECT_EQ(2 * Usec(Usec::max().count() / 2 + 1), Usec::max());
    EXPECT_EQ(1_s - 2_s, Usec());
    EXPECT_EQ(3_s - 1_s, 2_s);
    EXPECT_EQ(1_s * 0, Usec());
    EXPECT_EQ(200_ms + 300_ms, 500_ms);
    EXPECT_EQ(1_min / 1_s, 60u);
    EXPECT_LT(Usec::max() - 1_s, Usec::max());
    // A deadline from an absurd span is "never", never in the past.
    EXPECT_EQ(2 * parse_timespan("5124095576h").value(), Usec::max());
    EXPECT_EQ(parse_timespan("18446744073709551616us"), std::nullopt);
    EXPECT_EQ(parse_timespan("300000000000d"), std::nullopt);
}
