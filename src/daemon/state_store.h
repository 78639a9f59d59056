// Keeps what must outlive the daemon: the incarnation counter, the promise horizon, an admin's standby and maintenance mode (state directory), and whether the services may run (runtime directory).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/config.h"
#include "core/membership.h"
#include "core/timespan.h"

namespace freeha {

// $STATE_DIRECTORY (systemd's StateDirectory=freeha); else /var/lib/freeha,
// or $XDG_STATE_HOME/freeha (~/.local/state/freeha) for a --user daemon.
std::string default_state_directory(BusKind bus);

// Reads the last incarnation from DIR/incarnation, stores and returns the
// next one (next_incarnation(): `authenticated` when AuthKeyFile= is set).
// When the file cannot be written, *warning says why and the wall clock
// alone decides (a backward jump could then make peers ignore this node
// until they restart); when the stored one is given up for the clock, *warning says so.
std::uint64_t claim_incarnation(const std::string& directory, bool authenticated, std::string* warning);

// DIR/promise-horizon: the longest DeadTime= with which a promise of this
// node may still be live. A restarted node backs no claim until that long
// after its start (a voter's promises must outlive a restart, and the
// daemon forgets them). Reads it, raises it to `dead_time` (before that
// takes effect) and returns the value read: 0 when there is none (a first
// start), the longest DeadTime= there is when it cannot be read. Then and
// when it cannot be written, *warning says why.
Usec claim_promise_horizon(const std::string& directory, Usec dead_time, std::string* warning);
// Stores `horizon`: raised before a reload's longer DeadTime= takes effect,
// lowered to the longest this run has used once the previous horizon has
// passed. Returns an error naming the file, or "".
std::string store_promise_horizon(const std::string& directory, Usec horizon);

// `freehactl standby` outlives a restart, as Pacemaker's node standby does:
// DIR/standby exists while the admin wants this node kept out.
bool standby_stored(const std::string& directory);
// Creates or removes DIR/standby; returns an error naming the file, or "".
std::string store_standby(const std::string& directory, bool standby);

// DIR/maintenance: maintenance mode as this node last knew it ("on EPOCH" or
// "off EPOCH"), so that a restarted node starts in it (Node::keep_maintenance)
// and the unit's clean-up (`freehad --clean-up`) leaves the services and the
// floating addresses to the admin while it is on. nullopt when there is none;
// when it cannot be read or parsed, *warning says why (and nullopt: a node
// that cannot tell learns the mode from its peers).
std::optional<Maintenance> stored_maintenance(const std::string& directory, std::string* warning = nullptr);
// Writes it (atomically); returns an error naming the file, or "".
std::string store_maintenance(const std::string& directory, const Maintenance& maintenance);

// systemd's RuntimeDirectory=freeha ($RUNTIME_DIRECTORY), which outlives
// freehad until its unit's ExecStopPost= has run; "" outside the unit.
std::string unit_runtime_directory();

// DIR/services-may-run exists from before starthasrv runs until the stop is
// confirmed, so that `freehad --clean-up` (ExecStopPost=) knows, whatever
// freehad's exit status, whether its services may still run (or have left
// addresses and mounts behind). It keeps the timings the daemon ran with: the
// clean-up must end before a peer can take over.
struct ServicesMarker {
    Usec dead_time;
    Usec interval;
};
// Writes or removes the marker; returns an error naming the file, or "".
std::string store_services_marker(const std::string& directory, const ServicesMarker& marker);
std::string remove_services_marker(const std::string& directory);
// nullopt when there is no marker; one that cannot be read or parsed counts
// with the timings given as `fallback`, and *warning says why.
std::optional<ServicesMarker> read_services_marker(const std::string& directory, const ServicesMarker& fallback,
                                                   std::string* warning = nullptr);

}  // namespace freeha
