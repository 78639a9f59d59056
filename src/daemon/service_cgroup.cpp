#include "daemon/service_cgroup.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <utility>

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "core/config.h"
#include "daemon/log.h"

namespace freeha {
namespace {

// Where the unified (v2) hierarchy is mounted and which part of it the
// mount shows: /sys/fs/cgroup (unified), /sys/fs/cgroup/unified (hybrid).
bool cgroup2_mount(std::string* mount_point, std::string* mount_root) {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
        std::size_t dash = line.find(" - ");
        if (dash == std::string::npos || line.compare(dash + 3, 8, "cgroup2 ") != 0) continue;
        std::istringstream fields(line.substr(0, dash));
        std::string id, parent, device;
        fields >> id >> parent >> device >> *mount_root >> *mount_point;
        return true;
    }
    return false;
}

// Our own cgroup in the unified hierarchy, from the "0::PATH" line.
std::string own_cgroup() {
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("0::", 0) == 0) return line.substr(3);
    return {};
}

bool marked_delegated(const std::string& path) {
    for (const char* name : {"trusted.delegate", "user.delegate"}) {
        char value[8] = {};
        ssize_t n = getxattr(path.c_str(), name, value, sizeof value - 1);
        if (n > 0 && value[0] == '1') return true;
    }
    return false;
}

int make_child(const std::string& path) { return mkdir(path.c_str(), 0755) < 0 && errno != EEXIST ? -errno : 0; }

int write_string(const std::string& path, const char* text) {
    UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) return -errno;
    return write(fd.get(), text, std::strlen(text)) < 0 ? -errno : 0;
}

}  // namespace

ServiceCgroup::ServiceCgroup(sd_event* event, std::string services, UniqueFd procs)
    : event_(event), services_(std::move(services)), procs_(std::move(procs)) {}

ServiceCgroup::~ServiceCgroup() = default;

std::string ServiceCgroup::leaf_name(const std::string& group) {
    return group.empty() || group == kDefaultGroupName ? std::string("services") : "services-" + group;
}

std::unique_ptr<ServiceCgroup> ServiceCgroup::open(sd_event* event, const std::string& leaf, std::string* why) {
    std::string mount_point, mount_root;
    std::string cgroup = own_cgroup();
    if (cgroup.empty() || !cgroup2_mount(&mount_point, &mount_root)) {
        *why = "no unified (v2) cgroup hierarchy";
        return nullptr;
    }
    if (mount_root != "/" && cgroup.rfind(mount_root, 0) != 0) {
        *why = "freehad's cgroup " + cgroup + " is outside the mounted hierarchy";
        return nullptr;
    }
    // After the first group's open(), freehad is in its `supervisor` leaf already: its unit's cgroup is the parent.
    static constexpr std::string_view kSupervisorLeaf = "/supervisor";
    if (cgroup.ends_with(kSupervisorLeaf)) cgroup.resize(cgroup.size() - kSupervisorLeaf.size());
    std::string own = mount_point + (mount_root == "/" ? cgroup : cgroup.substr(mount_root.size()));
    if (!marked_delegated(own)) {
        *why = "freehad's cgroup " + cgroup + " is not delegated to it (run it as freehad.service, which has Delegate=yes)";
        return nullptr;
    }
    if (access((own + "/cgroup.kill").c_str(), F_OK) < 0) {
        *why = "the kernel has no cgroup.kill (Linux 5.14 or later is needed)";
        return nullptr;
    }
    // No processes in inner nodes: freehad moves into a leaf of its own first.
    std::string supervisor = own + "/supervisor";
    std::string services = own + "/" + leaf;
    int r = make_child(supervisor);
    if (r >= 0) r = write_string(supervisor + "/cgroup.procs", "0");
    if (r >= 0) r = make_child(services);
    if (r < 0) {
        *why = log::with_errno("cannot set up the services cgroup under " + own, r);
        return nullptr;
    }
    UniqueFd procs(::open((services + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
    if (!procs) {
        *why = log::with_errno("cannot open " + services + "/cgroup.procs", -errno);
        return nullptr;
    }
    return std::unique_ptr<ServiceCgroup>(new ServiceCgroup(event, services, std::move(procs)));
}

int ServiceCgroup::kill() { return write_string(services_ + "/cgroup.kill", "1"); }

bool ServiceCgroup::populated() const {
    std::ifstream in(services_ + "/cgroup.events");
    if (!in) {
        // Gone, and with it every process; any other failure (EMFILE, ENOMEM)
        // proves nothing, and a fence must never be confirmed on a guess.
        return errno != ENOENT;
    }
    std::string key, value;
    while (in >> key >> value)
        if (key == "populated") return value != "0";
    return true;  // no "populated" line: not a cgroup we can read, so not known to be empty
}

int ServiceCgroup::when_empty(std::function<void()> emptied) {
    emptied_ = std::move(emptied);
    if (!watch_) {
        sd_event_source* s = nullptr;
        // The kernel signals every change of cgroup.events as a modification.
        int r = sd_event_add_inotify(event_, &s, (services_ + "/cgroup.events").c_str(), IN_MODIFY, on_events, this);
        if (r < 0) return r;
        watch_.reset(s);
    }
    check_empty();
    return 0;
}

void ServiceCgroup::check_empty() {
    if (!emptied_ || populated()) return;
    std::exchange(emptied_, nullptr)();
}

int ServiceCgroup::on_events(sd_event_source*, const struct inotify_event*, void* userdata) {
    return log::guarded("ServiceCgroup::on_events", [&]() -> int {
        static_cast<ServiceCgroup*>(userdata)->check_empty();
        return 0;
    });
}

}  // namespace freeha
