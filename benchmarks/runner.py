"""One in-process tool in its own process, timed by itself, driven by the harness over a pipe.

    python -m benchmarks.runner TOOL CONFIG_JSON

Each tool gets a process of its own so that its RSS and CPU time are its own, and so that it
sets up once (a ``Poller`` opens its namespace fds on the first poll) and is then timed round
after round while the harness alternates tools. Start-up is reported apart.

Tools: ``xtcp-sockets``, ``xtcp-uring``, ``xtcp-uring-inline``, ``xtcp-uring-async`` (one
``await poller.poll()`` plus ``batch.envelope()``: every record encoded as ProtobufList bytes;
the io_uring ones are asked to encode as they receive, ``encode="envelope"``), ``pyroute2``
(``DiagSocket.get_sock_stats`` per namespace and family, ext 0xff), and ``soak`` (a ``Poller``
iterated with ``async for`` every ``interval`` seconds for ``duration`` seconds).

Protocol: the runner prints one JSON line when ready (``{"ready": true, ...}``), then one per
line it reads on stdin (a round), and ends at EOF. ``soak`` prints a ``sample`` line per poll
and a ``summary`` line at the end, reading nothing.

Timing: wall is ``perf_counter_ns`` around the round; CPU is ``getrusage(RUSAGE_SELF)``,
which includes every thread of the process (the namespace opener thread and io_uring's io-wq
workers, where IOSQE_ASYNC moves the dumps).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import sys
import threading
import time
import traceback

from .farm import entered

XTCP_TOOLS = {
    "xtcp-sockets": {"use_uring": False},
    "xtcp-uring": {"use_uring": True, "encode": "envelope"},  # the default: a decode thread
    "xtcp-uring-inline": {"use_uring": True, "decode_thread": False, "encode": "envelope"},
    "xtcp-uring-async": {"use_uring": True, "async_dumps": True, "encode": "envelope"},
}


def cpu_ns() -> int:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return int((ru.ru_utime + ru.ru_stime) * 1e9)


def proc_status() -> dict:
    """VmRSS and VmHWM in KiB, and the number of open fds."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line[:5].lower()] = int(line.split()[1])
    out["fds"] = len(os.listdir("/proc/self/fd"))
    return out


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _poller(cfg: dict, **overrides):
    from xtcp_uring.wire import request
    from xtcp_uring.poller import Poller

    options = dict(namespaces=cfg["namespaces"], groups=request.ALL_GROUPS, interval=cfg.get("interval", 3600.0),
                   dump_timeout=cfg.get("dump_timeout", 30.0))
    options.update(overrides)
    return Poller(**options)


async def _xtcp_rounds(tool: str, cfg: dict) -> None:
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter_ns()
    poller = _poller(cfg, **XTCP_TOOLS[tool])
    await poller.start()
    t1 = time.perf_counter_ns()
    try:
        batch = await poller.poll()  # opens every namespace fd: start-up, not a round
        t2 = time.perf_counter_ns()
        batch.envelope()
        emit({"ready": True, "backend": poller.stats.backend, "start_ms": (t1 - t0) / 1e6,
              "first_poll_ms": (t2 - t1) / 1e6, "sockets": len(batch), **proc_status()})
        del batch
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            try:
                c0, w0 = cpu_ns(), time.perf_counter_ns()
                batch = await poller.poll()
                w1 = time.perf_counter_ns()
                env = batch.envelope()
                w2, c1 = time.perf_counter_ns(), cpu_ns()
                dumps = batch.dumps
                # Encoding is timed where it happens: in the ring as chunks arrive (C's own
                # clock, per chunk) and in envelope() (which then only hands those bytes out).
                ring_encode_ns = sum(d.encode_ns for d in dumps)
                emit({"wall_ns": w2 - w0, "cpu_ns": c1 - c0, "poll_ns": w1 - w0,
                      "encode_ns": ring_encode_ns + (w2 - w1), "envelope_ns": w2 - w1,
                      "decode_ns": sum(d.decode_ns for d in dumps),
                      "sockets": len(batch), "bytes": len(env), "dumps": len(dumps),
                      "dump_errors": sum(1 for d in dumps if d.error),
                      "first_dump_error": next((d.error for d in dumps if d.error), ""),
                      "namespaces_open": len(poller.manager.namespaces), **proc_status()})
                del batch, env, dumps
            except Exception as exc:  # noqa: BLE001 - an error escaping poll() is a result here
                emit({"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=6),
                      **proc_status()})
    finally:
        await poller.close()


def _pyroute2_rounds(cfg: dict) -> None:
    from socket import AF_INET, AF_INET6

    from pyroute2 import DiagSocket

    t0 = time.perf_counter_ns()
    sockets = []
    for path in cfg["paths"]:  # one DiagSocket opened inside each namespace, as we do
        with entered(path):
            ds = DiagSocket()
            ds.bind()
        sockets.append(ds)
    emit({"ready": True, "backend": "pyroute2", "start_ms": (time.perf_counter_ns() - t0) / 1e6,
          "first_poll_ms": 0.0, **proc_status()})
    for line in sys.stdin:
        try:
            c0, w0 = cpu_ns(), time.perf_counter_ns()
            n = 0
            for ds in sockets:
                for fam in (AF_INET, AF_INET6):
                    n += len(ds.get_sock_stats(family=fam, states=cfg.get("states", 0x1FFE),
                                               extensions=cfg.get("ext", 0xFF)))
            w1, c1 = time.perf_counter_ns(), cpu_ns()
            emit({"wall_ns": w1 - w0, "cpu_ns": c1 - c0, "sockets": n, **proc_status()})
        except Exception as exc:  # noqa: BLE001
            emit({"error": f"{type(exc).__name__}: {exc}", **proc_status()})
    for ds in sockets:
        ds.close()


def _exit_when_stdin_closes() -> None:
    for _ in sys.stdin:
        pass
    os._exit(0)  # the harness is gone: nobody reads our samples


async def _soak(cfg: dict) -> None:
    threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    tool = cfg.get("tool", "xtcp-uring")
    poller = _poller(cfg, interval=cfg.get("interval", 1.0), **XTCP_TOOLS[tool])
    duration = cfg["duration"]
    t_start = time.monotonic()
    n = 0
    first_fds = None
    async with poller:
        async for batch in poller:
            e0 = time.perf_counter_ns()
            env = batch.envelope()
            e1 = time.perf_counter_ns()
            n += 1
            st = proc_status()
            first_fds = first_fds if first_fds is not None else st["fds"]
            sample = {"sample": True, "t": time.monotonic() - t_start, "poll": n,
                      "poll_ms": batch.duration_ns / 1e6, "encode_ms": (e1 - e0) / 1e6, "sockets": len(batch),
                      "bytes": len(env), "dump_errors": sum(1 for d in batch.dumps if d.error),
                      "skipped_ticks": poller.stats.skipped_ticks, **st}  # vmrss: batch + bytes alive
            del batch, env
            sample["vmrss_idle"] = proc_status()["vmrss"]  # once the consumer let go of them
            emit(sample)
            if time.monotonic() - t_start >= duration:
                break
        stats = poller.stats.as_dict()
    gc.collect()
    emit({"summary": True, "polls": n, "skipped_ticks": stats["skipped_ticks"],
          "dump_errors": stats["dump_errors"], "backend": stats["backend"], "first_fds": first_fds,
          **proc_status()})


def main(argv: list[str]) -> int:
    tool, cfg = argv[0], json.loads(argv[1])
    if tool in XTCP_TOOLS:
        asyncio.run(_xtcp_rounds(tool, cfg))
    elif tool == "pyroute2":
        _pyroute2_rounds(cfg)
    elif tool == "soak":
        asyncio.run(_soak(cfg))
    else:
        print(f"unknown tool {tool!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
