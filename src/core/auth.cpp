#include "core/auth.h"

#include <algorithm>
#include <array>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

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

// --- Key --------------------------------------------------------------------

Key::Key(std::size_t size) : size_(size) {
    // sodium_malloc needs the page size that sodium_init() computes; later calls are no-ops.
    if (sodium_init() < 0) throw std::bad_alloc();
    data_ = static_cast<std::uint8_t*>(sodium_malloc(size));
    if (data_ == nullptr) throw std::bad_alloc();
    sodium_memzero(data_, size);
    // sodium_malloc locks the region too but does not say whether it could;
    // locking it again tells us.
    locked_ = sodium_mlock(data_, size) == 0;
}

Key Key::copy_of(std::span<const std::uint8_t> bytes) {
    Key key(bytes.size());
    std::copy(bytes.begin(), bytes.end(), key.fill().begin());
    return key;
}

Key::Key(Key&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)),
      locked_(std::exchange(other.locked_, false)) {}

Key& Key::operator=(Key&& other) noexcept {
    if (this != &other) {
        Key gone(std::move(*this));
        data_ = std::exchange(other.data_, nullptr);
        size_ = std::exchange(other.size_, 0);
        locked_ = std::exchange(other.locked_, false);
    }
    return *this;
}

Key::~Key() {
    if (data_ != nullptr) sodium_free(data_);  // zeroes, unlocks and unmaps
}

// --- KeySet -----------------------------------------------------------------

KeySet::KeySet(std::vector<Key> keys) {
    if (keys.size() > kMaxKeys)
        throw std::invalid_argument("at most " + std::to_string(kMaxKeys) + " heartbeat keys");
    if (!keys.empty()) keys_ = std::make_shared<const std::vector<Key>>(std::move(keys));
}

KeySet KeySet::copy_of(std::initializer_list<std::span<const std::uint8_t>> keys) {
    std::vector<Key> copies;
    for (auto bytes : keys) copies.push_back(Key::copy_of(bytes));
    return KeySet(std::move(copies));
}

void KeySet::sign(std::vector<std::uint8_t>& datagram) const { auth::sign(datagram, keys_->front().bytes()); }

std::optional<std::size_t> KeySet::verify(const wire::Decoded& decoded) const {
    for (std::size_t i = 0; i < size(); ++i)
        if (auth::verify(decoded, (*keys_)[i].bytes())) return i;
    return std::nullopt;
}

}  // namespace freeha::auth
