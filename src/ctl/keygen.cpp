#include "ctl/keygen.h"

#include <array>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/sd_ptr.h"

namespace freeha::ctl {

std::string write_new_key(const std::string& path) {
    if (sodium_init() < 0) return "libsodium could not be initialised";
    // O_EXCL: replacing a key by accident would cut this node off the cluster.
    UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400));
    if (!fd) {
        if (errno == EEXIST) return path + " already exists; remove it first to replace the key";
        return path + ": " + std::strerror(errno);
    }
    std::array<unsigned char, kKeygenBytes> key{};
    randombytes_buf(key.data(), key.size());
    bool ok = write(fd.get(), key.data(), key.size()) == static_cast<ssize_t>(key.size()) && fsync(fd.get()) == 0;
    int saved = errno;
    sodium_memzero(key.data(), key.size());
    if (!ok) {
        unlink(path.c_str());
        return path + ": " + std::strerror(saved);
    }
    // The mode given to open() is filtered by the umask; 0400 is what we promise.
    if (fchmod(fd.get(), 0400) < 0) return path + ": " + std::strerror(errno);
    return {};
}

}  // namespace freeha::ctl
