// Reads AuthKeyFile=: the heartbeat keys, each refused when short or readable by anyone but its owner.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/auth.h"

namespace freeha {

// Every AuthKeyFile= in order (the first signs), each read straight into
// locked memory; no files, no keys. All or nothing: one bad file fails the
// whole set, and *error names that file and what is wrong with it.
std::optional<auth::KeySet> read_auth_keys(const std::vector<std::string>& paths, std::string* error);

}  // namespace freeha
