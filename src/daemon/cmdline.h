// freehad's command line: FreeHA's flags unchanged, long options on top, and loading the configuration.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"

namespace freeha {

struct CommandLine {
    std::string config_path;  // empty: the default path, which may be absent
    struct Override {
        std::string section, key, value, flag;
    };
    std::vector<Override> overrides;  // applied after the files, in order
    // FreeHA's broadcast channels 1..3: -a/-b/-c SOURCE, -A/-B/-C BROADCAST.
    std::array<std::optional<std::string>, 3> channel_source;
    std::array<std::optional<std::string>, 3> channel_broadcast;
    bool force_start = false;
    std::optional<BusKind> bus;
    bool check_config = false;
    bool clean_up = false;  // --clean-up: the unit's ExecStopPost= after freehad ended
    bool show_version = false;
    bool show_help = false;
};

// Returns the parsed command line, or sets *error to one line naming the flag.
std::optional<CommandLine> parse_command_line(int argc, char** argv, std::string* error);

// Reads the config file and its drop-ins (<file>.d/*.conf, in lexical order),
// each a regular file of at most kConfigFileLimit (a FIFO, a device or a
// directory is an error, never a hang); a <file>.d that exists but cannot be
// listed is an error too. Then applies the flags, fills in the defaults that depend on the machine
// (node name, status file) and validates. Sets *error naming file:line or flag.
std::optional<Config> load_config(const CommandLine& cmdline, std::string* error);

std::string usage_text();

}  // namespace freeha
