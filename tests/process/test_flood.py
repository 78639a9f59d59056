"""Sending a heartbeat never waits behind receiving (issue 19, point 5).

A node whose heartbeat socket always has a backlog (a flood, or 63 peers
starting together on two CPUs) must still send on time: its core's timer
(sends, lease and fence deadlines) runs ahead of the sockets, which read a
bounded batch per wake-up, so a due send waits at most one batch. Before,
the sockets outranked the timer and a backlog was drained first: a node
under a flood sent nothing at all until the flood ended.

The flood: junk datagrams to alpha's heartbeat socket, faster than alpha
reads them: a preload (slow_recv.cpp) makes each datagram cost alpha 100 us
more, as a heartbeat costs on a CPU that 64 starting nodes share, so that its
socket never runs empty while the flood lasts. A socket of this test at
bravo's address receives alpha's heartbeats and timestamps them. No
privileges needed.
"""
import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Cluster, stop_at_end  # noqa: E402

SLOW_RECV = os.environ.get("SLOW_RECV", os.path.join(os.path.dirname(__file__), "../../build/tests/libslow-recv.so"))
RECV_USEC = 100  # each datagram read costs alpha this much more: it reads at most 10,000 a second

INTERVAL = 0.2  # seconds: Interval= (the default)
FLOOD = 4.0  # seconds of flood
# Generous: a due send waits for one bounded batch (32 x 100 us and the
# sleeps' slack); the shared CI machine adds its own delays. Without the
# change the gap is the whole flood.
MAX_GAP = 1.0

# About 50,000 datagrams a second (bursts of 100 every 2 ms), five times what
# alpha can read, without taking a whole CPU.
FLOODER = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.3", 0))
junk = b"\x00" * 200
end = time.monotonic() + float(sys.argv[3])
dest = (sys.argv[1], int(sys.argv[2]))
while time.monotonic() < end:
    for _ in range(100):
        s.sendto(junk, dest)
    time.sleep(0.002)
"""


class Flood(unittest.TestCase):
    def test_a_flooded_node_keeps_sending_its_heartbeats_at_their_interval(self):
        c = Cluster(["alpha", "bravo"])  # bravo is this test's socket, no daemon
        stop_at_end(self, c)
        listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(listener.close)
        listener.bind((c["bravo"].address, c.port))
        listener.settimeout(0.05)
        if not os.path.exists(SLOW_RECV):
            self.skipTest(f"{SLOW_RECV} is not built")
        alpha = c.start("alpha", env={"LD_PRELOAD": SLOW_RECV, "FREEHA_TEST_RECV_USEC": str(RECV_USEC)})

        def heartbeats(seconds):
            """Arrival times of alpha's datagrams over `seconds`."""
            times = []
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    _, sender = listener.recvfrom(4096)
                except socket.timeout:
                    continue
                if sender[0] == alpha.address:
                    times.append(time.monotonic())
            return times

        before = heartbeats(1.5)
        self.assertGreaterEqual(len(before), 4, "alpha sends heartbeats before the flood")
        flooder = subprocess.Popen([sys.executable, "-c", FLOODER, alpha.address, str(c.port), str(FLOOD)])
        self.addCleanup(lambda: flooder.poll() is None and flooder.kill())
        time.sleep(0.3)  # the backlog builds up
        window_start = time.monotonic()
        during = heartbeats(FLOOD - 0.8)
        window_end = time.monotonic()
        flooder.wait(timeout=10)
        self.assertTrue(alpha.alive(), alpha.log()[-2000:])
        # Silences at the window's edges count too: none at all is one gap of the whole window.
        stamps = [window_start] + during + [window_end]
        largest = max(b - a for a, b in zip(stamps, stamps[1:]))
        print(f"\nunder a flood: {len(during)} heartbeats in {FLOOD - 0.8:.1f} s, largest gap {largest:.3f} s",
              file=sys.stderr)
        self.assertGreaterEqual(len(during), int((FLOOD - 0.8) / INTERVAL / 2),
                                "alpha keeps sending while its socket is flooded")
        self.assertLess(largest, MAX_GAP)
        self.assertGreaterEqual(len(heartbeats(1.0)), 3, "and after the flood")


if __name__ == "__main__":
    unittest.main()
