// Keeps what must survive a restart in the state directory: the incarnation counter and an admin's standby.
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

// `freehactl standby` outlives a restart, as Pacemaker's node standby does:
// DIR/standby exists while the admin wants this node kept out.
bool standby_stored(const std::string& directory);
// Creates or removes DIR/standby; returns an error naming the file, or "".
std::string store_standby(const std::string& directory, bool standby);

}  // namespace freeha
