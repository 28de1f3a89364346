"""How long xTCPView's page takes to load over a big embedded store.

    python -m benchmarks.view_load --sockets 100000 --hours 24 --interval 300 [--rollup] [--data-dir DIR]

Fills a store with ``sockets`` sockets polled every ``interval`` seconds for ``hours`` (rows
made in ClickHouse from ``numbers()``: a realistic shape — 90% established, a per-socket RTT
spread over 0.2-80 ms, CUBIC and BBR, 200 namespaces, 5,000 remote /24s, growing byte counters —
not a capture). The rows go in one poll per INSERT, in time order, as the daemon inserts them,
so the store's own materialized views fill the rollups (``xtcp_1m``/``xtcp_1h`` and the narrow
``xtcp_host_*``/``xtcp_prefix_1h``, per-poll deltas included) exactly as they do in production; nothing back-fills them. Then serves the
page as ``view`` does and asks for everything the page asks for at once (the chart list, the
filters and every chart, six requests in flight as a browser does), ``--repeat`` times per
range; the ranges end at the store's last sample. With ``--rollup`` the page uses the rollups
where they answer (as ``view`` does); without, it reads the records alone. Prints the store's
rows and bytes on disk and the median page load per range. A store given with --data-dir is
reused when it already has the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from xtcp_uring.clickhouse import DATABASE, TABLE, open_store
from xtcp_uring.clickhouse.rollups import LAST_TABLE, TABLES
from xtcp_uring.view import StoreBackend, ViewServer
from xtcp_uring.view.charts import CHARTS

FILL = """
INSERT INTO {db}.{table} (timestamp_ns, poll_id, hostname, location, netns, inet_diag_msg_family,
    inet_diag_msg_state, inet_diag_msg_socket_cookie, inet_diag_msg_socket_destination,
    inet_diag_msg_socket_destination_port, inet_diag_msg_socket_source_port, tcp_info_rtt, tcp_info_rtt_var,
    tcp_info_min_rtt, tcp_info_snd_cwnd, tcp_info_bytes_acked, tcp_info_bytes_received, tcp_info_bytes_sent,
    tcp_info_bytes_retrans, tcp_info_segs_out, tcp_info_total_retrans, tcp_info_delivery_rate,
    tcp_info_delivery_rate_app_limited, congestion_algorithm_string)
SELECT {t0} + poll * {step} AS timestamp_ns, poll + 1 AS poll_id, 'bench-host', 'pop1', concat('ns', toString(sock % 200)),
    2, if(sock % 10 = 0, 10, if(sock % 10 = 1, 6, 1)), sock, reverse(reinterpretAsString(toUInt32(
        167772160 + (cityHash64(sock) % 5000) * 256 + sock % 200))), 443, 30000 + sock % 30000,
    toUInt32(200 + cityHash64(sock, 1) % 80000 + rand() % 2000) AS rtt, intDiv(rtt, 4), intDiv(rtt, 2),
    10 + sock % 90, toUInt64(poll) * (sock % 1000) * 1000, toUInt64(poll) * (sock % 700) * 100,
    toUInt64(poll) * (sock % 1000) * 1000 + 1, toUInt64(poll) * (sock % 13) * 10,
    toUInt32(poll * 10 + 1), toUInt32(poll * (sock % 3)), toUInt64(1e6 + cityHash64(sock, 2) % 1e8),
    rand() % 2, if(sock % 2 = 0, 'cubic', 'bbr')
FROM (SELECT {first_poll} + intDiv(number, {sockets}) AS poll, number % {sockets} AS sock
      FROM numbers({rows}))"""


def fill(store, sockets: int, polls: int, interval: int, t0_ns: int) -> None:
    step = interval * 10**9
    # One poll per INSERT, in time order, as the daemon inserts: the store's materialized views
    # fill xtcp_1m/xtcp_1h at each insert, and a counter's delta is taken against the socket's
    # sample of the previous insert (several polls in one insert would all see the same one).
    for poll in range(polls):
        store.query(FILL.format(db=DATABASE, table=TABLE, t0=t0_ns, step=step, sockets=sockets, first_poll=poll,
                                rows=sockets))
        if (poll + 1) % 24 == 0 or poll + 1 == polls:
            print(f"  filled polls {poll + 1}/{polls}", flush=True)


def _table_size(store, table: str) -> tuple[int, int]:
    """(rows, bytes on disk) of a table's active parts."""
    out = store.query(f"SELECT sum(rows), sum(bytes_on_disk) FROM system.parts WHERE database = '{DATABASE}' "
                      f"AND table = '{table}' AND active", "CSV").bytes().decode()
    rows, size = out.strip().split(",")
    return int(rows), int(size)


def page_load(url: str, span: str) -> float:
    paths = ["api/charts", f"api/filters?{span}"] + [f"api/chart/{c}?{span}" for c in CHARTS]

    def get(path: str) -> None:
        with urllib.request.urlopen(url + path, timeout=300) as r:
            doc = json.load(r)
        if "error" in doc:
            raise RuntimeError(f"{path}: {doc['error']}")

    started = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(get, paths))
    return time.monotonic() - started


RANGES = {"1h": 3600, "6h": 6 * 3600, "24h": 86400}


def chart_times(url: str, span: str) -> dict[str, tuple[str, float]]:
    """Each chart alone, one after the other: (its source, seconds)."""
    out = {}
    for name in ["filters", *CHARTS]:
        path = f"api/filters?{span}" if name == "filters" else f"api/chart/{name}?{span}"
        started = time.monotonic()
        with urllib.request.urlopen(url + path, timeout=300) as r:
            doc = json.load(r)
        out[name] = (doc.get("source", "raw"), time.monotonic() - started)
    return out


async def serve_and_measure(data_dir: str, ranges: list[str], repeat: int, end: int,
                            rollups: bool, per_chart: bool = False) -> dict[str, list[float]]:
    backend = StoreBackend(data_dir)
    server = ViewServer(backend, "127.0.0.1", 0, rollups=rollups)
    await server.start()
    try:
        out = {}
        for rng in ranges:
            span = f"from={end - RANGES[rng]}&to={end}"  # as range= would, had the last poll been now
            out[rng] = [await asyncio.to_thread(page_load, server.url, span) for _ in range(repeat)]
            if per_chart:
                each = await asyncio.to_thread(chart_times, server.url, span)
                print(f"range={rng}, one chart at a time: " + ", ".join(f"{n} {t:.2f} s ({src})"
                                                                     for n, (src, t) in each.items()), flush=True)
        return out
    finally:
        await server.close()
        backend.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sockets", type=int, default=100_000)
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--interval", type=int, default=300, help="seconds between polls (the daemon's default: 10)")
    ap.add_argument("--data-dir", help="store to fill (or reuse); default a temporary one, removed after")
    ap.add_argument("--ranges", default="1h,24h")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rollup", action="store_true", help="the page reads the store's rollups xtcp_1m/xtcp_1h where "
                    "they answer (xtcp_uring/view/rollup.py), as `view` does; without it, the records alone")
    ap.add_argument("--per-chart", action="store_true", help="also time each chart alone (and the filters)")
    args = ap.parse_args()
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="xtcp-view-bench-")
    polls = int(args.hours * 3600 // args.interval)
    want = polls * args.sockets
    store = open_store(data_dir)
    try:
        store.ensure_table()
        have = int(store.query(f"SELECT count() FROM {DATABASE}.{TABLE}", "CSV").bytes())
        if have != want:
            for table in (TABLE, *TABLES, LAST_TABLE):  # LAST: the previous samples
                store.query(f"TRUNCATE TABLE {DATABASE}.{table}")
            print(f"filling {want:,} rows ({args.sockets:,} sockets x {polls} polls every {args.interval} s)")
            t0 = (int(time.time()) - polls * args.interval) * 10**9
            started = time.monotonic()
            fill(store, args.sockets, polls, args.interval, t0)
            print(f"  in {time.monotonic() - started:.0f} s")
        end = int(store.query(f"SELECT intDiv(max(timestamp_ns), 1000000000) + 1 FROM {DATABASE}.{TABLE}",
                              "CSV").bytes())
        sizes = {t: _table_size(store, t) for t in (TABLE, *TABLES)}
    finally:
        store.release()
    times = asyncio.run(serve_and_measure(data_dir, args.ranges.split(","), args.repeat, end, args.rollup,
                                     args.per_chart))
    rows, disk = sizes[TABLE]
    print(f"store: {rows:,} rows, {disk / 1e9:.2f} GB on disk ({args.sockets:,} sockets, {args.hours:g} h, "
          f"every {args.interval} s); rollups: " + ", ".join(f"{t} {n:,} rows {b / 1e9:.2f} GB"
                                                              for t, (n, b) in sizes.items() if t != TABLE)
          + ("" if args.rollup else " (not read: --rollup not given)"))
    for rng, ts in times.items():
        print(f"page load range={rng}: median {statistics.median(ts):.2f} s (runs: {', '.join(f'{t:.2f}' for t in ts)})")
    if not args.data_dir:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
