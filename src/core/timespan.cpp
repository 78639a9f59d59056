#include "core/timespan.h"

#include <array>
#include <cctype>
#include <limits>

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
    {"usec", 1},                 {"sec", kUsecPerSec},         {"min", 60 * kUsecPerSec},
    {"hr", 3600 * kUsecPerSec},  {"ms", kUsecPerMsec},         {"us", 1},
    {"µs", 1},                   {"s", kUsecPerSec},           {"m", 60 * kUsecPerSec},
    {"h", 3600 * kUsecPerSec},   {"d", 86400 * kUsecPerSec},   {"w", 7 * 86400 * kUsecPerSec},
    {"weeks", 7 * 86400 * kUsecPerSec},
}};

bool is_space(char c) { return c == ' ' || c == '\t'; }

}  // namespace

std::optional<Usec> parse_timespan(std::string_view text) {
    std::size_t i = 0;
    Usec total = 0;
    bool any = false;
    while (true) {
        while (i < text.size() && is_space(text[i])) ++i;
        if (i == text.size()) break;
        // Integer part and optional fraction.
        std::size_t start = i;
        Usec whole = 0;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
            if (whole > std::numeric_limits<Usec>::max() / 10) return std::nullopt;
            whole = whole * 10 + static_cast<Usec>(text[i] - '0');
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
        if (whole != 0 && multiplier > std::numeric_limits<Usec>::max() / whole) return std::nullopt;
        Usec part = whole * multiplier;
        Usec scale = multiplier;
        for (char c : fraction) {
            scale /= 10;
            part += static_cast<Usec>(c - '0') * scale;
        }
        if (part > std::numeric_limits<Usec>::max() - total) return std::nullopt;
        total += part;
        any = true;
    }
    if (!any) return std::nullopt;
    return total;
}

std::string format_timespan(Usec span) {
    if (span == 0) return "0";
    static constexpr std::array<Unit, 7> kFormat{{{"d", 86400 * kUsecPerSec},
                                                  {"h", 3600 * kUsecPerSec},
                                                  {"min", 60 * kUsecPerSec},
                                                  {"s", kUsecPerSec},
                                                  {"ms", kUsecPerMsec},
                                                  {"us", 1},
                                                  {"", 0}}};
    std::string out;
    for (const auto& u : kFormat) {
        if (u.usec == 0 || span == 0) break;
        if (span < u.usec) continue;
        if (!out.empty()) out += ' ';
        out += std::to_string(span / u.usec);
        out += u.suffix;
        span %= u.usec;
    }
    return out;
}

}  // namespace freeha
