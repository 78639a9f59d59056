"""Address= owned by freehad itself, black-box on namespaced nodes with clients.

One cluster of three nodes with two floating addresses on eth0 (IPv4, and
IPv6 without duplicate address detection), an IPv6 one with `dad`, and an
IPv4 one on eth1, a second link that carries no heartbeats. Two clients sit
on eth0's bridge: `client` pings, `observer` never sends to the addresses
after the start (it accepts gratuitous ARP, arp_accept=1), so its neighbour
table shows what the announcements alone did. A sampler reads every node's
addresses every ~20 ms, so "at no time two nodes" is checked, not assumed.

The tests run in order on the one cluster, each finding the holder anew:
status and reload, a foreign host, removal by hand, link down, a partition,
a hanging stophasrv on a cut-off holder, and last a power cut (with the
IPv6 checks: usable at once without `dad`, tentative then usable with it).
Bounds are generous; the figures go to stderr, the comparisons to bench/.
Exits 77 (skip) where the machine lacks root, namespaces, nftables or systemd.
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import nodes  # noqa: E402
from nodes import Cluster, config_for, dump_journals, sh, start_all  # noqa: E402

VIP4, VIP6, VIP6_DAD = f"{nodes.SUBNET}.100", f"{nodes.SUBNET6}100", f"{nodes.SUBNET6}101"
RELOADED = f"{nodes.SUBNET}.101"  # added by a reload, then removed by another
LINK2 = "10.214.0.100"  # on eth1, the second link
FOREIGN_SIGHTING = "848cb1ed965d414392072599b809b0f6"
ADDRESSES = (f"Address={VIP4}/24 eth0\nAddress={VIP6}/64 eth0\nAddress={VIP6_DAD}/64 eth0 dad\n"
             f"Address={LINK2}/24 eth1\n")
DEAD = 1.0  # DeadTime='s default: the lease a cut-off holder still has
OUTAGE_BOUND = 3.0  # a client's outage, a takeover: generous bounds for a loaded machine
# stophasrv hangs once when this file exists (it removes it first: the clean-up run after the kill must not).
HANGING_STOP = """if [ -f /etc/freeha/hang-stop ]; then rm -f /etc/freeha/hang-stop; sleep 60; fi
rm -f /etc/freeha/services-up"""
# An ARP reply for VIP from another MAC, sent to the holder alone (unicast: the other clients' tables stay).
ARP_REPLY = """
import socket, struct, sys, time
holder_mac, vip, holder_ip = sys.argv[1:4]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
own = s.getsockname()[4]
holder = bytes.fromhex(holder_mac.replace(":", ""))
frame = (holder + own + struct.pack("!HHHBBH", 0x0806, 1, 0x0800, 6, 4, 2)
         + own + socket.inet_aton(vip) + holder + socket.inet_aton(holder_ip))
for _ in range(3):
    s.send(frame)
    time.sleep(0.05)
"""


class AddressSampler(threading.Thread):
    """Reads `ip -o addr` of every node every ~20 ms: samples (wall time, node, {address: tentative})."""

    def __init__(self, cluster, addresses):
        super().__init__(daemon=True)
        self.cluster, self.addresses = cluster, addresses
        self.samples, self.done = [], threading.Event()

    def run(self):
        while not self.done.is_set():
            for name, node in self.cluster.nodes.items():
                out = sh("ip", "-n", node.netns, "-o", "addr", check=False).stdout
                have = {}
                for line in out.splitlines():
                    fields = line.split()
                    address = fields[3].split("/")[0] if len(fields) > 3 else ""
                    if address in self.addresses:
                        have[address] = "tentative" in fields
                self.samples.append((time.time(), name, have))
            time.sleep(0.02)

    def stop(self):
        self.done.set()
        self.join()
        return self.samples

    @staticmethod
    def times(samples, name, address):
        """When node name had address (sample times)."""
        return [t for t, n, have in samples if n == name and address in have]

    @staticmethod
    def overlaps(samples, address):
        """Two nodes that had address at once: runs of sightings (first, last) of two nodes that intersect."""
        runs, had = {}, {}
        for t, name, have in samples:
            if address in have:
                if had.get(name):
                    runs[name][-1][1] = t
                else:
                    runs.setdefault(name, []).append([t, t])
            had[name] = address in have
        return [(a, ra, b, rb) for a in runs for b in runs if a < b for ra in runs[a] for rb in runs[b]
                if ra[0] <= rb[1] and rb[0] <= ra[1]]


class Pinger:
    """ping -D every 10 ms from a client; stop() gives the wall times of the replies."""

    def __init__(self, client, address):
        self.process = subprocess.Popen(["ip", "netns", "exec", client.netns, "ping", "-D", "-n", "-i", "0.01",
                                         "-W", "1", address], stdout=subprocess.PIPE, text=True)

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        out = self.process.communicate(timeout=10)[0]
        return [float(t) for t in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from", out, re.M)]


def outage(replies, event):
    """The longest silence between two replies from a second before event on (seconds), and the last reply."""
    around = [t for t in replies if t > event - 1]
    if len(around) < 2:
        return float("inf"), None
    return max(b - a for a, b in zip(around, around[1:])), around[-1]


class Addresses(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(["alpha", "bravo", "charlie"], config_for("addr", 3, "[Services]\n" + ADDRESSES))
        nodes.set_up_or_destroy(cls.c, cls.set_up)

    @classmethod
    def set_up(cls):
        cls.client = cls.c.add_client("client")
        cls.observer = cls.c.add_client("observer")
        for key in ("all", "eth0"):
            cls.observer.run("sysctl", "-q", "-w", f"net.ipv4.conf.{key}.arp_accept=1", check=True)
        # eth1 on every node: a second bridge, no heartbeats on it.
        sh("ip", "-n", cls.c.switch, "link", "add", "br1", "type", "bridge")
        sh("ip", "-n", cls.c.switch, "link", "set", "br1", "up")
        for i, node in enumerate(cls.c.nodes.values()):
            peer = f"{cls.c.prefix}l{i}"
            sh("ip", "link", "add", peer, "type", "veth", "peer", "name", "eth1", "netns", node.netns)
            sh("ip", "link", "set", peer, "netns", cls.c.switch)
            sh("ip", "-n", cls.c.switch, "link", "set", peer, "master", "br1", "up")
            sh("ip", "-n", node.netns, "addr", "add", f"10.214.0.{i + 10}/24", "dev", "eth1")
            sh("ip", "-n", node.netns, "link", "set", "eth1", "up")
            with open(node.etc("hooks", "stophasrv"), "w") as f:
                f.write(nodes.HOOK.format(name="stophasrv", body=HANGING_STOP))
        start_all(cls.c)
        cls.c.wait_for(lambda: cls.holder() is not None, 60, "a node RUNNING")

    @classmethod
    def tearDownClass(cls):
        cls.c.destroy()

    def setUp(self):
        self.sampler = None

    def tearDown(self):
        if self.sampler and not self.sampler.done.is_set():
            self.sampler.stop()
        result = self._outcome.result
        if any(test is self for test, _ in result.errors + result.failures):
            dump_journals(self.c)

    @classmethod
    def holder(cls, names=None):
        """The one node RUNNING (of names), or None."""
        up = [n for n in names or cls.c.names if cls.c[n].prop("State") == "RUNNING"]
        return cls.c[up[0]] if len(up) == 1 else None

    def has(self, node, address):
        return f" {address}/" in node.run("ip", "-o", "addr").stdout

    def status(self, node):
        r = node.ctl("status", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def hook_runs(self):
        return {n: len(self.c[n].events("starthasrv")) + len(self.c[n].events("stophasrv")) for n in self.c.names}

    def sample(self):
        self.sampler = AddressSampler(self.c, (VIP4, VIP6, VIP6_DAD, LINK2, RELOADED))
        self.sampler.start()
        time.sleep(0.2)

    def wait_for_new_holder(self, old, what):
        others = [n for n in self.c.names if n != old.name]
        self.c.wait_for(lambda: self.holder(others) is not None, 30, what)
        new = self.holder(others)
        self.c.wait_for(lambda: self.has(new, VIP4), 5, f"{VIP4} on {new.name}")
        return new

    def clear_error(self, node):
        """A lost address is a failed monitor: the node latches ERRORED (freeha-hooks(7)); the admin clears it."""
        self.c.wait_for(lambda: node.prop("State") == "ERRORED", 10, f"{node.name} ERRORED")
        r = node.ctl("clear-error")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.c.wait_for(lambda: node.prop("State") == "STANDBY", 10, f"{node.name} STANDBY")

    def test_1_the_holder_alone_has_the_addresses_and_shows_them(self):
        holder = self.holder()
        for name in self.c.names:
            for address in (VIP4, VIP6, VIP6_DAD, LINK2):
                self.assertEqual(self.has(self.c[name], address), name == holder.name, f"{address} on {name}")
        text = holder.ctl("status").stdout
        self.assertIn(f"Address: {VIP4}/24 on eth0: up here", text)
        self.assertIn(f"Address: {LINK2}/24 on eth1: up here", text)
        doc = self.status(holder)
        self.assertEqual({a["address"]: a["up"] for a in doc["addresses"]},
                         {f"{VIP4}/24": True, f"{VIP6}/64": True, f"{VIP6_DAD}/64": True, f"{LINK2}/24": True})
        self.assertEqual(self.client.run("ping", "-c", "1", "-W", "3", VIP4).returncode, 0)

    def test_2_a_reload_adds_and_removes_an_address_without_moving_the_services(self):
        holder = self.holder()
        runs = self.hook_runs()

        def reload(extra):
            for node in self.c.nodes.values():
                with open(node.etc("freehad.conf"), "w") as f:
                    f.write(config_for("addr", 3, "[Services]\n" + ADDRESSES + extra)(node))
                r = node.ctl("reload-config")
                self.assertEqual(r.returncode, 0, f"{node.name}: {r.stdout}{r.stderr}")

        started = time.monotonic()
        reload(f"Address={RELOADED}/24 eth0\n")
        self.c.wait_for(lambda: self.has(holder, RELOADED), 5, f"{RELOADED} on {holder.name}")
        added = time.monotonic() - started
        self.assertEqual(self.client.run("ping", "-c", "1", "-W", "3", RELOADED).returncode, 0)
        self.assertIn(f"Address: {RELOADED}/24 on eth0: up here", holder.ctl("status").stdout)
        started = time.monotonic()
        reload("")
        self.c.wait_for(lambda: not self.has(holder, RELOADED), 5, f"{RELOADED} gone from {holder.name}")
        removed = time.monotonic() - started
        time.sleep(0.5)
        self.assertEqual(self.holder().name, holder.name, "the services moved")
        self.assertEqual(self.hook_runs(), runs, "a reload ran starthasrv or stophasrv")
        self.assertTrue(self.has(holder, VIP4), f"{VIP4} went with the reload")
        for name in self.c.names:
            self.assertFalse(self.has(self.c[name], RELOADED), f"{RELOADED} on {name}")
        print(f"\nreload: {RELOADED} up {added * 1000:.0f} ms after the reload began, "
              f"gone {removed * 1000:.0f} ms after the second", file=sys.stderr)

    def test_3_a_foreign_host_answering_for_the_address_is_reported_and_the_address_stays(self):
        holder = self.holder()
        intruder = self.c.add_client("intruder")
        mac = nodes.mac_of(intruder.netns)
        runs = self.hook_runs()
        r = intruder.run("python3", "-c", ARP_REPLY, holder.mac(), VIP4, holder.address)
        self.assertEqual(r.returncode, 0, r.stderr)

        def sightings():
            out = holder.run("journalctl", "--user-unit", "freehad", "-o", "json", "--no-pager").stdout
            return [e for e in map(json.loads, out.splitlines()) if e.get("MESSAGE_ID") == FOREIGN_SIGHTING]

        self.c.wait_for(lambda: sightings(), 5, "the foreign host's journal entry")
        [entry] = sightings()
        self.assertEqual(entry.get("FREEHA_FOREIGN_MAC"), mac, entry.get("MESSAGE"))
        self.assertIn(VIP4, entry.get("FREEHA_ADDRESS", ""), entry.get("MESSAGE"))
        [address] = [a for a in self.status(holder)["addresses"] if a["address"] == f"{VIP4}/24"]
        self.assertGreaterEqual(address["conflicts"], 1)
        self.assertEqual(address["foreign_mac"], mac)
        self.assertTrue(address["up"])
        self.assertIn(f"another host answers for it: MAC {mac}", holder.ctl("status").stdout)
        time.sleep(0.5)
        self.assertTrue(self.has(holder, VIP4), "the address went")
        self.assertEqual(self.holder().name, holder.name, "the services moved")
        self.assertEqual(self.hook_runs(), runs, "the services were stopped or started")
        print(f"\nforeign host {mac}: {address['conflicts']} conflicts counted; "
              f"journal: {entry.get('MESSAGE')}", file=sys.stderr)

    def test_4_an_address_removed_by_hand_moves_the_services(self):
        old = self.holder()
        self.assertTrue(self.has(old, VIP4), f"{VIP4} not on {old.name}")
        pinger = Pinger(self.client, VIP4)
        time.sleep(0.5)
        removed = time.time()
        sh("ip", "-n", old.netns, "addr", "del", f"{VIP4}/24", "dev", "eth0")
        new = self.wait_for_new_holder(old, "another node RUNNING")
        self.c.wait_for(lambda: self.client.run("ping", "-c", "1", "-W", "1", VIP4).returncode == 0, 5,
                        f"{VIP4} reachable")
        time.sleep(0.3)
        gap, last = outage(pinger.stop(), removed)
        self.assertLess(gap, OUTAGE_BOUND, f"the client's outage after the removal by hand on {old.name}")
        self.assertGreater(last, removed + gap, "no reply after the move")
        self.clear_error(old)
        for address in (VIP6, LINK2):
            self.assertFalse(self.has(old, address), f"{address} stays on {old.name}")
            self.assertTrue(self.has(new, address), f"{address} not on {new.name}")
        print(f"\nremoved by hand on {old.name}: the client's outage {gap * 1000:.0f} ms, "
              f"{new.name} serves {VIP4}", file=sys.stderr)

    def test_5_link_down_moves_the_services(self):
        old = self.holder()
        self.sample()
        down = time.time()
        sh("ip", "-n", old.netns, "link", "set", "eth1", "down")
        try:
            new = self.wait_for_new_holder(old, "another node RUNNING after the link went down")
            self.c.wait_for(lambda: self.has(new, LINK2), 5, f"{LINK2} on {new.name}")
            samples = self.sampler.stop()
        finally:
            sh("ip", "-n", old.netns, "link", "set", "eth1", "up")
        took = AddressSampler.times(samples, new.name, LINK2)[0] - down
        self.assertLess(took, OUTAGE_BOUND, f"{LINK2} on {new.name} after the link went down on {old.name}")
        for address in (VIP4, LINK2):
            self.assertEqual(AddressSampler.overlaps(samples, address), [], f"{address} on two nodes at once")
        self.clear_error(old)
        for address in (VIP4, LINK2):
            self.assertFalse(self.has(old, address), f"{address} stays on {old.name}")
        print(f"\nlink down on {old.name}: {new.name} has {LINK2} {took * 1000:.0f} ms later", file=sys.stderr)

    def test_5b_a_node_whose_address_device_is_down_stands_aside(self):
        holder = self.holder()
        standbys = [n for n in self.c.names if n != holder.name]
        aside, other = self.c[standbys[0]], self.c[standbys[1]]  # aside is the one a switchover would pick
        sh("ip", "-n", aside.netns, "link", "set", "eth1", "down")
        try:
            self.c.wait_for(lambda: (self.status(aside).get("unavailable") or "").endswith("eth1 is down"), 5,
                            f"{aside.name} standing aside")
            self.assertIn(f"This node stands aside (it cannot take the services): Address={LINK2}/24 eth1: eth1 is "
                          "down", aside.ctl("status").stdout)
            # The peers learn it from its next heartbeat, an Interval= later at most.
            self.c.wait_for(lambda: {n["name"]: n["standby"] for n in self.status(holder)["nodes"]}[aside.name], 2,
                            f"{holder.name} seeing {aside.name} as in standby")
            r = holder.ctl("switchover")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.c.wait_for(lambda: self.holder() is other, 30, f"{other.name} RUNNING, not {aside.name}")
        finally:
            sh("ip", "-n", aside.netns, "link", "set", "eth1", "up")
        self.c.wait_for(lambda: self.status(aside).get("unavailable") is None, 5, f"{aside.name} eligible again")
        self.assertEqual(aside.prop("State"), "STANDBY")
        self.assertFalse(aside.prop("Standby"), "the admin's standby is not touched")

    def partition(self, why):
        """Cuts the holder off (heartbeats only: it stays on the clients' link); returns the figures."""
        old = self.holder()
        others = [n for n in self.c.names if n != old.name]
        self.sample()
        isolated = time.time()
        old.isolate()
        try:
            new = self.wait_for_new_holder(old, f"the majority's takeover ({why})")
            time.sleep(0.3)
            samples = self.sampler.stop()
        finally:
            old.heal()
        held = AddressSampler.times(samples, old.name, VIP4)
        gone = min(t for t, n, have in samples if n == old.name and VIP4 not in have and t > isolated)
        taken = AddressSampler.times(samples, new.name, VIP4)[0]
        for address in (VIP4, VIP6, LINK2):
            self.assertEqual(AddressSampler.overlaps(samples, address), [], f"{address} on two nodes at once")
        self.assertLess(max(held), taken, f"{VIP4} on {old.name} after {new.name} added it")
        # The lease: a majority renewed it last before the cut; it runs out a dead time after.
        self.assertLess(gone - isolated, DEAD + 0.3, f"{VIP4} on {old.name} after its lease (+ the sampling lag)")
        # Seen from the link the cut-off node is still on: one host answers, the new holder.
        r = self.client.run("arping", "-b", "-c", "3", "-w", "2", "-I", "eth0", VIP4)
        answering = {mac.lower() for mac in re.findall(r"reply from \S+ \[([0-9A-Fa-f:]+)\]", r.stdout)}
        self.assertEqual(answering, {new.mac()}, f"answering for {VIP4}: {r.stdout}")
        self.c.wait_for(lambda: old.prop("Quorate") and old.prop("State") == "STANDBY", 15, f"{old.name} back")
        self.assertEqual(self.holder().name, new.name)
        return old, new, isolated, gone, taken

    def test_6_a_cut_off_holder_removes_the_addresses_before_its_lease_ends(self):
        old, new, isolated, gone, taken = self.partition("partition")
        print(f"\npartition: {VIP4} gone from {old.name} {(gone - isolated) * 1000:.0f} ms after the cut, "
              f"on {new.name} {(taken - isolated) * 1000:.0f} ms after it", file=sys.stderr)

    def test_7_a_hanging_stophasrv_does_not_keep_the_addresses(self):
        holder = self.holder()
        open(holder.etc("hang-stop"), "w").close()
        old, new, isolated, gone, taken = self.partition("hanging stophasrv")
        self.assertFalse(os.path.exists(old.etc("hang-stop")), "stophasrv did not run")
        stops = [float(e[1]) for e in old.events("stophasrv") if float(e[1]) > isolated]
        self.assertTrue(stops, "no stophasrv")
        # The hung stophasrv never returned (it was killed): the address went without it. A
        # .done can only be the clean-up stophasrv's, which begins after the kill; its end
        # may come before the sampler (every 20-30 ms) sees the address gone.
        done = [float(e[1]) for e in old.events("stophasrv.done") if float(e[1]) > stops[0]]
        self.assertTrue(not done or (len(stops) > 1 and stops[1] < done[0]),
                        f"the hung stophasrv returned: began {stops}, ended {done}")
        print(f"\nhanging stophasrv on {old.name} (began {(stops[0] - isolated) * 1000:.0f} ms after the cut): "
              f"{VIP4} gone {(gone - isolated) * 1000:.0f} ms after the cut, on {new.name} "
              f"{(taken - isolated) * 1000:.0f} ms after it", file=sys.stderr)

    def test_8_power_cut_announcements_and_ipv6(self):
        old = self.holder()
        self.assertEqual(self.observer.run("ping", "-c", "1", "-W", "3", VIP6).returncode, 0)  # an entry to turn
        self.assertEqual(self.observer.neighbour(VIP6)[0], old.mac())
        pinger = Pinger(self.client, VIP4)
        self.sample()
        time.sleep(0.5)
        cut = time.time()
        old.power_cut()
        new = self.wait_for_new_holder(old, "another node RUNNING after the power cut")
        running = time.time()
        # Right after the takeover, before the observer sent anything: the announcements moved its entries.
        seen = {address: self.observer.neighbour(address) for address in (VIP4, VIP6)}
        self.c.wait_for(lambda: self.client.run("ping", "-c", "1", "-W", "1", VIP4).returncode == 0, 5,
                        f"{VIP4} reachable")
        time.sleep(2.5)  # past the duplicate address detection of VIP6_DAD
        samples = self.sampler.stop()
        gap, last = outage(pinger.stop(), cut)
        for address in (VIP4, VIP6):
            self.assertEqual(seen[address][0], new.mac(), f"the observer's entry for {address}: {seen[address]}")
        self.assertLess(gap, OUTAGE_BOUND, "the client's outage after the power cut")
        self.assertGreater(last, running, "no reply after the takeover")
        # IPv6 without dad: never tentative on the new holder; with dad: tentative at first, then usable.
        on_new = [(t, have) for t, n, have in samples if n == new.name and t > cut]
        self.assertTrue(any(VIP6 in have for _, have in on_new), f"{VIP6} never seen on {new.name}")
        self.assertFalse(any(have.get(VIP6) for _, have in on_new), f"{VIP6} tentative on {new.name}")
        dad = [have[VIP6_DAD] for _, have in on_new if VIP6_DAD in have]
        self.assertTrue(dad and dad[0], f"{VIP6_DAD} not tentative when it came up: {dad[:3]}")
        self.assertFalse(dad[-1], f"{VIP6_DAD} still tentative")
        first = min(t for t, have in on_new if VIP6_DAD in have)
        usable = min(t for t, have in on_new if have.get(VIP6_DAD) is False)
        self.assertEqual(self.client.run("ping", "-c", "1", "-W", "3", VIP6).returncode, 0)
        self.assertEqual(self.client.run("ping", "-c", "1", "-W", "3", VIP6_DAD).returncode, 0)
        print(f"\npower cut of {old.name}: {new.name} RUNNING {(running - cut) * 1000:.0f} ms after the cut; "
              f"the client's outage {gap * 1000:.0f} ms; the observer's entries {seen} "
              f"({new.name} is {new.mac()}); {VIP6_DAD} tentative for {(usable - first) * 1000:.0f} ms",
              file=sys.stderr)


if __name__ == "__main__":
    nodes.main()
