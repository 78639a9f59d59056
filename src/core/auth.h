// Heartbeat authentication: an HMAC-SHA256 tag over the whole datagram, keyed with the cluster's shared key.
//
// Pure computation (libsodium), no I/O: the daemon reads the key file.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/wire.h"

namespace freeha::auth {

// Shorter keys are refused: HMAC-SHA256 is only as strong as its key.
inline constexpr std::size_t kMinKeySize = 32;

// Sets kFlagAuthenticated in an encoded datagram and appends the tag over
// every byte before it.
void sign(std::vector<std::uint8_t>& datagram, std::span<const std::uint8_t> key);

// Whether a decoded authenticated datagram carries the right tag for `key`
// (compared in constant time). False when it carries no tag at all.
bool verify(const wire::Decoded& decoded, std::span<const std::uint8_t> key);

}  // namespace freeha::auth
