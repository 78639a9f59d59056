// Reads AuthKeyFile=: the heartbeat keys, each refused when short or readable by anyone but its owner.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/auth.h"

namespace freeha {

// One key file read straight into locked memory, or nullopt with *error
// naming the file and what is wrong with it.
std::optional<auth::Key> read_auth_key(const std::string& path, std::string* error);

// Every AuthKeyFile= in order (the first signs); no files, no keys. All or
// nothing: one bad file fails the whole set, naming that file.
std::optional<auth::KeySet> read_auth_keys(const std::vector<std::string>& paths, std::string* error);

}  // namespace freeha
