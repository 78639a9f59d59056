"""Process tests of service groups in scripts mode (issue 20): each group runs
the hooks of its own directory with FREEHA_GROUP set, the groups spread over
the nodes, a failing monitor moves its group alone, a group whose hooks are
missing on a node runs elsewhere while the others run there, and the fence
of one group kills that group's processes alone (freehad's process tree,
split by FREEHA_GROUP, as these nodes have no delegated cgroup), and
freehad --clean-up after a kill -9 runs every group's stophasrv in time, and
a reload adds a group and removes one without moving the others."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import FREEHACTL, FREEHAD, Cluster, PrivateBus, stop_at_end  # noqa: E402

# Every hook logs to its own directory, so that each group's runs are apart.
# starthasrv leaves a detached `sleep` (its own session, an orphan of
# freehad's) that stophasrv ends: only a fence can end it when stophasrv hangs.
HOOK = """#!/bin/sh
d=$(dirname "$0")
echo "{name} $(date +%s.%N) group=$FREEHA_GROUP state=$FREEHA_STATE $*" >> "$d/events.log"
{body}
"""
HOOKS = {
    "starthasrv": '(setsid sleep 120 </dev/null >/dev/null 2>&1 & echo $! > "$d/sleep.pid")\n'
                  'touch "$d/services-up"',
    # stop-hang: this stophasrv hangs, and forgets the sleep, so that only the fence can end it.
    "stophasrv": '[ -f "$d/stop-hang" ] && rm -f "$d/stop-hang" "$d/sleep.pid" && exec sleep 1000\n'
                 '[ -f "$d/sleep.pid" ] && kill "$(cat "$d/sleep.pid")"\n'
                 'rm -f "$d/services-up" "$d/sleep.pid"',
    "monitorhasrv": '[ -f "$d/monitor-fail" ] && exit 1\n[ -f "$d/services-up" ]',
    "alerthasrv": "exit 0",
}
GROUPS = ["default", "db", "web"]


def hooks_dir(node, group):
    return node.path("hooks" if group == "default" else "hooks-" + group)


def write_hooks(directory):
    os.makedirs(directory, exist_ok=True)
    for hook, body in HOOKS.items():
        path = os.path.join(directory, hook)
        with open(path, "w") as f:
            f.write(HOOK.format(name=hook, body=body))
        os.chmod(path, 0o755)


def events(node, group, hook=None):
    try:
        with open(os.path.join(hooks_dir(node, group), "events.log")) as f:
            lines = [line.split() for line in f]
    except FileNotFoundError:
        return []
    return [l for l in lines if hook is None or l[0] == hook]


def runs(node, group):
    return os.path.exists(os.path.join(hooks_dir(node, group), "services-up"))


def sleep_pid(node, group):
    """The sleep that the group's starthasrv left on `node`."""
    with open(os.path.join(hooks_dir(node, group), "sleep.pid")) as f:
        return int(f.read())


def alive(pid):
    """Whether `pid` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


class GroupCluster:
    def __init__(self, names, group_settings="", services_settings=""):
        self.c = Cluster(names)
        self.group_settings, self.services_settings = group_settings, services_settings
        for node in self.c.nodes.values():
            for group in GROUPS:
                write_hooks(hooks_dir(node, group))
            self.configure(node, GROUPS)

    def configure(self, node, groups):
        """`node`'s groups are `groups` from its next (re)start or reload on."""
        node.settings = (f"[Services]\n{self.services_settings}" if self.services_settings else "") + "".join(
            f"[Group {g}]\nHooksDirectory={hooks_dir(node, g)}\nMonitorInterval=1s\n{self.group_settings}"
            for g in groups if g != "default")

    def report(self):
        return self.c.report()

    def stop_all(self):
        """Kills the nodes, then the sleeps their groups left (freehad, their subreaper, is gone)."""
        self.c.stop_all()
        for node in self.c.nodes.values():
            for group in GROUPS:
                try:
                    os.kill(sleep_pid(node, group), signal.SIGKILL)
                except (FileNotFoundError, ValueError, ProcessLookupError):
                    pass

    def where(self, group):
        return sorted(n.name for n in self.c.nodes.values() if n.alive() and runs(n, group))

    def placement(self, groups=GROUPS):
        return {g: self.where(g) for g in groups}

    def wait_for(self, predicate, timeout, what):
        try:
            return self.c.wait_for(predicate, timeout, what)
        except AssertionError as e:
            raise AssertionError(f"{e}; groups running: {self.placement()}") from None


class SpreadGroups(unittest.TestCase):
    def setUp(self):
        self.g = GroupCluster(["alpha", "bravo", "charlie"])
        self.c = self.g.c
        stop_at_end(self, self.g)
        self.c.start_all()
        self.g.wait_for(lambda: all(len(self.g.where(g)) == 1 for g in GROUPS), 15, "every group running once")

    def test_groups_spread_run_their_own_hooks_and_move_alone(self):
        placement = self.g.placement()
        # Three groups on three nodes: one each (no node runs more than ceil(3/3)).
        self.assertEqual(sorted(p[0] for p in placement.values()), ["alpha", "bravo", "charlie"], placement)
        for group, (name,) in placement.items():
            starts = events(self.c[name], group, "starthasrv")
            self.assertEqual(len(starts), 1, (group, name))
            # Each group's hooks ran from its own directory, told which group they serve.
            for line in events(self.c[name], group):
                self.assertEqual(line[2], "group=" + group, line)
            node = self.c[name]
            self.g.wait_for(lambda: any(l[0] == "alerthasrv" and "RUNNING" in l for l in events(node, group)), 5,
                            f"alerthasrv RUNNING for {group} on {name}")
        # A failing monitor of one group moves that group alone.
        moving = "db"
        (old,) = placement[moving]
        open(os.path.join(hooks_dir(self.c[old], moving), "monitor-fail"), "w").close()
        self.g.wait_for(lambda: len(self.g.where(moving)) == 1 and self.g.where(moving) != [old], 15,
                        f"{moving} running elsewhere than {old}")
        time.sleep(1.5)  # a monitor interval more: nothing else moves
        for group in GROUPS:
            if group == moving:
                continue
            self.assertEqual(self.g.where(group), placement[group], group)
            (name,) = placement[group]
            self.assertEqual(len(events(self.c[name], group, "stophasrv")), 1, f"{group} stopped on {name}")
        log = self.c[old].log()
        self.assertIn("group db: state RUNNING -> ", log)


class StandAsideAndFence(unittest.TestCase):
    """Every group prefers alpha (Nodes=; db's and web's also name charly, which never runs);
    web's hooks are missing there."""

    def setUp(self):
        self.g = GroupCluster(["alpha", "bravo"], group_settings="Nodes=alpha bravo charly\nStopTimeout=1s\n",
                              services_settings="Nodes=alpha bravo\n")
        self.c = self.g.c
        stop_at_end(self, self.g)
        alpha = self.c["alpha"]
        for name in os.listdir(hooks_dir(alpha, "web")):
            os.remove(os.path.join(hooks_dir(alpha, "web"), name))
        os.rmdir(hooks_dir(alpha, "web"))
        self.c.start_all()
        self.g.wait_for(lambda: self.g.placement() == {"default": ["alpha"], "db": ["alpha"], "web": ["bravo"]},
                        15, "default and db on alpha, web on bravo")

    def test_a_group_without_hooks_stands_aside_alone(self):
        log = self.c["alpha"].log()
        self.assertRegex(log, r"group web: this node stands aside until the hooks are there .*"
                              r"\[Group web\] HooksDirectory=.*hooks-web: no such directory")
        self.assertNotIn("group db: this node stands aside", log)

    def test_a_name_in_nodes_never_heard_is_warned_about_once_per_group(self):
        time.sleep(1)  # a few more heartbeats: still once
        for node in ("alpha", "bravo"):
            warned = re.findall(r"(group \S+: )?Nodes= names node charly, but no heartbeat has come from it",
                                self.c[node].log())
            self.assertEqual(sorted(warned), ["group db: ", "group web: "], node)

    def test_the_fence_of_one_group_kills_its_processes_alone(self):
        alpha = self.c["alpha"]
        db_pid, default_pid = sleep_pid(alpha, "db"), sleep_pid(alpha, "default")
        self.assertTrue(alive(db_pid) and alive(default_pid))
        # db's stophasrv hangs past its StopTimeout=1s: the stop fails and the fence kills db's processes.
        open(os.path.join(hooks_dir(alpha, "db"), "stop-hang"), "w").close()
        open(os.path.join(hooks_dir(alpha, "db"), "monitor-fail"), "w").close()
        self.g.wait_for(lambda: not alive(db_pid), 15, "db's sleep on alpha killed")
        self.g.wait_for(lambda: self.g.where("db") == ["bravo"], 15, "db running on bravo")
        self.assertIn("group db: killing the services with SIGKILL", alpha.log())
        # The default group's processes on alpha were not touched.
        self.assertTrue(alive(default_pid))
        self.assertEqual(self.g.where("default"), ["alpha"])
        self.assertEqual(len(events(alpha, "default", "stophasrv")), 1)  # the start-up clean-up alone


def reload_config(test, groups):
    """Configures `groups` on every node of test.g, then freehactl reload-config there (over test.bus)."""
    for name in test.c.names:
        node = test.c[name]
        test.g.configure(node, groups)
        with open(node.path("freehad.conf"), "w") as f:
            f.write(test.c.config(node))
        r = subprocess.run([FREEHACTL, "reload-config"], capture_output=True, text=True, timeout=30,
                           env=test.bus[name].env())
        test.assertEqual(r.returncode, 0, r.stderr)


class ReloadGroups(unittest.TestCase):
    """freehactl reload-config adds [Group mail] and removes [Group web] on
    every node: mail starts once somewhere, web stops where it ran and is
    gone from the status; default and db stay where they run."""

    def setUp(self):
        self.g = GroupCluster(["alpha", "bravo"])
        self.c = self.g.c
        stop_at_end(self, self.g)
        self.bus = {n: PrivateBus() for n in self.c.names}
        self.addCleanup(lambda: [b.stop() for b in self.bus.values()])
        for name in reversed(self.c.names):
            write_hooks(hooks_dir(self.c[name], "mail"))
            self.c.start(name, bus=self.bus[name])
        self.g.wait_for(lambda: all(len(self.g.where(g)) == 1 for g in GROUPS), 15, "every group running once")

    def reload(self, groups):
        reload_config(self, groups)

    def test_a_reload_adds_and_removes_groups_without_moving_the_others(self):
        before = self.g.placement()
        (web_node,) = before["web"]
        self.reload(["default", "db", "web", "mail"])
        self.g.wait_for(lambda: len(self.g.where("mail")) == 1, 15, "mail running once")
        (mail_node,) = self.g.where("mail")
        for line in events(self.c[mail_node], "mail"):
            self.assertEqual(line[2], "group=mail", line)
        self.assertEqual(self.g.placement(), before, "a group added moved the others")

        self.reload(["default", "db", "mail"])
        self.g.wait_for(lambda: not self.g.where("web"), 15, "web stopped")
        self.assertEqual(events(self.c[web_node], "web", "stophasrv")[-1][3], "state=STOPPING")
        self.g.wait_for(lambda: all("web" not in [g["name"] for g in self.c[n].status()["groups"]]
                                    for n in self.c.names), 15, "web gone from every node's status")
        self.assertIn("group web: group removed by a reload", self.c[web_node].log())
        time.sleep(1.5)  # a monitor interval more: nothing else moves
        after = self.g.placement(["default", "db", "mail"])
        self.assertEqual(after, {**{g: before[g] for g in ("default", "db")}, "mail": [mail_node]})
        self.assertEqual(self.g.where("web"), [])

    def test_a_group_removed_with_its_hooks_directory_is_killed_and_gone(self):
        # An admin deletes [Group web] and its hooks directory at once: its
        # stophasrv cannot run, so the fence ends its services, and the group
        # still goes away on every node without moving the others.
        before = self.g.placement()
        (web_node,) = before["web"]
        sleep = sleep_pid(self.c[web_node], "web")
        for name in self.c.names:
            shutil.rmtree(hooks_dir(self.c[name], "web"))
        self.reload(["default", "db"])
        self.g.wait_for(lambda: not alive(sleep), 15, "web's services killed")
        self.g.wait_for(lambda: all("web" not in [g["name"] for g in self.c[n].status()["groups"]]
                                    for n in self.c.names), 15, "web gone from every node's status")
        self.assertIn("group web: group removed by a reload", self.c[web_node].log())
        self.assertEqual(self.g.placement(["default", "db"]), {g: before[g] for g in ("default", "db")})


class ReloadToSeveralGroupsWithoutCgroup(unittest.TestCase):
    """A node of one group, whose fence held every descendant of freehad (no
    cgroup), is reloaded with a second group: from then on its fence spares
    the new group's processes."""

    def setUp(self):
        settings = "Nodes=alpha bravo\nStopTimeout=1s\n"
        self.g = GroupCluster(["alpha", "bravo"], group_settings=settings, services_settings=settings)
        self.c = self.g.c
        stop_at_end(self, self.g)
        self.bus = {n: PrivateBus() for n in self.c.names}
        self.addCleanup(lambda: [b.stop() for b in self.bus.values()])
        for name in reversed(self.c.names):
            self.g.configure(self.c[name], ["default"])
            self.c.start(name, bus=self.bus[name])
        self.g.wait_for(lambda: self.g.where("default") == ["alpha"], 15, "default running on alpha")

    def test_the_default_groups_fence_spares_a_group_added_by_a_reload(self):
        reload_config(self, ["default", "db"])
        self.g.wait_for(lambda: self.g.where("db") == ["alpha"], 15, "db running on alpha")
        alpha = self.c["alpha"]
        default_pid, db_pid = sleep_pid(alpha, "default"), sleep_pid(alpha, "db")
        # The default group's stophasrv hangs past StopTimeout=1s: its fence kills its processes.
        open(os.path.join(hooks_dir(alpha, "default"), "stop-hang"), "w").close()
        open(os.path.join(hooks_dir(alpha, "default"), "monitor-fail"), "w").close()
        self.g.wait_for(lambda: not alive(default_pid), 15, "the default group's sleep on alpha killed")
        self.g.wait_for(lambda: self.g.where("default") == ["bravo"], 15, "default running on bravo")
        self.assertTrue(alive(db_pid), "the fence of the default group killed db's process")
        self.assertEqual(self.g.where("db"), ["alpha"])


class CleanUpGroups(unittest.TestCase):
    """freehad --clean-up (ExecStopPost=) after a kill -9 runs the stophasrv of every group at once."""

    def setUp(self):
        self.g = GroupCluster(["alpha", "bravo"], group_settings="Nodes=alpha bravo\n",
                              services_settings="Nodes=alpha bravo\n")
        self.c = self.g.c
        stop_at_end(self, self.g)
        alpha = self.c["alpha"]
        os.makedirs(alpha.path("run"))
        self.c.start("bravo")
        # As systemd's RuntimeDirectory=freeha sets it for ExecStart= and ExecStopPost=.
        self.c.start("alpha", env={"RUNTIME_DIRECTORY": alpha.path("run")})
        self.g.wait_for(lambda: self.g.placement() == {g: ["alpha"] for g in GROUPS}, 15, "every group on alpha")

    def test_every_groups_stophasrv_cleans_up_within_the_deadline(self):
        alpha = self.c["alpha"]
        alpha.proc.kill()
        alpha.proc.wait()
        pids = {g: sleep_pid(alpha, g) for g in GROUPS}
        env = {**os.environ, "STATE_DIRECTORY": alpha.path("state"), "RUNTIME_DIRECTORY": alpha.path("run")}
        started = time.monotonic()
        r = subprocess.run([FREEHAD, "--config", alpha.path("freehad.conf"), "--no-bus", "--clean-up"],
                           capture_output=True, text=True, env=env, timeout=30)
        took = time.monotonic() - started
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLess(took, 0.6)  # DeadTime=1s - 2 x Interval=200ms, for all of them together
        for group in GROUPS:
            last = events(alpha, group, "stophasrv")[-1]
            self.assertEqual(last[2:4], ["group=" + group, "state=STOPPING"], last)
            self.assertFalse(runs(alpha, group), group)
            self.g.wait_for(lambda: not alive(pids[group]), 2, f"{group}'s sleep stopped")  # noqa: B023


if __name__ == "__main__":
    unittest.main()
