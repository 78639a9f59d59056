"""The org.freeha1 API against private dbus-daemons: properties, signals,
method effects through freehactl, access control, and bus failures.

Each node of a loopback cluster gets a bus of its own (one org.freeha1 per
bus, as on real machines). Needs dbus-daemon; the non-root caller checks
need root (setpriv) and skip otherwise.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "process"))
from harness import (FREEHACTL, HUNG_POLICY, RAW_DBUS_CLIENT, SYSTEM_POLICY, Cluster, PrivateBus,  # noqa: E402
                     cpu_seconds, send_udp)

POLICY_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../units/org.freeha1.conf")
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def busctl(bus, *args, user=None):
    return subprocess.run([*(user or []), "busctl", f"--address={bus.address}", *args],
                          capture_output=True, text=True, timeout=10)


def prop(bus, name, path="/org/freeha1", interface="org.freeha1.Manager"):
    r = busctl(bus, "--json=short", "get-property", "org.freeha1", path, interface, name)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)["data"]


def ctl(bus, *args, timeout=60):
    return subprocess.run([FREEHACTL, *args], capture_output=True, text=True, timeout=timeout, env=bus.env())


class BusCluster(unittest.TestCase):
    """Three nodes, each serving org.freeha1 on its own private bus."""

    def setUp(self):
        self.c = Cluster(["alpha", "bravo", "charlie"])
        self.bus = {n: PrivateBus() for n in self.c.names}
        for name in reversed(self.c.names):
            self.c.start(name, bus=self.bus[name])
        self.c.wait_for(lambda: prop(self.bus["alpha"], "State") == "RUNNING", 15, "alpha RUNNING on D-Bus")
        self.c.wait_for(lambda: all(prop(self.bus[n], "ActiveNode") == "alpha" for n in self.c.names), 5,
                        "every node to see alpha active")

    def tearDown(self):
        self.c.stop_all()
        for b in self.bus.values():
            b.stop()

    def test_manager_properties_describe_the_cluster(self):
        b = self.bus["bravo"]
        self.assertEqual(prop(b, "NodeName"), "bravo")
        self.assertEqual(prop(b, "State"), "STANDBY")
        self.assertEqual(prop(b, "Role"), "member")
        self.assertTrue(prop(b, "Quorate"))
        self.assertEqual(prop(b, "ExpectedNodes"), 3)
        self.assertEqual(prop(b, "Mode"), "scripts")
        self.assertEqual(prop(b, "ServicesTarget"), "")
        self.assertFalse(prop(b, "Errored"))
        self.assertGreaterEqual(prop(self.bus["alpha"], "Term"), 1)
        self.assertEqual(sorted(n[0] for n in prop(b, "Nodes")), ["alpha", "bravo", "charlie"])
        self.assertEqual(prop(b, "Addresses"), [])  # no Address=
        listed = json.loads(busctl(b, "--json=short", "call", "org.freeha1", "/org/freeha1",
                                   "org.freeha1.Manager", "ListNodes").stdout)["data"][0]
        alpha = next(n for n in listed if n[0] == "alpha")
        self.assertEqual(alpha[1:4], ["RUNNING", "member", True])
        self.assertLess(alpha[4], 1_000_000)  # heard within the dead time
        packets = dict(prop(b, "Packets"))
        self.assertGreater(packets["accepted"], 0)
        self.assertEqual(packets["bad_signature"], 0)
        self.assertIn("malformed_bad_magic", packets)

    def test_metrics_over_http_are_the_metrics_of_freehactl(self):
        """freehactl metrics --http, as freeha-metrics@.service runs it, against a live daemon."""
        took, status, headers, body, code, err = scrape(self.bus["bravo"])
        self.assertEqual((status, code), (200, 0), err)
        self.assertEqual(headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        self.assertEqual(headers["Connection"], "close")
        self.assertEqual(int(headers["Content-Length"]), len(body.encode()))
        for line in ("freeha_up 1", 'freeha_node_active{node="alpha"} 1', 'freeha_node_active{node="bravo"} 0',
                     'freeha_state{state="STANDBY"} 1'):
            self.assertIn(line, body.splitlines())
        # The same families as `freehactl metrics` (their values move with the heartbeats).
        plain = ctl(self.bus["bravo"], "metrics").stdout
        self.assertEqual([line for line in body.splitlines() if line.startswith("# ")],
                         [line for line in plain.splitlines() if line.startswith("# ")])
        took, status, headers, body, code, err = scrape(self.bus["bravo"], "HEAD /metrics HTTP/1.0\r\n\r\n")
        self.assertEqual((status, body), (200, ""))
        self.assertGreater(int(headers["Content-Length"]), 1000)

    def test_node_objects_show_each_node_and_its_channels(self):
        b = self.bus["bravo"]
        tree = busctl(b, "tree", "--list", "org.freeha1").stdout.split()
        for n in self.c.names:
            self.assertIn(f"/org/freeha1/node/{n}", tree)
        path = "/org/freeha1/node/alpha"
        self.assertEqual(prop(b, "Name", path, "org.freeha1.Node"), "alpha")
        self.assertEqual(prop(b, "State", path, "org.freeha1.Node"), "RUNNING")
        self.assertTrue(prop(b, "Reachable", path, "org.freeha1.Node"))
        self.assertLess(prop(b, "LastHeardUSec", path, "org.freeha1.Node"), 1_000_000)
        channels = prop(b, "Channels", path, "org.freeha1.Node")
        self.assertEqual(len(channels), 1)
        self.assertTrue(channels[0][0].startswith("unicast 127.0.0.2"))
        self.assertTrue(channels[0][1])  # healthy: heard within the dead time
        # One link per channel (name, received, lost, recent loss ratio, lossy): a clean loopback loses nothing.
        links = prop(b, "Links", path, "org.freeha1.Node")
        self.assertEqual([link[0] for link in links], [channels[0][0]])
        self.assertEqual(links[0][2:], [0, 0.0, False])

    def test_failover_emits_properties_changed_on_the_survivors(self):
        b = self.bus["bravo"]
        monitor = subprocess.Popen(["busctl", f"--address={b.address}", "--json=short", "monitor", "org.freeha1"],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(0.5)
        self.c["alpha"].proc.kill()
        self.c.wait_for(lambda: prop(b, "State") == "RUNNING", 15, "bravo to take over")
        time.sleep(0.5)
        monitor.terminate()
        out, _ = monitor.communicate(timeout=5)
        signals = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        changes = [s for s in signals if s.get("member") == "PropertiesChanged"]
        manager = [s["payload"]["data"][1] for s in changes if s["path"] == "/org/freeha1"]
        states = [c["State"]["data"] for c in manager if "State" in c]
        self.assertEqual(states[-2:], ["STARTING", "RUNNING"], manager)
        self.assertIn("bravo", [c["ActiveNode"]["data"] for c in manager if "ActiveNode" in c])
        alpha = [s["payload"]["data"][1] for s in changes if s["path"] == "/org/freeha1/node/alpha"]
        self.assertIn({"type": "b", "data": False}, [c.get("Reachable") for c in alpha])
        self.assertIn("TIMEDOUT", [c["State"]["data"] for c in alpha if "State" in c])
        # Coalesced: no two consecutive signals for one object carry the same values.
        for path in {s["path"] for s in changes}:
            seq = [json.dumps(s["payload"], sort_keys=True) for s in changes if s["path"] == path]
            for a, z in zip(seq, seq[1:]):
                self.assertNotEqual(a, z, path)

    def test_standby_and_switchover_move_the_services_and_wait_for_them(self):
        r = ctl(self.bus["alpha"], "standby")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("active node: bravo", r.stdout)
        self.assertTrue(prop(self.bus["alpha"], "Standby"))
        self.assertEqual(self.c.running(), ["bravo"])
        r = ctl(self.bus["bravo"], "switchover", "charlie")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("the services run on charlie", r.stdout)
        self.assertEqual(self.c.running(), ["charlie"])
        r = ctl(self.bus["alpha"], "unstandby")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(prop(self.bus["alpha"], "Standby"))
        time.sleep(1)
        self.assertEqual(self.c.running(), ["charlie"])  # no take-back
        r = ctl(self.bus["charlie"], "switchover")  # to the next eligible node: alpha
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.c.running(), ["alpha"])

    def test_a_standby_outlives_a_restart_of_freehad(self):
        r = ctl(self.bus["alpha"], "standby")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.c.running(), ["bravo"])
        self.c["alpha"].proc.terminate()
        self.c["alpha"].proc.wait(30)
        self.c.start("alpha", bus=self.bus["alpha"])
        self.c.wait_for(lambda: prop(self.bus["alpha"], "State") == "STANDBY", 15, "alpha back in STANDBY")
        self.assertTrue(prop(self.bus["alpha"], "Standby"))
        self.assertIn("staying in standby, as requested before the restart", self.c["alpha"].log())
        time.sleep(1)
        self.assertEqual(self.c.running(), ["bravo"])  # alpha, first by name, did not take over
        r = ctl(self.bus["alpha"], "unstandby")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(self.c["alpha"].path("state/standby")))

    def test_refused_switchover_says_why_and_exits_1(self):
        r = ctl(self.bus["bravo"], "switchover", "charlie")
        self.assertEqual(r.returncode, 1)
        self.assertIn("does not run the services (active node: alpha)", r.stderr)
        r = ctl(self.bus["alpha"], "switchover", "zulu")
        self.assertEqual(r.returncode, 1)
        self.assertIn("zulu is not a reachable node", r.stderr)
        self.assertEqual(self.c.running(), ["alpha"])

    def test_stop_force_start_and_clear_error(self):
        alpha = self.c["alpha"]
        alpha.touch("monitor-fail")
        self.c.wait_for(lambda: prop(self.bus["alpha"], "Errored"), 10, "alpha ERRORED")
        self.c.wait_for(lambda: self.c.running() == ["bravo"], 10, "bravo to take over")
        self.assertIn("monitorhasrv", prop(self.bus["alpha"], "LastError"))
        alpha.remove("monitor-fail")
        r = ctl(self.bus["alpha"], "clear-error")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(prop(self.bus["alpha"], "State"), "STANDBY")
        r = ctl(self.bus["bravo"], "stop")  # FreeHA's HUP: alpha is first, and eligible again
        self.assertEqual(r.returncode, 0, r.stderr)
        self.c.wait_for(lambda: self.c.running() == ["alpha"], 10, "alpha to take over")
        r = ctl(self.bus["charlie"], "force-start")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.c.wait_for(lambda: self.c.running() == ["charlie"], 10, "alpha to step down for the forced charlie")

    def test_reload_config_applies_timings_and_refuses_identity_changes(self):
        node = self.c["bravo"]
        with open(node.path("freehad.conf"), "a") as f:
            f.write("[Cluster]\nExpectedNodes=7\n")
        r = ctl(self.bus["bravo"], "reload-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(prop(self.bus["bravo"], "ExpectedNodes"), 7)
        self.assertFalse(prop(self.bus["bravo"], "Quorate"))  # 3 of 7, 4 needed
        with open(node.path("freehad.conf"), "a") as f:
            f.write("[Cluster]\nName=elsewhere\n")
        r = ctl(self.bus["bravo"], "reload-config")
        self.assertEqual(r.returncode, 1)
        self.assertIn("Name= cannot change while freehad runs", r.stderr)
        self.assertIn("freehad.conf:", r.stderr)  # names the file and line
        self.assertEqual(prop(self.bus["bravo"], "ClusterName"), f"proc{self.c.port}")

    def test_reload_config_refuses_a_bad_address_naming_file_and_line(self):
        conf = self.c["bravo"].path("freehad.conf")
        with open(conf) as f:
            line = len(f.read().splitlines()) + 2
        with open(conf, "a") as f:
            f.write("[Cluster]\nExpectedNodes=5\n[Services]\nAddress=192.0.2.10/24 eth0\nAddress=192.0.2.10 eth0\n")
        r = ctl(self.bus["bravo"], "reload-config")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, f"freehactl: configuration not reloaded: {conf}:{line + 3}: [Services] "
                                   f"Address=192.0.2.10 eth0: '192.0.2.10' has no prefix length: write "
                                   f"ADDRESS/PREFIX, e.g. 192.0.2.10/24\n")
        self.assertEqual(prop(self.bus["bravo"], "ExpectedNodes"), 3)  # the running configuration stays

    def test_reload_config_refuses_an_edit_that_a_flag_overrides(self):
        self.c["bravo"].proc.terminate()
        self.c["bravo"].proc.wait(30)
        self.c.start("bravo", "-n", "3", bus=self.bus["bravo"])
        self.c.wait_for(lambda: prop(self.bus["bravo"], "State") == "STANDBY", 15, "bravo back with -n 3")
        with open(self.c["bravo"].path("freehad.conf"), "a") as f:
            f.write("[Cluster]\nExpectedNodes=5\n")
        r = ctl(self.bus["bravo"], "reload-config")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"freehad.conf:\d+: ExpectedNodes=5 has no effect: the command-line flag -n "
                                   r"keeps it at 3; remove the flag")
        self.assertEqual(prop(self.bus["bravo"], "ExpectedNodes"), 3)

    def test_status_human_and_json(self):
        r = ctl(self.bus["bravo"], "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Active node: alpha", r.stdout)
        self.assertIn("Quorum: yes (3 of 3 nodes reachable)", r.stdout)
        self.assertRegex(r.stdout, r"alpha \*\s+RUNNING\s+member\s+yes")
        self.assertRegex(r.stdout, r"NODE\s+STATE\s+ROLE\s+REACHABLE\s+VERSION\s+LOSS\s+LAST HEARD")
        self.assertRegex(r.stdout, r"alpha \*\s+RUNNING\s+member\s+yes\s+\S+\s+(-|0%)\s")
        self.assertRegex(r.stdout, r"Packets: \d+ accepted; dropped: none")
        send_udp("127.0.0.2", self.c.port, b"junk" * 16)  # header-sized, wrong magic
        self.c.wait_for(lambda: "1 malformed_bad_magic" in ctl(self.bus["bravo"], "status").stdout, 5,
                        "the junk datagram counted")
        doc = json.loads(ctl(self.bus["bravo"], "status", "--json").stdout)
        self.assertEqual((doc["schema_version"], doc["node"], doc["active_node"]), (1, "bravo", "alpha"))
        self.assertEqual(len(doc["nodes"]), 3)
        self.assertEqual(doc["addresses"], [])  # no Address=: an empty list, and no Address: line
        self.assertNotIn("Address:", r.stdout)
        self.assertEqual(doc["packets"]["malformed"]["bad_magic"], 1)
        # One schema, one builder: the same document as the status file, field for field.
        with open(self.c["bravo"].path("status.json")) as f:
            on_disk = json.load(f)
        self.assertEqual(sorted(doc), sorted(on_disk))
        self.assertEqual(sorted(doc["nodes"][0]), sorted(on_disk["nodes"][0]))
        for key in ("term", "standby", "errored", "self", "channels"):
            self.assertIn(key, doc["nodes"][0])
        self.assertIn("updated_realtime_usec", doc)
        # Every key of the document is documented in freeha-status(5), as *key*.
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "man", "freeha-status.5.scd")) as f:
            page = f.read()
        def keys(value):
            if isinstance(value, dict):
                for k, v in value.items():
                    yield k
                    yield from keys(v)
            elif isinstance(value, list):
                for v in value:
                    yield from keys(v)
        undocumented = sorted({k for k in keys(doc) if f"*{k}*" not in page})
        self.assertEqual(undocumented, [], "keys missing from man/freeha-status.5.scd")
        # freehactl's Term and D-Bus agree, and a standby shows the cluster's term, not 0.
        term = prop(self.bus["bravo"], "Term")
        self.assertGreaterEqual(term, 1)
        self.assertEqual(doc["term"], term)
        self.assertIn(f"Term: {term}", ctl(self.bus["bravo"], "status").stdout)
        self.assertEqual(term, prop(self.bus["alpha"], "Term"))

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"), "needs root and setpriv")
    def test_a_non_root_caller_reads_but_cannot_change_anything(self):
        b = self.bus["alpha"]
        r = busctl(b, "get-property", "org.freeha1", "/org/freeha1", "org.freeha1.Manager", "State", user=NOBODY)
        self.assertEqual(r.stdout.strip(), 's "RUNNING"', r.stderr)
        for call in (["Stop"], ["ForceStart"], ["ClearError"], ["SetStandby", "b", "true"],
                     ["Switchover", "s", "bravo"], ["ReloadConfig"]):
            r = busctl(b, "--json=short", "call", "org.freeha1", "/org/freeha1", "org.freeha1.Manager", call[0],
                       *call[1:], user=NOBODY)
            self.assertNotEqual(r.returncode, 0, call)
            self.assertIn("Access denied", r.stderr, call)
        r = subprocess.run([*NOBODY, FREEHACTL, "stop"], capture_output=True, text=True, env=b.env(), timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("Stop changes the cluster and requires root", r.stderr)
        self.assertEqual(prop(b, "State"), "RUNNING")


class BusGroups(unittest.TestCase):
    """Two nodes, two service groups (the default one and "web", one on each
    node), each node serving org.freeha1 on its own bus."""

    GROUP = "org.freeha1.Group"
    WEB = "/org/freeha1/group/web"

    def setUp(self):
        self.c = Cluster(["alpha", "bravo"])
        for node in self.c.nodes.values():
            shutil.copytree(node.path("hooks"), node.path("web/hooks"))
            node.settings = f"[Group web]\nHooksDirectory={node.path('web/hooks')}\nMonitorInterval=1s\n"
        self.bus = {n: PrivateBus() for n in self.c.names}
        for b in self.bus.values():
            self.addCleanup(b.stop)
        self.addCleanup(self.c.stop_all)  # also when setUp fails: cleanups run last-in first-out
        for name in reversed(self.c.names):
            self.c.start(name, bus=self.bus[name])
        self.c.wait_for(lambda: sorted(self.running().values()) == ["alpha", "bravo"] and self.settled(), 20,
                        "one group on each node, seen so by both")

    def settled(self):
        """Every node sees each group RUNNING on the node whose hooks started it."""
        running = self.running()
        for node in self.c.nodes.values():
            doc = json.loads(ctl(self.bus[node.name], "status", "--json").stdout or "{}")
            for g in doc.get("groups", []):
                rows = {n["name"]: n["state"] for n in g["nodes"]}
                if g["active_node"] != running.get(g["name"]) or rows.get(g["active_node"]) != "RUNNING":
                    return False
        return True

    def running(self):
        """Group -> the node whose hooks started it (services-up in the group's directory)."""
        out = {}
        for node in self.c.nodes.values():
            if os.path.exists(node.path("services-up")):
                out["default"] = node.name
            if os.path.exists(node.path("web/services-up")):
                out["web"] = node.name
        return out

    def test_group_objects_status_switchover_rebalance_and_metrics(self):
        web_on = self.running()["web"]
        other = "alpha" if web_on == "bravo" else "bravo"
        b = self.bus[other]
        tree = busctl(b, "tree", "--list", "org.freeha1").stdout.split()
        self.assertIn("/org/freeha1/group/default", tree)
        self.assertIn(self.WEB, tree)
        self.assertEqual(prop(b, "Name", self.WEB, self.GROUP), "web")
        self.assertEqual(prop(b, "ActiveNode", self.WEB, self.GROUP), web_on)
        self.assertEqual(prop(b, "State", self.WEB, self.GROUP), "STANDBY")
        self.assertEqual(prop(self.bus[web_on], "State", self.WEB, self.GROUP), "RUNNING")
        self.assertEqual(prop(b, "ActiveNode", "/org/freeha1/group/default", self.GROUP), other)
        self.assertEqual(prop(b, "ActiveNode"), other)  # the Manager's is the default group's

        status = ctl(b, "status").stdout
        self.assertRegex(status, r"\nGROUP\s+ACTIVE\s+TERM\s+LEASE\s+alpha\s+bravo\n")
        cells = {"alpha": "RUNNING" if web_on == "alpha" else "STANDBY",
                 "bravo": "RUNNING" if web_on == "bravo" else "STANDBY"}
        self.assertRegex(status, rf"\nweb\s+{web_on}\s+\d+\s+\S+\s+{cells['alpha']}\s+{cells['bravo']}\n")
        doc = json.loads(ctl(b, "status", "--json").stdout)
        self.assertEqual([g["name"] for g in doc["groups"]], ["default", "web"])
        self.assertEqual(doc["rebalance"], [])

        # Bad names: one line each, nothing asked of freehad.
        r = ctl(self.bus[web_on], "switchover", "mail", other)
        self.assertEqual((r.returncode, r.stderr), (1, "freehactl: switchover: no group 'mail' (groups: default, web)\n"))
        r = ctl(self.bus[web_on], "switchover", "web", "zulu")
        self.assertEqual((r.returncode, r.stderr),
                         (1, "freehactl: switchover: no node 'zulu' in this cluster (nodes: alpha, bravo)\n"))
        r = ctl(b, "switchover", "web", web_on)
        self.assertEqual(r.returncode, 1)
        self.assertIn("switchover of group web refused: this node does not run the services", r.stderr)

        r = ctl(self.bus[web_on], "switchover", "web", other)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"group web switched over; it runs on {other}", r.stdout)
        self.assertEqual(self.running(), {"default": other, "web": other})  # the default group did not move
        self.c.wait_for(self.settled, 5, "both nodes to see web on " + other)
        self.assertEqual(prop(b, "State", self.WEB, self.GROUP), "RUNNING")
        metrics = ctl(b, "metrics").stdout.splitlines()
        self.assertIn(f'freeha_group_active{{group="web",node="{other}"}} 1', metrics)
        self.assertIn('freeha_group_state{group="web",state="RUNNING"} 1', metrics)
        self.c.wait_for(lambda: "freeha_rebalance_moves 1" in ctl(b, "metrics").stdout, 5, "the uneven spread planned")
        self.assertIn("Spread uneven: 1 planned switchover(s)", ctl(b, "status").stdout)

        # Only the node running the groups can move them.
        r = ctl(self.bus[web_on], "rebalance")
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"1 move(s) left that only {other} can make (run freehactl rebalance there)", r.stderr)
        r = ctl(b, "rebalance")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("rebalance done: the spread is even (1 group(s) moved from this node)", r.stdout)
        self.assertEqual(sorted(self.running().values()), ["alpha", "bravo"])
        self.c.wait_for(self.settled, 5, "both nodes to see the groups spread")
        self.assertEqual(json.loads(ctl(b, "status", "--json").stdout)["rebalance"], [])


class BusFailures(unittest.TestCase):
    def setUp(self):
        # Only alpha runs; bravo is there to give the unicast channel a peer.
        self.c = Cluster(["alpha", "bravo"], expected=1)
        self.bus = PrivateBus()

    def tearDown(self):
        self.c.stop_all()
        self.bus.stop()

    def test_a_second_daemon_on_the_same_bus_fails_loudly(self):
        self.c.start("alpha", bus=self.bus)
        self.c.wait_for(lambda: prop(self.bus, "State") == "RUNNING", 10, "alpha RUNNING")
        other = Cluster(["alpha", "bravo"], expected=1)
        node = other.start("alpha", bus=self.bus)
        self.assertEqual(node.proc.wait(timeout=10), 1)
        self.assertIn("the bus name org.freeha1 is already owned on the system bus", node.log())
        self.assertEqual(prop(self.bus, "State"), "RUNNING")

    def test_a_lost_bus_costs_only_the_api_until_it_comes_back(self):
        node = self.c.start("alpha", bus=self.bus)
        self.c.wait_for(lambda: prop(self.bus, "State") == "RUNNING", 10, "alpha RUNNING on D-Bus")
        stops = len(node.events("stophasrv"))
        self.bus.stop()  # a dbus restart, or a dbus-broker upgrade
        time.sleep(2)
        self.assertIsNone(node.proc.poll(), "freehad exited when the bus went away")
        self.assertEqual(node.state(), "RUNNING")
        self.assertEqual(len(node.events("stophasrv")), stops, "the services were stopped for nothing")
        self.bus.start()
        self.c.wait_for(lambda: prop(self.bus, "State") == "RUNNING", 10, "the API back on the new bus")
        self.assertEqual(ctl(self.bus, "status").returncode, 0)
        log = node.log()
        # Once, as a warning: the API's (the shutdown watch's own line is at info).
        self.assertEqual(log.count("<4>lost the connection to the system bus"), 1, log)
        self.assertIn("the system bus answers again after", log)
        self.assertEqual(len(node.events("stophasrv")), stops)

    def test_without_any_bus_the_services_run_and_the_bus_is_retried(self):
        address = os.path.join(self.bus.dir, "later")
        node = self.c.start("alpha", bus=type("B", (), {"address": f"unix:path={address}"})())
        self.c.wait_for(lambda: node.state() == "RUNNING", 10, "alpha RUNNING without a bus")
        time.sleep(1.5)  # several retries
        log = node.log()
        # An outage is logged once as a warning: the API's (the shutdown watch's own line is at info).
        self.assertEqual(log.count("<4>cannot connect to the system bus"), 1, log)
        os.symlink(self.bus.socket_path, address)  # the bus appears
        later = type("B", (), {"address": f"unix:path={address}"})()
        self.c.wait_for(lambda: prop(later, "State") == "RUNNING", 10, "the API once the bus exists")

    def test_a_bus_that_never_answers_costs_no_cpu_and_sigterm_exits_promptly(self):
        hung = PrivateBus(HUNG_POLICY)
        try:
            node = self.c.start("alpha", bus=hung)
            self.c.wait_for(lambda: node.state() == "RUNNING", 10, "alpha RUNNING beside a hung bus")
            before = cpu_seconds(node.proc.pid)
            time.sleep(3)
            used = cpu_seconds(node.proc.pid) - before
            self.assertLess(used, 0.3, f"freehad used {used:.2f}s of CPU in 3s beside a hung bus")
            node.signal(signal.SIGTERM)
            took = time.monotonic()
            self.assertEqual(node.proc.wait(timeout=10), 0)
            self.assertLess(time.monotonic() - took, 3)
            self.assertFalse(os.path.exists(node.path("services-up")))
        finally:
            hung.stop()

    def test_a_socket_that_accepts_and_never_answers(self):
        path = os.path.join(self.bus.dir, "silent")
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.bind(path)
        silent.listen(16)  # never accepted, never read: not even authentication happens
        try:
            node = self.c.start("alpha", bus=type("B", (), {"address": f"unix:path={path}"})())
            self.c.wait_for(lambda: node.state() == "RUNNING", 10, "alpha RUNNING beside a silent socket")
            before = cpu_seconds(node.proc.pid)
            time.sleep(3)
            self.assertLess(cpu_seconds(node.proc.pid) - before, 0.3)
            node.signal(signal.SIGTERM)
            self.assertEqual(node.proc.wait(timeout=10), 0)
        finally:
            silent.close()

    def test_sigterm_before_the_bus_answers_in_target_mode_exits_at_once(self):
        hung = PrivateBus(HUNG_POLICY)
        try:
            self.c.settings = "[Services]\nTarget=freeha-services.target\n"
            node = self.c.start("alpha", bus=hung)
            time.sleep(1)
            self.assertIsNone(node.proc.poll())
            self.assertIn(node.state(), (None, "INITIAL"))  # not started: it waits for the bus
            before = cpu_seconds(node.proc.pid)
            time.sleep(2)
            self.assertLess(cpu_seconds(node.proc.pid) - before, 0.3)
            node.signal(signal.SIGTERM)
            self.assertEqual(node.proc.wait(timeout=5), 0)
            self.assertIn("before start-up: exiting", node.log())
        finally:
            hung.stop()

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"), "needs root and setpriv")
    def test_the_shipped_policy_lets_root_own_and_call_and_others_only_read(self):
        bus = PrivateBus(SYSTEM_POLICY.format(policy_file=POLICY_FILE))
        try:
            self.c.start("alpha", bus=bus)
            self.c.wait_for(lambda: prop(bus, "State") == "RUNNING", 10, "alpha RUNNING under the policy")
            r = busctl(bus, "get-property", "org.freeha1", "/org/freeha1", "org.freeha1.Manager", "State",
                       user=NOBODY)
            self.assertEqual(r.stdout.strip(), 's "RUNNING"', r.stderr)
            r = busctl(bus, "call", "org.freeha1", "/org/freeha1", "org.freeha1.Manager", "ListNodes", user=NOBODY)
            self.assertEqual(r.returncode, 0, r.stderr)
            r = busctl(bus, "call", "org.freeha1", "/org/freeha1", "org.freeha1.Manager", "Stop", user=NOBODY)
            self.assertIn("Access denied", r.stderr)
            self.assertEqual(prop(bus, "State"), "RUNNING")
            # freehactl turns dbus-daemon's page of match rules into one line.
            r = subprocess.run([*NOBODY, FREEHACTL, "stop"], capture_output=True, text=True, env=bus.env(),
                               timeout=10)
            self.assertEqual(r.returncode, 1)
            self.assertEqual(r.stderr.strip(),
                             "freehactl: Stop changes the cluster and requires root (refused by the D-Bus policy)")
            r = ctl(bus, "stop")
            self.assertEqual(r.returncode, 0, r.stderr)
            # A non-root daemon may not own the name (an arbitrator: it needs no hooks).
            home = tempfile.mkdtemp(prefix="freeha-nobody-")
            os.chmod(home, 0o777)
            conf = os.path.join(home, "freehad.conf")
            with open(conf, "w") as f:
                f.write(f"[Cluster]\nNodeName=zulu\nRole=arbitrator\nExpectedNodes=1\n"
                        f"[Heartbeat]\nPort={self.c.port + 1}\nChannel=unicast 127.0.0.9 127.0.0.10\n"
                        f"[Status]\nJSONFile={home}/status.json\n")
            os.chmod(conf, 0o644)
            p = subprocess.run([*NOBODY, self.c["alpha"].proc.args[0], "--config", conf], env=bus.env(),
                               capture_output=True, text=True, timeout=10)
            shutil.rmtree(home)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("cannot own the bus name org.freeha1", p.stderr)
        finally:
            bus.stop()


class UnitControlPolicy(unittest.TestCase):
    """Target mode drives systemd over a connection on the daemon's loop, which
    must read any message sent to it whole before it can drop it. Debian's
    default policy lets anyone send signals, unicast ones too, to any
    connection: so that connection owns org.freeha1.UnitControl, and the
    policy file refuses everything sent to it by anyone but root."""

    def test_nobody_cannot_send_the_unit_control_connection_anything_root_can(self):
        if os.geteuid() != 0:
            self.skipTest("needs root (setpriv)")
        bus = PrivateBus(SYSTEM_POLICY.format(policy_file=POLICY_FILE))
        owner = None
        try:
            owner = subprocess.Popen(["python3", "-c", RAW_DBUS_CLIENT, bus.address, "own", "org.freeha1.UnitControl",
                                      "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.assertEqual(owner.stdout.readline().strip(), "owned", owner.stderr.read() if owner.poll() else "")
            r = busctl(bus, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                       "GetNameOwner", "s", "org.freeha1.UnitControl")
            unique = r.stdout.split('"')[1]
            for destination in ("org.freeha1.UnitControl", unique):
                r = subprocess.run([*NOBODY, "python3", "-c", RAW_DBUS_CLIENT, bus.address, "signal", destination,
                                    str(30 * 1000 * 1000)], capture_output=True, text=True, timeout=60)
                self.assertTrue(r.stdout.startswith("refused"), (destination, r.stdout, r.stderr))
            r = subprocess.run(["python3", "-c", RAW_DBUS_CLIENT, bus.address, "signal", unique, "10"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.stdout.strip(), "sent", r.stderr)  # systemd (root) still reaches it
            self.assertEqual(owner.communicate(timeout=10)[0].strip(), "received 1")
        finally:
            if owner and owner.poll() is None:
                owner.kill()
            bus.stop()


GET = "GET /metrics HTTP/1.1\r\nHost: node\r\nUser-Agent: Prometheus/2.42.0\r\n\r\n"


def scrape_start(bus, request=GET):
    """freehactl metrics --http as freeha-metrics@.service runs it: the request on stdin."""
    p = subprocess.Popen([FREEHACTL, "metrics", "--http"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=bus.env())
    p.stdin.write(request.encode())
    p.stdin.flush()
    return p, time.monotonic()


def scrape_end(started, timeout=30):
    """(seconds taken, status, headers, body, exit status, stderr) of the answer on stdout."""
    p, began = started
    out, err = p.communicate(timeout=timeout)
    took = time.monotonic() - began
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return took, int(lines[0].split()[1]), headers, body.decode(), p.returncode, err.decode()


def scrape(bus, request=GET):
    return scrape_end(scrape_start(bus, request))


class MetricsEndpoint(unittest.TestCase):
    """freehactl metrics --http (freeha-metrics@.service) when freehad does not
    answer: 200 with freeha_up 0 and why, within the 5 s call timeout, never a hang."""

    def test_a_daemon_that_hangs_with_its_name_and_a_bus_that_never_answers(self):
        silent_bus, hung_bus = PrivateBus(), PrivateBus(HUNG_POLICY)
        owner = None
        try:
            owner = subprocess.Popen(["python3", "-c", RAW_DBUS_CLIENT, silent_bus.address, "silent", "org.freeha1",
                                      "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.assertEqual(owner.stdout.readline().strip(), "owned", owner.stderr.read() if owner.poll() else "")
            # Both at once: the test takes the timeout once.
            silent, hung = scrape_start(silent_bus), scrape_start(hung_bus)
            plain = subprocess.Popen([FREEHACTL, "metrics"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=silent_bus.env())
            plain_started = time.monotonic()
            for what, (took, status, headers, body, code, err) in (("silent", scrape_end(silent)),
                                                                   ("hung", scrape_end(hung))):
                self.assertEqual((status, code), (200, 0), (what, body, err))
                self.assertEqual(headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
                self.assertIn("\nfreeha_up 0\n", body, what)
                self.assertNotIn("freeha_state", body, what)
                self.assertRegex(body, r"\n# freehad did not answer: no answer within 5s \(.*\)\n$", what)
                self.assertTrue(4.9 < took < 6.5, f"{what}: answered after {took:.1f}s")
                print(f"\n{what}: 200 freeha_up 0 after {took:.2f}s: {body.splitlines()[-1]}", file=sys.stderr)
            out, err = plain.communicate(timeout=30)
            took = time.monotonic() - plain_started
            self.assertEqual(plain.returncode, 3, err)
            self.assertIn("freeha_up 0\n", out)
            self.assertRegex(err, r"^freehactl: no answer within 5s \(.*\)\n$")
            self.assertTrue(4.5 < took < 6.5, f"freehactl metrics took {took:.1f}s")
        finally:
            if owner:
                owner.kill()
                owner.communicate()
            silent_bus.stop()
            hung_bus.stop()

    def test_without_a_daemon_at_once_and_a_bad_request_without_asking(self):
        bus = PrivateBus()
        try:
            took, status, headers, body, code, err = scrape(bus)
            self.assertEqual((status, code), (200, 0), err)
            self.assertIn("\nfreeha_up 0\n", body)
            self.assertIn("# freehad did not answer: freehad is not reachable on the bus", body)
            self.assertEqual(int(headers["Content-Length"]), len(body.encode()))
            self.assertLess(took, 2)
            took, status, headers, body, code, err = scrape(bus, "POST /metrics HTTP/1.1\r\n\r\n")
            self.assertEqual((status, code, headers["Allow"], body), (405, 0, "GET, HEAD", "only GET and HEAD are served\n"))
            self.assertEqual(err, "freehactl: metrics --http: answered 405: only GET and HEAD are served\n")
            took, status, headers, body, code, err = scrape(bus, "\x16\x03\x01\x00\x05hello\r\n\r\n")
            self.assertEqual((status, code), (400, 0), err)
            r = ctl(bus, "status", "--http")
            self.assertEqual((r.returncode, r.stderr.strip()),
                             (2, "freehactl: --http only applies to metrics (see freehactl --help)"))
        finally:
            bus.stop()


class CtlUsage(unittest.TestCase):
    def test_usage_errors_exit_2_and_a_missing_daemon_exits_3(self):
        bus = PrivateBus()
        try:
            for args in (["bogus"], [], ["status", "extra"], ["--timeout", "soon", "stop"],
                         ["--timeout", "200000000d", "stop"], ["--frob"]):
                r = ctl(bus, *args)
                self.assertEqual(r.returncode, 2, args)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            r = ctl(bus, "status")
            self.assertEqual(r.returncode, 3)
            self.assertIn("freehad is not reachable", r.stderr)
        finally:
            bus.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
