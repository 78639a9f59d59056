"""A machine shutdown hands over like a switchover; a plain stop keeps FreeHA's grace.

Each namespaced node runs a real `systemd --user`: `systemctl --user exit`
makes that manager queue exit.target (which pulls in shutdown.target) and
stop freehad, as a reboot does to the system manager. freehad's ShutdownWatch
sees the queued job (JobNew, or its ListJobs at SIGTERM) and hands the
services to the next node, which starts one round trip after the stop ends,
instead of a dead time later. A plain `systemctl --user stop freehad` is not
a shutdown: the peers wait the dead time (the seed's user guide's "oops"
grace). A standby node whose manager exits says so: its peers mark it
TIMEDOUT at once. DeadTime=3s makes the two cases far apart.
Exits 77 (skip) where the machine lacks root, namespaces or systemd.
"""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import nodes  # noqa: E402
from nodes import Cluster, config_for, start_all  # noqa: E402

DEAD = 3.0
INTERVAL = 0.2


def starts(node):
    return [float(e[1]) for e in node.events("starthasrv")]


def stop_ends(node):
    return [float(e[1]) for e in node.events("stophasrv.done")]


def read_status(node):
    """status.json as freehad last wrote it, read from the host (no process forked in the node)."""
    try:
        with open(f"/proc/{node.pid1()}/root/run/user/0/freeha/status.json") as f:
            return json.load(f)
    except (OSError, ValueError):  # between write and rename, or not yet written
        return None


def peer_state(node, peer):
    s = read_status(node)
    if s is None:
        return None
    return next((n["state"] for n in s.get("nodes", []) if n["name"] == peer), None)


class MachineShutdown(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(["alpha", "bravo", "charlie"],
                        config_for("shutdown", 3, f"Interval={int(INTERVAL * 1000)}ms\nDeadTime={int(DEAD)}s\n"))
        nodes.set_up_or_destroy(cls.c, cls.set_up)

    @classmethod
    def set_up(cls):
        start_all(cls.c)
        cls.c.wait_for(lambda: cls.active() is not None, 60, "a node RUNNING")

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()

    @classmethod
    def active(cls):
        for name in cls.c.names:
            node = cls.c[name]
            if node.init is not None and node.show("freehad", "ActiveState") == "active" \
                    and node.prop("State") == "RUNNING":
                return name
        return None

    def settled(self):
        """Every node's freehad up, one RUNNING and the others STANDBY."""
        states = {}
        for name in self.c.names:
            states[name] = self.c[name].prop("State")
        return sorted(states.values()) == ["RUNNING", "STANDBY", "STANDBY"]

    def manager_exits(self, node):
        """The node's service manager ends, as at a reboot: exit.target -> shutdown.target, every unit stops."""
        r = node.systemctl("--no-block", "exit")
        self.assertEqual(r.returncode, 0, r.stderr)

    def boot_again(self, node):
        """The node's manager has exited: power it on again and start freehad (as a standby)."""
        node.power_cut()
        node.power_on()
        node.systemctl("daemon-reload", check=True)
        r = node.systemctl("start", "freehad")
        self.assertEqual(r.returncode, 0, r.stderr)

    def handed_over(self, old, started_before):
        """Waits for the node that starts the services after `old` stops them; returns (its name, the gap in s)."""
        others = [n for n in self.c.names if n != old.name]
        self.c.wait_for(lambda: any(len(starts(self.c[n])) > started_before[n] for n in others), 3 * DEAD,
                        "another node's starthasrv")
        new = next(n for n in others if len(starts(self.c[n])) > started_before[n])
        self.c.wait_for(lambda: stop_ends(old), 10, f"{old.name}'s stophasrv to end")
        began = starts(self.c[new])[started_before[new]]
        ended = stop_ends(old)[-1]
        return new, began - ended

    def test_1_a_plain_stop_keeps_the_grace(self):
        name = self.active()
        old = self.c[name]
        before = {n: len(starts(self.c[n])) for n in self.c.names}
        stopped_before = len(stop_ends(old))
        r = old.systemctl("stop", "freehad")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreater(len(stop_ends(old)), stopped_before)
        new, gap = self.handed_over(old, before)
        print(f"\nplain stop of {name}: {new}'s starthasrv began {gap:.3f}s after {name}'s stophasrv ended",
              file=sys.stderr)
        # The peers wait the dead time after its last heartbeat (sent as the stop ended).
        self.assertGreaterEqual(gap, DEAD - 0.5)
        log = old.run("journalctl", "--user-unit", "freehad", "-o", "cat", "--no-pager").stdout
        self.assertNotIn("the machine shuts down", log)
        self.assertEqual(old.systemctl("start", "freehad").returncode, 0)
        self.c.wait_for(self.settled, 30, "the cluster to settle")

    def test_2_a_shutdown_of_the_active_node_hands_over_at_once(self):
        name = self.active()
        old = self.c[name]
        before = {n: len(starts(self.c[n])) for n in self.c.names}
        stopped_before = len(stop_ends(old))
        self.manager_exits(old)
        self.c.wait_for(lambda: len(stop_ends(old)) > stopped_before, 10, f"{name}'s stophasrv to end")
        new, gap = self.handed_over(old, before)
        print(f"\nshutdown of {name}: {new}'s starthasrv began {gap:.3f}s after {name}'s stophasrv ended",
              file=sys.stderr)
        self.assertGreaterEqual(gap, 0, "the services overlapped")
        self.assertLess(gap, DEAD / 2)
        r = old.run("journalctl", "--user-unit", "freehad", "-o", "cat", "--no-pager")
        self.assertRegex(r.stdout, r"the machine shuts down \(systemd('s)? (queued a )?job for (shutdown|exit)\.target")
        self.assertIn(f"handing the services to {new}", r.stdout)
        self.boot_again(old)
        self.c.wait_for(self.settled, 30, "the cluster to settle")

    def test_3_a_standby_node_that_shuts_down_leaves_at_once(self):
        active = self.active()
        name = next(n for n in self.c.names if n != active)
        leaving = self.c[name]
        watcher = self.c[active]
        self.assertEqual(peer_state(watcher, name), "STANDBY")
        began = time.monotonic()
        self.manager_exits(leaving)
        self.c.wait_for(lambda: peer_state(watcher, name) == "TIMEDOUT", 3 * DEAD, f"{name} TIMEDOUT at {active}")
        took = time.monotonic() - began
        print(f"\nshutdown of the standby {name}: TIMEDOUT at {active} after {took:.3f}s", file=sys.stderr)
        # One interval or so (the manager's stop of freehad, one heartbeat), not the dead time.
        self.assertLess(took, DEAD / 3)
        self.assertEqual(watcher.prop("State"), "RUNNING")
        log = watcher.run("journalctl", "--user-unit", "freehad", "-o", "cat", "--no-pager").stdout
        self.assertIn(f"node {name} left", log)


if __name__ == "__main__":
    nodes.main()
