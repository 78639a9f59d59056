// Reads AuthKeyFile=: the shared heartbeat key, refused when short or readable by anyone but its owner.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace freeha {

// The key's bytes, or nullopt with *error naming the file and what is wrong with it.
std::optional<std::vector<std::uint8_t>> read_auth_key(const std::string& path, std::string* error);

}  // namespace freeha
