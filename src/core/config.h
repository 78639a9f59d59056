// The configuration model: systemd-style INI (via libinih), drop-ins, flags, validation.
//
// Everything here is pure: the daemon reads the files and hands over their
// text. Each setting remembers where it came from ("file:line" or the flag),
// so every error names its origin.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/channel_spec.h"
#include "core/enum_names.h"
#include "core/node.h"
#include "core/state.h"
#include "core/timespan.h"

namespace freeha {

// As many as the peer table and the heard list hold (static_asserts in node.cpp).
inline constexpr unsigned kMaxNodes = 64;
inline constexpr std::uint16_t kDefaultPort = 3891;  // FreeHA's 0xf33
// Service groups in all, the default group included: as many as one
// heartbeat is to carry (issue 20).
inline constexpr unsigned kMaxGroups = 64;
// A group's name becomes a hook's environment value, a D-Bus object path
// element, a metric label and a cgroup name: 1..32 of [A-Za-z0-9_-].
inline constexpr std::size_t kMaxGroupNameLength = 32;
// [Services]' group; no [Group NAME] may take this name in any case.
inline constexpr std::string_view kDefaultGroupName = "default";
// [Etcd] Endpoints=: the members of one etcd cluster, which the client tries in turn.
inline constexpr std::size_t kMaxEtcdEndpoints = 16;

bool is_valid_group_name(std::string_view name);

enum class BusKind { System, User, None };

// [Services] Address=ADDRESS/PREFIX DEVICE [label=LABEL] [dad]: a floating
// address that freehad itself puts on DEVICE before the services start and
// takes off after they stop, at the fence's kill deadline, and (the unit's
// freehad --clean-up) after any death of the daemon.
struct FloatingAddress {
    IpAddress address;    // its own `device` stays empty: `device` below says where it goes
    unsigned prefix = 0;  // 1-32 (IPv4), 1-128 (IPv6)
    std::string device;   // the interface, e.g. "eth0"
    std::string label;    // IPv4 only: the address label (IFA_LABEL, as `ip addr add ... label`); "" for none
    bool dad = false;     // IPv6 only: let the kernel's duplicate address detection run (the address is
                          // tentative, unusable, for about a second); off by default, as the lease
                          // already excludes every other cluster node
    std::string origin;   // "file:line", for errors and reloads
    bool operator==(const FloatingAddress& o) const {
        return address == o.address && prefix == o.prefix && device == o.device && label == o.label && dad == o.dad;
    }
    // "192.0.2.10/24 eth0", then " label=eth0:web" and " dad" when set: Address='s canonical form.
    std::string to_string() const;
};

// SelfFence=: what freehad does when what the services left (an address, a
// mount) could outlive the lease, because the stop, or the unit's clean-up
// after freehad died, could not be confirmed in time. See freeha-safety(7).
enum class SelfFenceAction : std::uint8_t {
    None,    // log the risk
    Reboot,  // reboot the machine at once (reboot -ff); in a container, end the container
};
inline constexpr int kSelfFenceActionCount = 2;
static_assert(kSelfFenceActionCount == static_cast<int>(SelfFenceAction::Reboot) + 1);
inline constexpr EnumNames<SelfFenceAction, kSelfFenceActionCount> kSelfFenceActionNames{"none", "reboot"};
std::string_view to_string(SelfFenceAction a);

// What one service group runs and how: [Services] for the default group,
// [Group NAME] for each other. The keys of both are one table in config.cpp.
struct GroupConfig {
    std::string name{kDefaultGroupName};
    std::string origin;  // "file:line" of its first [Group NAME] line; "" for the default group
    // The default group's default; a [Group NAME] has none and must give this or Target=.
    std::string hooks_directory = "/etc/freeha/hooks";
    std::string target;  // non-empty: target mode (systemd starts/stops this unit)
    Usec monitor_interval = 2 * kUsecPerSec;
    Usec start_timeout = 5 * 60 * kUsecPerSec;
    Usec stop_timeout = 5 * 60 * kUsecPerSec;
    Usec monitor_timeout = 30 * kUsecPerSec;
    std::vector<FloatingAddress> addresses;  // Address=, in the order given
    // AnnounceRefresh=: besides the announcements when an address comes up,
    // announce every address again at this period while it is up (0: never;
    // keepalived's garp_master_refresh).
    Usec announce_refresh{0};
    // Nodes=: the nodes in order of preference, distinct node names; empty:
    // none given. Names only: which nodes exist is learned from heartbeats.
    std::vector<std::string> nodes;

    bool is_default() const { return name == kDefaultGroupName; }
    // "Services" or "Group NAME": its section, and the prefix of its keys in Config::origin.
    std::string section() const;
};

struct Config {
    // [Cluster]
    std::string cluster_name = "freeha";
    std::string node_name;  // empty: FreeHA's hostname rule, applied by the daemon
    unsigned expected_nodes = 2;
    Role role = Role::Member;
    NoQuorumPolicy no_quorum_policy = NoQuorumPolicy::Stop;
    // AuthKeyFile=, repeatable up to auth::kMaxKeys: the first signs, any is
    // accepted. Empty: heartbeats are not authenticated.
    std::vector<std::string> auth_key_files;
    // [Heartbeat]
    std::uint16_t port = kDefaultPort;
    Usec interval = 200 * kUsecPerMsec;
    Usec dead_time = 1 * kUsecPerSec;
    Usec init_dead = 30 * kUsecPerSec;
    std::vector<ChannelSpec> channels;
    // [Services]: the default group's settings, and the node's own below.
    GroupConfig services;
    Usec fence_timeout = 500 * kUsecPerMsec;
    SelfFenceAction self_fence = SelfFenceAction::None;
    // [Group NAME]: the other groups, sorted by name (byte order), whatever
    // the files and their order, so that every node lists them alike.
    std::vector<GroupConfig> groups;
    // [Cluster] Backend= and [Etcd]: where membership, election and leases
    // come from. The [Etcd] keys are for Backend=etcd only (validate()).
    Backend backend = Backend::Heartbeat;
    // http://HOST:PORT or https://HOST:PORT, without a trailing '/': the
    // client appends the gateway's paths ("/v3/lease/grant").
    std::vector<std::string> etcd_endpoints;
    std::string etcd_ca_file;    // empty: the system's CAs
    std::string etcd_cert_file;  // the client certificate and its key: both or neither
    std::string etcd_key_file;
    std::string etcd_prefix;  // empty: etcd::default_prefix(cluster_name); see effective_etcd_prefix()
    // [Status]
    std::string json_file;   // empty: $RUNTIME_DIRECTORY/status.json, else /run/freeha/status.json
    std::string state_file;  // FreeHA text format; empty: not written
    // Command line only.
    bool force_start = false;  // -m
    BusKind bus = BusKind::System;

    // "Section.Key" -> where its value came from.
    std::map<std::string, std::string> origin;

    // Settings that both a file and a command-line flag set: "Section.Key" ->
    // the files' value (as render() prints it) and where, so that a reload can
    // tell an edit that the flag would silently undo.
    struct FileSetting {
        std::string value, origin;
        bool operator==(const FileSetting&) const = default;
    };
    std::map<std::string, FileSetting> shadowed;

    // Every group: the default first, then `groups`.
    std::vector<const GroupConfig*> all_groups() const;
    // The group of that exact name ("default": `services`), or nullptr.
    const GroupConfig* group(std::string_view name) const;
};

// Applies one INI document; `source` (a path) prefixes every error.
// Returns the first error, or nullopt.
std::optional<std::string> apply_ini(Config& config, std::string_view text, std::string_view source);

// Applies one Key=Value of [section]; `origin` names it in errors ("file:12", "-T").
// A [Group NAME] section not seen before is created (apply_ini does so at
// its [Group NAME] line already, and refuses one given twice in a file).
std::optional<std::string> apply_setting(Config& config, std::string_view section, std::string_view key,
                                         std::string_view value, std::string_view origin);

// The prefix of the cluster's keys in etcd: Prefix=, else "/freeha/NAME/".
std::string effective_etcd_prefix(const Config& config);

// Cross-field checks once every source has been applied.
std::optional<std::string> validate(const Config& config);

// The effective configuration, as an INI document (freehad --check-config).
std::string render(const Config& config);

// One setting ("Section.Key", e.g. "Group web.Target") as render() prints
// it; a key given several times (Channel=, AuthKeyFile=, Endpoints=) is joined with ", ".
std::string rendered_setting(const Config& config, std::string_view key);

// For a config reload: the first setting whose value in the files changed
// while a command-line flag overrides it, as an error naming file, flag and
// both values; nullopt when there is none.
std::optional<std::string> shadowed_setting_changed(const Config& running, const Config& reread);

// For the start-up log: one line per setting a flag overrides with a value
// other than the files'.
std::vector<std::string> describe_shadowed(const Config& config);

// For a config reload: the first setting that differs and cannot change
// without a restart (cluster, node name, role, backend, channels, the [Etcd]
// keys, target, files), as an error naming it; nullopt when the reload can be
// applied. Groups may come and go; a group's Target= and HooksDirectory= are
// fixed as [Services]' are.
std::optional<std::string> fixed_setting_changed(const Config& running, const Config& reread);

// How heartbeats are authenticated, for the log: "heartbeats signed with
// /etc/freeha/new.key, also accepting /etc/freeha/authkey".
std::string describe_auth_keys(const Config& config);

// `auth_keys` holds the keys of AuthKeyFile=, in order (empty without one).
NodeSettings node_settings(const Config& config, std::uint64_t incarnation, auth::KeySet auth_keys = {});

}  // namespace freeha
