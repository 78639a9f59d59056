#include "core/auth.h"

#include <array>

#include <sodium.h>

namespace freeha::auth {
namespace {

std::array<std::uint8_t, wire::kAuthTagSize> tag_of(std::span<const std::uint8_t> bytes,
                                                   std::span<const std::uint8_t> key) {
    static_assert(wire::kAuthTagSize == crypto_auth_hmacsha256_BYTES);
    crypto_auth_hmacsha256_state state;
    std::array<std::uint8_t, wire::kAuthTagSize> tag{};
    crypto_auth_hmacsha256_init(&state, key.data(), key.size());
    crypto_auth_hmacsha256_update(&state, bytes.data(), bytes.size());
    crypto_auth_hmacsha256_final(&state, tag.data());
    sodium_memzero(&state, sizeof state);
    return tag;
}

}  // namespace

void sign(std::vector<std::uint8_t>& datagram, std::span<const std::uint8_t> key) {
    datagram[7] |= static_cast<std::uint8_t>(wire::kFlagAuthenticated);  // low byte of the big-endian flags
    auto tag = tag_of(datagram, key);
    datagram.insert(datagram.end(), tag.begin(), tag.end());
}

bool verify(const wire::Decoded& decoded, std::span<const std::uint8_t> key) {
    if (decoded.auth_tag.size() != wire::kAuthTagSize) return false;
    auto expected = tag_of(decoded.signed_bytes, key);
    return crypto_verify_32(expected.data(), decoded.auth_tag.data()) == 0;
}

}  // namespace freeha::auth
