"""Heartbeat channels on namespaced nodes under real systemd --user managers (see nodes.py).

IPv6 only: no IPv4 address at all; a unicast channel over fd00:f33:0:213::/64
and a link-local multicast channel (ff02::f33 on eth0), with authentication:
the cluster forms, replayed and tampered IPv6 heartbeats are dropped and
counted, and losing the multicast channel changes nothing.
Mixed: an IPv4 broadcast channel and an IPv6 unicast channel; losing either
family changes nothing.
Late network (issue 11 fault 5): a node started while its interface has
another name and no address waits, then joins the cluster over all four kinds
of channel once the interface and addresses appear, without a restart.
Link health (issue 19): a node that loses a quarter of one peer's heartbeats
on one channel shows it for that peer and channel only, logs it once, and
logs its recovery once when the loss ends.
Exits 77 (skip) where the machine lacks root, namespaces, nftables or systemd.
"""
import json
import os
import re
import shutil
import socket
import sys
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import nodes  # noqa: E402
from nodes import Cluster, start_all  # noqa: E402

DEAD = 1.0
GROUP4 = "239.255.15.51"
SUBNET_B = "10.214.0"


def peers6(node):
    return " ".join(n.address6 for n in node.cluster.nodes.values() if n is not node)


def configure(cluster_name, channels, extra=""):
    def config(node):
        return (f"[Cluster]\nName={cluster_name}\nNodeName={node.name}\nExpectedNodes=3\n{extra}"
                "[Heartbeat]\n" + "".join(f"Channel={ch}\n" for ch in channels(node)))
    return config


def status(node):
    """The node's status.json (freehactl's JSON has no per-channel ages), read through its INIT's root."""
    try:
        with open(f"/proc/{node.pid1()}/root/run/user/0/freeha/status.json") as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def channel_ages(viewer, peer):
    """Seconds since `viewer` heard `peer` on each channel, by channel name (None: never)."""
    s = status(viewer)
    view = next((n for n in (s or {}).get("nodes", []) if n["name"] == peer), None)
    if not view:
        return {}
    return {ch["name"]: None if ch["last_heard_usec_ago"] is None else ch["last_heard_usec_ago"] / 1e6
            for ch in view["channels"]}


def hears_on_every_channel(viewer, peer, channels, within=1.0):
    ages = channel_ages(viewer, peer)
    return len(ages) == channels and all(a is not None and a < within for a in ages.values())


def drop_heartbeats(node, match):
    """Drops incoming heartbeats that `match` (an nft expression) in the node's namespace; `match` sees
    heartbeats only, so a `numgen inc` in it counts heartbeats."""
    nodes.sh("nsenter", f"--net=/run/netns/{node.netns}", "nft", "-f", "-",
             input="table inet freeha_net {\n chain in {\n  type filter hook input priority 0;\n"
                   f"  udp dport 3891 {match} drop\n }}\n}}\n")


def undrop(node):
    node.in_netns("nft", "delete", "table", "inet", "freeha_net")


class NetworkCase(unittest.TestCase):
    """One cluster per class, one node active (usually alpha: the start order races) when the tests begin."""
    names = ["alpha", "bravo", "charlie"]
    connected = names  # the nodes that hear each other from the start
    channel_count = 0

    @classmethod
    def config(cls):
        raise NotImplementedError

    @classmethod
    def prepare(cls):
        """Runs after the nodes boot, before freehad starts."""

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(cls.names, cls.config())
        try:
            cls.prepare()
            start_all(cls.c)
            cls.c.wait_for(cls.one_active_node, 60, "one node RUNNING, seen by all")
        except BaseException:
            for name in cls.c.names:
                r = cls.c[name].run("journalctl", "--user-unit", "freehad", "--no-pager", "-o", "cat", "-n", "30")
                print(f"--- {name}'s freehad journal:\n{r.stdout}", file=sys.stderr)
            cls.c.destroy()
            raise

    @classmethod
    def one_active_node(cls):
        running = [n for n in cls.c.names if cls.c[n].prop("State") == "RUNNING"]
        return len(running) == 1 and all(cls.c[n].prop("ActiveNode") == running[0] for n in cls.connected)

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()

    def snapshot(self):
        return {n: (self.c[n].prop("State"), self.c[n].prop("Term"), self.c[n].prop("ActiveNode"),
                    self.c[n].prop("Quorate")) for n in self.c.names}

    def wait_until_everyone_hears_everyone(self, names=None):
        names = names or self.c.names
        self.c.wait_for(lambda: all(hears_on_every_channel(self.c[a], b, self.channel_count)
                                    for a in names for b in names if a != b), 20,
                        f"every node to hear every other on all {self.channel_count} channels")

    def assert_losing_channels_changes_nothing(self, match, lost, kept):
        """Drops heartbeats matching `match` on every node for 3 dead times."""
        before = self.snapshot()
        starts = {n: len(self.c[n].events("starthasrv")) for n in self.c.names}
        for n in self.c.names:
            drop_heartbeats(self.c[n], match)
        try:
            deadline = time.monotonic() + 3 * DEAD
            while time.monotonic() < deadline:
                self.assertEqual(self.snapshot(), before, f"while dropping {match}")
            ages = channel_ages(self.c["bravo"], "alpha")
            self.assertGreater(ages[lost], DEAD, ages)  # ages as of the last status write
            self.assertLess(ages[kept], DEAD, ages)
        finally:
            for n in self.c.names:
                undrop(self.c[n])
        self.wait_until_everyone_hears_everyone()
        self.assertEqual(self.snapshot(), before)
        self.assertEqual({n: len(self.c[n].events("starthasrv")) for n in self.c.names}, starts)
        print(f"\nlost '{lost}' for {3 * DEAD:.0f}s: bravo last heard alpha there {ages[lost]:.1f}s before, "
              f"on '{kept}' {ages[kept]:.2f}s before; no state changed", file=sys.stderr)


class Ipv6Only(NetworkCase):
    channel_count = 2

    @classmethod
    def config(cls):
        return configure("v6only", lambda n: [f"unicast {n.address6} {peers6(n)}",
                                              f"multicast {n.link_local}%eth0 {nodes.MULTICAST6}"],
                         "AuthKeyFile=/etc/freeha/authkey\n")

    @classmethod
    def prepare(cls):
        alpha = cls.c["alpha"]
        r = alpha.run(nodes.FREEHACTL, "keygen", "/etc/freeha/authkey")
        assert r.returncode == 0, r.stderr
        for node in cls.c.nodes.values():
            if node is not alpha:
                shutil.copy(alpha.etc("authkey"), node.etc("authkey"))
            nodes.sh("ip", "-n", node.netns, "addr", "del", f"{node.address}/24", "dev", "eth0")

    def test_1_the_cluster_forms_over_ipv6_unicast_and_link_local_multicast(self):
        for node in self.c.nodes.values():
            self.assertEqual(node.in_netns("ip", "-4", "addr", "show", "dev", "eth0").stdout.strip(), "")
        self.wait_until_everyone_hears_everyone()
        ages = channel_ages(self.c["charlie"], "alpha")
        self.assertEqual(sorted(ages), sorted([f"unicast {self.c['charlie'].address6} {peers6(self.c['charlie'])}",
                                               f"multicast fe80::12%eth0 {nodes.MULTICAST6}%eth0"]))
        packets = status(self.c["bravo"])["packets"]
        self.assertGreater(packets["accepted"], 0)
        self.assertEqual((packets["bad_signature"], packets["unauthenticated"]), (0, 0))

    def test_2_replayed_and_tampered_ipv6_heartbeats_are_dropped_and_counted(self):
        alpha, bravo, charlie = self.c["alpha"], self.c["bravo"], self.c["charlie"]
        capture = textwrap.dedent(f"""
            import ipaddress, socket, struct, sys, time
            s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x86dd))
            s.settimeout(0.2)
            ours = {{ipaddress.ip_address("{alpha.address6}"), ipaddress.ip_address("{alpha.link_local}")}}
            out, end = [], time.monotonic() + 2
            while time.monotonic() < end:
                try:
                    frame = s.recv(2048)
                except socket.timeout:
                    continue
                if frame[6] != 17 or ipaddress.ip_address(frame[8:24]) not in ours:
                    continue  # not UDP straight after the fixed header, or not from alpha
                if struct.unpack(">H", frame[42:44])[0] == 3891:
                    out.append(frame[48:].hex())
            open(sys.argv[1], "w").write("\\n".join(out))
            """)
        path = os.path.join(self.c.dir, "captured6")
        r = charlie.run("python3", "-c", capture, path, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(path) as f:
            captured = f.read().split()
        self.assertGreater(len(captured), 10)
        replay = textwrap.dedent(f"""
            import socket, sys
            packets = [bytes.fromhex(h) for h in open(sys.argv[1]).read().split()]
            tampered = [p[:-1] + bytes([p[-1] ^ 1]) for p in packets]  # one bit of the tag
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            scope = socket.if_nametoindex("eth0")
            for p in packets + tampered:
                s.sendto(p, ("{bravo.address6}", 3891))
                s.sendto(p, ("{nodes.MULTICAST6}", 3891, 0, scope))
            """)
        before = status(bravo)["packets"]
        states = self.snapshot()
        r = charlie.run("python3", "-c", replay, path, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Each captured heartbeat arrives twice (unicast and multicast), as does
        # each tampered copy. The status file shows the counts within a second
        # (a dropped-packet counter is a fact, freeha-status(5)): wait for it.
        def counted():
            after = status(bravo)["packets"]
            return (after["replayed"] - before["replayed"], after["bad_signature"] - before["bad_signature"])
        self.c.wait_for(lambda: min(counted()) >= len(captured), 5, "bravo's status to count the replays")
        replayed, forged = counted()
        time.sleep(DEAD)
        self.assertEqual(self.snapshot(), states)
        print(f"\nIPv6 replay: {len(captured)} heartbeats of alpha captured, sent back to bravo by unicast and "
              f"multicast: {replayed} counted as replayed, {forged} tampered copies as bad signatures",
              file=sys.stderr)

    def test_3_losing_the_multicast_channel_changes_nothing(self):
        self.wait_until_everyone_hears_everyone()
        self.assert_losing_channels_changes_nothing(
            f"ip6 daddr {nodes.MULTICAST6}", f"multicast fe80::11%eth0 {nodes.MULTICAST6}%eth0",
            f"unicast {self.c['bravo'].address6} {peers6(self.c['bravo'])}")


class Mixed(NetworkCase):
    channel_count = 2

    @classmethod
    def config(cls):
        return configure("mixed", lambda n: [f"broadcast {n.address}", f"unicast {n.address6} {peers6(n)}"])

    def test_1_every_node_hears_every_other_on_both_families(self):
        self.wait_until_everyone_hears_everyone()

    def test_2_losing_ipv4_changes_nothing(self):
        bravo = self.c["bravo"]
        self.assert_losing_channels_changes_nothing("meta nfproto ipv4", f"broadcast {bravo.address} {nodes.SUBNET}.255",
                                                    f"unicast {bravo.address6} {peers6(bravo)}")

    def test_3_losing_ipv6_changes_nothing(self):
        bravo = self.c["bravo"]
        self.assert_losing_channels_changes_nothing("meta nfproto ipv6", f"unicast {bravo.address6} {peers6(bravo)}",
                                                    f"broadcast {bravo.address} {nodes.SUBNET}.255")


def second_ipv4(node):
    """An IPv4 address of a second subnet on eth0, for an IPv4 multicast channel (one SOURCE per channel)."""
    return node.address.replace(nodes.SUBNET, SUBNET_B)


class LateNetwork(NetworkCase):
    """charlie's freehad starts while its interface is called late0 and has no address."""
    connected = ["alpha", "bravo"]
    channel_count = 4

    @classmethod
    def config(cls):
        return configure("late", lambda n: [f"broadcast {n.address}", f"multicast {second_ipv4(n)} {GROUP4}",
                                            f"multicast {n.link_local}%eth0 {nodes.MULTICAST6}",
                                            f"unicast {n.address6} {peers6(n)}"])

    @classmethod
    def prepare(cls):
        for node in cls.c.nodes.values():
            nodes.sh("ip", "-n", node.netns, "addr", "add", f"{second_ipv4(node)}/24", "dev", "eth0")
        charlie = cls.c["charlie"]
        for args in (["link", "set", "eth0", "down"], ["link", "set", "eth0", "name", "late0"],
                     ["addr", "flush", "dev", "late0"]):
            nodes.sh("ip", "-n", charlie.netns, *args)

    def journal(self, node):
        return node.run("journalctl", "--user-unit", "freehad", "--no-pager", "-o", "cat").stdout

    def test_a_node_whose_interface_and_addresses_appear_after_the_start_joins_without_a_restart(self):
        alpha, bravo, charlie = self.c["alpha"], self.c["bravo"], self.c["charlie"]
        self.assertEqual(charlie.show("freehad", "ActiveState"), "active")
        pid = charlie.main_pid()
        self.c.wait_for(lambda: self.journal(charlie).count("waiting for") >= 4, 10, "charlie's waiting lines")
        log = self.journal(charlie)
        for line in (f"channel 'broadcast {charlie.address} {nodes.SUBNET}.255': waiting for address {charlie.address} "
                     "on this host",
                     f"channel 'multicast {second_ipv4(charlie)} {GROUP4}': waiting for membership of {GROUP4} on the "
                     f"interface of {second_ipv4(charlie)}: No such device",
                     f"channel 'multicast fe80::12%eth0 {nodes.MULTICAST6}%eth0': waiting for interface eth0: "
                     "No such device",
                     f"channel 'unicast {charlie.address6} {peers6(charlie)}': waiting for address {charlie.address6} "
                     "on this host"):
            self.assertIn(line, log)
        time.sleep(3)
        self.assertNotIn("charlie", [n[0] for n in alpha.prop("Nodes")])

        appeared = time.monotonic()
        for args in (["link", "set", "late0", "name", "eth0"], ["addr", "add", f"{charlie.address}/24", "dev", "eth0"],
                     ["addr", "add", f"{second_ipv4(charlie)}/24", "dev", "eth0"], ["link", "set", "eth0", "up"]):
            nodes.sh("ip", "-n", charlie.netns, *args)
        charlie.add_ipv6_addresses()
        self.c.wait_for(lambda: ["charlie", "STANDBY", "member", True] in alpha.prop("Nodes"), 20,
                        "alpha to see charlie")
        joined = time.monotonic() - appeared
        self.wait_until_everyone_hears_everyone()
        self.assertEqual(charlie.main_pid(), pid)
        self.assertEqual(charlie.show("freehad", "NRestarts"), "0")
        self.assertEqual(self.journal(charlie).count("': ready ("), 4)
        self.connected = self.c.names
        self.assertTrue(self.one_active_node())
        self.assertEqual(charlie.prop("State"), "STANDBY")
        print(f"\nlate network: charlie joined {joined:.2f}s after its interface and addresses appeared "
              f"(same freehad pid {pid}, no restart); every node hears every other on all 4 channels; charlie's log:\n"
              + "\n".join(line for line in self.journal(charlie).splitlines() if line.startswith("channel '")),
              file=sys.stderr)


def link(viewer, peer, channel):
    """`viewer`'s status document's counts of `peer`'s link on the channel named `channel` ({} if not there),
    from GetStatus() (a second fresh; the file's counts may be 10 s old)."""
    r = viewer.ctl("status", "--json")
    document = json.loads(r.stdout) if r.returncode == 0 else {}
    view = next((n for n in document.get("nodes", []) if n["name"] == peer), {})
    return next((ch for ch in view.get("channels", []) if ch["name"] == channel), {})


class LinkHealth(NetworkCase):
    """bravo drops every fourth of alpha's heartbeats on the IPv4 channel only (nftables' numgen inc), then none.
    A counted drop, not a random one: the shares below are exact, and no unlucky draw fails the test."""
    channel_count = 2

    @classmethod
    def config(cls):
        # Interval=100ms: a window of 64 heartbeats is 6.4s.
        return lambda n: (f"[Cluster]\nName=links\nNodeName={n.name}\nExpectedNodes=3\n[Heartbeat]\nInterval=100ms\n"
                          f"Channel=broadcast {n.address}\nChannel=unicast {n.address6} {peers6(n)}\n")

    def lines(self, node, text):
        log = node.run("journalctl", "--user-unit", "freehad", "--no-pager", "-o", "cat").stdout
        return [line for line in log.splitlines() if text in line]

    def test_a_quarter_lost_on_one_channel_is_shown_for_it_and_logged_once_then_its_recovery(self):
        alpha, bravo = self.c["alpha"], self.c["bravo"]
        v4 = f"broadcast {bravo.address} {nodes.SUBNET}.255"
        v6 = f"unicast {bravo.address6} {peers6(bravo)}"
        self.wait_until_everyone_hears_everyone()
        lossy_line = f"heartbeats of node alpha on channel '{v4}' are being lost: "
        recovered_line = f"heartbeats of node alpha on channel '{v4}' arrive again: "
        others_before = len(self.lines(bravo, "are being lost: "))
        before = link(bravo, "alpha", v4)
        drop_heartbeats(bravo, f"ip saddr {alpha.address} numgen inc mod 4 0")
        try:
            dropped_at = time.monotonic()
            self.c.wait_for(lambda: link(bravo, "alpha", v4).get("lossy"), 20, "bravo to warn of alpha's IPv4 link")
            warned = time.monotonic() - dropped_at
            # A whole window (64 heartbeats, judged 8 behind) of the lossy link.
            time.sleep(max(0.0, dropped_at + 8.0 - time.monotonic()))
            lossy, clean = link(bravo, "alpha", v4), link(bravo, "alpha", v6)
            shown = bravo.ctl("status").stdout
            metrics = bravo.ctl("metrics").stdout.splitlines()
        finally:
            undrop(bravo)
            undropped_at = time.monotonic()
        self.assertEqual(lossy["recent_expected"], 64, lossy)
        self.assertIn(lossy["recent_lost"], (15, 16, 17), lossy)  # 64 / 4, whatever the window's phase
        # Since the drop: a quarter, less the few numbers judged after `before` but sent before the drop.
        share = (lossy["lost"] - before["lost"]) / (lossy["expected"] - before["expected"])
        self.assertTrue(0.15 < share <= 0.27, (before, lossy))
        self.assertEqual(lossy["expected"], lossy["received"] + lossy["lost"])
        self.assertLess(clean["recent_loss_ratio"], 0.05, clean)
        self.assertFalse(clean["lossy"], clean)
        loss_column = re.search(r"^alpha \*?\s+\S+\s+member\s+yes\s+\S+\s+(\d+)%", shown, re.M)
        self.assertTrue(loss_column and 23 <= int(loss_column.group(1)) <= 27, shown)
        self.assertIn(f"alpha: heartbeats lost on channel '{v4}': {lossy['recent_lost']} of the last 64", shown)
        # The same facts for Prometheus (freehactl metrics).
        self.assertIn(f'freeha_link_lossy{{node="alpha",channel="{v4}"}} 1', metrics)
        self.assertIn(f'freeha_link_lossy{{node="alpha",channel="{v6}"}} 0', metrics)
        ratio = [line for line in metrics if line.startswith(f'freeha_link_loss_ratio{{node="alpha",channel="{v4}"}} ')]
        self.assertEqual(len(ratio), 1, metrics)
        self.assertTrue(0.23 <= float(ratio[0].split()[-1]) <= 0.27, ratio)
        self.c.wait_for(lambda: not link(bravo, "alpha", v4).get("lossy", True), 20, "alpha's IPv4 link to recover")
        recovered = time.monotonic() - undropped_at
        warnings = self.lines(bravo, lossy_line)
        self.assertEqual(len(warnings), 1, warnings)
        self.assertEqual(len(self.lines(bravo, recovered_line)), 1)
        self.assertEqual(len(self.lines(bravo, "are being lost: ")), others_before + 1)  # the IPv6 channel: none
        print(f"\nbravo dropping every fourth of alpha's IPv4 heartbeats: warned after {warned:.1f}s, recent ratio "
              f"{lossy['recent_loss_ratio']:.2f} on IPv4 ({lossy['lost'] - before['lost']} of "
              f"{lossy['expected'] - before['expected']} lost since the drop), {clean['recent_loss_ratio']:.2f} on IPv6; "
              f"recovered {recovered:.1f}s after the drop ended; {warnings[0]}", file=sys.stderr)


def ipv6_missing():
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()
    except OSError as e:
        return f"this kernel has no IPv6: {e}"
    return None


if __name__ == "__main__":
    why = (nodes.missing_facility() or (None if shutil.which("nft") else "nftables is not installed")
           or ipv6_missing())
    if why:
        print(f"SKIP: {why}")
        sys.exit(77)
    unittest.main(verbosity=2)
