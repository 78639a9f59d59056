"""Floating IP failover, black-box, and FreeHA 1.0 trees that run unchanged.

FloatingIP: three nodes run the shipped sample hooks (hooks/: an IPv4 and an
IPv6 floating address plus a web server unit) with the service-script
library; a client and a watcher sit on the same bridge. The client reaches
both addresses (ping, HTTP) before and after a power cut of the active node;
right after the takeover, before it sends anything, its neighbour entries for
the addresses already hold the new node's MAC. The watcher connects every
20 ms throughout and gives the reachability gap.

TargetModeVIP: the same with freeha-vip@.service as a member of
freeha-services.target.

FreeHA1Tree: a FreeHA 1.0 style /opt/freeha/bin (hasrv scripts that call
their own service_scripts/ and the library by bare name), freehad started
with startdemon flags only: no -s, no config file, no /etc/freeha/hooks.
Exits 77 (skip) where the machine lacks root, namespaces or systemd.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import nodes  # noqa: E402
from nodes import Cluster, config_for, start_all  # noqa: E402

VIP4, VIP6 = f"{nodes.SUBNET}.100", f"{nodes.SUBNET6}100"
WEB = """[Unit]
Description=The web server behind the floating addresses (test)
[Service]
ExecStart=/usr/bin/python3 -m http.server --bind :: --directory /etc/freeha/www 80
"""
# Connects to each address every 20 ms until SIGTERM; prints the times (monotonic) of the successes.
WATCH = textwrap.dedent("""
    import json, signal, socket, sys, time
    running = True
    def stop(*_):
        global running
        running = False
    signal.signal(signal.SIGTERM, stop)
    ok = {a: [] for a in sys.argv[1:]}
    print("ready", flush=True)
    while running:
        for a in ok:
            s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET)
            s.settimeout(0.1)
            try:
                s.connect((a, 80))
                ok[a].append(time.monotonic())
            except OSError:
                pass
            finally:
                s.close()
        time.sleep(0.02)
    print(json.dumps(ok))
    """)


def http_get(client, address):
    """The body the web server at address returns to the client (the node's name), or None."""
    host = f"[{address}]" if ":" in address else address
    r = client.run("python3", "-c", "import sys, urllib.request as u; "
                   "print(u.urlopen(sys.argv[1], timeout=5).read().decode().strip())", f"http://{host}/")
    return r.stdout.strip() if r.returncode == 0 else None


class FloatingIP(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(["alpha", "bravo", "charlie"], config_for("vip", 3))
        nodes.set_up_or_destroy(cls.c, cls.set_up)

    @classmethod
    def set_up(cls):
        cls.client = cls.c.add_client("client")
        cls.watcher = cls.c.add_client("watcher")
        for node in cls.c.nodes.values():
            for hook in ("starthasrv", "stophasrv", "monitorhasrv", "alerthasrv"):
                shutil.copy(os.path.join(nodes.ROOT, "hooks", hook), node.etc("hooks", hook))
            with open(os.path.join(nodes.ROOT, "hooks", "services.conf")) as f:
                sample = f.read()
            settings = {"ADDRESSES": f'"{VIP4}/24 {VIP6}/64"', "DEVICE": "eth0", "PEER": cls.watcher.address,
                        "PEER6": cls.watcher.address6, "UNITS": '"--user web.service"', "PORT": "80"}
            lines = [f"{line.split('=')[0]}={settings[line.split('=')[0]]}" if line.split("=")[0] in settings else line
                     for line in sample.splitlines()]
            with open(node.etc("hooks", "services.conf"), "w") as f:
                f.write("\n".join(lines) + "\n")
            os.makedirs(node.etc("www"))
            with open(node.etc("www", "index.html"), "w") as f:
                f.write(node.name + "\n")
            with open(node.units("web.service"), "w") as f:
                f.write(WEB)
        start_all(cls.c)
        # Usually alpha; under load two nodes may have formed a quorum before it started.
        cls.c.wait_for(lambda: cls.running(), 60, "a node RUNNING")

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()

    @classmethod
    def running(cls, names=None):
        """The one node RUNNING (of names), or None."""
        up = [n for n in names or cls.c.names if cls.c[n].prop("State") == "RUNNING"]
        return cls.c[up[0]] if len(up) == 1 else None

    def reach(self, address, node):
        ping = self.client.run("ping", "-c", "1", "-W", "3", address)
        self.assertEqual(ping.returncode, 0, f"ping {address}: {ping.stdout}")
        self.assertEqual(http_get(self.client, address), node, f"HTTP to {address}")

    def timeline(self, node, cut):
        """When, after the cut, the node claimed the services and ran starthasrv (from its journal)."""
        r = node.run("journalctl", "--user-unit", "freehad", "--no-pager", "-o", "json")
        marks = {}
        for line in r.stdout.splitlines():
            e = json.loads(line)
            t = int(e["__MONOTONIC_TIMESTAMP"]) / 1e6 - cut
            text = e.get("MESSAGE", "")
            if t > 0 and isinstance(text, str):
                for key, prefix in (("claimed", "state STANDBY -> STARTING"), ("starthasrv started", "starthasrv["),
                                    ("starthasrv done", "state STARTING -> RUNNING")):
                    if text.startswith(prefix) and key not in marks and (key != "starthasrv started" or "started" in text):
                        marks[key] = t
        return ", ".join(f"{key} at {t * 1000:.0f} ms" for key, t in marks.items())

    def test_power_cut_of_the_active_node(self):
        old = self.running()
        others = [n for n in self.c.names if n != old.name]
        for vip in (VIP4, VIP6):
            self.reach(vip, old.name)
            self.assertEqual(self.client.neighbour(vip)[0], old.mac())
        before = {vip: self.client.neighbour(vip) for vip in (VIP4, VIP6)}
        watcher = subprocess.Popen(["ip", "netns", "exec", self.watcher.netns, "python3", "-c", WATCH, VIP4, VIP6],
                                   stdout=subprocess.PIPE, text=True)
        self.assertEqual(watcher.stdout.readline().strip(), "ready")
        time.sleep(1)
        cut = time.monotonic()
        old.power_cut()
        self.c.wait_for(lambda: self.running(others), 30, "another node RUNNING")
        running = time.monotonic()
        new = self.running(others)
        # At once, and before the client sends anything: the announcements have moved its entries.
        after = {vip: self.client.neighbour(vip) for vip in (VIP4, VIP6)}
        for vip in (VIP4, VIP6):
            self.assertEqual(after[vip][0], new.mac(), f"{vip}: the client's entry still points at {after[vip]}")
        for vip in (VIP4, VIP6):
            self.reach(vip, new.name)
        time.sleep(1)
        watcher.send_signal(signal.SIGTERM)
        ok = json.loads(watcher.communicate(timeout=30)[0].splitlines()[-1])
        # No duplicate: only the new node has the addresses (the old one is dark), and it alone RUNS.
        for name in others:
            has = [vip for vip in (VIP4, VIP6) if f" {vip}/" in self.c[name].run("ip", "-o", "addr").stdout]
            self.assertEqual(has, [VIP4, VIP6] if name == new.name else [], name)
            self.assertEqual(self.c[name].prop("State"), "RUNNING" if name == new.name else "STANDBY", name)
        report = [f"power cut of {old.name} -> {new.name} RUNNING after {(running - cut) * 1000:.0f} ms: "
                  + self.timeline(new, cut)]
        for family, vip in (("IPv4", VIP4), ("IPv6", VIP6)):
            # The outage: the longest wait between two successful connects around the cut
            # (alpha's dying kernel may still answer for a few milliseconds after it).
            times = [t for t in ok[vip] if t > cut - 0.5]
            gap, last_before, first_after = max((b - a, a, b) for a, b in zip(times, times[1:]))
            self.assertLess(last_before - cut, 1, "the outage began long after the cut")
            self.assertGreater(ok[vip][-1], running, "no connect succeeded after the takeover")
            report.append(f"{family} {vip}: reachability gap {gap * 1000:.0f} ms (the watcher's last connect to "
                          f"{old.name} {(last_before - cut) * 1000:+.0f} ms from the cut, its first to {new.name} "
                          f"{(first_after - cut) * 1000:.0f} ms after it); "
                          f"the client's neighbour entry {before[vip][0]} ({before[vip][1]}) before, "
                          f"{after[vip][0]} ({after[vip][1]}) right after the takeover")
        print("\n" + "\n".join(report) + f"\n({old.name} is {old.mac()}, {new.name} is {new.mac()})", file=sys.stderr)


class TargetModeVIP(unittest.TestCase):
    """freeha-vip@.service as a member of freeha-services.target moves with a power cut."""
    vip = f"{nodes.SUBNET}.130"

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(["delta", "echo", "foxtrot"], config_for("tgtvip", 3, "[Services]\nTarget=freeha-services.target\n"),
                        target_mode=True)
        nodes.set_up_or_destroy(cls.c, cls.set_up)

    @classmethod
    def set_up(cls):
        cls.client = cls.c.add_client("client")
        for node in cls.c.nodes.values():
            os.makedirs(node.etc("vip"))
            with open(node.etc("vip", "web.conf"), "w") as f:
                f.write(f"ADDRESS={cls.vip}/24\nDEVICE=eth0\n")
            shutil.copy(os.path.join(nodes.BUILD, "units", "freeha-vip@.service"), node.units("freeha-vip@.service"))
            node.systemctl("daemon-reload", check=True)
            node.systemctl("enable", "freeha-vip@web.service", check=True)
        start_all(cls.c)
        cls.c.wait_for(lambda: len(cls.holders()) == 1, 60, "the VIP unit active on one node")

    @classmethod
    def holders(cls, names=None):
        return [cls.c[n] for n in names or cls.c.names
                if cls.c[n].show("freeha-vip@web.service", "ActiveState") == "active"]

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()

    def test_power_cut_moves_the_vip_unit(self):
        [old] = self.holders()
        others = [n for n in self.c.names if n != old.name]
        self.assertEqual(self.client.run("ping", "-c", "1", "-W", "3", self.vip).returncode, 0)
        self.assertEqual(self.client.neighbour(self.vip)[0], old.mac())
        old.power_cut()
        self.c.wait_for(lambda: any(self.c[n].prop("State") == "RUNNING" for n in others), 30, "another node RUNNING")
        [new] = self.holders(others)
        self.assertEqual(new.prop("State"), "RUNNING")
        self.c.wait_for(lambda: self.client.neighbour(self.vip)[0] == new.mac(), 3,
                        f"the client's entry to hold {new.name}'s MAC without the client sending")
        self.assertEqual(self.client.run("ping", "-c", "1", "-W", "3", self.vip).returncode, 0)


STARTHASRV = """#!/bin/sh
# FreeHA 1.0 style: one service per line, each by bare name, checked.
demo.start
if [ $? -ne 0 ] ; then
\texit 1
fi
vip.start {vip}/24 eth0
if [ $? -ne 0 ] ; then exit 1; fi
# Be paranoid: check that everything came up (monitorhasrv is in /opt/freeha/bin).
monitorhasrv
"""
STOPHASRV = """#!/bin/sh
vip.stop {vip}/24 eth0
demo.stop
"""
MONITORHASRV = """#!/bin/sh
demo.monitor || exit 1
proc.monitor demo || exit 1
vip.monitor {vip}/24 eth0
"""
SERVICE_SCRIPTS = {
    # The tree's own scripts, which found one another through startdemon's PATH.
    "demo.start": 'echo "demo.start $0" >> /opt/freeha/bin/calls.log\ntouch /opt/freeha/bin/demo.up\n',
    "demo.stop": 'echo "demo.stop $0" >> /opt/freeha/bin/calls.log\nrm -f /opt/freeha/bin/demo.up\n',
    "demo.monitor": "[ -f /opt/freeha/bin/demo.up ]\n",
    # FreeHA 1.0 shipped a proc.monitor of its own: the tree's copy wins over the library's.
    "proc.monitor": 'echo "own proc.monitor $0" >> /opt/freeha/bin/calls.log\nexit 0\n',
}


class FreeHA1Tree(unittest.TestCase):
    vip = f"{nodes.SUBNET}.120"

    @classmethod
    def prepare(cls, node):
        tree = os.path.join(node.dir, "opt-freeha-bin")
        os.makedirs(os.path.join(tree, "service_scripts"))
        node.binds["/opt/freeha/bin"] = tree
        scripts = {"starthasrv": STARTHASRV, "stophasrv": STOPHASRV, "monitorhasrv": MONITORHASRV}
        scripts.update({f"service_scripts/{name}": "#!/bin/sh\n" + body for name, body in SERVICE_SCRIPTS.items()})
        for name, text in scripts.items():
            with open(os.path.join(tree, name), "w") as f:
                f.write(text.format(vip=cls.vip))
            os.chmod(os.path.join(tree, name), 0o755)

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(["delta", "echo"], config_for("unused", 2), prepare=cls.prepare)
        nodes.set_up_or_destroy(cls.c, cls.set_up)

    @classmethod
    def set_up(cls):
        for node in cls.c.nodes.values():
            # A machine with no freeha configuration of its own: no freehad.conf, no /etc/freeha/hooks.
            os.remove(node.etc("freehad.conf"))
            shutil.rmtree(node.etc("hooks"))
            # startdemon's flags as a drop-in, as freeha-migration(7) says (plus --user for the test manager).
            with open(node.units("freehad.service.d", "test.conf"), "w") as f:
                f.write(f"[Service]\nExecStart=\nExecStart={nodes.FREEHAD} --user -a {node.address}\n")
        start_all(cls.c)
        cls.c.wait_for(lambda: cls.c["delta"].prop("State") == "RUNNING", 60, "delta RUNNING")

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()

    def calls(self, node):
        with open(os.path.join(node.dir, "opt-freeha-bin", "calls.log")) as f:
            return f.read().splitlines()

    def test_1_the_tree_runs_unchanged(self):
        delta = self.c["delta"]
        r = delta.run("journalctl", "--user-unit", "freehad", "--no-pager", "-o", "cat")
        self.assertIn("hooks directory /opt/freeha/bin (FreeHA 1.0's, as /etc/freeha/hooks has no hooks)", r.stdout)
        r = delta.run(nodes.FREEHAD, "--user", "-a", delta.address, "--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("HooksDirectory=/opt/freeha/bin\n", r.stdout)
        calls = self.calls(delta)
        # At start-up a failing monitor is followed by a clean-up stop, as in FreeHA 1.0; then the start.
        self.assertEqual(calls[:2], ["demo.stop /opt/freeha/bin/service_scripts/demo.stop",
                                     "demo.start /opt/freeha/bin/service_scripts/demo.start"])
        self.assertIn("own proc.monitor /opt/freeha/bin/service_scripts/proc.monitor", calls)
        # vip.start came from the library, by bare name.
        self.assertIn(f" {self.vip}/24 ", delta.run("ip", "-o", "addr", "show", "dev", "eth0").stdout)
        self.assertEqual(self.c["echo"].run("ping", "-c", "1", "-W", "3", self.vip).returncode, 0)
        self.assertNotIn("demo.start /opt/freeha/bin/service_scripts/demo.start", self.calls(self.c["echo"]),
                         "echo, the standby node, started the demo")

    def test_2_the_stop_path_too(self):
        delta = self.c["delta"]
        r = delta.systemctl("reload", "freehad")  # FreeHA's HUP: stop the services here
        self.assertEqual(r.returncode, 0, r.stderr)
        self.c.wait_for(lambda: "demo.stop /opt/freeha/bin/service_scripts/demo.stop" in self.calls(delta), 30,
                        "demo.stop on delta")
        self.c.wait_for(lambda: delta.prop("State") == "RUNNING", 30, "delta RUNNING again")

    def test_3_moving_a_live_cluster_keeps_the_services_up(self):
        """freeha-migration(7)'s procedure: the standby's daemon stops first, the active node's
        daemon dies without stopping anything (FreeHA 1.0's kill -9), and the new daemon started
        there adopts the running services (its start-up monitor succeeds): no stop, no start."""
        delta, echo = self.c["delta"], self.c["echo"]
        self.assertEqual(echo.systemctl("stop", "freehad").returncode, 0)
        delta.systemctl("kill", "-s", "KILL", "--kill-whom=main", "freehad")
        self.c.wait_for(lambda: delta.show("freehad", "ActiveState") != "active", 10, "the old daemon gone")
        calls = len(self.calls(delta))
        self.assertEqual(delta.systemctl("start", "freehad").returncode, 0)
        self.assertEqual(echo.systemctl("start", "freehad").returncode, 0)
        self.c.wait_for(lambda: echo.prop("State") == "STANDBY" and echo.prop("ActiveNode") == "delta", 30,
                        "echo STANDBY behind delta")
        self.assertEqual(delta.prop("State"), "RUNNING")
        self.assertEqual([c for c in self.calls(delta)[calls:] if c.startswith("demo.")], [],
                         "the services were stopped or started again")
        self.assertIn(f" {self.vip}/24 ", delta.run("ip", "-o", "addr", "show", "dev", "eth0").stdout)


if __name__ == "__main__":
    nodes.main()
