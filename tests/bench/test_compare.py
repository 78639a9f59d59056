"""Bench suite: bench/compare's overlap check (per service group too), the groups rows'
placement and table, the etcd row's configuration and idle line, the cost rows' selection,
etcd call counters and table, the client's outage and who-answered reading on made-up
timelines, then (root) a smoke run of one freeha row and the keepalived row it is compared
with, one run of each event kind: the tables come out complete, freeha shows no overlap, the
client saw keepalived's address go silent and come back, and nothing of the run is left
behind.
"""
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

COMPARE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "compare")
ROWS = ("freeha-3", "keepalived-v2-3")


def load_compare():
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    loader = importlib.machinery.SourceFileLoader("compare", COMPARE)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("compare", loader))
    loader.exec_module(module)
    return module


class FakeNode:
    def __init__(self, name, events, crashes=()):
        self.name, self._events, self.crashes = name, events, list(crashes)

    def events(self):
        return self._events


def overlaps(compare, *nodes):
    row = next(r for r in compare.freeha_rows() if r.name == "freeha-2+arb")
    row.nodes = list(nodes)
    row.phases = [("crash", 0.0), ("switchover", 10.0)]
    row.count_overlaps()
    return row.overlaps


def check_overlap_detection(compare):
    none = {kind: 0 for kind in compare.FREEHA_KINDS}
    # A crash, then the takeover: the crash ends alpha's services.
    assert overlaps(compare, FakeNode("alpha", [("start", 1.0)], crashes=[5.0]),
                    FakeNode("bravo", [("start", 6.0)])) == none
    # A switchover: bravo begins after alpha's stop hook ended.
    assert overlaps(compare, FakeNode("alpha", [("start", 1.0), ("stop", 11.0), ("stopped", 11.1)]),
                    FakeNode("bravo", [("start", 11.2)])) == none
    # bravo begins while alpha's stop hook still runs: an overlap, in the switchover phase.
    assert overlaps(compare, FakeNode("alpha", [("start", 1.0), ("stop", 11.0), ("stopped", 11.5)]),
                    FakeNode("bravo", [("start", 11.2)])) == {**none, "switchover": 1}
    # alpha, restarted after its crash, begins again while bravo runs; the arbitrator never counts.
    assert overlaps(compare, FakeNode("alpha", [("start", 1.0), ("start", 8.0)], crashes=[5.0]),
                    FakeNode("bravo", [("start", 6.0)]),
                    FakeNode("arbiter", [("start", 2.0)])) == {**none, "crash": 1}
    # A clean-up stop at start-up without services is no interval at all.
    assert overlaps(compare, FakeNode("alpha", [("stop", 0.5), ("stopped", 0.6), ("start", 1.0)], crashes=[5.0]),
                    FakeNode("bravo", [("stop", 0.5), ("stopped", 0.6), ("start", 6.0)])) == none


def check_client_readings(compare):
    nodes = compare.nodes
    a, b, c = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
    # Replies every 10 ms from a until 0.005 s after the event at 10.0, then b from 11.0.
    echoes = [(10 + i / 100, "echo", a) for i in range(-150, 1)] + [(11 + i / 100, "echo", b) for i in range(50)]
    gap, last, first = nodes.outage(echoes, 10.005, 12.0)
    assert (round(gap, 3), last, first) == (1.0, 10.0, 11.0), (gap, last, first)
    # A claim (gratuitous ARP) is no reply: it does not end the silence.
    gap, _, first = nodes.outage(sorted(echoes + [(10.5, "claim", b)]), 10.005, 12.0)
    assert round(gap, 3) == 1.0 and first == 11.0, (gap, first)
    # No reply after the event: the silence runs to the end of the window.
    gap, last, first = nodes.outage(echoes[:151], 10.005, 12.0)
    assert (round(gap, 3), last, first) == (2.0, 10.0, None), (gap, last, first)
    # A silence that began long before the event counts from 1 s before it.
    assert round(nodes.outage([(20.0, "echo", b)], 10.0, 21.0)[0], 3) == 11.0
    assert nodes.answering(echoes, 9.0, 12.0) == [a, b]
    assert nodes.answering(echoes, 10.5, 12.0) == [b]
    # a still answers after b took over: three runs, two nodes answered.
    assert nodes.answering(sorted(echoes + [(11.2, "claim", a)]), 9.0, 12.0) == [a, b, a, b]
    assert nodes.answering(sorted(echoes + [(11.255, "echo", c)]), 9.0, 12.0) == [a, b, c, b]


class FakeGroupNode:
    """A node whose hooks log per group (events file relative to the node: 'events.log' for the default group)."""

    def __init__(self, name, events_by_log, crashes=()):
        self.name, self._events, self.crashes = name, events_by_log, list(crashes)

    def events(self, log="events.log"):
        return self._events.get(log, [])


def group_status(name, placement, names, running_here=None):
    """A status document of node `name` as the groups rows read it: every node reachable; each group's
    active node from `placement`; RUNNING where this node runs it (or the groups in running_here)."""
    mine = running_here if running_here is not None else [g for g, n in placement.items() if n == name]
    return {"nodes": [{"name": n, "reachable": True, "self": n == name} for n in names],
            "groups": [{"name": g, "active_node": a, "state": "RUNNING" if g in mine else "STANDBY"}
                       for g, a in placement.items()]}


def check_groups(compare):
    """The rows with groups: overlaps per group, the placement read from the status files, the table's ratios."""
    row = next(r for r in compare.freeha_rows() if r.name == "freeha-groups-5")
    row.groups = ["default", "g01"]
    row.phases = [("crash", 0.0)]
    # alpha runs default, bravo g01, at the same time: no overlap; then bravo runs default too while
    # alpha's still runs: one, in the crash phase.
    alpha = FakeGroupNode("alpha", {"events.log": [("start", 1.0)]})
    bravo = FakeGroupNode("bravo", {"g01/events.log": [("start", 1.0)]})
    row.nodes = [alpha, bravo]
    row.count_overlaps()
    assert row.overlaps == {"crash": 0}, row.overlaps
    bravo._events["events.log"] = [("start", 2.0)]
    row.count_overlaps()
    assert row.overlaps == {"crash": 1}, row.overlaps

    names = ["alpha", "bravo", "charlie"]
    row.nodes = [FakeGroupNode(n, {}) for n in names]
    row.groups = ["default", "g01", "g02"]
    placement = {"default": "bravo", "g01": "bravo", "g02": "alpha"}
    statuses = {n: group_status(n, placement, names) for n in names}
    row.status = lambda node: statuses[node.name]
    assert row.settled() and row.active.name == "bravo", row.active.name
    assert compare.spread_text(row.placement, row.nodes) == "1/2/0"
    # charlie also says RUNNING for g02: not settled (a group on two nodes).
    statuses["charlie"] = group_status("charlie", placement, names, running_here=["g02"])
    assert not row.settled()

    # The groups table: the last group's median beside freeha-5's crash median (ratio 1.10).
    single = next(r for r in compare.freeha_rows() if r.name == "freeha-5")
    single.samples["crash"] = [1000.0, 1000.0, 1000.0]
    row.samples["crash"], row.first_ms, row.crashed_groups = [1000.0, 1100.0, 1200.0], [900.0] * 3, [4, 4, 4]
    row.spread_at_start = "4/4/4/4/4"
    lines = [line for line in compare.groups_table([single, row]) if line.startswith("| freeha-groups-5 |")]
    assert len(lines) == 1, lines
    cells = [c.strip() for c in lines[0].strip("|").split("|")]
    assert cells[3] == "4/4/4/4/4" and cells[5] == "4/4/4" and cells[6] == "900" and cells[8] == "1100", cells
    assert cells[12] == "freeha-5 (1000)" and cells[13] == "1.10", cells


class FakeEtcd:
    def __init__(self, urls):
        self.members = urls

    def endpoints(self):
        return self.members


def check_etcd_row(compare):
    """The etcd row: only by its own name, its nodes configured for etcd and nothing else, and its
    etcd members' footprint on a line of its own in the idle table."""
    rows = list(compare.freeha_rows())
    row = next(r for r in rows if r.name == "freeha-etcd-3")
    assert row.opt_in and row.partner == "keepalived-v2-3", (row.opt_in, row.partner)
    assert not compare.selected(row, "freeha") and compare.selected(row, "freeha-etcd-3")
    row.etcd = FakeEtcd(["http://10.214.0.201:2379", "http://10.214.0.202:2379", "http://10.214.0.203:2379"])
    sections = row.membership_sections(None)
    assert sections.startswith("Backend=etcd\n[Etcd]\nEndpoints=http://10.214.0.201:2379 ") and \
        "Channel=" not in sections and "ExpectedNodes=" not in sections, sections
    row.footprint, row.etcd_footprint = (15000, 0.1, 30), (45000, 1.0, 30)
    idle = compare.tables([row], 30).split("\nIdle: ")[1]
    lines = [line for line in idle.splitlines() if line.startswith("| freeha-etcd-3")]
    assert len(lines) == 2 and lines[0].split("|")[5].strip() == "200", lines
    assert lines[1].startswith("| freeha-etcd-3: its etcd |") and lines[1].split("|")[4:6] == [" 45000 ", " 2000 "], \
        lines


# A member's /metrics as etcd 3.4 writes it (lines of it): the calls a run of the JSON gateway made.
METRICS = """# HELP grpc_server_started_total Total number of RPCs started on the server.
grpc_server_started_total{grpc_method="LeaseGrant",grpc_service="etcdserverpb.Lease",grpc_type="unary"} 1
grpc_server_started_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} 70
grpc_server_started_total{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 5
grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 2
grpc_server_msg_sent_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"} 40
grpc_server_msg_sent_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} 70
grpc_server_handled_total{grpc_code="OK",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 5
"""


def check_cost_rows(compare):
    """The cost rows: selected by their name or a prefix of it, etcd's and the heartbeats' row of a size in
    turn, the call counters read from /metrics, and a line of the cost table per row."""
    rows = list(compare.freeha_rows())
    names = [r.name for r in rows if isinstance(r, compare.CostRow)]
    assert len(names) == 2 * len(compare.COST_NODES) * len(compare.COST_GROUPS), names
    assert names[:2] == ["cost-etcd-3-g1", "cost-hb-3-g1"], names
    row = next(r for r in rows if r.name == "cost-etcd-10-g8")
    hb = next(r for r in rows if r.name == "cost-hb-10-g8")
    assert row.partner == hb.name and row.size == 10 and len(row.groups) == 8 and row.kinds == ["moveall"]
    for selector in ("cost", "cost-etcd", "cost-etcd-10", "cost-etcd-10-g8"):
        assert compare.selected(row, selector), selector
    for selector in ("freeha", "cost-hb", "cost-etcd-1", "cost-etcd-10-g"):
        assert not compare.selected(row, selector), selector
    assert not compare.selected(next(r for r in rows if r.name == "cost-etcd-30-g1"), "cost-etcd-3")
    row.etcd = FakeEtcd(["http://10.214.0.201:2379", "http://10.214.0.202:2379", "http://10.214.0.203:2379"])
    assert row.membership_sections(None).startswith("Backend=etcd\n[Etcd]\nEndpoints=http://10.214.0.201:2379 ")
    counts = compare.grpc_counters(METRICS)
    assert counts == {("started", "LeaseGrant"): 1, ("started", "LeaseKeepAlive"): 70, ("started", "Put"): 5,
                      ("started", "Watch"): 2, ("msg_sent", "Watch"): 40, ("msg_sent", "LeaseKeepAlive"): 70}, counts
    # Two members over 10 s: the first served 70 keepalives and 5 puts more, the second 10 keepalives.
    later = {**counts, ("started", "LeaseKeepAlive"): 140, ("started", "Put"): 10, ("msg_sent", "Watch"): 60}
    second = {("started", "LeaseKeepAlive"): 10.0}
    by_method, by_member, watch = compare.call_rates([counts, {}], [later, second], 10)
    assert by_method == {"LeaseGrant": 0, "LeaseKeepAlive": 8, "Put": 0.5, "Watch": 0}, by_method
    assert by_member == [7.5, 1] and watch == 2, (by_member, watch)
    row.footprint, row.cpu_per_node, row.traffic = (15000, 0.2, 30), [0.1] * 9 + [1.1], (1200.0, 9.0)
    row.etcd_footprint, row.etcd_cpu, row.etcd_calls = (45000, 1.0, 30), [0.5, 0.5, 2.0], (by_method, by_member, watch)
    # A move of 8 groups in 1 s: above the idle rates (freehad 2 s in all, etcd 3 s, 8.5 calls a second over
    # 30 s), 10 ms of freehad CPU, 20 ms of etcd's and 2 calls per group.
    row.moves, row.samples["moveall"] = [{"groups": 8, "seconds": 1, "freehad_cpu": 0.08 + 2 / 30,
                                          "etcd_cpu": 0.16 + 3 / 30, "etcd_calls": {"Txn": 16, "LeaseKeepAlive": 8.5},
                                          "watch_sent": 100}], [900.0]
    out = compare.tables([row, hb], 30)
    assert "\nIdle: " not in out, out  # the cost rows' idle figures are the cost table's
    lines = [line for line in out.splitlines() if line.startswith("| etcd |") or line.startswith("| heartbeats |")]
    assert len(lines) == 2, out
    cells = [c.strip() for c in lines[0].strip("|").split("|")]
    assert cells == ["etcd", "10", "8", "400", "2200", "15000", "2000", "4000", "45000", "8.5", "0.85",
                     "8.0/0.5/0.0/0.0/0.0/0.0", "2.0", "1200", "0.90", "10.0", "20.0", "2.0"], cells
    assert lines[1].split("|")[4:7] == [" — ", " — ", " — "], lines[1]


def netns_with(prefix):
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return [line.split()[0] for line in r.stdout.splitlines() if line.startswith(prefix + "-")]


def smoke_run(compare):
    with tempfile.TemporaryDirectory() as tmp:
        samples = os.path.join(tmp, "samples.json")
        p = subprocess.Popen([COMPARE, "--quick", "-n", "1", "--idle", "2", "--rows", ",".join(ROWS),
                              "--json", samples], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = p.communicate(timeout=240)
        sys.stderr.write(err)
        print(out)
        assert p.returncode == 0, f"bench/compare exited {p.returncode}"
        results = {r["row"]: r for r in json.load(open(samples))}
        assert sorted(results) == sorted(ROWS), results.keys()
        for name, r in results.items():
            assert r["error"] is None, f"{name}: {r['error']}"
            assert all(len(s) == 1 and s[0] > 0 for s in r["samples_ms"].values()), f"{name}: {r['samples_ms']}"
            rss, cpu, seconds = r["footprint"]
            assert rss > 1000 and cpu >= 0 and seconds == 2, f"{name}: footprint {r['footprint']}"
        assert sorted(results["freeha-3"]["samples_ms"]) == sorted(compare.FREEHA_KINDS)
        assert results["freeha-3"]["overlaps"] == {kind: 0 for kind in compare.FREEHA_KINDS}
        # The client row of keepalived: its address went silent (a crash: at least its master-down
        # time, 3 adverts) and came back within the run; the one move seen, nothing more.
        client = results["keepalived-v2-3"]["client_ms"]
        assert sorted(client) == sorted(compare.CLIENT_KINDS), client
        assert all(len(ms) == 1 and ms[0] > 0 for ms in client.values()), client
        assert client["crash"][0] > 2000, client
        assert results["freeha-3"]["client_ms"] is None
        rows = [line for line in out.splitlines() if line.startswith("| crash |") and "| keepalived-v2-3 | 1 |" in line]
        assert len(rows) == 1, out
        # Every event table has the freeha row beside its keepalived row and a ratio.
        lines = [line for line in out.splitlines() if line.startswith("| freeha-3 | 1 |")]
        assert len(lines) == len(compare.FREEHA_KINDS), out
        for line in lines:
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert cells[6] == "keepalived-v2-3" and float(cells[-1]) > 0, line
        assert not netns_with(f"cmp{p.pid % 100000}"), "namespaces left behind"
        assert not [d for d in os.listdir("/tmp") if d.startswith(f"cmp{p.pid % 100000}-")], "run directory left"


def main():
    compare = load_compare()
    compare.log = lambda text: None  # the made-up overlaps are reported on purpose
    check_overlap_detection(compare)
    print("overlap detection: ok")
    check_client_readings(compare)
    print("client readings: ok")
    check_groups(compare)
    print("groups: ok")
    check_etcd_row(compare)
    print("etcd row: ok")
    check_cost_rows(compare)
    print("cost rows: ok")
    why = compare.missing_facility()
    if why is None and not shutil.which("keepalived"):
        why = "keepalived is not installed (scripts/setup-debian.sh installs it)"
    if why:
        print(f"SKIP: {why}")
        return 77
    smoke_run(compare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
