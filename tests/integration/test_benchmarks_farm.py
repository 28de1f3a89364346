"""The benchmark socket farm, for real: namespaces, connections, teardown (root only)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # benchmarks/ is not an installed package

from benchmarks.farm import NETNS_DIR, SocketFarm  # noqa: E402

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces"),
]


def _established(name: str) -> int:
    out = subprocess.run(["ip", "netns", "exec", name, "ss", "-Htn", "state", "established"],
                         check=True, capture_output=True, text=True).stdout
    return len(out.splitlines())


def _farm_namespaces(prefix: str) -> list[str]:
    return [n for n in os.listdir(NETNS_DIR) if n.startswith(prefix)] if os.path.isdir(NETNS_DIR) else []


def _wait_gone(prefix: str, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := _farm_namespaces(prefix)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.mark.parametrize("private", [False, True], ids=["shared-ehash", "private-ehash"])
def test_farm_builds_connections_and_removes_everything(private):
    prefix = f"xtcpbench-{os.getpid()}-test{int(private)}-"
    with SocketFarm(connections=40, namespaces=2, private_ehash=private, active_fraction=0.5,
                    prefix=prefix) as farm:
        assert len(farm.names) == 2
        assert [os.path.exists(p) for p in farm.paths] == [True, True]
        for name in farm.names:
            assert _established(name) == 40  # 20 connections, both ends, in this namespace
        assert farm.sockets == 2 * 40 + 2  # and one listener per namespace
        if private:
            assert farm.parent and os.path.exists(f"{NETNS_DIR}/{farm.parent}")
            assert all(v > 0 for v in farm.ehash.values()), farm.ehash  # own hash table
        else:
            assert all(v < 0 for v in farm.ehash.values()), farm.ehash  # the host's table
        workers = [w.proc for w in farm._workers]
    assert _farm_namespaces(prefix) == []
    assert all(p.poll() is not None for p in workers)


def test_farm_adds_and_removes_namespaces():
    prefix = f"xtcpbench-{os.getpid()}-churn-"
    with SocketFarm(connections=10, namespaces=1, prefix=prefix) as farm:
        name = farm.add_namespace(5)
        assert _established(name) == 10
        farm.remove_namespace(name)
        assert not os.path.exists(f"{NETNS_DIR}/{name}")
        assert farm.names == [f"{prefix}n0"]
    assert _farm_namespaces(prefix) == []


def test_workers_remove_the_farm_when_its_parent_is_killed(tmp_path):
    prefix = f"xtcpbench-{os.getpid()}-orphan-"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from benchmarks.farm import SocketFarm
        farm = SocketFarm(connections=20, namespaces=2, private_ehash=True, prefix={prefix!r})
        farm.start()
        print("ready", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert len(_farm_namespaces(prefix)) == 3  # two children and the private-hash parent
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _wait_gone(prefix) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        subprocess.run(["ip", "-force", "-batch", "-"], text=True, capture_output=True,
                       input="".join(f"netns del {n}\n" for n in _farm_namespaces(prefix)))
