"""A node booted with its wall clock two days ahead (issue 16, point 3), on a
3-node loopback cluster without a key:

  1. charlie starts with its CLOCK_REALTIME 48 h ahead (a preload,
     clock_ahead.cpp; CLOCK_MONOTONIC untouched, as an RTC gone wrong leaves it): its
     incarnation is two days ahead, and alpha and bravo refuse it. Each of
     them logs why, once, and its status says why charlie is not counted;
     charlie's status says that its peers do not hear it, and freehactl
     status on alpha names the reason;
  2. the clock is fixed: charlie restarts without the preload, gives up the
     stored incarnation for the clock (and logs it), and joins within a few
     heartbeats; alpha and bravo log the end of the refusal. alpha runs the
     services throughout.

Prints how long charlie took to join after its restart.
"""
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import FREEHACTL, Cluster, PrivateBus, stop_at_end  # noqa: E402


CLOCK_AHEAD = os.environ.get("CLOCK_AHEAD", os.path.join(os.path.dirname(__file__),
                                                        "../../build/tests/libclock-ahead.so"))
CLOCK_TWO_DAYS_AHEAD = {"LD_PRELOAD": CLOCK_AHEAD, "FREEHA_TEST_CLOCK_AHEAD": str(48 * 3600)}
INTERVAL = 0.2  # the default Interval=
JOIN_WITHIN = 10 * INTERVAL  # a few heartbeats, with room for a loaded machine


def not_counted(node, other):
    view = node.view(other)
    return view.get("not_counted") if view else None


class ClockAhead(unittest.TestCase):
    def setUp(self):
        self.c = Cluster(["alpha", "bravo", "charlie"])
        self.bus = PrivateBus()  # alpha's, for freehactl status
        self.addCleanup(self.bus.stop)
        stop_at_end(self, self.c)

    def test_a_node_booted_two_days_ahead_is_refused_with_a_reason_and_joins_once_its_clock_is_fixed(self):
        c = self.c
        c.start("bravo")
        c.start("alpha", bus=self.bus)
        c.start("charlie", env=CLOCK_TWO_DAYS_AHEAD)
        c.wait_for(lambda: c.running() == ["alpha"], 15, "alpha running")
        reason = "incarnation 2d ahead of this node's clock"
        for peer in ("alpha", "bravo"):
            c.wait_for(lambda: (not_counted(c[peer], "charlie") or "").startswith("refused: " + reason), 5,
                       f"{peer} showing why charlie is not counted")
            log = c[peer].log()
            self.assertEqual(log.count("refusing the heartbeats of node charlie"), 1, log)
            self.assertIn("refusing the heartbeats of node charlie: " + reason, log)
        status = subprocess.run([FREEHACTL, "status"], capture_output=True, text=True, timeout=10,
                                env=self.bus.env())
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertIn("charlie is not counted: refused: " + reason, status.stdout)
        c.wait_for(lambda: not_counted(c["charlie"], "alpha") == "does not hear this node", 5,
                   "charlie showing that alpha does not hear it")
        self.assertFalse(c["charlie"].status()["quorate"])

        # The clock is fixed, and freehad restarted.
        c["charlie"].proc.terminate()
        c["charlie"].proc.wait(10)
        started = time.monotonic()
        c.start("charlie")
        joined = c.wait_for(lambda: c["charlie"].status() is not None and c["charlie"].status()["quorate"]
                            and not_counted(c["alpha"], "charlie") is None
                            and c["alpha"].view("charlie")["reachable"], 10, "charlie joining")
        print(f"\ncharlie joined {joined - started:.2f}s after its restart with the clock fixed")
        self.assertLess(joined - started, JOIN_WITHIN)
        self.assertIn("ahead of the clock (taken while the clock ran ahead), which peers without a key refuse: "
                      "starting a new incarnation from the clock", c["charlie"].log())
        for peer in ("alpha", "bravo"):
            c.wait_for(lambda: "no longer refusing the heartbeats of node charlie" in c[peer].log(), 5,
                       f"{peer} logging the end of the refusal")
        self.assertEqual(c.running(), ["alpha"])
        self.assertEqual(len(c["alpha"].events("starthasrv")), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
