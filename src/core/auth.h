// Heartbeat authentication: HMAC-SHA256 tags over whole datagrams, and the node's key set (up to two keys in locked, wiped-on-free memory).
//
// Pure computation (libsodium), no I/O: the daemon reads the key files.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "core/wire.h"

namespace freeha::auth {

// Shorter keys are refused: HMAC-SHA256 is only as strong as its key.
inline constexpr std::size_t kMinKeySize = 32;
// The key that signs, plus one more accepted while a cluster changes keys.
inline constexpr std::size_t kMaxKeys = 2;

// Sets kFlagAuthenticated in an encoded datagram and appends the tag over
// every byte before it.
void sign(std::vector<std::uint8_t>& datagram, std::span<const std::uint8_t> key);

// Whether a decoded authenticated datagram carries the right tag for `key`
// (compared in constant time). False when it carries no tag at all.
bool verify(const wire::Decoded& decoded, std::span<const std::uint8_t> key);

// One key's bytes in memory from sodium_malloc: between guard pages, locked
// against swapping and core dumps, and zeroed by sodium_free when the key goes.
class Key {
public:
    // `size` zero bytes, to be written through fill() before first use.
    // Throws std::bad_alloc when sodium_malloc fails.
    explicit Key(std::size_t size);
    static Key copy_of(std::span<const std::uint8_t> bytes);
    Key(Key&& other) noexcept;
    Key& operator=(Key&& other) noexcept;
    Key(const Key&) = delete;
    Key& operator=(const Key&) = delete;
    ~Key();

    std::span<std::uint8_t> fill() { return {data_, size_}; }
    std::span<const std::uint8_t> bytes() const { return {data_, size_}; }
    // Whether mlock succeeded (RLIMIT_MEMLOCK may forbid it); the key works either way.
    bool locked() const { return locked_; }

private:
    std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
    bool locked_ = false;
};

// The keys a node uses: it signs with the first and accepts a tag made with
// any of them, so that a running cluster can change its key (freehad.conf(5)).
// Immutable and cheap to copy (copies share the keys; the last one frees
// them); a reload builds a new set and swaps it in whole.
class KeySet {
public:
    KeySet() = default;  // no key: heartbeats go out unsigned and are not checked
    // Throws std::invalid_argument for more than kMaxKeys keys.
    explicit KeySet(std::vector<Key> keys);
    // Copies ordinary bytes into a set (tests, fuzzing).
    static KeySet copy_of(std::initializer_list<std::span<const std::uint8_t>> keys);

    bool empty() const { return size() == 0; }
    std::size_t size() const { return keys_ ? keys_->size() : 0; }
    // sign() with the first key. The set must not be empty.
    void sign(std::vector<std::uint8_t>& datagram) const;
    // The index of the key whose tag the datagram carries, or nullopt when it
    // carries none or no key matches.
    std::optional<std::size_t> verify(const wire::Decoded& decoded) const;

private:
    std::shared_ptr<const std::vector<Key>> keys_;
};

}  // namespace freeha::auth
