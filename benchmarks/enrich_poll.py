"""What the namespace labels cost per poll, as the poller pays it: ``python -m benchmarks.enrich_poll``.

``benchmarks.enrich`` times ``ContainerEnricher.refresh()`` alone; this times everything the
poller adds per poll for N namespaces (containerd pods, files laid out by ``benchmarks.enrich``'s
stand-in host): ``NamespaceLabeler.refresh()`` (the {namespace: pids} map and the enricher) and
one ``namespace_part()`` per namespace and family (the label bytes of each dump), in the steady
state (nothing changed) and with ``--churn`` of the namespaces gaining a process each poll.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import dataclass

from benchmarks.enrich import Host
from xtcp_uring.enrich import ContainerEnricher
from xtcp_uring.enrich.labels import HostLabels
from xtcp_uring.enrich.namespace_labels import NamespaceLabeler

FAMILIES = (2, 10)


@dataclass
class FakeNamespace:  # the attributes of namespaces.Namespace the labeler reads
    key: tuple
    name: str
    inode: int
    cookie: int
    pid: int
    pids: tuple
    is_host: bool = False


def one_poll(labeler: NamespaceLabeler, namespaces: list[FakeNamespace]) -> float:
    t0 = time.perf_counter()
    labeler.refresh(namespaces)
    for ns in namespaces:
        for fam in FAMILIES:
            labeler.namespace_part(ns, fam)
    return (time.perf_counter() - t0) * 1000


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.enrich_poll", description=__doc__.split("\n")[0])
    p.add_argument("--namespaces", type=int, default=1000)
    p.add_argument("--pids", type=int, default=3)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--churn", type=float, default=0.02)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="xtcp-enrich-bench-") as base:
        host = Host(base, args.namespaces, args.pids)

        def namespaces():
            return [FakeNamespace((4, ino), f"pid:{pids[0]}", ino, ino, min(pids), tuple(pids))
                    for ino, pids in host.namespaces.items()]

        labeler = NamespaceLabeler(HostLabels.build("ams1", ["rack=r12"]), ContainerEnricher(host.roots()))
        cold = one_poll(labeler, namespaces())
        steady = [one_poll(labeler, namespaces()) for _ in range(args.rounds)]
        keys = list(host.namespaces)
        per_poll = max(1, int(len(keys) * args.churn))
        churn = []
        for r in range(args.rounds):
            for j in range(per_poll):
                host.fork(keys[(r * per_poll + j) % len(keys)])
            churn.append(one_poll(labeler, namespaces()))
        labelled = sum(1 for ns in namespaces() if labeler.context(ns).pod_name)
        assert labelled == args.namespaces, f"only {labelled} of {args.namespaces} labelled"
    result = {"namespaces": args.namespaces, "families": len(FAMILIES), "cold_ms": round(cold, 2),
              "steady_ms_median": round(statistics.median(steady), 3),
              "steady_ms_p95": round(sorted(steady)[int(0.95 * len(steady))], 3),
              "churn_namespaces_per_poll": per_poll,
              "churn_ms_median": round(statistics.median(churn), 3),
              "churn_ms_p95": round(sorted(churn)[int(0.95 * len(churn))], 3)}
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:28} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
