// One table per enum: the names of an enum's values in the enum's order, as
// the configuration, the wire, JSON, D-Bus and the metrics spell them.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace freeha {

template <typename Enum, std::size_t N>
class EnumNames {
public:
    // Exactly one name per value: N is the enum's count, which its header
    // checks against the last value with a static_assert.
    template <typename... Names>
        requires(sizeof...(Names) == N)
    constexpr explicit EnumNames(Names... names) : names_{std::string_view(names)...} {}

    constexpr std::size_t size() const { return N; }
    constexpr std::string_view operator()(Enum value) const { return names_.at(static_cast<std::size_t>(value)); }

    std::optional<Enum> parse(std::string_view name) const {
        for (std::size_t i = 0; i < N; ++i)
            if (names_[i] == name) return static_cast<Enum>(i);
        return std::nullopt;
    }

    // "'stop' or 'ignore'", "'a', 'b' or 'c'": what a configuration error expects.
    std::string expected() const {
        std::string text;
        for (std::size_t i = 0; i < N; ++i) {
            if (i != 0) text += i + 1 == N ? " or " : ", ";
            text += "'" + std::string(names_[i]) + "'";
        }
        return text;
    }

private:
    std::array<std::string_view, N> names_;
};

}  // namespace freeha
