"""Test helper: a real daemon with ``--ui-listen`` polling a socket farm with busy connections.

Two farm namespaces: ``busy`` runs ``view_traffic.py`` with 3 connections per destination
(CUBIC and BBR to three IPv4 /24s and ::1), ``quiet`` with 1; both also hold the farm's own
idle sockets. The daemon polls every second into a fresh embedded store; ``LiveView.url`` is
its dashboard. ``wait_until_polled`` waits for enough polls to fill every chart.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from netns_farm import NetnsFarm

TRAFFIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "view_traffic.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@dataclass
class LiveView:
    url: str
    busy: str  # namespace names
    quiet: str
    daemon: subprocess.Popen
    data_dir: str

    def wait_until_polled(self, polls: int = 4, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, doc = get(self.url + "api/chart/states?range=5m")
            if status == 200 and len(doc["t"]) >= polls:
                status, doc = get(self.url + "api/chart/cc?range=5m")
                if status == 200 and doc["rows"]:
                    return
            time.sleep(1)
        raise AssertionError(f"the daemon did not fill the store within {timeout} s")


class ViewDaemon:
    """Context manager: farm, traffic, daemon; everything stopped and removed on exit."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.farm = NetnsFarm()
        self.traffic: list[subprocess.Popen] = []
        self.daemon = None

    def __enter__(self) -> LiveView:
        try:
            busy, quiet = self.farm.add(2)
            for name, n in ((busy, 3), (quiet, 1)):
                p = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, TRAFFIC, str(n)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                self.traffic.append(p)
                assert p.stdout.readline().strip() == "ready", f"traffic in {name} did not start"
            port = free_port()
            data_dir = str(self.tmp_path / "store")
            self.daemon = subprocess.Popen(
                [sys.executable, "-m", "xtcp_uring", "--namespaces", self.farm.glob, "--interval", "1",
                 "--jitter", "0", "--data-dir", data_dir, "--metrics-listen", "off",
                 "--ui-listen", f"127.0.0.1:{port}"], stderr=open(self.tmp_path / "daemon.log", "w"))
            url = f"http://127.0.0.1:{port}/"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    urllib.request.urlopen(url + "api/charts", timeout=5).close()
                    break
                except OSError:
                    assert self.daemon.poll() is None, (self.tmp_path / "daemon.log").read_text()
                    time.sleep(0.3)
            return LiveView(url, busy, quiet, self.daemon, data_dir)
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *exc) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(60)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        for p in self.traffic:
            p.stdin.close()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.farm.close()
