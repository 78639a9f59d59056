#include "daemon/auth_key.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/sd_ptr.h"
#include "core/auth.h"

namespace freeha {
namespace {
constexpr std::size_t kMaxKeySize = 64 * 1024;  // a key, not a disk image
}

std::optional<std::vector<std::uint8_t>> read_auth_key(const std::string& path, std::string* error) {
    auto fail = [&](const std::string& what) {
        *error = "AuthKeyFile=" + path + ": " + what;
        return std::nullopt;
    };
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) return fail(std::strerror(errno));
    struct stat st{};
    if (fstat(fd.get(), &st) < 0) return fail(std::strerror(errno));
    if (!S_ISREG(st.st_mode)) return fail("not a regular file");
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return fail(std::string("group or other may access it (mode ") + mode + "); run chmod 0400 " + path);
    }
    if (st.st_size < static_cast<off_t>(auth::kMinKeySize))
        return fail(std::to_string(st.st_size) + " bytes; a key needs at least " + std::to_string(auth::kMinKeySize) +
                    " (freehactl keygen writes one)");
    if (st.st_size > static_cast<off_t>(kMaxKeySize))
        return fail("larger than " + std::to_string(kMaxKeySize) + " bytes; is this really the key?");
    std::vector<std::uint8_t> key(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < key.size()) {
        ssize_t n = read(fd.get(), key.data() + got, key.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(std::strerror(errno));
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    if (got < auth::kMinKeySize) return fail("shrank while being read");
    key.resize(got);
    return key;
}

}  // namespace freeha
