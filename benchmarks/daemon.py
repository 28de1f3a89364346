"""The daemon end to end, beside the raw dump: ``python -m benchmarks.daemon``.

The real ``python -m xtcp_uring`` process polls a socket farm (``--sockets``, ``--active``)
every ``--interval`` seconds for ``--polls`` polls, once per sink (``--sinks``: the default
chDB store, and Kafka through the test suite's broker). Its CPU time (``/proc/<pid>/stat``:
every thread, chDB's included) is read each time it logs a poll; CPU per poll is the CPU spent
between the second and the last poll's line divided by the polls between (start-up and the
first poll, which opens every namespace and creates the store, are left out), and steady RSS
is the largest ``VmRSS`` seen after the second poll, with its anonymous and file-backed parts
(``RssAnon``, ``RssFile``: chDB's library is file-backed). The raw dump (``raw_dump.c``, the
floor) is timed on the same farm. ``--checkout DIR`` (repeatable) runs each sink of each
checkout's daemon on the same farm, one after the other: before and after in one run. Needs
root (the farm).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .farm import SocketFarm
from .harness import RawTool

_POLL_LINE = re.compile(r"xtcp_uring\.daemon: poll (\d+): ")
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def rss_parts_kb(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of ``pid`` in kB (0 for what cannot be read)."""
    out = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in out:
                    out[key] = int(line.split()[1])
    except OSError:
        pass
    return out


def run_daemon(glob: str, sink: str | None, args, data_dir: str, checkout: str | None) -> dict:
    python = f"{checkout}/.venv/bin/python" if checkout else sys.executable
    cmd = [python, "-m", "xtcp_uring", "--namespaces", glob, "--interval", str(args.interval),
           "--jitter", "0", "--max-polls", str(args.polls), "--metrics-listen", "off", "--data-dir", data_dir,
           *(["--sink", sink] if sink else []), *args.daemon_args]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            cwd=checkout or None)
    marks, rss = [], []
    for line in proc.stderr:
        m = _POLL_LINE.search(line)
        if m and "--emit" not in line:
            n = int(m.group(1))
            marks.append((n, cpu_s(proc.pid)))
            if n >= 2:
                rss.append(rss_parts_kb(proc.pid))
    rc = proc.wait()
    steady = [(n, c) for n, c in marks if n >= 2]
    per_poll = (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0]) if len(steady) > 1 else None
    peak = max(rss, key=lambda r: r["VmRSS"]) if rss else None
    name = sink.split("://")[0] if sink else "chdb (default)"
    return {"sink": f"{name} [{checkout or 'this checkout'}]", "exit": rc, "polls": len(marks),
            "cpu_s_per_poll": round(per_poll, 3) if per_poll is not None else None,
            "steady_rss_mb": round(peak["VmRSS"] / 1024, 1) if peak else None,
            "rss_anon_mb": round(peak["RssAnon"] / 1024, 1) if peak else None,
            "rss_file_mb": round(peak["RssFile"] / 1024, 1) if peak else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.daemon", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sockets", type=int, default=100_000)
    p.add_argument("--active", type=float, default=0.02)
    p.add_argument("--interval", type=float, default=5.0)
    p.add_argument("--polls", type=int, default=8)
    p.add_argument("--sinks", default="chdb,kafka", help="comma list of chdb, kafka")
    p.add_argument("--checkout", action="append",
                   help="run the daemon of this checkout (its .venv); repeat to compare, e.g. /work/main and .")
    p.add_argument("--daemon-args", nargs=argparse.REMAINDER, default=[], help="more daemon flags (last)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root: the farm's namespaces", file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))  # kafka_broker.py
    results = []
    with SocketFarm(args.sockets // 2, 1, private_ehash=True, active_fraction=args.active,
                    log=lambda m: print(m, file=sys.stderr)) as farm:
        raw = RawTool(farm.paths)
        raw.start()
        rounds = [raw.round() for _ in range(5)]
        raw.close()
        results.append({"sink": "raw dump", "cpu_s_per_poll": round(statistics.median(r["cpu_ns"] for r in rounds)
                                                                   / 1e9, 3),
                        "steady_rss_mb": round(max(r["rss_kb"] for r in rounds) / 1024, 1)})
        for sink in args.sinks.split(","):
            for checkout in args.checkout or [None]:
                with tempfile.TemporaryDirectory(prefix="xtcp-daemon-bench-") as data_dir:
                    if sink == "kafka":
                        from kafka_broker import kafka_broker

                        with kafka_broker() as broker:
                            results.append(run_daemon(farm.glob, f"kafka://{broker.bootstrap}/bench", args,
                                                      data_dir, checkout))
                    else:
                        results.append(run_daemon(farm.glob, None, args, f"{data_dir}/store", checkout))
    floor = results[0]["cpu_s_per_poll"]
    for r in results:
        if r.get("cpu_s_per_poll") is not None and floor:
            r["cpu_vs_raw"] = round(r["cpu_s_per_poll"] / floor, 2)
        print(json.dumps(r) if args.json else
              f"{r['sink']:>22}: {r.get('cpu_s_per_poll')} s CPU per poll ({r.get('cpu_vs_raw')}x raw), "
              f"steady RSS {r.get('steady_rss_mb')} MB"
              + (f" (anon {r['rss_anon_mb']}, file {r['rss_file_mb']})" if r.get("rss_anon_mb") is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
