"""Process tests of freehad --clean-up, freehad.service's ExecStopPost=: after
freehad's death, stophasrv runs once, within DeadTime= - 2 x Interval=, only
when freehad's marker says its services may run; a clean-up that fails or
hangs is handed to SelfFence=."""
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import FREEHAD, Cluster, stop_at_end  # noqa: E402

DEADLINE = 0.6  # DeadTime=1s - 2 x Interval=200ms
MARKER = "services-may-run"


class CleanUp(unittest.TestCase):
    def setUp(self):
        self.c = Cluster(["alpha", "bravo"])
        stop_at_end(self, self.c)
        for node in self.c.nodes.values():
            os.makedirs(node.path("run"))
            # As systemd's RuntimeDirectory=freeha sets it for ExecStart= and ExecStopPost=.
            self.c.start(node.name, env={"RUNTIME_DIRECTORY": node.path("run")})
        self.c.wait_for(lambda: self.c.running() == ["alpha"], 10, "alpha RUNNING")
        self.c.wait_for(lambda: self.c["bravo"].state() == "STANDBY", 10, "bravo STANDBY")

    def kill9(self, name):
        node = self.c[name]
        node.proc.kill()
        node.proc.wait()
        return node

    def clean_up(self, node, wrapper=()):
        env = {**os.environ, "STATE_DIRECTORY": node.path("state"), "RUNTIME_DIRECTORY": node.path("run")}
        started = time.monotonic()
        r = subprocess.run([*wrapper, FREEHAD, "--config", node.path("freehad.conf"), "--no-bus", "--clean-up"],
                           capture_output=True, text=True, env=env, timeout=30)
        return r, time.monotonic() - started

    def test_only_a_node_whose_services_may_run_keeps_the_marker(self):
        self.assertTrue(os.path.exists(self.c["alpha"].path("run/" + MARKER)))
        self.assertFalse(os.path.exists(self.c["bravo"].path("run/" + MARKER)))
        self.c["alpha"].signal(signal.SIGTERM)  # a confirmed stop, then the exit, removes it
        self.assertEqual(self.c["alpha"].proc.wait(timeout=10), 0)
        self.assertFalse(os.path.exists(self.c["alpha"].path("run/" + MARKER)))
        self.c.wait_for(lambda: self.c.running() == ["bravo"], 10, "bravo RUNNING")
        self.assertTrue(os.path.exists(self.c["bravo"].path("run/" + MARKER)))

    def test_a_standby_node_has_nothing_to_clean_up(self):
        bravo = self.kill9("bravo")
        stops = len(bravo.events("stophasrv"))
        r, _ = self.clean_up(bravo)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("nothing to clean up", r.stderr)
        self.assertEqual(len(bravo.events("stophasrv")), stops)

    def test_after_kill9_of_the_active_daemon_stophasrv_cleans_up_once_in_time(self):
        alpha = self.kill9("alpha")
        self.assertTrue(os.path.exists(alpha.path("services-up")))  # what the services left
        stops = len(alpha.events("stophasrv"))
        r, took = self.clean_up(alpha)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("stophasrv cleans up what they left, by 600ms from now", r.stderr)
        self.assertEqual(len(alpha.events("stophasrv")), stops + 1)
        self.assertIn("state=STOPPING", alpha.events("stophasrv")[-1][2])
        self.assertFalse(os.path.exists(alpha.path("services-up")))
        self.assertFalse(os.path.exists(alpha.path("run/" + MARKER)))
        self.assertLess(took, DEADLINE)
        # Once done, a second run (a restart's own ExecStopPost=) has nothing to do.
        r, _ = self.clean_up(alpha)
        self.assertIn("nothing to clean up", r.stderr)

    def test_a_clean_up_that_hangs_is_cut_at_the_deadline_and_selffence_none_says_so(self):
        alpha = self.kill9("alpha")
        alpha.touch("stop-hang")
        r, took = self.clean_up(alpha)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("self-fence needed but SelfFence=none", r.stderr)
        self.assertIn("stophasrv did not end within 600ms", r.stderr)
        self.assertGreater(took, DEADLINE * 0.9)
        self.assertLess(took, DEADLINE + 0.5)
        self.assertTrue(os.path.exists(alpha.path("run/" + MARKER)))  # not confirmed: the next run tries again

    def test_selffence_reboot_ends_the_pid_namespace_it_runs_in(self):
        # reboot(2) in a PID namespace of its own ends that namespace (its init
        # dies of SIGHUP), never the machine: the guard refuses to run anywhere else.
        unshare = ["unshare", "--pid", "--fork"] if os.geteuid() == 0 else \
            ["unshare", "--user", "--map-root-user", "--pid", "--fork"]
        if not shutil.which("unshare") or subprocess.run([*unshare, "true"], capture_output=True).returncode != 0:
            self.skipTest("cannot create a PID namespace here")
        alpha = self.kill9("alpha")
        alpha.touch("stop-hang")
        with open(alpha.path("freehad.conf"), "a") as f:
            f.write("[Services]\nSelfFence=reboot\n")
        guard = ["sh", "-c", '[ $$ -eq 1 ] || { echo "not in a PID namespace of its own"; exit 99; }; exec "$@"', "sh"]
        r, took = self.clean_up(alpha, wrapper=[*unshare, *guard])
        self.assertIn(r.returncode, (-signal.SIGHUP, 128 + signal.SIGHUP), r.stdout + r.stderr)
        self.assertIn("rebooting now (SelfFence=reboot)", r.stderr)
        self.assertLess(took, DEADLINE + 0.5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
