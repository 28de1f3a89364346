"""Scenario `closes`: capture of TCP destroy events across namespaces, against `ss -E`.

    .venv/bin/python -m benchmarks.closes [--namespaces 4] [--rates 2000,8000,32000] [--seconds 3] [--json]
    .venv/bin/python -m benchmarks.closes --polls [...]   # and polls back to back on the same ring

For each total rate (connections per second, split evenly over M namespaces made with ``ip
netns add``), side by side on the same churn: our reader (``NamespaceManager`` + ``CloseEvents``
on io_uring, in this process, as the daemon runs it) and one ``ss -E -t -n -H`` per namespace
(output to a file, counted afterwards: ``ss -E > /dev/null`` plus the count). A C churner per
namespace (close_churn.c) opens and closes loopback connections at its share of the rate, two
socket ends each. Reported per rate: events made, captured and lost by each, and CPU (user +
sys) per 1,000 captured events — ours from this process's rusage over the window, ss's from
RUSAGE_CHILDREN once the churners are reaped (the ss processes only). Root needed. Results go to stdout (and ``--out`` as JSON lines with ``--json``).

``--polls``: our reader is a ``Poller(close_events=True)`` instead, which polls the same
namespaces back to back while the churn runs (the close subscriptions share the dump ring):
also reported, the polls' wall time (median, p90) before the churn and during it, so what the
closes cost the polls shows (and our CPU then includes the polls').
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from xtcp_uring import records
from xtcp_uring.closes import CloseEvents
from xtcp_uring.namespaces import NamespaceManager
from xtcp_uring.poller import Poller

HERE = Path(__file__).resolve().parent
BUILD = HERE / "build"


def _build() -> Path:
    binary = BUILD / "close_churn"
    src = HERE / "close_churn.c"
    if not binary.exists() or binary.stat().st_mtime < src.stat().st_mtime:
        BUILD.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cc", "-O2", "-o", str(binary), str(src)], check=True)
    return binary


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _ms(samples: list[float], q: float) -> float | None:
    return round(sorted(samples)[int(q * (len(samples) - 1))], 2) if samples else None


async def _one_rate(names: list[str], glob: str, rate: float, seconds: float, churner: Path, rcvbuf: int,
                    polls: bool = False) -> dict:
    poller = manager = None
    if polls:
        poller = Poller(namespaces=glob, close_events=True, close_events_rcvbuf=rcvbuf, close_flush_interval=0.5,
                        use_uring=True, interval=3600)
        await poller.start()
        events = poller.close_events
    else:
        manager = NamespaceManager(glob, close_events_rcvbuf=rcvbuf)
        events = CloseEvents(labels=lambda ns, ts: records.encode_labels(netns=ns.name, timestamp_ns=ts),
                             use_uring=True, flush_interval=0.5)
        manager.before_close.append(events.forget)
        events.start()
        await manager.reconcile()
        events.sync(manager.namespaces)
    captured = 0
    poll_ms: dict[str, list[float]] = {"idle": [], "churn": []}
    phase = ["idle"]

    async def poll_back_to_back():
        while phase[0] != "done":
            batch = await poller.poll()
            poll_ms[phase[0] if phase[0] != "done" else "churn"].append(batch.duration_ns / 1e6)

    async def drain():
        nonlocal captured
        async for batch in events:
            captured += len(batch)

    drainer = asyncio.create_task(drain())
    polling = asyncio.create_task(poll_back_to_back()) if polls else None
    tmp = tempfile.mkdtemp(prefix="xtcp-closes-bench-")
    ss = []
    for ns in names:
        out = open(f"{tmp}/{ns}.txt", "wb")
        # Line-buffered: ss dies on SIGINT, and a block-buffered tail would read as lost events.
        ss.append((subprocess.Popen(["ip", "netns", "exec", ns, "stdbuf", "-oL", "ss", "-E", "-t", "-n", "-H"], stdout=out,
                                    stderr=subprocess.DEVNULL), out))
    # Churners start together at `start`, once every subscriber is in place; started before our
    # clock so their fork/exec is not counted as our CPU.
    start = time.time() + 1.0
    procs = [subprocess.Popen(["ip", "netns", "exec", ns, str(churner), str(rate / len(names)), str(seconds),
                               str(start)], stdout=subprocess.PIPE) for ns in names]
    await asyncio.sleep(max(0.0, start - time.time() - 0.05))
    cpu0, t0 = _cpu_s(), time.monotonic()
    phase[0] = "churn"
    while any(p.poll() is None for p in procs):
        await asyncio.sleep(0.05)
    phase[0] = "done"
    if polling is not None:
        await polling
    outs = [p.stdout.read().split() for p in procs]
    made = sum(int(o[0]) for o in outs)
    churn_s = max(float(o[1]) for o in outs)
    await asyncio.sleep(1.0)
    events.flush()
    drainer.cancel()
    await asyncio.gather(drainer, return_exceptions=True)
    captured += sum(len(b) for b in events.take_ready())  # what the drainer had not taken yet
    cpu = _cpu_s() - cpu0
    wall = time.monotonic() - t0
    ss_lines = 0
    before = resource.getrusage(resource.RUSAGE_CHILDREN)  # the churners are reaped already
    for proc, out in ss:
        proc.send_signal(signal.SIGINT)
    for proc, out in ss:
        proc.wait()
        out.close()
        with open(out.name, "rb") as f:
            ss_lines += sum(1 for _ in f)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    ss_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    lost = events.stats.lost
    if poller is not None:
        await poller.close()
    else:
        await events.close()
        manager.close()
    extra = {}
    if polls:
        extra = {"polls_idle": len(poll_ms["idle"]), "poll_ms_idle_p50": _ms(poll_ms["idle"], 0.5),
                 "poll_ms_idle_p90": _ms(poll_ms["idle"], 0.9), "polls_churn": len(poll_ms["churn"]),
                 "poll_ms_churn_p50": _ms(poll_ms["churn"], 0.5), "poll_ms_churn_p90": _ms(poll_ms["churn"], 0.9)}
    return {"kind": "closes", "namespaces": len(names), "conn_rate_target": rate, **extra,
            "event_rate": round(made / churn_s),
            "events": made, "xtcp_captured": captured, "xtcp_lost": lost,
            "xtcp_cpu_ms_per_1000": round(cpu * 1e6 / max(captured, 1), 1),
            "xtcp_cpu_share": round(cpu / wall, 3),
            "ss_captured": ss_lines, "ss_lost": made - ss_lines,
            "ss_cpu_ms_per_1000": round(ss_cpu * 1e6 / max(ss_lines, 1), 1),
            "rcvbuf": rcvbuf, "load1": os.getloadavg()[0], "kernel": os.uname().release}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.closes", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--namespaces", type=int, default=4)
    p.add_argument("--rates", default="2000,8000,32000", help="total connections per second, comma list")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rcvbuf", type=int, default=4 << 20)
    p.add_argument("--polls", action="store_true", help="a Poller polls back to back on the same ring meanwhile")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=str(HERE / "results"))
    args = p.parse_args(argv)
    churner = _build()
    prefix = f"xtcpbench-closes-{os.getpid()}-"
    names = [f"{prefix}{i}" for i in range(args.namespaces)]
    rows = []
    try:
        for ns in names:
            subprocess.run(["ip", "netns", "add", ns], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        for rate in (float(r) for r in args.rates.split(",")):
            rows.append(asyncio.run(_one_rate(names, prefix + "*", rate, args.seconds, churner, args.rcvbuf,
                                              args.polls)))
            r = rows[-1]
            print(f"{r['conn_rate_target']:>7.0f} conn/s = {r['event_rate']:>6} events/s over {r['namespaces']} ns: {r['events']} events | xtcp captured "
                  f"{r['xtcp_captured']} lost {r['xtcp_lost']} cpu {r['xtcp_cpu_ms_per_1000']} ms/1000 | ss -E "
                  f"captured {r['ss_captured']} lost {r['ss_lost']} cpu {r['ss_cpu_ms_per_1000']} ms/1000", flush=True)
            if args.polls:
                print(f"        polls: {r['polls_idle']} before the churn, p50 {r['poll_ms_idle_p50']} p90 "
                      f"{r['poll_ms_idle_p90']} ms; {r['polls_churn']} during it, p50 {r['poll_ms_churn_p50']} p90 "
                      f"{r['poll_ms_churn_p90']} ms", flush=True)
    finally:
        for ns in names:
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    if args.json:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        with open(Path(args.out) / f"closes-{int(time.time())}.jsonl", "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
