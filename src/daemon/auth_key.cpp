#include "daemon/auth_key.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>

#include "daemon/log.h"
#include "daemon/regular_file.h"

namespace freeha {
namespace {

std::optional<auth::Key> read_auth_key(const std::string& path, std::string* error) {
    auto fail = [&](const std::string& what) {
        *error = "AuthKeyFile=" + path + ": " + what;
        return std::nullopt;
    };
    RegularFile file;
    if (open_regular_file(path, kKeyFileLimit, &file, error) < 0) {
        *error = "AuthKeyFile=" + *error;
        return std::nullopt;
    }
    const struct stat& st = file.st;
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return fail(std::string("group or other may access it (mode ") + mode + "); run chmod 0400 " + path);
    }
    if (st.st_size < static_cast<off_t>(auth::kMinKeySize))
        return fail(std::to_string(st.st_size) + " bytes; a key needs at least " + std::to_string(auth::kMinKeySize) +
                    " (freehactl keygen writes one)");
    // Read into the locked buffer itself, so that no copy of the key is left
    // behind in ordinary memory.
    std::optional<auth::Key> key;
    try {
        key.emplace(static_cast<std::size_t>(st.st_size));
    } catch (const std::bad_alloc&) {
        return fail("no memory for it (sodium_malloc failed)");
    }
    auto buffer = key->fill();
    ssize_t got = read_up_to(file.fd.get(), buffer);
    if (got < 0) return fail(std::strerror(static_cast<int>(-got)));
    std::uint8_t extra = 0;
    if (static_cast<std::size_t>(got) != buffer.size() || read_up_to(file.fd.get(), {&extra, 1}) != 0)
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
