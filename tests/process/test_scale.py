"""A larger cluster starts cleanly (issue 19, point 5).

32 freehad processes on loopback start together at default timings: the
cluster settles on one active node, every node's heartbeats keep coming
throughout the start-up (the largest silence between two consecutive
heartbeats of one node stays under a generous bound), no node ever logs a
quorum loss or times a peer out, and each node logs a peer's arrival once.
Issue 19 saw 48-64 nodes, each in namespaces of its own, start with nodes
silent for up to 1.6 s, peers timing INITIAL nodes out and transient quorum
losses, and two journal lines per arrival. This size on loopback costs CI
about 4 s; it passed before the timer went ahead of the sockets too (the
flood that shows that is test_flood.py), so it guards the start-up as a
whole: arrivals, quorum, no silence. 64 nodes: FREEHA_SCALE_NODES=64 (about
6 s here; largest silence 475 ms, 626 ms before), and in namespaces
bench/compare's freeha-64 row.

Every node also sends its heartbeats to a socket of this test, which
timestamps them in the kernel (SO_TIMESTAMPNS). No privileges needed.
"""
import os
import re
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Cluster, stop_at_end  # noqa: E402

SIZE = int(os.environ.get("FREEHA_SCALE_NODES", "32"))  # 64 by hand: about 15 s
LISTENER = "127.0.0.250"
DEAD = 1.0  # DeadTime= (the default); Interval= is 200 ms
# A node silent for a dead time is timed out by its peers (asserted below as well). Four intervals
# (0.8 s) was too close: this 2-core machine measures 440-540 ms idle and up to 782 ms beside an
# idle-priority writer (the kernel's writeback is not idle-priority), 575 ms in a CI run; issue 19's
# silences were 1.6 s.
MAX_GAP = DEAD
SO_TIMESTAMPNS = 35


def names():
    return [f"n{i:02d}" for i in range(1, SIZE + 1)]


def unicast_and_listener(cluster, node):
    peers = " ".join(n.address for n in cluster.nodes.values() if n is not node)
    return [f"unicast {node.address} {peers} {LISTENER}"]


class Recorder(threading.Thread):
    """Kernel receive times of every datagram to LISTENER, per source address."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind((LISTENER, port))
        self.sock.settimeout(0.2)
        self.seen = {}
        self.running = True

    def run(self):
        while self.running:
            try:
                _, ancillary, _, sender = self.sock.recvmsg(2048, 64)
            except socket.timeout:
                continue
            stamp = next((struct.unpack("qq", d[:16]) for level, typ, d in ancillary if typ == SO_TIMESTAMPNS), None)
            when = stamp[0] + stamp[1] / 1e9 if stamp else time.time()
            self.seen.setdefault(sender[0], []).append(when)

    def stop(self):
        self.running = False
        self.join(timeout=5)
        self.sock.close()


class Scale(unittest.TestCase):
    def test_nodes_start_together_without_a_heartbeat_gap_or_a_quorum_loss(self):
        c = Cluster(names(), channels=unicast_and_listener)
        stop_at_end(self, c)
        recorder = Recorder(c.port)
        recorder.start()
        self.addCleanup(recorder.stop)
        started = time.time()
        c.start_all()

        def steady():
            statuses = [c[n].status() for n in c.names]
            if None in statuses:
                return False
            return (sorted(s["state"] for s in statuses) == ["RUNNING"] + ["STANDBY"] * (SIZE - 1)
                    and all(s["quorate"] for s in statuses)
                    and len({s["active_node"] for s in statuses}) == 1
                    and all(len(s["nodes"]) == SIZE and all(p["reachable"] for p in s["nodes"]) for s in statuses))
        c.wait_for(steady, 30, f"{SIZE} nodes to settle on one active node")
        settled = time.time()
        time.sleep(2 * DEAD)  # whatever timed out late would show now
        end = time.time()
        print(f"\n{SIZE} nodes steady {settled - started:.1f} s after the first start", file=sys.stderr)

        largest, who = 0.0, None
        for node in c.nodes.values():
            times = [t for t in recorder.seen.get(node.address, []) if t <= end]
            self.assertTrue(times, f"{node.name} sent no heartbeat")
            # From the node's first heartbeat on, as well as up to the end (a node gone silent).
            for a, b in zip(times, times[1:] + [end]):
                if b - a > largest:
                    largest, who = b - a, node.name
        print(f"largest silence between two heartbeats of one node: {largest * 1000:.0f} ms ({who})",
              file=sys.stderr)

        lost, timed_out, arrivals = [], [], []
        for node in c.nodes.values():
            log = node.log()
            lost += [f"{node.name}: {line}" for line in log.splitlines() if "quorum lost" in line]
            timed_out += [f"{node.name}: {line}" for line in log.splitlines() if " timed out:" in line]
            joined = re.findall(r"node (\S+) joined", log)
            if sorted(joined) != sorted(set(joined)) or len(joined) != SIZE - 1:
                arrivals.append(f"{node.name}: {len(joined)} arrival lines for {len(set(joined))} peers")
            self.assertNotIn("INITIAL -> INITIAL", log)
        self.assertEqual(lost, [], "no node lost its quorum")
        self.assertEqual(timed_out, [], "no node timed a peer out")
        self.assertEqual(arrivals, [], "each peer's arrival logged once")
        self.assertLess(largest, MAX_GAP, f"{who} went {largest:.3f} s without sending a heartbeat")


if __name__ == "__main__":
    unittest.main()
