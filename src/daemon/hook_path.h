// Where freehad finds the hooks, and what the hooks find on their PATH.
#pragma once

#include <string>

#include <vector>

#include "core/config.h"
#include "core/effects.h"

namespace freeha {

// FreeHA 1.0's script directory (its Makefile's BINDIR, compiled into its
// freehad as the default of -s): the hasrv scripts, with the service scripts
// in service_scripts/ below it.
inline constexpr const char* kFreeHA1HooksDirectory = "/opt/freeha/bin";

// True when -s or HooksDirectory= named the hooks directory.
bool hooks_directory_configured(const Config& config);

// True when `directory` holds starthasrv, stophasrv or monitorhasrv.
bool has_hooks(const std::string& directory);

// The hooks directory when neither -s nor HooksDirectory= names one:
// `preferred` (/etc/freeha/hooks) when it has hooks, else `legacy` when that
// has them, else `preferred`, whose missing hooks are then reported.
std::string default_hooks_directory(const std::string& preferred, const std::string& legacy);

// For --check-config: one line per [Group NAME] in scripts mode whose hooks
// directory is missing, is no directory or lacks a hook (check_hooks()),
// naming the group and where its HooksDirectory= came from; none on an
// arbitrator, which runs no services.
std::vector<std::string> check_group_hooks(const Config& config);
// The line check_group_hooks() gives for one group in scripts mode ("" when
// its hooks are there), for any group, [Services] included.
std::string check_group_hooks(const Config& config, const GroupConfig& group);

// One line for the log: the hooks directory and why it is that one.
std::string describe_hooks_directory(const Config& config);

// The hooks' PATH: the system directories, then the hooks directory and its
// service_scripts/ (FreeHA 1.0's startdemon put both on the PATH), then the
// installed service-script library, so that an admin's own script of the
// same name wins over the library's.
std::string hook_search_path(const std::string& hooks_directory);

// A service hook's environment (freeha-hooks(7)): PATH and FREEHA_*, with
// `change` the state change of `group` being announced; FREEHA_LEASE=held
// when the services start or run `under_lease` (the group's lease is enforced).
std::vector<std::string> hook_environment(const Config& config, const GroupConfig& group,
                                          const effect::StateChanged& change, bool under_lease = false);

}  // namespace freeha
