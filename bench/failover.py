"""Crash failover time on a loopback cluster at default settings.

Kills the active daemon with SIGKILL N times and measures, from the kill, how
long until another node's status says RUNNING (its starthasrv has succeeded).
With 3 nodes quorum rules apply, so this includes the takeover delay
(DeadTime + FenceTimeout + Interval, freeha-safety(7)); with 2 it does not.
Usage: python3 bench/failover.py [N] [NODES]   (FREEHAD=path/to/freehad)
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/process"))
from harness import Cluster  # noqa: E402

runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
nodes = int(sys.argv[2]) if len(sys.argv) > 2 else 3
# The test harness shortens FenceTimeout; put back the default.
c = Cluster(["alpha", "bravo", "charlie"][:nodes], settings="[Services]\nFenceTimeout=2s\n")
samples = []
try:
    c.start_all()
    c.wait_for(lambda: len(c.running()) == 1, 10, "an active node")
    for i in range(runs):
        victim = c.running()[0]
        c[victim].proc.kill()
        killed = time.monotonic()
        c[victim].proc.wait()
        others = [n for n in c.names if n != victim]
        done = c.wait_for(lambda: any(c[n].state() == "RUNNING" for n in others), 10, "takeover")
        samples.append(done - killed)
        c[victim].remove("services-up")
        c.start(victim)
        c.wait_for(lambda: c[victim].state() == "STANDBY", 10, f"{victim} back")
    print(f"failover over {runs} kills: median {statistics.median(samples)*1000:.0f} ms, "
          f"min {min(samples)*1000:.0f} ms, max {max(samples)*1000:.0f} ms")
finally:
    c.stop_all()
