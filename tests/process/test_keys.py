"""The rolling key change (issue 12, freehad.conf(5) KEY CHANGE) on a running
3-node loopback cluster, each node serving org.freeha1 on a private bus:

  0. a new key file that group or others may read is refused by
     `freehactl reload-config`, naming the file, and the running keys stay;
  1. on every node, add the new key second (AuthKeyFile=old, AuthKeyFile=new), reload;
  2. on every node, make it first (AuthKeyFile=new, AuthKeyFile=old), reload;
  3. on every node, drop the old key (AuthKeyFile=new), reload;
  then a node that still has only the old key is never admitted.

The heartbeats are the traffic. A sampler reads every node's status.json
every 20 ms during the whole procedure: no node may change its state, term,
active node or quorum, or see a peer change state or become unreachable; no
hook may run; no node may count a bad signature from a member. Prints the
transcript of the steps.
"""
import os
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import FREEHACTL, Cluster, PrivateBus, stop_at_end  # noqa: E402

MEMBERS = ["alpha", "bravo", "charlie"]
DEAD = 1.0  # default DeadTime


def fact(status):
    """What must not change while the keys change, as one node sees it."""
    return (status["state"], status["term"], status["active_node"], status["quorate"],
            tuple((n["name"], n["state"], n["reachable"]) for n in status["nodes"]))


class Sampler(threading.Thread):
    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.samples = []  # (node, monotonic time, fact)
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            for name in MEMBERS:
                s = self.cluster[name].status()
                if s:
                    self.samples.append((name, time.monotonic(), fact(s)))
            time.sleep(0.02)

    def stop(self):
        self.done.set()
        self.join()


class RollingKeyChange(unittest.TestCase):
    def setUp(self):
        if not shutil.which("dbus-daemon"):
            self.skipTest("dbus-daemon is not installed")
        self.c = Cluster(MEMBERS + ["delta"], expected=3)
        self.addCleanup(shutil.rmtree, self.c.dir, ignore_errors=True)
        stop_at_end(self, self.c)
        self.old = self.keygen("old.key")
        self.new = self.keygen("new.key")
        self.c.settings = f"[Cluster]\nAuthKeyFile={self.old}\n"
        self.bus = {n: PrivateBus() for n in MEMBERS}
        for b in self.bus.values():
            self.addCleanup(b.stop)
        for name in reversed(MEMBERS):
            self.c.start(name, bus=self.bus[name])
        self.c.wait_for(lambda: self.c.running() == ["alpha"], 15, "alpha RUNNING")
        self.c.wait_for(lambda: all(fact(self.c[n].status())[2:4] == ("alpha", True) for n in MEMBERS), 5,
                        "every member to see alpha active and quorum")
        time.sleep(DEAD)

    def keygen(self, name):
        path = os.path.join(self.c.dir, name)
        r = subprocess.run([FREEHACTL, "keygen", path], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        return path

    def set_keys(self, name, keys):
        """The node's key list, as a drop-in that replaces the cluster's AuthKeyFile=."""
        drop_in = self.c[name].path("freehad.conf.d")
        os.makedirs(drop_in, exist_ok=True)
        with open(os.path.join(drop_in, "50-keys.conf"), "w") as f:
            f.write("[Cluster]\nAuthKeyFile=\n" + "".join(f"AuthKeyFile={k}\n" for k in keys))

    def reload(self, name):
        return subprocess.run([FREEHACTL, "reload-config"], capture_output=True, text=True, timeout=30,
                              env=self.bus[name].env())

    def counters(self, name):
        return self.c[name].status()["packets"]

    def snapshot(self):
        statuses = {n: self.c[n].status() for n in MEMBERS}
        return (" ".join(f"{n}={statuses[n]['state']}" for n in MEMBERS) +
                f"; term {statuses['alpha']['term']}; active {statuses['alpha']['active_node']}; bad_signature " +
                " ".join(str(statuses[n]["packets"]["bad_signature"]) for n in MEMBERS))

    def hook_runs(self):
        """Runs of the hooks that a state change causes (monitorhasrv runs on its own clock)."""
        return {n: [e for e in self.c[n].events() if e[0] != "monitorhasrv"] for n in MEMBERS}

    def last_reload_line(self, name):
        lines = [line for line in self.c[name].log().splitlines() if "configuration reloaded" in line]
        return lines[-1].split(">", 1)[-1] if lines else ""

    def test_the_documented_rolling_change_keeps_every_node_in_its_state(self):
        short = {self.old: "old", self.new: "new"}
        transcript = []
        baseline = {n: fact(self.c[n].status()) for n in MEMBERS}
        hooks_before = self.hook_runs()
        self.assertEqual({n: self.counters(n)["bad_signature"] for n in MEMBERS}, {n: 0 for n in MEMBERS})
        sampler = Sampler(self.c)
        sampler.start()
        try:
            # 0: scp without -p leaves the new key readable by all: refused, naming the file.
            os.chmod(self.new, 0o644)
            self.set_keys("alpha", [self.old, self.new])
            r = self.reload("alpha")
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"configuration not reloaded: AuthKeyFile={self.new}: group or other may access it "
                          f"(mode 0644)", r.stderr)
            transcript.append(f"step 0 on alpha: AuthKeyFile=old,new with new.key mode 0644 -> reload-config "
                              f"exit 1: {r.stderr.strip()}")
            os.chmod(self.new, 0o400)
            time.sleep(DEAD)

            steps = [("1: add the new key second", [self.old, self.new]),
                     ("2: make the new key first", [self.new, self.old]),
                     ("3: drop the old key", [self.new])]
            for title, keys in steps:
                accepted = {n: self.counters(n)["accepted"] for n in MEMBERS}
                began = time.time()
                for name in MEMBERS:
                    self.set_keys(name, keys)
                    r = self.reload(name)
                    self.assertEqual(r.returncode, 0, f"step {title} on {name}: {r.stderr}")
                    # Nodes one step apart exchange heartbeats for a while.
                    time.sleep(DEAD)
                    transcript.append(f"step {title} on {name}: AuthKeyFile=" + ",".join(short[k] for k in keys) +
                                      f" -> reload-config exit 0; log: {self.last_reload_line(name)!r}; "
                                      + self.snapshot())
                time.sleep(2 * DEAD)
                # packets.accepted is as of the file's last write (a change, or the 10-s refresh).
                self.c.wait_for(lambda: all(self.c[n].status()["updated_realtime_usec"] / 1e6 > began + 2 * DEAD
                                            for n in MEMBERS), 12, "every status file rewritten after the step")
                for name in MEMBERS:
                    packets = self.counters(name)
                    self.assertEqual(packets["bad_signature"], 0, f"after step {title}, {name}")
                    self.assertGreater(packets["accepted"], accepted[name] + 20, f"after step {title}, {name}")
                transcript.append(f"after step {title}: " + self.snapshot())

            # A node that never got the new key is refused everywhere.
            self.c.start("delta")
            self.c.wait_for(lambda: all(self.counters(n)["bad_signature"] >= 5 for n in MEMBERS), 10,
                            "the members to drop delta's old-key heartbeats")
            self.c.wait_for(lambda: self.counters("delta")["bad_signature"] >= 5, 10,
                            "delta to drop the members' new-key heartbeats")
            time.sleep(DEAD)
            for name in MEMBERS:
                self.assertEqual([x["name"] for x in self.c[name].status()["nodes"]], MEMBERS, name)
            delta = self.c["delta"].status()
            self.assertEqual([x["name"] for x in delta["nodes"]], ["delta"])
            transcript.append("delta with only the old key started: " + self.snapshot() +
                              f"; delta sees {[x['name'] for x in delta['nodes']]}, "
                              f"bad_signature {delta['packets']['bad_signature']}")
        finally:
            sampler.stop()
            print("\n" + "\n".join(transcript), file=sys.stderr)

        per_node = {n: [f for (m, _, f) in sampler.samples if m == n] for n in MEMBERS}
        for name in MEMBERS:
            self.assertGreater(len(per_node[name]), 200, name)
            changed = [f for f in per_node[name] if f != baseline[name]]
            self.assertEqual(changed[:1], [], f"{name} saw a change during the key change")
        self.assertEqual(self.hook_runs(), hooks_before, "a hook ran during the key change")
        print(f"{len(sampler.samples)} samples over {sampler.samples[-1][1] - sampler.samples[0][1]:.1f}s, "
              f"every one equal to the baseline: {baseline['alpha'][:4]}", file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
