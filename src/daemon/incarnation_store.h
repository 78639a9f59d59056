// Keeps the incarnation counter in the state directory, so that it grows across restarts whatever the wall clock does.
#pragma once

#include <cstdint>
#include <string>

#include "core/config.h"

namespace freeha {

// $STATE_DIRECTORY (systemd's StateDirectory=freeha); else /var/lib/freeha,
// or $XDG_STATE_HOME/freeha (~/.local/state/freeha) for a --user daemon.
std::string default_state_directory(BusKind bus);

// Reads the last incarnation from DIR/incarnation, stores and returns the
// next one. When the file cannot be written, *warning says why and the
// wall clock alone decides (a backward jump could then make peers ignore
// this node until they restart).
std::uint64_t claim_incarnation(const std::string& directory, std::string* warning);

}  // namespace freeha
