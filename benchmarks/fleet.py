"""A simulated fleet through a real Kafka broker into chDB: ``python -m benchmarks.fleet``.

One poll of a socket farm (``--sockets``, ``--active``; with ``--emit changed`` the second,
steady-state poll) is recorded, then replayed by ``--hosts`` simulated hosts, each its own
Kafka sink (aiokafka producer) with its own hostname and fresh timestamps, every
``--interval`` seconds for ``--duration`` seconds, to the test suite's broker (tansu,
``tests/support/kafka_broker.py``). One consumer reads the topic and inserts each message as ClickHouse's
Kafka engine would (``FORMAT ProtobufList``) into a chDB store with the record table and the
rollups. Reported: rows offered and delivered per second, Kafka bytes per second, rows the
consumer inserted per second while busy, and its lag at the end. Everything runs on this
machine: the producers, the broker and the consumer share its CPUs. Needs root (the farm).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from xtcp_uring import clickhouse, records, schema
from xtcp_uring.wire import request
from xtcp_uring.poller import Poller
from xtcp_uring.sinks import open_sink

from .farm import SocketFarm

TOPIC = "xtcp-fleet"


def replayed(batch: records.Batch, host: str, poll_id: int) -> records.Batch:
    """The recorded batch as ``host`` would send it now."""
    now = time.time_ns()
    dumps = [dataclasses.replace(d, labels=records.encode_labels(
        schema_version=schema.SCHEMA_VERSION, timestamp_ns=now, poll_id=poll_id, hostname=host,
        location=f"site-{hash(host) % 4}", netns=d.netns), encoded=None) for d in batch.dumps]
    return records.Batch(dumps, poll_id=poll_id, timestamp_ns=now)


async def consume(bootstrap: str, store, stop: asyncio.Event, stats: dict) -> None:
    import aiokafka

    consumer = aiokafka.AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id="bench-fleet",
                                         auto_offset_reset="earliest", max_partition_fetch_bytes=64 << 20,
                                         fetch_max_bytes=128 << 20)
    await consumer.start()
    try:
        idle_since = None
        while True:
            got = await consumer.getmany(timeout_ms=500, max_records=64)
            msgs = [m for ms in got.values() for m in ms]
            if not msgs:
                if stop.is_set():
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 3.0:
                        return
                continue
            idle_since = None
            t0 = time.monotonic()
            for m in msgs:
                await asyncio.to_thread(store.insert_protobuf_list, m.value)
                stats["bytes"] += len(m.value)
            stats["busy_s"] += time.monotonic() - t0
            stats["messages"] += len(msgs)
            stats["last_insert"] = time.monotonic()
    finally:
        await consumer.stop()


async def run(args) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))  # kafka_broker.py
    from kafka_broker import kafka_broker

    store = clickhouse.open_store(tempfile.mkdtemp(prefix="xtcp-fleet-bench-"))
    store.ensure_table(retention_s=7 * 86400)
    with SocketFarm(args.sockets // 2, 1, private_ehash=True, active_fraction=args.active,
                    log=lambda m: print(m, file=sys.stderr)) as farm:
        async with Poller(namespaces=farm.glob, groups=request.ALL_GROUPS, interval=3600.0,
                          emit=args.emit) as poller:
            batch = await poller.poll()
            if args.emit == "changed":
                await asyncio.sleep(1.0)
                batch = await poller.poll()
            rows_per_host = len(batch)
            print(f"recorded {rows_per_host} rows per host poll", file=sys.stderr)
            with kafka_broker() as broker:
                url = f"kafka://{broker.bootstrap}/{TOPIC}?compression={args.compression}"
                sinks = [open_sink(url) for _ in range(args.hosts)]
                for s in sinks:
                    await s.start()
                stats = {"bytes": 0, "busy_s": 0.0, "messages": 0, "last_insert": 0.0}
                stop = asyncio.Event()
                consumer = asyncio.create_task(consume(broker.bootstrap, store, stop, stats))
                t0 = time.monotonic()
                poll_id = 0
                while time.monotonic() - t0 < args.duration:
                    tick = time.monotonic()
                    poll_id += 1
                    for h, s in enumerate(sinks):
                        await s.send(replayed(batch, f"sim-{h:05d}", poll_id))
                    await asyncio.sleep(max(0.0, args.interval - (time.monotonic() - tick)))
                for s in sinks:
                    await s.flush(timeout=120)
                produced_s = time.monotonic() - t0
                stop.set()
                try:
                    await asyncio.wait_for(consumer, timeout=args.drain)
                except asyncio.TimeoutError:
                    consumer.cancel()
                for s in sinks:
                    await s.close()
                sent = sum(s.stats.sent_records for s in sinks)
                dropped = sum(s.stats.dropped_records for s in sinks)
    inserted = int(store.query("SELECT count() FROM xtcp.xtcp_records", "TabSeparatedRaw").bytes())
    rollup = int(store.query("SELECT sum(samples) FROM xtcp.xtcp_1m", "TabSeparatedRaw").bytes() or 0)
    store.release()
    offered = rows_per_host * args.hosts * poll_id
    return {"hosts": args.hosts, "rows_per_host_poll": rows_per_host, "interval_s": args.interval,
            "emit": args.emit, "duration_s": round(produced_s, 1), "offered_rows_per_s": round(offered / produced_s),
            "delivered_rows_per_s": round(sent / produced_s), "dropped_by_sinks": dropped,
            "kafka_mb_per_s": round(stats["bytes"] / produced_s / 1e6, 2),
            "message_bytes_per_row": round(stats["bytes"] / inserted, 1) if inserted else None,
            "inserted_rows": inserted, "rollup_samples": rollup, "consumer_lag_rows": sent - inserted,
            "consumer_rows_per_busy_s": round(inserted / stats["busy_s"]) if stats["busy_s"] else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hosts", type=int, default=20)
    p.add_argument("--sockets", type=int, default=10_000, help="sockets per simulated host")
    p.add_argument("--active", type=float, default=0.02)
    p.add_argument("--emit", choices=("all", "changed"), default="all")
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--drain", type=float, default=120.0, help="seconds the consumer may take to catch up")
    p.add_argument("--compression", default="zstd", choices=("zstd", "lz4", "gzip", "none"))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root: the farm's namespaces", file=sys.stderr)
        return 2
    r = asyncio.run(run(args))
    print(json.dumps(r) if args.json else "\n".join(f"{k:>26}: {v}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
