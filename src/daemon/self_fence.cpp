#include "daemon/self_fence.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/log.h"

namespace freeha {
namespace {

// sync(2) in a thread of its own, waited for until `until` at most: it may
// never return (an NFS server gone, a disk in D state), and then the reboot
// goes ahead without it. The thread is left behind: the machine is going down.
void sync_until(Usec until) {
    struct Shared {
        std::mutex lock;
        std::condition_variable done_cv;
        bool done = false;
    };
    auto shared = std::make_shared<Shared>();
    std::thread([shared] {
        sync();
        std::lock_guard guard(shared->lock);
        shared->done = true;
        shared->done_cv.notify_one();
    }).detach();
    // steady_clock is CLOCK_MONOTONIC, the clock `until` is on.
    std::chrono::steady_clock::time_point end{std::chrono::microseconds(until.count())};
    std::unique_lock guard(shared->lock);
    shared->done_cv.wait_until(guard, end, [&] { return shared->done; });
}

// The kernel gives the initial PID namespace this inode (PROC_PID_INIT_INO).
// In any other, reboot(2) only ends the namespace: the file systems stay the
// host's, and the namespace ends only once every task has, a thread stuck in
// sync(2) included, so a sync there would only delay the fence.
bool in_initial_pid_namespace() {
    struct stat st {};
    return stat("/proc/self/ns/pid", &st) < 0 || st.st_ino == 0xEFFFFFFCU;
}

// The reboot's line is only queued (log.h): a healthy journal takes it well
// within a millisecond, so wait that long for it, but never more than
// kLogFlushBound, nor past what is left of the lease.
constexpr std::chrono::milliseconds kLogFlushBound{50};
void flush_log_until(Usec until) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::microseconds(until.count()) - std::chrono::steady_clock::now().time_since_epoch());
    log::flush(std::clamp(left, std::chrono::milliseconds(0), kLogFlushBound));
}

}  // namespace

int self_fence(SelfFenceAction action, const std::string& reason, Usec sync_until_at) {
    if (action == SelfFenceAction::None) {
        log::event(LOG_CRIT, log::message_id::kSelfFence,
                   "self-fence needed but SelfFence=none: " + reason +
                       "; nothing is done, so another node may start the services beside it",
                   {{"FREEHA_SELF_FENCE", "none"}});
        return 0;
    }
    log::event(LOG_EMERG, log::message_id::kSelfFence, "self-fence: " + reason + "; rebooting now (SelfFence=reboot)",
               {{"FREEHA_SELF_FENCE", "reboot"}});
    flush_log_until(sync_until_at);
    if (in_initial_pid_namespace()) sync_until(sync_until_at);
    if (reboot(RB_AUTOBOOT) < 0) {
        int r = -errno;
        log::event(LOG_EMERG, log::message_id::kSelfFence,
                   log::with_errno("self-fence: the reboot failed; another node may start the services beside "
                                   "what is left here",
                                   r),
                   {{"FREEHA_SELF_FENCE", "failed"}});
        return r;
    }
    return 0;  // not reached: the kernel restarts the machine (or ends the container)
}

}  // namespace freeha
