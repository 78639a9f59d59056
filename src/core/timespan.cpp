#include "core/timespan.h"

#include <array>
#include <cctype>
#include <limits>
#include <ostream>

namespace freeha {
namespace {

struct Unit {
    std::string_view suffix;
    Usec usec;
};

// Longest suffixes first so that "ms" is not read as "m" + garbage.
constexpr std::array<Unit, 22> kUnits{{
    {"seconds", kUsecPerSec},  {"second", kUsecPerSec},       {"minutes", 60 * kUsecPerSec},
    {"minute", 60 * kUsecPerSec}, {"hours", 3600 * kUsecPerSec}, {"hour", 3600 * kUsecPerSec},
    {"days", 86400 * kUsecPerSec}, {"day", 86400 * kUsecPerSec}, {"msec", kUsecPerMsec},
    {"usec", Usec(1)},                 {"sec", kUsecPerSec},         {"min", 60 * kUsecPerSec},
    {"hr", 3600 * kUsecPerSec},  {"ms", kUsecPerMsec},         {"us", Usec(1)},
    {"µs", Usec(1)},                   {"s", kUsecPerSec},           {"m", 60 * kUsecPerSec},
    {"h", 3600 * kUsecPerSec},   {"d", 86400 * kUsecPerSec},   {"w", 7 * 86400 * kUsecPerSec},
    {"weeks", 7 * 86400 * kUsecPerSec},
}};

bool is_space(char c) { return c == ' ' || c == '\t'; }

}  // namespace

std::optional<Usec> parse_timespan(std::string_view text) {
    std::size_t i = 0;
    Usec total;
    bool any = false;
    while (true) {
        while (i < text.size() && is_space(text[i])) ++i;
        if (i == text.size()) break;
        // Integer part and optional fraction.
        std::size_t start = i;
        std::uint64_t whole = 0;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
            auto digit = static_cast<std::uint64_t>(text[i] - '0');
            if (whole > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return std::nullopt;
            whole = whole * 10 + digit;
            ++i;
        }
        std::string_view fraction;
        if (i < text.size() && text[i] == '.') {
            std::size_t f = ++i;
            while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
            fraction = text.substr(f, i - f);
        }
        if (i == start || (i == start + 1 && text[start] == '.')) return std::nullopt;
        while (i < text.size() && is_space(text[i])) ++i;
        std::size_t unit_start = i;
        while (i < text.size() && !is_space(text[i]) &&
               !std::isdigit(static_cast<unsigned char>(text[i])))
            ++i;
        std::string_view suffix = text.substr(unit_start, i - unit_start);
        Usec multiplier = kUsecPerSec;  // bare number: seconds, as systemd
        if (!suffix.empty()) {
            bool found = false;
            for (const auto& u : kUnits)
                if (u.suffix == suffix) {
                    multiplier = u.usec;
                    found = true;
                    break;
                }
            if (!found) return std::nullopt;
        }
        // A span past 2^64 us is malformed, not "never": check, do not saturate.
        std::uint64_t part = 0;
        if (__builtin_mul_overflow(whole, multiplier.count(), &part)) return std::nullopt;
        std::uint64_t scale = multiplier.count();
        for (char c : fraction) {
            scale /= 10;
            if (__builtin_add_overflow(part, scale * static_cast<std::uint64_t>(c - '0'), &part)) return std::nullopt;
        }
        std::uint64_t sum = 0;
        if (__builtin_add_overflow(total.count(), part, &sum)) return std::nullopt;
        total = Usec(sum);
        any = true;
    }
    if (!any) return std::nullopt;
    return total;
}

std::string format_timespan(Usec span) {
    if (span == Usec()) return "0";
    static constexpr std::array<Unit, 7> kFormat{{{"d", 86400 * kUsecPerSec},
                                                  {"h", 3600 * kUsecPerSec},
                                                  {"min", 60 * kUsecPerSec},
                                                  {"s", kUsecPerSec},
                                                  {"ms", kUsecPerMsec},
                                                  {"us", Usec(1)},
                                                  {"", Usec()}}};
    std::string out;
    for (const auto& u : kFormat) {
        if (u.usec == Usec() || span == Usec()) break;
        if (span < u.usec) continue;
        if (!out.empty()) out += ' ';
        out += std::to_string(span / u.usec);
        out += u.suffix;
        span = span % u.usec;
    }
    return out;
}

std::ostream& operator<<(std::ostream& out, Usec span) { return out << format_timespan(span); }

}  // namespace freeha
