// The hooks directory when none is configured, how it is logged, and the hooks' PATH.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "build_config.h"
#include "daemon/hook_path.h"

using namespace freeha;

namespace {

class HookPath : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/freeha-hook-path-XXXXXX";
        root_ = mkdtemp(pattern);
        std::filesystem::create_directories(root_ / "etc-hooks");
        std::filesystem::create_directories(root_ / "opt-bin");
    }
    void TearDown() override { std::filesystem::remove_all(root_); }
    std::string dir(const char* name) { return (root_ / name).string(); }
    void hook(const char* directory, const char* name) { std::ofstream(root_ / directory / name) << "#!/bin/sh\n"; }

    std::filesystem::path root_;
};

}  // namespace

TEST_F(HookPath, TheNewDirectoryWinsWhenItHasHooks) {
    hook("etc-hooks", "starthasrv");
    hook("opt-bin", "starthasrv");
    EXPECT_EQ(default_hooks_directory(dir("etc-hooks"), dir("opt-bin")), dir("etc-hooks"));
}

TEST_F(HookPath, FreeHA1sDirectoryIsUsedWhenTheNewOneHasNone) {
    hook("opt-bin", "monitorhasrv");
    EXPECT_EQ(default_hooks_directory(dir("etc-hooks"), dir("opt-bin")), dir("opt-bin"));
    EXPECT_EQ(default_hooks_directory(dir("absent"), dir("opt-bin")), dir("opt-bin"));
}

TEST_F(HookPath, WithHooksNowhereTheNewDirectoryIsReported) {
    EXPECT_EQ(default_hooks_directory(dir("etc-hooks"), dir("opt-bin")), dir("etc-hooks"));
    EXPECT_EQ(default_hooks_directory(dir("etc-hooks"), dir("absent")), dir("etc-hooks"));
}

TEST_F(HookPath, OneHookIsEnoughToClaimTheDirectory) {
    // The missing ones are then reported for that directory, not papered over.
    hook("etc-hooks", "stophasrv");
    hook("opt-bin", "starthasrv");
    hook("opt-bin", "stophasrv");
    hook("opt-bin", "monitorhasrv");
    EXPECT_EQ(default_hooks_directory(dir("etc-hooks"), dir("opt-bin")), dir("etc-hooks"));
}

TEST(HookPathText, TheLogLineSaysWhereTheDirectoryCameFrom) {
    Config config;
    EXPECT_EQ(describe_hooks_directory(config), "hooks directory /etc/freeha/hooks (the default)");
    config.services.hooks_directory = kFreeHA1HooksDirectory;
    EXPECT_EQ(describe_hooks_directory(config),
              "hooks directory /opt/freeha/bin (FreeHA 1.0's, as /etc/freeha/hooks has no hooks)");
    config.origin["Services.HooksDirectory"] = "-s";
    EXPECT_EQ(describe_hooks_directory(config), "hooks directory /opt/freeha/bin (set by -s)");
}

TEST(HookPathText, AnAdminsScriptsComeBeforeTheLibrary) {
    std::string path = hook_search_path("/opt/freeha/bin");
    EXPECT_EQ(path, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/freeha/bin:"
                    "/opt/freeha/bin/service_scripts:" FREEHA_SERVICE_SCRIPTS_DIR);
}

TEST_F(HookPath, CheckConfigNamesEachGroupWhoseHooksAreMissing) {
    for (const char* name : {"starthasrv", "stophasrv", "monitorhasrv"}) {
        std::filesystem::create_directories(root_ / "web");
        hook("web", name);
        std::filesystem::permissions(root_ / "web" / name, std::filesystem::perms::owner_all);
    }
    std::filesystem::create_directories(root_ / "db");
    hook("db", "starthasrv");
    std::filesystem::permissions(root_ / "db" / "starthasrv", std::filesystem::perms::owner_all);
    hook("etc-hooks", "plain-file");
    std::string text = "[Group web]\nHooksDirectory=" + dir("web") + "\n[Group db]\n\nHooksDirectory=" + dir("db") +
                       "\n[Group gone]\nHooksDirectory=" + dir("gone") + "\n[Group file]\nHooksDirectory=" +
                       dir("etc-hooks") + "/plain-file\n[Group unit]\nTarget=unit.target\n";
    Config config;
    ASSERT_EQ(apply_ini(config, text, "f.conf"), std::nullopt);
    // In name order; web, with its three hooks, and unit, in target mode, are fine.
    EXPECT_EQ(check_group_hooks(config),
              (std::vector<std::string>{
                  "f.conf:5: [Group db] HooksDirectory=" + dir("db") + ": hook " + dir("db") +
                      "/stophasrv: No such file or directory",
                  "f.conf:9: [Group file] HooksDirectory=" + dir("etc-hooks") + "/plain-file: not a directory",
                  "f.conf:7: [Group gone] HooksDirectory=" + dir("gone") + ": no such directory",
              }));
    // [Services] is main's start-up check; an arbitrator runs no services.
    config.role = Role::Arbitrator;
    EXPECT_TRUE(check_group_hooks(config).empty());
}

TEST(HookPathText, EachGroupsHooksAreToldTheirGroupAndFindTheirOwnScripts) {
    Config config;
    config.node_name = "alpha";
    GroupConfig web;
    web.name = "web";
    web.hooks_directory = "/etc/freeha/web";
    effect::StateChanged change{NodeState::Standby, NodeState::Starting, "elected", 4, "alpha",
                                Phase::Standby, Phase::StartingPending, 1};
    std::vector<std::string> env = hook_environment(config, web, change, true);
    EXPECT_THAT(env, ::testing::Contains("FREEHA_GROUP=web"));
    EXPECT_THAT(env, ::testing::Contains("PATH=" + hook_search_path("/etc/freeha/web")));
    EXPECT_THAT(env, ::testing::Contains("FREEHA_LEASE=held"));
    EXPECT_THAT(hook_environment(config, config.services, change), ::testing::Contains("FREEHA_GROUP=default"));
}
