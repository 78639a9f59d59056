"""Per-daemon RSS and CPU of a 3-node loopback cluster at default settings.

Usage: python3 bench/footprint.py [SECONDS]   (FREEHAD=path/to/freehad)
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/process"))
from harness import Cluster  # noqa: E402

seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60
tick = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick  # utime + stime


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])


c = Cluster(["alpha", "bravo", "charlie"])
try:
    c.start_all()
    c.wait_for(lambda: len(c.running()) == 1, 10, "an active node")
    time.sleep(2)
    before = {n: cpu_seconds(c[n].proc.pid) for n in c.names}
    time.sleep(seconds)
    for n in c.names:
        pid = c[n].proc.pid
        used = cpu_seconds(pid) - before[n]
        print(f"{n:8} {c[n].state():8} RSS {rss_kib(pid)} KiB, CPU {used:.2f} s in {seconds:.0f} s "
              f"({100 * used / seconds:.2f} %)")
finally:
    c.stop_all()
