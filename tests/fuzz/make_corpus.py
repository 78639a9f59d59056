#!/usr/bin/env python3
"""Writes the fuzzer's seed corpus (tests/fuzz/corpus/): one heartbeat of
each kind the decoder and the receive path know, in the current wire format
and the previous one (see src/core/wire.h). Run it again whenever the format
changes:
    python3 tests/fuzz/make_corpus.py
"""
import hashlib
import hmac
import os
import struct

VERSION, PREVIOUS_VERSION = 3, 2
(STANDBY, ERRORED, AUTH, HANDOVER, HEARD, CLAIMANT, PENDING, EXPECTED, CLAIMANT_INCARNATION, LEAVING, MAINTENANCE,
 GROUPS) = (1 << i for i in range(12))
# A group's flags (one byte per group in the kFlagGroups extension).
G_ERRORED, G_PENDING, G_CLAIMANT, G_HANDOVER = (1 << i for i in range(4))
# A version-2 heartbeat of a node that understands version 3 ends its heard list with this id.
UNDERSTANDS_CURRENT_MARKER = ":wire3"
INITIAL, STANDBY_STATE, STARTING, RUNNING, STOPPING, ERRORED_STATE = range(6)
MEMBER, ARBITRATOR = 0, 1


def fnv1a(text):
    h = 0xcbf29ce484222325
    for ch in text.encode():
        h = ((h ^ ch) * 0x100000001b3) % 2**64
    return h


def group_id(name):
    h = 0x811c9dc5
    for ch in name.encode():
        h = ((h ^ ch) * 0x01000193) % 2**32
    return h


def varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7f) | 0x80])
        v >>= 7
    return out + bytes([v])


def groups_extension(groups):
    """groups: [(name, state, term, flags, claimant or None, incarnation, grant, handover or None)],
    encoded as src/core/wire.cpp does (ascending ids, one name entry per distinct triple)."""
    names, rows = [], []
    def index(entry):
        if entry not in names:
            names.append(entry)
        return names.index(entry)
    for group in sorted(groups, key=lambda g: group_id(g[0])):
        name, state, term, flags, claimant, incarnation, grant, handover = group
        row = struct.pack(">IB", group_id(name), state)
        refs = b""
        if claimant:
            flags |= G_CLAIMANT
            refs += bytes([index((claimant, incarnation, grant))])
        if handover:
            flags |= G_HANDOVER
            refs += bytes([index((handover, 0, 0))])
        rows.append(row + bytes([flags]) + varint(term) + refs)
    table = bytes([len(names)]) + b"".join(bytes([len(n)]) + n.encode() + struct.pack(">QQ", i, g) for n, i, g in names)
    return table + bytes([len(rows)]) + b"".join(rows)


def heartbeat(node="peer", cluster="fuzz", flags=0, incarnation=1, sequence=1, term=0, sent_at=1_000_000,
              echo=0, state=STANDBY_STATE, role=MEMBER, handover="", claimant="", heard=(), expected=0,
              version=VERSION, maintenance_epoch=0, release="0.2.0", groups=()):
    if handover:
        flags |= HANDOVER
    if claimant:
        flags |= CLAIMANT
    if heard:
        flags |= HEARD
    if expected:
        flags |= EXPECTED
    if groups:
        flags |= GROUPS
    body = b"FHA1" + bytes([version, 1]) + struct.pack(">HQQQQQQ", flags, fnv1a(cluster), incarnation, sequence,
                                                       term, sent_at, echo)
    body += bytes([state, role, len(node)]) + node.encode()
    for name in (handover, claimant):
        if name:
            body += bytes([len(name)]) + name.encode()
    if heard:
        body += bytes([len(heard)]) + b"".join(struct.pack(">Q", fnv1a(n)) for n in heard)
    if expected:
        body += bytes([expected])
    if version == VERSION:
        body += struct.pack(">QB", maintenance_epoch, len(release)) + release.encode()
        if groups:
            body += groups_extension(groups)
    return body


def signed(body, key):
    flags = struct.unpack(">H", body[6:8])[0] | AUTH
    body = body[:6] + struct.pack(">H", flags) + body[8:]
    return body + hmac.new(key, body, hashlib.sha256).digest()


SEEDS = {
    "standby": heartbeat(),
    "running-term7": heartbeat(state=RUNNING, term=7, sequence=9),
    "pending-claim": heartbeat(state=STARTING, term=4, flags=PENDING),
    "backing-echo": heartbeat(claimant="self", term=3, echo=999_000, heard=["self"]),
    "arbitrator": heartbeat(node="arb", role=ARBITRATOR),
    "standby-flag-errored": heartbeat(state=ERRORED_STATE, flags=STANDBY | ERRORED),
    "handover": heartbeat(state=STOPPING, term=2, handover="self"),
    "heard-list": heartbeat(heard=["self", "other", "third"]),
    "expected-nodes": heartbeat(heard=["self"], expected=5),
    "everything": heartbeat(node="a" * 64, flags=STANDBY | ERRORED | PENDING, state=STARTING, term=2**64 - 1,
                            sent_at=2**64 - 1, echo=2**63, handover="b" * 64, claimant="c" * 64,
                            heard=["n%d" % i for i in range(64)], expected=64),
    "foreign-cluster": heartbeat(cluster="other"),
    "own-name": heartbeat(node="self", incarnation=7),
    "signed-wrong-key": signed(heartbeat(sequence=2), bytes([0x11]) * 32),
    "truncated": heartbeat()[:40],
    "leaving": heartbeat(state=STANDBY_STATE, flags=LEAVING, sequence=3),
    "maintenance": heartbeat(state=RUNNING, term=5, flags=MAINTENANCE, maintenance_epoch=2**40, release="0.2.0~rc1"),
    "previous-version": heartbeat(version=PREVIOUS_VERSION, heard=["self"]),
    "previous-version-marker": heartbeat(version=PREVIOUS_VERSION, heard=["self", UNDERSTANDS_CURRENT_MARKER]),
    # Service groups beside the default one: one run here, two backing self's claim with one grant (one
    # name entry), one handed over to self, one errored; and 63 groups, the most a heartbeat carries.
    "groups": heartbeat(heard=["self"], state=RUNNING, term=3, groups=[
        ("web", RUNNING, 4, 0, None, 0, 0, None),
        ("db", STANDBY_STATE, 300, 0, "self", 1, 999_000, None),
        ("mail", STOPPING, 2**40, G_PENDING, "self", 1, 999_000, "self"),
        ("cache", ERRORED_STATE, 0, G_ERRORED, None, 0, 0, None)]),
    "groups-63": signed(heartbeat(heard=["self", "other"], groups=[
        ("g%d" % i, STANDBY_STATE, i * 1000, 0, "n%d" % (i % 7), 7, 1_000_000 + i % 7, None) for i in range(63)]),
        bytes([0x11]) * 32),
}

if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        os.unlink(os.path.join(out, name))
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(SEEDS)} seeds to {out}")
