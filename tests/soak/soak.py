#!/usr/bin/env python3
"""A randomized fault soak of a real 3-node cluster (issue 9).

Three nodes in scripts mode, each under its own systemd --user manager in its
own network and pid namespaces (tests/system/nodes.py). Every 2-6 s one random
fault hits a random node and ends a few seconds later: a power cut (then power
on), a partition (nftables), a freeze (SIGSTOP of freehad, the cgroup freezer
on its unit or on the whole node) then a thaw, random loss of heartbeats, a
restart of the node's D-Bus, a hook that hangs once, a reload of the
configuration with a drop-in that changes DeadTime=, Interval= or
ExpectedNodes= (undone by another reload when the fault ends; a node that
restarts meanwhile starts with it). Every 25-45 s the storm
pauses: every fault ends and the cluster must settle.

The service that starthasrv starts is a daemon in a session of its own that
holds the write end of a pipe the soak reads: end-of-file tells the soak the
moment the last process of a start is gone, whatever killed it (stophasrv,
the fence, systemd, a power cut). The hooks record their starts and ends on
CLOCK_MONOTONIC, which every node of the machine shares. Checked:

  a. the services never run on two nodes at once: a start runs from the
     moment starthasrv begins until stophasrv has stopped it, the node lost
     power, or its pipe says it is gone. The one exception (freeha-safety(7)):
     a node the soak froze, beside a node that started after the freeze
     began, until THAW_GRACE after the thaw (its services ran, frozen, while
     another node took over);
  b. once every fault has ended, exactly one node runs the services within
     SETTLE_BOUND seconds, and every node agrees which;
  c. freehad never exits except for what the soak did to it (a power cut,
     the watchdog killing a daemon the soak froze).

--target runs the same storm in target mode (issue 15): freehad starts and
stops freeha-services.target, whose member.service is the service (its main
process holds the pipe), and the restarts of D-Bus hit the node that runs
the services two times in three, often while its target stops. There a
freehad that cannot reach systemd for FenceTimeout= during a stop exits on
purpose (freehad.conf(5)): such an exit, after a restart of its bus, is one
the soak caused.

--etcd runs the storm on nodes with Backend=etcd (issue 21) on a real
3-member etcd on the same bridge (tests/lib/etcd.py; each node lists the
members starting from a different one). Nothing goes from node to node
there, so a partition cuts the node off from etcd (nftables drops its
packets to port 2379: to every member, or to one, which it must leave), the
loss hits its etcd packets on the wire (TCP retransmits: a slow etcd), and
a reload changes DeadTime= and Interval= only (ExpectedNodes= counts for
nothing with etcd). The storm adds faults of etcd itself: a member killed
(then restarted with its data, state "existing"), etcd's leader killed
likewise, a member frozen (SIGSTOP of its process group: an endpoint that
takes calls and never answers) then thawed, a member cut off from the
others and from the nodes (Member.isolate()), and rarely etcd's quorum lost
(two members killed for 4-8 s); one etcd fault at a time. A pause waits
for etcd to have a leader again before check b's bound starts. Also checked:

  d. once etcd's quorum is lost, the services run nowhere after the
     node's lease can have ended: the TTL (the longest DeadTime= the node
     ran with since its start, in whole seconds) plus STEP_DOWN (etcd's
     leader, cut off from its majority, renews leases until it steps down)
     plus STOP_GRACE after the loss began; a node the soak froze is
     excused until THAW_GRACE after its thaw.

The timeline names the etcd faults by member (e0, e1, e2): "fault etcd
kill", "etcd leader", "etcd freeze", "etcd isolate", "etcd quorum".

Usage: soak.py --minutes M [--seed S] [--timeline] [--wedge | --target] [--etcd]
Root; exits 77 where a facility is missing, 1 on any violation (with the
timelines that show it). The seed replays the same random draws: the same
faults as long as the cluster goes the same way (which node holds the
services, which is up), which the daemon's timing may change. --timeline prints
everything that happened; --wedge adds a wedged service: a node's
monitorhasrv and then its stophasrv hang, so that a planned stop outlives
StopTimeout while the service it should stop runs on (freehad then kills
what is left before it lets another node start; before ba23063 it did not,
and this fault found it).
"""
import argparse
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "system"))
import nodes  # noqa: E402
from etcd import CLIENT_PORT, ETCD, EtcdCluster  # noqa: E402 (tests/lib: nodes.py puts it on the path)

NAMES = ["alpha", "bravo", "charlie"]
# How long a node the soak thawed may take to notice that its lease is gone
# and kill its services (milliseconds on an idle machine; this one is shared).
THAW_GRACE = 1.0
WATCHDOG = 5.0  # grace after a thaw for a watchdog exit (freehad lowers WatchdogSec= to 600ms: it comes at the thaw)
SETTLE_BOUND = 15.0  # generous: the machine is shared
HOLD = 2.0  # a settled cluster must stay so this long
# --etcd: etcd's leader, cut off from its majority, goes on renewing leases until raft's
# CheckQuorum makes it step down, within two election timeouts (500 ms in tests/lib/etcd.py).
STEP_DOWN = 1.0
# How long a node may take to end its services once its lease's kill time has come (a shared machine).
STOP_GRACE = 1.0
ETCD_LEADER_WAIT = 30.0  # after a pause began: etcd electing no leader by then fails the soak
DEAD_TIME = 1.0  # --etcd: the nodes' DeadTime= (the lease's TTL) without a reload's drop-in
# --etcd: the faults of etcd itself and their weights (a lost quorum stops everything: rarely).
ETCD_FAULTS = {"kill": 3, "leader": 3, "freeze": 3, "isolate": 3, "quorum": 1}
CONFIG = """[Cluster]
Name=soak
NodeName={name}
ExpectedNodes=3
[Heartbeat]
Channel=broadcast {address}
[Services]
MonitorInterval=1s
MonitorTimeout=3s
StartTimeout=10s
StopTimeout=5s
"""
# --etcd: no heartbeat channel; membership, election and leases come from etcd.
ETCD_CONFIG = """[Cluster]
Name=soak
NodeName={name}
Backend=etcd
[Heartbeat]
DeadTime={dead_time:g}s
[Etcd]
Endpoints={endpoints}
[Services]
MonitorInterval=1s
MonitorTimeout=3s
StartTimeout=10s
StopTimeout=5s
"""

# Each hook appends "EVENT NANOSECONDS DETAIL" to /etc/freeha/events.log.
# CLOCK_MONOTONIC in a shell: the kernel's "now" heads /proc/timer_list.
PRELUDE = r"""#!/bin/sh
# The soak's {name}.
now() {{ sed -n 's/^now at \([0-9]*\) nsecs$/\1/p;3q' /proc/timer_list; }}
record() {{ echo "$1 $2 $3" >> /etc/freeha/events.log; }}
# Hangs (once) when the soak armed it.
hang_once() {{
    if [ -f /etc/freeha/hang-{name} ]; then
        rm -f /etc/freeha/hang-{name}
        record {name}.hang "$(now)"
        sleep 1000
    fi
}}
"""
HOOKS = {
    "starthasrv": r"""
started=$(now)
record starthasrv "$started" "$FREEHA_STATE"
rm -f /run/soak-service.pid
# Whatever this start leaves running holds the pipe open, and says which start it is.
exec 3>/etc/freeha/service.pipe
echo "$started" >&3
setsid sh -c 'echo $$ > /run/soak-service.pid; exec sleep infinity' </dev/null >/dev/null 2>&1 &
exec 3>&-
i=0
while [ ! -s /run/soak-service.pid ]; do
    i=$((i + 1))
    if [ $i -gt 200 ]; then record starthasrv.done "$(now)" 1; exit 1; fi
    sleep 0.05
done
record starthasrv.done "$(now)" 0
""",
    "stophasrv": r"""
record stophasrv "$(now)" "$FREEHA_STATE"
hang_once
pid=$(cat /run/soak-service.pid 2>/dev/null)
if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
fi
rm -f /run/soak-service.pid
record stophasrv.done "$(now)" 0
""",
    "monitorhasrv": r"""
hang_once
pid=$(cat /run/soak-service.pid 2>/dev/null) && kill -0 "$pid" 2>/dev/null
""",
}

# Target mode: the member's ExecStart, which records its start as starthasrv
# would and holds the pipe until systemd stops or kills it.
MEMBER_SCRIPT = PRELUDE.format(name="member") + r"""
started=$(now)
record starthasrv "$started" target
exec 3>/etc/freeha/service.pipe
echo "$started" >&3
exec sleep infinity
"""
MEMBER_UNIT = """[Unit]
Description=The soak's service (target mode)
PartOf=freeha-services.target
[Service]
ExecStart=/etc/freeha/member.sh
[Install]
RequiredBy=freeha-services.target
"""
# What freehad logs before it exits because a stop could not reach systemd.
UNREACHABLE = "systemd cannot be asked to stop it"

# The systemd manager's journal entries for a unit that failed (UNIT_RESULT=)
# and for a process of it that exited abnormally (EXIT_CODE=, EXIT_STATUS=).
UNIT_FAILED = "d9b373ed55a64feb8242e02dbe79a49c"
PROCESS_EXITED = "98e322203f7a4ed290d09fe03c09fe15"


def now():
    return time.monotonic()


def etcd_urls():
    """--etcd: the members' client URLs, known before they start (the nodes' configuration is
    written first): EtcdCluster makes them the bridge's first clients, SUBNET.200 and up."""
    return [f"http://{nodes.SUBNET}.{200 + i}:{CLIENT_PORT}" for i in range(3)]


def unified_cgroup_root():
    for root in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if os.path.exists(os.path.join(root, "cgroup.controllers")):
            return root
    return None


def missing_facility(etcd=False):
    why = nodes.missing_facility()
    if why:
        return why
    if etcd and not os.access(ETCD, os.X_OK):
        return f"{ETCD} is missing (etcd-server)"
    if not shutil.which("nft"):
        return "nftables is not installed"
    if not unified_cgroup_root():
        return "no cgroup v2 hierarchy (the freezer)"
    try:
        with open("/proc/timer_list") as f:
            if not any(line.startswith("now at ") for _, line in zip(range(5), f)):
                return "/proc/timer_list has no 'now at' line (the hooks' monotonic clock)"
    except OSError as e:
        return f"cannot read /proc/timer_list (the hooks' monotonic clock): {e.strerror}"
    return None


class ServiceWatch(threading.Thread):
    """Reads a node's service pipe. Each start writes its id (the nanoseconds
    of its starthasrv record) and leaves its processes holding the write end,
    so end-of-file means every process of those starts is gone."""

    def __init__(self, soak, node):
        super().__init__(daemon=True, name=f"watch-{node.name}")
        self.soak, self.node = soak, node
        self.path = node.etc("service.pipe")
        os.mkfifo(self.path)

    def run(self):
        try:
            while True:
                fd = os.open(self.path, os.O_RDONLY)  # until a starthasrv opens it
                data = b""
                while True:
                    chunk = os.read(fd, 4096)
                    if not chunk:
                        break
                    data += chunk
                gone = now()
                os.close(fd)
                self.soak.record(self.node.name, "service.gone", " ".join(data.decode().split()), t=gone)
        except OSError:
            return  # the cluster is gone


class Fault:
    def __init__(self, kind, node, duration, detail=""):
        self.kind, self.node, self.detail = kind, node, detail
        self.duration = duration
        self.begin = self.end = None
        self.due = None
        self.state = {}


class Soak:
    def __init__(self, minutes, seed, show_timeline=False, wedge=False, target=False, etcd=False):
        self.minutes, self.seed, self.show_timeline, self.wedge = minutes, seed, show_timeline, wedge
        self.target = target
        self.with_etcd = etcd
        self.etcd = None  # --etcd: the EtcdCluster
        # --etcd: every DeadTime= (seconds) each node's freehad has had since it started, and the
        # one its configuration gives now (a reload's drop-in): what its lease's TTL may be.
        self.dead_times = {n: {DEAD_TIME} for n in NAMES}
        self.dropin_dead_time = {}
        self.leader_waits = []  # --etcd: how long etcd took to have a leader again at each pause
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.events = []  # (t, node, what, detail, "") recorded by the soak itself
        self.active = []
        self.faults = []  # every fault, ended or not
        self.journal = []  # (t, node, entry): the nodes' journal entries about freehad.service
        self.cursor = {}  # node -> where the last harvest of its journal ended
        self.settles = []
        self.errors_cleared = 0
        self.last_clear = {}
        self.violations = []
        self.cluster = None
        self.t0 = now()
        self.unified = unified_cgroup_root()

    # ----- records ---------------------------------------------------------

    def record(self, node, what, detail="", t=None):
        with self.lock:
            self.events.append((now() if t is None else t, node, what, detail, ""))

    def say(self, text):
        print(f"[{now() - self.t0:8.3f}] {text}", flush=True)

    def hook_events(self, name):
        """(t, node, event, detail, the nanoseconds as the hook wrote them)."""
        rows = []
        try:
            with open(self.cluster[name].etc("events.log")) as f:
                for line in f:
                    fields = line.split()
                    if len(fields) < 2 or not fields[1].isdigit():
                        raise RuntimeError(f"{name}: a hook wrote a bad record (no monotonic clock?): {line!r}")
                    rows.append((int(fields[1]) / 1e9, name, fields[0], " ".join(fields[2:]), fields[1]))
        except FileNotFoundError:
            pass
        return rows

    def timeline(self):
        with self.lock:
            rows = list(self.events)
        for name in NAMES:
            rows += self.hook_events(name)
        return sorted(rows, key=lambda r: r[0])

    def intervals(self, rows, until):
        """Per node, the spans during which a start's services ran: (begin, end, how ended)."""
        spans = {n: [] for n in NAMES}
        for name in NAMES:
            open_starts, latest = {}, None
            for t, node, what, detail, ref in rows:
                if node != name:
                    continue
                if what == "starthasrv":
                    open_starts[ref] = t
                    latest = ref
                elif what == "stophasrv.done" and latest in open_starts:
                    spans[name].append((open_starts.pop(latest), t, "stophasrv"))  # it stops the latest start
                    latest = None
                elif what == "power.cut":
                    spans[name] += [(s, t, "power cut") for s in open_starts.values()]
                    open_starts, latest = {}, None
                elif what == "service.gone":
                    for start_id in detail.split():
                        if start_id in open_starts:
                            spans[name].append((open_starts.pop(start_id), t, "its processes gone"))
            spans[name] += [(s, until, None) for s in open_starts.values()]
            spans[name].sort()
        return spans

    def holders(self):
        t = now()
        return sorted(n for n, s in self.intervals(self.timeline(), t).items() if any(how is None for *_, how in s))

    # ----- node access ------------------------------------------------------

    def up(self, name):
        return self.cluster[name].init is not None

    def frozen(self, name):
        return any(f.kind == "freeze" and f.node == name for f in self.active)

    def status(self, name):
        node = self.cluster[name]
        if node.init is None:
            return None
        try:
            with open(f"/proc/{node.pid1()}/root/run/user/0/freeha/status.json") as f:
                return json.load(f)
        except (OSError, ValueError, RuntimeError):
            return None

    def run(self, name, *args, timeout=20):
        try:
            return self.cluster[name].run(*args, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.say(f"{name}: timed out: {' '.join(args)}")
            return None

    def harvest_journal(self, name):
        """Collects what the node's journal says about freehad.service since the last harvest (the
        daemon's messages and its manager's): the journal dies with the node's power."""
        after = ["--after-cursor", self.cursor[name]] if name in self.cursor else []
        r = self.run(name, "journalctl", "-o", "json", "--no-pager", "--user-unit", "freehad.service", *after,
                     timeout=60)
        if r is None or r.returncode != 0:
            return
        for line in r.stdout.splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            self.cursor[name] = e["__CURSOR"]
            message = e.get("MESSAGE", "")
            if isinstance(message, list):  # not UTF-8
                e["MESSAGE"] = bytes(message).decode(errors="replace")
            self.journal.append((int(e["__MONOTONIC_TIMESTAMP"]) / 1e6, name, e))

    def clear_errors(self, quiet=False):
        """An operator clears the error latch of a node (ERRORED) that no hung hook of the soak still holds."""
        for name in NAMES:
            if not self.up(name) or self.frozen(name) or now() - self.last_clear.get(name, -10) < 2:
                continue
            if any(f.kind == "hook" and f.node == name for f in self.active):
                continue
            s = self.status(name)
            if s and s["state"] == "ERRORED":
                self.last_clear[name] = now()
                r = self.run(name, nodes.FREEHACTL, "--user", "--timeout", "5s", "clear-error")
                if r is not None and r.returncode == 0:
                    self.errors_cleared += 1
                    self.record(name, "operator", f"clear-error ({s.get('last_error')})")
                    self.say(f"{name}: error cleared ({s.get('last_error')})" + (" while settling" if quiet else ""))

    # ----- faults -------------------------------------------------------------

    def candidates(self, kind):
        if kind == "etcd":  # one at a time: two would often lose etcd's quorum, which is kept rare
            return [] if any(f.kind == "etcd" for f in self.active) else ["etcd"]
        busy = {f.node for f in self.active if f.kind == kind}
        names = [n for n in NAMES if n not in busy]
        if kind == "power":
            names = [n for n in names if self.up(n)]
        if kind in ("freeze", "dbus"):
            names = [n for n in names if self.up(n) and not self.frozen(n)]
        if kind == "freeze":
            names = [n for n in names if self.cluster[n].main_pid()]
        return names

    def inject(self):
        kinds = ["power", "partition", "freeze", "loss", "dbus", "hook", "reload"]
        if self.with_etcd:
            kinds += ["etcd"] * 3  # about a quarter of the faults hit etcd itself
        self.rng.shuffle(kinds)
        for kind in kinds:
            names = self.candidates(kind)
            if not names or (self.target and kind == "hook"):  # no hooks in target mode
                continue
            if kind == "hook" or (self.target and kind == "dbus"):  # they matter where the services run
                held = [n for n in self.holders() if n in names]
                name = held[0] if held and self.rng.random() < 2 / 3 else self.rng.choice(names)
            else:
                name = self.rng.choice(names)
            duration = self.rng.uniform(1, 8) if kind != "dbus" else 0
            fault = Fault(kind, name, duration)
            fault.begin = now()  # before it takes effect: excuses begin no later than the freeze
            getattr(self, f"begin_{kind}")(fault)
            fault.due = now() + fault.duration
            self.faults.append(fault)
            self.active.append(fault)
            self.record(fault.node, "fault", f"{kind} {fault.detail}".strip(), t=fault.begin)  # etcd: the member(s)
            self.say(" ".join(filter(None, [f"{fault.node}: {kind}", fault.detail,
                                            f"for {fault.duration:.1f}s" if fault.duration else ""])))
            if kind == "dbus":
                self.finish(fault)
            return

    def finish(self, fault):
        getattr(self, f"end_{fault.kind}")(fault)
        fault.end = now()
        self.active.remove(fault)
        self.record(fault.node, "fault.end", fault.kind)
        if fault.kind != "dbus":
            self.say(f"{fault.node}: {fault.kind} ends")

    def begin_power(self, fault):
        name = fault.node
        self.harvest_journal(name)
        self.cursor.pop(name, None)
        self.cluster[name].power_cut()
        self.record(name, "power.cut")
        for freeze in [f for f in self.active if f.kind == "freeze" and f.node == name]:
            self.finish(freeze)  # else the node would boot into a frozen cgroup
        fault.duration = self.rng.uniform(2, 8)

    def end_power(self, fault):
        node = self.cluster[fault.node]
        # Its lease's TTL comes from the DeadTime= it starts with.
        self.dead_times[fault.node] = {self.dropin_dead_time.get(fault.node) or DEAD_TIME}
        node.power_on()
        r = node.systemctl("start", "freehad", timeout=60)
        self.record(fault.node, "power.on", "" if r.returncode == 0 else f"start failed: {r.stderr.strip()}")
        if r.returncode != 0:
            self.violations.append(f"{fault.node}: freehad did not start after power on: {r.stderr.strip()}")

    def begin_partition(self, fault):
        if not self.with_etcd:
            self.cluster[fault.node].isolate()
            return
        # No heartbeat goes from node to node: the node is cut off from etcd (its calls go
        # nowhere, as tests/etcd/test_etcd_cluster.py's test_4 does), or from one member, which
        # its link must leave for another if it was using it.
        member = self.rng.choice([None, None] + self.etcd.members)
        fault.detail = f"from {member.name if member else 'etcd'}"
        only = f"ip daddr {member.address} " if member else ""
        rules = ("table inet soak_etcd {\n chain out {\n  type filter hook output priority 0;\n"
                 f"  {only}tcp dport {CLIENT_PORT} drop\n }}\n}}\n")
        nodes.sh("nsenter", f"--net=/run/netns/{self.cluster[fault.node].netns}", "nft", "-f", "-", input=rules)

    def end_partition(self, fault):
        if not self.with_etcd:
            self.cluster[fault.node].heal()
            return
        self.cluster[fault.node].in_netns("nft", "delete", "table", "inet", "soak_etcd")

    def begin_loss(self, fault):
        """Drops heartbeats to and from the node at random, on the wire (the node's port of the bridge);
        --etcd: its packets to and from etcd's client port, which TCP sends again (a slow etcd)."""
        loss = self.rng.choice([10, 25, 40, 60, 80])
        fault.detail = f"{loss}%" + (" of its etcd packets" if self.with_etcd else "")
        port = f"{self.cluster.prefix}{fault.node[:3]}"  # as nodes.plug() names it
        to_it, from_it = ("tcp sport", "tcp dport") if self.with_etcd else ("udp dport", "udp dport")
        number = CLIENT_PORT if self.with_etcd else 3891
        rules = (f"table bridge soak_loss_{fault.node} {{\n chain forward {{\n"
                 "  type filter hook forward priority 0;\n"
                 f"  iifname {port} {from_it} {number} numgen random mod 100 < {loss} drop\n"
                 f"  oifname {port} {to_it} {number} numgen random mod 100 < {loss} drop\n }}\n}}\n")
        nodes.sh("ip", "netns", "exec", self.cluster.switch, "nft", "-f", "-", input=rules)

    def end_loss(self, fault):
        nodes.sh("ip", "netns", "exec", self.cluster.switch,
                 "nft", "delete", "table", "bridge", f"soak_loss_{fault.node}")

    def begin_freeze(self, fault):
        node = self.cluster[fault.node]
        how = fault.state["how"] = self.rng.choice(["process", "unit", "node"])
        fault.detail = how
        if how == "process":  # SIGSTOP of freehad alone: its services go on running
            fault.state["pid"] = node.main_pid()
            if node.run("kill", "-STOP", str(fault.state["pid"])).returncode != 0:
                fault.detail += " (freehad had just exited)"
        elif how == "unit":  # freehad, its hooks and its services
            unit_cgroup = node.show("freehad", "ControlGroup")
            fault.state["path"] = self.unified + unit_cgroup + "/cgroup.freeze"
            if unit_cgroup:
                with open(fault.state["path"], "w") as f:
                    f.write("1")
            else:
                fault.detail += " (freehad had just exited)"
        else:  # the whole machine hangs
            node.freeze()

    def end_freeze(self, fault):
        node = self.cluster[fault.node]
        if fault.state["how"] == "process":
            if node.init is not None:
                node.run("kill", "-CONT", str(fault.state["pid"]))
        elif fault.state["how"] == "unit":
            if os.path.exists(fault.state["path"]):  # the node may have lost power since
                with open(fault.state["path"], "w") as f:
                    f.write("0")
        else:
            node.freeze(False)

    def begin_dbus(self, fault):
        r = self.run(fault.node, "systemctl", "--user", "restart", "dbus", timeout=30)
        fault.detail = "restart" + ("" if r is not None and r.returncode == 0 else " (failed)")

    def end_dbus(self, fault):
        pass

    def begin_hook(self, fault):
        hangs = ["stophasrv", "monitorhasrv"] + (["monitorhasrv+stophasrv"] if self.wedge else [])
        fault.detail = self.rng.choice(hangs)
        if "stophasrv" in fault.detail:  # it hangs at the next stop, which may take other faults: give them time
            fault.duration = self.rng.uniform(5, 20)
        for hook in fault.detail.split("+"):
            open(self.cluster[fault.node].etc(f"hang-{hook}"), "w").close()

    def end_hook(self, fault):
        flags = [self.cluster[fault.node].etc(f"hang-{hook}") for hook in fault.detail.split("+")]
        fault.state["fired"] = not all(os.path.exists(flag) for flag in flags)
        for flag in flags:
            if os.path.exists(flag):
                os.unlink(flag)

    def begin_reload(self, fault):
        choices = {"DeadTime": ["1s", "2s", "3s"], "Interval": ["100ms", "200ms"], "ExpectedNodes": ["3", "4"]}
        if self.with_etcd:
            del choices["ExpectedNodes"]  # etcd's majority makes the quorum, whatever the count says
        changed = {key: self.rng.choice(choices[key])
                   for key in self.rng.sample(sorted(choices), self.rng.randint(1, len(choices)))}
        fault.detail = " ".join(f"{key}={value}" for key, value in sorted(changed.items()))
        section = {"DeadTime": "Heartbeat", "Interval": "Heartbeat", "ExpectedNodes": "Cluster"}
        os.makedirs(self.cluster[fault.node].etc("freehad.conf.d"), exist_ok=True)
        with open(self.dropin(fault.node), "w") as f:
            f.write("".join(f"[{section[key]}]\n{key}={value}\n" for key, value in sorted(changed.items())))
        if "DeadTime" in changed:
            self.dropin_dead_time[fault.node] = float(changed["DeadTime"].removesuffix("s"))
        self.reload_config(fault.node)

    def end_reload(self, fault):
        os.unlink(self.dropin(fault.node))
        self.dropin_dead_time.pop(fault.node, None)
        self.reload_config(fault.node)

    def dropin(self, name):
        return self.cluster[name].etc("freehad.conf.d", "soak-reload.conf")

    def reload_config(self, name):
        """freehactl reload-config, as an operator would; a node that is down or frozen starts (or
        is reloaded) with the files as they are by then."""
        # Whether or not it takes it now, its lease may be granted with it (or a longer one it had) until it restarts.
        self.dead_times[name].add(self.dropin_dead_time.get(name) or DEAD_TIME)
        if not self.up(name) or self.frozen(name):
            self.record(name, "operator", "configuration changed while freehad is down or frozen")
            return
        r = self.run(name, nodes.FREEHACTL, "--user", "--timeout", "5s", "reload-config")
        ok = r is not None and r.returncode == 0
        self.record(name, "operator", "reload-config" + ("" if ok else f" failed: {r.stderr.strip() if r else ''}"))
        if not ok:
            self.say(f"{name}: reload-config failed: {r.stderr.strip() if r else 'timed out'}")

    def begin_etcd(self, fault):
        """A fault of etcd itself; fault.node names the member(s) it hits."""
        what = fault.detail = self.rng.choices(list(ETCD_FAULTS), weights=list(ETCD_FAULTS.values()))[0]
        members = self.etcd.members
        if what == "leader":
            leader = self.etcd.leader()
            if leader is None:  # electing one right now
                fault.detail += " (none found: a member)"
            victims = [leader or self.rng.choice(members)]
        elif what == "quorum":
            victims = sorted(self.rng.sample(members, 2), key=lambda m: m.name)
            fault.duration = self.rng.uniform(4, 8)  # long enough for every lease to run out
            # What each node's lease can last (etcd grants whole seconds).
            fault.state["ttl"] = {n: math.ceil(max(self.dead_times[n])) for n in NAMES}
        else:
            victims = [self.rng.choice(members)]
        fault.node = "+".join(m.name for m in victims)
        fault.state["members"] = victims
        for m in victims:
            if what == "freeze":  # it keeps its connections and answers nothing
                os.killpg(m.process.pid, signal.SIGSTOP)
            elif what == "isolate":
                m.isolate()
            else:
                m.kill()

    def end_etcd(self, fault):
        for m in fault.state["members"]:
            if fault.detail == "freeze":
                os.killpg(m.process.pid, signal.SIGCONT)
            elif fault.detail == "isolate":
                m.heal()
            else:
                m.start(state="existing")

    def end_faults(self, due_only):
        for fault in list(self.active):
            if not due_only or now() >= fault.due:
                self.finish(fault)

    # ----- the run ----------------------------------------------------------------

    def config(self, node):
        target = "Target=freeha-services.target\n" if self.target else ""
        if not self.with_etcd:
            return CONFIG.format(name=node.name, address=node.address) + target
        # Each node begins with another member, so that a member's fault hits the nodes differently.
        urls = etcd_urls()
        first = NAMES.index(node.name)
        return ETCD_CONFIG.format(name=node.name, dead_time=DEAD_TIME,
                                  endpoints=" ".join(urls[first:] + urls[:first])) + target

    def setup(self):
        self.cluster = nodes.Cluster(NAMES, self.config, target_mode=self.target)
        if self.with_etcd:
            self.etcd = EtcdCluster(self.cluster)
            assert self.etcd.endpoints() == etcd_urls(), f"etcd's members are at {self.etcd.endpoints()}"
        for name in NAMES:
            node = self.cluster[name]
            for hook, body in HOOKS.items():
                with open(node.etc("hooks", hook), "w") as f:
                    f.write(PRELUDE.format(name=hook) + body)
            if self.target:
                with open(node.etc("member.sh"), "w") as f:
                    f.write(MEMBER_SCRIPT)
                os.chmod(node.etc("member.sh"), 0o755)
                with open(node.units("member.service"), "w") as f:
                    f.write(MEMBER_UNIT)
                node.systemctl("daemon-reload", check=True)
                node.systemctl("enable", "member.service", check=True)
            ServiceWatch(self, node).start()
        nodes.start_all(self.cluster)
        try:
            self.cluster.wait_for(
                lambda: self.holders() == ["alpha"]
                and [(self.status(n) or {}).get("state") for n in NAMES] == ["RUNNING", "STANDBY", "STANDBY"],
                60, "alpha running the services")
        except AssertionError:
            self.say(f"holders {self.holders()}; states " + ", ".join(
                f"{n} {(self.status(n) or {}).get('state')}" for n in NAMES))
            self.print_timeline(self.t0, now())
            for name in NAMES:
                print(self.run(name, "journalctl", "--user", "-o", "cat", "--no-pager", "-n", "40").stdout)
            raise
        self.say("alpha runs the services; the storm begins")

    def settle(self):
        """Invariant b: with every fault ended, exactly one node runs the services, and all agree.
        Returns whether they did."""
        self.end_faults(due_only=False)
        quiet = now()
        self.say("every fault ended; waiting for the cluster to settle")
        since = "the last fault ended"
        if self.with_etcd:
            # Nothing can settle before etcd has a leader again (after a lost quorum, a killed
            # leader): the bound starts then.
            try:
                leader = self.etcd.wait_for_leader(timeout=ETCD_LEADER_WAIT)
            except AssertionError as e:
                self.fail(f"etcd: {e}", quiet - 30, now())
                return False
            self.leader_waits.append(now() - quiet)
            self.record(leader.name, "etcd.leader", f"{now() - quiet:.2f}s after the faults ended")
            quiet = now()
            since = "etcd had a leader again"
        settled_at = None
        while True:
            self.clear_errors(quiet=True)
            states = {n: self.status(n) for n in NAMES}
            holders = self.holders()
            running = [n for n in NAMES if states[n] and states[n]["state"] == "RUNNING"]
            agreed = (len(holders) == 1 and running == holders
                      and all(states[n] and states[n]["active_node"] == holders[0] for n in NAMES)
                      and all(states[n]["state"] == "STANDBY" for n in NAMES if n != holders[0]))
            t = now()
            if agreed and settled_at is None:
                settled_at = t
            elif not agreed:
                settled_at = None
            if settled_at is not None and t - settled_at >= HOLD:
                took = settled_at - quiet
                self.settles.append(took)
                self.say(f"settled: {holders[0]} runs the services, {took:.2f}s after {since}")
                for name in NAMES:
                    self.harvest_journal(name)
                return True
            if t - quiet > SETTLE_BOUND + HOLD:
                view = {n: (s["state"], s["active_node"]) if s else None for n, s in states.items()}
                units = {n: self.cluster[n].show("freehad", "ActiveState") if self.up(n) else "powered off"
                         for n in NAMES}
                self.fail(f"b: {SETTLE_BOUND:.0f}s after {since}, the services run on "
                          f"{holders or 'no node'}; states (state, active node) {view}; freehad units {units}"
                          + self.what_nodes_know(states), quiet - 30, t)
                return False
            time.sleep(0.2)

    def storm(self, until):
        next_fault = now() + self.rng.uniform(2, 6)
        while now() < until:
            self.end_faults(due_only=True)
            if now() >= next_fault:
                self.inject()
                next_fault = now() + self.rng.uniform(2, 6)
            self.clear_errors()
            wake = min([next_fault, until, now() + 0.25] + [f.due for f in self.active])
            time.sleep(max(0.0, wake - now()))

    def main(self):
        flags = " --wedge" if self.wedge else " --target" if self.target else ""
        flags += " --etcd" if self.with_etcd else ""
        self.say(f"soak: seed {self.seed}, {self.minutes:g} min "
                 f"(replay the faults: soak.py --minutes {self.minutes:g} --seed {self.seed}{flags})")
        self.setup()
        deadline = now() + self.minutes * 60
        while now() < deadline:
            self.storm(min(deadline, now() + self.rng.uniform(25, 45)))
            if not self.settle():
                break  # what follows would only repeat it
        end = now()
        for name in NAMES:
            if self.up(name):
                self.harvest_journal(name)
        self.check(end)
        if self.show_timeline:
            self.print_timeline(self.t0, end)
            for name in NAMES:
                print(f"  {name} ran the services: " + ", ".join(
                    f"[{s - self.t0:.3f}, {e - self.t0:.3f}] ({how or 'still running'})"
                    for s, e, how in self.spans[name]))
        return self.summary(end)

    # ----- verdict --------------------------------------------------------------

    def what_nodes_know(self, states):
        """Why nodes may disagree: whether each is quorate, the peers it hears, and (--etcd) its link."""
        out = ""
        for n, st in states.items():
            if not st:
                continue
            heard = sorted(p["name"] for p in st.get("nodes", []) if p.get("reachable") and p["name"] != n)
            out += f"\n  {n}: quorate {st.get('quorate')}, hears {heard}"
            if st.get("etcd"):
                e = st["etcd"]
                out += (f", etcd endpoint {e['endpoint']}, lease {e['lease_id']}, view synced {e['synced']}, "
                        f"counters {e['counters']}, last failure {e['last_failure']!r}")
        return out

    def fail(self, text, since, until):
        self.violations.append(text)
        print(f"VIOLATION {text}", flush=True)
        for name in NAMES:  # what the daemons said up to now, not only up to the last settle
            if self.up(name):
                self.harvest_journal(name)
        self.print_timeline(since, until)

    def print_timeline(self, since, until):
        print("  timeline (seconds since the soak began, CLOCK_MONOTONIC): the hooks' records, the soak's, "
              "and the nodes' journals about freehad.service")
        rows = [r[:4] for r in self.timeline()]
        rows += [(t, name, e.get("SYSLOG_IDENTIFIER", "?") + ":", e.get("MESSAGE", "")) for t, name, e in self.journal
                 if e.get("PRIORITY") != "7"]  # without debug messages
        for t, node, what, detail in sorted(rows, key=lambda r: r[0]):
            if since <= t <= until:
                print(f"  {t - self.t0:10.3f}  {node:8} {what:16} {detail}")

    def excused(self, frozen, other_started):
        """When the services of a node the soak froze may run beside those of another node: from the
        freeze to THAW_GRACE after the thaw, if the other node started after the freeze began (until then
        the frozen node could stop in time)."""
        return [(f.begin, (f.end or now()) + THAW_GRACE) for f in self.faults
                if f.kind == "freeze" and f.node == frozen and other_started > f.begin]

    def check(self, end):
        rows = self.timeline()
        spans = self.intervals(rows, end)
        self.spans = spans
        self.excused_overlaps = []
        # a: no two nodes' spans overlap outside the excuses.
        for i, x in enumerate(NAMES):
            for y in NAMES[i + 1:]:
                for sx, ex, hx in spans[x]:
                    for sy, ey, hy in spans[y]:
                        lo, hi = max(sx, sy), min(ex, ey)
                        if lo >= hi:
                            continue
                        left = subtract((lo, hi), self.excused(x, sy) + self.excused(y, sx))
                        if (hi - lo) - sum(b - a for a, b in left) > 0:
                            self.excused_overlaps.append((lo, hi, x, y))
                        if left:
                            a, b = left[0]
                            self.fail(f"a: the services ran on {x} and {y} at once for "
                                      f"{sum(b - a for a, b in left):.3f}s "
                                      f"from +{a - self.t0:.3f}s: {x} [{sx - self.t0:.3f}, {ex - self.t0:.3f}] "
                                      f"(ended by {hx or 'nothing yet'}), {y} [{sy - self.t0:.3f}, {ey - self.t0:.3f}] "
                                      f"(ended by {hy or 'nothing yet'})", lo - 15, hi + 5)
        # c: every exit of freehad the journal saw was one the soak caused.
        self.exits_caused = 0
        self.exits_unreachable = 0
        for t, name, e in self.journal:
            if e.get("MESSAGE_ID") != UNIT_FAILED:
                continue
            result = e.get("UNIT_RESULT")
            if result == "watchdog" and any(f.begin <= t <= (f.end or end) + WATCHDOG for f in self.faults
                                            if f.kind == "freeze" and f.node == name):
                self.exits_caused += 1
                continue
            if self.target and result == "exit-code" and any(
                    f.kind == "dbus" and f.node == name and t - 15 <= f.begin <= t for f in self.faults) and any(
                    v[1] == name and UNREACHABLE in v[2].get("MESSAGE", "") and t - 10 <= v[0] <= t
                    for v in self.journal):
                self.exits_unreachable += 1  # a stop could not reach systemd after its bus restarted
                continue
            exits = [v[2].get("MESSAGE") for v in self.journal
                     if v[1] == name and v[2].get("MESSAGE_ID") == PROCESS_EXITED and t - 10 <= v[0] <= t]
            self.fail(f"c: freehad on {name} failed ('{result}') at +{t - self.t0:.3f}s with no fault of the soak "
                      f"to explain it: {'; '.join(exits) or e.get('MESSAGE')}", t - 15, t + 5)
        self.check_quorum_losses(spans, end)
        if not any(spans.values()):
            self.violations.append("the services never ran")

    def check_quorum_losses(self, spans, end):
        """d (--etcd): once etcd's quorum is lost, no node runs the services after its lease can have
        ended, but a node the soak froze (until THAW_GRACE after its thaw)."""
        self.quorum_stops = []  # per loss, when the last services stopped after it began (None: none ran)
        for loss in [f for f in self.faults if f.kind == "etcd" and f.detail == "quorum"]:
            until = loss.end or end
            latest = None
            for name in NAMES:
                must_stop = loss.begin + loss.state["ttl"][name] + STEP_DOWN + STOP_GRACE
                frozen = [(f.begin, (f.end or end) + THAW_GRACE) for f in self.faults
                          if f.kind == "freeze" and f.node == name]
                for s, e, how in spans[name]:
                    if e <= loss.begin or s >= until:
                        continue
                    if e <= until and subtract((s, e), frozen) == [(s, e)]:  # (a frozen node's stop tells nothing)
                        latest = max(latest or 0.0, e - loss.begin)
                    lo, hi = max(s, must_stop), min(e, until)
                    left = subtract((lo, hi), frozen) if lo < hi else []
                    if left:
                        a, _ = left[0]
                        self.fail(f"d: etcd's quorum was lost at +{loss.begin - self.t0:.3f}s ({loss.node} down); "
                                  f"{name}'s lease (TTL {loss.state['ttl'][name]}s) ended by "
                                  f"+{must_stop - STOP_GRACE - self.t0:.3f}s, but the services ran there "
                                  f"[{s - self.t0:.3f}, {e - self.t0:.3f}] (ended by {how or 'nothing yet'}), "
                                  f"still at +{a - self.t0:.3f}s", loss.begin - 15, min(e, until) + 5)
            self.quorum_stops.append(latest)

    def summary(self, end):
        kinds = {}
        for f in self.faults:
            key = f.kind
            if f.kind == "freeze":
                key = f"freeze ({f.state['how']})"
            elif f.kind == "hook":
                key = f"hook {f.detail} ({'fired' if f.state.get('fired') else 'not fired'})"
            elif f.kind == "etcd":
                key = f"etcd {f.detail}"
            elif f.kind == "partition" and self.with_etcd:
                key = "partition (from etcd)" if f.detail == "from etcd" else "partition (from one member)"
            kinds[key] = kinds.get(key, 0) + 1
        starts = sorted((s, n) for n, spans in self.spans.items() for s, *_ in spans)
        moves = sum(1 for (_, a), (_, b) in zip(starts, starts[1:]) if a != b)
        covered = merge([(s, e) for spans in self.spans.values() for s, e, _ in spans])
        gap, gap_at = 0.0, None
        for (_, e1), (s2, _) in zip(covered, covered[1:]):
            if s2 - e1 > gap:
                gap, gap_at = s2 - e1, e1
        if covered and end - covered[-1][1] > gap:
            gap, gap_at = end - covered[-1][1], covered[-1][1]
        print("\nsummary")
        print(f"  seed {self.seed}; {(end - self.t0) / 60:.1f} min; {len(self.faults)} faults: "
              + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
        print(f"  service starts {len(starts)}, moves {moves}; longest gap without services {gap:.2f}s"
              + (f" (from +{gap_at - self.t0:.1f}s)" if gap_at else ""))
        print(f"  settled {len(self.settles)} times, longest after {max(self.settles, default=0):.2f}s "
              f"(bound {SETTLE_BOUND:.0f}s); errors cleared by the operator {self.errors_cleared}")
        print(f"  freehad exits caused by the soak's freezes (watchdog) {self.exits_caused}"
              + (f", by its bus restarts during a stop {self.exits_unreachable}" if self.target else "") + "; "
              f"overlaps excused on frozen nodes {len(self.excused_overlaps)}, the longest "
              f"{max((hi - lo for lo, hi, *_ in self.excused_overlaps), default=0):.2f}s")
        if self.show_timeline:
            for lo, hi, x, y in self.excused_overlaps:
                print(f"    {x} and {y} from +{lo - self.t0:.3f}s for {hi - lo:.3f}s")
        if self.with_etcd:
            stops = [f"{t:.2f}s" if t is not None else "none ran" for t in self.quorum_stops]
            print(f"  etcd quorum lost {len(self.quorum_stops)} times; the services stopped after each loss began: "
                  f"{', '.join(stops) or '-'} (bound: the node's TTL + {STEP_DOWN + STOP_GRACE:.1f}s); "
                  f"etcd had a leader again at most {max(self.leader_waits, default=0):.2f}s after a pause began")
        for v in self.violations:
            print(f"  VIOLATION {v}")
        print("FAIL" if self.violations else "PASS", flush=True)
        return 1 if self.violations else 0

    def teardown(self):
        for fault in list(self.active):
            if fault.kind == "freeze":
                try:
                    self.end_freeze(fault)
                except Exception:  # noqa: BLE001 - the cluster goes away next
                    pass
        if self.etcd:
            self.etcd.destroy()  # before the namespaces go (a frozen member dies of SIGKILL all the same)
        if self.cluster:
            self.cluster.destroy()


def merge(spans):
    out = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def subtract(span, windows):
    """span minus the union of windows: a list of (begin, end)."""
    left = [span]
    for a, b in windows:
        left = [piece for lo, hi in left for piece in ((lo, min(hi, a)), (max(lo, b), hi)) if piece[0] < piece[1]]
    return left


def main():
    parser = argparse.ArgumentParser(description="Randomized fault soak of a real 3-node freeha cluster.")
    parser.add_argument("--minutes", type=float, required=True, help="how long the storm lasts")
    parser.add_argument("--seed", type=int, default=None, help="replays a schedule of faults")
    parser.add_argument("--timeline", action="store_true", help="prints the whole timeline and the services' spans")
    parser.add_argument("--wedge", action="store_true",
                        help="a hook fault may also hang both monitorhasrv and stophasrv of a node (a wedged service): "
                             "a stop that outlives StopTimeout, which freehad must end with a kill")
    parser.add_argument("--target", action="store_true",
                        help="target mode: freehad starts and stops a systemd target, and D-Bus restarts mostly hit "
                             "the node that runs it")
    parser.add_argument("--etcd", action="store_true",
                        help="the nodes use Backend=etcd on a real 3-member etcd, and etcd's members are killed, "
                             "frozen and cut off too")
    args = parser.parse_args()
    if args.wedge and args.target:
        parser.error("--wedge: hangs hooks, which target mode does not run")
    if args.etcd and args.target:
        parser.error("--etcd: runs the storm in scripts mode only (its target mode is untried)")
    if args.minutes <= 0:
        parser.error("--minutes: must be positive")
    why = missing_facility(etcd=args.etcd)
    if why:
        print(f"SKIP: {why}")
        return 77
    if not os.path.exists(nodes.FREEHAD):
        print(f"soak: {nodes.FREEHAD} is not built (set FREEHA_BUILD to the build directory)", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    soak = Soak(args.minutes, seed, args.timeline, args.wedge, args.target, args.etcd)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # meson's timeout: tear down all the same
    try:
        return soak.main()
    finally:
        soak.teardown()


if __name__ == "__main__":
    sys.exit(main())
