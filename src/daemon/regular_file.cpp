#include "daemon/regular_file.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace freeha {
namespace {

bool is_dev_null(const struct stat& st) { return S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3); }

// "" for a regular file, else why it is refused and the errno that says so.
std::string refused_type(mode_t mode, int* negative_errno) {
    *negative_errno = -EINVAL;
    if (S_ISREG(mode)) return {};
    if (S_ISDIR(mode)) {
        *negative_errno = -EISDIR;
        return "is a directory, not a regular file";
    }
    if (S_ISFIFO(mode)) return "is a FIFO, not a regular file";
    if (S_ISCHR(mode)) return "is a character device, not a regular file";
    if (S_ISBLK(mode)) return "is a block device, not a regular file";
    if (S_ISSOCK(mode)) return "is a socket, not a regular file";
    return "is not a regular file";
}

std::string too_large(const std::string& path, FileLimit limit, const std::string& size) {
    return path + ": " + size + " bytes; " + limit.kind + " may have at most " + std::to_string(limit.max_size);
}

// Fails the same way whatever is wrong: a negative errno and one line naming the path.
int fail(const std::string& line, int negative_errno, std::string* error) {
    *error = line;
    return negative_errno;
}

// The same for a failed call, from errno (read before anything else can change it).
int fail_errno(const std::string& path, std::string* error) {
    int e = errno;
    return fail(path + ": " + std::strerror(e), -e, error);
}

// Refuses what stat says is not a regular file of at most `limit`.
int check(const std::string& path, const struct stat& st, FileLimit limit, std::string* error) {
    // /dev/null reads as an empty file: "--config /dev/null" (flags only),
    // and a drop-in linked to it masks the one of that name, as in systemd.
    if (is_dev_null(st)) return 0;
    int r = 0;
    if (std::string why = refused_type(st.st_mode, &r); !why.empty()) return fail(path + ": " + why, r, error);
    if (static_cast<std::uint64_t>(st.st_size) > limit.max_size)
        return fail(too_large(path, limit, std::to_string(st.st_size)), -EFBIG, error);
    return 0;
}

}  // namespace

int open_regular_file(const std::string& path, FileLimit limit, RegularFile* file, std::string* error) {
    struct stat st{};
    if (stat(path.c_str(), &st) < 0) return fail_errno(path, error);
    if (int r = check(path, st, limit, error); r < 0) return r;
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    if (!fd) return fail_errno(path, error);
    // The path may have been replaced between stat and open: what counts is
    // the file opened.
    if (fstat(fd.get(), &st) < 0) return fail_errno(path, error);
    if (int r = check(path, st, limit, error); r < 0) return r;
    file->fd = std::move(fd);
    file->st = st;
    return 0;
}

ssize_t read_up_to(int fd, std::span<std::uint8_t> buffer) {
    std::size_t got = 0;
    while (got < buffer.size()) {
        ssize_t n = read(fd, buffer.data() + got, buffer.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    return static_cast<ssize_t>(got);
}

int read_regular_file(const std::string& path, FileLimit limit, std::string* content, std::string* error) {
    RegularFile file;
    if (int r = open_regular_file(path, limit, &file, error); r < 0) return r;
    // One byte more than the limit tells a file that grew while being read.
    std::string text(limit.max_size + 1, '\0');
    ssize_t n = read_up_to(file.fd.get(), {reinterpret_cast<std::uint8_t*>(text.data()), text.size()});
    if (n < 0) return fail(path + ": " + std::strerror(static_cast<int>(-n)), static_cast<int>(n), error);
    if (static_cast<std::size_t>(n) > limit.max_size)
        return fail(too_large(path, limit, "more than " + std::to_string(limit.max_size)), -EFBIG, error);
    text.resize(static_cast<std::size_t>(n));
    *content = std::move(text);
    return 0;
}

}  // namespace freeha
