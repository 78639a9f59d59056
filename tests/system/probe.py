"""A client's view of a floating address, run inside the client's network namespace (root):
python3 probe.py ADDRESS FILE [INTERVAL] [DEVICE]

Sends an ICMP echo request to ADDRESS (IPv4 or IPv6) every INTERVAL seconds (default 0.01)
and appends to FILE one line per frame on DEVICE (default eth0) that shows a host answering
for ADDRESS: "TIME KIND MAC", TIME the kernel's receive time (realtime seconds), KIND
"echo" for a reply to one of its own requests, "claim" for any other frame that says the
sender has ADDRESS (ARP with ADDRESS as sender address, a neighbour advertisement for it,
any IP packet from it), MAC the frame's Ethernet source. Writes "ready" first; runs until
SIGTERM or SIGINT. The harness side (outage, who answered) is nodes.Prober.
"""
import ipaddress
import os
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35
ICMP_FILTER = 1  # SOL_RAW option of IPv4 raw ICMP sockets: a bit per type to drop
SOL_RAW = 255
ICMP6_FILTER = 1


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(v6, ident, seq):
    payload = struct.pack("!d", time.time())
    if v6:  # the kernel fills in ICMPv6 checksums of raw sockets
        return struct.pack("!BBHHH", 128, 0, 0, ident, seq) + payload
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload


def classify(frame, address, v6, ident):
    """'echo', 'claim' or None for one Ethernet frame."""
    kind, body = struct.unpack("!H", frame[12:14])[0], frame[14:]
    if kind == 0x0806 and not v6 and len(body) >= 28:
        return "claim" if body[14:18] == address else None  # sender protocol address
    if kind == 0x0800 and not v6 and len(body) >= 20 and body[12:16] == address:
        icmp = body[(body[0] & 0x0F) * 4:]
        if body[9] == 1 and len(icmp) >= 8 and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
            return "echo"
        return "claim"
    if kind == 0x86DD and v6 and len(body) >= 40:
        icmp = body[40:] if body[6] == 58 else b""
        if body[8:24] == address:
            if len(icmp) >= 8 and icmp[0] == 129 and struct.unpack("!H", icmp[4:6])[0] == ident:
                return "echo"
            return "claim"
        if len(icmp) >= 24 and icmp[0] == 136 and icmp[8:24] == address:  # neighbour advertisement
            return "claim"
    return None


def main():
    address, path = sys.argv[1], sys.argv[2]
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.01
    device = sys.argv[4] if len(sys.argv) > 4 else "eth0"
    ip = ipaddress.ip_address(address)
    v6 = ip.version == 6
    packed = ip.packed
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sniff.bind((device, 0))
    sniff.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sniff.setblocking(False)
    if v6:
        send = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        send.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, b"\xff" * 32)  # receives nothing: the sniffer does
    else:
        send = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        send.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", 0xFFFFFFFF))
    send.setblocking(False)
    ident = os.getpid() & 0xFFFF
    running = True

    def stop(*_):
        nonlocal running
        running = False
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    out = open(path, "a", buffering=1)
    out.write("ready\n")
    seq, next_send = 0, time.monotonic()
    while running:
        now = time.monotonic()
        if now >= next_send:
            seq = (seq + 1) & 0xFFFF
            try:
                send.sendto(echo_request(v6, ident, seq), (address, 0))
            except OSError:
                pass  # no neighbour yet, or the link is down: a silence, which is what is measured
            # Falling behind (a loaded machine) skips requests rather than sending a burst.
            next_send = max(next_send + interval, now)
        try:
            select.select([sniff], [], [], max(0.0, next_send - time.monotonic()))
        except InterruptedError:
            continue
        while True:
            try:
                frame, ancillary, _, source = sniff.recvmsg(2048, 64)
            except (BlockingIOError, InterruptedError):
                break
            if source[2] == PACKET_OUTGOING:
                continue
            kind = classify(frame, packed, v6, ident)
            if kind:
                stamp = next((struct.unpack("qq", data[:16]) for level, typ, data in ancillary
                              if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS), None)
                when = stamp[0] + stamp[1] / 1e9 if stamp else time.time()
                out.write(f"{when:.6f} {kind} {frame[6:12].hex(':')}\n")
    out.close()


if __name__ == "__main__":
    main()
