// Time: a saturating microsecond type for CLOCK_MONOTONIC points and spans, and systemd-style time spans ("200ms", "2s").
#pragma once

#include <compare>
#include <cstdint>
#include <iosfwd>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace freeha {

// Microseconds on CLOCK_MONOTONIC, or a span of them: the core's only notion
// of time. Arithmetic saturates instead of wrapping: a deadline computed from
// an absurd span lands at Usec::max() ("never"), not in the past, and a span
// that would go negative is zero.
class Usec {
public:
    constexpr Usec() = default;
    constexpr explicit Usec(std::uint64_t usec) : value_(usec) {}

    static constexpr Usec max() { return Usec(std::numeric_limits<std::uint64_t>::max()); }
    constexpr std::uint64_t count() const { return value_; }

    friend constexpr Usec operator+(Usec a, Usec b) {
        return a.value_ > max().value_ - b.value_ ? max() : Usec(a.value_ + b.value_);
    }
    friend constexpr Usec operator-(Usec a, Usec b) { return a.value_ > b.value_ ? Usec(a.value_ - b.value_) : Usec(); }
    friend constexpr Usec operator*(Usec a, std::uint64_t k) {
        return k != 0 && a.value_ > max().value_ / k ? max() : Usec(a.value_ * k);
    }
    friend constexpr Usec operator*(std::uint64_t k, Usec a) { return a * k; }
    friend constexpr Usec operator/(Usec a, std::uint64_t k) { return Usec(a.value_ / k); }
    // How many whole `b` fit in `a`.
    friend constexpr std::uint64_t operator/(Usec a, Usec b) { return a.value_ / b.value_; }
    friend constexpr Usec operator%(Usec a, Usec b) { return Usec(a.value_ % b.value_); }
    constexpr Usec& operator+=(Usec b) { return *this = *this + b; }
    constexpr Usec& operator-=(Usec b) { return *this = *this - b; }

    friend constexpr auto operator<=>(Usec a, Usec b) = default;

private:
    std::uint64_t value_ = 0;
};

inline constexpr Usec kUsecPerMsec{1000};
inline constexpr Usec kUsecPerSec{1000 * 1000};

namespace literals {
constexpr Usec operator""_us(unsigned long long v) { return Usec(v); }
constexpr Usec operator""_ms(unsigned long long v) { return Usec(v) * 1000; }
constexpr Usec operator""_s(unsigned long long v) { return Usec(v) * 1000 * 1000; }
constexpr Usec operator""_min(unsigned long long v) { return Usec(v) * 60 * 1000 * 1000; }
}  // namespace literals

// Parses a systemd time span. A bare number means seconds, as in systemd
// (and as FreeHA's -M/-T flags). Returns nullopt on any malformed input,
// including a span too large for 64 bits of microseconds.
std::optional<Usec> parse_timespan(std::string_view text);

// Formats a span the way systemd prints it: "1min 30s", "200ms", "0".
std::string format_timespan(Usec span);

// `span` to the nearest whole `unit`, for messages ("2d", not "1d 23h 59min 59s").
constexpr Usec round_to(Usec span, Usec unit) { return (span + unit / 2) / unit * unit; }

// As format_timespan (test failures and debug output).
std::ostream& operator<<(std::ostream& out, Usec span);

}  // namespace freeha
