"""Process tests of the heartbeat channels: IPv6 and mixed IPv4 + IPv6 clusters
of real freehad daemons on loopback, and channels that wait for a missing
address or interface while the daemon stays up.

IPv6 loopback has a single address (::1), so every IPv6 node binds a port of
its own and names its peers' ports. No privileges needed. The namespaced
variants (link-local multicast, losing a channel, an address that appears
after the start) are in tests/system/test_network.py.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import FREEHACTL, FREEHAD, TAKEOVER_SLACK, Cluster, stop_at_end  # noqa: E402

DEAD = 1.0


def ipv6_unicast(cluster, node):
    peers = " ".join(f"[::1]:{n.port}" for n in cluster.nodes.values() if n is not node)
    return [f"unicast ::1 {peers}"]


def ipv4_and_ipv6_unicast(cluster, node):
    peers = " ".join(f"{n.address}:{n.port}" for n in cluster.nodes.values() if n is not node)
    return [f"unicast {node.address} {peers}"] + ipv6_unicast(cluster, node)


def own_ports(cluster):
    for i, node in enumerate(cluster.nodes.values()):
        node.port = cluster.port + i
    return cluster


def keygen(path):
    r = subprocess.run([FREEHACTL, "keygen", path], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return path


def ipv6_loopback_missing():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError as e:
        return f"no IPv6 loopback here: {e}"
    return None


def heard_on_every_channel(node, peers, within_usec=2 * 1000000):
    """Whether `node` hears each of `peers` on each of its channels, recently."""
    for peer in peers:
        view = node.view(peer)
        if not view or not view["reachable"]:
            return False
        if any(ch["last_heard_usec_ago"] is None or ch["last_heard_usec_ago"] > within_usec for ch in view["channels"]):
            return False
    return True


@unittest.skipIf(ipv6_loopback_missing(), ipv6_loopback_missing())
class Ipv6Only(unittest.TestCase):
    """Three members on ::1 sharing a key, and delta with a key of its own."""

    def setUp(self):
        self.c = Cluster(["alpha", "bravo", "charlie", "delta"], expected=3, channels=ipv6_unicast)
        own_ports(self.c)
        self.addCleanup(shutil.rmtree, self.c.dir, ignore_errors=True)
        stop_at_end(self, self.c)
        key = keygen(os.path.join(self.c.dir, "authkey"))
        other = keygen(os.path.join(self.c.dir, "other.key"))
        self.c.settings = f"[Cluster]\nAuthKeyFile={key}\n"
        # An empty AuthKeyFile= clears the cluster's key from delta's list.
        self.c["delta"].settings = f"[Cluster]\nAuthKeyFile=\nAuthKeyFile={other}\n"
        for name in ["charlie", "bravo", "alpha"]:
            self.c.start(name)
        self.c.wait_for(lambda: self.c.running() == ["alpha"], 15, "alpha RUNNING")

    def test_an_authenticated_ipv6_cluster_fails_over_and_never_admits_a_wrong_key_node(self):
        members = ["alpha", "bravo", "charlie"]
        self.c.wait_for(lambda: all(heard_on_every_channel(self.c[n], [m for m in members if m != n]) for n in members),
                        5, "every member to hear the others over IPv6")
        s = self.c["bravo"].status()
        self.assertEqual(s["nodes"][0]["channels"][0]["name"],
                         f"unicast ::1 [::1]:{self.c.port} [::1]:{self.c.port + 2} [::1]:{self.c.port + 3}")
        self.assertGreater(s["packets"]["accepted"], 0)
        self.assertEqual((s["packets"]["bad_signature"], s["packets"]["unauthenticated"]), (0, 0))

        self.c.start("delta")
        self.c.wait_for(lambda: all(self.c[n].status()["packets"]["bad_signature"] > 3 for n in members), 5,
                        "delta's heartbeats counted as bad signatures")
        for n in members:
            self.assertEqual(sorted(x["name"] for x in self.c[n].status()["nodes"]), members, n)
        self.c.wait_for(lambda: self.c["delta"].status()["packets"]["bad_signature"] > 0, 5,
                        "delta to drop the members' heartbeats")  # written within a second of a new count
        self.assertEqual([x["name"] for x in self.c["delta"].status()["nodes"]], ["delta"])

        killed = time.monotonic()
        self.c["alpha"].proc.kill()
        took_over = self.c.wait_for(lambda: self.c.running() == ["bravo"], 5 * DEAD + TAKEOVER_SLACK, "bravo RUNNING")
        self.assertLess(took_over - killed, DEAD + TAKEOVER_SLACK)
        self.assertEqual(self.c["charlie"].view("alpha")["state"], "TIMEDOUT")
        print(f"\nIPv6 on ::1: bravo took over {took_over - killed:.2f}s after alpha's kill -9", file=sys.stderr)


@unittest.skipIf(ipv6_loopback_missing(), ipv6_loopback_missing())
class Mixed(unittest.TestCase):
    def test_ipv4_and_ipv6_channels_in_one_daemon_both_carry_heartbeats(self):
        c = own_ports(Cluster(["alpha", "bravo", "charlie"], channels=ipv4_and_ipv6_unicast))
        self.addCleanup(shutil.rmtree, c.dir, ignore_errors=True)
        stop_at_end(self, c)
        c.start_all()
        c.wait_for(lambda: c.running() == ["alpha"], 15, "alpha RUNNING")
        c.wait_for(lambda: all(heard_on_every_channel(c[n], [m for m in c.names if m != n]) for n in c.names), 5,
                   "every node to hear the others on both channels")
        names = [ch["name"] for ch in c["charlie"].view("alpha")["channels"]]
        self.assertEqual(names, [f"unicast 127.0.0.3 127.0.0.1:{c.port} 127.0.0.2:{c.port + 1}",
                                 f"unicast ::1 [::1]:{c.port} [::1]:{c.port + 1}"])


class WaitingChannels(unittest.TestCase):
    """Issue 11 fault 5: a channel whose address or interface is missing at the start waits for it."""

    def test_a_missing_address_or_interface_waits_and_the_daemon_stays_up_but_a_port_in_use_fails(self):
        c = Cluster(["alpha"], channels=lambda cluster, node: [
            f"unicast {node.address} 127.0.0.2",
            "unicast 192.0.2.1 192.0.2.2",  # TEST-NET-1: on no host
            "multicast fe80::1%fh-nosuch0 ff02::f33",
        ])
        self.addCleanup(shutil.rmtree, c.dir, ignore_errors=True)
        stop_at_end(self, c)
        alpha = c.start("alpha")
        c.wait_for(lambda: alpha.state() == "RUNNING", 10, "alpha RUNNING on its working channel")
        time.sleep(2.5)  # a few retries
        self.assertTrue(alpha.alive())
        log = alpha.log()
        self.assertIn("channel 'unicast 192.0.2.1 192.0.2.2': waiting for address 192.0.2.1 on this host: "
                      "Cannot assign requested address; retrying every second", log)
        self.assertIn("channel 'multicast fe80::1%fh-nosuch0 ff02::f33%fh-nosuch0': waiting for interface "
                      "fh-nosuch0: No such device; retrying every second", log)
        self.assertEqual(log.count("waiting for"), 2, log)  # once each, not once per retry

        second = subprocess.run([FREEHAD, "--config", alpha.path("freehad.conf"), "--no-bus",
                                 "--node-name", "other", "--status-file", alpha.path("other.json")],
                                capture_output=True, text=True, timeout=10)
        self.assertEqual(second.returncode, 1)
        self.assertIn(f"channel 'unicast 127.0.0.1 127.0.0.2': bind 127.0.0.1:{c.port}: Address already in use",
                      second.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
