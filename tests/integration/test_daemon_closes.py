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
        assert 'xtcp_close_events_lost_total' not in text or all(
            line.endswith(" 0.0") for line in text.splitlines() if line.startswith("xtcp_close_events_lost_total{"))
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
