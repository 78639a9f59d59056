// Heartbeat channel specifications: the Channel= syntax (IPv4 and IPv6) and FreeHA's -a/-A flags.
//
//   Channel=broadcast SOURCE [BROADCAST]     IPv4 only; default BROADCAST: SOURCE's /24 broadcast (FreeHA)
//   Channel=multicast SOURCE GROUP           IPv4 group in 224.0.0.0/4, or IPv6 group in ff00::/8 on an
//                                            interface (GROUP%DEVICE, or SOURCE's); TTL / hop limit 1
//   Channel=unicast SOURCE PEER [PEER...]    PEER: ADDRESS, IPv4:PORT or [IPv6]:PORT; default port: Port=
//
// SOURCE is this node's address on that network; heartbeats leave from it and
// the channel's socket is bound to it. An IPv6 link-local address names its
// interface (fe80::11%eth0). A channel has one address family and at most one
// interface; every address that needs the interface carries it in the
// canonical form (to_string), which is also the channel's name.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace freeha {

enum class Family { Ipv4, Ipv6 };

struct IpAddress {
    Family family = Family::Ipv4;
    std::array<std::uint8_t, 16> bytes{};  // network byte order; IPv4 uses the first 4
    std::string device;                    // the interface of an IPv6 link-local address or multicast group
    bool operator==(const IpAddress&) const = default;

    bool is_multicast() const;
    bool is_unspecified() const;
    bool is_link_local() const;  // IPv6 fe80::/10
    bool is_loopback() const;    // IPv4 127.0.0.0/8, IPv6 ::1
    // Whether the address means something only on one interface: IPv6
    // link-local addresses, and IPv6 multicast groups (to send and to join).
    bool needs_device() const;
    std::string to_string() const;  // "10.0.0.1", "fd00::1", "fe80::1%eth0"
};

// An IPv4 or IPv6 address, IPv6 optionally with %DEVICE; no brackets, no port.
// On error returns nullopt and sets *error (without the address itself).
std::optional<IpAddress> parse_ip_address(std::string_view text, std::string* error);
// FreeHA's default broadcast destination: the /24 broadcast of an IPv4 source.
IpAddress slash24_broadcast(const IpAddress& source);

inline constexpr std::size_t kMaxDeviceName = 15;  // IFNAMSIZ - 1

// The kernel's rule for interface names (dev_valid_name): 1 to 15 bytes, no
// '/', ':' or whitespace, not "." or "..". Also refuses '%', which ends an
// address's scope.
bool is_device_name(std::string_view name);

// The words of a value, split at spaces and tabs.
std::vector<std::string_view> split_words(std::string_view s);

struct Endpoint {
    IpAddress address;
    std::optional<std::uint16_t> port;  // nullopt: the cluster's Port=
    bool operator==(const Endpoint&) const = default;
    std::string to_string() const;  // "10.0.0.2", "10.0.0.2:4000", "fd00::2", "[fe80::2%eth0]:4000"
};

enum class ChannelKind { Broadcast, Multicast, Unicast };

struct ChannelSpec {
    ChannelKind kind = ChannelKind::Broadcast;
    IpAddress source;
    IpAddress group_or_broadcast;  // broadcast destination or multicast group
    std::vector<Endpoint> peers;   // unicast only

    Family family() const { return source.family; }
    // The interface the channel's scoped addresses are on; empty when it has none.
    std::string device() const;
    // The channel as Channel= would spell it; also its name in the status.
    std::string to_string() const;
    bool operator==(const ChannelSpec&) const = default;
};

// Parses the value of one Channel= line; on error returns nullopt and sets *error.
std::optional<ChannelSpec> parse_channel_spec(std::string_view value, std::string* error);

}  // namespace freeha
