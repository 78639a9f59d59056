// freehad: parse the command line and configuration, then hand over to the Manager.
#include <csignal>
#include <cstdio>
#include <iostream>

#include "build_config.h"
#include "core/node.h"
#include "daemon/auth_key.h"
#include "daemon/clean_up.h"
#include "daemon/cmdline.h"
#include "daemon/hook_path.h"
#include "daemon/hook_runner.h"
#include "daemon/state_store.h"
#include "daemon/log.h"
#include "daemon/manager.h"

using namespace freeha;

namespace {
constexpr int kExitUsage = 2;  // bad flags, keys or hooks: nothing was started
}

int main(int argc, char** argv) {
    // First thing: the signals the loop handles (and SIGCHLD, for its child
    // sources) stay pending until it reads them, instead of killing us in
    // the milliseconds before it is set up. Hooks get a clean mask back.
    sigset_t handled;
    sigemptyset(&handled);
    for (int signo : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD}) sigaddset(&handled, signo);
    sigprocmask(SIG_BLOCK, &handled, nullptr);
    log::init();
    std::string error;
    auto cmdline = parse_command_line(argc, argv, &error);
    if (!cmdline) {
        log::error(error + " (see freehad --help)");
        return kExitUsage;
    }
    if (cmdline->show_help) {
        std::cout << usage_text();
        return 0;
    }
    if (cmdline->show_version) {
        std::cout << "freehad " FREEHA_VERSION "\n";
        return 0;
    }
    auto config = load_config(*cmdline, &error);
    // In target mode systemd runs the services; only alerthasrv may be used.
    // With [Group NAME] sections, [Services] is one group among others: its
    // missing hooks make it stand aside alone (ServiceGroup), as any group's.
    if (config && config->role == Role::Member && config->services.target.empty() && config->groups.empty()) {
        error = check_hooks(config->services.hooks_directory);
        if (!error.empty() && !hooks_directory_configured(*config))
            error += std::string(" (and FreeHA 1.0's ") + kFreeHA1HooksDirectory + " has no hooks either)";
    }
    if (!config || !error.empty()) {
        log::error(error);
        return cmdline->check_config ? 1 : kExitUsage;
    }
    // Only here: at start-up a group whose hooks are missing is to stay down
    // alone, not to keep the other groups from running (issue 20).
    if (cmdline->check_config) {
        std::vector<std::string> group_errors = check_group_hooks(*config);
        if (!config->groups.empty())
            if (std::string line = check_group_hooks(*config, config->services); !line.empty())
                group_errors.insert(group_errors.begin(), line);
        for (const auto& line : group_errors) log::error(line);
        if (!group_errors.empty()) return 1;
    }
    if (cmdline->clean_up) return clean_up_after_daemon(*config);
    auto auth_keys = read_auth_keys(config->auth_key_files, &error);
    if (!auth_keys) {
        log::error(error);
        return cmdline->check_config ? 1 : kExitUsage;
    }
    log::info(describe_hooks_directory(*config));
    for (const auto& line : describe_shadowed(*config)) log::notice(line);
    if (cmdline->check_config) {
        std::cout << render(*config);
        return 0;
    }
    std::string warning;
    std::string state_directory = default_state_directory(config->bus);
    std::uint64_t incarnation = claim_incarnation(state_directory, !auth_keys->empty(), &warning);
    if (!warning.empty()) log::warning(warning);
    warning.clear();
    Usec promise_horizon = claim_promise_horizon(state_directory, config->dead_time, &warning);
    if (!warning.empty()) log::warning(warning);
    Manager manager(std::move(*config), std::move(*cmdline), std::move(*auth_keys), incarnation,
                    std::move(state_directory), promise_horizon);
    return manager.run();
}
