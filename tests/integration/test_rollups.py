"""The rollups answer the seed's question, "p50/p90 RTT and retransmits by location", as the raw
table does: real sockets with traffic in real namespaces, polled by two pollers standing for
two hosts in two locations, delivered through the chDB sink; in one location the loopback
goes down for a moment mid-traffic, so the kernel really retransmits there."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from xtcp_uring.clickhouse import rollups
from xtcp_uring.poller import Poller
from xtcp_uring.sinks import open_sink

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # benchmarks/ is not an installed package
from benchmarks.farm import SocketFarm  # noqa: E402

pytestmark = pytest.mark.root

HOSTS = {"host-east": "dc-east", "host-west": "dc-west"}  # hostname -> location
LEVELS = rollups.QUANTILE_LEVELS


def rows(store, sql: str) -> dict[str, list[str]]:
    out = store.query(sql, "TabSeparatedRaw").bytes().decode()
    return {line.split("\t")[0]: line.split("\t")[1:] for line in out.splitlines()}


# Per-poll deltas from the raw rows, the way the rollup defines them: each sample minus the
# socket's previous one; the first sample and a counter that went backwards count 0.
RAW_DELTAS = """
SELECT location, sum(d_retrans), sum(d_acked), count()
FROM (
    SELECT location,
        if(n > 1 AND tcp_info_total_retrans >= prev_retrans, tcp_info_total_retrans - prev_retrans, 0) AS d_retrans,
        if(n > 1 AND tcp_info_bytes_acked >= prev_acked, tcp_info_bytes_acked - prev_acked, 0) AS d_acked
    FROM (
        SELECT location, tcp_info_total_retrans, tcp_info_bytes_acked,
            row_number() OVER w AS n,
            lagInFrame(tcp_info_total_retrans) OVER w AS prev_retrans,
            lagInFrame(toUInt64(tcp_info_bytes_acked)) OVER w AS prev_acked
        FROM xtcp.xtcp_records
        WINDOW w AS (PARTITION BY hostname, inet_diag_msg_socket_cookie ORDER BY timestamp_ns
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    )
)
GROUP BY location ORDER BY location
"""


async def poll_into(sink, pollers: dict[str, Poller], polls: int, farm: SocketFarm) -> None:
    for i in range(polls):
        for poller in pollers.values():
            await sink.send(await poller.poll())
        if i == 1:
            # dc-west's loopback drops everything for a while: its active connections time out
            # and retransmit (RTO) once it is back.
            west = farm.names[1]
            subprocess.run(["ip", "-n", west, "link", "set", "lo", "down"], check=True)
            await asyncio.sleep(1.0)
            subprocess.run(["ip", "-n", west, "link", "set", "lo", "up"], check=True)
        await asyncio.sleep(1.0)


async def test_rollups_answer_rtt_and_retransmits_by_location_like_the_raw_rows(tmp_path):
    with SocketFarm(connections=60, namespaces=2, active_fraction=1.0, active_interval=0.1) as farm:
        pollers = {host: Poller(namespaces=farm.names[i], hostname=host, location=loc)
                   for i, (host, loc) in enumerate(HOSTS.items())}
        async with open_sink(f"chdb://{tmp_path}/store") as sink:
            for p in pollers.values():
                await p.start()
            try:
                await poll_into(sink, pollers, 6, farm)
            finally:
                for p in pollers.values():
                    await p.close()
            await sink.flush(timeout=60)
            store = sink.store

            from_rollup = rows(store, f"""
                SELECT location, quantilesBFloat16Merge({LEVELS})(rtt_us), sum(retrans_segs), sum(bytes_acked),
                       sum(samples), uniqMerge(sockets)
                FROM xtcp.{rollups.MINUTE_TABLE} GROUP BY location ORDER BY location""")
            from_raw = rows(store, f"""
                SELECT location, quantilesBFloat16If({LEVELS})(tcp_info_rtt, tcp_info_rtt > 0), count(),
                       uniqExact(inet_diag_msg_socket_cookie), quantilesExactIf(0.45, 0.55, 0.85, 0.95)(tcp_info_rtt, tcp_info_rtt > 0)
                FROM xtcp.xtcp_records GROUP BY location ORDER BY location""")
            deltas = rows(store, RAW_DELTAS)
            hourly = rows(store, f"""
                SELECT location, quantilesBFloat16Merge({LEVELS})(rtt_us), sum(retrans_segs), sum(bytes_acked)
                FROM xtcp.{rollups.HOUR_TABLE} GROUP BY location ORDER BY location""")

    assert set(from_rollup) == set(from_raw) == set(HOSTS.values())
    for loc in HOSTS.values():
        quantiles, retrans, acked, samples, sockets = from_rollup[loc]
        raw_quantiles, raw_samples, raw_sockets, exact = from_raw[loc]
        # Merged minute states give what the same estimator gives over the raw rows ...
        assert quantiles == raw_quantiles and samples == raw_samples and int(sockets) == int(raw_sockets)
        # ... which ranks where it should among the exact values (within 5% of rank; bfloat16
        # rounds a value by < 1%): RTTs here cluster, so a rank, not a value, is what holds.
        p50, p90, _ = (float(x) for x in quantiles.strip("[]").split(","))
        e45, e55, e85, e95 = (float(x) for x in exact.strip("[]").split(","))
        assert 0 < 0.99 * e45 - 1 <= p50 <= 1.01 * e55 + 1 and 0.99 * e85 - 1 <= p90 <= 1.01 * e95 + 1
        # Retransmits and bytes: sums of per-poll deltas, as the raw rows give them.
        assert [retrans, acked] == deltas[loc][:2]
        # The hour rollup, fed from the minutes, says the same.
        assert hourly[loc] == [quantiles, retrans, acked]
    assert int(from_rollup["dc-west"][1]) > 0  # the outage really retransmitted
    assert int(from_rollup["dc-east"][2]) > 0 and int(from_rollup["dc-west"][2]) > 0  # traffic was counted
