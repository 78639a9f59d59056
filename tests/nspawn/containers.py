"""Containers booted by systemd-nspawn on overlays of the host's own root:
each runs the real system manager as PID 1 (system bus, journald, logind),
in a network namespace with a veth to one test bridge that lives in a
namespace of its own, so no frame leaves the machine (see
../shared/systemd-in-tests.md, "A real system manager").

Every netns, mount, cgroup and directory carries a per-run prefix and is
torn down by Cluster.destroy().
"""
import glob
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

CGROUP_ROOTS = ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
NSPAWN_DIR = "/run/systemd/nspawn"
SUBNET = "10.214.0"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What a hand-made install (meson install, the system tests) may have left on
# the host; the containers must see only what the package installs.
HOST_LEFTOVERS = ["etc/freeha", "etc/systemd/system/freehad.service*", "etc/systemd/system/freeha-*",
                  "etc/systemd/system/*.wants/freehad.service", "usr/local/sbin/freehad", "usr/local/bin/freehactl",
                  "usr/local/lib/systemd/system/freeha*", "usr/local/lib/systemd/catalog/freehad.catalog",
                  "usr/local/share/dbus-1/system.d/org.freeha1.conf", "etc/dbus-1/system.d/org.freeha1.conf",
                  "usr/local/share/cockpit/freeha",
                  "var/lib/freeha"]


def missing_facility():
    """Why this tier cannot run here, or None."""
    if os.geteuid() != 0:
        return "the nspawn tier needs root"
    for tool in ("systemd-nspawn", "ip", "nsenter", "mount"):
        if not shutil.which(tool):
            return f"{tool} is not installed (apt-get install systemd-container iproute2)"
    if subprocess.run(["ip", "netns", "add", "freeha-nprobe"], capture_output=True).returncode != 0:
        return "cannot create network namespaces"
    subprocess.run(["ip", "netns", "del", "freeha-nprobe"], capture_output=True)
    probe = "/tmp/freeha-nprobe"
    os.makedirs(probe, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "freeha-nprobe", probe], capture_output=True)
    if ok.returncode != 0:
        os.rmdir(probe)
        return f"cannot mount a tmpfs: {ok.stderr.decode().strip()}"
    subprocess.run(["umount", probe])
    os.rmdir(probe)
    return None


def sh(*args, check=True, timeout=60, **kw):
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout, **kw)


def host_masks():
    """systemd.mask= for every unit the host has enabled (and every SysV
    script it starts), freehad's own excepted: the container boots the host's
    tree and must run only the system manager's own services and freehad."""
    units = set()
    r = sh("systemctl", "list-unit-files", "--state=enabled", "--no-legend", "--no-pager", check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.rsplit(".", 1)[-1] in ("service", "socket", "timer", "path"):
            units.add(name)
    for link in glob.glob("/etc/rc[2-5].d/S*"):
        unit = os.path.basename(link)[3:] + ".service"
        # A native unit wins over the script: that one is masked only if enabled.
        if not any(os.path.exists(os.path.join(d, unit)) for d in ("/etc/systemd/system", "/lib/systemd/system")):
            units.add(unit)
    units.discard("freehad.service")
    return sorted(f"systemd.mask={u}" for u in units)


class Container:
    def __init__(self, cluster, name, index):
        self.cluster = cluster
        self.name = name
        self.address = f"{SUBNET}.{index + 10}"
        self.netns = f"{cluster.prefix}-{name}"
        self.base = os.path.join("/tmp", f"{cluster.prefix}-{name}")
        self.root = os.path.join(self.base, "root")
        self.cgroups = [os.path.join(r, f"{cluster.prefix}-{name}") for r in cluster.cgroup_roots]
        self.nspawn = None
        self._pid1 = None
        self.boots = 0

    # -- set-up and boot ---------------------------------------------------
    def create(self):
        """The network namespace and the overlay root (host's / below, tmpfs above)."""
        c = self.cluster
        veth = f"{c.prefix}{self.name[:3]}"
        sh("ip", "netns", "add", self.netns)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", self.netns)
        sh("ip", "link", "set", veth, "netns", c.switch)
        sh("ip", "-n", c.switch, "link", "set", veth, "master", "br0", "up")
        sh("ip", "-n", self.netns, "addr", "add", f"{self.address}/24", "dev", "eth0")
        sh("ip", "-n", self.netns, "link", "set", "eth0", "up")
        sh("ip", "-n", self.netns, "link", "set", "lo", "up")
        os.makedirs(self.base)
        sh("mount", "-t", "tmpfs", "-o", "size=1g,mode=755", f"{c.prefix}-{self.name}", self.base)
        for d in ("upper", "work", "root"):
            os.makedirs(os.path.join(self.base, d))
        sh("mount", "-t", "overlay", "overlay", "-o",
           f"lowerdir=/,upperdir={self.base}/upper,workdir={self.base}/work", self.root)
        for pattern in HOST_LEFTOVERS:
            for path in glob.glob(os.path.join(self.root, pattern)):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        self.write("/etc/hostname", self.name + "\n")
        self.write("/etc/machine-id", secrets.token_hex(16) + "\n")
        for cg in self.cgroups:
            os.makedirs(cg, exist_ok=True)

    def path(self, inside):
        """A path of the container as the host sees it: the overlay's merged
        tree, which holds everything but the mounts inside (/run, /tmp, /proc)."""
        return os.path.join(self.root, inside.lstrip("/"))

    def write(self, inside, text, mode=0o644):
        path = self.path(inside)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)

    def read(self, inside):
        try:
            with open(self.path(inside)) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def cat(self, inside):
        """A file as the running container sees it (its /run is its own tmpfs)."""
        return self.run("cat", inside).stdout

    def boot(self):
        """Starts systemd-nspawn --boot in the container's own cgroup and waits
        until the system manager inside reports running (or degraded)."""
        log = open(os.path.join(self.cluster.dir, f"{self.name}.boot{self.boots}.log"), "w")
        self.boots += 1
        # nspawn --keep-unit makes its payload and supervisor cgroups below
        # its own: give each container its own parent.
        launcher = 'for cg in $CGROUPS; do echo $$ > "$cg/cgroup.procs"; done; exec "$@"'
        env = {"PATH": PATH, "CGROUPS": " ".join(self.cgroups), "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
        self.nspawn = subprocess.Popen(
            ["sh", "-c", launcher, "sh", "systemd-nspawn", "-q", "-D", self.root, "--boot", "--register=no",
             "--keep-unit", f"--machine={self.name}", "--console=passive",
             # Its own network namespace: hooks configure floating addresses in it, as on a machine.
             "--capability=CAP_NET_ADMIN",
             f"--network-namespace-path=/run/netns/{self.netns}", "--", *self.cluster.masks],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        self._pid1 = None
        deadline = time.monotonic() + 30
        while self._pid1 is None and time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise RuntimeError(f"{self.name}: systemd-nspawn exited {self.nspawn.returncode}")
            pids = sh("pgrep", "-P", str(self.nspawn.pid), "-x", "systemd", check=False).stdout.split()
            self._pid1 = int(pids[0]) if pids else None
            time.sleep(0.05)
        if self._pid1 is None:
            raise RuntimeError(f"{self.name}: no systemd in the container")
        # PID 1 answers on its private socket a moment after it appears;
        # until then systemctl says "offline" (or nothing) at once, without
        # waiting: ask again until the boot ends or takes too long.
        deadline = time.monotonic() + 90
        while True:
            r = self.run("systemctl", "is-system-running", "--wait", timeout=90)
            if r.stdout.strip() not in ("", "offline") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if r.stdout.strip() not in ("running", "degraded"):
            raise RuntimeError(f"{self.name}: system is {r.stdout.strip()}: {r.stderr}")
        if r.stdout.strip() == "degraded":
            failed = self.run("systemctl", "--failed", "--no-legend", "--plain").stdout
            print(f"{self.name}: booted degraded: {failed}")

    def pid1(self):
        return self._pid1

    # -- running things inside ----------------------------------------------
    def run(self, *args, check=False, timeout=60, user=None):
        """A command inside the container (all its namespaces), with a clean
        environment; user="nobody" drops to an unprivileged uid first."""
        drop = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if user == "nobody" else []
        return sh("nsenter", "-t", str(self._pid1), "-a", "env", "-i", f"PATH={PATH}", "SYSTEMD_COLORS=0",
                  "SYSTEMD_PAGER=", "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", *drop, *args,
                  check=check, timeout=timeout)

    def systemctl(self, *args, check=False, timeout=120):
        return self.run("systemctl", *args, check=check, timeout=timeout)

    def show(self, unit, prop):
        return self.systemctl("show", "-P", prop, unit).stdout.strip()

    def prop(self, name, user=None, path="/org/freeha1", interface="org.freeha1.Manager"):
        """A property of org.freeha1.Manager (or of the object at `path`) on the container's system bus, or None."""
        r = self.run("timeout", "10", "busctl", "--json=short", "get-property", "org.freeha1", path,
                     interface, name, user=user)
        if r.returncode != 0:
            return None
        return json.loads(r.stdout)["data"]

    def events(self, hook=None):
        rows = [line.split() for line in self.read("/var/log/freeha-test/events.log").splitlines()]
        return [r for r in rows if r and (hook is None or r[0] == hook)]

    # -- ending --------------------------------------------------------------
    def wait_exit(self, timeout=30):
        """Waits for systemd-nspawn to end; returns its exit status."""
        try:
            return self.nspawn.wait(timeout=timeout)
        finally:
            self._pid1 = None

    def power_cut(self):
        """SIGKILL of the container's PID 1: the kernel kills its whole pid namespace."""
        os.kill(self._pid1, signal.SIGKILL)
        return self.wait_exit()

    def destroy(self):
        """Powers the container off (SIGKILL of its PID 1 if that takes over
        20 s: killing nspawn alone would leave the container running), then
        removes its mounts, network namespace and cgroups."""
        if self.nspawn is not None and self.nspawn.poll() is None:
            if self._pid1 is None:
                pids = sh("pgrep", "-P", str(self.nspawn.pid), "-x", "systemd", check=False).stdout.split()
                self._pid1 = int(pids[0]) if pids else None
            if self._pid1:
                self.run("systemctl", "poweroff", timeout=10)
                try:
                    self.nspawn.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.kill(self._pid1, signal.SIGKILL)
            try:
                self.nspawn.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.nspawn.pid, signal.SIGKILL)
                self.nspawn.wait()
        self._pid1 = None
        for mnt in (self.root, self.base):
            if os.path.ismount(mnt):
                subprocess.run(["umount", "-l", mnt], capture_output=True)
        if os.path.isdir(self.base):
            os.rmdir(self.base)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        for cg in self.cgroups:
            for sub, _, _ in sorted(os.walk(cg), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass


class Cluster:
    created = 0

    def __init__(self, names):
        # One letter per cluster of this run: netns, veth and cgroup names must not collide.
        self.prefix = f"fhn{os.getpid() % 100000}{chr(ord('a') + Cluster.created)}"
        Cluster.created += 1
        self.switch = f"{self.prefix}-sw"
        self.dir = os.path.join("/tmp", f"{self.prefix}-logs")
        os.makedirs(self.dir, exist_ok=True)
        self.cgroup_roots = [r for r in CGROUP_ROOTS if os.path.exists(os.path.join(r, "cgroup.procs"))][:2]
        self.masks = host_masks()
        self.mounted_nspawn_dir = False
        self.names = list(names)
        self.containers = {n: Container(self, n, i) for i, n in enumerate(self.names)}
        # nspawn refuses to clean its propagation directory on a disk file system.
        if not os.path.ismount(NSPAWN_DIR):
            os.makedirs(NSPAWN_DIR, exist_ok=True)
            sh("mount", "-t", "tmpfs", "-o", "mode=755", "freeha-nspawn", NSPAWN_DIR)
            self.mounted_nspawn_dir = True
        sh("ip", "netns", "add", self.switch)
        sh("ip", "-n", self.switch, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.switch, "link", "set", "br0", "up")
        for c in self.containers.values():
            c.create()

    def __getitem__(self, name):
        return self.containers[name]

    def __iter__(self):
        return iter(self.containers.values())

    def destroy(self):
        for c in self.containers.values():
            c.destroy()
        subprocess.run(["ip", "netns", "del", self.switch], capture_output=True)
        # Shared with any other nspawn user of the machine: unmounted only when
        # this run mounted it and no container runs any more.
        if self.mounted_nspawn_dir and sh("pgrep", "-x", "systemd-nspawn", check=False).returncode != 0:
            subprocess.run(["umount", NSPAWN_DIR], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def diagnose(self):
        """What freehad and its hooks said on every running container, for a failure's log."""
        for c in self.containers.values():
            if not c.pid1():
                continue
            print(f"--- {c.name}: journalctl -u freehad (last 40)", file=sys.stderr)
            print(c.run("journalctl", "-u", "freehad", "-b", "-n", "40", "--no-pager").stdout, file=sys.stderr)
            print(f"--- {c.name}: events.log (last 15)", file=sys.stderr)
            print("\n".join(c.read("/var/log/freeha-test/events.log").splitlines()[-15:]), file=sys.stderr)

    @staticmethod
    def wait_for(predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
