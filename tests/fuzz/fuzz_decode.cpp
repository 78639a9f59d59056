// libFuzzer target: the heartbeat decoder and the node's whole receive path, fed arbitrary datagrams.
//
// Checks, besides the sanitizers: whatever decodes re-encodes to the same
// bytes (the codec is a bijection on valid datagrams), and a node never
// admits a datagram that its key did not sign.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "core/node.h"
#include "core/wire.h"

using namespace freeha;

namespace {

Node& receiving_node(bool with_key) {
    auto make = [](bool keyed) {
        NodeSettings s;
        s.cluster_name = "fuzz";
        s.node_name = "self";
        s.expected_nodes = 3;
        s.channel_count = 2;
        if (keyed) s.auth_keys = auth::KeySet::copy_of({std::vector<std::uint8_t>(32, 0x42)});
        auto* node = new Node(s);
        node->start(Usec(), false);
        return node;
    };
    static Node* plain = make(false);
    static Node* keyed = make(true);
    return with_key ? *keyed : *plain;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::uint8_t> datagram(data, size);
    auto result = wire::decode(datagram);
    if (result.decoded) {
        auto again = wire::encode(result.decoded->heartbeat);
        std::size_t body = result.decoded->auth_tag.empty() ? size : size - wire::kAuthTagSize;
        if (again.size() != body) std::abort();
        for (std::size_t i = 0; i < body; ++i) {
            // The authenticated bit is the only one encode() leaves to the signer.
            std::uint8_t expected = i == 7 ? static_cast<std::uint8_t>(data[i] & ~wire::kFlagAuthenticated) : data[i];
            if (again[i] != expected) std::abort();
        }
    }
    static Usec now;
    now += Usec(1000);
    Node& keyed = receiving_node(true);
    std::uint64_t accepted_before = keyed.counters().accepted;
    keyed.on_datagram(datagram, size % 2, now);
    keyed.on_timer(now);
    // Random bytes never carry a valid HMAC-SHA256 tag for the key.
    if (keyed.counters().accepted != accepted_before) std::abort();
    Node& plain = receiving_node(false);
    plain.on_datagram(datagram, size % 2, now);
    plain.on_timer(now);
    return 0;
}
