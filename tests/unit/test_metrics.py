"""Metrics from batches: per-namespace series are bounded, counters mirror cumulative stats."""

from pathlib import Path

from xtcp_uring import records
from xtcp_uring.app.logs import JsonFormatter
from xtcp_uring.app.metrics import OTHER, Metrics
from xtcp_uring.poller import PollerStats
from xtcp_uring.wire.pcap import response_payloads

CAPTURE = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "xtcp2" / "6_8_12" / "6_8_12_tcp_10_sockets.pcap"


def batch_of(names: list[str]) -> records.Batch:
    buffers = [bytes(p) for p in response_payloads(CAPTURE)]
    dumps = []
    for name in names:
        d = records.decode_buffers(buffers, strict=False, netns=name)
        d.family, d.dump_ns = 2, 1_000_000
        dumps.append(d)
    return records.Batch(dumps, poll_id=1, duration_ns=5_000_000)


def samples(m: Metrics, name: str) -> dict[tuple, float]:
    out = {}
    for family in m.registry.collect():
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_namespace_series_are_bounded_and_the_rest_summed_as_other():
    m = Metrics(max_namespace_series=2)
    batch = batch_of(["a", "b", "c", "d"])
    m.observe_poll(batch, PollerStats(polls=1, backend="io_uring"))
    per_ns = samples(m, "xtcp_sockets")
    assert {dict(k)["netns"] for k in per_ns} == {"a", "b", OTHER}
    one = batch.dumps[0].count
    assert per_ns[(("netns", OTHER),)] == 2 * one
    assert sum(per_ns.values()) == len(batch)


def test_counters_follow_cumulative_stats_without_double_counting():
    m = Metrics()
    stats = PollerStats(polls=1, skipped_ticks=0, backend="sockets", fallback=True)
    m.observe_poll(batch_of(["a"]), stats)
    stats.polls, stats.skipped_ticks = 3, 2
    m.observe_poll(batch_of(["a"]), stats)
    assert samples(m, "xtcp_polls_total")[()] == 3
    assert samples(m, "xtcp_polls_skipped_total")[()] == 2
    assert samples(m, "xtcp_backend_info") == {(("backend", "sockets"), ("fallback", "true")): 1}


def test_netlink_rejections_are_exported_by_reason_from_the_first_scrape():
    m = Metrics()
    stats = PollerStats(polls=1)
    m.observe_poll(batch_of(["a"]), stats)
    assert samples(m, "xtcp_netlink_rejected_total") == {(("reason", r),): 0 for r in ("sender", "seq", "malformed")}
    stats.netlink_rejected.update(sender=2, seq=40)
    m.observe_poll(batch_of(["a"]), stats)
    stats.netlink_rejected.update(seq=41, malformed=1)
    m.observe_poll(batch_of(["a"]), stats)
    assert samples(m, "xtcp_netlink_rejected_total") == {
        (("reason", "sender"),): 2, (("reason", "seq"),): 41, (("reason", "malformed"),): 1}


def test_json_log_lines_are_one_object_each():
    import json
    import logging

    rec = logging.LogRecord("xtcp_uring.daemon", logging.INFO, __file__, 1, "poll %d: %d sockets", (7, 42), None)
    obj = json.loads(JsonFormatter().format(rec))
    assert obj["msg"] == "poll 7: 42 sockets" and obj["level"] == "info" and obj["logger"] == "xtcp_uring.daemon"


# --metrics-listen: every accepted form, and every bad one with its exact message.

import asyncio  # noqa: E402

import pytest  # noqa: E402

from xtcp_uring.errors import ConfigError  # noqa: E402
from xtcp_uring.app.metrics import MAX_CONNECTIONS, MAX_REQUEST_BYTES, MetricsServer, parse_listen  # noqa: E402

GOOD_LISTEN = {
    "off": None,
    " OFF ": None,
    "127.0.0.1:9108": ("127.0.0.1", 9108),
    ":9108": ("127.0.0.1", 9108),
    "0.0.0.0:1": ("0.0.0.0", 1),
    "[::1]:65535": ("::1", 65535),
    "[::]:9108": ("::", 9108),
    "localhost:9108": ("localhost", 9108),
    "metrics.example.internal:9108": ("metrics.example.internal", 9108),
}

BAD_LISTEN = {
    ":65558": "the port must be a number from 1 to 65535",  # once wrapped to port 22
    ":65536": "the port must be a number from 1 to 65535",
    ":0": "the port must be a number from 1 to 65535",
    ":-1": "the port must be a number from 1 to 65535",
    ":+80": "the port must be a number from 1 to 65535",
    "host:": "the port must be a number from 1 to 65535",
    "host:http": "the port must be a number from 1 to 65535",
    "9108": "expected HOST:PORT, [IPV6]:PORT or off",
    "": "expected HOST:PORT, [IPV6]:PORT or off",
    "::1:9108": "put an IPv6 address in brackets, e.g. [::1]:9108",
    "[::1]9108": "an IPv6 address is written [ADDR]:PORT, e.g. [::1]:9108",
    "[::1]": "an IPv6 address is written [ADDR]:PORT, e.g. [::1]:9108",
    "[127.0.0.1]:9108": "'127.0.0.1' is not an IPv6 address",
    "bad host:9108": "'bad host' is not a host name or IPv4 address",
    "-x:9108": "'-x' is not a host name or IPv4 address",
}


@pytest.mark.parametrize("value", list(GOOD_LISTEN))
def test_metrics_listen_accepts(value):
    assert parse_listen(value) == GOOD_LISTEN[value]


@pytest.mark.parametrize("value", list(BAD_LISTEN))
def test_metrics_listen_rejects_with_what_is_wrong(value):
    with pytest.raises(ConfigError) as exc:
        parse_listen(value)
    assert str(exc.value) == f"--metrics-listen {value!r}: {BAD_LISTEN[value]}"


async def _request(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return reply


async def test_metrics_server_caps_request_size_and_method_and_connections():
    server = MetricsServer(Metrics(), "127.0.0.1", 0, ready_after_s=30)
    await server.start()
    try:
        ok = await _request(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200 OK") and ok.endswith(b"ok\n")
        huge_header = b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * MAX_REQUEST_BYTES + b"\r\n\r\n"
        assert (await _request(server.port, huge_header)).startswith(b"HTTP/1.1 431 ")
        many_headers = b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * (MAX_REQUEST_BYTES // 8 + 1) + b"\r\n"
        assert (await _request(server.port, many_headers)).startswith(b"HTTP/1.1 431 ")
        assert (await _request(server.port, b"POST /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405 ")
        assert (await _request(server.port, b"garbage\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
        # Connections past the bound are closed unanswered; those within it are served.
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(MAX_CONNECTIONS)]
        await asyncio.sleep(0.2)  # let the server accept them all
        try:
            refused = await _request(server.port, b"GET /healthz HTTP/1.1\r\n\r\n")
        except ConnectionResetError:  # closed with our request unread
            refused = b""
        assert refused == b""
        for _, w in idle:
            w.close()
        await asyncio.sleep(0.2)
        assert (await _request(server.port, b"GET /healthz HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
    finally:
        await server.close()


async def test_readyz_names_the_sink_that_delivers_nothing():
    why = ["sink file:///x: not delivering (3 failures since it last delivered)"]
    m = Metrics()
    server = MetricsServer(m, "127.0.0.1", 0, ready_after_s=30, not_ready=lambda: why[0])
    await server.start()
    try:
        assert (await _request(server.port, b"GET /readyz HTTP/1.1\r\n\r\n")).endswith(b"no poll finished recently\n")
        m.last_poll_timestamp.set_to_current_time()
        reply = await _request(server.port, b"GET /readyz HTTP/1.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 503 ") and reply.endswith(why[0].encode() + b"\n")
        why[0] = None
        assert (await _request(server.port, b"GET /readyz HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
    finally:
        await server.close()
