// freehactl keygen: writes a new shared heartbeat key (64 random bytes, mode 0400).
#pragma once

#include <string>

namespace freeha::ctl {

inline constexpr std::size_t kKeygenBytes = 64;

// Creates `path` (never overwriting a file there); returns "" or one line saying what went wrong.
std::string write_new_key(const std::string& path);

}  // namespace freeha::ctl
