"""Socket farm: N established loopback TCP connections (2N sockets) over M network namespaces.

Over 450 lines on purpose: the farm and its worker processes are two ends of one protocol
(JSON lines over a pipe, below), easiest to keep right side by side.

    with SocketFarm(connections=50_000, namespaces=1, private_ehash=True) as farm:
        farm.names, farm.paths, farm.glob      # what a poller or `ss` needs

How it is built
---------------
* **Namespaces** are made by one ``ip -batch`` of ``netns add <prefix>n<i>``, so each is
  bind-mounted at ``/var/run/netns/<name>`` where pollers (and ``ip netns exec``) find it.
* **Private TCP hash** (``private_ehash=True``): ``net.ipv4.tcp_child_ehash_entries`` is read
  from the *creating thread's current* namespace when a namespace is created. So the farm first
  makes a parent ``<prefix>parent`` (``ip netns add``), sets the sysctl inside it
  (``nsenter --net=/var/run/netns/<prefix>parent sysctl -w ...``), and then runs the
  ``ip -batch`` of ``netns add`` under ``nsenter --net=<parent>``: ``ip`` unshares each child
  from the parent (so it gets its own hash) and bind-mounts it in our mount namespace. Not
  ``ip netns exec parent ip netns add``: ``exec`` enters a private slave mount namespace, so
  the children's bind mounts would vanish with it. Each worker reports
  ``net.ipv4.tcp_ehash_entries`` per namespace (> 0: private hash; < 0: the host's).
* **Workers.** The open-file limit (20,000 per process here) is per process, so the
  connections are sharded over worker processes (``python farm.py --worker``), each holding at
  most ``max_fds_per_worker`` fds (both ends of a connection live in the same worker). A worker
  ``setns``-es (libc via ctypes; Python 3.11 has no ``os.setns``) into each namespace of its
  shards, brings ``lo`` up (ioctl), raises ``ip_local_port_range``/``somaxconn``, listens on
  ``127.1.<w>.<w>:5201`` (its own address: every (src, dst, dport) has its own 64k ports) and
  opens its connections in batches of non-blocking ``connect`` + ``accept``. Sockets stay in the
  namespace they were opened in; the worker returns to its own namespace after each shard.
* **Traffic.** With ``active_fraction`` > 0 a thread in each worker sends a small request and
  reply on that share of its connections every ``active_interval`` seconds, so ``tcp_info``
  has rtt, bytes and segments that move.
* **Teardown.** ``close()`` (``with`` exit, Ctrl-C, SIGTERM while in ``with``) tells workers to
  quit and deletes every namespace it made. Workers run in their own session (a terminal's
  Ctrl-C reaches only the parent) and also end when their stdin closes without a ``quit``
  (the parent died: only it holds the pipe): then each deletes the namespaces it was told
  about, so a ``kill -9`` of the parent leaves nothing behind. ``sweep_stale()`` removes namespaces of
  farms whose process is gone.

Worker protocol (JSON lines on stdin/stdout): ``{"op": "add", "shards": [{"ns", "path",
"conns", "addr", "port"}], "active_fraction", "active_interval", "cleanup": [names]}`` →
``{"ok", "sockets", "ehash": {ns: entries}, "seconds"}``; ``{"op": "drop", "ns": [names]}``;
``{"op": "quit"}``. EOF without ``quit`` means the parent died.

Worker op for tests (``tests/support/netns_farm.py``): ``{"op": "loopback", "ns", "path",
"port"}`` opens, for IPv4 and IPv6 on loopback, a listener, a client and the accepted end, and
answers ``{"ok", "sockets": [{"family", "state", "inode", "sport", "dport"}]}``; ``drop``
closes them.

This module imports only the standard library: workers start fast, and tests can use it. It
is also the one place Python code here enters a namespace (``entered``); the C side has one
too, ``csrc/netns.c``, which ``raw_dump.c`` links.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

__all__ = ["SocketFarm", "FarmError", "sweep_stale", "NETNS_DIR", "entered", "lo_up"]

NETNS_DIR = "/var/run/netns"
CLONE_NEWNET = 0x40000000
DEFAULT_PORT = 5201
DEFAULT_MAX_FDS = 9_000  # per worker; the hard limit here is 20,000 per process
CONNECT_BATCH = 1_000  # connects in flight per accept round (below the accept backlog)
PER_LISTENER = 16_000  # connections per (listener address, port): far below 64k ports
_PREFIX_RE = re.compile(r"^xtcpbench-(\d+)-")


class FarmError(RuntimeError):
    """The farm could not be built (a worker failed, a namespace could not be made)."""


_libc = None


def _setns(fd: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)  # Python 3.11 has no os.setns
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


@contextlib.contextmanager
def entered(path: str):
    """Run the ``with`` body with this thread in the network namespace at ``path``.

    Sockets opened inside stay in that namespace for life. setns moves only the calling
    thread, so the thread comes back to its own namespace (``thread-self``) on the way out,
    error or not; if it cannot, ``OSError`` is raised and the caller must not go on opening
    sockets on this thread.
    """
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        nsfd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(nsfd)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(nsfd)
    finally:
        os.close(home)


def _ip_batch(lines: list[str], *, netns_path: str | None = None, check: bool = True) -> None:
    """Run ``ip -batch -`` (``-force``: go on after an error), optionally from another netns."""
    if not lines:
        return
    cmd = ["ip", "-force", "-batch", "-"]
    if netns_path is not None:
        cmd = ["nsenter", f"--net={netns_path}", *cmd]
    proc = subprocess.run(cmd, input="\n".join(lines) + "\n", text=True, capture_output=True)
    if check and proc.returncode != 0:
        raise FarmError(f"{' '.join(cmd)} failed: {proc.stderr.strip()[:500]}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(netns_dir: str = NETNS_DIR) -> list[str]:
    """Delete ``xtcpbench-<pid>-*`` namespaces whose creating process is gone."""
    try:
        names = os.listdir(netns_dir)
    except FileNotFoundError:
        return []
    stale = [n for n in names if (m := _PREFIX_RE.match(n)) and not _pid_alive(int(m.group(1)))]
    _ip_batch([f"netns del {n}" for n in sorted(stale)], check=False)
    return stale


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen
    addr: str
    shards: list[dict] = field(default_factory=list)
    fds: int = 0

    def call(self, cmd: dict, timeout: float = 300.0) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.reply(timeout)

    def send(self, cmd: dict) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def reply(self, timeout: float = 300.0) -> dict:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise FarmError(f"farm worker {self.index} did not answer within {timeout:g} s")
        line = self.proc.stdout.readline()
        if not line:
            raise FarmError(f"farm worker {self.index} exited (code {self.proc.poll()})")
        answer = json.loads(line)
        if not answer.get("ok"):
            raise FarmError(f"farm worker {self.index}: {answer.get('error')}")
        return answer


class SocketFarm:
    """N established TCP connections over M namespaces, held by worker processes.

    Args:
        connections: established connections in total (2 sockets each; plus one listener per
            worker and namespace).
        namespaces: how many namespaces share them (evenly; the first get one more).
        private_ehash: create the namespaces with their own TCP hash table (see module doc).
        ehash_entries: buckets of that table (default: the next power of two >= 2x the
            sockets per namespace, at least 1024).
        active_fraction: share of connections that exchange a small message every
            ``active_interval`` seconds.
        prefix: namespace name prefix (default ``xtcpbench-<pid>-<n>-``; ``sweep_stale`` relies
            on the pid).
        max_fds_per_worker: fds one worker may hold.

    Raises:
        FarmError: from ``start()`` (or ``with``) when something cannot be built; everything
        made so far is removed first.
    """

    _count = 0

    def __init__(self, connections: int, namespaces: int = 1, *, private_ehash: bool = False,
                 ehash_entries: int | None = None, active_fraction: float = 0.0,
                 active_interval: float = 1.0, prefix: str | None = None,
                 max_fds_per_worker: int = DEFAULT_MAX_FDS, port: int = DEFAULT_PORT,
                 log=None):
        if connections < 0 or namespaces < 1:
            raise ValueError("connections >= 0 and namespaces >= 1")
        if not 0.0 <= active_fraction <= 1.0:
            raise ValueError("active_fraction is a share: 0..1")
        SocketFarm._count += 1
        self.connections = connections
        self.namespace_count = namespaces
        self.private_ehash = private_ehash
        per_ns = -(-2 * connections // namespaces)
        self.ehash_entries = ehash_entries or max(1024, 1 << max(0, (2 * per_ns - 1).bit_length()))
        self.active_fraction = active_fraction
        self.active_interval = active_interval
        self.prefix = prefix or f"xtcpbench-{os.getpid()}-{SocketFarm._count}-"
        self.capacity = max(1, (max_fds_per_worker - 64) // 2)  # connections per worker
        self.port = port
        self.log = log or (lambda msg: None)
        self.names: list[str] = []  # namespaces with sockets, in creation order
        self.parent: str | None = None  # the private-hash parent namespace, if any
        self.ehash: dict[str, int] = {}  # name -> net.ipv4.tcp_ehash_entries seen inside
        self.sockets = 0  # sockets opened (both ends, listeners included)
        self.build_seconds = 0.0
        self._workers: list[_Worker] = []
        self._made: set[str] = set()  # every namespace this farm created and must delete
        self._next_ns = 0
        self._lock = threading.RLock()
        self._started = self._closed = False
        self._old_sigterm = None

    # --- public --------------------------------------------------------------------------

    @property
    def glob(self) -> str:
        """Selection pattern of the farm's socket namespaces (not the private-hash parent)."""
        return f"{self.prefix}n*"

    @property
    def paths(self) -> list[str]:
        return [f"{NETNS_DIR}/{n}" for n in self.names]

    def __enter__(self) -> SocketFarm:
        if threading.current_thread() is threading.main_thread():
            self._old_sigterm = signal.signal(signal.SIGTERM, _sigterm_to_exit)
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Create the namespaces, start workers, open every connection (blocking)."""
        if self._started:
            return
        self._started = True
        atexit.register(self.close)
        t0 = time.monotonic()
        sweep_stale()
        if self.private_ehash:
            self.parent = f"{self.prefix}parent"
            self._made.add(self.parent)
            _ip_batch([f"netns add {self.parent}"])
            subprocess.run(["nsenter", f"--net={NETNS_DIR}/{self.parent}", "sysctl", "-q", "-w",
                            f"net.ipv4.tcp_child_ehash_entries={self.ehash_entries}"],
                           check=True, capture_output=True)
        per_ns = [self.connections // self.namespace_count + (i < self.connections % self.namespace_count)
                  for i in range(self.namespace_count)]
        names = self._create_namespaces(self.namespace_count)
        self.log(f"farm: {len(names)} namespaces in {time.monotonic() - t0:.1f} s"
                 f"{' (private TCP hash)' if self.private_ehash else ''}")
        # Pack (namespace, connections) into workers of at most `capacity` connections.
        plan: list[list[dict]] = [[]]
        room = self.capacity
        for name, conns in zip(names, per_ns):
            while True:
                take = min(conns, room)
                if take or conns == 0:
                    plan[-1].append({"ns": name, "path": f"{NETNS_DIR}/{name}", "conns": take})
                conns -= take
                room -= take
                if room == 0:
                    plan.append([])
                    room = self.capacity
                if conns == 0:
                    break
        plan = [p for p in plan if p]
        for shards in plan:
            w = self._spawn_worker()
            for s in shards:
                s["addr"], s["port"] = w.addr, self.port
            w.shards = shards
        for w, shards in zip(self._workers, plan):  # all build in parallel
            w.send(self._add_cmd(shards))
        for w in self._workers:
            self._absorb(w.reply())
        self.names = names
        self.build_seconds = time.monotonic() - t0
        self.log(f"farm: {self.sockets} sockets in {len(names)} namespaces by {len(self._workers)} workers "
                 f"in {self.build_seconds:.1f} s")

    def add_namespace(self, connections: int) -> str:
        """One more namespace with ``connections`` connections, held by a churn worker."""
        with self._lock:
            if self._closed:
                raise FarmError("farm is closed")
            if connections > self.capacity:
                raise ValueError(f"at most {self.capacity} connections per added namespace")
            name = self._create_namespaces(1)[0]
            w = self._churn_worker(connections)
            shard = {"ns": name, "path": f"{NETNS_DIR}/{name}", "conns": connections,
                     "addr": w.addr, "port": self.port}
            w.shards.append(shard)
            self._absorb(w.call(self._add_cmd([shard])))
            self.names.append(name)
            return name

    def remove_namespace(self, name: str) -> None:
        """Close that namespace's sockets (in whichever worker holds them) and delete it."""
        with self._lock:
            for w in self._workers:
                if any(s["ns"] == name for s in w.shards):
                    w.call({"op": "drop", "ns": [name]})
                    w.fds -= sum(2 * s["conns"] for s in w.shards if s["ns"] == name)
                    w.shards = [s for s in w.shards if s["ns"] != name]
            _ip_batch([f"netns del {name}"], check=False)
            self._made.discard(name)
            if name in self.names:
                self.names.remove(name)
            self.ehash.pop(name, None)

    def close(self) -> None:
        """Stop workers, delete every namespace made. Idempotent; safe after a failed start."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for w in self._workers:
            try:
                if w.proc.poll() is None:
                    w.send({"op": "quit"})
                w.proc.stdin.close()
            except (BrokenPipeError, OSError, ValueError):
                pass
        for w in self._workers:
            try:
                w.proc.wait(30)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
            w.proc.stdout.close()
        self._workers.clear()
        children = sorted(self._made - {self.parent})
        _ip_batch([f"netns del {n}" for n in children], check=False)
        if self.parent:
            _ip_batch([f"netns del {self.parent}"], check=False)
        self._made.clear()
        self.names = []
        atexit.unregister(self.close)
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None

    # --- internals -----------------------------------------------------------------------

    def _create_namespaces(self, n: int) -> list[str]:
        names = [f"{self.prefix}n{self._next_ns + i}" for i in range(n)]
        self._next_ns += n
        self._made.update(names)
        parent = f"{NETNS_DIR}/{self.parent}" if self.parent else None
        _ip_batch([f"netns add {name}" for name in names], netns_path=parent)
        return names

    def _spawn_worker(self) -> _Worker:
        i = len(self._workers)
        addr = f"127.1.{i // 250}.{i % 250 + 1}"
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                start_new_session=True)
        w = _Worker(i, proc, addr)
        self._workers.append(w)
        return w

    def _churn_worker(self, connections: int) -> _Worker:
        """The last worker, if it has room (namespaces added later go there), else a new one."""
        if self._workers:
            w = self._workers[-1]
            held = sum(s["conns"] for s in w.shards)
            if held + connections <= self.capacity:
                return w
        return self._spawn_worker()

    def _add_cmd(self, shards: list[dict]) -> dict:
        cleanup = sorted(self._made - {self.parent}) + ([self.parent] if self.parent else [])
        return {"op": "add", "shards": shards, "active_fraction": self.active_fraction,
                "active_interval": self.active_interval, "cleanup": cleanup}

    def _absorb(self, answer: dict) -> None:
        self.sockets += answer["sockets"]
        self.ehash.update(answer["ehash"])


def _sigterm_to_exit(signum, frame):
    raise SystemExit(128 + signum)


# --- the worker process ------------------------------------------------------------------

_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = struct.Struct("16sH22x")
_NS_SYSCTLS = {  # per-namespace values that let one namespace hold 50k+ connections quickly
    "net/ipv4/ip_local_port_range": "1024 65000",
    "net/core/somaxconn": "65535",
    "net/ipv4/tcp_max_syn_backlog": "65535",
}


class _WorkerState:
    def __init__(self):
        self.socks: dict[str, list[socket.socket]] = {}  # namespace -> every socket opened there
        self.pairs: dict[str, list[tuple[socket.socket, socket.socket]]] = {}  # active (client, server)
        self.cleanup: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.interval = 1.0
        self.traffic: threading.Thread | None = None

    def handle(self, cmd: dict) -> dict:
        op = cmd.get("op")
        if op == "add":
            return self.add(cmd)
        if op == "loopback":
            return self.loopback(cmd)
        if op == "drop":
            self.drop(cmd["ns"])
            return {"ok": True}
        if op == "quit":
            return {"ok": True}
        return {"ok": False, "error": f"unknown op {op!r}"}

    def add(self, cmd: dict) -> dict:
        t0 = time.monotonic()
        self.cleanup = cmd.get("cleanup", self.cleanup)
        self.interval = cmd.get("active_interval", 1.0)
        fraction = cmd.get("active_fraction", 0.0)
        opened, ehash = 0, {}
        for shard in cmd["shards"]:
            with entered(shard["path"]):
                lo_up()
                for key, value in _NS_SYSCTLS.items():
                    _write_sysctl(key, value)
                ehash[shard["ns"]] = int(_read_sysctl("net/ipv4/tcp_ehash_entries") or 0)
                socks, pairs = _connect_many(shard["addr"], shard["port"], shard["conns"])
            n_active = round(fraction * len(pairs))
            with self.lock:
                self.socks.setdefault(shard["ns"], []).extend(socks)
                self.pairs.setdefault(shard["ns"], []).extend(pairs[:n_active])
            opened += len(socks)
        if fraction > 0 and self.traffic is None:
            self.traffic = threading.Thread(target=self.run_traffic, daemon=True)
            self.traffic.start()
        return {"ok": True, "sockets": opened, "ehash": ehash, "seconds": time.monotonic() - t0}

    def loopback(self, cmd: dict) -> dict:
        """A listener, a client and the accepted end on 127.0.0.1 and ::1 (blocking sockets)."""
        socks: list[socket.socket] = []
        info: list[dict] = []
        try:
            with entered(cmd["path"]):
                lo_up()
                for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
                    lst = socket.socket(family, socket.SOCK_STREAM)
                    socks.append(lst)
                    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    lst.bind((addr, cmd["port"]))
                    lst.listen(8)
                    cli = socket.create_connection((addr, cmd["port"]))
                    socks.append(cli)
                    srv, _ = lst.accept()
                    socks.append(srv)
                    info += [_describe(lst, _TCP_LISTEN), _describe(cli, _TCP_ESTABLISHED),
                             _describe(srv, _TCP_ESTABLISHED)]
        except BaseException:
            for s in socks:
                s.close()
            raise
        with self.lock:
            self.socks.setdefault(cmd["ns"], []).extend(socks)
        return {"ok": True, "sockets": info}

    def drop(self, names: list[str]) -> None:
        with self.lock:
            for name in names:
                self.pairs.pop(name, None)
                for s in self.socks.pop(name, []):
                    s.close()
        self.cleanup = [n for n in self.cleanup if n not in names]

    def run_traffic(self) -> None:
        """Request/reply of a few hundred bytes on each active pair, every ``interval``."""
        request, reply = b"q" * 200, b"r" * 600
        while not self.stop.is_set():
            t0 = time.monotonic()
            with self.lock:
                pairs = [p for ps in self.pairs.values() for p in ps]
            for client, server in pairs:
                try:
                    client.send(request)
                    server.recv(65536)
                    server.send(reply)
                    client.recv(65536)
                except (BlockingIOError, InterruptedError):
                    pass  # loopback delivered late: the next round drains it
                except OSError:
                    pass  # closed by a drop meanwhile
            self.stop.wait(max(0.0, self.interval - (time.monotonic() - t0)))

    def teardown(self, parent_gone: bool) -> None:
        self.stop.set()
        if parent_gone and self.cleanup:
            # The parent died without closing the farm: delete what it told us about.
            _ip_batch([f"netns del {n}" for n in self.cleanup], check=False)


_TCP_ESTABLISHED, _TCP_LISTEN = 1, 10


def _describe(s: socket.socket, state: int) -> dict:
    dport = s.getpeername()[1] if state == _TCP_ESTABLISHED else 0
    return {"family": int(s.family), "state": state, "inode": os.fstat(s.fileno()).st_ino,
            "sport": s.getsockname()[1], "dport": dport}


def lo_up() -> None:
    """Bring ``lo`` up in this thread's namespace (new namespaces start with it down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = _IFREQ.unpack(fcntl.ioctl(s, _SIOCGIFFLAGS, _IFREQ.pack(b"lo", 0)))[1]
        if not flags & _IFF_UP:
            fcntl.ioctl(s, _SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | _IFF_UP))


def _write_sysctl(key: str, value: str) -> None:
    try:
        with open(f"/proc/sys/{key}", "w") as f:
            f.write(value)
    except OSError:
        pass  # not writable here: the defaults are slower, not wrong


def _read_sysctl(key: str) -> str:
    try:
        with open(f"/proc/sys/{key}") as f:
            return f.read().strip()
    except OSError:
        return ""


def _connect_many(addr: str, port: int, conns: int):
    """``conns`` established connections to listeners on ``addr``; returns (sockets, pairs)."""
    socks: list[socket.socket] = []
    pairs: list[tuple[socket.socket, socket.socket]] = []
    if conns <= 0:
        return socks, pairs
    n_listeners = -(-conns // PER_LISTENER)
    for k in range(n_listeners):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((addr, port + k))
        ls.listen(65535)
        socks.append(ls)
        todo = min(PER_LISTENER, conns - k * PER_LISTENER)
        while todo > 0:
            batch = min(CONNECT_BATCH, todo)
            clients = []
            for _ in range(batch):
                c = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
                err = c.connect_ex((addr, port + k))
                if err not in (0, errno.EINPROGRESS):
                    c.close()
                    raise OSError(err, f"connect to {addr}:{port + k}: {os.strerror(err)}")
                clients.append(c)
            servers = []
            deadline = time.monotonic() + 30
            while len(servers) < batch:
                try:
                    s, _ = ls.accept()
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"only {len(servers)} of {batch} connections accepted in 30 s")
                    select.select([ls], [], [], 1.0)
                    continue
                s.setblocking(False)
                servers.append(s)
            # Accept order follows the handshakes, which follow the connects on loopback; pairs
            # are only used for traffic, where a mismatch would merely leave bytes unread.
            socks.extend(clients)
            socks.extend(servers)
            pairs.extend(zip(clients, servers))
            todo -= batch
    return socks, pairs


def _worker_main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and tells us
    signal.signal(signal.SIGTERM, _sigterm_to_exit)
    parent = os.getppid()
    state = _WorkerState()
    parent_gone = True  # EOF without "quit": the parent died (its end of our stdin closed)
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            try:
                answer = state.handle(cmd)
            except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises FarmError
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
            if cmd.get("op") == "quit":
                parent_gone = False
                break
    except (SystemExit, BrokenPipeError):
        parent_gone = os.getppid() != parent  # SIGTERM to us alone must not delete the farm
    finally:
        state.teardown(parent_gone)
    os._exit(0)  # the kernel closes every socket at once, faster than 9,000 close() calls


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        sys.exit(_worker_main())
    print("usage: farm.py --worker (started by SocketFarm)", file=sys.stderr)
    sys.exit(2)
