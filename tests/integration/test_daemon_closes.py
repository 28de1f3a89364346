"""The daemon on its defaults records every connection closed between two polls, once."""

from __future__ import annotations

import time

import pytest

from test_daemon import Daemon, free_port, scrape
from test_close_events import churn

pytestmark = pytest.mark.root


def _records(path):
    from google.protobuf.internal.decoder import _DecodeVarint32

    from xtcp_uring import schema

    record_cls, _ = schema.message_classes()
    data, off = path.read_bytes(), 0
    while off < len(data):
        size, off = _DecodeVarint32(data, off)
        yield record_cls.FromString(data[off:off + size])
        off += size


def test_daemon_defaults_deliver_one_close_record_per_socket_end(netns_farm, tmp_path):
    names = netns_farm.add(2, sockets=False)
    out = tmp_path / "records.pb"
    port = free_port()
    d = Daemon("--interval", "1", "--jitter", "0", "--namespaces", netns_farm.glob, "--sink", f"file://{out}",
               "--metrics-listen", f"127.0.0.1:{port}")
    try:
        d.wait_for_polls(1)
        expected = {ns: churn(ns, 5) for ns in names}
        deadline = time.monotonic() + 30
        want = sum(len(v) for v in expected.values())
        while time.monotonic() < deadline:
            status, text = scrape(port, "/metrics")
            seen = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("xtcp_close_events_total{"))
            if seen >= want:
                break
            time.sleep(0.5)
        assert "xtcp_close_batches_dropped_total 0.0" in text  # exported from the start
        assert 'xtcp_close_events_lost_total' not in text or all(
            line.endswith(" 0.0") for line in text.splitlines() if line.startswith("xtcp_close_events_lost_total{"))
        late = churn(names[1], 2)  # closed just before SIGTERM: still delivered on the way out
        expected[names[1]] = expected[names[1]] + late
    finally:
        assert d.stop() == 0, "".join(d.lines)
    closes = [r for r in _records(out) if r.event == 1]
    by_cookie = {}
    for r in closes:
        by_cookie.setdefault(r.inet_diag_msg_socket_cookie, []).append(r)
    for ns, ends in expected.items():
        for e in ends:
            [r] = by_cookie.pop(e["cookie"])  # exactly once
            assert r.netns == ns and r.event_time_ns > 0 and r.hostname
    assert not by_cookie  # nothing else closed in these namespaces
    assert seen == want


def test_close_events_halve_the_default_namespace_cap_under_a_lowered_fd_limit(netns_farm, tmp_path):
    """Each namespace holds two sockets with close events on: the default --max-namespaces is
    sized for that, so a lowered open-file limit is never overrun; the closes still arrive."""
    from test_limits import _nofile

    names = netns_farm.add(140, sockets=False)  # more than the 128 that fit 512 fds
    out = tmp_path / "records.pb"
    d = Daemon("--interval", "0.5", "--jitter", "0", "--namespaces", netns_farm.glob, "--sink", f"file://{out}",
               "--metrics-listen", "off", preexec_fn=_nofile(512))
    try:
        polls = d.wait_for_polls(2)
        assert {p[1] for p in polls} == {128}
        opened = sorted(names)[:128]  # the manager takes namespaces in name order under the cap
        ends = churn(opened[0], 2)
        time.sleep(2.5)
    finally:
        code = d.stop()
    log = "".join(d.lines)
    assert code == 0 and "Traceback" not in log, log
    assert "polling at most 128 namespaces" in log and "halved: close events" in log
    assert "xtcp_fd_exhausted_total" not in log  # nothing ran out
    closes = {r.inet_diag_msg_socket_cookie for r in _records(out) if r.event == 1}
    assert {e["cookie"] for e in ends} <= closes


@pytest.mark.parametrize("uring", ["on", "off"])
def test_closes_subcommand_streams_every_namespace(netns_farm, uring):
    """`python -m xtcp_uring closes` prints one JSON line per socket end closed, in any of the
    selected namespaces, with its namespace, like `ss -E` but for all of them."""
    import json
    import subprocess
    import sys

    names = netns_farm.add(2, sockets=False)
    proc = subprocess.Popen([sys.executable, "-m", "xtcp_uring", "closes", "--namespaces", netns_farm.glob,
                             "--format", "jsonl", "--uring", uring, "--rescan", "0.2", "--flush", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)  # subscribed (first reconcile) before anything closes
        expected = {e["cookie"]: ns for ns in names for e in churn(ns, 3)}
        time.sleep(1.5)
    finally:
        proc.send_signal(2)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "Traceback" not in err, err
    got = [json.loads(line) for line in out.splitlines()]
    assert sorted((r["inet_diag_msg_socket_cookie"], r["netns"]) for r in got) == sorted(expected.items())
    assert all(r["event"] == 1 and r["event_time_ns"] > 0 for r in got)
