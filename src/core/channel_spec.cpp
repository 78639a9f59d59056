#include "core/channel_spec.h"

#include <algorithm>
#include <charconv>

#include <arpa/inet.h>

namespace freeha {
namespace {

std::string quoted(std::string_view text) { return "'" + std::string(text) + "'"; }

std::optional<std::uint16_t> parse_port(std::string_view text) {
    unsigned port = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
    if (ec != std::errc() || ptr != text.data() + text.size() || port == 0 || port > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(port);
}

// ADDRESS, IPv4:PORT, [IPv6] or [IPv6]:PORT; IPv6 optionally with %DEVICE.
std::optional<Endpoint> parse_endpoint(std::string_view text, std::string* error) {
    auto fail = [&](const std::string& why) -> std::optional<Endpoint> {
        *error = quoted(text) + ": " + why;
        return std::nullopt;
    };
    std::string_view address = text;
    std::optional<std::string_view> port;
    if (text.starts_with('[')) {
        auto close = text.find(']');
        if (close == std::string_view::npos) return fail("no ']' after the IPv6 address");
        address = text.substr(1, close - 1);
        std::string_view rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return fail("expected ':PORT' after ']'");
            port = rest.substr(1);
        }
    } else if (std::count(text.begin(), text.end(), ':') == 1) {
        auto colon = text.find(':');
        address = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    std::string why;
    auto ip = parse_ip_address(address, &why);
    if (!ip) return fail(why);
    if (text.starts_with('[') && ip->family == Family::Ipv4) return fail("brackets are for IPv6 addresses only");
    if (!text.starts_with('[') && port && ip->family == Family::Ipv6)
        return fail("write an IPv6 address with a port as [ADDRESS]:PORT");
    Endpoint e{*ip, std::nullopt};
    if (port) {
        e.port = parse_port(*port);
        if (!e.port) return fail(quoted(*port) + " is not a port (1 to 65535)");
    }
    return e;
}

// An address that means something on one interface only gets the channel's;
// every interface named in the channel must be the same one.
std::optional<std::string> settle_device(std::vector<IpAddress*> addresses) {
    const IpAddress* named = nullptr;
    for (const IpAddress* a : addresses) {
        if (a->device.empty()) continue;
        if (named && named->device != a->device)
            return quoted(a->to_string()) + " is on " + a->device + " but " + quoted(named->to_string()) + " on " +
                   named->device + ": a channel uses one interface";
        named = a;
    }
    for (IpAddress* a : addresses) {
        if (!a->needs_device() || !a->device.empty()) continue;
        if (!named) {
            if (a->is_multicast())
                return "IPv6 multicast group " + quoted(a->to_string()) + " needs its interface: " + a->to_string() +
                       "%DEVICE (or a link-local SOURCE%DEVICE)";
            return quoted(a->to_string()) + " is link-local: name its interface, e.g. " + a->to_string() + "%eth0";
        }
        a->device = named->device;
    }
    return std::nullopt;
}

}  // namespace

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

bool is_device_name(std::string_view name) {
    if (name.empty() || name.size() > kMaxDeviceName || name == "." || name == "..") return false;
    for (char ch : name)
        if (ch == '/' || ch == ':' || ch == '%' || ch == ' ' || ch == '\t' || static_cast<unsigned char>(ch) < 0x20)
            return false;
    return true;
}

bool IpAddress::is_multicast() const {
    return family == Family::Ipv4 ? (bytes[0] >> 4) == 0xe : bytes[0] == 0xff;
}

bool IpAddress::is_unspecified() const {
    std::size_t size = family == Family::Ipv4 ? 4 : 16;
    for (std::size_t i = 0; i < size; ++i)
        if (bytes[i] != 0) return false;
    return true;
}

bool IpAddress::is_link_local() const { return family == Family::Ipv6 && bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80; }

bool IpAddress::is_loopback() const {
    if (family == Family::Ipv4) return bytes[0] == 127;
    for (std::size_t i = 0; i < 15; ++i)
        if (bytes[i] != 0) return false;
    return bytes[15] == 1;
}

bool IpAddress::needs_device() const { return family == Family::Ipv6 && (is_link_local() || is_multicast()); }

std::string IpAddress::to_string() const {
    char buf[INET6_ADDRSTRLEN];
    inet_ntop(family == Family::Ipv4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
    return device.empty() ? std::string(buf) : std::string(buf) + "%" + device;
}

std::optional<IpAddress> parse_ip_address(std::string_view text, std::string* error) {
    IpAddress a;
    std::string_view address = text;
    auto percent = text.find('%');
    if (percent != std::string_view::npos) {
        address = text.substr(0, percent);
        a.device = text.substr(percent + 1);
    }
    std::string s(address);
    if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
        a.family = Family::Ipv4;
    } else if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
        a.family = Family::Ipv6;
    } else {
        *error = "not an IPv4 or IPv6 address";
        return std::nullopt;
    }
    if (a.family == Family::Ipv6 && std::all_of(a.bytes.begin(), a.bytes.begin() + 10, [](auto b) { return b == 0; }) &&
        a.bytes[10] == 0xff && a.bytes[11] == 0xff) {
        *error = "an IPv4-mapped IPv6 address; write the IPv4 address itself";
        return std::nullopt;
    }
    if (percent != std::string_view::npos) {
        if (!a.needs_device()) {
            *error = "only IPv6 link-local addresses (fe80::/10) and IPv6 multicast groups take a %DEVICE";
            return std::nullopt;
        }
        if (!is_device_name(a.device)) {
            *error = quoted(a.device) + " is not an interface name";
            return std::nullopt;
        }
    }
    return a;
}

IpAddress slash24_broadcast(const IpAddress& source) {
    IpAddress a = source;
    a.bytes[3] = 0xff;
    return a;
}

std::string Endpoint::to_string() const {
    if (!port) return address.to_string();
    if (address.family == Family::Ipv6) return "[" + address.to_string() + "]:" + std::to_string(*port);
    return address.to_string() + ":" + std::to_string(*port);
}

std::string ChannelSpec::device() const {
    if (!source.device.empty()) return source.device;
    if (kind == ChannelKind::Multicast) return group_or_broadcast.device;
    for (const auto& p : peers)
        if (!p.address.device.empty()) return p.address.device;
    return {};
}

std::string ChannelSpec::to_string() const {
    switch (kind) {
    case ChannelKind::Broadcast: return "broadcast " + source.to_string() + " " + group_or_broadcast.to_string();
    case ChannelKind::Multicast: return "multicast " + source.to_string() + " " + group_or_broadcast.to_string();
    case ChannelKind::Unicast: {
        std::string s = "unicast " + source.to_string();
        for (const auto& p : peers) s += " " + p.to_string();
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
    if (kind == "broadcast") {
        spec.kind = ChannelKind::Broadcast;
        if (words.size() > 3) return fail("broadcast takes SOURCE [BROADCAST]");
    } else if (kind == "multicast") {
        spec.kind = ChannelKind::Multicast;
        if (words.size() != 3) return fail("multicast takes SOURCE GROUP");
    } else if (kind == "unicast") {
        spec.kind = ChannelKind::Unicast;
        if (words.size() < 3) return fail("unicast takes SOURCE PEER [PEER...]");
    } else {
        return fail("unknown channel kind " + quoted(kind) + " (broadcast, multicast or unicast)");
    }

    std::string why;
    auto source = parse_endpoint(words[1], &why);
    if (!source) return fail("SOURCE " + why);
    if (source->port) return fail("SOURCE " + quoted(words[1]) + " takes no port: every channel binds Port=");
    if (source->address.is_multicast() || source->address.is_unspecified())
        return fail("SOURCE " + quoted(words[1]) + " must be this node's own unicast address");
    spec.source = source->address;
    std::vector<IpAddress*> addresses{&spec.source};
    auto same_family = [&](const IpAddress& a, std::string_view word) -> std::optional<std::string> {
        if (a.family == spec.family()) return std::nullopt;
        auto name = [](Family f) { return f == Family::Ipv4 ? "IPv4" : "IPv6"; };
        return quoted(word) + " is " + name(a.family) + " but SOURCE " + spec.source.to_string() + " is " +
               name(spec.family()) + ": use one channel per address family";
    };

    switch (spec.kind) {
    case ChannelKind::Broadcast:
        if (spec.family() != Family::Ipv4)
            return fail("broadcast is IPv4 only (IPv6 has no broadcast); use 'multicast SOURCE ff02::...%DEVICE'");
        spec.group_or_broadcast = slash24_broadcast(spec.source);
        if (words.size() == 3) {
            auto dest = parse_ip_address(words[2], &why);
            if (!dest) return fail("BROADCAST " + quoted(words[2]) + ": " + why);
            if (auto e = same_family(*dest, words[2])) return fail(*e);
            spec.group_or_broadcast = *dest;
        }
        break;
    case ChannelKind::Multicast: {
        auto group = parse_ip_address(words[2], &why);
        if (!group) return fail("GROUP " + quoted(words[2]) + ": " + why);
        if (auto e = same_family(*group, words[2])) return fail(*e);
        if (!group->is_multicast())
            return fail(quoted(words[2]) + " is not a multicast group (IPv4 224.0.0.0/4, IPv6 ff00::/8)");
        spec.group_or_broadcast = *group;
        addresses.push_back(&spec.group_or_broadcast);
        break;
    }
    case ChannelKind::Unicast:
        for (std::size_t i = 2; i < words.size(); ++i) {
            auto peer = parse_endpoint(words[i], &why);
            if (!peer) return fail("PEER " + why);
            if (auto e = same_family(peer->address, words[i])) return fail(*e);
            if (peer->address.is_multicast() || peer->address.is_unspecified())
                return fail("PEER " + quoted(words[i]) + " is not a unicast address; for a group use 'multicast SOURCE GROUP'");
            spec.peers.push_back(*peer);
        }
        for (auto& p : spec.peers) addresses.push_back(&p.address);
        break;
    }
    if (auto e = settle_device(addresses)) return fail(*e);
    return spec;
}

}  // namespace freeha
