"""What container/pod enrichment costs per poll: ``python -m benchmarks.enrich``.

``ContainerEnricher.refresh()`` is timed on N namespaces, each a containerd CRI pod (a pause
container and one app, ``--pids`` processes in all), in three cases:

* ``cold``: the first refresh, every cgroup and runtime state file read;
* ``unchanged``: nothing changed since the last poll (the steady state);
* ``churn``: ``--churn`` of the namespaces have a new process each poll and a pod replaced by
  a new one every tenth poll (new cgroup reads, new state files).

The files are written to a temporary directory the way the kernel and runc present them (a
``<pid>/cgroup`` per process under a stand-in ``/proc``, runc ``state.json`` and OCI
``config.json`` per container) and read through ``ContainerRoots``: thousands of real
containers are not needed to time the cache, and the unchanged case opens no file at all.
No root needed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import tempfile
import time

from xtcp_uring.enrich import ContainerEnricher, ContainerRoots


class Host:
    """A stand-in /proc and containerd state for ``namespaces`` pods."""

    def __init__(self, base: str, namespaces: int, pids: int):
        self.base = base
        self.proc = os.path.join(base, "proc")
        self.runc = os.path.join(base, "run/containerd/runc/k8s.io")
        self.next_pid = 1000
        self.pids_per_ns = pids
        self.namespaces: dict[int, list[int]] = {}
        for i in range(namespaces):
            self.namespaces[4026540000 + i] = self.pod(f"pod-{i}")

    def roots(self) -> ContainerRoots:
        return ContainerRoots(proc=self.proc, containerd_runc=os.path.dirname(self.runc), runc_roots=(),
                              docker_containers=self.base + "/none", storage_roots=(), storage_run_roots=())

    def pod(self, name: str) -> list[int]:
        uid = secrets.token_hex(16)
        sandbox, app = secrets.token_hex(32), secrets.token_hex(32)
        common = {"io.kubernetes.cri.sandbox-name": name, "io.kubernetes.cri.sandbox-namespace": "bench",
                  "io.kubernetes.cri.sandbox-uid": uid, "io.kubernetes.cri.sandbox-id": sandbox}
        self.container(sandbox, uid, {**common, "io.kubernetes.cri.container-type": "sandbox"})
        self.container(app, uid, {**common, "io.kubernetes.cri.container-type": "container",
                                  "io.kubernetes.cri.container-name": "app",
                                  "io.kubernetes.cri.image-name": "registry.example/app:1"})
        pids = [self.process(sandbox, uid)]
        pids += [self.process(app, uid) for _ in range(self.pids_per_ns - 1)]
        return pids

    def container(self, cid: str, uid: str, ann: dict) -> None:
        bundle = os.path.join(self.base, "bundles", cid)
        os.makedirs(bundle)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump({"ociVersion": "1.0.2", "annotations": ann, "process": {"args": ["app"]}}, f)
        os.makedirs(os.path.join(self.runc, cid))
        labels = [f"{k}={v}" for k, v in ann.items()] + [f"bundle={bundle}"]
        with open(os.path.join(self.runc, cid, "state.json"), "w") as f:
            json.dump({"id": cid, "init_process_pid": 1, "config": {"labels": labels}}, f)

    def process(self, cid: str, uid: str) -> int:
        pid = self.next_pid
        self.next_pid += 1
        path = (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice/"
                f"cri-containerd-{cid}.scope")
        os.makedirs(os.path.join(self.proc, str(pid)))
        with open(os.path.join(self.proc, str(pid), "cgroup"), "w") as f:
            f.write(f"0::{path}\n")
        return pid

    def pod_cgroup(self, pid: int) -> str:
        with open(os.path.join(self.proc, str(pid), "cgroup")) as f:
            return f.read()

    def fork(self, key: int) -> None:
        """In namespace ``key``, an app process exits and another one starts."""
        pids = self.namespaces[key]
        pid = self.next_pid
        self.next_pid += 1
        os.makedirs(os.path.join(self.proc, str(pid)))
        with open(os.path.join(self.proc, str(pid), "cgroup"), "w") as f:
            f.write(self.pod_cgroup(pids[-1]))
        self.namespaces[key] = [*pids[:-1], pid]


def timed(enricher: ContainerEnricher, pids: dict) -> float:
    t0 = time.perf_counter()
    enricher.refresh(pids)
    return (time.perf_counter() - t0) * 1000


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.enrich", description=__doc__.split("\n")[0])
    p.add_argument("--namespaces", type=int, default=1000)
    p.add_argument("--pids", type=int, default=3, help="processes per namespace (pause + app ones)")
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--churn", type=float, default=0.02, help="share of namespaces with a new process each poll")
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="xtcp-enrich-bench-") as base:
        host = Host(base, args.namespaces, args.pids)
        enricher = ContainerEnricher(host.roots())
        cold = timed(enricher, host.namespaces)
        labelled = sum(1 for c in enricher.refresh(host.namespaces).values() if c.pod_name)
        assert labelled == args.namespaces, f"only {labelled} of {args.namespaces} namespaces labelled"
        unchanged = [timed(enricher, host.namespaces) for _ in range(args.rounds)]
        keys = list(host.namespaces)
        per_poll = max(1, int(len(keys) * args.churn))
        churn = []
        for r in range(args.rounds):
            for j in range(per_poll):
                host.fork(keys[(r * per_poll + j) % len(keys)])
            if r % 10 == 0:  # a pod replaced: new containers to look up
                host.namespaces[keys[r % len(keys)]] = host.pod(f"new-{r}")
            churn.append(timed(enricher, host.namespaces))
        s = enricher.stats

    result = {
        "namespaces": args.namespaces, "pids_per_namespace": args.pids, "rounds": args.rounds,
        "cold_ms": round(cold, 2),
        "unchanged_ms_median": round(statistics.median(unchanged), 3),
        "unchanged_ms_p95": round(sorted(unchanged)[int(0.95 * len(unchanged))], 3),
        "churn_namespaces_per_poll": per_poll,
        "churn_ms_median": round(statistics.median(churn), 3),
        "churn_ms_p95": round(sorted(churn)[int(0.95 * len(churn))], 3),
        "cgroup_reads": s.cgroup_reads, "lookups": s.lookups,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:28} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
