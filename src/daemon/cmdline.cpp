#include "daemon/cmdline.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <getopt.h>
#include <sys/utsname.h>

#include "build_config.h"
#include "core/node_name.h"
#include "daemon/hook_path.h"
#include "daemon/regular_file.h"

namespace freeha {
namespace {

enum LongOnly { kConfig = 1000, kNodeName, kUser, kNoBus, kStatusFile, kCheckConfig, kCleanUp, kVersion, kHelp };

const option kLongOptions[] = {
    {"config", required_argument, nullptr, kConfig},
    {"node-name", required_argument, nullptr, kNodeName},
    {"user", no_argument, nullptr, kUser},
    {"no-bus", no_argument, nullptr, kNoBus},
    {"status-file", required_argument, nullptr, kStatusFile},
    {"check-config", no_argument, nullptr, kCheckConfig},
    {"clean-up", no_argument, nullptr, kCleanUp},
    {"version", no_argument, nullptr, kVersion},
    {"help", no_argument, nullptr, kHelp},
    {nullptr, 0, nullptr, 0},
};

std::string default_config_path() { return std::string(FREEHA_SYSCONFDIR) + "/freehad.conf"; }

// The drop-ins of `dir` (NAME.conf, not hidden), in lexical order; none
// when there is no such directory. Returns an error naming the directory,
// or nullopt.
std::optional<std::string> drop_ins(const std::string& dir, std::vector<std::string>* files) {
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) {
        int e = errno;
        if (e == ENOENT) return std::nullopt;
        return dir + ": " + (e == ENOTDIR ? "not a directory" : std::strerror(e));
    }
    errno = 0;
    while (dirent* e = readdir(d)) {
        std::string name = e->d_name;
        if (name.size() > 5 && name.ends_with(".conf") && name[0] != '.') files->push_back(dir + "/" + name);
    }
    int r = errno;
    closedir(d);
    if (r != 0) return dir + ": " + std::strerror(r);
    std::sort(files->begin(), files->end());
    return std::nullopt;
}

// Applies one file; `missing_ok`: a file that does not exist is no error.
std::optional<std::string> apply_file(Config& config, const std::string& path, bool missing_ok) {
    std::string text, error;
    if (int r = read_regular_file(path, kConfigFileLimit, &text, &error); r < 0) {
        if (r == -ENOENT && missing_ok) return std::nullopt;
        return error;
    }
    return apply_ini(config, text, path);
}

std::string hostname_node_name() {
    utsname u{};
    if (uname(&u) < 0) return {};
    return node_name_from_hostname(u.nodename);
}

std::string default_json_file() {
    if (const char* dirs = std::getenv("RUNTIME_DIRECTORY"); dirs != nullptr && *dirs != '\0') {
        std::string first(dirs);
        first = first.substr(0, first.find(':'));
        return first + "/status.json";
    }
    return "/run/freeha/status.json";
}

}  // namespace

std::string usage_text() {
    return "Usage: freehad [OPTIONS]\n"
           "FreeHA failover daemon: runs the services on the first healthy node of the cluster.\n\n"
           "FreeHA flags:\n"
           "  -a IP / -b IP / -c IP     source address of heartbeat channel 1/2/3 (broadcast)\n"
           "  -A ADDR / -B ADDR / -C ADDR  broadcast destination of channel 1/2/3 (default: the /24 broadcast)\n"
           "  -l FILE                   write FreeHA's text state file\n"
           "  -m                        force-start services at launch without checking other nodes (dangerous)\n"
           "  -n NODES                  expected number of nodes (quorum; default 2)\n"
           "  -p PORT                   UDP port (default 3891)\n"
           "  -s DIR                    hooks directory\n"
           "  -M SEC                    monitor interval (a number of seconds or a time span)\n"
           "  -T SEC                    dead time (a number of seconds or a time span)\n"
           "  -h, --help                show this help\n\n"
           "Options:\n"
           "  --config FILE             configuration file (default " +
           default_config_path() +
           ")\n"
           "  --node-name NAME          this node's name (default: the hostname up to the first '.')\n"
           "  --status-file FILE        JSON status file\n"
           "  --user                    use the user bus\n"
           "  --no-bus                  do not connect to D-Bus\n"
           "  --check-config            validate, print the effective configuration, exit 0 (valid) or 1\n"
           "  --clean-up                after freehad ended (the unit's ExecStopPost=): run stophasrv once if\n"
           "                            its services may have run, and self-fence if that fails in time\n"
           "  --version                 show the version\n\n"
           "Signals: TERM/INT stop services and exit; HUP stops services here and stays up;\n"
           "USR1 force-starts services here; USR2 clears the error latch.\n";
}

std::optional<CommandLine> parse_command_line(int argc, char** argv, std::string* error) {
    CommandLine cl;
    opterr = 0;  // our own messages name the flag
    optind = 0;  // glibc: 0 also resets the scan inside grouped short options
    auto set = [&](const char* section, const char* key, const char* flag) {
        cl.overrides.push_back({section, key, optarg, flag});
    };
    int c;
    while ((c = getopt_long(argc, argv, ":a:b:c:A:B:C:hl:mn:p:s:M:T:", kLongOptions, nullptr)) != -1) {
        switch (c) {
        case 'a': case 'b': case 'c': cl.channel_source[c - 'a'] = optarg; break;
        case 'A': case 'B': case 'C': cl.channel_broadcast[c - 'A'] = optarg; break;
        case 'h': case kHelp: cl.show_help = true; break;
        case 'l': set("Status", "StateFile", "-l"); break;
        case 'm': cl.force_start = true; break;
        case 'n': set("Cluster", "ExpectedNodes", "-n"); break;
        case 'p': set("Heartbeat", "Port", "-p"); break;
        case 's': set("Services", "HooksDirectory", "-s"); break;
        case 'M': set("Services", "MonitorInterval", "-M"); break;
        case 'T': set("Heartbeat", "DeadTime", "-T"); break;
        case kConfig: cl.config_path = optarg; break;
        case kNodeName: set("Cluster", "NodeName", "--node-name"); break;
        case kUser: cl.bus = BusKind::User; break;
        case kNoBus: cl.bus = BusKind::None; break;
        case kStatusFile: set("Status", "JSONFile", "--status-file"); break;
        case kCheckConfig: cl.check_config = true; break;
        case kCleanUp: cl.clean_up = true; break;
        case kVersion: cl.show_version = true; break;
        case ':':
            *error = std::string("option '") + argv[optind - 1] + "' needs a value";
            return std::nullopt;
        default:
            *error = optopt != 0 ? std::string("unknown option '-") + static_cast<char>(optopt) + "'"
                                 : std::string("unknown option '") + argv[optind - 1] + "'";
            return std::nullopt;
        }
    }
    if (optind < argc) {
        *error = std::string("unexpected argument '") + argv[optind] + "'";
        return std::nullopt;
    }
    return cl;
}

std::optional<Config> load_config(const CommandLine& cl, std::string* error) {
    Config config;
    std::string path = cl.config_path.empty() ? default_config_path() : cl.config_path;
    // FreeHA was configured by flags alone, so the default file may be absent.
    if (auto e = apply_file(config, path, cl.config_path.empty())) {
        *error = *e;
        return std::nullopt;
    }
    std::vector<std::string> files;
    if (auto e = drop_ins(path + ".d", &files)) {
        *error = *e;
        return std::nullopt;
    }
    for (const auto& drop_in : files) {
        if (auto e = apply_file(config, drop_in, false)) {
            *error = *e;
            return std::nullopt;
        }
    }
    const Config from_files = config;
    for (const auto& o : cl.overrides) {
        if (auto e = apply_setting(config, o.section, o.key, o.value, o.flag)) {
            *error = *e;
            return std::nullopt;
        }
        std::string key = o.section + "." + o.key;
        if (auto file = from_files.origin.find(key); file != from_files.origin.end())
            config.shadowed[key] = {rendered_setting(from_files, key), file->second};
    }
    // Channel flags replace the configured channels as a whole.
    bool any_channel_flag = false;
    std::vector<ChannelSpec> flag_channels;
    std::string channel_flags;  // where the channels came from, for errors
    for (std::size_t i = 0; i < 3; ++i) {
        std::string src_flag = std::string("-") + static_cast<char>('a' + i);
        std::string dst_flag = std::string("-") + static_cast<char>('A' + i);
        if (cl.channel_broadcast[i] && !cl.channel_source[i]) {
            *error = dst_flag + " needs " + src_flag + " (the channel's source address)";
            return std::nullopt;
        }
        if (!cl.channel_source[i]) continue;
        any_channel_flag = true;
        std::string spec = "broadcast " + *cl.channel_source[i];
        if (cl.channel_broadcast[i]) spec += " " + *cl.channel_broadcast[i];
        std::string why;
        auto channel = parse_channel_spec(spec, &why);
        if (!channel) {
            *error = src_flag + ": " + why;
            return std::nullopt;
        }
        flag_channels.push_back(*channel);
        channel_flags += (channel_flags.empty() ? "" : ", ") + src_flag;
    }
    if (any_channel_flag) {
        config.channels = flag_channels;
        config.origin["Heartbeat.Channel"] = channel_flags;
    }
    // Neither -s nor HooksDirectory=: a FreeHA 1.0 tree copied to
    // /opt/freeha/bin runs unchanged when /etc/freeha/hooks has no hooks.
    if (!hooks_directory_configured(config))
        config.services.hooks_directory = default_hooks_directory(config.services.hooks_directory, kFreeHA1HooksDirectory);
    config.force_start = cl.force_start;
    if (cl.bus) config.bus = *cl.bus;
    if (config.node_name.empty()) {
        config.node_name = hostname_node_name();
        if (!is_valid_node_name(config.node_name)) {
            *error = "cannot derive a node name from the hostname; set NodeName= or --node-name";
            return std::nullopt;
        }
    }
    if (config.json_file.empty()) config.json_file = default_json_file();
    if (auto e = validate(config)) {
        *error = *e;
        return std::nullopt;
    }
    return config;
}

}  // namespace freeha
