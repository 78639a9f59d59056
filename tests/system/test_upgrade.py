#!/usr/bin/env python3
"""Issue 18, rolling upgrade of freeha on namespaced nodes with the real
previous release (0.1.0, wire version 2, built from the git history by
tests/lib/previous_release.py).

Three nodes run 0.1.0 with the services on alpha. bravo, then charlie, are
upgraded (stop, swap the binary, start): nothing moves, nothing starts, the
services keep running on alpha; the new nodes speak version 2 with the marker
that says they understand 3. A switchover hands the services to bravo (the
one planned move: 0.1.0 has no maintenance mode), alpha is upgraded, and the
whole cluster speaks version 3 once the last 0.1.0 daemon is gone.

What each node speaks is read off the wire: a host on the bridge listens to
the broadcast heartbeats (version byte, sender, marker in the heard list).

    flock /tmp/freeha-systest.lock env FREEHA_BUILD=$PWD/build python3 tests/system/test_upgrade.py
"""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import nodes  # noqa: E402
import previous_release  # noqa: E402
from nodes import FREEHAD, Cluster, config_for, dump_journals, set_up_or_destroy, start_all  # noqa: E402

DEAD_TIME = 1.0  # freehad.conf's default DeadTime=

# Listens on the bridge to the heartbeats (UDP 3891, broadcast) and writes one
# line per datagram: "REALTIME NAME VERSION MARKER" (MARKER 1: the heard list
# has node_id(":wire3"), wire.h's kUnderstandsCurrentMarker).
SNIFFER = r"""
import socket, struct, sys, time
def fnv1a64(text):
    h = 0xcbf29ce484222325
    for c in text.encode():
        h = ((h ^ c) * 0x100000001b3) & 0xffffffffffffffff
    return h
MARKER = fnv1a64(":wire3")
HANDOVER, HEARD, CLAIMANT = 1 << 3, 1 << 4, 1 << 5
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 3891))
out = open(sys.argv[1], "w", buffering=1)
out.write("ready\n")
while True:
    d = s.recv(2048)
    if len(d) < 59 or d[:4] != b"FHA1":
        continue
    version, flags = d[4], struct.unpack(">H", d[6:8])[0]
    n = d[58]
    name = d[59:59 + n].decode(errors="replace")
    i = 59 + n
    marker = 0
    try:
        if flags & HANDOVER:
            i += 1 + d[i]
        if flags & CLAIMANT:
            i += 1 + d[i]
        if flags & HEARD:
            ids = struct.unpack(f">{d[i]}Q", d[i + 1:i + 1 + 8 * d[i]])
            marker = int(MARKER in ids)
    except (IndexError, struct.error):
        marker = -1
    out.write(f"{time.time():.6f} {name} {version} {marker}\n")
"""


def status(node, since=0.0):
    """status.json as the node's freehad (either release) last wrote it, if written after
    `since` (realtime): else None (a restarted daemon has not written its own yet)."""
    try:
        with open(f"/proc/{node.pid1()}/root/run/user/0/freeha/status.json") as f:
            s = json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return s if s.get("updated_realtime_usec", 0) / 1e6 >= since else None


class RollingUpgrade(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.previous = previous_release.build()
        if cls.previous.seconds:
            print(f"\nthe previous release took {cls.previous.seconds:.0f} s to build", file=sys.stderr)

        def prepare(node):
            node.freehad = cls.previous.freehad

        cls.c = Cluster(["alpha", "bravo", "charlie"], config_for("upgrade", 3), prepare=prepare)
        set_up_or_destroy(cls.c, cls._set_up)

    @classmethod
    def _set_up(cls):
        c = cls.c
        watch = c.add_client("watch")
        cls.wire_log = os.path.join(c.dir, "wire.log")
        cls.sniffer = subprocess.Popen(["ip", "netns", "exec", watch.netns, "python3", "-c", SNIFFER, cls.wire_log],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        c.wait_for(lambda: os.path.exists(cls.wire_log) and os.path.getsize(cls.wire_log) > 0, 10, "the sniffer")
        start_all(c)
        c.wait_for(lambda: (status(c["alpha"]) or {}).get("state") == "RUNNING", 60, "alpha to run the services")
        c.wait_for(lambda: all((status(c[n]) or {}).get("state") == "STANDBY" for n in ("bravo", "charlie")), 30,
                   "bravo and charlie in standby")

    @classmethod
    def tearDownClass(cls):
        if cls.sniffer.poll() is None:
            cls.sniffer.kill()
        cls.sniffer.wait()
        cls.sniffer.stderr.close()
        cls.c.destroy()

    def setUp(self):
        self.started = time.time()

    def tearDown(self):
        outcome = self._outcome.result
        if outcome.errors or outcome.failures:
            dump_journals(self.c)

    # --- what the wire says -------------------------------------------------

    def heard(self, since, until=None):
        """{name: {(version, marker)}} of the heartbeats sent from `since` to `until` (realtime)."""
        seen = {}
        with open(self.wire_log) as f:
            for line in f:
                fields = line.split()
                if len(fields) != 4:
                    continue
                t = float(fields[0])
                if t >= since and (until is None or t <= until):
                    seen.setdefault(fields[1], set()).add((int(fields[2]), int(fields[3])))
        return seen

    def assert_speaks(self, expected, since, until=None):
        """Every node named in `expected` sent only heartbeats of (version, marker) from since to until."""
        seen = self.heard(since, until)
        for name, kinds in expected.items():
            self.assertEqual(seen.get(name), kinds, f"{name}: (wire version, marker) of its heartbeats")

    # --- the services -------------------------------------------------------

    def starts(self):
        return {n: len(self.c[n].events("starthasrv")) for n in self.c.names}

    def assert_no_overlap(self):
        """The services ran on one node at a time: each node's [starthasrv, stophasrv.done] apart."""
        spans = []
        for n in self.c.names:
            start = None
            for row in self.c[n].events():
                if row[0] == "starthasrv":
                    start = float(row[1])
                elif row[0] == "stophasrv.done" and start is not None:
                    spans.append((start, float(row[1]), n))
                    start = None
            if start is not None:
                spans.append((start, float("inf"), n))
        spans.sort()
        for (s1, e1, n1), (s2, e2, n2) in zip(spans, spans[1:]):
            self.assertLessEqual(e1, s2, f"the services ran on {n1} until {e1} and on {n2} from {s2}")

    def upgrade(self, name):
        """Stops freehad, swaps its binary for this build's, starts it: the rolling upgrade's step."""
        node = self.c[name]
        r = node.systemctl("stop", "freehad")
        self.assertEqual(r.returncode, 0, r.stderr)
        node.use_freehad(FREEHAD)
        started = time.time()
        r = node.systemctl("start", "freehad")  # Type=notify: returns once it is up
        self.assertEqual(r.returncode, 0, r.stderr)
        self.c.wait_for(lambda: (status(node, started) or {}).get("state") == "STANDBY", 30,
                        f"{name}: this release's freehad in standby")
        # Until it hears a peer, a node knows no one older: its first heartbeat or two
        # are version 3 (which 0.1.0 nodes count as malformed_bad_version). From
        # STANDBY on it has heard the cluster.
        joined = time.time()
        with open(self.wire_log) as f:
            early = [line.split()[2:] for line in f if line.split()[1:2] == [name] and started <= float(line.split()[0]) <= joined]
        print(f"\n{name}: from its start to STANDBY, {early.count(['3', '0'])} heartbeats of version 3, "
              f"{early.count(['2', '1'])} of version 2 with the marker", file=sys.stderr)
        return joined

    def test_1_the_previous_release_speaks_version_2_without_the_marker(self):
        self.assert_speaks({n: {(2, 0)} for n in self.c.names}, self.started - 3)
        self.assertEqual(self.starts(), {"alpha": 1, "bravo": 0, "charlie": 0})

    def test_2_standby_nodes_upgraded_one_by_one_nothing_moves(self):
        c = self.c
        for name in ("bravo", "charlie"):
            joined = self.upgrade(name)
            time.sleep(3 * DEAD_TIME)
            new = {"bravo"} if name == "bravo" else {"bravo", "charlie"}
            # This release speaks version 2 with the marker; 0.1.0 as ever.
            self.assert_speaks({n: {(2, 1)} if n in new else {(2, 0)} for n in c.names}, joined)
            s = status(c[name])
            self.assertEqual(s["state"], "STANDBY")
            self.assertEqual(s["active_node"], "alpha")
            if "wire_version" in s:  # the status document's version fields (helper maint's)
                self.assertEqual(s["wire_version"], 2)
                versions = {x["name"]: x.get("wire_version") for x in s["nodes"]}
                self.assertEqual(versions, {n: 2 for n in c.names})
            self.assertEqual(status(c["alpha"])["state"], "RUNNING")
            self.assertTrue(os.path.exists(c["alpha"].etc("services-up")), "the services stopped on alpha")
            self.assertEqual(self.starts(), {"alpha": 1, "bravo": 0, "charlie": 0})
            ran_since = float(c["alpha"].events("starthasrv")[0][1])  # before: the start-up clean-up
            self.assertEqual([e for e in c["alpha"].events("stophasrv") if float(e[1]) > ran_since], [],
                             "alpha stopped its services")
        r = c["bravo"].ctl("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("alpha", r.stdout)

    def test_3_switchover_then_the_last_node_and_all_speak_version_3(self):
        c = self.c
        # 0.1.0 has no maintenance mode: the active node hands over before its restart.
        r = c["alpha"].run(self.previous.freehactl, "--user", "switchover", "bravo", timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        c.wait_for(lambda: (status(c["bravo"]) or {}).get("state") == "RUNNING", 30, "bravo to run the services")
        c.wait_for(lambda: (status(c["alpha"]) or {}).get("state") == "STANDBY", 30, "alpha in standby")
        self.assertEqual(self.starts(), {"alpha": 1, "bravo": 1, "charlie": 0})
        joined = self.upgrade("alpha")
        # bravo and charlie switch once they have timed alpha's 0.1.0 daemon out (at most a dead time
        # after its last heartbeat); the new alpha hears only nodes that understand 3.
        time.sleep(DEAD_TIME + 1)
        switched = time.time()
        time.sleep(2)
        self.assert_speaks({n: {(3, 0)} for n in c.names}, switched)
        self.assertEqual(self.heard(joined).get("alpha"), {(3, 0)}, "the new alpha spoke version 2")
        for n in c.names:
            s = status(c[n])
            self.assertEqual(s["active_node"], "bravo", n)
            if "wire_version" in s:
                self.assertEqual(s["wire_version"], 3, n)
                self.assertEqual({x["name"]: x.get("wire_version") for x in s["nodes"]}, {m: 3 for m in c.names})
                self.assertEqual({x["name"]: x.get("version") for x in s["nodes"]}, {m: "0.2.0" for m in c.names})
        self.assertEqual(status(c["bravo"])["state"], "RUNNING")
        self.assertTrue(os.path.exists(c["bravo"].etc("services-up")))
        self.assertFalse(os.path.exists(c["alpha"].etc("services-up")))
        # The switchover was the only start after the first one, and the only move.
        self.assertEqual(self.starts(), {"alpha": 1, "bravo": 1, "charlie": 0})
        self.assert_no_overlap()


if __name__ == "__main__":
    why = nodes.missing_facility()
    if not why:
        try:
            previous_release.build()
        except previous_release.Unavailable as e:
            why = str(e)
    nodes.main(also_missing=why)
