// Where a cluster's facts live in etcd: the key layout under Prefix=, and what the watched keys say.
//
// Under the prefix (by default /freeha/NAME/):
//   cluster                the cluster's name, written once without a lease:
//                          two clusters given the same Prefix= find each other out
//   members/NODE           what NODE announces, on NODE's lease (gone with it)
//   groups/GROUP/holder    the node that runs GROUP, on that node's lease; its
//                          create_revision orders the claims like a term
// Anything else under the prefix is not freehad's: it is counted, never read.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/etcd_gateway.h"

namespace freeha::etcd {

// "/freeha/NAME/": every cluster has keys of its own unless Prefix= says otherwise.
std::string default_prefix(std::string_view cluster_name);
// Why `prefix` cannot be a Prefix= ("" when it can): it must start and end
// with '/', hold no empty element ("//") and only printable ASCII, at most 128 characters.
std::string prefix_error(std::string_view prefix);

class KeyLayout {
public:
    explicit KeyLayout(std::string prefix) : prefix_(std::move(prefix)) {}
    const std::string& prefix() const { return prefix_; }
    std::string cluster_key() const { return prefix_ + "cluster"; }
    std::string member_key(std::string_view node) const { return prefix_ + "members/" + std::string(node); }
    std::string holder_key(std::string_view group) const {
        return prefix_ + "groups/" + std::string(group) + "/holder";
    }
    // The group whose holder key `key` is; nullopt when it is none.
    std::optional<std::string> holder_group(std::string_view key) const;

private:
    std::string prefix_;
};

struct GroupHolder {
    std::string node;
    std::int64_t lease = 0;
    std::int64_t create_revision = 0;
    friend bool operator==(const GroupHolder&, const GroupHolder&) = default;
};

struct ClusterView {
    std::optional<std::string> cluster_name;       // the `cluster` key's value; none before it is written
    std::map<std::string, std::string> members;    // node -> what it announces
    std::map<std::string, GroupHolder> holders;    // group -> the node that holds it
    std::vector<std::string> foreign;              // keys under the prefix that are not freehad's
};

// What the watched keys (the watch's view, all under layout's prefix) say.
ClusterView read_view(const KeyLayout& layout, const std::map<std::string, KeyValue>& keys);

// The one-line error when the prefix belongs to another cluster ("" when it is ours or unclaimed).
std::string prefix_conflict(const KeyLayout& layout, const ClusterView& view, std::string_view cluster_name);

}  // namespace freeha::etcd
