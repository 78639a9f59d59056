// Node names: FreeHA's hostname rule, validation, and the election order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace freeha {

inline constexpr std::size_t kMaxNodeNameLength = 64;

// A node name is 1..64 characters of [A-Za-z0-9_-], the set FreeHA kept
// from the hostname.
bool is_valid_node_name(std::string_view name);

// FreeHA's rule: the hostname cut at the first character that is not
// alphanumeric, '-' or '_' ("alpha.example.com" -> "alpha").
std::string node_name_from_hostname(std::string_view hostname);

// Election order: case-insensitive alphabetical, ties broken by the exact
// bytes so that every node sorts the same names the same way.
bool node_name_before(std::string_view a, std::string_view b);

// A 64-bit FNV-1a of the cluster name, carried in every heartbeat.
std::uint64_t cluster_id(std::string_view cluster_name);

// A 64-bit FNV-1a of a node name: how heartbeats list the nodes their sender hears.
std::uint64_t node_id(std::string_view node_name);

}  // namespace freeha
