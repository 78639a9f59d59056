"""Issue 20, black-box, on a namespaced node under a real systemd --user
manager (see nodes.py): with two service groups each runs its hooks in a
cgroup of its own below freehad's delegated one (services, services-db), and
the fence of one group (its stophasrv hangs past StopTimeout=) kills the
daemon its starthasrv detached and nothing of the other group's; the
journal lines about the group carry FREEHA_GROUP=db.
Exits 77 (skip) where the machine lacks root, namespaces, nftables or systemd.
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import nodes  # noqa: E402
from nodes import Cluster, start_all  # noqa: E402

# Each group's starthasrv leaves a daemon in a session of its own: `sleep 301`
# for the default group, `sleep 302` for db. db's stophasrv hangs (once) when
# /etc/freeha/db-stop-hang exists, so that only the fence can end its daemon.
DEFAULT_HOOKS = {
    "starthasrv": "setsid sleep 301 </dev/null >/dev/null 2>&1 &\ntouch /etc/freeha/services-up",
    "stophasrv": "pkill -f 'sleep 301'\nrm -f /etc/freeha/services-up",
    "monitorhasrv": "[ -f /etc/freeha/services-up ]",
}
DB_HOOKS = {
    "starthasrv": "setsid sleep 302 </dev/null >/dev/null 2>&1 &\ntouch /etc/freeha/db-up",
    "stophasrv": "[ -f /etc/freeha/db-stop-hang ] && rm -f /etc/freeha/db-stop-hang && sleep 1000\n"
                 "pkill -f 'sleep 302'\nrm -f /etc/freeha/db-up",
    "monitorhasrv": "[ -f /etc/freeha/db-fail ] && exit 1\n[ -f /etc/freeha/db-up ]",
}


def config(node):
    return (f"[Cluster]\nName=groupfence\nNodeName={node.name}\nExpectedNodes=1\n"
            f"[Heartbeat]\nChannel=broadcast {node.address}\n"
            "[Group db]\nHooksDirectory=/etc/freeha/db\nMonitorInterval=1s\nStopTimeout=1s\n")


def install(directory, hooks, prefix=""):
    os.makedirs(directory, exist_ok=True)
    for name, body in hooks.items():
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(nodes.HOOK.format(name=prefix + name, body=body))
        os.chmod(path, 0o755)


def journal(node, *match):
    return node.run("journalctl", "--user-unit", "freehad", "-o", "cat", "--no-pager", *match).stdout


def runs(node, pattern):
    return node.run("pgrep", "-f", pattern).returncode == 0


class GroupFence(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(["alpha"], config)
        alpha = cls.c["alpha"]
        install(alpha.etc("hooks"), DEFAULT_HOOKS)
        install(alpha.etc("db"), DB_HOOKS, prefix="db-")
        start_all(cls.c)
        cls.c.wait_for(lambda: runs(alpha, "sleep 301") and runs(alpha, "sleep 302"), 60,
                       "both groups' daemons running")

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()

    def test_the_fence_of_one_group_spares_the_other_groups_cgroup(self):
        alpha = self.c["alpha"]
        log = journal(alpha)
        self.assertRegex(log, r"\nhooks and everything they start run in the cgroup \S+/services; ")
        self.assertRegex(log, r"group db: hooks and everything they start run in the cgroup \S+/services-db; ")
        open(alpha.etc("db-stop-hang"), "w").close()
        open(alpha.etc("db-fail"), "w").close()
        self.c.wait_for(lambda: not runs(alpha, "sleep 302"), 15, "db's daemon killed")
        self.c.wait_for(lambda: "group db: state STOPPING -> ERRORED" in journal(alpha), 15, "db ERRORED")
        self.assertTrue(runs(alpha, "sleep 301"), "the default group's daemon was killed with db's")
        self.assertEqual(alpha.prop("State"), "RUNNING")  # the default group's
        # The lines about db carry its name as a field; the default group's do not.
        db_lines = journal(alpha, "FREEHA_GROUP=db")
        self.assertIn("group db: killing the services with SIGKILL", db_lines)
        self.assertIn("group db: state RUNNING -> STOPPING", db_lines)
        self.assertNotIn("\nstate ", "\n" + db_lines)



WEB_TARGET = """[Unit]
Description=The web group's services (test)
BindsTo=freehad.service
After=freehad.service
"""
WEB_MEMBER = """[Unit]
Description=The web group's service (test)
PartOf=web.target
[Service]
ExecStart=/bin/sleep infinity
[Install]
RequiredBy=web.target
"""


class TargetGroupAddedByReload(unittest.TestCase):
    """Target mode: a reload adds [Group web] Target=web.target to a node
    whose default group runs freeha-services.target; freehad starts web.target
    over the bus connection it already has, and a reload that removes the
    group stops it, leaving the default group's member running."""

    @classmethod
    def setUpClass(cls):
        def config(node):
            return (f"[Cluster]\nName=grouptarget\nNodeName={node.name}\nExpectedNodes=1\n"
                    f"[Heartbeat]\nChannel=broadcast {node.address}\n[Services]\nTarget=freeha-services.target\n")
        cls.config = staticmethod(config)
        cls.c = Cluster(["echo"], config, target_mode=True)

        def set_up():
            echo = cls.c["echo"]
            with open(echo.units("web.target"), "w") as f:
                f.write(WEB_TARGET)
            with open(echo.units("web-member.service"), "w") as f:
                f.write(WEB_MEMBER)
            echo.systemctl("daemon-reload", check=True)
            echo.systemctl("enable", "member.service", "web-member.service", check=True)
            start_all(cls.c)
            cls.c.wait_for(lambda: echo.show("member", "ActiveState") == "active", 60, "the default group's member")
        nodes.set_up_or_destroy(cls.c, set_up)

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()

    def reload(self, extra):
        echo = self.c["echo"]
        with open(echo.etc("freehad.conf"), "w") as f:
            f.write(self.config(echo) + extra)
        r = echo.ctl("reload-config")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_a_target_group_added_by_reload_starts_and_one_removed_stops(self):
        echo = self.c["echo"]
        self.assertEqual(echo.show("web-member", "ActiveState"), "inactive")
        self.reload("[Group web]\nTarget=web.target\n")
        self.c.wait_for(lambda: echo.show("web-member", "ActiveState") == "active", 30, "web.target started")
        self.reload("")
        self.c.wait_for(lambda: echo.show("web-member", "ActiveState") == "inactive", 30, "web.target stopped")
        self.assertEqual(echo.show("member", "ActiveState"), "active")
        self.assertIn("group web: group removed by a reload", journal(echo))

if __name__ == "__main__":
    unittest.main(verbosity=2)
