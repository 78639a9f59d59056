"""A loopback cluster of real freehad processes for the process tests.

Each node gets its own directory with a config, hooks that log every call
with a timestamp to events.log, and a JSON status file. Nodes talk over
unicast channels on 127.0.0.x, so no privileges are needed.
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import time

FREEHAD = os.environ.get("FREEHAD", os.path.join(os.path.dirname(__file__), "../../build/src/daemon/freehad"))
FREEHACTL = os.environ.get("FREEHACTL", os.path.join(os.path.dirname(FREEHAD), "..", "ctl", "freehactl"))

HOOK = """#!/bin/sh
d=$(dirname "$0")/..
echo "{name} $(date +%s.%N) state=$FREEHA_STATE old=$FREEHA_OLD_STATE term=$FREEHA_TERM $*" >> "$d/events.log"
{body}
"""
HOOKS = {
    "starthasrv": '[ -f "$d/start-fail" ] && exit 1\ntouch "$d/services-up"',
    # stop-hang: the next stophasrv hangs (once: the clean-up after the kill runs normally).
    "stophasrv": '[ -f "$d/stop-hang" ] && rm -f "$d/stop-hang" && sleep 1000\nrm -f "$d/services-up"',
    # monitor-signal: the monitor kills itself with the signal number in that file.
    # monitor-leaves-child: it leaves a child behind that holds its stdout and stderr.
    "monitorhasrv": '[ -f "$d/monitor-hang" ] && exec sleep 1000\n'
                    '[ -f "$d/monitor-fail" ] && exit 1\n'
                    '[ -f "$d/monitor-signal" ] && kill -"$(cat "$d/monitor-signal")" $$\n'
                    '[ -f "$d/monitor-leaves-child" ] && sleep 15 &\n'
                    '[ -f "$d/services-up" ]',
    "alerthasrv": "exit 0",
}


class Node:
    def __init__(self, cluster, name, index):
        self.name = name
        self.address = f"127.0.0.{index + 1}"
        self.port = cluster.port  # Port=: several IPv6 nodes share ::1 by each using a port of its own
        self.dir = os.path.join(cluster.dir, name)
        self.proc = None
        self.settings = ""  # config lines for this node only, after the cluster's
        os.makedirs(os.path.join(self.dir, "hooks"))
        for hook, body in HOOKS.items():
            path = os.path.join(self.dir, "hooks", hook)
            with open(path, "w") as f:
                f.write(HOOK.format(name=hook, body=body))
            os.chmod(path, 0o755)

    def path(self, name):
        return os.path.join(self.dir, name)

    def status(self):
        try:
            with open(self.path("status.json")) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def state(self):
        s = self.status()
        return s["state"] if s else None

    def view(self, other):
        """The state of node `other` as this node sees it."""
        s = self.status()
        for n in (s or {}).get("nodes", []):
            if n["name"] == other:
                return n
        return None

    def events(self, hook=None):
        try:
            with open(self.path("events.log")) as f:
                lines = [line.split() for line in f]
        except FileNotFoundError:
            return []
        return [(l[0], float(l[1]), l[2:]) for l in lines if hook is None or l[0] == hook]

    def touch(self, name):
        open(self.path(name), "w").close()

    def remove(self, name):
        if os.path.exists(self.path(name)):
            os.remove(self.path(name))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        with open(self.path("freehad.log")) as f:
            return f.read()


FENCE = 0.5  # FenceTimeout= of every test node (the default)
# A crash costs about a dead time: the voters' promises to the dead holder
# run out when they time it out, and they back the next claim at once
# (freeha-safety(7)). This bounds the rest: backing, starthasrv, slack.
TAKEOVER_SLACK = 1.0


def ipv4_unicast(cluster, node):
    """The default channels: one unicast channel on 127.0.0.x to every other node."""
    return [f"unicast {node.address} " + " ".join(n.address for n in cluster.nodes.values() if n is not node)]


class Cluster:
    def __init__(self, names, expected=None, settings="", channels=ipv4_unicast):
        self.dir = tempfile.mkdtemp(prefix="freeha-proc-")
        self.port = random.randint(20000, 60000)
        self.names = list(names)
        self.nodes = {n: Node(self, n, i) for i, n in enumerate(self.names)}
        self.expected = expected or len(self.names)
        self.settings = settings
        self.channels = channels  # (cluster, node) -> the node's Channel= values

    def __getitem__(self, name):
        return self.nodes[name]

    def config(self, node):
        channels = "".join(f"Channel={ch}\n" for ch in self.channels(self, node))
        return (f"[Cluster]\nName=proc{self.port}\nNodeName={node.name}\nExpectedNodes={self.expected}\n"
                f"[Heartbeat]\nPort={node.port}\n{channels}"
                f"[Services]\nHooksDirectory={node.dir}/hooks\nMonitorInterval=1s\nFenceTimeout={FENCE}s\n"
                f"[Status]\nJSONFile={node.dir}/status.json\n{self.settings}{node.settings}")

    def start(self, name, *args, env=None, bus=None, wrap=()):
        """Starts a node; with `bus` (a PrivateBus) it serves org.freeha1 there, else --no-bus.
        `wrap`: a command that execs the rest of its arguments (freehad keeps the pid)."""
        node = self.nodes[name]
        with open(node.path("freehad.conf"), "w") as f:
            f.write(self.config(node))
        # Each node keeps its incarnation and standby in a state directory of its own.
        env = {**os.environ, "STATE_DIRECTORY": node.path("state"), **(env or {})}
        if bus:
            env["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        with open(node.path("freehad.log"), "a") as log:
            node.proc = subprocess.Popen([*wrap, FREEHAD, "--config", node.path("freehad.conf"),
                                          *([] if bus else ["--no-bus"]), *args],
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        return node

    def start_all(self):
        for name in reversed(self.names):  # the first node starts last, on purpose
            self.start(name)

    def stop_all(self):
        for node in self.nodes.values():
            if node.alive():
                node.proc.kill()
                node.proc.wait()

    def running(self):
        return sorted(n.name for n in self.nodes.values() if n.alive() and n.state() == "RUNNING")

    def report(self, lines=80):
        """Each node's last journal lines and hook events, for a failed test's output."""
        text = [f"cluster directory {self.dir}"]
        for node in self.nodes.values():
            for name in ("freehad.log", "events.log"):
                if os.path.exists(node.path(name)):
                    with open(node.path(name), errors="replace") as f:
                        tail = f.read().splitlines()[-lines:]
                    text.append(f"--- {node.name}: {name} (last {len(tail)} lines)")
                    text.extend(tail)
        return "\n".join(text) + "\n"

    def wait_for(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return time.monotonic()
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; states: "
                             + ", ".join(f"{n}={self[n].state()}" for n in self.names))


def send_udp(address, port, payload):
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(payload, (address, port))


OPEN_POLICY = """<policy context="default">
    <allow user="*"/><allow own="*"/><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>
  </policy>"""
# Like Debian's system bus: nobody owns or calls anything unless a policy
# file (ours, included) says so.
SYSTEM_POLICY = """<policy context="default">
    <allow user="*"/><deny own="*"/><deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/><allow receive_type="method_return"/>
    <allow receive_type="error"/><allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <policy user="root"><allow eavesdrop="true"/><allow send_destination="*" eavesdrop="true"/></policy>
  <include>{policy_file}</include>"""


class PrivateBus:
    """A dbus-daemon of our own, reachable by any user (for setpriv tests)."""

    def __init__(self, policy=OPEN_POLICY):
        self.dir = tempfile.mkdtemp(prefix="freeha-bus-")
        os.chmod(self.dir, 0o755)
        self.socket_path = os.path.join(self.dir, "bus")
        self.config = os.path.join(self.dir, "bus.conf")
        with open(self.config, "w") as f:
            f.write(f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>system</type><listen>unix:path={self.socket_path}</listen><auth>EXTERNAL</auth>
  {policy}
</busconfig>""")
        self.address = f"unix:path={self.socket_path}"
        self.proc = None
        self.start()

    def start(self):
        """Starts (or restarts, on the same address) the dbus-daemon."""
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        # stderr: dbus-daemon complains that it cannot raise its fd limit when not root.
        self.proc = subprocess.Popen(["dbus-daemon", "--nofork", "--nopidfile", f"--config-file={self.config}"],
                                     stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while not os.path.exists(self.socket_path):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("dbus-daemon did not start")
            time.sleep(0.02)
        os.chmod(self.socket_path, 0o777)

    def env(self):
        return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# A bus that accepts connections and owning requests but never delivers a
# reply (a hung or overloaded dbus-daemon): nothing may be received.
HUNG_POLICY = """<policy context="default">
    <allow user="*"/><allow own="*"/><allow send_type="method_call"/>
    <deny receive_type="method_return"/><deny receive_type="error"/><deny receive_type="signal"/>
    <deny receive_type="method_call"/>
  </policy>"""


# A minimal D-Bus client (no Python bindings are installed), run as a script:
# `python3 -c RAW_DBUS_CLIENT ADDRESS ACTION ...`. EXTERNAL auth and Hello, then
#   call get|status|switchover SIZE: one method call to org.freeha1 with a string
#     argument of SIZE bytes; prints "error|return SECONDS TEXT" of its reply;
#   signal DESTINATION SIZE: a unicast signal with such an argument; prints
#     "refused TEXT" if the bus says no, else "sent";
#   own NAME SECONDS: owns NAME, prints "owned", then "received 1" at the first
#     message from anyone but the bus itself, or "received 0" after SECONDS;
#   silent NAME SECONDS: owns NAME, prints "owned", then reads and answers
#     nothing for SECONDS (a daemon that hangs with its name).
RAW_DBUS_CLIENT = r"""
import os, socket, struct, sys, time
address, action = sys.argv[1], sys.argv[2]
def pad(b, n): return b + b"\0" * (-len(b) % n)
def string(s): return struct.pack("<I", len(s)) + s + b"\0"
def field(code, sig, value):  # one (yv) of the header fields; each starts 8-aligned
    encoded = string(value) if sig != b"g" else bytes([len(value)]) + value + b"\0"
    return struct.pack("<BB", code, 1) + sig + b"\0" + encoded
serial = 0
def message(kind, path, iface, member, dest=None, sig=b"", body=b"", flags=0):
    global serial
    serial += 1
    parts = [field(1, b"o", path), field(2, b"s", iface), field(3, b"s", member)]
    parts += [field(6, b"s", dest)] if dest else []
    parts += [field(8, b"g", sig)] if sig else []
    fields = b"".join(pad(p, 8) for p in parts[:-1]) + parts[-1]
    head = struct.pack("<cBBBIII", b"l", kind, flags, 1, len(body), serial, len(fields))
    return pad(head + fields, 8) + body
def bus_call(member, sig=b"", body=b""):
    return message(1, b"/org/freedesktop/DBus", b"org.freedesktop.DBus", member, b"org.freedesktop.DBus", sig, body)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(address.split("=", 1)[1])
sock.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
assert sock.recv(256).startswith(b"OK"), "auth refused"
sock.sendall(b"BEGIN\r\n")
def read_exact(n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(min(n - len(data), 1 << 20))
        if not chunk: raise SystemExit("disconnected")
        data += chunk
    return bytes(data)
def read_message():  # (type, sender, body)
    head = read_exact(16)
    body_len, fields_len = struct.unpack("<I", head[4:8])[0], struct.unpack("<I", head[12:16])[0]
    fields = read_exact(fields_len + (-fields_len % 8))
    body = read_exact(body_len)
    sender, i = b"", 0
    while i + 4 <= fields_len:  # the SENDER field (7), a string
        i += -i % 8
        code, siglen = fields[i], fields[i + 1]
        j = i + 2 + siglen + 1
        sig = fields[i + 2:i + 2 + siglen]
        if sig in (b"s", b"o"):
            j += -j % 4
            n = struct.unpack("<I", fields[j:j + 4])[0]
            if code == 7: sender = fields[j + 4:j + 4 + n]
            j += 4 + n + 1
        elif sig == b"g":
            j += 1 + fields[j] + 1
        else:  # u (reply serial)
            j += -j % 4 + 4
        i = j
    return head[1], sender, body
def reply():  # the next method return or error: (type, body)
    while True:
        kind, _, body = read_message()
        if kind in (2, 3): return kind, body
sock.sendall(bus_call(b"Hello"))
reply()
if action == "call":
    kind, huge = sys.argv[3], b"a" * int(sys.argv[4])
    if kind == "get":  # the interface name: read before anything can refuse it
        msg = message(1, b"/org/freeha1", b"org.freedesktop.DBus.Properties", b"Get", b"org.freeha1", b"ss",
                      pad(string(huge), 4) + string(b"State"))
    elif kind == "status":  # GetStatus takes no argument: refused for its signature
        msg = message(1, b"/org/freeha1", b"org.freeha1.Manager", b"GetStatus", b"org.freeha1", b"s", string(huge))
    else:  # a mutating method: the bus policy refuses it to anyone but root
        msg = message(1, b"/org/freeha1", b"org.freeha1.Manager", b"Switchover", b"org.freeha1", b"s", string(huge))
    started = time.monotonic()
    sock.sendall(msg)
    kind_of_reply, body = reply()
    print(f"{'error' if kind_of_reply == 3 else 'return'} {time.monotonic() - started:.3f}s {body[4:80]!r}")
elif action == "signal":
    sock.sendall(message(4, b"/", b"org.freeha1.Test", b"Poke", sys.argv[3].encode(), b"s",
                         string(b"a" * int(sys.argv[4]))))
    sock.sendall(bus_call(b"GetId"))  # its reply comes after any refusal of the signal
    kind, body = reply()
    print(f"refused {body[4:120]!r}" if kind == 3 else "sent")
elif action in ("own", "silent"):
    sock.sendall(bus_call(b"RequestName", b"su", pad(string(sys.argv[3].encode()), 4) + struct.pack("<I", 4)))
    kind, body = reply()
    assert kind == 2 and struct.unpack("<I", body[:4])[0] == 1, f"cannot own {sys.argv[3]}: {body!r}"
    print("owned", flush=True)
    if action == "silent":
        time.sleep(float(sys.argv[4]))
        raise SystemExit(0)
    sock.settimeout(float(sys.argv[4]))
    received = 0
    try:
        while not received:
            _, sender, _ = read_message()
            received += sender != b"org.freedesktop.DBus"
    except socket.timeout:
        pass
    print(f"received {received}")
"""


def cpu_seconds(pid):
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_at_end(test, cluster):
    """Stops the cluster's daemons when `test` ends; after a failure, prints what they logged first,
    so that a failure seen once (in CI) can be read without running it again."""
    def report_failure():
        result = getattr(getattr(test, "_outcome", None), "result", None)
        if result and any(t is test for t, _ in result.failures + result.errors):
            sys.stderr.write(cluster.report())
    test.addCleanup(cluster.stop_all)
    test.addCleanup(report_failure)  # cleanups run last in, first out: this one first
