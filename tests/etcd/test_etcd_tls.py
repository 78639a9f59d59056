"""Issue 21, Backend=etcd end to end over TLS: three freehad nodes (namespaced, each under its own
systemd --user, tests/system/nodes.py) of one cluster on a 1-member etcd that speaks HTTPS only
and requires client certificates (tests/lib/etcd.py, its Pki). Each node has the files of the
manual's example in /etc/freeha (etcd-ca.pem, etcd-client.pem, etcd-client.key), and CAFile=,
CertFile=, KeyFile= naming them; what differs is what they hold:
- a: the cluster's CA and a client certificate it signed: a runs the services, its name is the
  group's holder key, and its member record is in etcd;
- b: another CA as CAFile=, which etcd's server certificate does not chain to;
- c: a client certificate signed by a CA etcd does not trust.
b and c never start the services, never count as quorate, and say so: the journal has a
one-line warning per failed call naming the call, the endpoint (its URL) and
curl's reason, and systemctl's status line says "NOT quorate: " and why (no etcd lease). For b
the reason is the TLS problem ("SSL certificate problem: unable to get local issuer
certificate"); for c it is etcd's alert ("alert bad certificate") only when curl reads it before
it finds the connection reset (TLS 1.3), else "Connection reset by peer" or a failed getpeername().
They retry with a backoff, so the warnings come ever more seldom (every few hundred
milliseconds at first, then every 5 s), not at every retry's pace.
Exits 77 (skip) where the machine lacks root, namespaces, systemd or etcd.
"""
import json
import os
import re
import shutil
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "system"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import nodes  # noqa: E402
from etcd import CLIENT_PORT, ETCD, EtcdCluster  # noqa: E402
from test_etcd_cluster import running, starts  # noqa: E402

NAMES = ["a", "b", "c"]
CLUSTER = "etcdtls"
PREFIX = f"/freeha/{CLUSTER}/"
# The etcd member is the bridge's first client (EtcdCluster: SUBNET.200).
ENDPOINT = f"https://{nodes.SUBNET}.200:{CLIENT_PORT}"
# What each node's /etc/freeha/etcd-{ca.pem,client.pem,client.key} hold, from the Pki.
FILES = {"a": ("ca.pem", "client.pem", "client.key"),
         "b": ("other-ca.pem", "client.pem", "client.key"),
         "c": ("ca.pem", "stranger.pem", "stranger.key")}
# Long enough for the backoff to reach its ceiling (5 s, etcd::Session::kMaxBackoff) a first time.
BACKOFF_SEEN = 9.0


def config(node):
    return (f"[Cluster]\nName={CLUSTER}\nNodeName={node.name}\nBackend=etcd\n"
            f"[Etcd]\nEndpoints={ENDPOINT}\nCAFile=/etc/freeha/etcd-ca.pem\n"
            f"CertFile=/etc/freeha/etcd-client.pem\nKeyFile=/etc/freeha/etcd-client.key\n")


class EtcdTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = nodes.Cluster(NAMES, config)
        cls.etcd = None

        def set_up():
            cls.etcd = EtcdCluster(cls.c, count=1, tls=True)
            assert cls.etcd.endpoints() == [ENDPOINT], cls.etcd.endpoints()
            for name, files in FILES.items():
                for source, target in zip(files, ("etcd-ca.pem", "etcd-client.pem", "etcd-client.key")):
                    shutil.copy(cls.etcd.pki.path(source), cls.c[name].etc(target))
            nodes.start_all(cls.c)
            cls.c.wait_for(lambda: running(cls.c) == ["a"], 30, "a RUNNING")
        try:
            nodes.set_up_or_destroy(cls.c, set_up)
        except BaseException:
            if cls.etcd is not None:
                cls.etcd.destroy()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()
        cls.etcd.destroy()

    def get(self, key):
        kv = self.etcd.members[0].get(key)
        return kv["value"] if kv else None

    def warnings(self, node):
        """freehad's journal entries that mention etcd: [(realtime seconds, message)]."""
        r = node.run("journalctl", "--user-unit", "freehad", "-o", "json", "--no-pager", check=True)
        entries = [json.loads(line) for line in r.stdout.splitlines()]
        return [(int(e["__REALTIME_TIMESTAMP"]) / 1e6, e["MESSAGE"]) for e in entries
                if isinstance(e.get("MESSAGE"), str) and e["MESSAGE"].startswith("etcd")]

    def test_1_the_node_with_the_clusters_certificates_runs_the_services(self):
        self.assertEqual(self.get(PREFIX + "groups/default/holder"), "a")
        self.assertTrue(self.get(PREFIX + "members/a"), "a's member record")
        self.assertEqual(self.get(PREFIX + "cluster"), CLUSTER)
        self.assertEqual(self.get(PREFIX + "members/b"), None)
        self.assertEqual(self.get(PREFIX + "members/c"), None)
        self.assertIn(", quorate", self.c["a"].show("freehad", "StatusText"))

    def refused(self, name, problem):
        """The node runs (its unit active), has started nothing, is not quorate, and its journal
        says why in one line per failed call, ever more seldom; returns its grant warnings."""
        node = self.c[name]
        self.assertEqual(node.show("freehad", "ActiveState"), "active")
        self.assertEqual(starts(node), [])
        self.assertNotEqual(node.prop("State"), "RUNNING")
        self.assertIs(node.prop("Quorate"), False)
        status = node.show("freehad", "StatusText")
        self.assertIn("NOT quorate: ", status)
        self.assertIn("etcd", status.split("NOT quorate: ", 1)[1])
        # Every call fails alike: the grant of its lease, the cluster's mark, the watch's read.
        self.c.wait_for(lambda: any(f"grant on {ENDPOINT}: " in m for _, m in self.warnings(node)), 10,
                        f"{name}'s failed grant in the journal")
        first = min(t for t, m in self.warnings(node) if f"grant on {ENDPOINT}: " in m)
        self.c.wait_for(lambda: time.time() > first + BACKOFF_SEEN, BACKOFF_SEEN + 1, "the backoff")
        warnings = self.warnings(node)
        grants = [(t, m) for t, m in warnings if f"grant on {ENDPOINT}: " in m]
        for _, m in grants:
            self.assertRegex(m, "^etcd: grant on " + re.escape(ENDPOINT) + ": ")
            self.assertRegex(m, problem, warnings)
            self.assertNotIn("\n", m)
        for _, m in warnings:
            self.assertNotIn("\n", m)
        # Retries back off: a few lines in the first seconds, then one per 5 s ceiling.
        times = [t for t, _ in grants]
        self.assertLessEqual(len(times), 6, grants)
        self.assertGreater(times[-1] - times[-2], 2.0, grants)
        self.assertEqual(starts(node), [])
        self.assertEqual(running(self.c), ["a"])
        return grants

    def test_2_another_ca_as_cafile_is_refused_with_a_clear_error(self):
        for _, m in self.refused("b", "SSL certificate problem"):
            self.assertNotIn("client certificate", m)  # curl's own words say it all

    def test_3_a_client_certificate_etcd_does_not_trust_is_refused(self):
        # TLS 1.3: etcd checks the client's certificate after the client has finished its
        # handshake, and curl, which sends its request at once, hears of the refusal as the
        # alert, or as the connection reset or already gone, whichever it meets first: only
        # the first names the certificate, so freehad says what the others most likely mean.
        grants = self.refused("c", r"alert bad certificate|Send failure: Connection reset by peer|"
                                   r"getpeername\(\) failed with errno 107")
        hinted = [m for _, m in grants if "alert bad certificate" in m or "reset by peer" in m]
        self.assertTrue(hinted, grants)
        for m in hinted:
            self.assertTrue(m.endswith(" (the connection ended before any answer: if this goes on, does etcd "
                                       "trust the client certificate /etc/freeha/etcd-client.pem?)"), m)


if __name__ == "__main__":
    nodes.main(also_missing=None if os.access(ETCD, os.X_OK) else f"{ETCD} is missing (etcd-server)")
