"""Issue 9's faults, black-box, on namespaced nodes under real systemd --user
managers (see nodes.py): the HA function never waits on D-Bus, a fence kills
everything the services started, and services started behind freehad's back
are stopped.

- A bus that accepts connections and never answers: the services start, freehad
  uses next to no CPU, and `systemctl stop` ends it promptly.
- The bus restarts under a running cluster: nothing moves, the API comes back.
- The active node is cut off while its stophasrv hangs: the fence (cgroup.kill)
  kills a daemon that starthasrv detached with setsid, before the majority
  starts the services elsewhere; then stophasrv cleans up.
- freehad itself is killed: systemd kills everything in its cgroup.
- stophasrv exits 0 at once while the daemon it signalled lingers: the node
  stays STOPPING (and no peer starts) until the daemon is gone; a daemon that
  never goes is killed at StopTimeout=, then stophasrv cleans up.
- Target mode: the target started by hand on a standby is stopped within a second.
- Target mode: the bus restarts while the holder stops its target: the holder
  announces STANDBY (and a peer starts) only once its units are down.
- The holder's journald is stopped with its queues full: the holder keeps
  heartbeating, drops and counts the log lines the journal cannot take, and
  when cut off stops its services before a peer starts them.
Exits 77 (skip) where the machine lacks root, namespaces, nftables or systemd.
"""
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import nodes  # noqa: E402
from nodes import Cluster, start_all  # noqa: E402

UNEXPECTED_SERVICES = "0df616cb6dbe41d693499d359ca03b6e"

# starthasrv leaves a daemon running in a session of its own (as init
# scripts and daemon() do), ticking into /etc/freeha/ticks; stophasrv stops
# it, hanging first (once) when /etc/freeha/stop-hang exists.
TICKER_HOOKS = {
    "starthasrv": "setsid sh -c 'echo $$ > /etc/freeha/ticker.pid; "
                  "while :; do date +%s.%N >> /etc/freeha/ticks; sleep 0.02; done' "
                  "</dev/null >/dev/null 2>&1 &\ntouch /etc/freeha/services-up",
    "stophasrv": "[ -f /etc/freeha/stop-hang ] && rm -f /etc/freeha/stop-hang && sleep 1000\n"
                 "[ -f /etc/freeha/ticker.pid ] && kill $(cat /etc/freeha/ticker.pid) 2>/dev/null\n"
                 "rm -f /etc/freeha/services-up /etc/freeha/ticker.pid",
    "monitorhasrv": "[ -f /etc/freeha/services-up ]",
}

HUNG_BUS = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path=/run/user/0/hung-bus</listen><auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_type="method_call"/>
    <deny receive_type="method_return"/><deny receive_type="error"/><deny receive_type="signal"/>
    <deny receive_type="method_call"/>
  </policy>
</busconfig>
"""


VIP = f"{nodes.SUBNET}.100"


def config(cluster_name, expected=3, extra=""):
    def make(node):
        return (f"[Cluster]\nName={cluster_name}\nNodeName={node.name}\nExpectedNodes={expected}\n"
                f"[Heartbeat]\nChannel=broadcast {node.address}\n{extra}")
    return make


def install_hooks(node, hooks):
    for name, body in hooks.items():
        with open(node.etc("hooks", name), "w") as f:
            f.write(nodes.HOOK.format(name=name, body=body))


def status(node):
    r = node.run("cat", "/run/user/0/freeha/status.json")
    return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else None


def state(node):
    s = status(node)
    return s["state"] if s else None


def ticks(node):
    try:
        with open(node.etc("ticks")) as f:
            return [float(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def running(c):
    """The nodes whose freehad says RUNNING over D-Bus."""
    return [c[n] for n in c.names if c[n].prop("State") == "RUNNING"]


def journal(node, *match):
    r = node.run("journalctl", "--user-unit", "freehad", "-o", "cat", "--no-pager", *match)
    return r.stdout


class HungBus(unittest.TestCase):
    """alpha's freehad talks to a bus that accepts it and never answers."""

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(["alpha"], config("hung", expected=1))
        alpha = cls.c["alpha"]
        with open(alpha.etc("hung-bus.conf"), "w") as f:
            f.write(HUNG_BUS)
        with open(alpha.units("freehad.service.d", "hung-bus.conf"), "w") as f:
            f.write("[Service]\nEnvironment=DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/hung-bus\n")
        alpha.systemctl("daemon-reload", check=True)
        r = alpha.run("systemd-run", "--user", "--unit", "hung-bus", "dbus-daemon", "--nofork",
                      "--config-file=/etc/freeha/hung-bus.conf")
        assert r.returncode == 0, r.stderr
        cls.c.wait_for(lambda: alpha.run("test", "-S", "/run/user/0/hung-bus").returncode == 0, 10, "the hung bus")

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()

    def test_services_start_cpu_stays_low_and_stop_is_prompt(self):
        alpha = self.c["alpha"]
        started = time.monotonic()
        r = alpha.systemctl("start", "freehad", timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)  # READY=1 did not wait for the bus
        self.assertLess(time.monotonic() - started, 10)
        self.c.wait_for(lambda: state(alpha) == "RUNNING", 15, "alpha RUNNING beside the hung bus")
        before = alpha.cpu_seconds()
        time.sleep(3)
        used = alpha.cpu_seconds() - before
        self.assertLess(used, 0.3, f"freehad used {used:.2f}s of CPU in 3s")
        stopping = time.monotonic()
        r = alpha.systemctl("stop", "freehad", timeout=30)
        took = time.monotonic() - stopping
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLess(took, 5, "SIGTERM must end freehad within its stop hook's time")
        self.assertEqual(alpha.show("freehad", "Result"), "success")
        self.assertTrue(alpha.events("stophasrv"))
        print(f"\nhung bus: RUNNING, {used:.3f}s CPU in 3s, stopped in {took:.2f}s", file=sys.stderr)


class BusRestart(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(["alpha", "bravo", "charlie"], config("busrestart"))
        start_all(cls.c)
        cls.c.wait_for(lambda: len(running(cls.c)) == 1, 60,
                       "one node RUNNING")

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()

    def test_a_reload_that_lowers_the_watchdog_never_ends_freehad(self):
        # DeadTime=3s allows a 2.8s watchdog (pings 933ms apart); back to 1s it
        # is 600ms: the manager must count that from a fresh ping, and the next
        # ping must follow the new period, or systemd ends freehad.
        node = [self.c[n] for n in self.c.names if self.c[n].prop("State") == "STANDBY"][0]
        dropin = node.etc("freehad.conf.d", "watchdog.conf")
        os.makedirs(os.path.dirname(dropin), exist_ok=True)
        self.addCleanup(lambda: os.path.exists(dropin) and os.unlink(dropin))
        for _ in range(4):
            with open(dropin, "w") as f:
                f.write("[Heartbeat]\nDeadTime=3s\nInterval=100ms\n")
            self.assertEqual(node.ctl("reload-config").returncode, 0)
            time.sleep(1.3)
            os.unlink(dropin)
            self.assertEqual(node.ctl("reload-config").returncode, 0)
            time.sleep(1.3)
        self.assertEqual(node.show("freehad", "NRestarts"), "0", journal(node))
        self.assertNotIn("Watchdog timeout", node.run("journalctl", "--user", "-o", "cat", "--no-pager").stdout)
        self.assertEqual(node.prop("State"), "STANDBY")

    def test_restarting_the_bus_on_the_active_node_moves_nothing(self):
        active = running(self.c)[0]
        events = {n: len(self.c[n].events()) for n in self.c.names}
        r = active.systemctl("restart", "dbus")
        self.assertEqual(r.returncode, 0, r.stderr)
        restarted = time.monotonic()
        self.c.wait_for(lambda: active.prop("State") == "RUNNING", 15, "the API back")
        back = time.monotonic() - restarted
        time.sleep(2)
        self.assertEqual(active.prop("State"), "RUNNING")
        self.assertEqual(active.show("freehad", "NRestarts"), "0")
        for n in self.c.names:  # no hook ran anywhere: the services never moved
            self.assertEqual([e for e in self.c[n].events()[events[n]:] if not e[0].startswith("monitorhasrv")], [], n)
        self.c.wait_for(lambda: "answers again" in journal(active), 10, "the end of the outage logged")
        log = journal(active)
        # Once per connection: the API's, and the one that drives systemd and watches for a shutdown.
        self.assertEqual(log.count("lost the connection to the user bus; the D-Bus API"), 1, log)
        self.assertLessEqual(log.count("lost the connection to the user bus"), 2, log)
        print(f"\nbus restart on {active.name}: API answered again after {back:.2f}s; nothing moved", file=sys.stderr)


class Fence(unittest.TestCase):
    """The active node's services include a daemon starthasrv detached with setsid."""

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(["alpha", "bravo", "charlie"], config("fence"))
        for n in cls.c.names:
            install_hooks(cls.c[n], TICKER_HOOKS)
        start_all(cls.c)
        cls.c.wait_for(lambda: len(running(cls.c)) == 1, 60,
                       "one node RUNNING")

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()

    def active(self):
        return running(self.c)[0]

    def test_1_the_fence_kills_a_detached_daemon_before_the_majority_starts_it(self):
        active = self.active()
        self.assertIn("run in the cgroup", journal(active))  # the services cgroup is in use
        self.c.wait_for(lambda: len(ticks(active)) > 5, 5, "the detached daemon ticking")
        open(active.etc("stop-hang"), "w").close()  # its stophasrv will hang
        isolated = time.time()
        active.isolate()
        others = [self.c[n] for n in self.c.names if self.c[n] is not active]
        self.c.wait_for(lambda: any(n.events("starthasrv") and float(n.events("starthasrv")[-1][1]) > isolated
                                    for n in others), 15, "another node starting the services")
        taker = next(n for n in others if n.events("starthasrv") and float(n.events("starthasrv")[-1][1]) > isolated)
        started = float(taker.events("starthasrv")[-1][1])
        last_tick = ticks(active)[-1]
        self.assertLess(last_tick, started, "the detached daemon still ran when the majority started the services")
        self.assertEqual(active.run("pgrep", "-f", "etc/freeha/ticks").returncode, 1, "the ticker survived")
        # The start-up clean-up, the stop that hung and was killed, then the clean-up after the kill.
        self.c.wait_for(lambda: len(active.events("stophasrv")) == 3 and len(active.events("stophasrv.done")) == 2, 10,
                        "the clean-up stophasrv")
        log = journal(active)
        self.assertIn("killing the services with SIGKILL", log)
        self.assertIn("services killed; stophasrv cleans up what they left", log)
        print(f"\nfence: the detached daemon's last tick {started - last_tick:.3f}s before {taker.name}'s "
              f"starthasrv ({last_tick - isolated:.3f}s after the isolation)", file=sys.stderr)
        active.heal()

    def test_2_killing_freehad_leaves_no_service_running(self):
        self.c.wait_for(lambda: len(running(self.c)) == 1, 30,
                        "one node RUNNING")
        active = self.active()
        self.c.wait_for(lambda: active.run("pgrep", "-f", "etc/freeha/ticks").returncode == 0, 5, "the ticker")
        active.run("kill", "-9", str(active.main_pid()), check=True)
        killed = time.time()
        self.c.wait_for(lambda: active.run("pgrep", "-f", "etc/freeha/ticks").returncode == 1, 5,
                        "systemd to kill what was left in freehad's cgroup")
        others = [self.c[n] for n in self.c.names if self.c[n] is not active]
        self.c.wait_for(lambda: any(n.events("starthasrv") and float(n.events("starthasrv")[-1][1]) > killed
                                    for n in others), 20, "another node starting the services")
        taker = next(n for n in others if n.events("starthasrv") and float(n.events("starthasrv")[-1][1]) > killed)
        self.assertLess(ticks(active)[-1], float(taker.events("starthasrv")[-1][1]))


# starthasrv leaves a daemon (in a session of its own) that takes 1.5 s to
# exit on SIGTERM, or never exits when /etc/freeha/linger-forever exists;
# stophasrv sends the SIGTERM and exits 0 at once, as `kill $(cat pidfile)` does.
LINGERING_HOOKS = {
    "starthasrv": "setsid sh -c 'echo $$ > /etc/freeha/lingerer.pid; "
                  "trap \"[ -f /etc/freeha/linger-forever ] && while :; do sleep 0.05; done; sleep 1.5; "
                  "date +%s.%N > /etc/freeha/lingerer.gone; exit 0\" TERM; "
                  "while :; do sleep 0.05; done' </dev/null >/dev/null 2>&1 &\n"
                  "touch /etc/freeha/services-up",
    "stophasrv": "[ -f /etc/freeha/lingerer.pid ] && kill $(cat /etc/freeha/lingerer.pid)\n"
                 "rm -f /etc/freeha/services-up /etc/freeha/lingerer.pid",
    "monitorhasrv": "[ -f /etc/freeha/services-up ]",
}
STOP_TIMEOUT = 3.0


class StopConfirmedByWhatIsLeft(unittest.TestCase):
    """A stop counts once the services cgroup is empty, not when stophasrv exits 0."""

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(["alpha", "bravo", "charlie"],
                        config("linger", extra=f"[Services]\nStopTimeout={STOP_TIMEOUT:g}s\n"))
        for n in cls.c.names:
            install_hooks(cls.c[n], LINGERING_HOOKS)
        start_all(cls.c)
        cls.c.wait_for(lambda: len(running(cls.c)) == 1, 60, "one node RUNNING")

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()

    def lingerer(self, node):
        return node.run("pgrep", "-f", "etc/freeha/lingerer.pid").returncode == 0

    def switch_over(self):
        """Hands the services from the active node to another; returns both and when the hand-over began."""
        self.c.wait_for(lambda: len(running(self.c)) == 1, 30, "one node RUNNING")
        active = running(self.c)[0]
        taker = next(self.c[n] for n in self.c.names if self.c[n] is not active)
        self.c.wait_for(lambda: self.lingerer(active), 5, "the daemon running")
        if os.path.exists(active.etc("lingerer.gone")):
            os.remove(active.etc("lingerer.gone"))
        began = time.time()
        ctl = active.popen(nodes.FREEHACTL, "--user", "switchover", taker.name)
        self.addCleanup(ctl.communicate)
        return active, taker, began

    def test_1_standby_waits_for_the_daemon_stophasrv_signalled(self):
        active, taker, began = self.switch_over()
        self.c.wait_for(lambda: active.prop("State") == "STANDBY", 10, "the active node STANDBY")
        self.assertTrue(os.path.exists(active.etc("lingerer.gone")),
                        "STANDBY announced while the daemon stophasrv signalled still ran")
        with open(active.etc("lingerer.gone")) as f:
            gone = float(f.read())
        self.c.wait_for(lambda: taker.prop("State") == "RUNNING", 15, f"{taker.name} RUNNING")
        started = float(taker.events("starthasrv")[-1][1])
        self.assertGreater(started, gone, f"{taker.name} started the services while the old daemon still ran")
        self.assertIn("waiting for the processes it stopped to exit", journal(active))
        print(f"\nlingering daemon: gone {gone - began:.2f}s after the switchover began, "
              f"{taker.name}'s starthasrv {started - gone:.3f}s later", file=sys.stderr)

    def test_2_a_daemon_that_outlives_stop_timeout_is_killed_then_stophasrv_cleans_up(self):
        self.c.wait_for(lambda: len(running(self.c)) == 1, 30, "one node RUNNING")
        active = running(self.c)[0]
        open(active.etc("linger-forever"), "w").close()
        self.addCleanup(lambda: os.path.exists(active.etc("linger-forever")) and os.remove(active.etc("linger-forever")))
        stops = len(active.events("stophasrv"))
        active, taker, began = self.switch_over()
        self.c.wait_for(lambda: active.prop("State") == "STANDBY", STOP_TIMEOUT + 10, "the active node STANDBY")
        standby = time.time()
        self.assertFalse(self.lingerer(active), "the lingering daemon survived the stop")
        self.assertGreater(standby - began, STOP_TIMEOUT * 0.9, "STANDBY before StopTimeout= while the daemon ran")
        others = [self.c[n] for n in self.c.names if self.c[n] is not active]
        self.c.wait_for(lambda: any(n.prop("State") == "RUNNING" for n in others), 15, "another node RUNNING")
        for n in others:
            self.assertTrue(all(float(e[1]) < began or float(e[1]) > began + STOP_TIMEOUT * 0.9
                                for e in n.events("starthasrv")), f"{n.name} started beside the lingering daemon")
        log = journal(active)
        self.assertIn("still run at its timeout: killing them with SIGKILL", log)
        # The stop failed: the core killed (nothing was left) and stophasrv cleaned up once more.
        self.assertIn("services killed; stophasrv cleans up what they left", log)
        self.assertEqual(len(active.events("stophasrv")), stops + 2)


# Run inside a node, with its journald stopped: fills the native socket's
# datagram queue and the stdout socket's listen backlog until the kernel says
# EAGAIN, prints both counts, then holds the connections.
JOURNAL_FILLER = r"""
import resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
native = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
native.setblocking(False)
datagrams = 0
try:
    while True:
        native.sendto(b"MESSAGE=filler\n", "/run/systemd/journal/socket")
        datagrams += 1
except BlockingIOError:
    pass
streams = []
try:
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # never sends its header: journald waits for it
        s.setblocking(False)
        s.connect("/run/systemd/journal/stdout")
        streams.append(s)
except BlockingIOError:
    pass
print(datagrams, len(streams), flush=True)
time.sleep(3600)
"""

# On the cluster's bridge, in a namespace without freehad: the arrival time
# and sender of every heartbeat, one line each. The time is the kernel's
# (SO_TIMESTAMPNS, on the wall clock), not when this listener got to read the
# datagram: a listener descheduled for a moment must not look like a holder
# that sent late. 35 is SO_TIMESTAMPNS (= SCM_TIMESTAMPNS) on Linux; Python's
# socket module does not name it.
HEARTBEAT_LISTENER = r"""
import socket, struct
SO_TIMESTAMPNS = 35
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
s.bind(("", 3891))
print("listening", flush=True)
while True:
    _, ancillary, _, (address, _) = s.recvmsg(65536, 64)
    [stamp] = [data for level, kind, data in ancillary if (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS)]
    seconds, nanoseconds = struct.unpack("qq", stamp[:16])
    print(f"{seconds}.{nanoseconds:09d} {address}", flush=True)
"""

# The ticker of TICKER_HOOKS, and a monitor that says it ran, and prints
# CHATTY_LINES lines when /etc/freeha/chatty exists: more than freehad's log
# queue holds.
CHATTY_LINES = 3000
CHATTY_HOOKS = dict(TICKER_HOOKS, monitorhasrv=f"echo monitor checked\n"
                                               f"[ -f /etc/freeha/chatty ] && seq {CHATTY_LINES} | "
                                               f"sed 's/^/chatty monitor line /'\n[ -f /etc/freeha/services-up ]")


class JournalStall(unittest.TestCase):
    """The holder's journald is stopped (SIGSTOP) with its queues full (issue 16)."""

    INTERVAL = 0.2  # Interval= (the default)
    STALL = 4.0     # how long the holder runs beside its stopped journald before it is cut off

    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(["alpha", "bravo", "charlie"], config("journalstall", extra="[Services]\nMonitorInterval=1s\n"))
        for n in cls.c.names:
            install_hooks(cls.c[n], CHATTY_HOOKS)
        start_all(cls.c)
        cls.c.wait_for(lambda: [state(cls.c[n]) for n in cls.c.names].count("RUNNING") == 1, 60, "one node RUNNING")

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()

    def listen(self):
        """Starts the heartbeat listener; returns a function that reads what it heard as (time, address)."""
        client = self.c.add_client("listener")
        path = os.path.join(self.c.dir, "heartbeats.log")
        out = open(path, "w")
        p = subprocess.Popen(["ip", "netns", "exec", client.netns, "python3", "-c", HEARTBEAT_LISTENER], stdout=out)
        out.close()
        self.addCleanup(p.wait)
        self.addCleanup(p.kill)
        self.c.wait_for(lambda: os.path.getsize(path) > 0, 10, "the heartbeat listener")

        def heard():
            with open(path) as f:
                rows = [line.split() for line in f if line[0].isdigit()]
            return [(float(t), a) for t, a in rows]
        return heard

    def test_the_holder_heartbeats_and_fences_beside_a_stopped_journal(self):
        holder = next(self.c[n] for n in self.c.names if state(self.c[n]) == "RUNNING")
        others = [self.c[n] for n in self.c.names if self.c[n] is not holder]
        heard = self.listen()
        self.c.wait_for(lambda: len(ticks(holder)) > 5, 5, "the ticker on the holder")
        # A hook's output goes to the journal under its name while journald takes it.
        self.c.wait_for(lambda: "monitor checked" in holder.run("journalctl", "-t", "monitorhasrv", "-o", "cat",
                                                                "--no-pager").stdout, 10, "the monitor's output")
        journald = holder.run("pidof", "systemd-journald", check=True).stdout.split()[0]
        stalled = time.time()
        holder.run("kill", "-STOP", journald, check=True)
        self.addCleanup(lambda: holder.init and holder.run("kill", "-CONT", journald))
        filler = holder.popen("python3", "-c", JOURNAL_FILLER)
        self.addCleanup(filler.stdout.close)
        self.addCleanup(filler.wait)
        self.addCleanup(filler.kill)
        datagrams, streams = (int(x) for x in filler.stdout.readline().split())
        # From here on neither systemd nor the bus is asked anything: both log to the stopped journal.
        open(holder.etc("chatty"), "w").close()  # the monitor's output: more lines than the log queue holds
        time.sleep(self.STALL)
        isolated = time.time()
        holder.isolate()
        self.c.wait_for(lambda: any(float(e[1]) > stalled for n in others for e in n.events("starthasrv")), 20,
                        "another node starting the services")
        started = min(float(e[1]) for n in others for e in n.events("starthasrv") if float(e[1]) > stalled)
        time.sleep(0.5)  # a ticker still alive ticks again meanwhile
        last_tick = ticks(holder)[-1]
        arrivals = [stalled] + [t for t, a in heard() if a == holder.address and stalled < t < isolated] + [isolated]
        gap = max(b - a for a, b in zip(arrivals, arrivals[1:]))
        dropped = (status(holder) or {}).get("log_lines_dropped")
        print(f"\njournal stalled on {holder.name} ({datagrams} datagrams, {streams} stream connections queued): "
              f"largest heartbeat gap {gap * 1000:.0f} ms over {isolated - stalled:.1f}s, "
              f"last tick {started - last_tick:.3f}s before the takeover, {dropped} log lines dropped",
              file=sys.stderr)
        # No heartbeat missed: a missed one makes a gap of two intervals, a loop that waits for the stopped
        # journal one of seconds. Half an interval is left for the holder's own scheduling, as in BusCaller
        # (CI builds beside the suites; BusCaller, then bounded like this test at 50 ms, saw a heartbeat 51 ms late).
        self.assertLess(gap, self.INTERVAL * 1.5, "the holder stopped heartbeating while its journald was stopped")
        self.assertLess(last_tick, started, "the holder's services still ran when a peer started them")
        self.assertGreater(dropped, CHATTY_LINES - 1100)  # beyond the queue: dropped and counted, never waited for
        holder.run("kill", "-CONT", journald, check=True)
        self.c.wait_for(lambda: "log line(s) dropped" in journal(holder), 20, "the count of dropped lines logged")
        self.assertIn("Log lines dropped (the journal did not take them in time): ", holder.ctl("status").stdout)
        holder.heal()


class TargetMode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(["alpha", "bravo", "charlie"],
                        config("byhand", extra=f"[Services]\nTarget=freeha-services.target\nAddress={VIP}/24 eth0\n"),
                        target_mode=True)
        for name in cls.c.names:
            node = cls.c[name]
            node.systemctl("daemon-reload", check=True)
            node.systemctl("enable", "member.service", check=True)
        start_all(cls.c)
        cls.c.wait_for(lambda: cls.c["alpha"].prop("State") == "RUNNING", 60, "alpha RUNNING")

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()

    def has_address(self, node):
        return f"inet {VIP}/24" in node.run("ip", "-4", "addr", "show", "dev", "eth0").stdout

    def test_0_the_address_is_on_the_holder_only(self):
        # Address= in target mode: up before the target starts, on the one holder.
        self.assertEqual([n for n in self.c.names if self.has_address(self.c[n])], ["alpha"])

    def test_1_the_target_started_on_a_standby_is_stopped_within_a_second(self):
        bravo = self.c["bravo"]
        self.assertEqual(bravo.show("member.service", "ActiveState"), "inactive")
        started = time.monotonic()
        r = bravo.systemctl("start", "freeha-services.target")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.c.wait_for(lambda: bravo.show("member.service", "ActiveState") == "inactive"
                        and bravo.show("freeha-services.target", "ActiveState") == "inactive", 5,
                        "the member stopped again on bravo")
        took = time.monotonic() - started
        self.assertLess(took, 1.5)
        self.assertEqual(status(bravo)["unexpected_services"], 1)
        self.assertEqual(status(bravo)["state"], "STANDBY")
        self.c.wait_for(lambda: f"MESSAGE_ID={UNEXPECTED_SERVICES}" in bravo.run(
            "journalctl", "--user-unit", "freehad", "-o", "export", "--no-pager",
            f"MESSAGE_ID={UNEXPECTED_SERVICES}").stdout, 10, "the error in the journal")
        # The holder carries on.
        self.assertEqual(self.c["alpha"].prop("State"), "RUNNING")
        self.assertEqual(self.c["alpha"].show("member.service", "ActiveState"), "active")
        print(f"\ntarget started by hand on bravo: stopped again after {took * 1000:.0f} ms", file=sys.stderr)

    def test_2_a_cut_off_holder_whose_member_will_not_stop_is_fenced_and_ends_standby(self):
        alpha = self.c["alpha"]
        os.makedirs(alpha.units("member.service.d"), exist_ok=True)
        with open(alpha.units("member.service.d", "hang.conf"), "w") as f:
            f.write("[Service]\nExecStop=/bin/sleep 1000\nTimeoutStopSec=infinity\nRestart=always\n")
        alpha.systemctl("daemon-reload", check=True)
        isolated = time.monotonic()
        alpha.isolate()
        # The graceful stop hangs; at the lease's end the fence kills the member
        # and stops the target (systemd cannot kill a target), and the stop ends.
        self.c.wait_for(lambda: alpha.prop("State") == "STANDBY", 15, "alpha fenced and STANDBY")
        fenced = time.monotonic() - isolated
        self.assertIn(alpha.show("member.service", "ActiveState"), ("inactive", "failed"))  # failed: SIGKILL
        self.assertEqual(alpha.show("freeha-services.target", "ActiveState"), "inactive")
        self.assertIn("killing the services with SIGKILL", journal(alpha))
        self.c.wait_for(lambda: self.c["bravo"].prop("State") == "RUNNING", 15, "bravo took over")
        self.assertIn(alpha.show("member.service", "ActiveState"), ("inactive", "failed"))  # Restart= did not bring it back
        alpha.heal()
        print(f"\ntarget-mode fence on alpha: STANDBY {fenced:.2f}s after the cut", file=sys.stderr)

    def test_3_a_hung_holder_is_ended_by_the_watchdog_and_its_target_stopped_before_a_takeover(self):
        # freehad lowers the unit's WatchdogSec=5s to DeadTime= less 2 x
        # Interval= (600ms); WatchdogSignal=SIGKILL ends it even stopped, and
        # BindsTo= stops the target with it, all before a peer may start it.
        self.c.wait_for(lambda: len(running(self.c)) == 1, 30, "one node RUNNING")
        holder = running(self.c)[0]
        self.assertEqual(holder.show("freeha-services.target", "ActiveState"), "active")
        pid = holder.main_pid()
        others = [self.c[n] for n in self.c.names if self.c[n] is not holder]
        holder.run("kill", "-STOP", str(pid), check=True)
        hung = time.monotonic()
        target_down = None
        try:
            while not any(n.prop("State") == "RUNNING" for n in others):
                self.assertLess(time.monotonic() - hung, 15, "no node took over")
                if target_down is None and holder.show("freeha-services.target", "ActiveState") == "inactive":
                    target_down = time.monotonic() - hung
            took_over = time.monotonic() - hung
        finally:
            holder.run("kill", "-CONT", str(pid))
        self.assertIsNotNone(target_down, "the hung holder's target still ran when a peer started it")
        self.assertLess(target_down, took_over)
        # Its Address= went with it (the unit's --clean-up) and came up on the new holder.
        self.assertFalse(self.has_address(holder))
        self.c.wait_for(lambda: [n.name for n in others if self.has_address(n)] == [n.name for n in running(self.c)],
                        10, "the address on the new holder only")
        self.c.wait_for(lambda: "Watchdog timeout" in journal(holder), 10, "systemd's watchdog line")
        self.assertIn(holder.show("member.service", "ActiveState"), ("inactive", "failed"))
        # Restart= brings it back (RestartSec=5s), as a standby.
        self.c.wait_for(lambda: holder.prop("State") == "STANDBY", 30, "the restarted holder STANDBY")
        print(f"\ntarget-mode holder hung: target down {target_down:.2f}s after SIGSTOP, "
              f"taken over {took_over:.2f}s after", file=sys.stderr)


class TargetModeBusRestart(unittest.TestCase):
    """The holder's dbus-daemon restarts while its target stops (issue 15, point 2).

    Under a real systemd, the stop waits for the bus and starts over on the
    new connection (StopUnit again on a member already stopping). The narrow
    window where the calls of the stop's next step find the connection closed
    (which ended the stop "stopped" on 2675370) cannot be hit from outside on
    purpose; tests/bus/test_unit_controller.cpp reproduces it.
    """

    @classmethod
    def setUpClass(cls):
        # A FenceTimeout= the bus restart fits in: the stop waits for the bus instead of exiting.
        extra = "DeadTime=5s\n[Services]\nTarget=freeha-services.target\nFenceTimeout=3s\n"
        cls.c = Cluster(["alpha", "bravo", "charlie"], config("busstop", extra=extra), target_mode=True)
        for name in cls.c.names:
            node = cls.c[name]
            # The member takes a while to stop: the stop is under way when the bus goes.
            os.makedirs(node.units("member.service.d"), exist_ok=True)
            with open(node.units("member.service.d", "slow-stop.conf"), "w") as f:
                f.write("[Service]\nExecStop=/bin/sleep 1\n")
            node.systemctl("daemon-reload", check=True)
            node.systemctl("enable", "member.service", check=True)
        start_all(cls.c)
        cls.c.wait_for(lambda: len(running(cls.c)) == 1, 60, "one node RUNNING")

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()

    def test_the_holder_announces_standby_only_once_its_units_are_down(self):
        holder = running(self.c)[0]
        others = [self.c[n] for n in self.c.names if self.c[n] is not holder]
        self.assertEqual(holder.show("member.service", "ActiveState"), "active")
        r = holder.ctl("--no-wait", "switchover")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.c.wait_for(lambda: holder.show("member.service", "ActiveState") == "deactivating", 5,
                        "the member stopping")
        r = holder.systemctl("restart", "dbus")
        self.assertEqual(r.returncode, 0, r.stderr)
        restarted = time.monotonic()
        # Until the member is down: the holder is not STANDBY, and no peer runs the services.
        seen = []
        while time.monotonic() - restarted < 20:
            # The states first, the member after: a member read as still
            # stopping after the holder was read STANDBY is a violation; the
            # other order would flag a stop that ended between the two reads.
            states = {n.name: state(n) for n in [holder] + others}
            member = holder.show("member.service", "ActiveState")
            seen.append((round(time.monotonic() - restarted, 2), member, states))
            if member in ("inactive", "failed"):
                break
            self.assertNotEqual(states[holder.name], "STANDBY", seen)
            self.assertNotIn("RUNNING", [states[n.name] for n in others], seen)
        self.assertIn(seen[-1][1], ("inactive", "failed"), seen)
        self.c.wait_for(lambda: state(holder) == "STANDBY", 15, "the holder STANDBY")
        self.c.wait_for(lambda: any(state(n) == "RUNNING" for n in others), 15, "a peer took over")
        self.assertEqual(holder.show("freehad", "NRestarts"), "0")  # the stop waited for the bus: no exit
        # The bus went away while the stop ran (not before, not after it).
        log = journal(holder)
        stopping, lost = log.rfind("state RUNNING -> STOPPING"), log.rfind("lost the connection to the user bus")
        self.assertTrue(0 <= stopping < lost < log.rfind("state STOPPING -> STANDBY"), log[stopping:])
        print(f"\nbus restart during the holder's stop: its member down {seen[-1][0]:.2f}s after the restart, "
              f"{len(seen)} samples, never STANDBY before", file=sys.stderr)


if __name__ == "__main__":
    nodes.main(None if shutil.which("nft") else "nftables is not installed")
