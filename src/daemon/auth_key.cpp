#include "daemon/auth_key.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus/sd_ptr.h"
#include "daemon/log.h"

namespace freeha {
namespace {

constexpr std::size_t kMaxKeySize = 64 * 1024;  // a key, not a disk image

std::optional<auth::Key> read_auth_key(const std::string& path, std::string* error) {
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
    // Read into the locked buffer itself, so that no copy of the key is left
    // behind in ordinary memory.
    std::optional<auth::Key> key;
    try {
        key.emplace(static_cast<std::size_t>(st.st_size));
    } catch (const std::bad_alloc&) {
        return fail("no memory for it (sodium_malloc failed)");
    }
    auto buffer = key->fill();
    std::size_t got = 0;
    while (got < buffer.size()) {
        ssize_t n = read(fd.get(), buffer.data() + got, buffer.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail(std::strerror(errno));
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    char extra = 0;
    if (got != buffer.size() || read(fd.get(), &extra, 1) != 0)
        return fail("changed size while being read; is it being rewritten?");
    return key;
}

}  // namespace

std::optional<auth::KeySet> read_auth_keys(const std::vector<std::string>& paths, std::string* error) {
    if (paths.size() > auth::kMaxKeys) {
        *error = "AuthKeyFile= is given " + std::to_string(paths.size()) + " times; at most " +
                 std::to_string(auth::kMaxKeys) + " keys";
        return std::nullopt;
    }
    std::vector<auth::Key> keys;
    for (const auto& path : paths) {
        auto key = read_auth_key(path, error);
        if (!key) return std::nullopt;
        if (!key->locked())
            log::warning("AuthKeyFile=" + path +
                         ": the key's memory could not be locked (LimitMEMLOCK=?); it may be swapped out");
        keys.push_back(std::move(*key));
    }
    return auth::KeySet(std::move(keys));
}

}  // namespace freeha
