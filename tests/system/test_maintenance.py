"""Maintenance mode on namespaced nodes under systemd --user (issue 18, item 2).

Three nodes in scripts mode whose hooks run the services as a unit of their
own (`systemd-run --user --unit=hasrv`), outside freehad's cgroup, as an
admin's starthasrv would for services that must outlive a restart of
freehad. The tests run in order on one cluster: maintenance on stops the
monitor and any failover; a restart of the active node's freehad moves
nothing and the node comes back in maintenance; maintenance off carries on
from where the services run (one node, none, two); bad input is refused
with one line and changes nothing; a node that joins during maintenance
respects it.
Exits 77 (skip) where the machine lacks root, namespaces or systemd.
"""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import nodes  # noqa: E402
from nodes import HOOK, Cluster, config_for, dump_journals, set_up_or_destroy, start_all  # noqa: E402

MAINTENANCE_CHANGED = "9ce4c44e2ee24526bf793efaabc3c9b1"
DUAL_ACTIVE_RESOLVED = "601694d78e1d48ebb3eb81b6bfc81cbc"
BUS = "export XDG_RUNTIME_DIR=/run/user/0 DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/bus\n"
# A stop slowed down on purpose (/etc/freeha/slow-stop) holds a switchover open.
SERVICE_HOOKS = {
    "starthasrv": BUS + "systemctl --user reset-failed hasrv 2>/dev/null\n"
                        "systemd-run --user --quiet --unit=hasrv sleep infinity",
    "stophasrv": BUS + "[ -f /etc/freeha/slow-stop ] && sleep 3\n"
                       "systemctl --user stop hasrv 2>/dev/null; systemctl --user reset-failed hasrv 2>/dev/null; true",
    "monitorhasrv": BUS + "systemctl --user is-active --quiet hasrv",
}
QUIET = 3  # seconds: DeadTime= (1s) plus several MonitorInterval= (500ms)


class Maintenance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(["alpha", "bravo", "charlie"], config_for("maint", 3, "[Services]\nMonitorInterval=500ms\n"))

        def set_up():
            for node in cls.c.nodes.values():
                for hook, body in SERVICE_HOOKS.items():
                    with open(node.etc("hooks", hook), "w") as f:
                        f.write(HOOK.format(name=hook, body=body))
            start_all(cls.c)
            cls.c.wait_for(lambda: cls.running() == ["alpha"] and cls.status("alpha")["state"] == "RUNNING", 60,
                           "alpha to run the services")
        set_up_or_destroy(cls.c, set_up)

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()

    def run(self, result=None):
        failures = len(result.failures) + len(result.errors) if result else 0
        super().run(result)
        if result and len(result.failures) + len(result.errors) > failures:
            dump_journals(self.c)

    # --- helpers -------------------------------------------------------------

    @classmethod
    def status(cls, name):
        r = cls.c[name].ctl("status", "--json")
        return json.loads(r.stdout) if r.returncode == 0 else {}

    @classmethod
    def running(cls):
        """The nodes where the services (hasrv.service) run."""
        return [n for n in cls.c.names if cls.c[n].show("hasrv.service", "ActiveState") == "active"]

    def hooks(self, hook):
        return {n: len(self.c[n].events(hook)) for n in self.c.names}

    def mode_everywhere(self, on, names=None):
        """Every node (of `names`) says the mode is `on` and sees every reachable node announce it."""
        for name in names or self.c.names:
            s = self.status(name)
            if not s or s["maintenance"]["on"] != on:
                return False
            if any(n["maintenance"] != on for n in s["nodes"] if n["reachable"]):
                return False
        return True

    def ctl(self, name, *args):
        r = self.c[name].ctl(*args)
        return r.returncode, r.stdout.strip(), r.stderr.strip()

    def start_by_hand(self, name):
        self.c[name].run("sh", "-c", BUS + "systemctl --user reset-failed hasrv 2>/dev/null; "
                         "systemd-run --user --quiet --unit=hasrv sleep infinity", check=True)

    def set_maintenance(self, name, on):
        code, out, err = self.ctl(name, "maintenance", "on" if on else "off", "--timeout", "10s")
        self.assertEqual(code, 0, err)
        self.assertIn("maintenance mode " + ("on" if on else "off"), out)
        self.c.wait_for(lambda: self.mode_everywhere(on, [n for n in self.c.names if self.c[n].main_pid()]), 5,
                        "every running node to announce the mode")

    def refused(self, name, args, expect):
        """`freehactl ARGS` fails with exit 1 and one line containing `expect`."""
        code, out, err = self.ctl(name, *args)
        self.assertEqual(code, 1, f"{args}: {out} {err}")
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn(expect, err)
        return err

    # --- the tests, in order -------------------------------------------------

    def test_1_on_stops_the_monitor_and_any_failover(self):
        starts = self.hooks("starthasrv")
        self.set_maintenance("alpha", True)
        text = self.ctl("bravo", "status")[1]
        self.assertRegex(text.splitlines()[0], r"^MAINTENANCE MODE: on since \d{4}-\d\d-\d\d ")
        self.assertIn("VERSION", text)
        self.assertIn(" 0.2.0 ", text)
        self.assertIn("MAINTENANCE MODE", self.c["alpha"].show("freehad", "StatusText"))
        time.sleep(0.5)  # a monitorhasrv canceled as the mode came on has ended
        monitors = len(self.c["alpha"].events("monitorhasrv"))
        time.sleep(1.5)  # three MonitorInterval=
        self.assertEqual(len(self.c["alpha"].events("monitorhasrv")), monitors, "alpha still monitors")
        # The admin stops the services by hand: nobody reacts.
        self.c["alpha"].systemctl("stop", "hasrv", check=True)
        time.sleep(QUIET)
        self.assertEqual(self.hooks("starthasrv"), starts)
        self.assertEqual(self.running(), [])
        self.assertEqual(self.status("alpha")["state"], "RUNNING")  # as far as freehad knows: nothing changed
        for name in ("bravo", "charlie"):
            self.assertEqual(self.status(name)["state"], "STANDBY")
        self.start_by_hand("alpha")
        # The journal says so, with the mode as a field, on the node that learned it too.
        r = self.c["charlie"].run("journalctl", "--user-unit", "freehad", "-o", "json", "--no-pager",
                                  f"MESSAGE_ID={MAINTENANCE_CHANGED}")
        entries = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
        self.assertEqual([e.get("FREEHA_MAINTENANCE") for e in entries][-1:], ["on"], r.stdout)
        self.assertIn("learned from node alpha", entries[-1]["MESSAGE"])

    def test_2_stop_force_start_switchover_and_on_twice_are_refused(self):
        self.refused("alpha", ["maintenance", "on"], "maintenance mode is already on")
        self.refused("alpha", ["stop"], "maintenance mode is on")
        self.refused("bravo", ["force-start"], "maintenance mode is on")
        self.refused("alpha", ["switchover", "bravo"], "maintenance mode is on")
        code, _, err = self.ctl("alpha", "maintenance", "maybe")
        self.assertEqual(code, 2, err)
        self.assertEqual(self.running(), ["alpha"])
        self.assertTrue(self.mode_everywhere(True))

    def test_3_a_restart_of_the_active_node_moves_nothing(self):
        alpha = self.c["alpha"]
        started = alpha.show("hasrv.service", "ExecMainPID")
        hooks = {h: self.hooks(h) for h in ("starthasrv", "stophasrv")}
        r = alpha.systemctl("restart", "freehad")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.c.wait_for(lambda: self.status("alpha").get("maintenance", {}).get("on"), 10,
                        "alpha back, in maintenance mode")
        time.sleep(QUIET)
        self.assertEqual(self.running(), ["alpha"])
        self.assertEqual(alpha.show("hasrv.service", "ExecMainPID"), started)  # the same services
        self.assertEqual({h: self.hooks(h) for h in hooks}, hooks)
        self.assertTrue(self.mode_everywhere(True))
        journal = alpha.run("journalctl", "--user-unit", "freehad", "-o", "cat", "--no-pager").stdout
        self.assertIn("the services were left running as they are", journal)
        self.assertIn("--clean-up: maintenance mode is on", journal)
        self.assertIn("maintenance mode is on, as before the restart", journal)

    def test_4_off_keeps_the_services_where_they_run(self):
        starts, stops = self.hooks("starthasrv"), self.hooks("stophasrv")
        self.set_maintenance("bravo", False)
        self.c.wait_for(lambda: self.status("alpha")["state"] == "RUNNING", 10, "alpha to claim its services")
        time.sleep(QUIET)
        self.assertEqual(self.running(), ["alpha"])
        # The others probe as at start-up (and clean up, as nothing runs there); nothing starts anywhere.
        self.assertEqual(self.hooks("starthasrv"), starts)
        self.assertEqual(self.hooks("stophasrv")["alpha"], stops["alpha"])
        self.assertEqual([self.status(n)["active_node"] for n in self.c.names], ["alpha"] * 3)
        self.assertNotIn("MAINTENANCE", self.ctl("alpha", "status")[1])

    def test_5_off_with_the_services_nowhere_starts_them_on_the_first_node(self):
        self.set_maintenance("alpha", True)
        self.c["alpha"].systemctl("stop", "hasrv", check=True)
        starts = self.hooks("starthasrv")
        self.set_maintenance("charlie", False)
        self.c.wait_for(lambda: self.running() == ["alpha"] and self.status("alpha")["state"] == "RUNNING", 15,
                        "alpha to start the services again")
        after = self.hooks("starthasrv")
        self.assertEqual({n: after[n] - starts[n] for n in self.c.names}, {"alpha": 1, "bravo": 0, "charlie": 0})
        self.assertFalse(self.status("alpha")["errored"])  # stopped by hand in maintenance: no error

    def test_6_off_with_the_services_on_two_nodes_stops_one_and_says_so(self):
        self.set_maintenance("alpha", True)
        self.start_by_hand("bravo")
        self.assertEqual(self.running(), ["alpha", "bravo"])
        stops = self.hooks("stophasrv")
        self.set_maintenance("alpha", False)
        self.c.wait_for(lambda: len(self.running()) == 1 and
                        all(self.status(n)["active_node"] == self.running()[0] for n in self.c.names), 15,
                        "one node to keep the services")
        after = self.hooks("stophasrv")
        stopped = [n for n in ("alpha", "bravo") if after[n] > stops[n]]
        self.assertEqual(len(stopped), 1, after)
        self.assertNotIn(stopped[0], self.running())
        reports = sum(len(self.c[n].run("journalctl", "--user-unit", "freehad", "-o", "cat", "--no-pager",
                                        f"MESSAGE_ID={DUAL_ACTIVE_RESOLVED}").stdout.strip().splitlines())
                      for n in ("alpha", "bravo"))
        self.assertGreaterEqual(reports, 1)
        # Back to the start for what follows: alpha runs them.
        if self.running() != ["alpha"]:
            code, _, err = self.ctl(self.running()[0], "switchover", "alpha", "--timeout", "20s")
            self.assertEqual(code, 0, err)

    def test_7_on_without_quorum_or_during_a_switchover_is_refused(self):
        charlie = self.c["charlie"]
        charlie.isolate()
        try:
            self.c.wait_for(lambda: not self.status("charlie")["quorate"], 10, "charlie to lose quorum")
            self.refused("charlie", ["maintenance", "on"], "no quorum")
        finally:
            charlie.heal()
        self.c.wait_for(lambda: self.status("charlie")["quorate"], 10, "charlie to regain quorum")
        self.assertTrue(self.mode_everywhere(False))
        holder = self.running()[0]
        with open(self.c[holder].etc("slow-stop"), "w"):
            pass
        try:
            target = "bravo" if holder != "bravo" else "charlie"
            code, _, err = self.ctl(holder, "switchover", target, "--no-wait")
            self.assertEqual(code, 0, err)
            self.refused(holder, ["maintenance", "on"], "switchover")
            self.refused(target, ["maintenance", "on"], "switchover")
            self.c.wait_for(lambda: self.running() == [target] and self.status(target)["state"] == "RUNNING", 20,
                            f"{target} to take over")
        finally:
            os.unlink(self.c[holder].etc("slow-stop"))
        self.assertTrue(self.mode_everywhere(False))

    def test_8_a_node_that_joins_during_maintenance_respects_it(self):
        [holder] = self.running()
        joiner = next(n for n in reversed(self.c.names) if n != holder)
        self.c[joiner].systemctl("stop", "freehad", check=True)
        # Its last heartbeat said STOPPING (a daemon's exit), which holds the mode back until it times out.
        self.c.wait_for(lambda: not next(n for n in self.status(holder)["nodes"] if n["name"] == joiner)["reachable"],
                        5, f"{joiner} to time out")
        self.set_maintenance(holder, True)
        starts = self.hooks("starthasrv")
        self.c[joiner].systemctl("start", "freehad", check=True)
        self.c.wait_for(lambda: self.mode_everywhere(True), 10, f"{joiner} to announce maintenance mode")
        self.c[holder].systemctl("stop", "hasrv", check=True)  # nobody takes over
        time.sleep(QUIET)
        self.assertEqual(self.hooks("starthasrv"), starts)
        self.assertEqual(self.running(), [])
        self.assertIn(self.status(joiner)["state"], ("INITIAL", "STANDBY"))


if __name__ == "__main__":
    nodes.main()
