"""Namespaced test nodes: each with its own network namespace on a private
bridge, mount/pid/uts/ipc namespaces, cgroup subtree, journald, and a real
`systemd --user` manager with its own user bus (see systemd-in-tests.md).

The project's own freehad.service is installed into each node's user unit
directory with a drop-in that only changes the binary path and adds --user.
Everything is prefixed per run and torn down by Cluster.destroy().
"""
import atexit
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
import processes  # noqa: E402
BUILD = os.environ.get("FREEHA_BUILD", os.path.join(ROOT, "build"))
FREEHAD = os.path.join(BUILD, "src/daemon/freehad")
FREEHACTL = os.path.join(BUILD, "src/ctl/freehactl")
SERVICE = os.path.join(BUILD, "units/freehad.service")
TARGET = os.path.join(ROOT, "units/freeha-services.target")
CGROUP_ROOTS = ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
SUBNET = "10.213.0"
SUBNET6 = "fd00:213::"
SERVICE_SCRIPTS = os.path.join(ROOT, "service-scripts")


def _library_dir():
    """Where this build's freehad looks for the service-script library (build_config.h)."""
    with open(os.path.join(BUILD, "build_config.h")) as f:
        for line in f:
            if line.startswith("#define FREEHA_SERVICE_SCRIPTS_DIR "):
                return line.split('"')[1]
    raise RuntimeError("FREEHA_SERVICE_SCRIPTS_DIR not in build_config.h")
MULTICAST6 = "ff02::f33"  # every node also has fe80::N/64 on eth0

INIT = r"""#!/bin/sh
# PID 1 of one test node: private /run, journald, then systemd --user in the
# node's own cgroup. When this script dies, the kernel kills the whole node.
set -e
# INIT (and so journald) lives in NODE/init.scope: journald strips that from
# every cgroup path, which lets `journalctl --user-unit` find the node's units.
for root in $NODE_CGROUPS; do echo $$ > "$root/init.scope/cgroup.procs"; done
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/system /run/user/0 /run/systemd/journald.conf.d
chmod 700 /run/user/0
printf '[Journal]\nStorage=volatile\nRateLimitBurst=0\n' > /run/systemd/journald.conf.d/test.conf
hostname "$NODE_NAME"
mount --bind "$NODE_DIR/etc-freeha" /etc/freeha
# SOURCE=TARGET pairs: the service-script library at the path freehad was
# built with, and whatever else this node has of its own (/opt/freeha/bin).
for bind in $NODE_BINDS; do mount --bind "${bind%%=*}" "${bind#*=}"; done
/lib/systemd/systemd-journald &
i=0; while [ ! -S /run/systemd/journal/stdout ] && [ $i -lt 200 ]; do sleep 0.02; i=$((i+1)); done
(
  for root in $NODE_CGROUPS; do echo $(sh -c 'echo $PPID') > "$root/user.slice/user-0.slice/user@0.service/cgroup.procs"; done
  exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$NODE_DIR/home" \
    XDG_RUNTIME_DIR=/run/user/0 DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/0/bus \
    /lib/systemd/systemd --user --log-target=journal
) &
wait
"""

# Each hook logs its start ("starthasrv TS STATE") and its end ("starthasrv.done TS").
HOOK = """#!/bin/sh
echo "{name} $(date +%s.%N) $FREEHA_STATE" >> /etc/freeha/events.log
{body}
status=$?
echo "{name}.done $(date +%s.%N)" >> /etc/freeha/events.log
exit $status
"""
HOOKS = {
    "starthasrv": "touch /etc/freeha/services-up",
    "stophasrv": "rm -f /etc/freeha/services-up",
    "monitorhasrv": "[ -f /etc/freeha/services-up ]",
}

# Sets user.delegate=1 on the unit's cgroup in the unified hierarchy, as the
# system manager does for Delegate=yes (ExecStartPre runs in the unit's cgroup).
MARK_DELEGATED = ("import os; "
                  "cg = next(l[3:].strip() for l in open('/proc/self/cgroup') if l.startswith('0::')); "
                  "cg = cg[:-len('/.control')] if cg.endswith('/.control') else cg; "
                  "root = next(r for r in ('/sys/fs/cgroup/unified', '/sys/fs/cgroup') "
                  "if os.path.exists(r + cg + '/cgroup.procs')); "
                  "os.setxattr(root + cg, 'user.delegate', b'1')")

MEMBER = """[Unit]
Description=A service FreeHA moves between nodes (test member)
PartOf=freeha-services.target
[Service]
ExecStart=/bin/sleep infinity
[Install]
RequiredBy=freeha-services.target
"""


def missing_facility():
    """Why system tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "system tests need root"
    for tool in ("ip", "unshare", "nsenter", "busctl", "systemctl", "journalctl"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if not os.path.exists("/lib/systemd/systemd") or not os.path.exists("/lib/systemd/systemd-journald"):
        return "systemd is not installed"
    if not os.path.exists("/usr/lib/systemd/user/dbus.socket"):
        return "dbus-user-session is not installed (no user bus)"
    if subprocess.run(["ip", "netns", "add", "freeha-probe"], capture_output=True).returncode != 0:
        return "cannot create network namespaces"
    subprocess.run(["ip", "netns", "del", "freeha-probe"], capture_output=True)
    return None


def main(also_missing=None):
    """Runs the calling module's tests (unittest's command line), or exits 77,
    meson's skip, naming what this machine lacks (or `also_missing`)."""
    why = missing_facility() or also_missing
    if why:
        print(f"SKIP: {why}")
        sys.exit(77)
    result = unittest.main(module="__main__", verbosity=2, exit=False).result
    sys.exit(0 if result.wasSuccessful() else 1)


def sh(*args, check=True, timeout=30, **kw):
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout, **kw)


def plug(cluster, netns, link, address, address6):
    """A network namespace with eth0 on the cluster's bridge, IPv4 and IPv6
    addresses (IPv6 without duplicate address detection, usable at once)."""
    sh("ip", "netns", "add", netns)
    sh("ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", netns)
    sh("ip", "link", "set", link, "netns", cluster.switch)
    sh("ip", "-n", cluster.switch, "link", "set", link, "master", "br0", "up")
    sh("ip", "-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
    sh("ip", "-n", netns, "addr", "add", f"{address6}/64", "dev", "eth0", "nodad")
    sh("ip", "-n", netns, "link", "set", "eth0", "up")
    sh("ip", "-n", netns, "link", "set", "lo", "up")


def mac_of(netns):
    return sh("ip", "-n", netns, "-o", "link", "show", "eth0").stdout.split("link/ether ")[1].split()[0]


class Client:
    """A host on the cluster's bridge that runs no freehad: a network namespace only. Any
    bridge in a namespace `switch` will do (a Cluster, bench/compare's topology), given a
    `prefix` to name the namespace after and the subnets to take the client's addresses from."""

    def __init__(self, cluster, name, index, subnet=SUBNET, subnet6=SUBNET6):
        self.name = name
        self.address = f"{subnet}.{index}"
        self.address6 = f"{subnet6}{index}"
        self.netns = f"{cluster.prefix}-{name}"
        plug(cluster, self.netns, f"{cluster.prefix}{name[:3]}", self.address, self.address6)

    def run(self, *args, check=False, timeout=30):
        return sh("ip", "netns", "exec", self.netns, *args, check=check, timeout=timeout)

    def neighbour(self, address):
        """The client's neighbour entry for address: (MAC or None, state), without sending anything."""
        return self.neighbours().get(address, (None, "NONE"))

    def neighbours(self):
        """The client's whole neighbour table on eth0, IPv4 and IPv6, read without sending
        anything: {address: (MAC or None, state)}. An announcement that reached the client
        shows here before the client asked for the address."""
        table = {}
        for line in self.run("ip", "neigh", "show", "dev", "eth0", check=True).stdout.splitlines():
            fields = line.split()
            if fields:
                table[fields[0]] = (fields[fields.index("lladdr") + 1] if "lladdr" in fields else None, fields[-1])
        return table

    def probe(self, address, path, interval=0.01):
        """Starts pinging address every interval (a Prober writing to path)."""
        return Prober(self.netns, address, path, interval)


PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe.py")


class Prober:
    """probe.py in a client's network namespace: pings a floating address every 10 ms and
    records who answers. outage() and answering() read what it saw so far, while it runs."""

    def __init__(self, netns, address, path, interval=0.01):
        self.address, self.path = address, path
        self._answers, self._offset = [], 0  # read so far, and up to where
        self.process = subprocess.Popen(["ip", "netns", "exec", netns, "python3", PROBE, address, path,
                                         str(interval)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"probe of {address} did not start: {self.process.communicate()[1].strip()}")
            time.sleep(0.02)

    def _ready(self):
        try:
            with open(self.path) as f:
                return f.readline() == "ready\n"
        except FileNotFoundError:
            return False

    def answers(self):
        """[(realtime, "echo" or "claim", MAC)] so far, in time order (read on from where the last call stopped)."""
        with open(self.path) as f:
            f.seek(self._offset)
            text = f.read()
        complete = text[:text.rfind("\n") + 1]  # the last line may be half written
        self._offset += len(complete.encode())
        rows = [line.split() for line in complete.splitlines() if line[:1].isdigit()]
        self._answers += [(float(t), kind, mac) for t, kind, mac in rows]
        self._answers.sort()
        return self._answers

    def outage(self, event, until):
        """See outage()."""
        return outage(self.answers(), event, until)

    def answering(self, since, until):
        """See answering()."""
        return answering(self.answers(), since, until)

    def stop(self):
        processes.end(self.process, grace=5)
        self.process.stderr.close()


def outage(answers, event, until):
    """The client's outage around an event at realtime `event`: the longest silence between
    two echo replies from the last reply before the event (or at most 1 s before it) to
    `until`, as (seconds, last reply before the silence, first reply after it). When no reply
    came after the event, the silence runs to `until` and the first reply is None."""
    replies = [t for t, kind, _ in answers if kind == "echo" and t <= until]
    before = [t for t in replies if t <= event]
    start = max(before[-1] if before else event - 1, event - 1)
    times = [start] + [t for t in replies if t > start]
    if times[-1] <= event:
        return until - times[-1], times[-1], None
    return max((b - a, a, b) for a, b in zip(times, times[1:]))


def answering(answers, since, until):
    """The MACs that answered for the address from `since` to `until`, consecutive repeats
    merged: [old] or [old, new] for one clean move, anything longer means two hosts
    answered for the address after it moved (or it moved back)."""
    macs = []
    for t, _, mac in answers:
        if since <= t <= until and (not macs or macs[-1] != mac):
            macs.append(mac)
    return macs


class Node:
    def __init__(self, cluster, name, index):
        self.cluster = cluster
        self.name = name
        self.address = f"{SUBNET}.{index + 10}"
        self.address6 = f"{SUBNET6}{index + 10}"
        self.link_local = f"fe80::{index + 10}"
        self.netns = f"{cluster.prefix}-{name}"
        self.dir = os.path.join(cluster.dir, name)
        self.init = None
        self._pid1 = None
        self.cgroups = [os.path.join(r, cluster.prefix, name) for r in cluster.cgroup_roots]
        self.binds = {_library_dir(): SERVICE_SCRIPTS}  # target: source
        self.freehad = FREEHAD  # the binary the unit runs: another build's for a rolling upgrade (use_freehad())
        os.makedirs(os.path.join(self.dir, "etc-freeha", "hooks"))
        os.makedirs(os.path.join(self.dir, "home", ".config", "systemd", "user", "freehad.service.d"))

    def etc(self, *parts):
        return os.path.join(self.dir, "etc-freeha", *parts)

    def units(self, *parts):
        return os.path.join(self.dir, "home", ".config", "systemd", "user", *parts)

    def install(self, config, target_mode=False):
        with open(self.etc("freehad.conf"), "w") as f:
            f.write(config)
        for hook, body in HOOKS.items():
            path = self.etc("hooks", hook)
            with open(path, "w") as f:
                f.write(HOOK.format(name=hook, body=body))
            os.chmod(path, 0o755)
        shutil.copy(SERVICE, self.units("freehad.service"))
        self._write_drop_in()
        if target_mode:
            shutil.copy(TARGET, self.units("freeha-services.target"))
            with open(self.units("member.service"), "w") as f:
                f.write(MEMBER)

    def _write_drop_in(self):
        with open(self.units("freehad.service.d", "test.conf"), "w") as f:
            f.write(f"# Only the binary path and --user differ from the shipped unit, and the\n"
                    f"# delegation mark that systemd 252's system manager puts on a Delegate=yes\n"
                    f"# unit's cgroup (its user manager does not): freehad fences by that cgroup.\n"
                    f"[Service]\nExecStart=\nExecStart={self.freehad} --user\n"
                    f"ExecStopPost=\nExecStopPost={self.freehad} --user --clean-up\n"
                    f"ExecStartPre=python3 -c {shlex.quote(MARK_DELEGATED)}\n")

    def use_freehad(self, path):
        """The unit runs `path` from its next start on (as a package upgrade swaps
        /usr/sbin/freehad under a running unit): stop, use_freehad(), start."""
        self.freehad = path
        self._write_drop_in()
        if self.init is not None:
            self.systemctl("daemon-reload", check=True)

    def boot(self):
        """Creates the network namespace and starts INIT (systemd --user inside)."""
        c = self.cluster
        plug(c, self.netns, f"{c.prefix}{self.name[:3]}", self.address, self.address6)
        self.add_ipv6_addresses(addresses=(self.link_local,))
        self.power_on()

    def power_on(self):
        """Starts INIT in the node's network namespace: at boot, or again after
        power_cut() (its files and state directory are kept)."""
        sh("ip", "-n", self.netns, "link", "set", "eth0", "up")
        if self.address6 not in sh("ip", "-n", self.netns, "-6", "addr", "show", "dev", "eth0").stdout:
            self.add_ipv6_addresses()  # the kernel drops them when power_cut() takes the link down
        for cg in self.cgroups:
            os.makedirs(os.path.join(cg, "user.slice/user-0.slice/user@0.service"), exist_ok=True)
            os.makedirs(os.path.join(cg, "init.scope"), exist_ok=True)
        init = os.path.join(self.dir, "init.sh")
        with open(init, "w") as f:
            f.write(INIT)
        for target in self.binds:
            os.makedirs(target, exist_ok=True)  # the mount point; left in place (other runs may use it)
        env = {"PATH": os.environ["PATH"], "NODE_NAME": self.name, "NODE_DIR": self.dir,
               "NODE_CGROUPS": " ".join(self.cgroups),
               "NODE_BINDS": " ".join(f"{source}={target}" for target, source in self.binds.items())}
        log = open(os.path.join(self.dir, "init.log"), "w")
        # nsenter rather than `ip netns exec`, which would mount a fresh /sys and hide the cgroup trees.
        self.init = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.netns}", "unshare", "--mount", "--propagation",
                                      "private", "--pid", "--fork", "--uts", "--ipc", "--mount-proc", "sh", init],
                                     stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = self.run("systemctl", "--user", "is-system-running", check=False)
            if r.stdout.strip() in ("running", "degraded"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: systemd --user did not come up: {r.stdout} {r.stderr}")

    def add_ipv6_addresses(self, device="eth0", addresses=None):
        # nodad: usable at once rather than after duplicate address detection.
        for address in addresses or (self.address6, self.link_local):
            sh("ip", "-n", self.netns, "addr", "add", f"{address}/64", "dev", device, "nodad")

    def pid1(self):
        """The node's INIT as seen from the host: nsenter execs unshare, which forks INIT."""
        if self._pid1 is None:
            deadline = time.monotonic() + 5
            while self._pid1 is None and time.monotonic() < deadline:
                pids = sh("pgrep", "-P", str(self.init.pid), check=False).stdout.split()
                self._pid1 = int(pids[0]) if pids else None
                time.sleep(0.02)
            if self._pid1 is None:
                raise RuntimeError(f"{self.name}: INIT not found")
        return self._pid1

    def run(self, *args, check=False, timeout=30):
        env = {"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": "/run/user/0",
               "DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/0/bus", "SYSTEMD_COLORS": "0"}
        return sh("nsenter", "--target", str(self.pid1()), "--all", *args, check=check, timeout=timeout, env=env)

    def popen(self, *args):
        env = {"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": "/run/user/0",
               "DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/0/bus"}
        return subprocess.Popen(["nsenter", "--target", str(self.pid1()), "--all", *args], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def systemctl(self, *args, check=False, timeout=60):
        return self.run("systemctl", "--user", *args, check=check, timeout=timeout)

    def show(self, unit, prop):
        return self.systemctl("show", "-P", prop, unit).stdout.strip()

    def prop(self, name):
        r = self.run("timeout", "5", "busctl", "--user", "--json=short", "get-property", "org.freeha1",
                     "/org/freeha1", "org.freeha1.Manager", name)
        return json.loads(r.stdout)["data"] if r.returncode == 0 else None

    def ctl(self, *args, timeout=60):
        return self.run(FREEHACTL, "--user", *args, timeout=timeout)

    def events(self, hook=None):
        try:
            with open(self.etc("events.log")) as f:
                rows = [line.split() for line in f]
        except FileNotFoundError:
            return []
        return [r for r in rows if hook is None or r[0] == hook]

    def main_pid(self):
        return int(self.show("freehad", "MainPID") or 0)

    def cpu_seconds(self):
        """User + system CPU time freehad has used so far."""
        fields = self.run("cat", f"/proc/{self.main_pid()}/stat", check=True).stdout.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def in_netns(self, *args, timeout=60, check=True):
        """A command in this node's network namespace only (host files, host clock)."""
        return sh("nsenter", f"--net=/run/netns/{self.netns}", *args, timeout=timeout, check=check)

    def isolate(self):
        """Drops every heartbeat in and out (nftables in the node's namespace)."""
        rules = ("table inet freeha_test {\n"
                 " chain in {\n  type filter hook input priority 0;\n  udp dport 3891 drop\n }\n"
                 " chain out {\n  type filter hook output priority 0;\n  udp dport 3891 drop\n }\n}\n")
        sh("nsenter", f"--net=/run/netns/{self.netns}", "nft", "-f", "-", input=rules)

    def heal(self):
        self.in_netns("nft", "delete", "table", "inet", "freeha_test")

    def freeze(self, frozen=True):
        """Freezes (or thaws) every process of the node through the cgroup v2 freezer."""
        unified = [cg for cg in self.cgroups if "/unified/" in cg or os.path.exists(os.path.join(cg, "cgroup.freeze"))]
        with open(os.path.join(unified[0], "cgroup.freeze"), "w") as f:
            f.write("1" if frozen else "0")

    def mac(self):
        return mac_of(self.netns)

    def power_cut(self):
        """Every process of the node dies at once, and its network card goes dark
        (an address it held no longer answers)."""
        os.killpg(self.init.pid, signal.SIGKILL)
        self.init.wait()
        self.init = None
        self._pid1 = None
        sh("ip", "-n", self.netns, "link", "set", "eth0", "down")


class Cluster:
    def __init__(self, names, config, target_mode=False, prepare=None):
        """prepare(node), when given, runs before each node's files are installed and it boots."""
        if not os.path.isdir("/etc/freeha"):
            os.makedirs("/etc/freeha")  # the mount point for each node's own /etc/freeha
        self.prefix = f"fh{os.getpid() % 100000}"
        self.switch = f"{self.prefix}-sw"
        self.dir = tempfile.mkdtemp(prefix="freeha-sys-")
        self.cgroup_roots = [r for r in CGROUP_ROOTS if os.path.exists(os.path.join(r, "cgroup.procs"))][:2]
        self.names = list(names)
        self.nodes = {n: Node(self, n, i) for i, n in enumerate(self.names)}
        self.clients = {}
        # unittest skips tearDownClass when setUpClass fails: without this, a
        # cluster whose start timed out ran on, and loaded the machine, until reboot.
        self.destroyed = False
        atexit.register(self.destroy)
        sh("ip", "netns", "add", self.switch)
        sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.switch, "link", "set", "br0", "up")
        for node in self.nodes.values():
            if prepare:
                prepare(node)
            node.install(config(node), target_mode)
            node.boot()

    def add_client(self, name):
        """A host with no freehad on the bridge, at SUBNET.200 and up."""
        self.clients[name] = Client(self, name, 200 + len(self.clients))
        return self.clients[name]

    def __getitem__(self, name):
        return self.nodes[name]

    def destroy(self):
        if self.destroyed:
            return
        self.destroyed = True
        for node in self.nodes.values():
            if node.init is not None:
                try:
                    os.killpg(node.init.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                node.init.wait()
                node.init = None
            subprocess.run(["ip", "netns", "del", node.netns], capture_output=True)
        for client in self.clients.values():
            subprocess.run(["ip", "netns", "del", client.netns], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.switch], capture_output=True)
        time.sleep(0.2)
        for node in self.nodes.values():
            for cg in node.cgroups:
                for sub, dirs, _ in sorted(os.walk(cg), key=lambda w: -len(w[0])):
                    try:
                        os.rmdir(sub)
                    except OSError:
                        pass
        for root in self.cgroup_roots:
            try:
                os.rmdir(os.path.join(root, self.prefix))
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def wait_for(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def start_all(cluster, timeout=60):
    """systemctl start freehad on every node at once, the first node first, and waits until every
    unit is active (Type=notify: READY=1). Started one after the other, each waiting for the one
    before, the first node came up seconds after the others on a loaded machine, and the second
    node, elected by the first two nodes' quorum, held the services (no fail-back)."""
    for name in cluster.names:
        cluster[name].systemctl("daemon-reload", check=True)
    for name in cluster.names:
        r = cluster[name].systemctl("start", "--no-block", "freehad")
        assert r.returncode == 0, f"{name}: systemctl start: {r.stderr}"
    for name in cluster.names:
        node = cluster[name]
        cluster.wait_for(lambda: node.show("freehad", "ActiveState") in ("active", "failed"), timeout,
                         f"{name}: freehad.service to start")
        state = node.show("freehad", "ActiveState")
        assert state == "active", f"{name}: freehad.service is {state}: " + node.run(
            "journalctl", "--user", "-u", "freehad", "-o", "cat", "--no-pager", "-n", "20").stdout


def dump_journals(cluster):
    """The last lines of freehad's journal on every node still up, to stderr: for a test that failed."""
    for name, node in cluster.nodes.items():
        if node.init is not None:
            r = node.run("journalctl", "--user-unit", "freehad", "--no-pager", "-o", "cat", "-n", "40")
            print(f"\n--- {name}: freehad's journal\n{r.stdout}", file=sys.stderr)


def set_up_or_destroy(cluster, set_up):
    """Runs a class's set_up(); when it fails, dumps the journals and destroys
    the cluster first (unittest skips tearDownClass when setUpClass fails)."""
    try:
        set_up()
    except BaseException:
        dump_journals(cluster)
        cluster.destroy()
        raise


def config_for(cluster_name, expected, extra=""):
    def config(node):
        return (f"[Cluster]\nName={cluster_name}\nNodeName={node.name}\nExpectedNodes={expected}\n"
                f"[Heartbeat]\nChannel=broadcast {node.address}\n{extra}")
    return config
