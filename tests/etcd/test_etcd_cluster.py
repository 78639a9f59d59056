"""Issue 21, Backend=etcd end to end: three freehad nodes (namespaced, each under its own systemd
--user, tests/system/nodes.py) whose membership, election and leases come from a real 3-member
etcd (tests/lib/etcd.py) on the same bridge; they exchange no heartbeat.

Checked with the hooks' own timestamps (one wall clock for every namespace): the first node runs
the services and its name is in the group's holder key; a switchover moves them in well under a
second; a power cut of the holder moves them after about a dead time and the holder, back, does
not take them again; a holder cut off from etcd stops them before any other node starts them; the
loss of etcd's quorum stops them everywhere in time, and they resume on one node when it
returns; killing etcd's leader moves them at most once, never to two nodes at once.
Exits 77 (skip) where the machine lacks root, namespaces, nftables, systemd or etcd.
"""
import json
import os
import re
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "system"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import nodes  # noqa: E402
from etcd import CLIENT_PORT, ETCD, ETCDCTL, EtcdCluster  # noqa: E402

NAMES = ["a", "b", "c"]
DEAD = 1.0
CLUSTER = "etcdsys"
PREFIX = f"/freeha/{CLUSTER}/"
# The etcd members are the bridge's first clients (EtcdCluster: SUBNET.200 and up).
ENDPOINTS = " ".join(f"http://{nodes.SUBNET}.{200 + i}:{CLIENT_PORT}" for i in range(3))


def config(node):
    return (f"[Cluster]\nName={CLUSTER}\nNodeName={node.name}\nBackend=etcd\n"
            f"[Heartbeat]\nDeadTime={DEAD}s\n"
            f"[Etcd]\nEndpoints={ENDPOINTS}\n")


def running(cluster):
    return sorted(n for n in cluster.names if cluster[n].init is not None and cluster[n].prop("State") == "RUNNING")


def starts(node):
    return [float(e[1]) for e in node.events("starthasrv")]


def intervals_up(node):
    """(start, end) of each run of the services on the node, from its hooks' timestamps: from
    starthasrv's start to the end of the stophasrv after it, or to a power cut (None: still up)."""
    runs, start = [], None
    for e in node.events():
        if e[0] == "starthasrv" and start is None:
            start = float(e[1])
        elif e[0] in ("stophasrv.done", "power-cut") and start is not None:
            runs.append((start, float(e[1])))
            start = None
    if start is not None:
        runs.append((start, None))
    return runs


class EtcdBackendCluster(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = nodes.Cluster(NAMES, config)

        def set_up():
            cls.etcd = EtcdCluster(cls.c)
            assert cls.etcd.endpoints() == ENDPOINTS.split(), cls.etcd.endpoints()
            nodes.start_all(cls.c)
            cls.c.wait_for(lambda: running(cls.c) == ["a"], 30, "a RUNNING")
        nodes.set_up_or_destroy(cls.c, set_up)

    @classmethod
    def tearDownClass(cls):
        cls.etcd.destroy()
        cls.c.destroy()

    def get(self, key):
        """The key's value in etcd ("" when absent)."""
        r = subprocess.run(["ip", "netns", "exec", self.etcd.members[0].client.netns, ETCDCTL,
                            "--endpoints", ",".join(self.etcd.endpoints()), "get", "--print-value-only", key],
                           capture_output=True, timeout=10, env=dict(os.environ, ETCDCTL_API="3"))
        return r.stdout.decode(errors="replace").strip()  # (member records are binary)

    def holder(self):
        return self.get(PREFIX + "groups/default/holder")

    def assert_never_two(self):
        """No two nodes' runs of the services overlap (the hooks' timestamps)."""
        runs = sorted((s, e if e is not None else float("inf"), n) for n in NAMES for s, e in
                      intervals_up(self.c[n]))
        for (s1, e1, n1), (s2, e2, n2) in zip(runs, runs[1:]):
            self.assertLessEqual(e1, s2, f"{n1} ran the services until {e1}, {n2} started them at {s2}")

    def wait_running(self, names, timeout, what):
        self.c.wait_for(lambda: running(self.c) == names, timeout, what)

    def test_1_the_first_node_runs_the_services_and_holds_the_key(self):
        self.assertEqual(self.holder(), "a")
        for n in NAMES:
            self.assertTrue(self.get(PREFIX + "members/" + n), f"{n}'s member record")
        self.assertEqual(self.get(PREFIX + "cluster"), CLUSTER)
        self.assertEqual(self.c["b"].prop("ActiveNode"), "a")
        self.assertEqual(starts(self.c["b"]) + starts(self.c["c"]), [])

    def test_1_the_status_shows_each_nodes_link_to_etcd(self):
        a = self.c["a"]
        r = a.ctl("status", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        link = json.loads(r.stdout)["etcd"]
        self.assertIn(link["endpoint"], ENDPOINTS.split())
        self.assertEqual(link["endpoint_count"], 3)
        self.assertRegex(link["lease_id"], "^[0-9a-f]+$")
        self.assertGreater(link["lease_remaining_usec"], 0)
        self.assertTrue(link["synced"])
        self.assertGreater(link["counters"]["calls"], 0)
        # Every key of it is documented in freeha-status(5), as *key*.
        with open(os.path.join(HERE, "..", "..", "man", "freeha-status.5.scd")) as f:
            page = f.read()
        self.assertEqual(sorted(k for k in [*link, *link["counters"]] if f"*{k}*" not in page
                                and f"_{k.replace('_', chr(92) + '_')}_" not in page), [])
        r = a.ctl("status")
        self.assertRegex(r.stdout, r"Quorum: yes \(from etcd; 3 nodes in etcd\)")
        self.assertRegex(r.stdout, r"\netcd: http://\S+ \(endpoint \d of 3\); lease [0-9a-f]+, .* left; view current\n")
        self.assertRegex(r.stdout, r"\netcd calls: \d+; ")
        self.assertEqual(a.prop("EtcdEndpoint"), link["endpoint"])

    def test_2_a_switchover_hands_the_key_over_quickly(self):
        asked = time.time()
        r = self.c["a"].ctl("switchover", "b")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_running(["b"], 10, "b RUNNING")
        self.assertEqual(self.holder(), "b")
        took = starts(self.c["b"])[-1] - asked
        # The stop, the release, the claim: no lease to wait out (bench/ has the figures).
        self.assertLess(took, 1.0)
        self.assert_never_two()

    def test_3_a_power_cut_of_the_holder_moves_the_services_once_and_not_back(self):
        b = self.c["b"]
        cut = time.time()
        b.power_cut()
        # The services died with the machine: so says its log, and so finds its next start-up probe.
        with open(b.etc("events.log"), "a") as f:
            f.write(f"power-cut {cut}\n")
        if os.path.exists(b.etc("services-up")):
            os.remove(b.etc("services-up"))
        self.wait_running(["a"], 15, "a RUNNING after b's power cut")
        took = starts(self.c["a"])[-1] - cut
        self.assertGreater(took, DEAD * 0.5)   # the lease had to run out at etcd
        self.assertLess(took, DEAD + 3.0)      # its TTL, etcd's expiry check, a loaded machine
        self.assertEqual(self.holder(), "a")
        b.power_on()
        b.systemctl("start", "freehad", check=True)
        self.c.wait_for(lambda: b.prop("State") == "STANDBY", 30, "b STANDBY")
        time.sleep(2 * DEAD)
        self.assertEqual(running(self.c), ["a"])

    def test_4_a_holder_cut_off_from_etcd_stops_before_another_node_starts(self):
        a = self.c["a"]
        rules = ("table inet freeha_etcd {\n chain out {\n  type filter hook output priority 0;\n"
                 "  tcp dport 2379 drop\n }\n}\n")
        nodes.sh("nsenter", f"--net=/run/netns/{a.netns}", "nft", "-f", "-", input=rules)
        try:
            self.c.wait_for(lambda: "b" in running(self.c), 15, "b RUNNING after a lost etcd")
            self.assert_never_two()
            a_runs = intervals_up(a)
            self.assertIsNotNone(a_runs[-1][1], "a stopped the services")
            # systemctl status says why.
            self.c.wait_for(lambda: "NOT quorate: " in a.show("freehad", "StatusText"), 10, "a's status")
            self.assertIn("etcd", a.show("freehad", "StatusText"))
            # The status counts the failed calls and says what failed last.
            link = json.loads(a.ctl("status", "--json").stdout)["etcd"]
            self.assertGreater(link["counters"]["call_failures"], 0)
            self.assertRegex(link["last_failure"] or "", " on (" + "|".join(map(re.escape, ENDPOINTS.split())) + "): ")
        finally:
            a.in_netns("nft", "delete", "table", "inet", "freeha_etcd", check=False)
        time.sleep(2 * DEAD)
        self.assertEqual(running(self.c), ["b"])
        self.c.wait_for(lambda: a.prop("State") == "STANDBY", 15, "a STANDBY once back")

    def test_5_without_etcd_quorum_everyone_stops_in_time_and_the_services_resume(self):
        lost = time.time()
        for m in self.etcd.members[1:]:
            m.kill()
        try:
            self.c.wait_for(lambda: running(self.c) == [], 10, "every node stopped")
            stopped = max(e for n in NAMES for _, e in intervals_up(self.c[n]) if e is not None)
            self.assertLess(stopped - lost, DEAD + 1.0)  # the lease's end, on the holder's clock
        finally:
            for m in self.etcd.members[1:]:
                m.start(state="existing")
        self.etcd.wait_for_leader(timeout=30)
        self.c.wait_for(lambda: len(running(self.c)) == 1, 30, "one node RUNNING again")
        self.assert_never_two()

    def test_6_killing_the_etcd_leader_never_runs_the_services_twice(self):
        before = running(self.c)
        leader = self.etcd.wait_for_leader(timeout=10)
        leader.kill()
        try:
            time.sleep(4 * DEAD)
            self.assertEqual(len(running(self.c)), 1)
            self.assert_never_two()
        finally:
            leader.start(state="existing")
        self.etcd.wait_for_leader(timeout=30)
        time.sleep(DEAD)
        self.assertEqual(len(running(self.c)), 1, before)
        self.assert_never_two()

    def test_7_a_node_of_another_cluster_on_the_same_prefix_is_told_and_starts_nothing(self):
        c = self.c["c"]
        c.systemctl("stop", "freehad", check=True)
        since = time.time()
        with open(c.etc("freehad.conf")) as f:
            own = f.read()
        try:
            with open(c.etc("freehad.conf"), "w") as f:
                f.write(own.replace(f"Name={CLUSTER}\n", "Name=intruder\n") + f"Prefix={PREFIX}\n")
            c.systemctl("start", "freehad", check=True)
            self.c.wait_for(lambda: "NOT quorate: the etcd prefix belongs to cluster etcdsys"
                            in c.show("freehad", "StatusText"), 15, "c's status naming the other cluster")
            time.sleep(2 * DEAD)
            log = c.run("journalctl", "--user-unit", "freehad", "-o", "cat", "--no-pager").stdout
            told = [l for l in log.splitlines() if "belongs to cluster 'etcdsys'" in l]
            self.assertEqual(len(told), 1, log)  # one line, not one per retry
            self.assertIn(f"the prefix {PREFIX} belongs to cluster 'etcdsys'", told[0])
            self.assertIn("[Etcd] Prefix=", told[0])
            self.assertEqual([t for t in starts(c) if t > since], [])
            self.assertEqual(self.get(PREFIX + "cluster"), CLUSTER)  # the mark stays the first cluster's
            self.assertEqual(len(running(self.c)), 1)
        finally:
            c.systemctl("stop", "freehad")
            with open(c.etc("freehad.conf"), "w") as f:
                f.write(own)
            c.systemctl("start", "freehad", check=True)
        self.c.wait_for(lambda: c.prop("State") == "STANDBY", 15, "c STANDBY in its own cluster again")


if __name__ == "__main__":
    nodes.main(also_missing=None if os.access(ETCD, os.X_OK) else f"{ETCD} is missing (etcd-server)")
