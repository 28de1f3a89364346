"""`--format table|csv` and `--fields` on a golden capture, checked against what `ss` printed from
the same dump (the oracle in ss_text.py), plus one live `--once` on a socket we open."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import socket
import subprocess
import sys

import pytest

from tests.golden import cases
from tests.golden.ss_text import parse_ss_file
from xtcp_uring.tables import human_bytes

DATA = cases.testdata_root() / "6_8_12"
PCAP = DATA / "6_8_12_tcp_10_sockets.pcap"
SS_TEXT = DATA / "6_8_12_ss_tcp_info_a_10"


def xtcp(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xtcp_uring", *args], capture_output=True, text=True, timeout=120,
                          env=env)


def _ss_by_endpoints() -> dict:
    out = {}
    for s in parse_ss_file(str(SS_TEXT)):
        # ss writes a dual-stack wildcard as * and an unconnected peer as *: we print :: and 0.0.0.0/::.
        local = "::" if s["local_addr"] == "*" else s["local_addr"].strip("[]")
        peer = s["peer_addr"].strip("[]")
        if peer in ("*", "0"):
            peer = "::" if ":" in local else "0.0.0.0"
        out[(local, s["local_port"], peer, s["peer_port"] if s["peer_port"] != "*" else 0)] = s
    return out


def _endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def test_table_is_aligned_with_units_and_agrees_with_ss():
    fields = "state,local,peer,rtt,rttvar,cwnd,bytes_acked,bytes_received,delivery_rate"
    r = xtcp("decode", str(PCAP), "--format", "table", "--fields", fields)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    header = lines[0].split()
    assert header == ["state", "local", "peer", "rtt(ms)", "rttvar(ms)", "cwnd", "bytes_acked", "bytes_received",
                      "delivery_rate(Mbit/s)"]
    # Aligned like ss: every right-aligned (numeric) column ends at the same character in every line.
    ends = [lines[0].index(h) + len(h) for h in header[3:]]
    for line in lines[1:]:
        for end in ends:
            assert line[end - 1] != " " and (end == len(line) or line[end] == " "), line
    oracle = _ss_by_endpoints()
    assert len(lines) - 1 == len(oracle) == 33
    for line in lines[1:]:
        state, local, peer, rtt, rttvar, cwnd, acked, received, rate = line.split()
        ss = oracle[(*_endpoint(local), *_endpoint(peer))]
        assert state == ss["state"]
        assert float(rtt) == pytest.approx(ss.get("rtt", 0), abs=0.0005)
        assert float(rttvar) == pytest.approx(ss.get("rttvar", 0), abs=0.0005)
        assert int(cwnd) == ss["cwnd"]
        assert acked == human_bytes(ss.get("bytes_acked", 0))
        assert received == human_bytes(ss.get("bytes_received", 0))
        assert float(rate) == pytest.approx(ss.get("delivery_rate_bps", 0) / 1e6, abs=0.005)


def test_csv_and_jsonl_keep_raw_units_and_only_the_fields_asked_for():
    r = xtcp("decode", str(PCAP), "--format", "csv", "--fields", "local,peer,rtt,retrans,bytes_acked")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == ["local", "peer", "rtt", "retrans", "bytes_acked"]
    oracle = _ss_by_endpoints()
    for row in rows:
        ss = oracle[(*_endpoint(row["local"]), *_endpoint(row["peer"]))]
        assert int(row["rtt"]) == round(ss.get("rtt", 0) * 1000)  # microseconds
        assert int(row["bytes_acked"]) == ss.get("bytes_acked", 0)  # bytes
    r = xtcp("decode", str(PCAP), "--format", "jsonl", "--fields", "rtt,cwnd,tcp_info_min_rtt,netns")
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(objs) == 33 and all(list(o) == ["rtt", "cwnd", "tcp_info_min_rtt", "netns"] for o in objs)
    assert {o["netns"] for o in objs} == {str(PCAP)}


@pytest.mark.parametrize("args", [("--fields", "rtt,nosuch"), ("--fields", "rtt", "--format", "pb")])
def test_a_bad_fields_list_is_one_line_and_exit_64(args):
    r = xtcp("decode", str(PCAP), *args)
    assert r.returncode == 64 and "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    if "nosuch" in args:
        assert r.stderr.startswith("xtcp_uring: --fields: unknown nosuch; short names: state,local,peer,")
        assert ",rtt,rttvar," in r.stderr and ",bytes_acked," in r.stderr
    r = xtcp("--once", "--namespaces", "host", *args)  # refused before polling, the same way
    assert r.returncode == 64 and r.stdout == "", r.stderr


def test_live_once_table_shows_our_listener_and_connection():
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    cli = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    try:
        cli.sendall(b"x" * 5000)
        conn.recv(10000)
        r = xtcp("--once", "--namespaces", "host", "--format", "table", "--fields", "state,local,peer,rtt,cwnd,retrans",
                 "--filter", f"sport {port} or dport {port}")
    finally:
        for s in (cli, conn, srv):
            s.close()
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()]
    assert rows[0] == ["state", "local", "peer", "rtt(ms)", "cwnd", "retrans"]
    by_local = {row[1]: row for row in rows[1:]}
    assert by_local[f"127.0.0.1:{port}"][0] in ("LISTEN", "ESTAB")
    client = next(row for row in rows[1:] if row[2] == f"127.0.0.1:{port}")
    assert client[0] == "ESTAB" and float(client[3]) > 0 and int(client[4]) > 0


def test_terminal_gets_a_table_and_a_pipe_gets_jsonl():
    piped = xtcp("decode", str(PCAP))
    assert json.loads(piped.stdout.splitlines()[0])["inet_diag_msg_state"] == 10
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdout is a terminal
        os.execv(sys.executable, [sys.executable, "-m", "xtcp_uring", "decode", str(PCAP)])
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.waitpid(pid, 0)
    first = b"".join(chunks).decode().splitlines()[0].split()
    assert first[:5] == ["state", "recvq", "sendq", "local", "peer"] and "rtt(ms)" in first
