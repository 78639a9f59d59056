"""Process tests: three real freehad daemons on loopback (DESIGN.md section 5, tier 3)."""
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import FREEHACTL, FENCE, FREEHAD, TAKEOVER_SLACK, Cluster, send_udp, stop_at_end  # noqa: E402

DEAD = 1.0  # default DeadTime


class LoopbackCluster(unittest.TestCase):
    names = ["alpha", "bravo", "charlie"]
    settings = ""

    def setUp(self):
        self.c = Cluster(self.names, settings=self.settings)
        stop_at_end(self, self.c)
        self.c.start_all()
        self.c.wait_for(lambda: self.c.running() == ["alpha"], 10, "alpha RUNNING")

    def starts(self, name):
        return len(self.c[name].events("starthasrv"))


class Election(LoopbackCluster):
    def test_the_alphabetically_first_node_starts_and_only_it(self):
        time.sleep(2 * DEAD)
        self.assertEqual(self.c.running(), ["alpha"])
        self.assertEqual(self.starts("alpha"), 1)
        self.assertEqual(self.starts("bravo") + self.starts("charlie"), 0)
        for n in self.names:
            s = self.c[n].status()
            self.assertEqual(s["active_node"], "alpha")
            self.assertTrue(s["quorate"])
            self.assertEqual([x["state"] for x in s["nodes"]], ["RUNNING", "STANDBY", "STANDBY"])

    def test_kill9_of_the_active_daemon_fails_over_and_a_restarted_first_node_does_not_take_back(self):
        killed = time.monotonic()
        self.c["alpha"].proc.kill()
        took_over = self.c.wait_for(lambda: self.c.running() == ["bravo"], 5 * DEAD + TAKEOVER_SLACK, "bravo RUNNING")
        # About a dead time (freeha-safety(7)), then starthasrv.
        self.assertLess(took_over - killed, DEAD + TAKEOVER_SLACK)
        self.assertEqual(self.c["charlie"].view("alpha")["state"], "TIMEDOUT")
        self.assertEqual(self.starts("charlie"), 0)
        self.c["alpha"].remove("services-up")  # the machine's services died with it
        self.c.start("alpha")
        self.c.wait_for(lambda: self.c["alpha"].state() == "STANDBY", 5, "alpha STANDBY")
        time.sleep(3 * DEAD)
        self.assertEqual(self.c.running(), ["bravo"])
        self.assertEqual(self.starts("alpha"), 1)  # only the first start, before the kill


class Signals(LoopbackCluster):
    def test_sighup_on_the_first_node_stops_its_services_and_it_is_elected_again(self):
        self.c["alpha"].signal(signal.SIGHUP)
        self.c.wait_for(lambda: self.starts("alpha") == 2 and self.c.running() == ["alpha"], 5, "alpha restarted")
        kinds = [e[0] for e in self.c["alpha"].events() if e[0] not in ("alerthasrv", "monitorhasrv")]
        self.assertEqual(kinds, ["stophasrv", "starthasrv", "stophasrv", "starthasrv"])  # start-up clean-up first
        stop = self.c["alpha"].events("stophasrv")[-1][1]
        start = self.c["alpha"].events("starthasrv")[-1][1]
        self.assertLess(stop, start)
        self.assertTrue(self.c["alpha"].alive())
        self.assertEqual(self.starts("bravo"), 0)

    def test_sigterm_leaves_peers_seeing_stopping_until_the_dead_time_then_the_next_takes_over(self):
        self.c["alpha"].signal(signal.SIGTERM)
        self.assertEqual(self.c["alpha"].proc.wait(5), 0)
        stopped = time.monotonic()
        self.assertEqual(len(self.c["alpha"].events("stophasrv")), 2)  # start-up clean-up, then the real stop
        self.assertEqual(self.c["bravo"].view("alpha")["state"], "STOPPING")
        took_over = self.c.wait_for(lambda: self.c.running() == ["bravo"], 5 * DEAD + TAKEOVER_SLACK, "bravo RUNNING")
        self.assertGreater(took_over - stopped, 0.5 * DEAD)  # the "oops" grace period
        self.assertEqual(self.c["bravo"].view("alpha")["state"], "TIMEDOUT")

    def test_a_failing_monitor_errors_and_moves_the_services_usr2_clears_usr1_forces(self):
        self.c["alpha"].touch("monitor-fail")
        self.c.wait_for(lambda: self.c["alpha"].state() == "ERRORED", 5, "alpha ERRORED")
        self.c.wait_for(lambda: self.c.running() == ["bravo"], 5 * DEAD + TAKEOVER_SLACK, "bravo RUNNING")
        s = self.c["alpha"].status()
        self.assertTrue(s["errored"])
        self.assertIn("monitorhasrv exited with status 1", s["last_error"])
        self.assertEqual(len(self.c["alpha"].events("stophasrv")), 2)  # start-up clean-up, then the real stop
        time.sleep(2)
        self.assertEqual(self.c["alpha"].state(), "ERRORED")  # never restarts by itself

        self.c["alpha"].remove("monitor-fail")
        self.c["alpha"].signal(signal.SIGUSR2)
        self.c.wait_for(lambda: self.c["alpha"].state() == "STANDBY", 3, "alpha STANDBY")
        time.sleep(2 * DEAD)
        self.assertEqual(self.c.running(), ["bravo"])  # no fail-back

        bravos_term = self.c["bravo"].status()["term"]
        self.c["alpha"].signal(signal.SIGUSR1)
        self.c.wait_for(lambda: self.c.running() == ["alpha"], 5, "alpha forced RUNNING, bravo stepped down")
        self.assertGreater(self.c["alpha"].status()["term"], bravos_term)
        # bravo adopts the cluster's term from alpha's next heartbeat, one status write later
        self.c.wait_for(lambda: self.c["bravo"].status()["term"] == self.c["alpha"].status()["term"], 2,
                        "bravo adopts alpha's term")
        self.assertIn("dual-active resolved", self.c["bravo"].log())


class HangingMonitor(LoopbackCluster):
    settings = "[Services]\nMonitorTimeout=2s\n"

    def test_a_hanging_monitor_never_delays_heartbeats_and_ends_as_errored(self):
        self.c["alpha"].touch("monitor-hang")
        worst_age = 0
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and self.c["alpha"].state() != "ERRORED":
            for peer in ("bravo", "charlie"):
                v = self.c[peer].view("alpha")
                self.assertNotEqual(v["state"], "TIMEDOUT")
                worst_age = max(worst_age, v["last_heard_usec_ago"])
            time.sleep(0.05)
        self.assertEqual(self.c["alpha"].state(), "ERRORED")
        self.assertIn("timed out", self.c["alpha"].status()["last_error"])
        # Ages in the status file are as of its last write (on a change, or at its 10-s
        # refresh); a peer's timeout is a change, written within a second.
        self.assertLess(worst_age, (DEAD + 1.0) * 1e6)
        self.c.wait_for(lambda: self.c.running() == ["bravo"], 5 * DEAD + TAKEOVER_SLACK, "bravo RUNNING")




def keygen(path):
    return subprocess.run([FREEHACTL, "keygen", path], capture_output=True, text=True, timeout=10)


class HookProcesses(unittest.TestCase):
    """How freehad deals with what its hooks do to themselves: one node, quorum of one."""

    def setUp(self):
        self.c = Cluster(["alpha"], channels=lambda c, n: [f"unicast {n.address} 127.0.0.9"],  # nobody there
                         settings="[Services]\nMonitorInterval=100ms\n")
        stop_at_end(self, self.c)
        self.c.start_all()
        self.c.wait_for(lambda: self.c.running() == ["alpha"], 10, "alpha RUNNING")
        self.alpha = self.c["alpha"]

    def test_a_monitor_killed_by_any_signal_even_a_real_time_one_latches_an_error_and_freehad_lives_on(self):
        for signo, name in [(signal.SIGTERM, "SIGTERM"), (signal.SIGSEGV, "SIGSEGV"), (signal.SIGKILL, "SIGKILL"),
                            (signal.SIGRTMIN, "SIGRTMIN"), (signal.SIGRTMIN + 6, "SIGRTMIN+6"),
                            (signal.SIGRTMAX, f"SIGRTMIN+{signal.SIGRTMAX - signal.SIGRTMIN}")]:
            with open(self.alpha.path("monitor-signal"), "w") as f:
                f.write(str(int(signo)))
            self.c.wait_for(lambda: self.alpha.state() == "ERRORED", 5, f"a monitor killed by {name}")
            self.assertTrue(self.alpha.alive(), name)
            self.assertEqual(self.alpha.status()["last_error"], f"monitorhasrv killed by signal {name}")
            self.alpha.remove("monitor-signal")
            self.alpha.signal(signal.SIGUSR2)
            self.c.wait_for(lambda: self.c.running() == ["alpha"], 10, f"alpha RUNNING again after {name}")

    def test_children_that_keep_a_hooks_output_open_hold_a_bounded_number_of_descriptors(self):
        # freehad keeps forwarding the output of what a hook left running (a
        # background service's log lines), but for at most 32 such hooks: past
        # that the oldest is let go with a warning, so descriptors cannot run out.
        def fds():
            return len(os.listdir(f"/proc/{self.alpha.proc.pid}/fd"))
        before = fds()
        runs = len(self.alpha.events("monitorhasrv"))
        self.alpha.touch("monitor-leaves-child")
        self.c.wait_for(lambda: len(self.alpha.events("monitorhasrv")) >= runs + 40, 30, "40 more monitor runs")
        self.alpha.remove("monitor-leaves-child")
        self.assertEqual(self.alpha.state(), "RUNNING")  # every run still ended, and succeeded
        self.assertLessEqual(fds(), before + 32 + 2)
        self.assertIn("no longer logged: processes this hook left running still hold its output", self.alpha.log())


class Authentication(unittest.TestCase):
    def test_keygen_writes_64_random_bytes_owner_read_only_and_never_overwrites(self):
        c = Cluster(["alpha"])
        stop_at_end(self, c)
        path = os.path.join(c.dir, "authkey")
        r = keygen(path)
        self.assertEqual(r.returncode, 0, r.stderr)
        st = os.stat(path)
        self.assertEqual(st.st_size, 64)
        self.assertEqual(st.st_mode & 0o777, 0o400)
        first = open(path, "rb").read()
        r = keygen(path)
        self.assertEqual(r.returncode, 1)
        self.assertIn("already exists", r.stderr)
        self.assertEqual(open(path, "rb").read(), first)
        other = os.path.join(c.dir, "authkey2")
        keygen(other)
        self.assertNotEqual(open(other, "rb").read(), first)

    def test_a_short_or_group_readable_key_is_refused_naming_the_file(self):
        c = Cluster(["alpha", "bravo"])
        stop_at_end(self, c)
        path = os.path.join(c.dir, "key")
        for content, mode, expected in [(b"k" * 64, 0o640, "group or other may access it (mode 0640)"),
                                        (b"k" * 31, 0o400, "31 bytes; a key needs at least 32"),
                                        (None, None, "No such file or directory")]:
            if os.path.exists(path):
                os.chmod(path, 0o600)
                os.remove(path)
            if content is not None:
                with open(path, "wb") as f:
                    f.write(content)
                os.chmod(path, mode)
            c["alpha"].settings = f"[Cluster]\nAuthKeyFile={path}\n"
            with open(c["alpha"].path("freehad.conf"), "w") as f:
                f.write(c.config(c["alpha"]))
            for flag, status in [("--check-config", 1), ("--no-bus", 2)]:
                r = subprocess.run([FREEHAD, "--config", c["alpha"].path("freehad.conf"), flag],
                                   capture_output=True, text=True, timeout=10)
                self.assertEqual(r.returncode, status, r.stderr)
                self.assertIn(f"AuthKeyFile={path}: {expected}", r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)

    def test_nodes_sharing_the_key_form_the_cluster_and_a_wrong_key_node_is_never_admitted(self):
        c = Cluster(["alpha", "bravo", "charlie"])
        stop_at_end(self, c)
        good, bad = os.path.join(c.dir, "good"), os.path.join(c.dir, "bad")
        keygen(good)
        keygen(bad)
        for name in ("alpha", "bravo"):
            c[name].settings = f"[Cluster]\nAuthKeyFile={good}\n"
        c["charlie"].settings = f"[Cluster]\nAuthKeyFile={bad}\n"
        c.start_all()
        c.wait_for(lambda: c.running() == ["alpha"], 15, "alpha RUNNING with bravo")
        time.sleep(2)
        for name in ("alpha", "bravo"):
            s = c[name].status()
            self.assertNotIn("charlie", [n["name"] for n in s["nodes"]])
            self.assertGreater(s["packets"]["bad_signature"], 0)
            self.assertEqual(s["packets"]["unauthenticated"], 0)
        charlie = c["charlie"].status()
        self.assertEqual([n["name"] for n in charlie["nodes"]], ["charlie"])
        self.assertIn(charlie["state"], ("INITIAL", "STANDBY"))  # alone: waits for InitDead, never starts
        self.assertFalse(charlie["quorate"])
        self.assertEqual(len(c["charlie"].events("starthasrv")), 0)


class Quorum(unittest.TestCase):
    def test_a_lone_node_of_a_three_node_cluster_never_starts_services(self):
        c = Cluster(["alpha", "bravo", "charlie"], settings="[Heartbeat]\nInitDead=1s\n")
        stop_at_end(self, c)
        c.start("alpha")
        c.wait_for(lambda: c["alpha"].state() == "STANDBY", 5, "alpha STANDBY after InitDead")
        time.sleep(3)
        s = c["alpha"].status()
        self.assertEqual(s["state"], "STANDBY")
        self.assertFalse(s["quorate"])
        self.assertEqual(c["alpha"].events("starthasrv"), [])


class Fence(LoopbackCluster):
    def test_a_stop_forced_by_a_lost_lease_that_hangs_is_killed_then_cleaned_up(self):
        def sleepers():
            return set(subprocess.run(["pgrep", "-x", "-f", "sleep 1000"], capture_output=True, text=True).stdout.split())
        others = sleepers()  # whatever other runs left on this machine
        self.c["alpha"].touch("stop-hang")
        for peer in ("bravo", "charlie"):
            self.c[peer].signal(signal.SIGSTOP)
            self.addCleanup(self.c[peer].signal, signal.SIGCONT)
        self.c.wait_for(lambda: self.c["alpha"].state() == "STOPPING", 3 * DEAD, "alpha STOPPING on quorum loss")
        stopping = time.monotonic()
        self.c.wait_for(lambda: self.c["alpha"].state() == "STANDBY", 5, "alpha STANDBY once the stop is killed")
        self.assertGreater(time.monotonic() - stopping, FENCE * 0.8)
        self.assertLess(time.monotonic() - stopping, FENCE + 1.0)
        log = self.c["alpha"].log()
        self.assertIn("the stop did not end by its deadline: killing the services", log)
        self.assertIn("killing the services with SIGKILL", log)
        self.assertIn("killed with the services", log)
        # Then stophasrv ran once more, for what processes leave behind.
        self.assertIn("services killed; stophasrv cleans up what they left", log)
        self.assertEqual(len(self.c["alpha"].events("stophasrv")), 3)  # start-up, the hung one, the clean-up
        # The hook's whole process group went: its `sleep 1000` child too.
        self.assertEqual(sleepers() - others, set())


# starthasrv leaves two daemons that no process group reaches: one in a
# session of its own (setsid), one orphaned by a double fork.
DETACHING_START = """#!/bin/sh
d=$(dirname "$0")/..
echo "starthasrv $(date +%s.%N) state=$FREEHA_STATE" >> "$d/events.log"
setsid sh -c 'echo $$ > "$1/setsid.pid"; exec sleep 1000' sh "$d" </dev/null >/dev/null 2>&1 &
sh -c 'sh -c "echo \\$\\$ > \\"\\$1/forked.pid\\"; exec sleep 1000" sh "$1" &' sh "$d" </dev/null >/dev/null 2>&1
touch "$d/services-up"
"""


def process_running(pid):
    """Whether `pid` exists and has not exited (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


class DetachedServicesFence(unittest.TestCase):
    """Without a delegated cgroup freehad is a child subreaper: the fence reaches what starthasrv detached."""

    def setUp(self):
        self.c = Cluster(["alpha", "bravo", "charlie"])
        stop_at_end(self, self.c)
        self.daemons = []
        self.addCleanup(self.kill_daemons)  # on a failure, none is left behind
        for n in self.c.names:
            with open(self.c[n].path("hooks/starthasrv"), "w") as f:
                f.write(DETACHING_START)
        self.c.start_all()
        self.c.wait_for(lambda: self.c.running() == ["alpha"], 10, "alpha RUNNING")
        alpha = self.c["alpha"]

        def pid_in(name):
            try:
                with open(alpha.path(name)) as f:
                    return int(f.read())
            except (FileNotFoundError, ValueError):
                return None
        self.c.wait_for(lambda: pid_in("setsid.pid") and pid_in("forked.pid"), 5, "both daemons started")
        self.daemons = [pid_in("setsid.pid"), pid_in("forked.pid")]

    def kill_daemons(self):
        for pid in self.daemons:
            if process_running(pid):
                os.kill(pid, signal.SIGKILL)

    def test_a_fence_kills_daemons_that_left_the_hooks_process_group(self):
        alpha = self.c["alpha"]
        self.assertTrue(all(process_running(p) for p in self.daemons))
        # A lost quorum with a stophasrv that hangs: only the fence can stop the services.
        alpha.touch("stop-hang")
        for peer in ("bravo", "charlie"):
            self.c[peer].signal(signal.SIGSTOP)
            self.addCleanup(self.c[peer].signal, signal.SIGCONT)
        self.c.wait_for(lambda: alpha.state() == "STOPPING", 3 * DEAD, "alpha STOPPING on quorum loss")
        self.c.wait_for(lambda: alpha.state() == "STANDBY", 5, "alpha STANDBY once the stop is killed")
        self.assertIn("killing the services with SIGKILL", alpha.log())
        left = [p for p in self.daemons if process_running(p)]
        self.assertEqual(left, [], "daemons starthasrv detached survived the fence")
        self.assertIn("run in freehad's process tree (a child subreaper); a fence kills all of it", alpha.log())
        # They were reaped too: freehad, their subreaper, leaves no zombie.
        self.c.wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in self.daemons), 3, "the zombies reaped")


# starthasrv leaves a daemon that takes 1.5 s to exit on SIGTERM (and
# stamps the moment it is gone); stophasrv signals it and exits 0 at once.
LINGERING_START = """#!/bin/sh
d=$(dirname "$0")/..
echo "starthasrv $(date +%s.%N) state=$FREEHA_STATE" >> "$d/events.log"
setsid sh -c 'echo $$ > "$1/lingerer.pid"
    trap "sleep 1.5; date +%s.%N > \\"$1/lingerer.gone\\"; exit 0" TERM
    while :; do sleep 0.05; done' sh "$d" </dev/null >/dev/null 2>&1 &
touch "$d/services-up"
"""
SIGNALLING_STOP = """#!/bin/sh
d=$(dirname "$0")/..
echo "stophasrv $(date +%s.%N) state=$FREEHA_STATE" >> "$d/events.log"
[ -f "$d/lingerer.pid" ] && kill "$(cat "$d/lingerer.pid")"
rm -f "$d/services-up" "$d/lingerer.pid"
exit 0
"""


class StopConfirmedWithoutCgroup(LoopbackCluster):
    """Run by hand, a stop also counts only once freehad's process tree holds nothing of the services."""

    def setUp(self):
        self.c = Cluster(self.names)
        self.addCleanup(self.kill_lingerers)  # after stop_all
        stop_at_end(self, self.c)
        for n in self.c.names:
            for hook, text in (("starthasrv", LINGERING_START), ("stophasrv", SIGNALLING_STOP)):
                with open(self.c[n].path("hooks/" + hook), "w") as f:
                    f.write(text)
        self.c.start_all()
        self.c.wait_for(lambda: self.c.running() == ["alpha"], 10, "alpha RUNNING")
        self.c.wait_for(lambda: os.path.exists(self.c["alpha"].path("lingerer.pid")), 5, "the daemon started")

    def kill_lingerers(self):
        """Every daemon this cluster's hooks left (freehad killed with SIGKILL stops none)."""
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().decode(errors="replace")
                if "lingerer.pid" in cmdline and self.c.dir in cmdline:
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass

    def test_the_next_start_waits_for_the_daemon_stophasrv_signalled(self):
        alpha = self.c["alpha"]
        hup = time.time()
        alpha.signal(signal.SIGHUP)  # alpha stops its services; then it is elected again at once

        def starts():
            return [e[1] for n in self.c.names for e in self.c[n].events("starthasrv") if e[1] > hup]
        self.c.wait_for(lambda: starts(), 10, "the services started again")
        self.assertTrue(os.path.exists(alpha.path("lingerer.gone")),
                        "the services started again while the daemon stophasrv signalled still ran")
        with open(alpha.path("lingerer.gone")) as f:
            gone = float(f.read())
        self.assertGreater(min(starts()), gone)
        self.assertIn("waiting for the processes it stopped to exit", alpha.log())


class NoCompleteFence(unittest.TestCase):
    def test_quorum_mode_refuses_to_start_without_a_cgroup_or_a_subreaper(self):
        # In a PID namespace of its own with the outer /proc still mounted,
        # freehad cannot walk its process tree: it has no complete fence.
        if subprocess.run(["unshare", "--user", "--map-root-user", "--pid", "--fork", "true"]).returncode != 0:
            self.skipTest("no unprivileged PID namespaces here")
        c = Cluster(["alpha", "bravo", "charlie"])
        conf = c["alpha"].path("freehad.conf")
        with open(conf, "w") as f:
            f.write(c.config(c["alpha"]))
        p = subprocess.Popen(["unshare", "--user", "--map-root-user", "--pid", "--fork", "--kill-child", FREEHAD,
                              "--config", conf, "--no-bus"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _, stderr = p.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            _, stderr = p.communicate()
            self.fail("freehad started in quorum mode without a complete fence: " + stderr)
        self.assertEqual(p.returncode, 1, stderr)
        errors = [line for line in stderr.splitlines() if "no complete fence" in line]
        self.assertEqual(len(errors), 1, stderr)
        self.assertIn("no subreaper (/proc does not show freehad's own PID namespace)", errors[0])
        self.assertIn("a holder bound by a lease (ExpectedNodes>2 with NoQuorumPolicy=stop, or Backend=etcd) needs one",
                      errors[0])
        self.assertEqual(c["alpha"].events("starthasrv"), [])


class Garbage(LoopbackCluster):
    def test_garbage_datagrams_are_counted_and_change_nothing(self):
        before = self.c["bravo"].status()["packets"]
        rng = random.Random(7)
        for i in range(500):
            send_udp(self.c["bravo"].address, self.c.port, bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200))))
            if i % 50 == 49:
                time.sleep(0.01)  # a burst, not a wall: the kernel may drop what overflows any socket buffer
        send_udp(self.c["bravo"].address, self.c.port, b"FHA1" + bytes(80))  # right magic, wrong version
        time.sleep(1.5)
        after = self.c["bravo"].status()["packets"]
        malformed = sum(after["malformed"].values()) - sum(before["malformed"].values())
        self.assertEqual(malformed, 501)
        self.assertGreaterEqual(after["malformed"]["bad_version"] - before["malformed"]["bad_version"], 1)
        self.assertEqual(self.c.running(), ["alpha"])
        self.assertEqual(self.starts("bravo") + self.starts("charlie"), 0)


class StateFile(LoopbackCluster):
    def test_dash_l_writes_freehas_text_state_file(self):
        path = os.path.join(self.c.dir, "freeha.state")
        self.c["charlie"].signal(signal.SIGTERM)
        self.c["charlie"].proc.wait(5)
        self.c.start("charlie", "-l", path)
        self.c.wait_for(lambda: os.path.exists(path) and "charlie [STANDBY]" in open(path).read(), 5, "state file")
        lines = open(path).read().splitlines()
        self.assertEqual([l.split()[0:2] for l in lines],
                         [["alpha", "[RUNNING]"], ["bravo", "[STANDBY]"], ["charlie", "[STANDBY]"]])


class Notify(LoopbackCluster):
    """The sd_notify protocol as systemd sees it, through a fake NOTIFY_SOCKET."""

    def test_ready_status_reload_stopping_and_watchdog(self):
        import socket
        path = os.path.join(self.c.dir, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(0.1)
        self.addCleanup(sock.close)
        messages = []

        def drain(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    messages.extend(sock.recv(4096).decode().split("\n"))
                except socket.timeout:
                    pass

        self.c["alpha"].signal(signal.SIGTERM)
        self.c["alpha"].proc.wait(5)
        self.c.wait_for(lambda: self.c.running() == ["bravo"], 5 + TAKEOVER_SLACK, "bravo RUNNING")
        self.c.start("alpha", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
        drain(1)
        self.assertIn("READY=1", messages)  # signals are handled from here on
        self.c["alpha"].signal(signal.SIGUSR1)  # force the services here, so that stops have work to do
        drain(2)
        self.assertTrue(any(m.startswith("STATUS=RUNNING; active: alpha") for m in messages), messages)
        self.assertGreaterEqual(messages.count("WATCHDOG=1"), 10)  # every third of a 400ms WatchdogSec
        self.assertFalse(any(m.startswith("WATCHDOG_USEC=") for m in messages))  # 400ms: within the lease

        del messages[:]
        self.c["alpha"].signal(signal.SIGHUP)
        drain(1.5)
        reload_at = messages.index("RELOADING=1")
        self.assertTrue(messages[reload_at + 1].startswith("MONOTONIC_USEC="))
        self.assertIn("READY=1", messages[reload_at:])

        self.c.wait_for(lambda: self.c.running() == ["alpha"], 5, "alpha elected again")
        del messages[:]
        self.c["alpha"].signal(signal.SIGTERM)
        self.assertEqual(self.c["alpha"].proc.wait(5), 0)
        drain(0.3)
        self.assertIn("STOPPING=1", messages)
        self.assertTrue(any(m.startswith("EXTEND_TIMEOUT_USEC=") for m in messages), messages)
        self.assertNotIn("WatchdogSec=", self.c["alpha"].log())  # 400ms is within DeadTime= less 2 x Interval=

    def notify_socket(self):
        import socket
        path = os.path.join(self.c.dir, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        self.addCleanup(sock.close)
        return path, sock

    def test_a_watchdog_longer_than_the_lease_allows_is_lowered_to_it(self):
        # The defaults (Interval=200ms, DeadTime=1s) allow 600ms: the unit's 5s
        # would end a hung holder only after a peer may have started the services.
        path, sock = self.notify_socket()
        sock.settimeout(2)
        self.c["alpha"].signal(signal.SIGTERM)
        self.c["alpha"].proc.wait(5)
        self.c.start("alpha", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "5000000"})
        first = sock.recv(4096).decode()
        self.assertEqual(first, "WATCHDOG=1\nWATCHDOG_USEC=600000")  # counted from the ping it comes with
        pings = []
        while len(pings) < 6:
            if sock.recv(4096).decode() == "WATCHDOG=1":
                pings.append(time.monotonic())
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        self.assertLess(max(gaps), 0.45, gaps)  # a third of 600ms, with the slack of a loaded machine
        self.assertIn("watchdog: WatchdogSec=5s lowered to 600ms", self.c["alpha"].log())

    def test_a_manager_that_stops_reading_never_stalls_the_loop(self):
        # Nobody reads the socket: its queue (net.unix.max_dgram_qlen, 10 here)
        # fills within two seconds of pings, and a blocking sd_notify would
        # then stop the loop, its heartbeats and its fence.
        path, sock = self.notify_socket()
        self.c["alpha"].signal(signal.SIGTERM)
        self.c["alpha"].proc.wait(5)
        self.c.wait_for(lambda: self.c.running() == ["bravo"], 5 + TAKEOVER_SLACK, "bravo RUNNING")
        self.c.start("alpha", env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "600000"})
        time.sleep(4)
        status = self.c["bravo"].status()
        alpha = next(n for n in status["nodes"] if n["name"] == "alpha")
        self.assertEqual(alpha["state"], "STANDBY")
        self.assertLess(alpha["last_heard_usec_ago"], 500000)  # alpha's heartbeats go on


class BadInput(unittest.TestCase):
    def run_freehad(self, *args):
        return subprocess.run([FREEHAD, *args], capture_output=True, text=True, timeout=10)

    def test_a_malformed_flag_exits_2_naming_it(self):
        r = self.run_freehad("-n", "lots", "-a", "127.0.0.1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("-n: [Cluster] ExpectedNodes=lots", r.stderr)
        r = self.run_freehad("--no-such-flag")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown option '--no-such-flag'", r.stderr)

    def test_a_malformed_config_key_exits_2_naming_file_and_line(self):
        c = Cluster(["alpha"])
        conf = os.path.join(c.dir, "bad.conf")
        with open(conf, "w") as f:
            f.write("[Cluster]\nName=x\n[Heartbeat]\nIntervall=1s\n")
        r = self.run_freehad("--config", conf)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.count("\n"), 1)  # one line
        self.assertIn(f"{conf}:4: [Heartbeat] unknown key 'Intervall'", r.stderr)
        r = self.run_freehad("--config", conf, "--check-config")
        self.assertEqual(r.returncode, 1)

    def test_a_missing_hook_is_a_start_up_error(self):
        c = Cluster(["alpha", "bravo"])
        os.remove(c["alpha"].path("hooks/monitorhasrv"))
        conf = c["alpha"].path("freehad.conf")
        with open(conf, "w") as f:
            f.write(c.config(c["alpha"]))
        r = self.run_freehad("--config", conf)
        self.assertEqual(r.returncode, 2)
        self.assertIn("hooks/monitorhasrv: No such file or directory", r.stderr)

    def test_check_config_prints_the_effective_config(self):
        c = Cluster(["alpha", "bravo"])
        conf = c["alpha"].path("freehad.conf")
        with open(conf, "w") as f:
            f.write(c.config(c["alpha"]))
        r = self.run_freehad("--config", conf, "--check-config", "-T", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("DeadTime=3s\n", r.stdout)
        self.assertIn("Channel=unicast 127.0.0.1 127.0.0.2\n", r.stdout)

    def test_check_config_prints_addresses_canonically_and_refuses_a_bad_one_in_one_line(self):
        c = Cluster(["alpha", "bravo"])
        conf = c["alpha"].path("freehad.conf")
        with open(conf, "w") as f:
            f.write(c.config(c["alpha"]) + "[Services]\nAddress=192.0.2.10/24 eth0\nAddress=2001:DB8:0::10/64\teth0  dad\n"
                    "AnnounceRefresh=30s\n")
        r = self.run_freehad("--config", conf, "--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Address=192.0.2.10/24 eth0\nAddress=2001:db8::10/64 eth0 dad\nAnnounceRefresh=30s\n", r.stdout)
        with open(conf, "a") as f:
            f.write("Address=192.0.2.10/25 eth1\n")
        with open(conf) as f:
            lines = f.read().splitlines()
        r = self.run_freehad("--config", conf, "--check-config")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)  # one line
        self.assertIn(f"{conf}:{len(lines)}: [Services] Address=192.0.2.10/25 eth1: 192.0.2.10 is already configured at "
                      f"{conf}:{len(lines) - 3} (Address=192.0.2.10/24 eth0)", r.stderr)

    def test_check_config_prints_groups_and_names_a_group_whose_hooks_are_missing(self):
        c = Cluster(["alpha", "bravo"])
        conf = c["alpha"].path("freehad.conf")
        web = c["alpha"].path("web-hooks")
        with open(conf, "w") as f:
            f.write(c.config(c["alpha"]) + f"[Group web]\nHooksDirectory={web}\nNodes=bravo alpha\n"
                    "[Group db]\nTarget=db.target\n")
        with open(conf) as f:
            line = f.read().splitlines().index(f"HooksDirectory={web}") + 1
        r = self.run_freehad("--config", conf, "--check-config")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)  # one line
        self.assertIn(f"{conf}:{line}: [Group web] HooksDirectory={web}: no such directory", r.stderr)
        shutil.copytree(c["alpha"].path("hooks"), web)
        r = self.run_freehad("--config", conf, "--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("\n[Group db]\nHooksDirectory=\nTarget=db.target\n", r.stdout)
        self.assertIn(f"\n[Group web]\nHooksDirectory={web}\nTarget=\n", r.stdout)
        self.assertIn("Nodes=bravo alpha\n", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
