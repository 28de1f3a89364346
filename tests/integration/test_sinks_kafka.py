"""The Kafka sink against a real Kafka-protocol broker (tansu, in memory): round trip, message
splitting, compression, what ClickHouse reads from the messages, and a broker outage."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest

from golden import cases
from kafka_broker import TansuBroker, consume, envelope_rows, kafka_broker, recreate_topic, tansu_binary
from xtcp_uring import clickhouse, records, schema
from xtcp_uring.wire.pcap import response_payloads
from xtcp_uring.sinks import envelope_messages, open_sink


CAPTURE = cases.testdata_root() / "6_6_44" / "tcp_100_sockets_bbr.pcap"
FAST = dict(request_timeout_ms=300, write_timeout_s=2, retry_initial_s=0.05, retry_max_s=0.2, close_timeout_s=5)


def make_batch(poll_id: int, copies: int = 1) -> records.Batch:
    buffers = [bytes(p) for p in response_payloads(CAPTURE)]
    labels = records.encode_labels(hostname="h1", netns="host", poll_id=poll_id)
    return records.Batch([records.decode_buffers(buffers, strict=False, labels=labels) for _ in range(copies)],
                         poll_id=poll_id)


@pytest.fixture(scope="module")
def broker():
    with kafka_broker() as b:
        yield b


def assert_rows_are_the_batch(rows, batch: records.Batch) -> None:
    assert len(rows) == len(batch)
    arr = batch.dumps[0].array()
    for name in ("tcp_info_rtt", "tcp_info_snd_cwnd", "inet_diag_msg_socket_cookie",
                 "inet_diag_msg_socket_source_port", "bbr_info_bw_lo", "bbr_info_min_rtt"):
        assert [getattr(r, name) for r in rows] == batch.column(name).tolist(), name
    for name in ("inet_diag_msg_socket_source", "inet_diag_msg_socket_destination"):
        assert [getattr(r, name) for r in rows] == [bytes(v[:n]) for v, n in zip(arr[name], arr[name + "_len"])]
    assert [r.congestion_algorithm_string for r in rows] == [
        bytes(v).split(b"\0")[0].decode() for v in arr["congestion_algorithm_string"]]
    assert {(r.hostname, r.netns, r.poll_id) for r in rows} == {("h1", "host", batch.poll_id)}


@pytest.mark.parametrize("compression", ["zstd", "lz4", "gzip", "none"])
async def test_round_trip(broker, compression):
    topic = f"rt-{compression}"
    batch = make_batch(1)
    async with open_sink(f"kafka://{broker.bootstrap}/{topic}?compression={compression}&records_per_message=200",
                         **FAST) as sink:
        await sink.send(batch)
        await sink.flush(timeout=10)
        assert sink.stats.sent_batches == 1 and sink.stats.sent_records == len(batch)
    messages = await consume(broker.bootstrap, topic, expect=5)
    assert len(messages) == 5  # 909 records, 200 per message
    assert {m.key for m in messages} == {socket.gethostname().encode()}
    assert {tuple(m.headers) for m in messages} == {(("schema_version", str(schema.SCHEMA_VERSION).encode()),)}
    rows = [r for m in messages for r in envelope_rows(m.value)]
    assert_rows_are_the_batch(rows, batch)


async def test_messages_fit_max_request_size(broker):
    batch = make_batch(2, copies=4)  # ~0.9 MB of records
    async with open_sink(f"kafka://{broker.bootstrap}/split?max_request_size=64K", **FAST) as sink:
        await sink.send(batch)
        await sink.flush(timeout=10)
    expect = len(envelope_messages(batch, 0, 63 * 1024))
    assert expect > 10
    messages = await consume(broker.bootstrap, "split", expect=expect)
    assert len(messages) == expect
    assert all(len(m.value) <= 63 * 1024 for m in messages)
    assert sum(len(envelope_rows(m.value)) for m in messages) == len(batch)


async def test_rows_the_ring_encoded_reach_kafka_whole(broker):
    """End to end on real sockets: Poller(encode="envelope") has the ring encode each chunk as
    it arrives; the Kafka sink cuts those bytes into messages under max_request_size without
    encoding again, and the consumed rows are the batch's sockets, each once."""
    from xtcp_uring.poller import Poller

    lst = socket.create_server(("127.0.0.1", 0), backlog=1024)
    port = lst.getsockname()[1]
    conns = []
    try:
        for _ in range(600):  # 1,200 sockets: ~20 chunks of the dump
            c = socket.create_connection(("127.0.0.1", port))
            conns += [c, lst.accept()[0]]
        async with Poller(namespaces="host", use_uring=True, families=["inet"], encode="envelope",
                          filter=f"sport {port} or dport {port}") as poller:
            batch = await poller.poll()
        assert len(batch) >= 1200 and all(d.encoded is not None for d in batch.dumps if d.count)
        async with open_sink(f"kafka://{broker.bootstrap}/ring-encoded?max_request_size=64K", **FAST) as sink:
            await sink.send(batch)
            await sink.flush(timeout=10)
        expect = len(envelope_messages(batch, 0, 63 * 1024))
        assert expect >= 4
        messages = await consume(broker.bootstrap, "ring-encoded", expect=expect)
        assert len(messages) == expect and all(len(m.value) <= 63 * 1024 for m in messages)
        rows = [r for m in messages for r in envelope_rows(m.value)]
        assert [r.inet_diag_msg_socket_cookie for r in rows] == batch.column("inet_diag_msg_socket_cookie").tolist()
        assert [r.tcp_info_snd_cwnd for r in rows] == batch.column("tcp_info_snd_cwnd").tolist()
        assert {r.poll_id for r in rows} == {batch.poll_id}
    finally:
        for c in conns:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST: no TIME_WAIT
            c.close()
        lst.close()


async def test_clickhouse_reads_the_messages(broker, tmp_path):
    """Each consumed message value, as ClickHouse's Kafka engine would get it, inserts with
    FORMAT ProtobufList (the engine itself cannot run inside chDB)."""
    pytest.importorskip("chdb")
    batch = make_batch(3, copies=2)
    async with open_sink(f"kafka://{broker.bootstrap}/to-clickhouse?records_per_message=500", **FAST) as sink:
        await sink.send(batch)
        await sink.flush(timeout=10)
    messages = await consume(broker.bootstrap, "to-clickhouse", expect=4)
    store = clickhouse.open_store(tmp_path / "chdb")
    try:
        store.ensure_table()
        for m in messages:
            store.insert_protobuf_list(m.value)
        got = store.query("SELECT count(), sum(tcp_info_rtt), countIf(bbr_info_bw_lo > 0) FROM xtcp.xtcp_records")
        assert got.bytes().decode().strip() == (
            f"{len(batch)},{int(batch.column('tcp_info_rtt').sum())},{int((batch.column('bbr_info_bw_lo') > 0).sum())}")
    finally:
        store.release()


async def test_broker_outage(broker):
    """Broker killed mid-run: send() keeps returning at once, the queue keeps the newest batches
    within its bound and counts the oldest it drops, and when the broker is back on the same
    port the rest is delivered."""
    topic = "outage"
    size = len(make_batch(100).envelope()) + 3
    opts = dict(FAST, retry_initial_s=0.1, retry_max_s=1.0)
    sink = open_sink(f"kafka://{broker.bootstrap}/{topic}", queue_bytes=3 * size + size // 2, **opts)
    async with sink:
        await sink.send(make_batch(100))
        await sink.flush(timeout=10)
        assert sink.stats.sent_batches == 1

        broker.stop()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for poll_id in range(101, 111):
            await sink.send(make_batch(poll_id))
            await asyncio.sleep(0.02)
        assert loop.time() - t0 < 2  # never blocked on the dead broker
        s = sink.stats
        assert s.queue_batches == 3 and s.queue_bytes <= sink.config.queue_bytes
        assert s.dropped_batches == 6 and s.dropped_records == 6 * 909
        assert s.sent_batches + s.dropped_batches + s.queue_batches + s.inflight_batches == 11

        # Memory storage: the restarted broker has no topics, and tansu 0.6 acknowledges a
        # produce to a missing topic without storing it. Real brokers keep their topics, so
        # restart right after the 4th failed attempt (the next is 0.8 s away) and recreate it.
        while s.errors < 4:
            await asyncio.sleep(0.005)
        broker.start()
        await recreate_topic(broker.bootstrap, topic)
        await sink.flush(timeout=15)
    s = sink.stats
    assert s.sent_batches + s.dropped_batches == 11 and s.rejected_batches == 0
    messages = await consume(broker.bootstrap, topic, expect=s.sent_batches - 1)
    delivered = sorted(envelope_rows(m.value)[0].poll_id for m in messages)
    # The batch in flight when the broker died (101) was retried; the newest three were kept.
    assert delivered == [101, 108, 109, 110]


async def test_start_before_the_broker():
    late = TansuBroker(tansu_binary())
    try:
        sink = open_sink(f"kafka://{late.bootstrap}/late", **FAST)
        async with sink:  # does not raise: the worker connects once there is data
            await sink.send(make_batch(7))
            await asyncio.sleep(0.3)
            late.start()
            await sink.flush(timeout=10)
        assert sink.stats.sent_batches == 1 and sink.stats.errors >= 2
        (message,) = await consume(late.bootstrap, "late", expect=1)
        assert len(envelope_rows(message.value)) == 909
    finally:
        late.stop()


async def test_produce_rate(broker):
    batch = make_batch(200, copies=110)  # 99,990 records
    async with open_sink(f"kafka://{broker.bootstrap}/rate?compression=none&linger_ms=0", **FAST) as sink:
        t0 = time.perf_counter()
        await sink.send(batch)
        t1 = time.perf_counter()
        await sink.flush(timeout=30)
        t2 = time.perf_counter()
    print(f"\nkafka: {len(batch)} records in {sink.stats.sent_bytes / 1e6:.1f} MB, encode+queue {t1 - t0:.3f} s, "
          f"delivered {t2 - t0:.3f} s = {len(batch) / (t2 - t0):,.0f} records/s")
    assert sink.stats.sent_records == len(batch)
