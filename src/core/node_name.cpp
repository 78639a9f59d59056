#include "core/node_name.h"

#include <algorithm>
#include <cstdint>

namespace freeha {
namespace {

bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

char fold(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

bool is_valid_node_name(std::string_view name) {
    // A lambda, not the function's address, so that the check is inlined: every heartbeat's names pass here.
    return !name.empty() && name.size() <= kMaxNodeNameLength &&
           std::all_of(name.begin(), name.end(), [](char c) { return is_name_char(c); });
}

std::string node_name_from_hostname(std::string_view hostname) {
    auto end = std::find_if_not(hostname.begin(), hostname.end(), is_name_char);
    std::string name(hostname.begin(), end);
    if (name.size() > kMaxNodeNameLength) name.resize(kMaxNodeNameLength);
    return name;
}

bool node_name_before(std::string_view a, std::string_view b) {
    auto folded_less = [](char x, char y) { return fold(x) < fold(y); };
    if (std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), folded_less)) return true;
    if (std::lexicographical_compare(b.begin(), b.end(), a.begin(), a.end(), folded_less)) return false;
    return a < b;
}

namespace {
std::uint64_t fnv1a64(std::string_view text) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : text) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return h;
}
}  // namespace

std::uint64_t cluster_id(std::string_view cluster_name) { return fnv1a64(cluster_name); }

std::uint64_t node_id(std::string_view node_name) { return fnv1a64(node_name); }

}  // namespace freeha
