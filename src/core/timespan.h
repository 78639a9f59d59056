// systemd-style time spans ("200ms", "2s", "1min 30s") to and from microseconds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace freeha {

// Microseconds on CLOCK_MONOTONIC (or a span of them): the core's only notion of time.
using Usec = std::uint64_t;

inline constexpr Usec kUsecPerMsec = 1000;
inline constexpr Usec kUsecPerSec = 1000 * kUsecPerMsec;

// Parses a systemd time span. A bare number means seconds, as in systemd
// (and as FreeHA's -M/-T flags). Returns nullopt on any malformed input.
std::optional<Usec> parse_timespan(std::string_view text);

// Formats a span the way systemd prints it: "1min 30s", "200ms", "0".
std::string format_timespan(Usec span);

}  // namespace freeha
