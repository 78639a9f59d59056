"""Files are what they claim to be, and what cannot be saved is said (issue 16, points 4 and 5).

Every file freehad reads is a regular file of a bounded size, opened without
blocking, or freehad stops with one line naming it: at start-up, under
--check-config and at reload-config, where the running configuration stays
and heartbeats go on. A standby that the state directory cannot keep fails
`freehactl standby` (and unstandby) and the log says what a restart brings.
A reload may add and remove [Group NAME] sections and refuses a bad one in
one line.
"""
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import FREEHACTL, FREEHAD, Cluster, PrivateBus, stop_at_end  # noqa: E402

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
INTERVAL = 0.2  # the default Interval=
PROMPT = 2.0  # seconds: a refusal takes milliseconds; a hang is what these tests catch


def prop(bus, name):
    r = subprocess.run(["busctl", f"--address={bus.address}", "get-property", "org.freeha1", "/org/freeha1",
                        "org.freeha1.Manager", name], capture_output=True, text=True, timeout=10)
    return r.stdout.split(None, 1)[1].strip() if r.returncode == 0 else None


def ctl(bus, *args):
    return subprocess.run([FREEHACTL, *args], capture_output=True, text=True, timeout=30, env=bus.env())


class BadFilesAtStartUp(unittest.TestCase):
    """freehad (and --check-config) meets a file that is not what its name says."""

    def setUp(self):
        self.c = Cluster(["alpha", "bravo"])
        self.node = self.c["alpha"]
        self.conf = self.node.path("freehad.conf")
        with open(self.conf, "w") as f:
            f.write(self.c.config(self.node))
        self.drop_ins = self.conf + ".d"

    def freehad(self, *args, config=None, user=()):
        """Runs freehad to its end; a freehad still running after 10 s is a failure (it hangs)."""
        started = time.monotonic()
        try:
            r = subprocess.run([*user, FREEHAD, "--config", config or self.conf, "--no-bus", *args],
                               capture_output=True, text=True, timeout=10,
                               env={**os.environ, "STATE_DIRECTORY": self.node.path("state")})
        except subprocess.TimeoutExpired:
            self.fail(f"freehad {' '.join(args)} still running after 10 s: blocked on a file")
        r.seconds = time.monotonic() - started
        return r

    def assert_refused(self, r, line, status):
        self.assertEqual(r.returncode, status, r.stderr)
        self.assertLess(r.seconds, PROMPT)
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)  # one line
        self.assertIn(line, r.stderr)

    def test_a_fifo_drop_in_is_refused_at_once_naming_it(self):
        os.mkdir(self.drop_ins)
        fifo = os.path.join(self.drop_ins, "50-fifo.conf")
        os.mkfifo(fifo)  # nobody writes to it: a blocking open waits for ever
        self.assert_refused(self.freehad("--check-config"), f"{fifo}: is a FIFO, not a regular file", 1)
        self.assert_refused(self.freehad(), f"{fifo}: is a FIFO, not a regular file", 2)

    def test_a_drop_in_linked_to_dev_zero_fails_fast(self):
        os.mkdir(self.drop_ins)
        zero = os.path.join(self.drop_ins, "50-zero.conf")
        os.symlink("/dev/zero", zero)
        self.assert_refused(self.freehad("--check-config"), f"{zero}: is a character device, not a regular file", 1)

    def test_a_drop_in_that_is_a_directory_is_refused_naming_it(self):
        directory = os.path.join(self.drop_ins, "50-dir.conf")
        os.makedirs(directory)
        self.assert_refused(self.freehad("--check-config"), f"{directory}: is a directory, not a regular file", 1)
        self.assert_refused(self.freehad(), f"{directory}: is a directory, not a regular file", 2)

    def test_config_naming_a_directory_is_refused_naming_it(self):
        self.assert_refused(self.freehad("--check-config", config=self.node.dir),
                            f"{self.node.dir}: is a directory, not a regular file", 1)

    def test_an_unreadable_drop_in_directory_is_an_error_and_a_missing_one_is_none(self):
        r = self.freehad("--check-config")  # no freehad.conf.d at all
        self.assertEqual(r.returncode, 0, r.stderr)
        os.mkdir(self.drop_ins, 0)
        user = ()
        if os.geteuid() == 0:  # root reads any directory: be nobody, who may read the rest
            user = NOBODY
            os.chmod(self.c.dir, 0o755)
        self.assert_refused(self.freehad("--check-config", user=user), f"{self.drop_ins}: Permission denied", 1)

    def test_a_drop_in_directory_that_is_a_file_is_refused_naming_it(self):
        with open(self.drop_ins, "w") as f:
            f.write("[Cluster]\n")
        self.assert_refused(self.freehad("--check-config"), f"{self.drop_ins}: not a directory", 1)

    def test_an_auth_key_file_that_is_a_fifo_is_refused_without_opening_it_blocking(self):
        fifo = self.node.path("authkey")
        os.mkfifo(fifo, 0o600)
        with open(self.conf, "a") as f:
            f.write(f"[Cluster]\nAuthKeyFile={fifo}\n")
        self.assert_refused(self.freehad("--check-config"), f"AuthKeyFile={fifo}: is a FIFO, not a regular file", 1)


class HeartbeatGaps:
    """Receives one node's heartbeats at an extra unicast peer address and keeps the largest gap."""

    def __init__(self, address, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, port))
        self.sock.settimeout(0.1)
        self.last = None
        self.largest = 0.0
        self.running = True
        self.thread = threading.Thread(target=self.receive, daemon=True)
        self.thread.start()

    def receive(self):
        while self.running:
            try:
                self.sock.recv(65536)
            except socket.timeout:
                continue
            now = time.monotonic()
            if self.last is not None:
                self.largest = max(self.largest, now - self.last)
            self.last = now

    def window(self):
        """Starts a new measurement: the largest gap from now on (and since the last heartbeat)."""
        self.largest = 0.0

    def stop(self):
        self.running = False
        self.thread.join()
        self.sock.close()
        # A node that has fallen silent has a gap that is still growing.
        return max(self.largest, time.monotonic() - self.last if self.last is not None else float("inf"))


LISTENER = "127.0.0.9"


def with_listener(cluster, node):
    """The default unicast channels, and bravo's heartbeats also to LISTENER."""
    peers = [n.address for n in cluster.nodes.values() if n is not node]
    if node.name == "bravo":
        peers.append(LISTENER)
    return [f"unicast {node.address} " + " ".join(peers)]


class BadFilesAtReload(unittest.TestCase):
    def setUp(self):
        self.c = Cluster(["alpha", "bravo"], channels=with_listener)
        self.bus = {n: PrivateBus() for n in self.c.names}
        self.addCleanup(lambda: [b.stop() for b in self.bus.values()])
        stop_at_end(self, self.c)
        self.gaps = HeartbeatGaps(LISTENER, self.c.port)
        for name in reversed(self.c.names):
            self.c.start(name, bus=self.bus[name])
        self.c.wait_for(lambda: self.c.running() == ["alpha"] and self.c["bravo"].state() == "STANDBY", 15,
                        "alpha RUNNING, bravo STANDBY")

    def test_a_fifo_drop_in_refuses_the_reload_naming_it_and_heartbeats_go_on(self):
        bravo = self.c["bravo"]
        with open(bravo.path("freehad.conf"), "a") as f:
            f.write("[Cluster]\nExpectedNodes=3\n")  # a change the refused reload must not apply
        os.mkdir(bravo.path("freehad.conf.d"))
        fifo = bravo.path("freehad.conf.d/50-fifo.conf")
        os.mkfifo(fifo)
        self.gaps.window()
        started = time.monotonic()
        try:
            r = ctl(self.bus["bravo"], "--timeout", "10s", "reload-config")
        except subprocess.TimeoutExpired:
            r = None
        took = time.monotonic() - started
        time.sleep(1)  # heartbeats after the reload, too
        largest = self.gaps.stop()
        print(f"\nreload-config with a FIFO drop-in: answered in {took * 1000:.0f} ms; largest heartbeat gap "
              f"at a peer {largest * 1000:.0f} ms (Interval {INTERVAL * 1000:.0f} ms)", file=sys.stderr)
        self.assertIsNotNone(r, "freehactl reload-config still waiting after 30 s")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stderr, f"freehactl: configuration not reloaded: {fifo}: is a FIFO, not a regular file\n")
        self.assertLess(took, PROMPT)
        # A generous bound on a loaded machine; the loop never waits on the file.
        self.assertLess(largest, INTERVAL + 0.3)
        self.assertEqual(prop(self.bus["bravo"], "ExpectedNodes"), "2")  # the running configuration stays
        self.assertEqual(self.c["alpha"].view("bravo")["state"], "STANDBY")
        # Once the FIFO is gone, the same reload goes through.
        os.remove(fifo)
        r = ctl(self.bus["bravo"], "reload-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(prop(self.bus["bravo"], "ExpectedNodes"), "3")

    def test_a_reload_adds_and_removes_groups_and_refuses_a_bad_one_in_one_line(self):
        bravo = self.c["bravo"]
        conf = bravo.path("freehad.conf")
        with open(conf) as f:
            base = f.read()
        first = len(base.splitlines()) + 1  # the [Group web] line

        def reload(extra):
            with open(conf, "w") as f:
                f.write(base + extra)
            return ctl(self.bus["bravo"], "reload-config")

        r = reload("[Group web]\nHooksDirectory=/srv/web\n[Cluster]\nExpectedNodes=3\n[Group Web]\n")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stderr, f"freehactl: configuration not reloaded: {conf}:{first + 4}: [Group Web]: differs "
                                   f"only in case from [Group web] ({conf}:{first}); group names must differ in more "
                                   "than case\n")
        self.assertEqual(prop(self.bus["bravo"], "ExpectedNodes"), "2")  # the running configuration stays
        r = reload("[Group web]\nHooksDirectory=/srv/web\n[Cluster]\nExpectedNodes=3\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(prop(self.bus["bravo"], "ExpectedNodes"), "3")
        r = reload("[Group web]\nHooksDirectory=/srv/www\n[Cluster]\nExpectedNodes=3\n")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stderr, f"freehactl: configuration not reloaded: {conf}:{first + 1}: [Group web] "
                                   "HooksDirectory= cannot change while freehad runs; restart it to apply\n")
        r = reload("[Cluster]\nExpectedNodes=3\n")  # the group goes
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.c["alpha"].view("bravo")["state"], "STANDBY")


def read_only_state(state):
    """A wrapper that runs freehad in a mount namespace of its own where `state` is mounted read-only."""
    os.makedirs(state, exist_ok=True)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"', state]


@unittest.skipUnless(os.geteuid() == 0, "mounts a read-only state directory: needs root")
class StandbyNotSaved(unittest.TestCase):
    def setUp(self):
        self.c = Cluster(["alpha", "bravo"])
        self.bus = {n: PrivateBus() for n in self.c.names}
        self.addCleanup(lambda: [b.stop() for b in self.bus.values()])
        stop_at_end(self, self.c)
        self.bravo = self.c["bravo"]
        self.c.start("alpha", bus=self.bus["alpha"])

    def start_bravo_read_only(self):
        if self.bravo.alive():
            self.bravo.proc.terminate()
            self.bravo.proc.wait(30)
        self.c.start("bravo", bus=self.bus["bravo"], wrap=read_only_state(self.bravo.path("state")))
        self.c.wait_for(lambda: prop(self.bus["bravo"], "State") == '"STANDBY"', 15, "bravo STANDBY on D-Bus")

    def unsaved(self, verb, after_restart):
        """Runs `freehactl VERB` on bravo, which must fail with one line saying what a restart brings."""
        r = ctl(self.bus["bravo"], verb)
        line = (f"{verb} applied but not saved: {self.bravo.path('state/standby')}: Read-only file system; "
                f"after a restart of freehad this node {after_restart}")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertEqual(r.stderr, f"freehactl: {line}\n")
        self.assertIn(line, self.bravo.log())  # the same line, which the restart below proves true

    def test_standby_that_cannot_be_kept_fails_the_call_and_ends_with_a_restart(self):
        self.start_bravo_read_only()
        self.unsaved("standby", "is no longer in standby")
        self.assertEqual(prop(self.bus["bravo"], "Standby"), "true")  # applied
        self.start_bravo_read_only()
        self.assertEqual(prop(self.bus["bravo"], "Standby"), "false")

    def test_unstandby_that_cannot_be_kept_fails_the_call_and_the_standby_returns_after_a_restart(self):
        os.makedirs(self.bravo.path("state"))
        self.bravo.touch("state/standby")  # a standby saved before the directory became read-only
        self.start_bravo_read_only()
        self.assertEqual(prop(self.bus["bravo"], "Standby"), "true")
        self.unsaved("unstandby", "is in standby again")
        self.assertEqual(prop(self.bus["bravo"], "Standby"), "false")  # applied
        self.start_bravo_read_only()
        self.assertEqual(prop(self.bus["bravo"], "Standby"), "true")
        self.assertIn("staying in standby, as requested before the restart", self.bravo.log())

if __name__ == "__main__":
    unittest.main(verbosity=2)
