// Reads the files freehad is given (configuration, keys, state): regular files of a bounded size only, never blocking.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include <sys/stat.h>
#include <sys/types.h>

#include "bus/sd_ptr.h"

namespace freeha {

// What freehad reads of one kind of file: enough for any real one, little
// enough that a wrong file (a disk image, a log) fails at once instead of
// filling memory. `kind` names the kind in the error.
struct FileLimit {
    const char* kind;
    std::size_t max_size;
};
inline constexpr FileLimit kConfigFileLimit{"a configuration file", 1024 * 1024};
inline constexpr FileLimit kKeyFileLimit{"a key file", 64 * 1024};
inline constexpr FileLimit kStateFileLimit{"a state file", 4096};

// A regular file open for reading, and what fstat said of it.
struct RegularFile {
    UniqueFd fd;
    struct stat st{};
};

// Opens `path` (following symlinks) for reading: O_NONBLOCK, so that a FIFO
// cannot hang the open, and only once stat says it is a regular file, so that
// no device is ever opened (opening some has effects of its own); fstat then
// checks the file actually opened. A directory, FIFO, device (but /dev/null,
// which reads as empty) or socket, or a file larger than `limit.max_size`, is
// refused. Returns 0 or a negative
// errno (-ENOENT when there is no such file), with *error one line naming
// the path ("PATH: is a FIFO, not a regular file").
int open_regular_file(const std::string& path, FileLimit limit, RegularFile* file, std::string* error);

// Reads from `fd` until `buffer` is full or the file ends; returns the count
// read or a negative errno.
ssize_t read_up_to(int fd, std::span<std::uint8_t> buffer);

// The whole of a regular file, through open_regular_file: a file that grows
// past `limit` while being read is refused too. Same return and *error.
int read_regular_file(const std::string& path, FileLimit limit, std::string* content, std::string* error);

}  // namespace freeha
