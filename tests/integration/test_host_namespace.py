"""Which namespace is ``host`` and how namespaces without a bind mount keep their names
(xtcp_uring/enrich/host.py), with real namespaces and a daemon run inside one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from xtcp_uring.enrich.host import StableNames, find_host_namespace
from xtcp_uring.namespaces import HOST_NAME, NamespaceManager

pytestmark = pytest.mark.root


def _key(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def initial_namespace() -> tuple[int, int]:
    """kthreadd (pid 2) and its kernel threads live in the initial network namespace for life."""
    return _key("/proc/2/ns/net")


def test_host_is_the_initial_namespace_by_pid_1_or_the_lowest_readable_pid():
    host = find_host_namespace()
    assert host.key == initial_namespace()
    try:
        os.stat("/proc/1/ns/net")
    except PermissionError:
        # This machine: pid 1 belongs to the sandbox, unreadable even by root; pid 2 stands in.
        assert (host.rule, host.pid, host.path) == ("lowest-pid", 2, "/proc/2/ns/net")
    else:
        assert (host.rule, host.pid) == ("init", 1)


def test_lowest_readable_pid_and_own_namespace_fallbacks(tmp_path):
    # A stand-in /proc where pid 1 cannot be resolved: pid 5 is the lowest that can.
    own = _key("/proc/self/ns/net")
    for pid, target in (("1", "/nonexistent/ns"), ("9", "/proc/2/ns/net"), ("5", "/proc/self/ns/net")):
        (tmp_path / pid / "ns").mkdir(parents=True)
        os.symlink(target, tmp_path / pid / "ns" / "net")
    (tmp_path / "self").symlink_to("/proc/self")
    host = find_host_namespace(str(tmp_path), may_read_others=True)
    assert (host.rule, host.pid, host.key) == ("lowest-pid", 5, own)
    # Without CAP_SYS_PTRACE only our own user's pids are readable, in any namespace: our own.
    host = find_host_namespace(str(tmp_path), may_read_others=False)
    assert (host.rule, host.pid, host.key) == ("self", 0, own)
    # Nothing readable at all: our own namespace.
    for pid in ("5", "9"):
        os.unlink(tmp_path / pid / "ns" / "net")
    host = find_host_namespace(str(tmp_path), may_read_others=True)
    assert (host.rule, host.pid, host.key) == ("self", 0, own)


def test_stable_names_never_name_two_live_namespaces_alike():
    names = StableNames()
    assert names.name("a", 100, [30, 12]) == "pid:12"
    assert names.name("a", 100, [30]) == "pid:12"  # pid 12 exited: the name stays
    # pid 12 reused by a process of a new namespace while "a" lives: the next pid, else the inode
    assert names.name("b", 200, [12, 40]) == "pid:40"
    assert names.name("c", 300, [12]) == "inode:300"
    names.prune({"b", "c"})  # "a" is gone: its name is free again
    assert names.name("d", 400, [12]) == "pid:12"
    assert len(names) == 3


def _wait_in_other_namespace(pid: int, own: str) -> None:
    deadline = time.monotonic() + 10
    while os.readlink(f"/proc/{pid}/ns/net") == own:
        assert time.monotonic() < deadline, "unshare --net did not enter a new namespace"
        time.sleep(0.005)


def test_pid_name_outlives_its_pid_while_the_namespace_lives():
    own = os.readlink("/proc/self/ns/net")
    first = subprocess.Popen(["unshare", "--net", "sleep", "infinity"], start_new_session=True)
    second = None
    try:
        _wait_in_other_namespace(first.pid, own)
        inode = os.stat(f"/proc/{first.pid}/ns/net").st_ino
        second = subprocess.Popen(["nsenter", "-t", str(first.pid), "-n", "sleep", "infinity"],
                                  start_new_session=True)
        _wait_in_other_namespace(second.pid, own)
        name = f"pid:{first.pid}"
        with NamespaceManager(name, task_scan_interval=None) as m:
            m.reconcile_blocking()
            (ns,) = m.namespaces
            assert (ns.name, ns.inode, ns.pid) == (name, inode, first.pid)
            assert set(ns.pids) == {first.pid, second.pid}  # every process, for the enricher
            first.kill()
            first.wait()
            m.reconcile_blocking()
            (ns,) = m.namespaces
            assert (ns.name, ns.inode, ns.pid, ns.pids) == (name, inode, second.pid, (second.pid,))
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def test_daemon_inside_a_namespace_calls_the_initial_one_host(netns_farm):
    """As a DaemonSet pod without hostNetwork, or `ip netns exec`: /proc is the host's."""
    (name,) = netns_farm.add(1)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        r = subprocess.run(["ip", "netns", "exec", name, sys.executable, "-m", "xtcp_uring", "--once",
                            "--namespaces", f"host,{name}", "--format", "jsonl", "--uring", "off"],
                           capture_output=True, text=True, timeout=120)
    finally:
        listener.close()
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    by_ns = {}
    for row in rows:
        by_ns.setdefault(row["netns"], []).append(row)
    assert set(by_ns) == {HOST_NAME, name}
    # "host" is the initial namespace (where this test's listener is), not the daemon's own
    assert {row["netns_inode"] for row in by_ns[HOST_NAME]} == {initial_namespace()[1]}
    assert any(row["inet_diag_msg_socket_source_port"] == port for row in by_ns[HOST_NAME])
    # the daemon's own namespace is named like any other: by its bind mount
    farm_ns = netns_farm.namespaces[name]
    assert {row["netns_inode"] for row in by_ns[name]} == {farm_ns.inode}
    assert {row["inet_diag_msg_inode"] for row in by_ns[name]} == farm_ns.inodes()
