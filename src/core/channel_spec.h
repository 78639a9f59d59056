// Heartbeat channel specifications: the Channel= syntax and FreeHA's -a/-A flags.
//
//   Channel=broadcast SOURCE [BROADCAST]     default BROADCAST: SOURCE's /24 broadcast (FreeHA)
//   Channel=multicast SOURCE GROUP           GROUP in 224.0.0.0/4, sent with TTL 1
//   Channel=unicast SOURCE PEER [PEER...]    PEER is IPv4[:PORT]; default port: Port=
//
// SOURCE is this node's IPv4 address on that network; heartbeats leave from
// it and the channel's socket is bound to it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace freeha {

// An IPv4 address in host byte order.
struct Ipv4 {
    std::uint32_t value = 0;
    bool operator==(const Ipv4&) const = default;
};
std::optional<Ipv4> parse_ipv4(std::string_view text);
std::string to_string(Ipv4 a);
// FreeHA's default broadcast destination: the /24 broadcast of the source.
Ipv4 slash24_broadcast(Ipv4 source);

struct Endpoint {
    Ipv4 address;
    std::optional<std::uint16_t> port;  // nullopt: the cluster's Port=
    bool operator==(const Endpoint&) const = default;
};

enum class ChannelKind { Broadcast, Multicast, Unicast };

struct ChannelSpec {
    ChannelKind kind = ChannelKind::Broadcast;
    Ipv4 source;
    Ipv4 group_or_broadcast;      // broadcast destination or multicast group
    std::vector<Endpoint> peers;  // unicast only

    // The channel as Channel= would spell it; also its name in the status.
    std::string to_string() const;
    bool operator==(const ChannelSpec&) const = default;
};

// Parses the value of one Channel= line; on error returns nullopt and sets *error.
std::optional<ChannelSpec> parse_channel_spec(std::string_view value, std::string* error);

}  // namespace freeha
