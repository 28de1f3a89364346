"""Sink plumbing without a real destination: queue bound and drops, retry, rejects, a dead
worker, close, encoding once per batch, URL parsing, and the file, stdout and UDP sinks.

Over 450 lines on purpose: the queue, retry and counters every sink shares, each case against
the same small in-process sinks."""

from __future__ import annotations

import asyncio
import itertools
import socket
from dataclasses import dataclass

import numpy as np
import pytest
from google.protobuf.internal.decoder import _DecodeVarint32

from golden import cases
from xtcp_uring import clickhouse, native, records, schema
from xtcp_uring.errors import ConfigError, SinkError, XtcpError
from xtcp_uring.wire.pcap import response_payloads
from xtcp_uring.sinks import Encoded, Payload, Sink, SinkConfig, SinkGroup, envelope_messages, open_sink

CAPTURE = cases.testdata_root() / "6_6_44" / "tcp_100_sockets_bbr.pcap"


def make_batch(poll_id: int = 1, copies: int = 1) -> records.Batch:
    buffers = [bytes(p) for p in response_payloads(CAPTURE)]
    labels = records.encode_labels(hostname="h1", netns=f"ns{poll_id}", poll_id=poll_id)
    return records.Batch([records.decode_buffers(buffers, strict=False, labels=labels) for _ in range(copies)],
                         poll_id=poll_id)


@pytest.fixture(scope="module")
def batch() -> records.Batch:
    return make_batch()


def parse_protobuf_list(message: bytes):
    """The rows of one ProtobufList message, checking it is exactly one delimited Envelope."""
    length, pos = _DecodeVarint32(message, 0)
    assert pos + length == len(message), "one length-delimited Envelope per message"
    _, envelope_cls = schema.message_classes()
    env = envelope_cls()
    env.ParseFromString(message[pos:])
    return list(env.row)


# -- a sink with a scriptable destination -----------------------------------------------


@dataclass(kw_only=True)
class MemoryConfig(SinkConfig):
    @classmethod
    def from_url(cls, url, **opts):
        return cls._build(url, "", opts)


class MemorySink(Sink):
    """Delivers payloads into a list; ``outage`` makes writes fail retriably, ``gate`` holds
    them, ``reject`` and ``crash`` make the next write fail for good / with a bug."""

    scheme = "memory"
    Config = MemoryConfig

    def __init__(self, config):
        super().__init__(config)
        self.delivered: list[int] = []  # poll ids
        self.attempts = 0
        self.outage = False
        self.gate = asyncio.Event()
        self.gate.set()
        self.reject = False
        self.crash = False
        self.prepared = 0
        self.connect_failures = 0  # the next N connects fail retriably
        self.connect_error: Exception | None = None  # the next connect fails with this

    def prepare(self, encoded: Encoded):
        self.prepared += 1
        data = encoded.delimited()
        return [Payload((encoded.batch.poll_id, data), len(data), len(encoded))]

    async def _connect(self):
        if self.connect_error is not None:
            raise self.connect_error
        if self.connect_failures:
            self.connect_failures -= 1
            raise ConnectionRefusedError("destination not up yet")

    async def _write(self, data):
        self.attempts += 1
        await self.gate.wait()
        if self.crash:
            raise RuntimeError("bug in the sink")
        if self.reject:
            self.reject = False
            err = SinkError("destination refused it")
            err.retriable = False
            raise err
        if self.outage:
            raise ConnectionRefusedError("destination down")
        self.delivered.append(data[0])


def memory_sink(**opts) -> MemorySink:
    opts.setdefault("close_timeout_s", 1)
    opts.setdefault("retry_initial_s", 0.005)
    opts.setdefault("retry_max_s", 0.02)
    return MemorySink.from_url("memory:", **opts)


def assert_accounted(sink: Sink, sent_batches: int) -> None:
    s = sink.stats
    assert (s.sent_batches + s.dropped_batches + s.rejected_batches + s.queue_batches
            + s.inflight_batches) == sent_batches


async def test_lifecycle(batch):
    sink = memory_sink()
    with pytest.raises(SinkError, match="not started"):
        await sink.send(batch)
    async with sink:
        await sink.send(batch)
        await sink.flush(timeout=5)
        assert sink.delivered == [1]
        assert sink.stats.sent_records == len(batch) and sink.stats.sent_bytes == len(batch.delimited())
    await sink.close()  # idempotent
    with pytest.raises(SinkError, match="closed") as err:
        await sink.send(batch)
    assert err.value.retriable is False


async def test_queue_drops_oldest_past_the_bound():
    batches = [make_batch(i) for i in range(10, 20)]  # equal sizes
    size = len(batches[0].delimited())
    sink = memory_sink(queue_bytes=3 * size + size // 2)
    async with sink:
        sink.gate.clear()  # the destination hangs
        for b in batches:
            await sink.send(b)
            await asyncio.sleep(0)
        # Batch 10 is in flight (kept); the queue holds the newest 3; 11..16 were dropped.
        assert sink.stats.dropped_batches == 6
        assert sink.stats.dropped_records == 6 * len(batches[0])
        assert sink.stats.queue_bytes == 3 * size and sink.stats.queue_batches == 3
        assert_accounted(sink, 10)
        sink.gate.set()
        await sink.flush(timeout=5)
    assert sink.delivered == [10, 17, 18, 19]
    assert_accounted(sink, 10)


async def test_retries_with_backoff_until_the_destination_is_back(batch):
    sink = memory_sink()
    async with sink:
        sink.outage = True
        await sink.send(batch)
        while sink.attempts < 4:
            await asyncio.sleep(0.005)
        assert sink.delivered == [] and sink.stats.errors >= 3
        sink.outage = False
        await sink.flush(timeout=5)
    assert sink.delivered == [1] and sink.stats.sent_batches == 1


async def test_backoff_is_capped_exponential(batch, monkeypatch):
    sleeps = []
    real_sleep = asyncio.sleep

    async def fake_sleep(delay, *a):
        sleeps.append(delay)
        await real_sleep(0)

    sink = memory_sink(retry_initial_s=0.1, retry_max_s=0.5)
    async with sink:
        sink.outage = True
        monkeypatch.setattr("xtcp_uring.sinks.base.asyncio.sleep", fake_sleep)
        await sink.send(batch)
        while len(sleeps) < 6:
            await real_sleep(0)
        sink.outage = False
        monkeypatch.undo()
        await sink.flush(timeout=5)
    assert sleeps[:6] == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]


async def test_start_with_the_destination_down(batch):
    sink = memory_sink()
    sink.connect_failures = 3
    async with sink:  # start() does not fail: the worker connects when there is data
        assert sink.stats.errors == 1
        await sink.send(batch)
        await sink.flush(timeout=5)
    assert sink.delivered == [1] and sink.stats.errors == 3


async def test_start_fails_for_good():
    sink = memory_sink()
    sink.connect_error = ConfigError("chdb is not installed")
    with pytest.raises(ConfigError, match="not installed"):
        await sink.start()
    sink = memory_sink()
    err = SinkError("authentication failed")
    err.retriable = False
    sink.connect_error = err
    with pytest.raises(SinkError, match="cannot start: authentication failed"):
        await sink.start()


async def test_rejected_payload_is_counted_and_skipped():
    sink = memory_sink()
    async with sink:
        sink.reject = True
        await sink.send(make_batch(1))
        await sink.send(make_batch(2))
        await sink.flush(timeout=5)
    assert sink.delivered == [2]
    assert sink.stats.rejected_batches == 1 and sink.stats.rejected_records == len(make_batch(1))
    assert_accounted(sink, 2)


async def test_dead_worker_surfaces_in_send_and_flush(batch):
    sink = memory_sink()
    async with sink:
        sink.crash = True
        await sink.send(batch)
        with pytest.raises(SinkError, match="worker died") as err:
            await asyncio.wait_for(sink.flush(), 5)  # raises, does not hang
        assert isinstance(err.value.__cause__, RuntimeError)
        with pytest.raises(SinkError, match="worker died"):
            await sink.send(batch)


async def test_flush_timeout_and_close_counts_leftovers():
    sink = memory_sink(close_timeout_s=0.05)
    await sink.start()
    sink.gate.clear()
    for i in range(1, 4):
        await sink.send(make_batch(i))
    with pytest.raises(SinkError, match="timed out") as err:
        await sink.flush(timeout=0.05)
    assert err.value.retriable
    await sink.close()
    assert sink.stats.dropped_batches == 3 and sink.stats.queue_bytes == 0
    assert_accounted(sink, 3)


async def test_wait_s_makes_send_wait_for_room():
    batches = [make_batch(i) for i in range(1, 4)]
    size = len(batches[0].delimited())
    sink = memory_sink(queue_bytes=size, wait_s=5)
    async with sink:
        sink.gate.clear()
        await sink.send(batches[0])
        await asyncio.sleep(0)  # 1 in flight
        await sink.send(batches[1])  # queued: exactly the bound
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, sink.gate.set)
        t0 = loop.time()
        await sink.send(batches[2])  # waits until 2 leaves the queue, drops nothing
        assert loop.time() - t0 >= 0.04
        await sink.flush(timeout=5)
    assert sink.delivered == [1, 2, 3] and sink.stats.dropped_batches == 0


async def test_a_group_encodes_each_framing_once(batch, monkeypatch):
    calls = []
    real = records.Batch.delimited
    monkeypatch.setattr(records.Batch, "delimited", lambda self: calls.append(1) or real(self))
    a, b = memory_sink(), memory_sink()
    async with SinkGroup([a, b]) as group:
        await group.send(batch)
        await group.flush(timeout=5)
    assert len(calls) == 1
    assert a.delivered == b.delivered == [1]
    assert set(group.stats()) == {"memory:"}


def test_envelope_messages_split_at_record_boundaries():
    batch = make_batch(copies=3)
    cookies = batch.column("inet_diag_msg_socket_cookie")
    for max_records, max_bytes in [(0, 0), (100, 0), (0, 20_000), (50, 9_000), (1, 0)]:
        messages = envelope_messages(batch, max_records, max_bytes)
        rows = []
        for m, n in messages:
            got = parse_protobuf_list(m)
            assert len(got) == n
            assert not max_records or n <= max_records
            assert not max_bytes or len(m) <= max_bytes
            rows.extend(got)
        assert [r.inet_diag_msg_socket_cookie for r in rows] == cookies.tolist()
        assert {r.netns for r in rows} == {"ns1"}
    # Messages are filled: only the last one of a byte-limited split is much below the limit.
    sizes = [len(m) for m, _ in envelope_messages(batch, 0, 20_000)]
    assert min(sizes[:-1]) > 20_000 - 600  # a record is ~250 B


@pytest.mark.parametrize("limits", [(0, 0), (100, 0), (0, 20_000), (50, 9_000), (1, 0), (0, 300), (7, 0)])
def test_rows_encoded_by_the_ring_split_like_rows_encoded_on_demand(limits):
    """A batch whose dumps carry their Envelope rows already (as Poller(encode="envelope")
    leaves them) is cut between rows by C: the same rows in the same order as re-encoding
    gives, each message within the limits and full (the next row would not have fitted)."""
    max_records, max_bytes = limits
    plain = make_batch(copies=3)
    ready = make_batch(copies=3)
    for d in ready.dumps:
        d.encoded = native.encode(d.records, 0, d.count, d.labels, native.FRAME_ENVELOPE_ROWS)
        d.framing = native.FRAME_ENVELOPE_ROWS
    messages = envelope_messages(ready, max_records, max_bytes)
    rows = [parse_protobuf_list(m) for m, _ in messages]
    assert [len(r) for r in rows] == [n for _, n in messages]
    want = [r for m, _ in envelope_messages(plain, max_records, max_bytes) for r in parse_protobuf_list(m)]
    assert [r for rs in rows for r in rs] == want
    frame = [1 + len(clickhouse.varint(k)) + k for k in (r.ByteSize() for r in want)]  # tag, length, row
    first = 0
    for (m, n), end in zip(messages, itertools.accumulate(len(r) for r in rows)):
        assert not max_records or n <= max_records
        assert not max_bytes or len(m) <= max_bytes or n == 1  # one row too big goes alone
        if end < len(want) and max_bytes and (not max_records or n < max_records):
            # Full: the next row would have pushed it past the limit (5: room for the length).
            assert sum(frame[first:end + 1]) > max_bytes - 5
        first = end


def test_frames_prefix_refuses_bytes_that_are_not_whole_frames():
    rows = bytes(native.encode(make_batch().dumps[0].records, 0, 3, b"", native.FRAME_ENVELOPE_ROWS))
    whole, n = native.frames_prefix(rows, native.FRAME_ENVELOPE_ROWS)
    assert (whole, n) == (len(rows), 3)
    assert native.frames_prefix(b"", native.FRAME_ENVELOPE_ROWS) == (0, 0)
    for bad in (rows[:-1], b"\x12" + rows[1:], b"\x0a\xff\xff\xff\xff\xff\xff"):
        with pytest.raises(XtcpError, match="do not split into frames"):
            native.frames_prefix(bad, native.FRAME_ENVELOPE_ROWS)


def test_encoded_memoises(batch):
    enc = Encoded(batch)
    assert enc.protobuf_list() is enc.protobuf_list()
    assert enc.delimited() is enc.delimited()


# -- URLs --------------------------------------------------------------------------------


def test_open_sink_by_scheme(tmp_path):
    from xtcp_uring.sinks.chdb import ChdbSink
    from xtcp_uring.sinks.clickhouse_http import ClickHouseHttpSink
    from xtcp_uring.sinks.file import FileSink, StdoutSink
    from xtcp_uring.sinks.kafka import KafkaSink
    from xtcp_uring.sinks.udp import UdpSink

    k = open_sink("kafka://b1:9092,b2:9092/xtcp?compression=gzip&acks=all&linger_ms=50"
                  "&max_request_size=2M&records_per_message=500&queue_bytes=8M")
    assert isinstance(k, KafkaSink)
    assert (k.config.bootstrap, k.config.topic, k.config.compression, k.config.acks) == ("b1:9092,b2:9092", "xtcp", "gzip", "all")
    assert (k.config.max_request_size, k.config.records_per_message, k.config.queue_bytes) == (2 << 20, 500, 8 << 20)
    assert open_sink("kafka://b:1/t", acks=0).config.acks == "0"  # keywords win, typed or not

    c = open_sink(f"chdb://{tmp_path}/store?ttl_days=7")
    assert isinstance(c, ChdbSink) and c.config.path == f"{tmp_path}/store" and c.config.ttl_days == 7

    h = open_sink("clickhouse+http://alice:s3cret@ch:8123/telemetry", allow_insecure=True)  # Basic auth, no TLS
    assert isinstance(h, ClickHouseHttpSink)
    assert (h.config.host, h.config.port, h.config.database, h.config.user) == ("ch", 8123, "telemetry", "alice")
    assert "s3cret" not in h.name and "s3cret" not in repr(h.config)
    assert open_sink("clickhouse+https://ch/x").config.port == 8443

    assert isinstance(open_sink("file:///var/tmp/x.pb"), FileSink)
    out = open_sink("-", format="pb")
    assert isinstance(out, StdoutSink) and out.config.format == "pb"
    u = open_sink("udp://127.0.0.1:9999?max_datagram=1400")
    assert isinstance(u, UdpSink) and (u.config.port, u.config.max_datagram) == (9999, 1400)


@pytest.mark.parametrize("url, opts, match", [
    ("gopher://x/y", {}, "known: chdb, clickhouse\\+http, clickhouse\\+https, file, kafka, stdout, udp"),
    ("kafka://host:9092", {}, "expected kafka://"),
    ("kafka://h:1/t?colour=red", {}, "unknown option 'colour'; known: acks"),
    ("kafka://h:1/t?compression=brotli", {}, "compression must be one of"),
    ("kafka://h:1/t?linger_ms=soon", {}, "bad value 'soon' for linger_ms"),
    ("udp://h", {}, "expected udp://host:port"),
    ("-", {"format": "xml"}, "format must be one of"),
    ("chdb://", {}, "expected chdb:///path"),
])
def test_bad_urls(url, opts, match):
    with pytest.raises(ConfigError, match=match):
        open_sink(url, **opts)


# -- file, stdout, UDP ---------------------------------------------------------------------


def read_delimited(data: bytes):
    record_cls, _ = schema.message_classes()
    pos, out = 0, []
    while pos < len(data):
        n, pos = _DecodeVarint32(data, pos)
        out.append(record_cls.FromString(data[pos:pos + n]))
        pos += n
    return out


async def test_file_sink_appends_delimited_records(tmp_path, batch):
    path = tmp_path / "records.pb"
    async with open_sink(f"file://{path}") as sink:
        await sink.send(batch)
        await sink.send(batch)
    rows = read_delimited(path.read_bytes())
    assert len(rows) == 2 * len(batch)
    assert [r.tcp_info_rtt for r in rows[: len(batch)]] == batch.column("tcp_info_rtt").tolist()
    assert rows[0].hostname == "h1"


async def test_stdout_sink(capsysbinary, batch):
    async with open_sink("-", format="pblist") as sink:
        await sink.send(batch)
    out = capsysbinary.readouterr().out
    assert len(parse_protobuf_list(out)) == len(batch)
    async with open_sink("-", format="jsonl") as sink:
        await sink.send(batch)
    lines = capsysbinary.readouterr().out.splitlines()
    assert len(lines) == len(batch) and b'"hostname":"h1"' in lines[0]


async def test_udp_sink_one_protobuf_list_per_datagram(batch):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.setblocking(False)
    port = rx.getsockname()[1]
    try:
        async with open_sink(f"udp://127.0.0.1:{port}?max_datagram=8000") as sink:
            await sink.send(batch)
            await sink.flush(timeout=5)
        loop = asyncio.get_running_loop()
        rows = []
        while len(rows) < len(batch):
            datagram = await asyncio.wait_for(loop.sock_recv(rx, 65536), 5)
            assert len(datagram) <= 8000
            rows.extend(parse_protobuf_list(datagram))
        assert [r.inet_diag_msg_socket_cookie for r in rows] == batch.column("inet_diag_msg_socket_cookie").tolist()
        assert sink.stats.sent_batches == len(envelope_messages(batch, 0, 8000))
    finally:
        rx.close()


def test_numpy_view_is_what_the_sinks_encode(batch):
    # The file/stdout/UDP bytes above come from the same C records the numpy view shows.
    rows = read_delimited(Encoded(batch).delimited())
    assert np.array_equal([r.tcp_info_snd_cwnd for r in rows], batch.column("tcp_info_snd_cwnd"))


def test_sinks_name_the_framing_they_send_and_the_group_picks_the_most_wanted(tmp_path):
    """What the daemon passes to Poller(encode=...): the framing its sinks send."""
    pblist, pb = open_sink("-", format="pblist"), open_sink(f"file://{tmp_path}/b.pb")
    kafka, udp = open_sink("kafka://127.0.0.1:9/t"), open_sink("udp://127.0.0.1:9")
    jsonl = open_sink("-", format="jsonl")
    assert (pblist.encoding, pb.encoding, kafka.encoding, udp.encoding, jsonl.encoding) == (
        "envelope", "delimited", "envelope", "envelope", None)
    assert open_sink("clickhouse+http://127.0.0.1:9/db?format=protobuf_list").encoding == "envelope"
    assert open_sink("clickhouse+http://127.0.0.1:9/db").encoding is None  # Arrow, from the columns
    assert SinkGroup([pb, kafka, udp]).encoding == "envelope"
    assert SinkGroup([pb, jsonl]).encoding == "delimited"
    assert SinkGroup([jsonl]).encoding is None
