"""Issue 21, Backend=etcd end to end against an etcd that answers slowly: two freehad nodes
(namespaced, each under its own systemd --user, tests/system/nodes.py) whose Endpoints= is a
DelayProxy (tests/lib/etcd.py) in front of a 1-member etcd: a relay that holds every chunk for a
fixed delay in each direction (the machine has no netem). freehad gives each etcd call 500 ms.

Checked with the hooks' own timestamps (one wall clock for every namespace) and a watch of the
holder key straight at etcd (not through the relay):
- a delay well under the call timeout (125 ms each way, so 250 ms a call) moves nothing: the
  holder keeps its services and its lease, and a switchover still hands them over, never to two
  nodes at once;
- a delay beyond it (400 ms each way: every call times out, though etcd still applies what
  reaches it) stops the holder's services before the end of the lease it last had acknowledged,
  so before etcd could let its key expire; the key goes at etcd only after that, and no node
  starts the services while etcd stays that slow, although the key is gone; once the delay
  ends they resume on exactly one node.
DeadTime=2s: a holder renews its lease one keepalive at a time, every Interval= from the last
one's send, and must have each answered before its graceful stop begins (FenceTimeout= +
Interval=/2 before the lease's end). With the default 1 s that leaves a round trip under about
200 ms: by hand, 100 ms each way stopped the holder's services within half a second.
Exits 77 (skip) where the machine lacks root, namespaces, systemd or etcd.
"""
import base64
import json
import os
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "system"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import nodes  # noqa: E402
from etcd import ETCD, ETCDCTL, PROXY_PORT, DelayProxy, EtcdCluster  # noqa: E402
from test_etcd_cluster import intervals_up, running, starts  # noqa: E402

NAMES = ["a", "b"]
DEAD = 2.0
CALL_TIMEOUT = 0.5  # freehad's, for every etcd call (etcd::SessionSettings)
MILD = 0.125        # each way: a call takes half its timeout
SLOW = 0.4          # each way: every call outlasts its timeout
CLUSTER = "etcdslow"
HOLDER_KEY = f"/freeha/{CLUSTER}/groups/default/holder"
# The etcd member is the bridge's first client (EtcdCluster: SUBNET.200); its relay listens beside it.
ENDPOINT = f"http://{nodes.SUBNET}.200:{PROXY_PORT}"


def config(node):
    return (f"[Cluster]\nName={CLUSTER}\nNodeName={node.name}\nBackend=etcd\n"
            f"[Heartbeat]\nDeadTime={DEAD}s\n"
            f"[Etcd]\nEndpoints={ENDPOINT}\n")


class KeyWatch:
    """etcdctl watch of one key, straight at the member: when etcd put and deleted it, on the
    test's clock (each event stamped as it is read)."""

    def __init__(self, member, key):
        self.events = []  # (time, "PUT" or "DELETE", value)
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", member.client.netns, ETCDCTL, "--endpoints", member.url, "watch", key,
             "-w", "json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env=dict(os.environ, ETCDCTL_API="3"), start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            now = time.time()
            try:
                response = json.loads(line)
            except ValueError:
                continue
            for e in response.get("Events") or []:
                kind = "DELETE" if e.get("type") == 1 else "PUT"
                value = base64.b64decode(e.get("kv", {}).get("value", "")).decode(errors="replace")
                self.events.append((now, kind, value))

    def deleted_after(self, since):
        return next((t for t, kind, _ in list(self.events) if kind == "DELETE" and t > since), None)

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.reader.join(timeout=5)
        self.process.stdout.close()


class EtcdSlow(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = nodes.Cluster(NAMES, config)
        cls.etcd = cls.proxy = cls.watch = None

        def set_up():
            cls.etcd = EtcdCluster(cls.c, count=1)
            cls.proxy = DelayProxy(cls.etcd.members[0])
            assert cls.proxy.url == ENDPOINT, cls.proxy.url
            cls.watch = KeyWatch(cls.etcd.members[0], HOLDER_KEY)
            nodes.start_all(cls.c)
            cls.c.wait_for(lambda: running(cls.c) == ["a"], 30, "a RUNNING")
        try:
            nodes.set_up_or_destroy(cls.c, set_up)
        except BaseException:
            cls.tear_down_helpers()
            raise

    @classmethod
    def tear_down_helpers(cls):
        for helper in (cls.watch, cls.proxy, cls.etcd):
            if helper is not None:
                (helper.destroy if helper is cls.etcd else helper.stop)()

    @classmethod
    def tearDownClass(cls):
        cls.tear_down_helpers()
        cls.c.destroy()

    def holder(self):
        kv = self.etcd.members[0].get(HOLDER_KEY)
        return kv["value"] if kv else None

    def journal(self, node):
        return node.run("journalctl", "--user-unit", "freehad", "-o", "cat", "--no-pager").stdout

    def assert_never_two(self):
        """No two nodes' runs of the services overlap (the hooks' timestamps)."""
        runs = sorted((s, e if e is not None else float("inf"), n) for n in NAMES for s, e in
                      intervals_up(self.c[n]))
        for (s1, e1, n1), (s2, e2, n2) in zip(runs, runs[1:]):
            self.assertLessEqual(e1, s2, f"{n1} ran the services until {e1}, {n2} started them at {s2}")

    def test_1_the_first_node_runs_the_services_through_the_relay(self):
        self.assertEqual(self.holder(), "a")
        self.assertEqual(self.c["b"].prop("ActiveNode"), "a")

    def test_2_a_delay_under_the_call_timeout_moves_nothing_and_a_switchover_works(self):
        a, b = self.c["a"], self.c["b"]
        self.assertEqual(running(self.c), ["a"])
        lost_before = self.journal(a).count("etcd: lease lost")
        self.proxy.set(MILD)
        try:
            # Well over a lease's worth of renewals, each a round trip through the relay.
            slowed = time.time()
            while time.time() < slowed + 1.5 * DEAD:
                self.assertEqual(running(self.c), ["a"])
                time.sleep(0.2)
            self.assertEqual(len(intervals_up(a)), 1, "a stopped and started its services again")
            self.assertIsNone(intervals_up(a)[-1][1], "a stopped its services")
            self.assertEqual(self.journal(a).count("etcd: lease lost"), lost_before)
            asked = time.time()
            r = a.ctl("switchover", "b")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.c.wait_for(lambda: running(self.c) == ["b"], 10, "b RUNNING")
            # The stop, the release, the watch, the claim: a few calls of two delays each.
            self.assertLess(starts(b)[-1] - asked, 5.0)
            self.assertEqual(self.holder(), "b")
            self.assert_never_two()
        finally:
            self.proxy.set(0)

    def test_3_beyond_the_call_timeout_the_holder_stops_in_time_and_nobody_starts(self):
        self.assertEqual(len(running(self.c)), 1)
        holder = self.c[running(self.c)[0]]
        self.proxy.set(SLOW)
        slowed = time.time()  # every keepalive acknowledged was sent before this
        try:
            # Not RUNNING is not enough: its stophasrv must have ended (its timestamp is the stop).
            self.c.wait_for(lambda: running(self.c) == [] and intervals_up(holder)[-1][1] is not None, DEAD + 5,
                            "the holder stopping its services")
            stopped = intervals_up(holder)[-1][1]
            # Before the end of the lease it last had acknowledged, on its own clock.
            self.assertLess(stopped, slowed + DEAD)
            self.c.wait_for(lambda: "NOT quorate: " in holder.show("freehad", "StatusText"), 10,
                            "the holder's status")
            # The key goes at etcd only after that: by the holder's own release once its services
            # stopped (applied by etcd although the call timed out here) or with its lease.
            self.c.wait_for(lambda: self.watch.deleted_after(slowed) is not None, 20, "the key gone at etcd")
            gone = self.watch.deleted_after(slowed)
            self.assertLess(stopped, gone)
            time.sleep(1.0)  # the key gone, etcd as slow: no node gets a lease, none starts
            self.assertEqual(running(self.c), [])
        finally:
            self.proxy.set(0)
        restored = time.time()
        self.c.wait_for(lambda: len(running(self.c)) == 1, 20, "one node RUNNING again")
        self.assertEqual(self.holder(), running(self.c)[0])
        first = min(t for n in NAMES for t in starts(self.c[n]) if t > slowed)
        self.assertGreater(first, restored, "a node started the services while etcd was slow")
        self.assert_never_two()


if __name__ == "__main__":
    nodes.main(also_missing=None if os.access(ETCD, os.X_OK) else f"{ETCD} is missing (etcd-server)")
