"""Issue 21, the daemon's link to etcd (EtcdBackend) against a real 3-member etcd cluster
(tests/lib/etcd.py), each member and each probe in a network namespace of its own.

A probe (tests/etcd/etcd-probe) keeps a lease, claims keys on it and watches the prefix; it
reports its lease's end on CLOCK_MONOTONIC, which every namespace shares. Checked, with the
probes' own reports: a key is held by one probe at a time; after a power cut or a partition of
the holder, another probe creates the key only after the end the holder computed for its own
lease (so the holder's services, stopped before that end, never overlap a successor's); a killed
etcd leader or a lost quorum never lets two hold at once, and claims resume when it returns;
a dead first endpoint costs one failed call. A member record is put on the probe's lease, goes
with it, and is put again on the lease that follows a lost one; the cluster's mark is created once
without a lease, and a second probe is answered with the first one's value.
Exits 77 (skip) where the machine lacks root or namespaces.
"""
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "system"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import nodes  # noqa: E402
from etcd import EtcdCluster, Probe  # noqa: E402

PROBE = os.path.join(nodes.BUILD, "tests", "etcd-probe")
KEY = "/freeha/t/groups/default/holder"


class EtcdBackend(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = nodes.Cluster([], None)
        try:
            cls.etcd = EtcdCluster(cls.c)
            cls.secure = EtcdCluster(cls.c, count=1, tls=True, first=3)
        except Exception:
            cls.c.destroy()
            raise
        cls.hosts = [cls.c.add_client(name) for name in ("pa", "pb", "pc")]

    @classmethod
    def tearDownClass(cls):
        cls.secure.destroy()
        cls.etcd.destroy()
        cls.c.destroy()

    def setUp(self):
        self.probes = []
        self.prefix = f"/freeha/{self.id().rsplit('.', 1)[-1]}/"
        self.key = self.prefix + "groups/default/holder"

    def tearDown(self):
        for p in self.probes:
            p.stop()
        for m in self.etcd.members:
            if m.process is None:
                m.start(state="existing")
        self.etcd.wait_for_leader(timeout=30)

    def probe(self, host, endpoints=None):
        p = Probe(PROBE, host.netns, endpoints or self.etcd.endpoints(), self.prefix)
        self.probes.append(p)
        p.wait_for(lambda l: l.get("event") == "lease-granted", 15, "a lease")
        return p

    def lease(self, p):
        """The probe's newest lease, as its lease-granted report names it."""
        return int(p.events("lease-granted")[-1]["detail"])

    def get(self, key):
        """`key` as a running etcd member reads it (None when absent)."""
        return next(m for m in self.etcd.members if m.process is not None).get(key)

    def holds(self, p, since=0):
        """The probe's claim-won report for self.key after `since` (None when none)."""
        return next((l for l in p.read() if l.get("event") == "claim-won" and l["key"] == self.key and l["t"] > since),
                    None)

    def test_a_key_is_held_by_one_probe_and_others_see_who(self):
        a, b = self.probe(self.hosts[0]), self.probe(self.hosts[1])
        a.send(f"claim {self.key} alpha")
        a.wait_for(lambda l: l.get("event") == "claim-won", 5, "alpha's claim")
        b.send(f"claim {self.key} bravo")
        refused = b.wait_for(lambda l: l.get("event") == "claim-refused", 5, "bravo's claim refused")
        self.assertEqual(refused["detail"], "alpha")
        b.wait_for(lambda l: l.get("changed") == self.key and l["value"] == "alpha", 5, "bravo's watch")
        # A release deletes it; everyone's watch sees it go.
        a.send(f"release {self.key}")
        a.wait_for(lambda l: l.get("event") == "released", 5, "alpha's release")
        b.wait_for(lambda l: l.get("changed") == self.key and not l["present"], 5, "the key gone")

    def handover_after(self, cut):
        """alpha holds the key, `cut(alpha)` happens, bravo claims whenever its watch shows the
        key gone: returns (alpha's last lease end, when bravo won)."""
        a, b = self.probe(self.hosts[0]), self.probe(self.hosts[1])
        a.send(f"claim {self.key} alpha")
        a.wait_for(lambda l: l.get("event") == "claim-won", 5, "alpha's claim")
        b.wait_for(lambda l: l.get("changed") == self.key and l["present"], 5, "bravo sees alpha's key")
        time.sleep(0.5)
        last_end = max(l["lease_until"] for l in a.read() if l["lease_until"] is not None)
        cut(a)
        gone = b.wait_for(lambda l: l.get("changed") == self.key and not l["present"], 10, "alpha's key expires")
        b.send(f"claim {self.key} bravo")
        won = b.wait_for(lambda l: l.get("event") == "claim-won", 5, "bravo's claim")
        # alpha's reports after the cut only ever shrink its view: take the latest end it stated.
        ends = [l["lease_until"] for l in a.read() if l["lease_until"] is not None]
        return max([last_end] + ends), gone["t"], won["t"]

    def test_after_a_power_cut_the_key_is_created_again_only_after_the_holders_lease_end(self):
        end, gone, won = self.handover_after(lambda a: a.kill())
        self.assertGreater(gone, end, "the key vanished before the end the holder computed")
        self.assertGreater(won, end)
        # ... and not much later: etcd expires a lease within about half a second of its TTL.
        self.assertLess(won - end, 2_500_000)

    def test_a_holder_cut_off_from_etcd_loses_its_lease_before_anyone_else_holds(self):
        host = self.hosts[0]

        def cut(a):
            host_rules = ("table inet freeha_etcd {\n chain out {\n  type filter hook output priority 0;\n"
                          "  tcp dport 2379 drop\n }\n}\n")
            nodes.sh("ip", "netns", "exec", host.netns, "nft", "-f", "-", input=host_rules)
        try:
            end, gone, won = self.handover_after(cut)
            a = self.probes[0]
            lost = a.wait_for(lambda l: l.get("event") == "lease-lost", 5, "alpha's lease lost")
            self.assertLessEqual(lost["t"], won, "bravo held the key while alpha still counted on its lease")
            self.assertGreater(won, end)
            self.assertTrue(a.events("call-failed"), "the failed keepalives are reported")
        finally:
            nodes.sh("ip", "netns", "exec", host.netns, "nft", "delete", "table", "inet", "freeha_etcd", check=False)

    def test_killing_the_etcd_leader_never_lets_two_hold(self):
        a, b = self.probe(self.hosts[0]), self.probe(self.hosts[1])
        a.send(f"claim {self.key} alpha")
        a.wait_for(lambda l: l.get("event") == "claim-won", 5, "alpha's claim")
        leader = self.etcd.wait_for_leader(timeout=10)
        leader.kill()
        time.sleep(3)
        b.send(f"claim {self.key} bravo")
        outcome = b.wait_for(lambda l: l.get("event") in ("claim-refused", "claim-won"), 10, "bravo's claim answered")
        if outcome["event"] == "claim-won":
            # Only if alpha's lease ran out during the election, and before bravo's win.
            lost = a.events("lease-lost")
            self.assertTrue(lost, "bravo won while alpha kept its lease")
            self.assertLess(lost[0]["t"], outcome["t"])
        else:
            self.assertEqual(outcome["detail"], "alpha")

    def test_without_quorum_the_lease_is_lost_in_time_and_claims_resume_when_it_returns(self):
        a = self.probe(self.hosts[0])
        a.send(f"claim {self.key} alpha")
        a.wait_for(lambda l: l.get("event") == "claim-won", 5, "alpha's claim")
        member = self.prefix + "members/alpha"
        a.send(f"publish {member} up")
        a.wait_for(lambda l: l.get("published") == member and l["value"] == "up", 5, "alpha's record")
        for m in self.etcd.members[1:]:
            m.kill()
        lost = a.wait_for(lambda l: l.get("event") == "lease-lost", 10, "alpha's lease lost without quorum")
        a.wait_for(lambda l: l.get("published") == member and l["value"] is None, 1, "the record gone with it")
        ends = [l["lease_until"] for l in a.read() if l["lease_until"] is not None and l["t"] < lost["t"]]
        self.assertLessEqual(lost["t"], ends[-1] + 100_000, "the lease was dropped well after its end")
        for m in self.etcd.members[1:]:
            m.start(state="existing")
        a.wait_for(lambda l: l.get("event") == "lease-granted" and l["t"] > lost["t"], 30, "a new lease")
        # The new leader gives every lease a whole TTL again: the old key lingers for it.
        a.wait_for(lambda l: l.get("changed") == self.key and not l["present"], 10, "the old lease's key gone")
        a.send(f"claim {self.key} alpha")
        a.wait_for(lambda l: l.get("event") == "claim-won" and l["t"] > lost["t"], 10, "the claim again")
        # The record went on the new lease unasked, and stays when the old one expires.
        a.wait_for(lambda l: l.get("published") == member and l["value"] == "up" and l["t"] > lost["t"], 5,
                   "the record put again on the new lease")
        kv = self.get(member)
        self.assertEqual((kv["value"], kv["lease"]), ("up", self.lease(a)))

    def test_a_record_is_on_the_probes_lease_and_goes_with_it(self):
        a, b = self.probe(self.hosts[0]), self.probe(self.hosts[1])
        member = self.prefix + "members/alpha"
        a.send(f"publish {member} 10.0.0.1")
        a.wait_for(lambda l: l.get("published") == member and l["value"] == "10.0.0.1", 5, "alpha's record")
        kv = self.get(member)
        self.assertEqual((kv["value"], kv["lease"]), ("10.0.0.1", self.lease(a)))
        # A new value replaces it on the same lease; the others' watches see each.
        a.send(f"publish {member} 10.0.0.2")
        a.wait_for(lambda l: l.get("published") == member and l["value"] == "10.0.0.2", 5, "alpha's new record")
        self.assertEqual(self.get(member)["version"], 2)
        b.wait_for(lambda l: l.get("changed") == member and l["value"] == "10.0.0.2", 5, "bravo's watch")
        # Power cut: the record lasts as long as the lease, then goes.
        a.kill()
        killed = time.monotonic_ns() // 1000
        end = max(l["lease_until"] for l in a.read() if l["lease_until"] is not None)
        gone = b.wait_for(lambda l: l.get("changed") == member and not l["present"], 5, "alpha's record expires")
        self.assertGreater(gone["t"], end, "the record vanished before alpha's lease end")
        self.assertLess(gone["t"] - killed, 2_500_000)
        self.assertIsNone(self.get(member))

    def test_the_cluster_mark_is_made_once_without_a_lease(self):
        a, b = self.probe(self.hosts[0]), self.probe(self.hosts[1])
        mark = self.prefix + "cluster"
        a.send(f"mark {mark} alpha")
        made = a.wait_for(lambda l: l.get("event") == "cluster-marked", 5, "alpha's mark")
        self.assertEqual((made["key"], made["detail"]), (mark, "alpha"))
        b.send(f"mark {mark} bravo")
        found = b.wait_for(lambda l: l.get("event") == "cluster-marked", 5, "bravo's mark")
        self.assertEqual((found["key"], found["detail"]), (mark, "alpha"))
        kv = self.get(mark)
        self.assertEqual((kv["value"], kv["lease"], kv["version"]), ("alpha", 0, 1))
        # It outlives the lease of the probe that made it.
        member = self.prefix + "members/alpha"
        a.send(f"publish {member} up")
        b.wait_for(lambda l: l.get("changed") == member and l["present"], 5, "alpha's record")
        a.kill()
        b.wait_for(lambda l: l.get("changed") == member and not l["present"], 5, "alpha's lease expired")
        self.assertEqual(self.get(mark)["value"], "alpha")

    def test_a_dead_first_endpoint_costs_one_failed_call(self):
        endpoints = ["http://10.213.0.254:2379"] + self.etcd.endpoints()
        a = self.probe(self.hosts[0], endpoints)
        failed = a.events("call-failed")
        self.assertEqual(len(failed), 1, failed)
        self.assertIn("grant on http://10.213.0.254:2379: ", failed[0]["detail"])


    def tls_probe(self, ca, cert, key):
        pki = self.secure.pki
        p = Probe(PROBE, self.hosts[2].netns, self.secure.endpoints(), self.prefix,
                  tls=("--ca", pki.path(ca), "--cert", pki.path(cert), "--key", pki.path(key)))
        self.probes.append(p)
        return p

    def test_tls_with_the_clusters_certificates_holds_a_key(self):
        p = self.tls_probe("ca.pem", "client.pem", "client.key")
        p.wait_for(lambda l: l.get("event") == "lease-granted", 15, "a lease over TLS")
        p.send(f"claim {self.key} charlie")
        p.wait_for(lambda l: l.get("event") == "claim-won", 5, "the claim over TLS")
        p.wait_for(lambda l: l.get("changed") == self.key and l["value"] == "charlie", 5, "the watch over TLS")

    def refused(self, ca, cert, key, words):
        p = self.tls_probe(ca, cert, key)
        failed = p.wait_for(lambda l: l.get("event") == "call-failed", 10, "the failed grant")
        self.assertIn(f"grant on {self.secure.endpoints()[0]}: ", failed["detail"])
        self.assertRegex(failed["detail"], words)
        self.assertNotIn("\n", failed["detail"])
        time.sleep(1)
        self.assertFalse(p.events("lease-granted"))

    def test_tls_a_server_certificate_of_another_ca_is_a_clear_error(self):
        self.refused("other-ca.pem", "client.pem", "client.key", "SSL certificate problem")

    def test_tls_a_client_certificate_etcd_does_not_trust_is_refused(self):
        # TLS 1.3: the client hears of the refusal after its handshake, as an alert or as the
        # connection reset, whichever curl reads first.
        self.refused("ca.pem", "stranger.pem", "stranger.key", "(?i)alert|certificate|SSL|reset by peer")


if __name__ == "__main__":
    nodes.main()
