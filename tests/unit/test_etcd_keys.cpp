// Where a cluster's facts live in etcd: the key layout, Prefix= checks, and what watched keys say.
#include "core/etcd_keys.h"

#include <gtest/gtest.h>

namespace freeha::etcd {
namespace {

KeyValue kv(const std::string& key, const std::string& value, std::int64_t lease = 0, std::int64_t created = 0) {
    return KeyValue{key, value, lease, created, created};
}

TEST(EtcdKeys, TheLayoutUnderAPrefix) {
    KeyLayout l(default_prefix("web"));
    EXPECT_EQ(l.prefix(), "/freeha/web/");
    EXPECT_EQ(l.cluster_key(), "/freeha/web/cluster");
    EXPECT_EQ(l.member_key("alpha"), "/freeha/web/members/alpha");
    EXPECT_EQ(l.holder_key("default"), "/freeha/web/groups/default/holder");
}

TEST(EtcdKeys, PrefixErrors) {
    const struct {
        const char* prefix;
        const char* error;
    } rows[] = {
        {"/freeha/web/", ""},
        {"/", ""},
        {"/a/b-c_d.e/", ""},
        {"", "must start and end with '/'"},
        {"freeha/", "must start and end with '/'"},
        {"/freeha", "must start and end with '/'"},
        {"/freeha//web/", "holds an empty element ('//')"},
        {"/free ha/", "holds a character that is not printable ASCII (or a space)"},
        {"/free\xc3\xa9/", "holds a character that is not printable ASCII (or a space)"},
    };
    for (const auto& r : rows) EXPECT_EQ(prefix_error(r.prefix), r.error) << r.prefix;
    EXPECT_EQ(prefix_error("/" + std::string(127, 'a') + "/"), "longer than 128 characters");
    EXPECT_EQ(prefix_error("/" + std::string(126, 'a') + "/"), "");
}

TEST(EtcdKeys, TheViewSortsKeysIntoMembersHoldersAndForeign) {
    KeyLayout l("/p/");
    std::map<std::string, KeyValue> keys;
    for (auto k : {kv("/p/cluster", "web"), kv("/p/members/alpha", "record-a", 7),
                   kv("/p/members/bravo", "record-b", 8), kv("/p/groups/default/holder", "alpha", 7, 12),
                   kv("/p/groups/db/holder", "bravo", 8, 15),
                   // Not freehad's: another layout, a bad group or node name, a holder naming no node.
                   kv("/p/groups/db/owner", "x"), kv("/p/members/", "x"), kv("/p/members/a/b", "x"),
                   kv("/p/groups/bad name/holder", "alpha"), kv("/p/groups/web/holder", ""),
                   kv("/p/other", "x")})
        keys[k.key] = k;
    keys["/q/cluster"] = kv("/q/cluster", "other");  // outside the prefix: ignored
    ClusterView v = read_view(l, keys);
    EXPECT_EQ(v.cluster_name, "web");
    EXPECT_EQ(v.members, (std::map<std::string, std::string>{{"alpha", "record-a"}, {"bravo", "record-b"}}));
    ASSERT_EQ(v.holders.size(), 2u);
    EXPECT_EQ(v.holders.at("default"), (GroupHolder{"alpha", 7, 12}));
    EXPECT_EQ(v.holders.at("db"), (GroupHolder{"bravo", 8, 15}));
    EXPECT_EQ(v.foreign, (std::vector<std::string>{"/p/groups/bad name/holder", "/p/groups/db/owner",
                                                   "/p/groups/web/holder", "/p/members/", "/p/members/a/b",
                                                   "/p/other"}));
}

TEST(EtcdKeys, APrefixOfAnotherClusterIsAOneLineError) {
    KeyLayout l("/shared/");
    ClusterView ours;
    ours.cluster_name = "web";
    EXPECT_EQ(prefix_conflict(l, ours, "web"), "");
    EXPECT_EQ(prefix_conflict(l, ClusterView{}, "web"), "");  // not written yet
    EXPECT_EQ(prefix_conflict(l, ours, "db"),
              "Prefix=/shared/ belongs to cluster 'web', not 'db': give each cluster a prefix of its own");
}

}  // namespace
}  // namespace freeha::etcd
