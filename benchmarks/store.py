"""Bytes per row on disk, and insert time, of the record table layouts: ``python -m benchmarks.store``.

A socket farm (``farm.py``: 100k sockets by default, 2% of connections active) is polled
``--polls`` times, ``--interval`` apart, by the real poller (every attribute group); each batch
is inserted, as the chDB sink does (Arrow), into one table per layout, all in one chDB store:

* ``pre-14``: the layout before issue 14: no codecs (LZ4), sorted (hostname, netns,
  timestamp_ns, cookie), a partition per day. What stores made before #14 hold.
* ``codecs-time-first``: today's codecs with the old, time-first sort key.
* ``current-no-rollups``: ``examples/clickhouse/xtcp_records.sql`` as generated (codecs from
  the .proto's ``[ch:...]``, a socket's samples of one hour together), alone.
* ``current-wide-rollups``: the same with only issue #14's rollups (``xtcp_1m``/``xtcp_1h``,
  every dimension) and their views, as before xTCPView's narrow ones.
* ``current``: the same with all the rollups and their views, as the daemon creates it: the
  differences in insert time between the three are what the views cost.
* ``current-protobuf``: ``current`` again, fed the poll as one ``ProtobufList`` message (what
  a Kafka engine or an HTTP insert parses), which also gives the encoded bytes per record.

``--emit changed`` polls with ``emit="changed"`` (only moved, new and keyframe records), to see
what fewer, sparser samples per socket cost in bytes per row.

Then every table is merged (``OPTIMIZE … FINAL``, what background merges reach in time) and
bytes on disk per row are read from ``system.parts``. Needs root (the farm's namespaces).
``--json`` prints one JSON object per layout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time

from xtcp_uring import clickhouse
from xtcp_uring.wire import request
from xtcp_uring.clickhouse import ddl, rollups
from xtcp_uring.poller import Poller

from .farm import SocketFarm

PRE14_ORDER = "ORDER BY (hostname, netns, timestamp_ns, inet_diag_msg_socket_cookie)"
PRE14_PARTITION = "PARTITION BY toDate(intDiv(timestamp_ns, 1000000000))"


def layouts() -> dict[str, str]:
    """CREATE TABLE statements per layout (database ``bench_<layout>``); ``current`` is the
    generated DDL itself."""
    current = ddl.table_ddl("bench_current")
    no_ttl_settings = current.replace("SETTINGS ttl_only_drop_parts = 1", "")
    time_first = re.sub(r"ORDER BY \(.*\)", PRE14_ORDER, no_ttl_settings)
    time_first = re.sub(r"PARTITION BY .*", PRE14_PARTITION, time_first)
    pre14 = re.sub(r" CODEC\((?:[^()]|\([^()]*\))*\)", "", time_first)
    return {"pre-14": pre14.replace("bench_current.", "bench_pre14."),
            "codecs-time-first": time_first.replace("bench_current.", "bench_time_first."),
            "current-no-rollups": current.replace("bench_current.", "bench_no_rollups."),
            "current-wide-rollups": current.replace("bench_current.", "bench_wide."),
            "current": current,
            "current-protobuf": current.replace("bench_current.", "bench_protobuf.")}


DATABASES = {"pre-14": "bench_pre14", "codecs-time-first": "bench_time_first", "current-no-rollups": "bench_no_rollups",
             "current-wide-rollups": "bench_wide", "current": "bench_current", "current-protobuf": "bench_protobuf"}
NARROW = tuple(t for r in (rollups.HOST, rollups.PREFIX) for t in (r.minute, r.hour) if t)


async def run(args) -> list[dict]:
    tables = layouts()
    store = clickhouse.open_store(tempfile.mkdtemp(prefix="xtcp-store-bench-"))
    for name, sql in tables.items():
        store.query(f"CREATE DATABASE IF NOT EXISTS {DATABASES[name]}")
        store.query(sql)
    for db in ("bench_current", "bench_protobuf", "bench_wide"):
        for stmt in ddl.rollup_statements(db):
            if db != "bench_wide" or not any(f".{t}" in stmt for t in NARROW):
                store.query(stmt)
    encoded_bytes = encoded_rows = 0
    insert_ms = {name: [] for name in tables}
    with SocketFarm(args.sockets // 2, args.namespaces, private_ehash=True, active_fraction=args.active,
                    log=lambda m: print(m, file=sys.stderr)) as farm:
        async with Poller(namespaces=farm.glob, groups=request.ALL_GROUPS, interval=3600.0,
                          emit=args.emit, keyframe_every=args.keyframe_every) as poller:
            for i in range(args.polls):
                t0 = time.monotonic()
                batch = await poller.poll()
                table = clickhouse.arrow_table(batch)
                message = clickhouse.protobuf_list(batch.envelope())
                encoded_bytes += len(message)
                encoded_rows += len(batch)
                order = list(tables)[i % len(tables):] + list(tables)[:i % len(tables)]  # rotated: load drifts
                for name in order:
                    t = time.perf_counter()
                    if name == "current-protobuf":
                        store.insert_protobuf_list(message, DATABASES[name])
                    else:
                        store.insert_arrow(table, DATABASES[name])
                    insert_ms[name].append((time.perf_counter() - t) * 1e3)
                print(f"poll {i + 1}/{args.polls}: {len(batch)} sockets", file=sys.stderr)
                await asyncio.sleep(max(0.0, args.interval - (time.monotonic() - t0)))
    out = []
    for name in tables:
        db = DATABASES[name]
        store.query(f"OPTIMIZE TABLE {db}.{clickhouse.TABLE} FINAL")
        got = store.query(f"SELECT sum(rows), sum(bytes_on_disk), sum(data_compressed_bytes), "
                          f"sum(data_uncompressed_bytes), count() FROM system.parts WHERE database = '{db}' "
                          f"AND table = '{clickhouse.TABLE}' AND active", "TabSeparatedRaw").bytes().decode().split()
        rows, on_disk, compressed, raw, parts = (int(x) for x in got)
        out.append({"layout": name, "sockets": args.sockets, "polls": args.polls, "interval_s": args.interval,
                    "active": args.active, "rows": rows, "parts": parts,
                    "bytes_per_row_on_disk": round(on_disk / rows, 2),
                    "compressed_bytes_per_row": round(compressed / rows, 2),
                    "uncompressed_bytes_per_row": round(raw / rows, 1),
                    "emit": args.emit, "insert_ms_median": round(statistics.median(insert_ms[name]), 1),
                    **({"protobuf_bytes_per_row": round(encoded_bytes / encoded_rows, 1)}
                       if name == "current-protobuf" else {})})
    if args.rollups:
        for table in rollups.TABLES:
            got = store.query(f"SELECT sum(rows), sum(bytes_on_disk) FROM system.parts WHERE database = "
                              f"'bench_current' AND table = '{table}' AND active", "TabSeparatedRaw")
            rows, on_disk = (int(x) for x in got.bytes().decode().split())
            out.append({"layout": f"current:{table}", "rows": rows, "bytes_on_disk": on_disk})
    store.release()
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.store", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sockets", type=int, default=100_000, help="established sockets (2 per connection)")
    p.add_argument("--namespaces", type=int, default=1)
    p.add_argument("--polls", type=int, default=20)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    p.add_argument("--active", type=float, default=0.02, help="share of connections with traffic")
    p.add_argument("--emit", choices=("all", "changed"), default="all")
    p.add_argument("--keyframe-every", type=int, default=60)
    p.add_argument("--rollups", action="store_true", help="also report the rollup tables' rows and bytes")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root: the farm's namespaces", file=sys.stderr)
        return 2
    results = asyncio.run(run(args))
    for r in results:
        if args.json:
            print(json.dumps(r))
        elif "bytes_per_row_on_disk" in r:
            print(f"{r['layout']:>20}: {r['bytes_per_row_on_disk']:6.2f} B/row on disk "
                  f"({r['uncompressed_bytes_per_row']:.0f} uncompressed), {r['rows']} rows in {r['parts']} parts, "
                  f"insert {r['insert_ms_median']:.0f} ms/poll (median)"
                  + (f", {r['protobuf_bytes_per_row']} B/record as protobuf" if "protobuf_bytes_per_row" in r else ""))
        else:
            print(f"{r['layout']:>20}: {r['rows']} rows, {r['bytes_on_disk']} bytes on disk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
