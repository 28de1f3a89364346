"""Test helper: network namespaces holding known TCP sockets, always cleaned up.

``NetnsFarm`` creates namespaces with ``ip netns add`` (names ``xtcptest-<pid>-<n>-<i>``) and
one kind without a bind mount (``unshare --net sleep``, named ``pid:<pid>`` by the manager).
One helper process holds every socket: a worker of the benchmarks' socket farm
(``benchmarks/farm.py``, the one farm of this repository; its ``loopback`` op). For each
namespace it enters it, brings ``lo`` up, opens a listener, a client and the accepted end for
IPv4 and for IPv6, and comes back. A socket stays in the namespace it was opened in, so 200
namespaces cost 1,200 fds in that one process, far under the 20,000 limit, and no process per
namespace. EOF on its stdin ends it (and closes all).

Run as root (namespaces). ``close()`` (or the ``with`` block) deletes everything it made;
``sweep_stale()`` removes namespaces left by test runs whose process died.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

# Run by path, not imported: benchmarks/ is not an installed package, and the worker is a
# process of its own anyway. benchmarks/ does not import tests/: it runs on its own.
FARM_WORKER = Path(__file__).resolve().parents[2] / "benchmarks" / "farm.py"
PORT = 5555  # the same in every namespace: only the namespace tells the sockets apart
TCP_ESTABLISHED, TCP_LISTEN = 1, 10
_counter = itertools.count(1)
_PREFIX_RE = re.compile(r"^xtcptest-(\d+)-")


@dataclass
class FarmNamespace:
    name: str  # what the namespace manager calls it
    path: str  # the namespace file
    inode: int
    sockets: list[dict] = field(default_factory=list)
    holder: subprocess.Popen | None = None  # the unshare process, for namespaces without a mount

    def inodes(self) -> set[int]:
        return {s["inode"] for s in self.sockets}


class NetnsFarm:
    """Namespaces with known sockets. Use as a context manager; ``close()`` is idempotent."""

    def __init__(self, prefix: str | None = None):
        self.prefix = prefix or f"xtcptest-{os.getpid()}-{next(_counter)}-"
        self.namespaces: dict[str, FarmNamespace] = {}
        self._ip_names: set[str] = set()
        self._next = 0
        self._helper: subprocess.Popen | None = None

    def __enter__(self) -> NetnsFarm:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def glob(self) -> str:
        """A namespace selection pattern matching this farm's bind-mounted namespaces."""
        return self.prefix + "*"

    def selection(self) -> list[str]:
        """Patterns matching every namespace of this farm (bind-mounted and unshared)."""
        return [self.glob] + [n for n in self.namespaces if n.startswith("pid:")]

    def add(self, n: int = 1, *, sockets: bool = True) -> list[str]:
        """Create n namespaces with ``ip netns add`` (one ``ip -batch``), each with sockets."""
        names = [f"{self.prefix}{self._next + i}" for i in range(n)]
        self._next += n
        self._ip_names.update(names)
        _ip_batch([f"netns add {name}" for name in names])
        for name in names:
            path = f"/run/netns/{name}"
            self.namespaces[name] = FarmNamespace(name, path, os.stat(path).st_ino)
            if sockets:
                self.namespaces[name].sockets = self._helper_call({"op": "loopback", "ns": name, "path": path, "port": PORT})["sockets"]
        return names

    def add_unshared(self, *, sockets: bool = True) -> str:
        """A namespace held only by a sleeping ``unshare --net`` process (no bind mount)."""
        own = os.readlink("/proc/self/ns/net")
        holder = subprocess.Popen(["unshare", "--net", "sleep", "infinity"], start_new_session=True)
        path = f"/proc/{holder.pid}/ns/net"
        deadline = time.monotonic() + 10
        while True:  # unshare() runs in the child before it execs sleep
            try:
                if os.readlink(path) != own:
                    break
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline or holder.poll() is not None:
                holder.kill()
                raise RuntimeError("unshare --net did not enter a new namespace")
            time.sleep(0.005)
        name = f"pid:{holder.pid}"
        ns = FarmNamespace(name, path, os.stat(path).st_ino, holder=holder)
        self.namespaces[name] = ns
        if sockets:
            ns.sockets = self._helper_call({"op": "loopback", "ns": name, "path": path, "port": PORT})["sockets"]
        return name

    def remove(self, name: str) -> None:
        """Close the namespace's sockets and delete it (unmount, or end its holder)."""
        ns = self.namespaces.pop(name)
        if ns.sockets:
            self._helper_call({"op": "drop", "ns": [name]})
        if ns.holder is not None:
            _end(ns.holder)
        else:
            self._ip_names.discard(name)
            _ip_batch([f"netns del {name}"])

    def expected(self) -> dict[str, set[int]]:
        """Namespace name -> inodes of the sockets opened in it."""
        return {name: ns.inodes() for name, ns in self.namespaces.items()}

    def close(self) -> None:
        if self._helper is not None:
            self._helper.stdin.close()
            try:
                self._helper.wait(10)
            except subprocess.TimeoutExpired:
                self._helper.kill()
                self._helper.wait()
            self._helper.stdout.close()
            self._helper = None
        for ns in self.namespaces.values():
            if ns.holder is not None:
                _end(ns.holder)
        if self._ip_names:
            _ip_batch([f"netns del {n}" for n in sorted(self._ip_names)], check=False)
            self._ip_names.clear()
        self.namespaces.clear()

    def _helper_call(self, cmd: dict) -> dict:
        if self._helper is None:
            self._helper = subprocess.Popen(
                [sys.executable, str(FARM_WORKER), "--worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            )
        self._helper.stdin.write(json.dumps(cmd) + "\n")
        self._helper.stdin.flush()
        line = self._helper.stdout.readline()
        if not line:
            raise RuntimeError(f"netns farm helper died (exit {self._helper.poll()})")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"netns farm helper: {reply.get('error')}")
        return reply


# A process one of whose threads sits in a new network namespace (no process, no bind mount:
# only the task scan finds it). Prints "ready" once there.
THREAD_IN_NEW_NETNS = textwrap.dedent("""
    import ctypes, sys, threading, time
    libc = ctypes.CDLL(None, use_errno=True)
    ready = threading.Event()
    def worker():
        assert libc.unshare(0x40000000) == 0, ctypes.get_errno()  # CLONE_NEWNET, this thread only
        ready.set()
        time.sleep(3600)
    threading.Thread(target=worker, daemon=True).start()
    ready.wait()
    print("ready", flush=True)
    time.sleep(3600)
""")


def open_fds() -> int:
    """Number of fds this process has open (for leak checks)."""
    return len(os.listdir("/proc/self/fd"))


def unprivileged(*argv: str) -> list[str]:
    """The command line running argv as nobody (65534) with every capability dropped (needs root)."""
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", *argv]


def run_unprivileged(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -c script args`` as nobody (65534) with every capability dropped (needs root)."""
    cmd = unprivileged(sys.executable, "-c", script, *args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/")


def sweep_stale() -> list[str]:
    """Delete ``xtcptest-<pid>-…`` namespaces whose creating test process is gone."""
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return []
    stale = [n for n in names if (m := _PREFIX_RE.match(n)) and not os.path.exists(f"/proc/{m.group(1)}")]
    if stale:
        _ip_batch([f"netns del {n}" for n in stale], check=False)
    return stale


def _ip_batch(lines: list[str], check: bool = True) -> None:
    args = ["ip", "-batch", "-"] if check else ["ip", "-force", "-batch", "-"]
    proc = subprocess.run(args, input="\n".join(lines) + "\n", text=True, capture_output=True)
    if check and proc.returncode:
        raise RuntimeError(f"ip -batch failed: {proc.stderr.strip()}")


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


if __name__ == "__main__":  # pragma: no cover
    with NetnsFarm() as farm:
        farm.add(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
        farm.add_unshared()
        print(json.dumps({n: sorted(ns.inodes()) for n, ns in farm.namespaces.items()}, indent=1))
