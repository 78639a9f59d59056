#include "core/config.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <functional>
#include <sstream>
#include <tuple>
#include <variant>

#include <ini.h>

#include "core/auth.h"
#include "core/etcd_keys.h"
#include "core/node_name.h"
#include "core/membership.h"
#include "core/wire.h"

namespace freeha {

static_assert(kMaxGroups == wire::kMaxGroups, "a heartbeat carries every group the configuration allows");
namespace {

using namespace literals;

// A key's setter gets the value's origin too: Address= keeps it per line.
using Setter = std::function<std::optional<std::string>(Config&, std::string_view value, std::string_view origin)>;
using PlainSetter = std::function<std::optional<std::string>(Config&, std::string_view value)>;

// Every time key has a range: the minimum keeps the loop sane, the maximum
// keeps deadlines (now + span, 2 * span) meaningful and catches typos.
std::optional<std::string> set_timespan(Usec& field, std::string_view value, Usec minimum, Usec maximum) {
    auto span = parse_timespan(value);
    if (!span) return "not a time span (e.g. 200ms, 2s, 5min)";
    if (*span < minimum) return "must be at least " + format_timespan(minimum);
    if (*span > maximum) return "must be at most " + format_timespan(maximum);
    field = *span;
    return std::nullopt;
}

std::optional<std::string> set_number(unsigned& field, std::string_view value, unsigned lo, unsigned hi) {
    unsigned n = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || ptr != value.data() + value.size() || n < lo || n > hi)
        return "expected a number from " + std::to_string(lo) + " to " + std::to_string(hi);
    field = n;
    return std::nullopt;
}

template <typename Enum, std::size_t N>
std::optional<std::string> set_enum(Enum& field, std::string_view value, const EnumNames<Enum, N>& names) {
    auto parsed = names.parse(value);
    if (!parsed) return "expected " + names.expected();
    field = *parsed;
    return std::nullopt;
}

std::optional<std::string> set_path(std::string& field, std::string_view value, bool may_be_empty) {
    if (value.empty() && may_be_empty) {
        field.clear();
        return std::nullopt;
    }
    if (value.empty() || value.front() != '/') return "expected an absolute path";
    field = value;
    return std::nullopt;
}

// A systemd unit name as systemd accepts it, with a type suffix.
bool is_unit_name(std::string_view v) {
    static constexpr std::array<std::string_view, 2> kSuffixes{".target", ".service"};
    if (v.empty() || v.size() > 255) return false;
    for (char ch : v)
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || std::string_view(":-_.\\@").find(ch) != std::string_view::npos))
            return false;
    for (auto suffix : kSuffixes)
        if (v.size() > suffix.size() && v.ends_with(suffix)) return true;
    return false;
}

// The offset of the first byte that does not belong to well-formed UTF-8
// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), or
// npos. Every value may reach the JSON status, D-Bus and the journal, which
// all take UTF-8 only.
std::size_t invalid_utf8_at(std::string_view v) {
    auto byte = [&](std::size_t i) { return static_cast<unsigned char>(v[i]); };
    for (std::size_t i = 0; i < v.size();) {
        unsigned char b = byte(i);
        std::size_t length = b < 0x80 ? 1 : (b >= 0xC2 && b <= 0xDF) ? 2 : (b >= 0xE0 && b <= 0xEF) ? 3
                                        : (b >= 0xF0 && b <= 0xF4) ? 4 : 0;
        if (length == 0 || i + length > v.size()) return i;
        for (std::size_t k = 1; k < length; ++k)
            if ((byte(i + k) & 0xC0) != 0x80) return i;
        unsigned char second = length > 1 ? byte(i + 1) : 0;
        if ((b == 0xE0 && second < 0xA0) || (b == 0xED && second > 0x9F) || (b == 0xF0 && second < 0x90) ||
            (b == 0xF4 && second > 0x8F))
            return i;
        i += length;
    }
    return std::string_view::npos;
}

struct KeyDef {
    std::string_view section;
    std::string_view key;
    Setter set;
    KeyDef(std::string_view s, std::string_view k, Setter f) : section(s), key(k), set(std::move(f)) {}
    // Most keys need not know where their value came from.
    KeyDef(std::string_view s, std::string_view k, PlainSetter f)
        : section(s), key(k), set([f = std::move(f)](Config& c, std::string_view v, std::string_view) { return f(c, v); }) {}
};

std::string in_quotes(std::string_view text) { return "'" + std::string(text) + "'"; }

// Whether every bit of `a` after the first `prefix` is `one`.
bool host_bits_are(const IpAddress& a, unsigned prefix, bool one) {
    unsigned bits = a.family == Family::Ipv4 ? 32 : 128;
    for (unsigned i = prefix; i < bits; ++i)
        if (((a.bytes[i / 8] >> (7 - i % 8)) & 1) != static_cast<unsigned>(one)) return false;
    return true;
}

// ADDRESS/PREFIX: a unicast address this network can route to a host.
std::optional<std::string> parse_address_and_prefix(std::string_view word, FloatingAddress& out) {
    auto slash = word.find('/');
    if (slash == std::string_view::npos)
        return in_quotes(word) + " has no prefix length: write ADDRESS/PREFIX, e.g. 192.0.2.10/24";
    std::string_view address = word.substr(0, slash), prefix = word.substr(slash + 1);
    if (address.find('%') != std::string_view::npos)
        return in_quotes(address) + ": name the interface as DEVICE (the second word), not with %";
    std::string why;
    auto ip = parse_ip_address(address, &why);
    if (!ip) return in_quotes(address) + ": " + why;
    bool v4 = ip->family == Family::Ipv4;
    unsigned bits = v4 ? 32 : 128;
    auto [ptr, ec] = std::from_chars(prefix.data(), prefix.data() + prefix.size(), out.prefix);
    if (prefix.empty() || ec != std::errc() || ptr != prefix.data() + prefix.size() || out.prefix == 0 ||
        out.prefix > bits)
        return "prefix length " + in_quotes(prefix) + " out of range: 1 to " + std::to_string(bits) + " for " +
               (v4 ? "IPv4" : "IPv6");
    if (ip->is_unspecified()) return in_quotes(address) + " is the unspecified address, not a host's";
    if (ip->is_multicast()) return in_quotes(address) + " is a multicast group, not a host's address";
    if (ip->is_loopback()) return in_quotes(address) + " is a loopback address: it never leaves this host";
    // /31 (RFC 3021) and /127 (RFC 6164) links have no network or broadcast address.
    if (out.prefix < bits - 1 && host_bits_are(*ip, out.prefix, false))
        return in_quotes(word) + " is the " + (v4 ? "network" : "subnet-router anycast") +
               " address of its prefix (every host bit 0), not a host's";
    if (v4 && out.prefix < bits - 1 && host_bits_are(*ip, out.prefix, true))
        return in_quotes(word) + " is the broadcast address of its prefix (every host bit 1), not a host's";
    out.address = *ip;
    return std::nullopt;
}

// Address=ADDRESS/PREFIX DEVICE [label=LABEL] [dad]
std::optional<std::string> parse_floating_address(std::string_view value, FloatingAddress& out) {
    auto words = split_words(value);
    if (words.size() < 2) return "expected ADDRESS/PREFIX DEVICE [label=LABEL] [dad], e.g. 192.0.2.10/24 eth0";
    if (auto e = parse_address_and_prefix(words[0], out)) return e;
    bool v4 = out.address.family == Family::Ipv4;
    if (!is_device_name(words[1]))
        return "DEVICE " + in_quotes(words[1]) +
               " is not an interface name (1 to 15 characters; no '/', ':', '%' or white space; not '.' or '..')";
    out.device = words[1];
    bool labelled = false;
    for (std::size_t i = 2; i < words.size(); ++i) {
        std::string_view option = words[i];
        if (option.starts_with("label=")) {
            if (labelled) return "label= given twice";
            labelled = true;
            if (!v4) return "label= is for IPv4 addresses only (the kernel keeps no label on IPv6 addresses)";
            std::string_view label = option.substr(6);
            if (label != out.device && !label.starts_with(out.device + ":"))
                return "label " + in_quotes(label) + " must be the DEVICE " + in_quotes(out.device) + " or begin with " +
                       in_quotes(out.device + ":") + " (as for ip address add)";
            if (label.size() > kMaxDeviceName)
                return "label " + in_quotes(label) + " is longer than " + std::to_string(kMaxDeviceName) + " characters";
            out.label = label;
        } else if (option == "dad") {
            if (out.dad) return "dad given twice";
            if (v4) return "dad is for IPv6 addresses only (the kernel runs no duplicate address detection for IPv4)";
            out.dad = true;
        } else {
            return "unknown option " + in_quotes(option) + " (label=LABEL or dad)";
        }
    }
    return std::nullopt;
}

// Two entries for one address; an IPv6 link-local address is one per interface.
bool same_address(const IpAddress& a, const std::string& a_device, const IpAddress& b, const std::string& b_device) {
    return a.family == b.family && a.bytes == b.bytes && (!a.is_link_local() || a_device == b_device);
}

// A DNS name as a URL's host: labels of 1 to 63 letters, digits and '-',
// neither first nor last a '-', at most 253 characters in all.
bool is_host_name(std::string_view name) {
    if (name.empty() || name.size() > 253) return false;
    std::size_t label = 0;
    for (std::size_t i = 0; i <= name.size(); ++i) {
        if (i == name.size() || name[i] == '.') {
            if (label == 0 || label > 63 || name[i - 1] == '-' || name[i - label] == '-') return false;
            label = 0;
        } else if (std::isalnum(static_cast<unsigned char>(name[i])) || name[i] == '-') {
            ++label;
        } else {
            return false;
        }
    }
    return true;
}

// One URL of Endpoints=: http://HOST:PORT or https://HOST:PORT, HOST a name,
// an IPv4 address or an IPv6 address in brackets, then at most a '/'.
// `canonical` gets it without that '/': the client appends the gateway's
// paths ("/v3/lease/grant") to it. The error begins with the URL.
std::optional<std::string> parse_etcd_endpoint(std::string_view url, std::string& canonical) {
    const std::string head = in_quotes(url) + ": ";
    std::string_view scheme = url.starts_with("http://") ? "http://" : url.starts_with("https://") ? "https://" : "";
    if (scheme.empty()) return head + "expected http://HOST:PORT or https://HOST:PORT";
    std::string_view rest = url.substr(scheme.size());
    std::size_t end = std::min(rest.find_first_of("/?#"), rest.size());
    std::string_view authority = rest.substr(0, end), after = rest.substr(end);
    if (!after.empty() && after != "/")
        return head + "nothing may follow the port but '/', found " + in_quotes(after);
    if (authority.find('@') != std::string_view::npos)
        return head + "a user name (USER@) is not taken; clients authenticate with CertFile= and KeyFile=";
    std::string_view host, port;
    bool has_port = false;
    if (authority.starts_with('[')) {
        std::size_t close = authority.find(']');
        if (close == std::string_view::npos) return head + "'[' without the ']' that ends the IPv6 address";
        host = authority.substr(1, close - 1);
        std::string_view tail = authority.substr(close + 1);
        if (!tail.empty() && tail.front() != ':') return head + "expected ':PORT' after ']', found " + in_quotes(tail);
        has_port = !tail.empty();
        if (has_port) port = tail.substr(1);
        if (host.find('%') != std::string_view::npos)
            return head + "an IPv6 zone (%DEVICE) cannot be given; use a global address or a name";
        std::string why;
        auto ip = parse_ip_address(host, &why);
        if (!ip) return head + in_quotes(host) + ": " + why;
        if (ip->family != Family::Ipv6) return head + "brackets are for IPv6 addresses; write an IPv4 address without";
    } else {
        std::size_t colon = authority.find(':');
        if (colon != std::string_view::npos && authority.find(':', colon + 1) != std::string_view::npos)
            return head + "an IPv6 address needs brackets, e.g. https://[2001:db8::1]:2379";
        host = authority.substr(0, colon);
        has_port = colon != std::string_view::npos;
        if (has_port) port = authority.substr(colon + 1);
        if (host.empty()) return head + "no host";
        if (host.find_first_not_of("0123456789.") == std::string_view::npos) {
            std::string why;
            if (!parse_ip_address(host, &why)) return head + in_quotes(host) + " is not an IPv4 address";
        } else if (!is_host_name(host)) {
            return head + in_quotes(host) +
                   " is not a host name (labels of 1 to 63 letters, digits and '-', at most 253 characters), an "
                   "IPv4 address or an [IPv6] address";
        }
    }
    if (!has_port) return head + "no port: write HOST:PORT (etcd's client port is usually 2379)";
    unsigned number = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || number == 0 || number > 65535)
        return head + in_quotes(port) + " is not a port (1 to 65535)";
    canonical = std::string(scheme) + std::string(authority);
    return std::nullopt;
}

// Endpoints=URL...: each value adds its URLs; an empty one clears the list.
std::optional<std::string> add_etcd_endpoints(std::string_view value, std::vector<std::string>& endpoints) {
    if (value.empty()) {  // as Channel=: an empty assignment resets the list
        endpoints.clear();
        return std::nullopt;
    }
    std::vector<std::string> all = endpoints;
    for (std::string_view word : split_words(value)) {
        std::string url;
        if (auto e = parse_etcd_endpoint(word, url)) return e;
        if (std::find(all.begin(), all.end(), url) != all.end()) return in_quotes(url) + " is given twice";
        if (all.size() == kMaxEtcdEndpoints)
            return in_quotes(word) + ": more than " + std::to_string(kMaxEtcdEndpoints) +
                   " endpoints; an empty Endpoints= clears the list";
        all.push_back(std::move(url));
    }
    endpoints = std::move(all);
    return std::nullopt;
}

std::optional<std::string> set_etcd_prefix(std::string& field, std::string_view value) {
    if (!value.empty())
        if (std::string why = etcd::prefix_error(value); !why.empty()) return why;
    field = value;
    return std::nullopt;
}

const std::vector<KeyDef>& key_table() {
    static const std::vector<KeyDef> table{
        {"Cluster", "Name",
         [](Config& c, std::string_view v) -> std::optional<std::string> {
             if (v.empty() || v.size() > 64) return "expected 1 to 64 characters";
             c.cluster_name = v;
             return std::nullopt;
         }},
        {"Cluster", "NodeName",
         [](Config& c, std::string_view v) -> std::optional<std::string> {
             if (!v.empty() && !is_valid_node_name(v)) return "expected 1 to 64 characters of A-Z a-z 0-9 - _";
             c.node_name = v;
             return std::nullopt;
         }},
        {"Cluster", "ExpectedNodes",
         [](Config& c, std::string_view v) { return set_number(c.expected_nodes, v, 1, kMaxNodes); }},
        {"Cluster", "Role", [](Config& c, std::string_view v) { return set_enum(c.role, v, kRoleNames); }},
        {"Cluster", "NoQuorumPolicy", [](Config& c, std::string_view v) { return set_enum(c.no_quorum_policy, v, kNoQuorumPolicyNames); }},
        {"Cluster", "Backend", [](Config& c, std::string_view v) { return set_enum(c.backend, v, kBackendNames); }},
        {"Cluster", "AuthKeyFile",
         [](Config& c, std::string_view v) -> std::optional<std::string> {
             if (v.empty()) {  // as Channel=: an empty assignment resets the list
                 c.auth_key_files.clear();
                 return std::nullopt;
             }
             if (c.auth_key_files.size() == auth::kMaxKeys)
                 return "a third key; at most " + std::to_string(auth::kMaxKeys) +
                        " (the first signs, the second is also accepted while the cluster changes keys); "
                        "an empty AuthKeyFile= clears the list";
             std::string path;
             if (auto e = set_path(path, v, false)) return e;
             c.auth_key_files.push_back(std::move(path));
             return std::nullopt;
         }},
        {"Heartbeat", "Port",
         [](Config& c, std::string_view v) -> std::optional<std::string> {
             unsigned port = 0;
             if (auto e = set_number(port, v, 1, 65535)) return e;
             c.port = static_cast<std::uint16_t>(port);
             return std::nullopt;
         }},
        {"Heartbeat", "Interval", [](Config& c, std::string_view v) { return set_timespan(c.interval, v, 1_ms, 10_s); }},
        {"Heartbeat", "DeadTime",
         [](Config& c, std::string_view v) { return set_timespan(c.dead_time, v, 2_ms, kMaxDeadTime); }},
        {"Heartbeat", "InitDead", [](Config& c, std::string_view v) { return set_timespan(c.init_dead, v, 0_s, 60_min); }},
        {"Heartbeat", "Channel",
         [](Config& c, std::string_view v) -> std::optional<std::string> {
             if (v.empty()) {  // systemd convention: an empty assignment resets the list
                 c.channels.clear();
                 return std::nullopt;
             }
             std::string error;
             auto spec = parse_channel_spec(v, &error);
             if (!spec) return error;
             c.channels.push_back(*spec);
             return std::nullopt;
         }},
        {"Etcd", "Endpoints", [](Config& c, std::string_view v) { return add_etcd_endpoints(v, c.etcd_endpoints); }},
        // Empty: none (the system's CAs; no client certificate).
        {"Etcd", "CAFile", [](Config& c, std::string_view v) { return set_path(c.etcd_ca_file, v, true); }},
        {"Etcd", "CertFile", [](Config& c, std::string_view v) { return set_path(c.etcd_cert_file, v, true); }},
        {"Etcd", "KeyFile", [](Config& c, std::string_view v) { return set_path(c.etcd_key_file, v, true); }},
        {"Etcd", "Prefix", [](Config& c, std::string_view v) { return set_etcd_prefix(c.etcd_prefix, v); }},
        {"Services", "FenceTimeout",
         [](Config& c, std::string_view v) { return set_timespan(c.fence_timeout, v, 10_ms, 60_min); }},
        {"Services", "SelfFence", [](Config& c, std::string_view v) { return set_enum(c.self_fence, v, kSelfFenceActionNames); }},
        {"Status", "JSONFile", [](Config& c, std::string_view v) { return set_path(c.json_file, v, true); }},
        {"Status", "StateFile", [](Config& c, std::string_view v) { return set_path(c.state_file, v, true); }},
    };
    return table;
}

// The keys of a service group, [Services] and [Group NAME] alike: each with
// its setter and the values render() prints for it.
using GroupSetter =
    std::function<std::optional<std::string>(GroupConfig&, std::string_view value, std::string_view origin)>;
using PlainGroupSetter = std::function<std::optional<std::string>(GroupConfig&, std::string_view value)>;
using GroupGetter = std::function<std::vector<std::string>(const GroupConfig&)>;

struct GroupKeyDef {
    std::string_view key;
    GroupSetter set;
    GroupGetter get;  // one line each; none: an empty assignment ("Key=")
    GroupKeyDef(std::string_view k, GroupSetter f, GroupGetter g) : key(k), set(std::move(f)), get(std::move(g)) {}
    GroupKeyDef(std::string_view k, PlainGroupSetter f, GroupGetter g)
        : key(k),
          set([f = std::move(f)](GroupConfig& c, std::string_view v, std::string_view) { return f(c, v); }),
          get(std::move(g)) {}
};

// Nodes=NAME...: distinct node names, in the order of preference; empty: none.
std::optional<std::string> parse_node_order(std::string_view value, std::vector<std::string>& out) {
    std::vector<std::string> names;
    for (std::string_view word : split_words(value)) {
        if (!is_valid_node_name(word))
            return in_quotes(word) + " is not a node name (1 to 64 characters of A-Z a-z 0-9 - _)";
        if (std::find(names.begin(), names.end(), word) != names.end()) return in_quotes(word) + " is named twice";
        if (names.size() == kMaxNodes)
            return "more than " + std::to_string(kMaxNodes) + " nodes (as many as a cluster has at most)";
        names.emplace_back(word);
    }
    out = std::move(names);
    return std::nullopt;
}

GroupGetter timespan_of(Usec GroupConfig::*field) {
    return [field](const GroupConfig& g) { return std::vector<std::string>{format_timespan(g.*field)}; };
}

const std::vector<GroupKeyDef>& group_key_table() {
    static const std::vector<GroupKeyDef> table{
        // A [Group NAME] may have no hooks directory (target mode without alerthasrv): it has no default to reset to.
        {"HooksDirectory",
         [](GroupConfig& g, std::string_view v) { return set_path(g.hooks_directory, v, !g.is_default()); },
         [](const GroupConfig& g) { return std::vector<std::string>{g.hooks_directory}; }},
        {"Target",
         [](GroupConfig& g, std::string_view v) -> std::optional<std::string> {
             if (!v.empty() && !is_unit_name(v)) return "expected a unit name such as freeha-services.target";
             g.target = v;
             return std::nullopt;
         },
         [](const GroupConfig& g) { return std::vector<std::string>{g.target}; }},
        {"MonitorInterval",
         [](GroupConfig& g, std::string_view v) { return set_timespan(g.monitor_interval, v, 10_ms, 60_min); },
         timespan_of(&GroupConfig::monitor_interval)},
        {"StartTimeout",
         [](GroupConfig& g, std::string_view v) { return set_timespan(g.start_timeout, v, 10_ms, 24 * 60_min); },
         timespan_of(&GroupConfig::start_timeout)},
        {"StopTimeout",
         [](GroupConfig& g, std::string_view v) { return set_timespan(g.stop_timeout, v, 10_ms, 24 * 60_min); },
         timespan_of(&GroupConfig::stop_timeout)},
        {"MonitorTimeout",
         [](GroupConfig& g, std::string_view v) { return set_timespan(g.monitor_timeout, v, 10_ms, 60_min); },
         timespan_of(&GroupConfig::monitor_timeout)},
        {"Address",
         [](GroupConfig& g, std::string_view v, std::string_view origin) -> std::optional<std::string> {
             if (v.empty()) {  // as Channel=: an empty assignment resets the list
                 g.addresses.clear();
                 return std::nullopt;
             }
             FloatingAddress a;
             if (auto e = parse_floating_address(v, a)) return e;
             // Within the group; validate() compares the groups, once every drop-in has had its say.
             for (const auto& other : g.addresses)
                 if (same_address(a.address, a.device, other.address, other.device))
                     return a.address.to_string() + " is already configured at " + other.origin + " (Address=" +
                            other.to_string() + ")";
             a.origin = origin;
             g.addresses.push_back(std::move(a));
             return std::nullopt;
         },
         [](const GroupConfig& g) {
             std::vector<std::string> values;
             for (const auto& a : g.addresses) values.push_back(a.to_string());
             return values;
         }},
        {"AnnounceRefresh",
         [](GroupConfig& g, std::string_view v) -> std::optional<std::string> {
             if (parse_timespan(v) == Usec()) {
                 g.announce_refresh = Usec();
                 return std::nullopt;
             }
             if (auto e = set_timespan(g.announce_refresh, v, 1_s, 60_min)) return *e + " (or 0: never)";
             return std::nullopt;
         },
         timespan_of(&GroupConfig::announce_refresh)},
        {"Nodes", [](GroupConfig& g, std::string_view v) { return parse_node_order(v, g.nodes); },
         [](const GroupConfig& g) {
             std::string order;
             for (const auto& n : g.nodes) order += (order.empty() ? "" : " ") + n;
             return std::vector<std::string>{order};
         }},
    };
    return table;
}

// ASCII only, whatever the locale.
bool is_group_name_char(char ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
}

bool is_group_section(std::string_view section) { return section == "Group" || section.starts_with("Group "); }

bool equal_ignoring_case(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

// The group of a [Group NAME] section, created at its first line (`where`);
// or the one error line that refuses the section.
std::variant<GroupConfig*, std::string> open_group(Config& c, std::string_view section, const std::string& where) {
    if (invalid_utf8_at(section) != std::string_view::npos)
        return where + ": a [Group NAME] line whose NAME is not valid UTF-8; a group name is 1 to " +
               std::to_string(kMaxGroupNameLength) + " characters of A-Z a-z 0-9 - _";
    std::string name(section.substr(std::min<std::size_t>(section.size(), 6)));
    std::string head = where + ": [" + std::string(section) + "]";
    if (name.empty()) return head + ": a group needs a name: [Group NAME]";
    if (!is_valid_group_name(name)) {
        if (std::all_of(name.begin(), name.end(), is_group_name_char))
            return head + ": the group name is " + std::to_string(name.size()) + " characters long; at most " +
                   std::to_string(kMaxGroupNameLength);
        return head + ": " + in_quotes(name) + " is not a group name: expected 1 to " +
               std::to_string(kMaxGroupNameLength) + " characters of A-Z a-z 0-9 - _";
    }
    if (equal_ignoring_case(name, kDefaultGroupName))
        return head + ": '" + std::string(kDefaultGroupName) + "' is the group of [Services]: set its keys there";
    for (auto& g : c.groups) {
        if (g.name == name) return &g;
        // Group names become cgroup, D-Bus and file names, where case may or may not tell them apart.
        if (equal_ignoring_case(g.name, name))
            return head + ": differs only in case from [Group " + g.name + "] (" + g.origin +
                   "); group names must differ in more than case";
    }
    // A group is known on the wire by a 32-bit hash of its name; 0 is the default group's.
    if (std::uint32_t id = wire::group_id(name); id == kDefaultGroupId)
        return head + ": the name hashes to the default group's id on the wire; choose another name";
    for (auto& g : c.groups)
        if (wire::group_id(g.name) == wire::group_id(name))
            return head + ": the name hashes to the same id on the wire as [Group " + g.name + "] (" + g.origin +
                   "); choose another name";
    if (c.groups.size() + 1 >= kMaxGroups)
        return head + ": one group too many: at most " + std::to_string(kMaxGroups) +
               " groups in all, [Services] included (as many as one heartbeat carries)";
    GroupConfig g;
    g.name = name;
    g.origin = where;
    g.hooks_directory.clear();  // no default: validate() wants HooksDirectory= or Target=
    auto at = std::lower_bound(c.groups.begin(), c.groups.end(), g.name,
                               [](const GroupConfig& a, const std::string& n) { return a.name < n; });
    return &*c.groups.insert(at, std::move(g));
}

// Feeds inih one line at a time from memory and counts lines, so that the
// handler knows the line it is called for.
struct LineReader {
    std::string_view text;
    std::size_t pos = 0;
    int line = 0;
    bool too_long = false;
    // Called with the name of each [Section] line before inih parses it (the
    // installed inih calls no handler for a section without keys).
    std::function<void(std::string_view section)> on_section;
};

// The section a line opens, as inih reads it (a BOM on the first line, white
// space around, the name up to the first ']'), or nullopt.
std::optional<std::string_view> section_of(std::string_view line, int line_number) {
    if (line_number == 1 && line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);
    auto space = [](char ch) { return std::isspace(static_cast<unsigned char>(ch)) != 0; };
    while (!line.empty() && space(line.front())) line.remove_prefix(1);
    if (!line.starts_with('[')) return std::nullopt;
    std::size_t close = line.find(']');
    if (close == std::string_view::npos) return std::nullopt;  // inih's syntax error
    return line.substr(1, close - 1);
}

char* read_line(char* buf, int size, void* stream) {
    auto* r = static_cast<LineReader*>(stream);
    if (r->pos >= r->text.size()) return nullptr;
    std::size_t end = r->text.find('\n', r->pos);
    std::size_t next = end == std::string_view::npos ? r->text.size() : end + 1;
    std::size_t length = next - r->pos;
    ++r->line;
    if (length + 1 > static_cast<std::size_t>(size)) {
        r->too_long = true;
        length = 0;  // hand inih an empty line; the error is reported by the caller
    }
    r->text.copy(buf, length, r->pos);
    buf[length] = '\0';
    r->pos = next;
    if (r->on_section)
        if (auto section = section_of(std::string_view(buf, length), r->line)) r->on_section(*section);
    return buf;
}

struct IniContext {
    Config* config;
    LineReader* reader;
    std::string source;
    std::optional<std::string> error;
    int error_line = 0;
};

int ini_handler(void* user, const char* section, const char* name, const char* value) {
    auto* ctx = static_cast<IniContext*>(user);
    if (ctx->error) return 1;  // report only the first error
    std::string origin = ctx->source + ":" + std::to_string(ctx->reader->line);
    ctx->error = apply_setting(*ctx->config, section, name, value, origin);
    if (ctx->error) ctx->error_line = ctx->reader->line;
    return ctx->error ? 0 : 1;
}

}  // namespace

std::string_view to_string(SelfFenceAction a) { return kSelfFenceActionNames(a); }

bool is_valid_group_name(std::string_view name) {
    return !name.empty() && name.size() <= kMaxGroupNameLength && std::all_of(name.begin(), name.end(), is_group_name_char);
}

std::string GroupConfig::section() const { return is_default() ? "Services" : "Group " + name; }

std::vector<const GroupConfig*> Config::all_groups() const {
    std::vector<const GroupConfig*> all{&services};
    for (const auto& g : groups) all.push_back(&g);
    return all;
}

const GroupConfig* Config::group(std::string_view name) const {
    if (name == kDefaultGroupName) return &services;
    for (const auto& g : groups)
        if (g.name == name) return &g;
    return nullptr;
}

std::string FloatingAddress::to_string() const {
    std::string s = address.to_string() + "/" + std::to_string(prefix) + " " + device;
    if (!label.empty()) s += " label=" + label;
    if (dad) s += " dad";
    return s;
}

std::optional<std::string> apply_setting(Config& config, std::string_view section, std::string_view key,
                                         std::string_view value, std::string_view origin) {
    std::string where(origin), sec(section), name(key);
    if (section.empty()) return where + ": " + name + "= outside any [Section]";
    GroupConfig* group = nullptr;
    if (is_group_section(section)) {
        auto opened = open_group(config, section, where);
        if (auto* error = std::get_if<std::string>(&opened)) return *error;
        group = std::get<GroupConfig*>(opened);
    } else if (section == "Services") {
        group = &config.services;
    }
    const GroupKeyDef* group_def = nullptr;
    if (group != nullptr)
        for (const auto& def : group_key_table())
            if (def.key == key) group_def = &def;
    const KeyDef* node_def = nullptr;
    bool section_known = group != nullptr;
    if (group_def == nullptr) {
        // [Services] also holds the node's own settings, which are for every group.
        std::string_view table_section = group != nullptr ? std::string_view("Services") : section;
        for (const auto& def : key_table()) {
            if (def.section != table_section) continue;
            section_known = true;
            if (def.key == key) node_def = &def;
        }
        if (node_def != nullptr && group != nullptr && !group->is_default())
            return where + ": [" + sec + "] " + name +
                   "= is a setting of the node, not of a group: set it in [Services]";
    }
    if (group_def == nullptr && node_def == nullptr) {
        if (!section_known) return where + ": unknown section [" + sec + "]";
        return where + ": [" + sec + "] unknown key '" + name + "'";
    }
    // Named without its bytes, which would carry the encoding error into the message.
    if (auto at = invalid_utf8_at(value); at != std::string_view::npos) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(value[at]));
        return where + ": [" + sec + "] " + name + "=: not valid UTF-8 (byte " + hex + " at offset " +
               std::to_string(at) + ")";
    }
    auto error = group_def != nullptr ? group_def->set(*group, value, where) : node_def->set(config, value, where);
    if (error) return where + ": [" + sec + "] " + name + "=" + std::string(value) + ": " + *error;
    config.origin[sec + "." + name] = where;
    return std::nullopt;
}

std::optional<std::string> apply_ini(Config& config, std::string_view text, std::string_view source) {
    // systemd's INI dialect: no inline comments, no continuation lines.
    ini_allow_inline_comments = false;
    ini_allow_multiline = false;
    ini_max_line = 4096;
    LineReader reader;
    reader.text = text;
    IniContext ctx{&config, &reader, std::string(source), std::nullopt};
    // A group has one section per file: a second [Group NAME] in the same
    // file is a mistake (a copied block), while a drop-in changes a group of
    // another file as it changes any section.
    std::map<std::string, std::string> groups_here;  // [Group NAME] -> its line here
    reader.on_section = [&](std::string_view section) {
        if (ctx.error || !is_group_section(section)) return;
        std::string where = ctx.source + ":" + std::to_string(reader.line);
        if (auto seen = groups_here.find(std::string(section)); seen != groups_here.end()) {
            ctx.error = where + ": [" + std::string(section) + "] is already defined at " + seen->second +
                        "; give each group one section per file (a drop-in may change it)";
        } else if (auto opened = open_group(config, section, where); auto* error = std::get_if<std::string>(&opened)) {
            ctx.error = *error;
        } else {
            groups_here.emplace(section, where);
        }
        if (ctx.error) ctx.error_line = reader.line;
    };
    int r = ini_parse_stream(read_line, &reader, ini_handler, &ctx);
    if (reader.too_long) return std::string(source) + ": a line is longer than 4095 characters";
    // inih returns the first line it could not parse; report whichever error comes first.
    if (ctx.error && (r <= 0 || ctx.error_line <= r)) return ctx.error;
    if (r > 0)
        return std::string(source) + ":" + std::to_string(r) + ": syntax error: expected [Section], Key=Value or a comment";
    if (r < 0) return std::string(source) + ": could not be parsed";
    return std::nullopt;
}

namespace {

std::string key_name(const std::string& key) { return key.substr(key.find('.') + 1); }

// The [Etcd] keys that have a value ("Etcd.Endpoints", ...), in the order render() prints them.
std::vector<std::string> etcd_keys_set(const Config& c) {
    std::vector<std::string> keys;
    for (const auto& [key, set] : {std::pair{"Etcd.Endpoints", !c.etcd_endpoints.empty()},
                                   std::pair{"Etcd.CAFile", !c.etcd_ca_file.empty()},
                                   std::pair{"Etcd.CertFile", !c.etcd_cert_file.empty()},
                                   std::pair{"Etcd.KeyFile", !c.etcd_key_file.empty()},
                                   std::pair{"Etcd.Prefix", !c.etcd_prefix.empty()}})
        if (set) keys.emplace_back(key);
    return keys;
}

}  // namespace

std::string effective_etcd_prefix(const Config& c) {
    return c.etcd_prefix.empty() ? etcd::default_prefix(c.cluster_name) : c.etcd_prefix;
}

std::optional<std::string> validate(const Config& c) {
    auto at = [&](const std::string& key) {
        auto it = c.origin.find(key);
        return it == c.origin.end() ? std::string("default") : it->second;
    };
    if (c.dead_time < 2 * c.interval)
        return at("Heartbeat.DeadTime") + ": DeadTime=" + format_timespan(c.dead_time) +
               " must be at least twice Interval=" + format_timespan(c.interval) + " (" + at("Heartbeat.Interval") +
               ")";
    if (c.backend == Backend::Heartbeat) {
        if (auto keys = etcd_keys_set(c); !keys.empty())
            return at(keys.front()) + ": [Etcd] " + key_name(keys.front()) + "= is set but Backend=heartbeat (" +
                   at("Cluster.Backend") + "); set Backend=etcd in [Cluster] or remove the [Etcd] keys";
        if (c.channels.empty())
            return "no heartbeat channel configured: give -a IP, or Channel= in [Heartbeat] (see freehad.conf(5))";
    } else {
        if (c.etcd_endpoints.empty())
            return at("Cluster.Backend") +
                   ": Backend=etcd needs [Etcd] Endpoints=, the URLs of the etcd cluster (e.g. https://etcd1:2379)";
        // With etcd no heartbeat is sent or read: a channel there is a mistake, not a fallback.
        if (!c.channels.empty())
            return at("Heartbeat.Channel") + ": [Heartbeat] Channel= is given but Backend=etcd (" +
                   at("Cluster.Backend") + "), where etcd carries membership and no heartbeat is sent; remove it";
        if (c.etcd_cert_file.empty() != c.etcd_key_file.empty()) {
            bool cert = !c.etcd_cert_file.empty();
            return at(cert ? "Etcd.CertFile" : "Etcd.KeyFile") + ": [Etcd] " + (cert ? "CertFile" : "KeyFile") +
                   "= is set but " + (cert ? "KeyFile" : "CertFile") +
                   "= is not: a client certificate needs both CertFile= and KeyFile=";
        }
        // Only https:// uses them; over http:// the files would be read and ignored.
        for (const auto& [key, path] : {std::pair{"Etcd.CAFile", &c.etcd_ca_file},
                                        std::pair{"Etcd.CertFile", &c.etcd_cert_file},
                                        std::pair{"Etcd.KeyFile", &c.etcd_key_file}}) {
            if (path->empty()) continue;
            for (const auto& url : c.etcd_endpoints)
                if (url.starts_with("http://"))
                    return at(key) + ": [Etcd] " + key_name(key) + "= is set but the endpoint " + url + " (" +
                           at("Etcd.Endpoints") + ") is http://: TLS files need https:// endpoints";
        }
        if (c.etcd_prefix.empty())
            if (std::string why = etcd::prefix_error(effective_etcd_prefix(c)); !why.empty())
                return at("Cluster.Name") + ": Name=" + c.cluster_name + " makes the etcd prefix " +
                       effective_etcd_prefix(c) + ", which " + why + "; give [Etcd] Prefix=";
    }
    // Every channel's socket is bound to SOURCE:Port, so two channels cannot share a SOURCE.
    for (std::size_t i = 0; i < c.channels.size(); ++i)
        for (std::size_t j = i + 1; j < c.channels.size(); ++j)
            if (c.channels[i].source == c.channels[j].source)
                return at("Heartbeat.Channel") + ": channels '" + c.channels[i].to_string() + "' and '" +
                       c.channels[j].to_string() + "' both bind " + c.channels[i].source.to_string() + " port " +
                       std::to_string(c.port) + "; each channel needs a SOURCE address of its own";
    // With quorum rules the graceful stop comes out of the lease, which must
    // keep two intervals for its renewal (freeha-safety(7)).
    NodeSettings s = node_settings(c, 0);
    if (quorum_rules_apply(s) && c.fence_timeout > max_fence_timeout(c.interval, c.dead_time))
        return at("Services.FenceTimeout") + ": FenceTimeout=" + format_timespan(c.fence_timeout) +
               " does not fit in the lease of DeadTime=" + format_timespan(c.dead_time) + " (" +
               at("Heartbeat.DeadTime") + ") with Interval=" + format_timespan(c.interval) + ": at most " +
               format_timespan(max_fence_timeout(c.interval, c.dead_time) / 1000 * 1000) +
               "; lower FenceTimeout= or raise DeadTime=";
    // What [Services] states unprefixed, as it always has; a group's lines name the group.
    auto label = [](const GroupConfig& g) { return g.is_default() ? std::string() : "[" + g.section() + "] "; };
    auto section_of_group = [](const GroupConfig& g) { return "[" + g.section() + "]"; };
    const auto groups = c.all_groups();
    for (const GroupConfig* g : groups) {
        // A floating address moves with the services; a channel's SOURCE must stay with the node.
        for (const auto& a : g->addresses)
            for (const auto& ch : c.channels)
                if (same_address(a.address, a.device, ch.source, ch.source.device))
                    return a.origin + ": " + label(*g) + "Address=" + a.to_string() +
                           " is the SOURCE of the heartbeat channel '" + ch.to_string() + "' (" +
                           at("Heartbeat.Channel") +
                           "); a channel needs an address of this node's own, which stays when the services move";
        if (!g->is_default() && g->hooks_directory.empty() && g->target.empty())
            return g->origin + ": " + section_of_group(*g) +
                   " has neither HooksDirectory= nor Target=: name the directory of the group's hooks or the "
                   "systemd unit of its services";
    }
    // Checked here, not per line: a later drop-in may clear one group's Address= list and give the address to another.
    for (std::size_t i = 0; i < groups.size(); ++i)
        for (std::size_t j = i + 1; j < groups.size(); ++j) {
            const GroupConfig& first = *groups[i];
            const GroupConfig& second = *groups[j];
            for (const auto& b : second.addresses)
                for (const auto& a : first.addresses)
                    if (same_address(a.address, a.device, b.address, b.device))
                        return b.origin + ": " + section_of_group(second) + " Address=" + b.to_string() + ": " +
                               b.address.to_string() + " is also an address of " + section_of_group(first) + " (" +
                               a.origin + ", Address=" + a.to_string() + "); an address moves with one group only";
            if (!first.target.empty() && first.target == second.target)
                return at(second.section() + ".Target") + ": " + section_of_group(second) + " Target=" +
                       second.target + " is also the Target= of " + section_of_group(first) + " (" +
                       at(first.section() + ".Target") + "); each group needs a unit of its own";
        }
    if (c.role == Role::Arbitrator && c.force_start) return "-m: an arbitrator never runs services";
    for (const GroupConfig* g : groups) {
        if (c.role == Role::Arbitrator && !g->addresses.empty())
            return g->addresses.front().origin + ": " + label(*g) + "Address=" + g->addresses.front().to_string() +
                   ": an arbitrator never runs services, so it never holds a floating address (" +
                   at("Cluster.Role") + ")";
        if (!g->target.empty() && c.bus == BusKind::None)
            return at(g->section() + ".Target") + ": " + label(*g) + "Target=" + g->target +
                   " needs D-Bus to reach systemd, but --no-bus was given";
    }
    return std::nullopt;
}

std::string render(const Config& c) {
    std::string out;
    auto line = [&](std::string_view key, const std::string& value) {
        out += std::string(key) + "=" + value + "\n";
    };
    out += "[Cluster]\n";
    line("Name", c.cluster_name);
    line("NodeName", c.node_name);
    line("ExpectedNodes", std::to_string(c.expected_nodes));
    line("Role", std::string(to_string(c.role)));
    line("NoQuorumPolicy", std::string(to_string(c.no_quorum_policy)));
    line("Backend", std::string(to_string(c.backend)));
    if (c.auth_key_files.empty()) line("AuthKeyFile", "");
    for (const auto& path : c.auth_key_files) line("AuthKeyFile", path);
    out += "\n[Heartbeat]\n";
    line("Port", std::to_string(c.port));
    line("Interval", format_timespan(c.interval));
    line("DeadTime", format_timespan(c.dead_time));
    line("InitDead", format_timespan(c.init_dead));
    for (const auto& ch : c.channels) line("Channel", ch.to_string());
    // A heartbeat cluster's rendering stays as it was; the prefix is the effective one.
    if (c.backend == Backend::Etcd || !etcd_keys_set(c).empty()) {
        out += "\n[Etcd]\n";
        if (c.etcd_endpoints.empty()) line("Endpoints", "");
        for (const auto& url : c.etcd_endpoints) line("Endpoints", url);
        line("CAFile", c.etcd_ca_file);
        line("CertFile", c.etcd_cert_file);
        line("KeyFile", c.etcd_key_file);
        line("Prefix", effective_etcd_prefix(c));
    }
    auto group_lines = [&](const GroupConfig& g) {
        for (const auto& def : group_key_table()) {
            auto values = def.get(g);
            if (values.empty()) line(def.key, "");
            for (const auto& v : values) line(def.key, v);
        }
    };
    out += "\n[Services]\n";
    group_lines(c.services);
    line("FenceTimeout", format_timespan(c.fence_timeout));
    line("SelfFence", std::string(to_string(c.self_fence)));
    for (const auto& g : c.groups) {
        out += "\n[" + g.section() + "]\n";
        group_lines(g);
    }
    out += "\n[Status]\n";
    line("JSONFile", c.json_file);
    line("StateFile", c.state_file);
    return out;
}

namespace {

std::string origin_of(const Config& c, const std::string& key) {
    auto it = c.origin.find(key);
    return it == c.origin.end() ? "default" : it->second;
}

}  // namespace

std::optional<std::string> fixed_setting_changed(const Config& running, const Config& reread) {
    auto channels = [](const Config& c) {
        std::string all;
        for (const auto& ch : c.channels) all += ch.to_string() + "\n";
        return all;
    };
    auto endpoints = [](const Config& c) {
        std::string all;
        for (const auto& url : c.etcd_endpoints) all += url + "\n";
        return all;
    };
    std::vector<std::tuple<std::string, std::string, std::string>> fixed{
        {"Cluster.Name", running.cluster_name, reread.cluster_name},
        {"Cluster.NodeName", running.node_name, reread.node_name},
        {"Cluster.Role", std::string(to_string(running.role)), std::string(to_string(reread.role))},
        {"Heartbeat.Port", std::to_string(running.port), std::to_string(reread.port)},
        {"Heartbeat.Channel", channels(running), channels(reread)},
        {"Cluster.Backend", std::string(to_string(running.backend)), std::string(to_string(reread.backend))},
        {"Etcd.Endpoints", endpoints(running), endpoints(reread)},
        {"Etcd.CAFile", running.etcd_ca_file, reread.etcd_ca_file},
        {"Etcd.CertFile", running.etcd_cert_file, reread.etcd_cert_file},
        {"Etcd.KeyFile", running.etcd_key_file, reread.etcd_key_file},
        {"Etcd.Prefix", effective_etcd_prefix(running), effective_etcd_prefix(reread)},
        {"Status.JSONFile", running.json_file, reread.json_file},
        {"Status.StateFile", running.state_file, reread.state_file},
    };
    // A group that comes or goes is no fixed setting; one that stays keeps its services' unit and hooks.
    for (const GroupConfig* before : running.all_groups())
        if (const GroupConfig* after = reread.group(before->name)) {
            fixed.emplace_back(before->section() + ".Target", before->target, after->target);
            fixed.emplace_back(before->section() + ".HooksDirectory", before->hooks_directory, after->hooks_directory);
        }
    for (const auto& [key, before, after] : fixed) {
        if (before == after) continue;
        auto it = reread.origin.find(key);
        std::string where = it == reread.origin.end() ? "" : it->second + ": ";
        std::string section = key.substr(0, key.find('.'));
        std::string in_group = is_group_section(section) ? "[" + section + "] " : "";
        return where + in_group + key_name(key) + "= cannot change while freehad runs; restart it to apply";
    }
    return std::nullopt;
}

std::string rendered_setting(const Config& c, std::string_view key) {
    auto dot = key.find('.');
    std::string section = "[" + std::string(key.substr(0, dot)) + "]";
    std::string prefix = std::string(key.substr(dot + 1)) + "=";
    std::istringstream lines(render(c));
    std::string line, current, value;
    bool found = false;
    while (std::getline(lines, line)) {
        if (line.starts_with('[')) current = line;
        if (current != section || !line.starts_with(prefix)) continue;
        value += (found ? ", " : "") + line.substr(prefix.size());
        found = true;
    }
    return value;
}

std::optional<std::string> shadowed_setting_changed(const Config& running, const Config& reread) {
    for (const auto& [key, file] : reread.shadowed) {
        auto before = running.shadowed.find(key);
        if (before != running.shadowed.end() && before->second.value == file.value) continue;
        std::string effective = rendered_setting(reread, key);
        if (file.value == effective) continue;
        return file.origin + ": " + key_name(key) + "=" + file.value + " has no effect: the command-line flag " +
               origin_of(reread, key) + " keeps it at " + effective +
               "; remove the flag from freehad's command line (systemctl edit freehad) or restore the file";
    }
    return std::nullopt;
}

std::vector<std::string> describe_shadowed(const Config& c) {
    std::vector<std::string> lines;
    for (const auto& [key, file] : c.shadowed) {
        std::string effective = rendered_setting(c, key);
        if (file.value == effective) continue;
        lines.push_back(file.origin + ": " + key_name(key) + "=" + file.value + " is overridden by the flag " +
                        origin_of(c, key) + " (" + effective + ")");
    }
    return lines;
}

std::string describe_auth_keys(const Config& c) {
    if (c.auth_key_files.empty()) return "heartbeats not authenticated";
    std::string text = "heartbeats signed with " + c.auth_key_files.front();
    for (std::size_t i = 1; i < c.auth_key_files.size(); ++i) text += ", also accepting " + c.auth_key_files[i];
    return text;
}

NodeSettings node_settings(const Config& c, std::uint64_t incarnation, auth::KeySet auth_keys) {
    NodeSettings s;
    s.cluster_name = c.cluster_name;
    s.node_name = c.node_name;
    s.incarnation = incarnation;
    s.expected_nodes = c.expected_nodes;
    s.role = c.role;
    s.no_quorum_policy = c.no_quorum_policy;
    s.backend = c.backend;
    s.interval = c.interval;
    s.dead_time = c.dead_time;
    s.init_dead = c.init_dead;
    s.fence_timeout = c.fence_timeout;
    s.channel_count = c.channels.size();
    for (const auto& ch : c.channels) s.channel_names.push_back(ch.to_string());
    // One group keeps FreeHA's rule (the alphabetically first node); several
    // spread by name, each after its Nodes= when given.
    const bool several = !c.groups.empty();
    s.groups.clear();
    for (const GroupConfig* g : c.all_groups()) {
        PlacementPolicy placement = !g->nodes.empty() ? PlacementPolicy::Listed
                                    : several         ? PlacementPolicy::Rendezvous
                                                      : PlacementPolicy::Alphabetical;
        s.groups.push_back(GroupSettings{g->name, g->target, g->monitor_interval, placement, g->nodes});
    }
    s.auth_keys = std::move(auth_keys);
    return s;
}

}  // namespace freeha
