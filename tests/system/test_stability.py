#!/usr/bin/env python3
"""No flapping (issue 10, goal 3): a healthy 3-node cluster at default settings,
on namespaced nodes under real systemd --user managers (see nodes.py), runs
for a while under random heartbeat loss on every link, or with every CPU
saturated, and nothing stops, starts or moves.

usage: test_stability.py [--minutes M] [--loss P] [--cpu-hog]
       test_stability.py --sweep [--minutes M] [--rates P,P,...]

--loss P drops P % of the heartbeats each node receives from its peers
(nftables `numgen random` on each node's input: every directed link loses P %
independently); --cpu-hog runs one busy loop per CPU at normal priority for
the phase. Both flags: one phase with both faults. Neither: the CI default,
two phases of M minutes (default 1) each, 10 % loss and then the CPU hog.
A phase fails on any stophasrv or starthasrv, any state change, any term
change, any node seen outside RUNNING/STANDBY; it prints what the nodes saw
(heartbeats dropped, timeouts, quorum losses, lease losses, the lowest lease
margin sampled on the holder).

--sweep runs one phase of M minutes (default 2) per loss rate (default
10,20,30,40,50,60), healing and waiting for a settled cluster between steps,
and reports the first rate at which the services stopped or moved. It
measures rather than asserts: it exits 0 once every step has run.
Exits 77 (skip) where the machine lacks root, namespaces, nftables or systemd.
"""
import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nodes  # noqa: E402
from nodes import Cluster, start_all  # noqa: E402

NAMES = ["alpha", "bravo", "charlie"]
PORT = 3891
INTERVAL, DEAD, FENCE = 0.2, 1.0, 0.5  # the defaults
# A holder begins its graceful stop when its lease has FenceTimeout= and half
# an interval left (src/core/claims.h).
STOP_AT_LEASE_LEFT = FENCE + INTERVAL / 2
TABLE = "freeha_stability"
SAMPLE_EVERY = 0.2
SHOWN_FAILURES = 12  # of the sweep's first step with a stop: enough to see how it went
# The journal notices a phase reports, by MESSAGE_ID (src/daemon/log.h); any
# of those marked True fails a phase. Peer timeouts and quorum losses alone
# stop nothing: they are figures.
NOTICES = {
    "80d372c04a184ba8a9b11d31582862bb": ("state changes", True),
    "16a05e5f8fea4f03baea106025418c4b": ("takeovers", True),
    "9de5823016d447bbb187986e56d66f0a": ("lease losses", True),
    "601694d78e1d48ebb3eb81b6bfc81cbc": ("dual-active resolutions", True),
    "1a1aeb4198ac4f59b69f1c61a6fafe80": ("hook failures", True),
    "b7cec9aaa42b432ebd2231ddee7c235a": ("quorum losses", False),
    "187f9542ff8e473ab2d1c05e53d37d6b": ("peer timeouts", False),
}


def set_loss(node, percent):
    """Drops percent % of the heartbeats node receives from other nodes (none:
    removes the rule). Two counters: every peer heartbeat that arrives, and
    those dropped. Own broadcasts looped back are left alone."""
    node.in_netns("nft", "delete", "table", "inet", TABLE, check=False)
    if percent is None:
        return
    match = f"ip saddr != {node.address} udp dport {PORT}"
    rules = (f"table inet {TABLE} {{\n chain in {{\n  type filter hook input priority -10;\n"
             f"  {match} counter\n"
             f"  {match} numgen random mod 100 < {percent} counter drop\n }}\n}}\n")
    nodes.sh("nsenter", f"--net=/run/netns/{node.netns}", "nft", "-f", "-", input=rules)


def loss_counters(node):
    """(peer heartbeats that arrived, dropped) since set_loss; (0, 0) without the rule."""
    r = node.in_netns("nft", "-j", "list", "table", "inet", TABLE, check=False)
    if r.returncode != 0:
        return 0, 0
    counts = [next(e["counter"]["packets"] for e in item["rule"]["expr"] if "counter" in e)
              for item in json.loads(r.stdout)["nftables"] if "rule" in item]
    return counts[0], counts[1]


def read_status(node):
    """status.json as freehad last wrote it, read from the host (no process forked in the node)."""
    path = f"/proc/{node.pid1()}/root/run/user/0/freeha/status.json"
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):  # between write and rename, or not yet written
        return None


class CpuHog:
    """One busy loop per CPU at normal priority, ended by pid."""

    def __init__(self):
        self.procs = [subprocess.Popen(["sh", "-c", "while :; do :; done"], start_new_session=True)
                      for _ in range(os.cpu_count() or 1)]

    def stop(self):
        for p in self.procs:
            p.send_signal(signal.SIGKILL)
            p.wait()


class Phase:
    """One stretch of time under one set of faults, and what every node saw of it."""

    def __init__(self, cluster, label, loss, cpu_hog, minutes, initial_active):
        self.c, self.label, self.loss, self.cpu_hog, self.minutes = cluster, label, loss, cpu_hog, minutes
        self.initial_active = initial_active     # the node running the services when the phase begins
        self.samples = 0
        self.states_seen = collections.Counter()  # (node, state) over every sample
        self.terms_seen = set()
        self.active_seen = set()
        self.unreachable_samples = 0             # samples in which a node missed a peer
        self.lowest_lease = None                 # seconds, on the holder
        self.arrived = self.dropped = 0
        self.accepted = 0
        self.hooks = {}
        self.notices = collections.Counter()
        self.bad_notices = []                    # (time, node, text) of the notices that fail a phase
        self.load = None
        self.latest_wakeup = 0.0                 # seconds a sampler's sleep overran, at worst

    def run(self):
        for n in NAMES:
            set_loss(self.c[n], self.loss or 0)  # 0: counts the heartbeats all the same
        # The file is rewritten on every change and every 10 s: packets.accepted and
        # lease_remaining_usec are as of its last write (freeha-status(5)).
        before = {n: read_status(self.c[n]) for n in NAMES}
        hog = CpuHog() if self.cpu_hog else None
        self.start = time.time()
        end = self.start + 60 * self.minutes
        next_report = self.start + 60
        try:
            while time.time() < end:
                self.sample()
                if time.time() >= next_report:
                    next_report += 60
                    print(f"  {self.label}: {int(time.time() - self.start) // 60} min, "
                          f"{self.states_line()}", flush=True)
                asleep = time.monotonic()
                time.sleep(SAMPLE_EVERY)
                self.latest_wakeup = max(self.latest_wakeup, time.monotonic() - asleep - SAMPLE_EVERY)
            self.load = os.getloadavg()[0]
        finally:
            if hog:
                hog.stop()
            self.end = time.time()
            after = {n: read_status(self.c[n]) for n in NAMES}
            for n in NAMES:
                arrived, dropped = loss_counters(self.c[n])
                self.arrived += arrived
                self.dropped += dropped
                set_loss(self.c[n], None)
        # What the last lost heartbeats cause happens within a lease: count it too.
        time.sleep(2 * DEAD)
        self.collected_until = time.time()
        self.accepted = sum(after[n]["packets"]["accepted"] - before[n]["packets"]["accepted"] for n in NAMES)
        self.collect()

    def sample(self):
        self.samples += 1
        missed = False
        for n in NAMES:
            s = read_status(self.c[n])
            if s is None:
                continue
            self.states_seen[(n, s["state"])] += 1
            self.terms_seen.add(s["term"])
            if s["active_node"]:
                self.active_seen.add(s["active_node"])
            missed |= any(not peer["reachable"] for peer in s["nodes"])
            lease = s.get("lease_remaining_usec")
            if lease is not None and s["state"] == "RUNNING":
                lease /= 1e6
                self.lowest_lease = lease if self.lowest_lease is None else min(self.lowest_lease, lease)
        self.unreachable_samples += missed

    def states_line(self):
        return ", ".join(f"{n} {(read_status(self.c[n]) or {}).get('state')}" for n in NAMES)

    def collect(self):
        """Hook runs from each node's events.log, notices from each node's journal, within the phase."""
        for n in NAMES:
            node = self.c[n]
            self.hooks[n] = [(float(e[1]), e[0]) for e in node.events()
                             if e[0] in ("starthasrv", "stophasrv") and self.within(float(e[1]))]
            r = node.run("journalctl", "--user-unit", "freehad", "-o", "json", "--no-pager",
                         "--since", f"@{int(self.start)}", timeout=60)
            for line in r.stdout.splitlines():
                entry = json.loads(line)
                at = int(entry["__REALTIME_TIMESTAMP"]) / 1e6
                kind, fails = NOTICES.get(entry.get("MESSAGE_ID"), (None, False))
                if kind is None or not self.within(at):
                    continue
                self.notices[kind] += 1
                if fails:
                    self.bad_notices.append((at, n, f"{kind}: {entry.get('MESSAGE')}"))
        self.bad_notices.sort()

    def within(self, at):
        return self.start <= at <= self.collected_until

    # --- verdicts -----------------------------------------------------------

    def hook_runs(self, hook):
        return sorted((t, n) for n in NAMES for t, h in self.hooks[n] if h == hook)

    def moves(self):
        """starthasrv runs on a node other than the one that ran the services before."""
        holder, count = self.initial_active, 0
        for t, n in self.hook_runs("starthasrv"):
            count += n != holder
            holder = n
        return count

    def failures(self):
        out = []
        for hook in ("stophasrv", "starthasrv"):
            for t, n in self.hook_runs(hook):
                out.append(f"{n} ran {hook} {t - self.start:.1f}s into the phase")
        odd = sorted(k for k in self.states_seen if k[1] not in ("RUNNING", "STANDBY"))
        out += [f"{n} was seen {state} ({self.states_seen[(n, state)]} samples)" for n, state in odd]
        running = sorted(n for n, state in self.states_seen if state == "RUNNING")
        if running != [self.initial_active]:
            out.append(f"nodes seen RUNNING: {running}, expected only {self.initial_active}")
        if len(self.terms_seen) > 1:
            out.append(f"terms seen: {sorted(self.terms_seen)}")
        if len(self.active_seen) > 1:
            out.append(f"active nodes seen: {sorted(self.active_seen)}")
        out += [f"{n} at +{t - self.start:.1f}s: {text}" for t, n, text in self.bad_notices]
        return out

    def report(self):
        hog = f", {os.cpu_count()} busy loops (load average {self.load:.1f})" if self.cpu_hog else ""
        loss = f"{self.loss} % loss" if self.loss is not None else "no loss"
        measured = f" (measured {100 * self.dropped / self.arrived:.1f} %)" if self.loss and self.arrived else ""
        lease = f"{self.lowest_lease:.3f}s" if self.lowest_lease is not None else "none"
        lines = [
            f"{self.label}: {(self.end - self.start) / 60:.1f} min, {loss}{measured}{hog}",
            f"  heartbeats: {self.arrived} arrived from peers, {self.dropped} dropped by nftables, "
            f"{self.accepted} accepted by freehad",
            f"  stophasrv {len(self.hook_runs('stophasrv'))}, starthasrv {len(self.hook_runs('starthasrv'))}, "
            f"moves {self.moves()}, term changes {len(self.terms_seen) - 1}",
            "  " + ", ".join(f"{kind} {self.notices[kind]}" for kind, _ in NOTICES.values()),
            f"  {self.samples} samples of every node's status.json: a peer unreachable in "
            f"{self.unreachable_samples}; lowest lease remaining the holder wrote {lease} (the graceful stop "
            f"begins at {STOP_AT_LEASE_LEFT:.3f}s); the sampler woke up to {1000 * self.latest_wakeup:.0f} ms late",
        ]
        return "\n".join(lines)


def settled(cluster):
    """The one RUNNING node when every node hears every other and exactly one runs the services."""
    statuses = [read_status(cluster[n]) for n in NAMES]
    if any(s is None for s in statuses):
        return None
    running = [s["node"] for s in statuses if s["state"] == "RUNNING"]
    standby = [s["node"] for s in statuses if s["state"] == "STANDBY"]
    heard = all(len(s["nodes"]) == 3 and all(p["reachable"] for p in s["nodes"]) for s in statuses)
    return running[0] if len(running) == 1 and len(standby) == 2 and heard else None


def wait_settled(cluster, timeout):
    """Waits until the cluster has been settled on one node for two dead times; returns that node."""
    deadline = time.monotonic() + timeout
    since, active = None, None
    while time.monotonic() < deadline:
        now_active = settled(cluster)
        if now_active is None or now_active != active:
            since, active = time.monotonic(), now_active
        elif time.monotonic() - since >= 2 * DEAD:
            return active
        time.sleep(0.1)
    states = {n: (read_status(cluster[n]) or {}).get("state") for n in NAMES}
    raise RuntimeError(f"the cluster did not settle within {timeout}s: {states}")


def run_phase(cluster, label, loss, cpu_hog, minutes):
    phase = Phase(cluster, label, loss, cpu_hog, minutes, wait_settled(cluster, 60))
    print(f"{label}: {minutes} min, {phase.initial_active} active", flush=True)
    phase.run()
    print(phase.report(), flush=True)
    return phase


def sweep(cluster, rates, minutes):
    first = None
    rows = []
    for rate in rates:
        phase = run_phase(cluster, f"sweep {rate} %", rate, False, minutes)
        stops, moves = len(phase.hook_runs("stophasrv")), phase.moves()
        rows.append((rate, phase, stops, moves))
        if first is None and (stops or moves):
            first = rate
            why = phase.failures()
            for line in why[:SHOWN_FAILURES]:
                print(f"  {line}")
            if len(why) > SHOWN_FAILURES:
                print(f"  ... and {len(why) - SHOWN_FAILURES} more")
    print("\nloss %  measured  stops  starts  moves  terms  lease-lost  quorum-lost  peer-timeouts  lowest-lease")
    for rate, p, stops, moves in rows:
        measured = 100 * p.dropped / p.arrived if p.arrived else 0
        lease = f"{p.lowest_lease:.3f}s" if p.lowest_lease is not None else "-"
        print(f"{rate:>6}  {measured:>7.1f}%  {stops:>5}  {len(p.hook_runs('starthasrv')):>6}  {moves:>5}  "
              f"{len(p.terms_seen) - 1:>5}  {p.notices['lease losses']:>10}  {p.notices['quorum losses']:>11}  "
              f"{p.notices['peer timeouts']:>13}  {lease:>12}")
    if first is None:
        print(f"no stop or move at any rate up to {rates[-1]} % ({minutes} min each)")
    else:
        print(f"stops begin at {first} % loss ({minutes} min per step)")
    return 0


def main():
    ap = argparse.ArgumentParser(description="No flapping under heartbeat loss or CPU load (issue 10, goal 3).")
    ap.add_argument("--minutes", type=float, help="length of each phase (default 1; 2 per sweep step)")
    ap.add_argument("--loss", type=int, metavar="P", help="drop P %% of the heartbeats on every link (0-100)")
    ap.add_argument("--cpu-hog", action="store_true", help="one busy loop per CPU for the phase")
    ap.add_argument("--sweep", action="store_true", help="one phase per loss rate; report where stops begin")
    ap.add_argument("--rates", default="10,20,30,40,50,60", help="the sweep's loss rates, in %% (default %(default)s)")
    args = ap.parse_args()
    if args.loss is not None and not 0 <= args.loss <= 100:
        ap.error(f"--loss: {args.loss} is not a percentage (0-100)")
    if args.minutes is not None and args.minutes <= 0:
        ap.error(f"--minutes: {args.minutes} is not a positive length")
    try:
        rates = [int(r) for r in args.rates.split(",")]
    except ValueError:
        ap.error(f"--rates: {args.rates!r} is not a comma-separated list of percentages")
    if any(not 0 <= r <= 100 for r in rates):
        ap.error(f"--rates: {args.rates} has a rate outside 0-100")
    if args.sweep and (args.loss is not None or args.cpu_hog):
        ap.error("--sweep sets the loss itself: it takes neither --loss nor --cpu-hog")

    why = nodes.missing_facility() or (None if shutil.which("nft") else "nftables is not installed")
    if why:
        print(f"SKIP: {why}")
        return 77

    cluster = Cluster(NAMES, nodes.config_for("stability", 3))
    try:
        start_all(cluster)
        if args.sweep:
            return sweep(cluster, rates, args.minutes or 2)
        minutes = args.minutes or 1
        if args.loss is not None or args.cpu_hog:
            cases = [(args.loss, args.cpu_hog)]
        else:
            cases = [(10, False), (None, True)]
        failed = []
        for loss, hog in cases:
            label = " + ".join(filter(None, [f"{loss} % loss" if loss is not None else "", "CPU hog" if hog else ""]))
            phase = run_phase(cluster, label, loss, hog, minutes)
            failed += [f"{label}: {line}" for line in phase.failures()]
        for line in failed:
            print(f"FAIL {line}")
        return 1 if failed else 0
    finally:
        cluster.destroy()


if __name__ == "__main__":
    sys.exit(main())
