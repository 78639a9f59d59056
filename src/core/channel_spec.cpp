#include "core/channel_spec.h"

#include <arpa/inet.h>
#include <charconv>

namespace freeha {
namespace {

std::vector<std::string_view> split_words(std::string_view s) {
    std::vector<std::string_view> words;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
        std::size_t start = i;
        while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
        if (i > start) words.push_back(s.substr(start, i - start));
    }
    return words;
}

std::optional<Endpoint> parse_endpoint(std::string_view text) {
    Endpoint e;
    auto colon = text.find(':');
    if (colon != std::string_view::npos) {
        std::string_view port_text = text.substr(colon + 1);
        unsigned port = 0;
        auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port == 0 || port > 65535)
            return std::nullopt;
        e.port = static_cast<std::uint16_t>(port);
        text = text.substr(0, colon);
    }
    auto address = parse_ipv4(text);
    if (!address) return std::nullopt;
    e.address = *address;
    return e;
}

bool is_multicast(Ipv4 a) { return (a.value >> 28) == 0xe; }

}  // namespace

std::optional<Ipv4> parse_ipv4(std::string_view text) {
    std::string s(text);
    in_addr a{};
    if (inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
    return Ipv4{ntohl(a.s_addr)};
}

std::string to_string(Ipv4 a) {
    in_addr n{htonl(a.value)};
    char buf[INET_ADDRSTRLEN];
    return inet_ntop(AF_INET, &n, buf, sizeof buf);
}

Ipv4 slash24_broadcast(Ipv4 source) { return Ipv4{source.value | 0xffu}; }

std::string ChannelSpec::to_string() const {
    switch (kind) {
    case ChannelKind::Broadcast:
        return "broadcast " + freeha::to_string(source) + " " + freeha::to_string(group_or_broadcast);
    case ChannelKind::Multicast:
        return "multicast " + freeha::to_string(source) + " " + freeha::to_string(group_or_broadcast);
    case ChannelKind::Unicast: {
        std::string s = "unicast " + freeha::to_string(source);
        for (const auto& p : peers) {
            s += " " + freeha::to_string(p.address);
            if (p.port) s += ":" + std::to_string(*p.port);
        }
        return s;
    }
    }
    return {};
}

std::optional<ChannelSpec> parse_channel_spec(std::string_view value, std::string* error) {
    auto fail = [&](std::string message) -> std::optional<ChannelSpec> {
        *error = std::move(message);
        return std::nullopt;
    };
    auto words = split_words(value);
    if (words.size() < 2) return fail("expected 'broadcast|multicast|unicast SOURCE ...'");
    ChannelSpec spec;
    std::string_view kind = words[0];
    auto source = parse_ipv4(words[1]);
    if (!source) return fail("'" + std::string(words[1]) + "' is not an IPv4 source address");
    spec.source = *source;
    if (kind == "broadcast") {
        spec.kind = ChannelKind::Broadcast;
        if (words.size() > 3) return fail("broadcast takes SOURCE [BROADCAST]");
        spec.group_or_broadcast = slash24_broadcast(*source);
        if (words.size() == 3) {
            auto dest = parse_ipv4(words[2]);
            if (!dest) return fail("'" + std::string(words[2]) + "' is not an IPv4 broadcast address");
            spec.group_or_broadcast = *dest;
        }
    } else if (kind == "multicast") {
        spec.kind = ChannelKind::Multicast;
        if (words.size() != 3) return fail("multicast takes SOURCE GROUP");
        auto group = parse_ipv4(words[2]);
        if (!group || !is_multicast(*group))
            return fail("'" + std::string(words[2]) + "' is not an IPv4 multicast group (224.0.0.0/4)");
        spec.group_or_broadcast = *group;
    } else if (kind == "unicast") {
        spec.kind = ChannelKind::Unicast;
        if (words.size() < 3) return fail("unicast takes SOURCE PEER [PEER...]");
        for (std::size_t i = 2; i < words.size(); ++i) {
            auto peer = parse_endpoint(words[i]);
            if (!peer) return fail("'" + std::string(words[i]) + "' is not a peer address (IPv4[:PORT])");
            spec.peers.push_back(*peer);
        }
    } else {
        return fail("unknown channel kind '" + std::string(kind) + "' (broadcast, multicast or unicast)");
    }
    return spec;
}

}  // namespace freeha
