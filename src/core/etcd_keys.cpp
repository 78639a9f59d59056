#include "core/etcd_keys.h"

#include "core/config.h"
#include "core/node_name.h"

namespace freeha::etcd {

namespace {

constexpr std::size_t kMaxPrefixLength = 128;

// The part of `key` after `head` and before `tail`, if `key` is exactly head + X + tail.
std::optional<std::string_view> between(std::string_view key, std::string_view head, std::string_view tail) {
    if (key.size() <= head.size() + tail.size() || !key.starts_with(head) || !key.ends_with(tail)) return std::nullopt;
    return key.substr(head.size(), key.size() - head.size() - tail.size());
}

}  // namespace

std::string default_prefix(std::string_view cluster_name) { return "/freeha/" + std::string(cluster_name) + "/"; }

std::string prefix_error(std::string_view prefix) {
    if (prefix.empty() || prefix.front() != '/' || prefix.back() != '/') return "must start and end with '/'";
    if (prefix.size() > kMaxPrefixLength) return "longer than " + std::to_string(kMaxPrefixLength) + " characters";
    if (prefix.find("//") != std::string_view::npos) return "holds an empty element ('//')";
    for (char c : prefix)
        if (c <= ' ' || c > '~') return "holds a character that is not printable ASCII (or a space)";
    return {};
}

std::optional<std::string> KeyLayout::holder_group(std::string_view key) const {
    if (!key.starts_with(prefix_)) return std::nullopt;
    auto group = between(key.substr(prefix_.size()), "groups/", "/holder");
    if (!group || !is_valid_group_name(*group)) return std::nullopt;
    return std::string(*group);
}

ClusterView read_view(const KeyLayout& layout, const std::map<std::string, KeyValue>& keys) {
    ClusterView view;
    for (const auto& [key, kv] : keys) {
        if (!std::string_view(key).starts_with(layout.prefix())) continue;  // not watched here
        const std::string_view rest = std::string_view(key).substr(layout.prefix().size());
        if (rest == "cluster") {
            view.cluster_name = kv.value;
        } else if (auto node = between(rest, "members/", ""); node && is_valid_node_name(*node)) {
            view.members[std::string(*node)] = kv.value;
        } else if (auto group = between(rest, "groups/", "/holder");
                   group && is_valid_group_name(*group) && is_valid_node_name(kv.value)) {
            view.holders[std::string(*group)] = GroupHolder{kv.value, kv.lease, kv.create_revision};
        } else {
            view.foreign.push_back(key);
        }
    }
    return view;
}

std::string prefix_conflict(const KeyLayout& layout, const ClusterView& view, std::string_view cluster_name) {
    if (!view.cluster_name || *view.cluster_name == cluster_name) return {};
    return "Prefix=" + layout.prefix() + " belongs to cluster '" + *view.cluster_name + "', not '" +
           std::string(cluster_name) + "': give each cluster a prefix of its own";
}

}  // namespace freeha::etcd
