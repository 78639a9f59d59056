#include "daemon/hook_path.h"

#include <cerrno>
#include <cstring>
#include <sys/stat.h>

#include "build_config.h"
#include "daemon/hook_runner.h"

namespace freeha {
namespace {

constexpr const char* kSystemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr const char* kOriginKey = "Services.HooksDirectory";  // Config::origin's key

}  // namespace

bool hooks_directory_configured(const Config& config) { return config.origin.contains(kOriginKey); }

bool has_hooks(const std::string& directory) {
    for (const char* hook : {"starthasrv", "stophasrv", "monitorhasrv"}) {
        struct stat st {};
        if (stat((directory + "/" + hook).c_str(), &st) == 0) return true;
    }
    return false;
}

std::string default_hooks_directory(const std::string& preferred, const std::string& legacy) {
    if (!has_hooks(preferred) && has_hooks(legacy)) return legacy;
    return preferred;
}

std::string check_group_hooks(const Config& config, const GroupConfig& g) {
    if (config.role != Role::Member || !g.target.empty()) return "";  // target mode: systemd runs the services
    auto origin = config.origin.find(g.section() + ".HooksDirectory");
    // Where HooksDirectory= was set, else the group's section ([Services] may have neither: its default).
    std::string where = origin != config.origin.end() ? origin->second : g.origin;
    std::string head = (where.empty() ? std::string() : where + ": ") + "[" + g.section() +
                       "] HooksDirectory=" + g.hooks_directory + ": ";
    struct stat st {};
    if (stat(g.hooks_directory.c_str(), &st) < 0) {
        int e = errno;
        return head + (e == ENOENT ? std::string("no such directory") : std::strerror(e));
    }
    if (!S_ISDIR(st.st_mode)) return head + "not a directory";
    if (std::string missing = check_hooks(g.hooks_directory); !missing.empty()) return head + missing;
    return "";
}

std::vector<std::string> check_group_hooks(const Config& config) {
    std::vector<std::string> errors;
    for (const auto& g : config.groups)
        if (std::string line = check_group_hooks(config, g); !line.empty()) errors.push_back(line);
    return errors;
}

std::string describe_hooks_directory(const Config& config) {
    std::string text = "hooks directory " + config.services.hooks_directory;
    if (auto it = config.origin.find(kOriginKey); it != config.origin.end()) return text + " (set by " + it->second + ")";
    if (config.services.hooks_directory == kFreeHA1HooksDirectory)
        return text + " (FreeHA 1.0's, as " + Config{}.services.hooks_directory + " has no hooks)";
    return text + " (the default)";
}

std::string hook_search_path(const std::string& hooks_directory) {
    return std::string(kSystemPath) + ":" + hooks_directory + ":" + hooks_directory + "/service_scripts:" +
           FREEHA_SERVICE_SCRIPTS_DIR;
}

std::vector<std::string> hook_environment(const Config& config, const GroupConfig& group,
                                          const effect::StateChanged& change, bool under_lease) {
    std::vector<std::string> environment{
        "PATH=" + hook_search_path(group.hooks_directory),
        "FREEHA_NODE=" + config.node_name,
        "FREEHA_CLUSTER=" + config.cluster_name,
        "FREEHA_STATE=" + std::string(to_string(change.to)),
        "FREEHA_OLD_STATE=" + std::string(to_string(change.from)),
        "FREEHA_ACTIVE_NODE=" + change.active_node,
        "FREEHA_TERM=" + std::to_string(change.term),
        "FREEHA_GROUP=" + group.name,
    };
    // vip.start skips its duplicate-address wait: no cluster node can still hold the address.
    if (under_lease) environment.push_back("FREEHA_LEASE=held");
    return environment;
}

}  // namespace freeha
