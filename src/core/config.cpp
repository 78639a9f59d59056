#include "core/config.h"

#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <functional>
#include <sstream>
#include <tuple>

#include <ini.h>

#include "core/auth.h"
#include "core/node_name.h"

namespace freeha {
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
        {"Services", "HooksDirectory", [](Config& c, std::string_view v) { return set_path(c.hooks_directory, v, false); }},
        {"Services", "Target",
         [](Config& c, std::string_view v) -> std::optional<std::string> {
             if (!v.empty() && !is_unit_name(v)) return "expected a unit name such as freeha-services.target";
             c.target = v;
             return std::nullopt;
         }},
        {"Services", "MonitorInterval",
         [](Config& c, std::string_view v) { return set_timespan(c.monitor_interval, v, 10_ms, 60_min); }},
        {"Services", "StartTimeout",
         [](Config& c, std::string_view v) { return set_timespan(c.start_timeout, v, 10_ms, 24 * 60_min); }},
        {"Services", "StopTimeout",
         [](Config& c, std::string_view v) { return set_timespan(c.stop_timeout, v, 10_ms, 24 * 60_min); }},
        {"Services", "MonitorTimeout",
         [](Config& c, std::string_view v) { return set_timespan(c.monitor_timeout, v, 10_ms, 60_min); }},
        {"Services", "FenceTimeout",
         [](Config& c, std::string_view v) { return set_timespan(c.fence_timeout, v, 10_ms, 60_min); }},
        {"Services", "SelfFence", [](Config& c, std::string_view v) { return set_enum(c.self_fence, v, kSelfFenceActionNames); }},
        {"Services", "Address",
         [](Config& c, std::string_view v, std::string_view origin) -> std::optional<std::string> {
             if (v.empty()) {  // as Channel=: an empty assignment resets the list
                 c.addresses.clear();
                 return std::nullopt;
             }
             FloatingAddress a;
             if (auto e = parse_floating_address(v, a)) return e;
             for (const auto& other : c.addresses)
                 if (same_address(a.address, a.device, other.address, other.device))
                     return a.address.to_string() + " is already configured at " + other.origin + " (Address=" +
                            other.to_string() + ")";
             a.origin = origin;
             c.addresses.push_back(std::move(a));
             return std::nullopt;
         }},
        {"Services", "AnnounceRefresh",
         [](Config& c, std::string_view v) -> std::optional<std::string> {
             if (parse_timespan(v) == Usec()) {
                 c.announce_refresh = Usec();
                 return std::nullopt;
             }
             if (auto e = set_timespan(c.announce_refresh, v, 1_s, 60_min)) return *e + " (or 0: never)";
             return std::nullopt;
         }},
        {"Status", "JSONFile", [](Config& c, std::string_view v) { return set_path(c.json_file, v, true); }},
        {"Status", "StateFile", [](Config& c, std::string_view v) { return set_path(c.state_file, v, true); }},
    };
    return table;
}

// Feeds inih one line at a time from memory and counts lines, so that the
// handler knows the line it is called for.
struct LineReader {
    std::string_view text;
    std::size_t pos = 0;
    int line = 0;
    bool too_long = false;
};

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

std::string FloatingAddress::to_string() const {
    std::string s = address.to_string() + "/" + std::to_string(prefix) + " " + device;
    if (!label.empty()) s += " label=" + label;
    if (dad) s += " dad";
    return s;
}

std::optional<std::string> apply_setting(Config& config, std::string_view section, std::string_view key,
                                         std::string_view value, std::string_view origin) {
    std::string where(origin);
    if (section.empty()) return where + ": " + std::string(key) + "= outside any [Section]";
    bool section_known = false;
    for (const auto& def : key_table()) {
        if (def.section != section) continue;
        section_known = true;
        if (def.key != key) continue;
        // Named without its bytes, which would carry the encoding error into the message.
        if (auto at = invalid_utf8_at(value); at != std::string_view::npos) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(value[at]));
            return where + ": [" + std::string(section) + "] " + std::string(key) + "=: not valid UTF-8 (byte " +
                   hex + " at offset " + std::to_string(at) + ")";
        }
        if (auto error = def.set(config, value, where))
            return where + ": [" + std::string(section) + "] " + std::string(key) + "=" + std::string(value) + ": " +
                   *error;
        config.origin[std::string(section) + "." + std::string(key)] = where;
        return std::nullopt;
    }
    if (!section_known) return where + ": unknown section [" + std::string(section) + "]";
    return where + ": [" + std::string(section) + "] unknown key '" + std::string(key) + "'";
}

std::optional<std::string> apply_ini(Config& config, std::string_view text, std::string_view source) {
    // systemd's INI dialect: no inline comments, no continuation lines.
    ini_allow_inline_comments = false;
    ini_allow_multiline = false;
    ini_max_line = 4096;
    LineReader reader{text};
    IniContext ctx{&config, &reader, std::string(source), std::nullopt};
    int r = ini_parse_stream(read_line, &reader, ini_handler, &ctx);
    if (reader.too_long) return std::string(source) + ": a line is longer than 4095 characters";
    // inih returns the first line it could not parse; report whichever error comes first.
    if (ctx.error && (r <= 0 || ctx.error_line <= r)) return ctx.error;
    if (r > 0)
        return std::string(source) + ":" + std::to_string(r) + ": syntax error: expected [Section], Key=Value or a comment";
    if (r < 0) return std::string(source) + ": could not be parsed";
    return std::nullopt;
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
    if (c.channels.empty())
        return "no heartbeat channel configured: give -a IP, or Channel= in [Heartbeat] (see freehad.conf(5))";
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
    // A floating address moves with the services; a channel's SOURCE must stay with the node.
    for (const auto& a : c.addresses)
        for (const auto& ch : c.channels)
            if (same_address(a.address, a.device, ch.source, ch.source.device))
                return a.origin + ": Address=" + a.to_string() + " is the SOURCE of the heartbeat channel '" +
                       ch.to_string() + "' (" + at("Heartbeat.Channel") +
                       "); a channel needs an address of this node's own, which stays when the services move";
    if (c.role == Role::Arbitrator && c.force_start) return "-m: an arbitrator never runs services";
    if (c.role == Role::Arbitrator && !c.addresses.empty())
        return c.addresses.front().origin + ": Address=" + c.addresses.front().to_string() +
               ": an arbitrator never runs services, so it never holds a floating address (" + at("Cluster.Role") +
               ")";
    if (!c.target.empty() && c.bus == BusKind::None)
        return at("Services.Target") + ": Target=" + c.target + " needs D-Bus to reach systemd, but --no-bus was given";
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
    if (c.auth_key_files.empty()) line("AuthKeyFile", "");
    for (const auto& path : c.auth_key_files) line("AuthKeyFile", path);
    out += "\n[Heartbeat]\n";
    line("Port", std::to_string(c.port));
    line("Interval", format_timespan(c.interval));
    line("DeadTime", format_timespan(c.dead_time));
    line("InitDead", format_timespan(c.init_dead));
    for (const auto& ch : c.channels) line("Channel", ch.to_string());
    out += "\n[Services]\n";
    line("HooksDirectory", c.hooks_directory);
    line("Target", c.target);
    line("MonitorInterval", format_timespan(c.monitor_interval));
    line("StartTimeout", format_timespan(c.start_timeout));
    line("StopTimeout", format_timespan(c.stop_timeout));
    line("MonitorTimeout", format_timespan(c.monitor_timeout));
    line("FenceTimeout", format_timespan(c.fence_timeout));
    line("SelfFence", std::string(to_string(c.self_fence)));
    if (c.addresses.empty()) line("Address", "");
    for (const auto& a : c.addresses) line("Address", a.to_string());
    line("AnnounceRefresh", format_timespan(c.announce_refresh));
    out += "\n[Status]\n";
    line("JSONFile", c.json_file);
    line("StateFile", c.state_file);
    return out;
}

namespace {

std::string key_name(const std::string& key) { return key.substr(key.find('.') + 1); }

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
    const std::array<std::tuple<const char*, std::string, std::string>, 9> fixed{{
        {"Cluster.Name", running.cluster_name, reread.cluster_name},
        {"Cluster.NodeName", running.node_name, reread.node_name},
        {"Cluster.Role", std::string(to_string(running.role)), std::string(to_string(reread.role))},
        {"Heartbeat.Port", std::to_string(running.port), std::to_string(reread.port)},
        {"Heartbeat.Channel", channels(running), channels(reread)},
        {"Services.Target", running.target, reread.target},
        {"Services.HooksDirectory", running.hooks_directory, reread.hooks_directory},
        {"Status.JSONFile", running.json_file, reread.json_file},
        {"Status.StateFile", running.state_file, reread.state_file},
    }};
    for (const auto& [key, before, after] : fixed) {
        if (before == after) continue;
        auto it = reread.origin.find(key);
        std::string where = it == reread.origin.end() ? "" : it->second + ": ";
        return where + key_name(std::string(key)) + "= cannot change while freehad runs; restart it to apply";
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
    s.interval = c.interval;
    s.dead_time = c.dead_time;
    s.init_dead = c.init_dead;
    s.groups.front().monitor_interval = c.monitor_interval;
    s.fence_timeout = c.fence_timeout;
    s.channel_count = c.channels.size();
    for (const auto& ch : c.channels) s.channel_names.push_back(ch.to_string());
    s.groups.front().services_target = c.target;
    s.auth_keys = std::move(auth_keys);
    return s;
}

}  // namespace freeha
