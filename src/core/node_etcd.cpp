// Backend=etcd: the node's lease, the peers' member records and the groups' holder keys, as the link to etcd reports them.
#include "core/node.h"

namespace freeha {

std::string Node::etcd_unquorate_reason(Usec now) const {
    if (!etcd_->lease_until) return "no etcd lease (etcd unreachable, or without a majority)";
    if (now >= *etcd_->lease_until) return "this node's etcd lease ran out (etcd unreachable, or without a majority)";
    if (!etcd_->view_read) return "the cluster's keys in etcd are not read yet";
    if (etcd_->cluster_name != settings_.cluster_name)
        return etcd_->cluster_name ? "the etcd prefix belongs to cluster " + *etcd_->cluster_name
                                   : "the cluster's name is not in etcd yet";
    return {};
}

Effects Node::on_etcd_lease(std::int64_t lease, std::optional<Usec> until, Usec now) {
    Effects out;
    if (!etcd_ || !started_ || exited_) return out;
    if (!until) lease = 0;
    bool new_lease = lease != 0 && lease != etcd_->lease;
    if (etcd_->lease != 0 && lease != etcd_->lease) {
        // etcd deleted every key of the old lease (the link may already hold
        // a new one): no claim of ours stands. Running services stop at once
        // (enforce_lease(): no lease); a claim not started is withdrawn.
        for (auto& g : groups_) g->etcd_lease_lost(now, out);
    }
    etcd_->lease = lease;
    etcd_->lease_until = until;
    if (new_lease) {
        // The record goes on the new lease with a new sequence number: peers
        // timed this node out when the old one went, and take a record they
        // have already seen for a replay.
        etcd_->published.reset();
        send_heartbeat(now, out);
    }
    evaluate(now, out);
    drop_retired_groups(now, out);
    return out;
}

Effects Node::on_etcd_view(const etcd::ClusterView& view, Usec now) {
    Effects out;
    if (!etcd_ || !started_ || exited_) return out;
    etcd_->view_read = true;
    etcd_->cluster_name = view.cluster_name;
    etcd_->holders.clear();
    for (const auto& [group, holder] : view.holders) etcd_->holders[group] = holder.node;
    std::map<std::string, std::string> members = view.members;
    members.erase(settings_.node_name);
    for (const auto& [name, record] : etcd_->members) {
        if (members.contains(name) || !membership_.time_out(name)) continue;
        const Peer& p = membership_.peers().at(name);
        out.push_back(effect::Notice{NoticeKind::PeerTimedOut, name,
                                     "its member key in etcd is gone with its lease (was " +
                                         std::string(to_string(p.announced())) + ")"});
        out.push_back(effect::PeerStateChanged{name, p.announced(), NodeState::TimedOut, p.header().term});
    }
    for (const auto& [name, record] : members) {
        auto known = etcd_->members.find(name);
        if (known != etcd_->members.end() && known->second == record) continue;
        const auto* bytes = reinterpret_cast<const std::uint8_t*>(record.data());
        Effects heard = on_datagram(std::span<const std::uint8_t>(bytes, record.size()), 0, now);
        out.insert(out.end(), std::make_move_iterator(heard.begin()), std::make_move_iterator(heard.end()));
    }
    etcd_->members = std::move(members);
    evaluate(now, out);
    drop_retired_groups(now, out);
    return out;
}

Effects Node::on_etcd_claim(const std::string& group, bool won, const std::string& holder, Usec now) {
    Effects out;
    if (!etcd_ || !started_ || exited_) return out;
    auto it = std::find_if(groups_.begin(), groups_.end(), [&](const auto& g) { return g->name() == group; });
    if (it == groups_.end()) {  // removed meanwhile: its key must not outlive it
        if (won) out.push_back(effect::EtcdRelease{group});
        return out;
    }
    (*it)->etcd_claim_answered(won, holder, now, out);
    evaluate(now, out);
    drop_retired_groups(now, out);
    return out;
}

}  // namespace freeha
