"""Issue 16, point 1: no D-Bus caller can stall freehad's loop, whatever it sends.

The active node's freehad serves org.freeha1 on a bus that, like Debian's
system bus with the shipped policy (units/org.freeha1.conf), lets any user
connect and read the API. An unprivileged user (nobody, inside the node's
namespaces) sends it 30 MB arguments - a Properties.Get, a GetStatus, a
mutating method - several times, while a host on the cluster's bridge
records the active node's heartbeats. The largest gap between two of them
must stay under Interval + 50 ms, no other node may start the services, and
the API keeps answering (the refusals reach the caller).
Exits 77 (skip) where the machine lacks root, namespaces or systemd.
"""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "process"))
import nodes  # noqa: E402
from harness import SYSTEM_POLICY, PrivateBus  # noqa: E402
from nodes import Cluster, start_all  # noqa: E402

POLICY_FILE = os.path.join(nodes.ROOT, "units/org.freeha1.conf")
INTERVAL = 0.2  # the default Interval=
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
ARGUMENT_BYTES = 30 * 1000 * 1000
CALLS = ["get", "status", "standby", "get", "status", "standby"]

# A minimal D-Bus client (no bindings are installed): EXTERNAL auth, Hello,
# then one method call with a huge string argument; prints the reply's type.
CALLER = r"""
import os, socket, struct, sys, time
address, kind, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
def pad(b, n): return b + b"\0" * (-len(b) % n)
def string(s): return struct.pack("<I", len(s)) + s + b"\0"
def field(code, sig, value):  # one (yv) of the header fields; each starts 8-aligned
    encoded = string(value) if sig != b"g" else bytes([len(value)]) + value + b"\0"
    return struct.pack("<BB", code, 1) + sig + b"\0" + encoded
serial = 0
def call(dest, path, iface, member, sig=b"", body=b""):
    global serial
    serial += 1
    parts = [field(1, b"o", path), field(2, b"s", iface), field(3, b"s", member), field(6, b"s", dest)]
    if sig:
        parts.append(field(8, b"g", sig))
    fields = b"".join(pad(p, 8) for p in parts[:-1]) + parts[-1]
    head = struct.pack("<cBBBIII", b"l", 1, 0, 1, len(body), serial, len(fields))
    return pad(head + fields, 8) + body
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
def reply():  # skips signals; returns (type, body) of the next return or error
    while True:
        head = read_exact(16)
        body_len, fields_len = struct.unpack("<I", head[4:8])[0], struct.unpack("<I", head[12:16])[0]
        rest = read_exact(fields_len + (-fields_len % 8) + body_len)
        if head[1] in (2, 3): return head[1], rest[-body_len:] if body_len else b""
sock.sendall(call(b"org.freedesktop.DBus", b"/org/freedesktop/DBus", b"org.freedesktop.DBus", b"Hello"))
reply()
huge = b"a" * size
if kind == "get":    # the interface name: read before anything can refuse it
    msg = call(b"org.freeha1", b"/org/freeha1", b"org.freedesktop.DBus.Properties", b"Get", b"ss",
               pad(string(huge), 4) + string(b"State"))
elif kind == "status":  # GetStatus takes no argument: refused for its signature
    msg = call(b"org.freeha1", b"/org/freeha1", b"org.freeha1.Manager", b"GetStatus", b"s", string(huge))
else:  # a mutating method: the bus policy refuses it for nobody
    msg = call(b"org.freeha1", b"/org/freeha1", b"org.freeha1.Manager", b"Switchover", b"s", string(huge))
started = time.monotonic()
sock.sendall(msg)
kind_of_reply, body = reply()
print(f"{'error' if kind_of_reply == 3 else 'return'} {time.monotonic() - started:.3f}s {body[4:80]!r}")
"""

# Records when each heartbeat datagram arrives, by source address, for a number of seconds.
LISTENER = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 3891))
s.settimeout(0.5)
end = time.monotonic() + float(sys.argv[1])
seen = {}
print("listening", flush=True)
while time.monotonic() < end:
    try:
        _, (source, _) = s.recvfrom(65536)
    except socket.timeout:
        continue
    seen.setdefault(source, []).append(time.monotonic())
print(json.dumps(seen), flush=True)
"""


def state(node):
    r = node.run("cat", "/run/user/0/freeha/status.json")
    return json.loads(r.stdout)["state"] if r.returncode == 0 and r.stdout.strip() else None


class HostileBusCaller(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bus = PrivateBus(SYSTEM_POLICY.format(policy_file=POLICY_FILE))
        cls.c = Cluster(["alpha", "bravo"], nodes.config_for("buscaller", 2))
        alpha = cls.c["alpha"]
        with open(alpha.units("freehad.service.d", "open-bus.conf"), "w") as f:
            f.write(f"[Service]\nEnvironment=DBUS_SESSION_BUS_ADDRESS={cls.bus.address}\n")
        start_all(cls.c)
        cls.c.wait_for(lambda: state(alpha) == "RUNNING" and state(cls.c["bravo"]) == "STANDBY", 30,
                       "alpha RUNNING, bravo STANDBY")
        cls.watcher = cls.c.add_client("watcher")

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()
        cls.bus.stop()

    def test_30_mb_arguments_from_nobody_delay_no_heartbeat(self):
        alpha, bravo = self.c["alpha"], self.c["bravo"]
        listener = nodes.subprocess.Popen(["ip", "netns", "exec", self.watcher.netns, "python3", "-c", LISTENER,
                                           "25"], stdout=nodes.subprocess.PIPE, text=True)
        self.assertEqual(listener.stdout.readline().strip(), "listening")
        time.sleep(1)
        answers = []
        for kind in CALLS:
            r = alpha.run(*NOBODY, "python3", "-c", CALLER, self.bus.address, kind, str(ARGUMENT_BYTES),
                          timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            answers.append(f"{kind}: {r.stdout.strip()}")
            self.assertTrue(r.stdout.startswith("error"), answers)  # refused, not ignored
        heard = json.loads(listener.communicate(timeout=60)[0])
        times = heard.get(alpha.address, [])
        self.assertGreater(len(times), 10 / INTERVAL, "the watcher heard alpha's heartbeats")
        gap, at = max((b - a, a) for a, b in zip(times, times[1:]))
        print(f"\n30 MB arguments from nobody: largest heartbeat gap from alpha {gap * 1000:.0f} ms over "
              f"{len(times)} heartbeats; replies: {answers}", file=sys.stderr)
        self.assertLess(gap, INTERVAL + 0.05, f"largest gap {gap * 1000:.0f} ms, {at - times[0]:.1f}s in")
        self.assertEqual(bravo.events("starthasrv"), [], "bravo started the services beside alpha")
        self.assertEqual(state(alpha), "RUNNING")
        self.assertEqual(alpha.run("busctl", f"--address={self.bus.address}", "get-property", "org.freeha1",
                                   "/org/freeha1", "org.freeha1.Manager", "State").stdout.strip(), 's "RUNNING"')


if __name__ == "__main__":
    why = nodes.missing_facility()
    if why:
        print(f"SKIP: {why}")
        sys.exit(77)
    unittest.main(verbosity=2)
