"""The daemon as users run it: a subprocess, real namespaces, the embedded store, signals."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.root

POLL_LINE = re.compile(r"poll (\d+): (\d+) namespaces, (\d+) sockets")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self, *args: str, **popen):
        self.proc = subprocess.Popen([sys.executable, "-m", "xtcp_uring", *args], stderr=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, **popen)
        self.lines: list[str] = []

    def wait_for_polls(self, n: int, timeout: float = 60) -> list[tuple[int, int, int]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            polls = self.polls()
            if len(polls) >= n:
                return polls
        raise AssertionError("daemon did not poll:\n" + "".join(self.lines))

    def polls(self) -> list[tuple[int, int, int]]:
        return [tuple(map(int, m.groups())) for m in map(POLL_LINE.search, self.lines) if m]

    def stop(self, sig=signal.SIGTERM, timeout: float = 60) -> int:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout)
        self.lines += err.splitlines(keepends=True)
        return self.proc.returncode


def query(sql: str, data_dir) -> str:
    return subprocess.run([sys.executable, "-m", "xtcp_uring", "query", sql, "--data-dir", str(data_dir),
                           "--format", "csv"], check=True, capture_output=True, text=True, timeout=120).stdout


def scrape(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text: str, name: str, **labels) -> float:
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
                found = True
    assert found, f"{name}{labels} not exported"
    return total


def test_daemon_polls_namespaces_into_the_store_exports_metrics_and_stops_cleanly(netns_farm, tmp_path):
    names = netns_farm.add(3)
    port = free_port()
    data = tmp_path / "store"
    d = Daemon("--interval", "0.5", "--jitter", "0", "--namespaces", netns_farm.glob, "--data-dir", str(data),
               "--metrics-listen", f"127.0.0.1:{port}")
    try:
        polls = d.wait_for_polls(2)
        assert all(p[1] == len(names) for p in polls)
        status, body = scrape(port, "/metrics")
        assert status == 200
        assert metric(body, "xtcp_polls_total") >= 2
        assert metric(body, "xtcp_poll_duration_seconds_count") >= 2
        assert metric(body, "xtcp_sockets") == polls[-1][2] > 0
        for ns in names:
            assert metric(body, "xtcp_namespace_dump_seconds", netns=ns) > 0
            assert metric(body, "xtcp_namespace_dump_bytes_total", netns=ns) > 0
            assert metric(body, "xtcp_namespace_dump_recvs_total", netns=ns) >= 2  # v4 and v6
        deadline = time.monotonic() + 60  # the first chDB insert of a fresh store takes a while
        while metric(scrape(port, "/metrics")[1], "xtcp_records_published_total", sink=f"chdb://{data}") == 0:
            assert time.monotonic() < deadline, "nothing published to the store"
            time.sleep(0.2)
        assert metric(body, "xtcp_namespaces", state="open") == len(names)
        assert metric(body, "xtcp_namespace_events_total", event="opened") >= len(names)
        assert metric(body, "xtcp_backend_info", backend="io_uring", fallback="false") == 1
        # Exported from the start; its value depends on the machine's load (a tick that finds the
        # last poll still waiting for the consumer is skipped), so no number is asserted.
        assert metric(body, "xtcp_polls_skipped_total") >= 0
        for kind in ("bad_attributes", "short_attributes", "short_messages"):
            assert metric(body, "xtcp_decode_errors_total", kind=kind) == 0
        for reason in ("sender", "seq", "malformed"):
            assert metric(body, "xtcp_netlink_rejected_total", reason=reason) == 0
        assert "# TYPE xtcp_unknown_attributes_total counter" in body
        assert metric(body, "xtcp_records_dropped_total", reason="queue_full") == 0
        assert 0 < metric(body, "xtcp_last_poll_timestamp_seconds") <= time.time()
        assert scrape(port, "/healthz")[0] == 200
        assert scrape(port, "/readyz")[0] == 200
        assert scrape(port, "/nope")[0] == 404
        # The store answers while the daemon holds it (through the daemon's query socket).
        live = int(query("SELECT count() FROM xtcp.xtcp_records", data).splitlines()[1])
        assert live >= polls[0][2]
    finally:
        code = d.stop()
    assert code == 0, "".join(d.lines)
    polled = sum(p[2] for p in d.polls())
    rows = query("SELECT netns, count() FROM xtcp.xtcp_records GROUP BY netns ORDER BY netns", data)
    counts = {line.split(",")[0].strip('"'): int(line.split(",")[1]) for line in rows.splitlines()[1:]}
    assert set(counts) == set(names)
    assert sum(counts.values()) == polled, "every polled record reached the store, none twice"
    # The seeds' query runs unchanged.
    seeds = query("SELECT netns, inet_diag_msg_socket_source_port, tcp_info_rtt, tcp_info_rtt_var, "
                  "tcp_info_min_rtt, tcp_info_rcv_rtt FROM xtcp.xtcp_records ORDER BY timestamp_ns DESC LIMIT 20",
                  data)
    assert len(seeds.splitlines()) == 21


def test_sigterm_during_polls_flushes_what_was_polled_and_exits_0(netns_farm, tmp_path):
    netns_farm.add(20)
    out = tmp_path / "records.pb"
    d = Daemon("--interval", "0.05", "--jitter", "0", "--namespaces", netns_farm.glob, "--sink",
               f"file://{out}", "--metrics-listen", "off")
    d.wait_for_polls(3)
    assert d.stop() == 0, "".join(d.lines)
    from google.protobuf.internal.decoder import _DecodeVarint32

    data, off, n = out.read_bytes(), 0, 0
    while off < len(data):
        size, off = _DecodeVarint32(data, off)
        off += size
        n += 1
    assert n == sum(p[2] for p in d.polls()) > 0


def test_bad_flags_print_one_line_and_no_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "xtcp_uring", "--once", "--filter", "dport banana"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 64
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, "-m", "xtcp_uring", "--sink", "gopher://x", "--max-polls", "1",
                        "--metrics-listen", "off"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 64 and "unknown sink" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "xtcp_uring", "decode", str(tmp_path / "missing.pcap")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 66 and "Traceback" not in r.stderr
