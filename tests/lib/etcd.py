"""A real etcd cluster for the tests (issue 21): Debian's etcd-server, each member in a network
namespace of its own on a test cluster's bridge (a Client of tests/system/nodes.py), with fast
elections (heartbeat 50 ms, election timeout 500 ms: etcd's minimum lease TTL is then 750 ms, so a
DeadTime= of 1 s is granted as asked). Members can be killed, restarted and cut off (nftables in
their namespace), and slowed down by a DelayProxy in front of them; everything goes with destroy().

Run as a script (`etcd.py delay-proxy ...`), this file is the DelayProxy's relay."""
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import processes

ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"
CLIENT_PORT = 2379
PEER_PORT = 2380
PROXY_PORT = 2479  # a DelayProxy's, beside its member's client port


class Member:
    def __init__(self, etcd, client):
        self.etcd = etcd
        self.client = client
        self.name = client.name
        self.address = client.address
        self.url = f"{'https' if etcd.pki else 'http'}://{self.address}:{CLIENT_PORT}"
        self.peer_url = f"http://{self.address}:{PEER_PORT}"
        self.data = os.path.join(etcd.dir, self.name)
        self.process = None

    def start(self, state="new"):
        log = open(os.path.join(self.etcd.dir, f"{self.name}.log"), "a")
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.client.netns, ETCD, "--name", self.name, "--data-dir", self.data,
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
             "--initial-cluster", self.etcd.initial_cluster, "--initial-cluster-state", state,
             "--initial-cluster-token", self.etcd.token,
             "--heartbeat-interval", "50", "--election-timeout", "500", "--logger", "zap", "--log-outputs", "stderr",
             *self.etcd.tls_flags()],
            stdout=log, stderr=log, start_new_session=True)
        log.close()

    def kill(self):
        """SIGKILL: the member's process dies at once (its data stays for a restart)."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def status(self):
        """etcdctl's endpoint status of this member ({} when it does not answer)."""
        r = subprocess.run(["ip", "netns", "exec", self.client.netns, ETCDCTL, "--endpoints", self.url,
                            *self.etcd.etcdctl_tls(), "--command-timeout=1s", "endpoint", "status", "-w", "json"],
                           capture_output=True, text=True, timeout=10,
                           env=dict(os.environ, ETCDCTL_API="3"))
        try:
            return json.loads(r.stdout)[0]["Status"] if r.returncode == 0 else {}
        except (ValueError, KeyError, IndexError):
            return {}

    def get(self, key):
        """`key` as this member reads it: {"value": str, "lease": int (0: none), ...}, None when absent."""
        r = subprocess.run(["ip", "netns", "exec", self.client.netns, ETCDCTL, "--endpoints", self.url,
                            *self.etcd.etcdctl_tls(), "--command-timeout=2s", "get", key, "-w", "json"],
                           capture_output=True, text=True, timeout=10, check=True,
                           env=dict(os.environ, ETCDCTL_API="3"))
        kvs = json.loads(r.stdout).get("kvs", [])
        if not kvs:
            return None
        kv = kvs[0]
        kv["value"] = base64.b64decode(kv.get("value", "")).decode(errors="replace")  # (member records are binary)
        kv["lease"] = kv.get("lease", 0)
        return kv

    def isolate(self):
        """Drops every etcd packet in and out of the member (clients and peers alike)."""
        rules = ("table inet freeha_etcd {\n"
                 " chain in {\n  type filter hook input priority 0;\n  tcp dport { 2379, 2380 } drop\n"
                 "  tcp sport { 2379, 2380 } drop\n }\n"
                 " chain out {\n  type filter hook output priority 0;\n  tcp dport { 2379, 2380 } drop\n"
                 "  tcp sport { 2379, 2380 } drop\n }\n}\n")
        subprocess.run(["ip", "netns", "exec", self.client.netns, "nft", "-f", "-"], input=rules, text=True,
                       check=True)

    def heal(self):
        subprocess.run(["ip", "netns", "exec", self.client.netns, "nft", "delete", "table", "inet", "freeha_etcd"],
                       check=True)


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Pki:
    """A CA, a server certificate for `addresses` and a client certificate signed by it, and a
    second CA with a client certificate of its own (what a wrong certificate looks like)."""

    def __init__(self, directory, addresses):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        for ca in ("ca", "other-ca"):
            _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-days", "2", "-subj", f"/CN=freeha test {ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                     cwd=directory)
        san = ",".join(f"IP:{a}" for a in addresses)
        # clientAuth too: etcd's JSON gateway calls its own gRPC server with the server's
        # certificate, which --client-cert-auth then checks as a client's.
        self._issue("server", "ca", f"subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth")
        self._issue("client", "ca", "extendedKeyUsage=clientAuth")
        self._issue("stranger", "other-ca", "extendedKeyUsage=clientAuth")

    def _issue(self, name, ca, extensions):
        ext = os.path.join(self.dir, f"{name}.ext")
        with open(ext, "w") as f:
            f.write(extensions + "\n")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=self.dir)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
                 "-days", "2", "-extfile", ext, "-out", f"{name}.pem", cwd=self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)


class EtcdCluster:
    def __init__(self, cluster, count=3, tls=False, first=0):
        """`count` members on `cluster`'s bridge (cluster.add_client, named e`first`...), started;
        waits for a leader. tls: clients speak HTTPS with certificates of the cluster's Pki
        (self.pki), checked by the members (--client-cert-auth)."""
        if not os.access(ETCD, os.X_OK):
            raise RuntimeError(f"{ETCD} is missing: install etcd-server (scripts/setup-debian.sh does)")
        self.dir = os.path.join(cluster.dir, f"etcd{first}")
        os.makedirs(self.dir, exist_ok=True)
        self.token = f"freeha-{os.getpid()}-{first}"
        clients = [cluster.add_client(f"e{first + i}") for i in range(count)]
        self.pki = Pki(os.path.join(self.dir, "pki"), [c.address for c in clients]) if tls else None
        self.members = [Member(self, c) for c in clients]
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for m in self.members:
            m.start()
        self.wait_for_leader(timeout=30)

    def endpoints(self):
        return [m.url for m in self.members]

    def tls_flags(self):
        if not self.pki:
            return []
        return ["--cert-file", self.pki.path("server.pem"), "--key-file", self.pki.path("server.key"),
                "--client-cert-auth", "--trusted-ca-file", self.pki.path("ca.pem")]

    def etcdctl_tls(self):
        if not self.pki:
            return []
        return ["--cacert", self.pki.path("ca.pem"), "--cert", self.pki.path("client.pem"),
                "--key", self.pki.path("client.key")]

    def leader(self):
        """The member that leads now, as its peers report it (None when none answers)."""
        for m in self.members:
            if m.process is None:
                continue
            s = m.status()
            if s and s.get("leader") and s["leader"] == s.get("header", {}).get("member_id"):
                return m
        return None

    def wait_for_leader(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None:
                return leader
            time.sleep(0.1)
        raise AssertionError(f"etcd elected no leader in {timeout}s; logs in {self.dir}")

    def destroy(self):
        for m in self.members:
            m.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _end_with_pipes(process):
    """Ends a helper process and closes its stdin and stdout (a pipe it broke is closed all the same)."""
    processes.end(process, 2)
    for pipe in (process.stdin, process.stdout):
        try:
            pipe.close()
        except BrokenPipeError:
            pass


class DelayProxy:
    """A TCP relay in front of an etcd member that holds every chunk it reads for `delay` seconds
    before it passes it on, in each direction: an etcd that answers slowly (the machine has no
    netem). It runs in the member's network namespace, on the member's address at PROXY_PORT
    (a TLS certificate for that address stays valid through it). Clients given proxy.url instead
    of member.url see every call take two delays longer, and a new TLS connection as many more
    as its handshake has round trips (the TCP handshake is the relay's, and not delayed). set()
    changes the delay for the chunks read from then on (those held keep theirs: the order never
    changes). What was read before a reset still goes on, as on a network: a call its client gave
    up on may still reach etcd."""

    def __init__(self, member):
        self.url = f"{'https' if member.etcd.pki else 'http'}://{member.address}:{PROXY_PORT}"
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", member.client.netns, sys.executable, os.path.abspath(__file__), "delay-proxy",
             member.address, str(PROXY_PORT), str(CLIENT_PORT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, start_new_session=True)
        self._expect("ready")

    def _expect(self, word):
        line = self.process.stdout.readline().strip()
        if line != word:
            processes.end(self.process, 2)
            raise RuntimeError(f"delay proxy: expected {word!r}, got {line!r} (exit {self.process.poll()})")

    def set(self, delay):
        """Holds every chunk read from now on `delay` seconds; returns once the relay has it."""
        self.process.stdin.write(f"{delay}\n")
        self.process.stdin.flush()
        self._expect("ok")

    def stop(self):
        _end_with_pipes(self.process)


def _relay_with_delay(address, port, upstream_port):
    """DelayProxy's relay: listens on address:port, connects each client to address:upstream_port,
    and passes every chunk on `delay` seconds after it read it, in order, half-closes included.
    The delay comes on stdin (a number of seconds per line, each answered "ok"); stdin's end ends it."""
    import asyncio
    import threading

    delay = [0.0]

    async def pump(reader, source, writer):
        """From reader (of the connection `source` writes to) to writer: each chunk, the end
        (b"") and a reset (None) go on `delay` seconds after they were read, as a network
        delivers what was in flight before a reset."""
        loop = asyncio.get_running_loop()
        held = asyncio.Queue()

        async def send():
            try:
                while True:
                    due, data = await held.get()
                    await asyncio.sleep(max(0.0, due - loop.time()))
                    if data is None:
                        writer.transport.abort()
                        return
                    if not data:
                        if writer.can_write_eof():
                            writer.write_eof()
                        return
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                source.transport.abort()  # nowhere to pass it on: the reader sees its end at once
        sender = asyncio.create_task(send())
        while True:
            try:
                data = await reader.read(65536)
            except (ConnectionError, OSError):
                data = None
            held.put_nowait((loop.time() + delay[0], data))
            if not data:
                break
        await sender

    async def serve(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(address, upstream_port)
        except OSError:
            client_writer.transport.abort()
            return
        await asyncio.gather(pump(client_reader, client_writer, upstream_writer),
                             pump(upstream_reader, upstream_writer, client_writer))
        for w in (client_writer, upstream_writer):
            w.close()

    def control():
        for line in sys.stdin:
            delay[0] = float(line)
            print("ok", flush=True)
        os._exit(0)

    async def main():
        server = await asyncio.start_server(serve, address, port)
        threading.Thread(target=control, daemon=True).start()
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Probe:
    """tests/etcd/etcd-probe (the daemon's EtcdBackend) in a network namespace: commands in, JSON lines out."""

    def __init__(self, binary, netns, endpoints, prefix, dead_time="1s", interval="200ms", tls=()):
        """tls: --ca, --cert and --key arguments of etcd-probe."""
        self.lines = []
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", netns, binary, "--prefix", prefix, "--dead-time", dead_time,
             "--interval", interval, *tls, *endpoints],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, start_new_session=True)
        os.set_blocking(self.process.stdout.fileno(), False)

    def send(self, command):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def read(self):
        """Takes in what the probe wrote so far; returns every line it ever wrote."""
        while True:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(json.loads(line))
        return self.lines

    def wait_for(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.read():
                if predicate(line):
                    return line
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; probe said {self.read()[-20:]}")

    def events(self, kind):
        return [line for line in self.read() if line.get("event") == kind]

    def kill(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self):
        if self.process.poll() is None:
            try:
                self.send("quit")
            except BrokenPipeError:
                pass
        _end_with_pipes(self.process)


if __name__ == "__main__" and sys.argv[1:2] == ["delay-proxy"]:
    _relay_with_delay(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
