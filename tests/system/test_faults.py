"""Faults on namespaced nodes under real systemd --user managers (see nodes.py).

Partition: the active node of three is cut off by nftables; it stops, the
majority takes over with no overlap in the hook timestamps; healing leaves
one active node; a frozen active node that thaws stops within a second.
Authentication: a wrong-key node is never admitted; heartbeats captured from
the active node and replayed after it died do not delay the takeover; a
flood of junk datagrams changes nothing at bounded CPU. Arbitrator: two
members and an arbitrator survive the death of a member, and the arbitrator
never runs services. Clock: wall-clock jumps of +-1 h change nothing, and a
restart after the clock went back is still admitted.
Exits 77 (skip) where the machine lacks root, namespaces, nftables or systemd.
"""
import os
import shutil
import sys
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import nodes  # noqa: E402
from nodes import Cluster, start_all  # noqa: E402

INTERVAL, DEAD, FENCE = 0.2, 1.0, 0.5  # the defaults
# A crash costs about a dead time (freeha-safety(7)); the rest covers the
# voters' backing, starthasrv and a loaded machine.
FAILOVER_BOUND = DEAD + 2.0


def configure(cluster_name, expected, per_node=lambda node: ""):
    def config(node):
        return (f"[Cluster]\nName={cluster_name}\nNodeName={node.name}\nExpectedNodes={expected}\n"
                f"{per_node(node)}"
                f"[Heartbeat]\nChannel=broadcast {node.address}\n"
                f"[Services]\nFenceTimeout={FENCE}s\n")
    return config


def running(cluster, names=None):
    return sorted(n for n in (names or cluster.names) if cluster[n].prop("State") == "RUNNING")


def event_times(node, hook):
    return [float(e[1]) for e in node.events(hook)]


def keygen(node, path):
    r = node.run(nodes.FREEHACTL, "keygen", path)
    assert r.returncode == 0, r.stderr


class ClusterCase(unittest.TestCase):
    """One cluster per class, alpha active when the tests begin."""
    names = ["alpha", "bravo", "charlie"]

    @classmethod
    def config(cls):
        return configure(cls.__name__.lower(), 3)

    @classmethod
    def prepare(cls):
        """Runs after the nodes boot, before freehad starts."""

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(cls.names, cls.config())
        cls.prepare()
        start_all(cls.c)
        cls.c.wait_for(lambda: running(cls.c) == ["alpha"], 60, "alpha RUNNING")

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()


class Partition(ClusterCase):
    def test_1_the_isolated_active_node_stops_before_the_majority_starts(self):
        alpha, bravo = self.c["alpha"], self.c["bravo"]
        isolated = time.time()
        alpha.isolate()
        self.c.wait_for(lambda: bravo.prop("State") == "RUNNING", 20, "bravo RUNNING")
        self.c.wait_for(lambda: alpha.prop("State") == "STANDBY", 10, "alpha STANDBY")
        self.assertFalse(alpha.prop("Quorate"))
        alpha_stopped = event_times(alpha, "stophasrv.done")[-1]
        bravo_started = event_times(bravo, "starthasrv")[-1]
        bravo_running = event_times(bravo, "starthasrv.done")[-1]
        self.assertGreater(alpha_stopped, isolated)
        self.assertLess(alpha_stopped, bravo_started, "the services overlapped")
        self.assertLess(bravo_running - isolated, FAILOVER_BOUND)
        self.assertEqual(self.c["charlie"].events("starthasrv"), [])
        print(f"\npartition: alpha stopped {alpha_stopped - isolated:.3f}s after isolation; "
              f"bravo started {bravo_started - alpha_stopped:.3f}s after that; "
              f"takeover {bravo_running - isolated:.3f}s", file=sys.stderr)

    def test_2_healing_leaves_exactly_one_active_node(self):
        self.c["alpha"].heal()
        self.c.wait_for(lambda: self.c["alpha"].prop("Quorate"), 10, "alpha quorate again")
        time.sleep(3 * DEAD)
        self.assertEqual(running(self.c), ["bravo"])
        for name in self.c.names:
            self.assertEqual(self.c[name].prop("ActiveNode"), "bravo", name)

    def test_3_a_frozen_active_node_stops_within_a_second_of_thawing(self):
        bravo = self.c["bravo"]
        stops_before = len(bravo.events("stophasrv.done"))
        bravo.freeze()
        try:
            self.c.wait_for(lambda: running(self.c, ["alpha", "charlie"]) == ["alpha"], 20, "alpha takes over")
        finally:
            thawed = time.time()
            bravo.freeze(False)
        self.c.wait_for(lambda: len(bravo.events("stophasrv.done")) > stops_before, 5, "bravo's stop")
        stopped = event_times(bravo, "stophasrv.done")[-1]
        self.assertLess(stopped - thawed, 1.0)
        # At the thaw, freehad's loop fences, or its manager's watchdog (freehad
        # lowered it to 600ms, and the freeze lasted longer) kills it first and
        # the unit's --clean-up runs stophasrv; then Restart= after RestartSec=5s.
        self.c.wait_for(lambda: bravo.prop("State") == "STANDBY", 20, "bravo STANDBY")
        time.sleep(2 * DEAD)
        self.assertEqual(running(self.c), ["alpha"])
        print(f"\nfreeze: bravo stopped {stopped - thawed:.3f}s after thawing", file=sys.stderr)


class Authentication(ClusterCase):
    """Three members sharing a key, and delta with a key of its own."""
    names = ["alpha", "bravo", "charlie", "delta"]

    @classmethod
    def config(cls):
        key = {"delta": "/etc/freeha/other.key"}
        return configure("auth", 3, lambda n: f"AuthKeyFile={key.get(n.name, '/etc/freeha/authkey')}\n")

    @classmethod
    def prepare(cls):
        keygen(cls.c["alpha"], "/etc/freeha/authkey")
        for name in ("bravo", "charlie"):
            shutil.copy(cls.c["alpha"].etc("authkey"), cls.c[name].etc("authkey"))
        keygen(cls.c["delta"], "/etc/freeha/other.key")

    def status(self, name):
        import json
        r = self.c[name].ctl("status", "--json")
        return json.loads(r.stdout)

    def test_1_a_node_with_the_wrong_key_is_never_admitted(self):
        time.sleep(2 * DEAD)
        for name in ("alpha", "bravo", "charlie"):
            s = self.status(name)
            self.assertEqual(sorted(n["name"] for n in s["nodes"]), ["alpha", "bravo", "charlie"], name)
            self.assertGreater(s["packets"]["bad_signature"], 0, name)
        delta = self.status("delta")
        self.assertEqual([n["name"] for n in delta["nodes"]], ["delta"])
        self.assertFalse(delta["quorate"])
        self.assertEqual(self.c["delta"].events("starthasrv"), [])

    def test_2_a_flood_of_junk_changes_nothing_and_cpu_stays_bounded(self):
        members = ["alpha", "bravo", "charlie"]
        before = {n: (self.c[n].prop("State"), self.c[n].prop("Term")) for n in members}
        starts = {n: len(self.c[n].events("starthasrv")) for n in members}
        cpu = {n: self.c[n].cpu_seconds() for n in members}
        flood = textwrap.dedent(f"""
            import os, random, socket, struct, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            rnd = random.Random(7)
            cluster = 0xcbf29ce484222325
            for ch in b"auth":  # FNV-1a of the cluster name, so that these reach the HMAC check
                cluster = ((cluster ^ ch) * 0x100000001b3) % 2**64
            def junk(i):
                if i % 4 == 0:  # well-formed and signed, with a wrong tag: costs an HMAC each
                    body = b"FHA1" + bytes([2, 1]) + struct.pack(">HQQQQQQ", 4, cluster, 1, i, 99, i, 0) + bytes([3, 0, 5]) + b"mallo"
                    return body + os.urandom(32)
                return os.urandom(rnd.randint(0, 300))
            batch = [junk(i) for i in range(2000)]
            sent, start = 0, time.monotonic()
            while time.monotonic() - start < 10:
                for p in batch[sent % 2000:sent % 2000 + 200]:
                    s.sendto(p, ("{nodes.SUBNET}.255", 3891))
                sent += 200
                ahead = sent / 20000 - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
            print(sent, time.monotonic() - start)
            """)
        sender = self.c["delta"].popen("python3", "-c", flood)
        samples = []
        while sender.poll() is None:
            samples.append({n: self.c[n].prop("State") for n in members})
            time.sleep(0.5)
        sent, seconds = sender.stdout.read().split()
        sender.stdout.close()
        rate = int(sent) / float(seconds)
        used = {n: self.c[n].cpu_seconds() - cpu[n] for n in members}
        print(f"\nflood: {int(sent)} datagrams in {float(seconds):.1f}s ({rate:.0f}/s); freehad CPU "
              + ", ".join(f"{n} {used[n]:.2f}s" for n in members), file=sys.stderr)
        self.assertGreater(rate, 15000)
        for sample in samples:
            self.assertEqual(sample, {"alpha": "RUNNING", "bravo": "STANDBY", "charlie": "STANDBY"})
        after = {n: (self.c[n].prop("State"), self.c[n].prop("Term")) for n in members}
        self.assertEqual(after, before)
        self.assertEqual({n: len(self.c[n].events("starthasrv")) for n in members}, starts)
        for n in members:
            self.assertLess(used[n], 0.5 * float(seconds), f"{n} used {used[n]:.2f}s of CPU")
            s = self.status(n)
            dropped = sum(s["packets"]["malformed"].values()) + s["packets"]["bad_signature"] + s["packets"][
                "foreign_cluster"]
            self.assertGreater(dropped, int(sent) // 2, n)

    def test_3_replayed_heartbeats_of_a_dead_node_do_not_delay_the_takeover(self):
        capture = textwrap.dedent(f"""
            import socket, struct, sys, time
            s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
            s.settimeout(0.2)
            out, end = [], time.monotonic() + 3
            while time.monotonic() < end:
                try:
                    frame = s.recv(2048)
                except socket.timeout:
                    continue
                ihl = (frame[0] & 15) * 4
                src = socket.inet_ntoa(frame[12:16])
                dport = struct.unpack(">H", frame[ihl + 2:ihl + 4])[0]
                if frame[9] == 17 and dport == 3891 and src == "{self.c['alpha'].address}":
                    out.append(frame[ihl + 8:].hex())
            open(sys.argv[1], "w").write("\\n".join(out))
            """)
        path = os.path.join(self.c.dir, "captured")
        r = self.c["charlie"].run("python3", "-c", capture, path, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(path) as f:
            captured = f.read().split()
        self.assertGreater(len(captured), 10)
        replay = textwrap.dedent(f"""
            import socket, sys, time
            packets = [bytes.fromhex(h) for h in open(sys.argv[1]).read().split()]
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            end = time.monotonic() + float(sys.argv[2])
            while time.monotonic() < end:
                for p in packets:
                    s.sendto(p, ("{nodes.SUBNET}.255", 3891))
                time.sleep(0.05)
            """)
        replayed_before = self.status("bravo")["packets"]["replayed"]
        died = time.time()
        self.c["alpha"].power_cut()
        replayer = self.c["delta"].popen("python3", "-c", replay, path, str(FAILOVER_BOUND + 2))
        try:
            self.c.wait_for(lambda: self.c["bravo"].prop("State") == "RUNNING", 3 * FAILOVER_BOUND, "bravo RUNNING")
            took = event_times(self.c["bravo"], "starthasrv.done")[-1] - died
        finally:
            replayer.wait(timeout=60)
            replayer.stdout.close()
        self.assertLess(took, FAILOVER_BOUND)
        s = self.status("bravo")
        self.assertGreater(s["packets"]["replayed"] + s["packets"]["stale_incarnation"], replayed_before)
        alpha = next(n for n in s["nodes"] if n["name"] == "alpha")
        self.assertEqual(alpha["state"], "TIMEDOUT")
        print(f"\nreplay: {len(captured)} captured heartbeats replayed; bravo running {took:.3f}s after alpha died, "
              f"{s['packets']['replayed'] - replayed_before} replays dropped", file=sys.stderr)


class Arbitrator(ClusterCase):
    names = ["alpha", "bravo", "zulu"]

    @classmethod
    def config(cls):
        return configure("arb", 3, lambda n: "Role=arbitrator\n" if n.name == "zulu" else "")

    def test_two_members_and_an_arbitrator_survive_a_member_death(self):
        self.assertEqual(self.c["zulu"].prop("Role"), "arbitrator")
        self.assertIn(["zulu", "STANDBY", "arbitrator", True], self.c["bravo"].prop("Nodes"))
        self.assertRegex(self.c["bravo"].ctl("status").stdout, r"zulu\s+STANDBY\s+arbitrator\s+yes")
        self.c["alpha"].power_cut()
        self.c.wait_for(lambda: self.c["bravo"].prop("State") == "RUNNING", 3 * FAILOVER_BOUND, "bravo RUNNING")
        self.assertTrue(self.c["bravo"].prop("Quorate"))  # bravo and the arbitrator: 2 of 3
        time.sleep(2 * DEAD)
        self.assertEqual(running(self.c, ["bravo", "zulu"]), ["bravo"])
        self.assertEqual(self.c["zulu"].events(), [], "the arbitrator ran a hook")


class Clock(ClusterCase):
    """Sets the machine's wall clock (and puts it back): CLOCK_REALTIME is not namespaced."""

    def snapshot(self):
        return {n: (self.c[n].prop("State"), self.c[n].prop("Term"), self.c[n].prop("ActiveNode"))
                for n in self.c.names}

    def test_wall_clock_jumps_change_nothing(self):
        wall0, mono0 = time.time(), time.monotonic()

        def set_offset(offset):
            time.clock_settime(time.CLOCK_REALTIME, wall0 + (time.monotonic() - mono0) + offset)

        try:
            set_offset(0)
        except PermissionError:
            self.skipTest("cannot set the wall clock here")
        before = self.snapshot()
        starts = {n: len(self.c[n].events("starthasrv")) for n in self.c.names}
        try:
            for offset in (3600, -3600):
                set_offset(offset)
                for _ in range(10):
                    time.sleep(0.5)
                    self.assertEqual(self.snapshot(), before, f"after a jump of {offset:+d}s")
            # A restart with the clock an hour back: the stored incarnation still grows, so peers admit it.
            self.c["bravo"].systemctl("restart", "freehad", check=True)
            self.c.wait_for(lambda: self.c["bravo"].prop("State") == "STANDBY", 10, "bravo back in STANDBY")
            view = {n[0]: n[1] for n in self.c["alpha"].prop("Nodes")}
            self.assertEqual(view["bravo"], "STANDBY")
            self.assertEqual(self.snapshot(), before)
        finally:
            set_offset(0)
        self.assertEqual({n: len(self.c[n].events("starthasrv")) for n in self.c.names}, starts)


if __name__ == "__main__":
    nodes.main(None if shutil.which("nft") else "nftables is not installed")
