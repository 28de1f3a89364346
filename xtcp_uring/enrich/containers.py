"""Container and pod labels for each network namespace, cached, refreshed when its processes change.

Theory of operation
-------------------
The caller (the namespace manager's /proc scan) knows which processes sit in each network
namespace and hands ``refresh()`` a ``{namespace key: pids}`` map every poll. For each
namespace:

1. **Nothing changed** (same pid set, no retry due): the cached ``NamespaceContext`` is
   returned. No file is opened: a poll of 1,000 unchanged namespaces costs a set compare each.
2. **Churn**: only pids not seen before have their ``/proc/<pid>/cgroup`` read (``cgroups``);
   only container ids not seen before have their runtime state read (``runtimes``). A pid
   keeps its container for life, a container its name and pod, so both caches hold until the
   pid or the container leaves every namespace.
3. **Labels** are chosen by ``namespace_context()`` (the rule is in its docstring): a pod's
   pause container and its app containers share one namespace, which is labelled by its pod.

A container whose cgroup names it but whose state is nowhere under the roots (the runtime's
directories are not mounted, or a runtime this module does not read) keeps its id and runtime
guess; its lookup is retried every ``retry_interval`` seconds. Every miss and every unusable
state file is counted in ``stats`` and logged once.

Caveat: a pid that dies and is reused by another process of the same namespace between two
refreshes keeps the old process's container (the pid set did not change). Containers are
started by their runtime, so both processes would be in containers of that namespace anyway.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable, Collection, Hashable, Mapping, Sequence

from .cgroups import CgroupContainer, read_cgroup
from .roots import ContainerRoots
from .runtimes import ContainerInfo, ContainerStateError, RuntimeState

__all__ = ["LABEL_FIELDS", "ContainerEnricher", "EnricherStats", "NamespaceContext", "contexts_for",
           "namespace_context"]

log = logging.getLogger("xtcp_uring.enrich")

# The record columns a NamespaceContext fills (xtcp2's names for the container_* ones).
LABEL_FIELDS = ("container_id", "container_runtime", "container_name", "container_image",
                "pod_name", "pod_namespace")
DEFAULT_RETRY_INTERVAL = 30.0


@dataclass(frozen=True, slots=True)
class NamespaceContext:
    """What one network namespace belongs to. Empty strings where nothing is known.

    ``containers`` lists every container found in the namespace (pause containers included),
    whatever the labels say. ``shared`` is True when processes outside any container use the
    namespace too (the host's namespace, or one entered from outside): its labels stay empty.
    """

    container_id: str = ""
    container_runtime: str = ""
    container_name: str = ""
    container_image: str = ""
    pod_name: str = ""
    pod_namespace: str = ""
    pod_uid: str = ""
    containers: tuple[ContainerInfo, ...] = ()
    shared: bool = False

    def labels(self) -> dict[str, str]:
        """The record columns (``LABEL_FIELDS``) and their values."""
        return {name: getattr(self, name) for name in LABEL_FIELDS}


EMPTY = NamespaceContext()


def namespace_context(containers: Sequence[ContainerInfo], outsiders: bool = False) -> NamespaceContext:
    """The labels of a namespace whose processes are in ``containers``.

    The rule:
    * ``outsiders`` (some process is in no container): no labels, ``shared=True``.
    * **Pod**: ``pod_*`` are set when every container naming a pod names the same one (same
      uid, else same namespace/name); containers of two pods in one namespace leave them empty.
    * **Container**: the app containers are those that are not a pod's pause (sandbox)
      container. Exactly one: its id, name and image. Several (sidecars): each of
      ``container_id``, ``container_name``, ``container_image`` lists them all, comma-separated,
      in the same order (by name, then id), so position i of each belongs to one container.
      None (only the pause container is known): these three stay empty.
      ``container_runtime`` is the runtime of all of them (comma-separated if they differ).
    * A container whose state was not found (``found`` False) may be a pause container or an
      app: it is counted among the apps only when no container of the namespace was found.
    """
    if not containers:
        return EMPTY
    ordered = tuple(sorted(containers, key=lambda c: (c.sandbox, c.name, c.container_id)))
    if outsiders:
        return NamespaceContext(containers=ordered, shared=True)
    with_pod = [c for c in ordered if c.pod_uid or c.pod_name]
    keys = {c.pod_uid or (c.pod_namespace, c.pod_name) for c in with_pod}
    pod_name = pod_namespace = pod_uid = ""
    if len(keys) == 1:
        pod_name = next((c.pod_name for c in with_pod if c.pod_name), "")
        pod_namespace = next((c.pod_namespace for c in with_pod if c.pod_namespace), "")
        pod_uid = next((c.pod_uid for c in with_pod if c.pod_uid), "")
    apps = [c for c in ordered if not c.sandbox and c.found] or [c for c in ordered if not c.found]
    runtimes = sorted({c.runtime for c in ordered if c.runtime})
    return NamespaceContext(
        container_id=",".join(c.container_id for c in apps),
        container_runtime=",".join(runtimes),
        container_name=",".join(c.name for c in apps),
        container_image=",".join(c.image for c in apps),
        pod_name=pod_name, pod_namespace=pod_namespace, pod_uid=pod_uid,
        containers=ordered)


@dataclass
class EnricherStats:
    refreshes: int = 0
    namespaces_changed: int = 0  # namespaces whose pid set changed (or whose retry came)
    cgroup_reads: int = 0  # /proc/<pid>/cgroup files read
    processes_gone: int = 0  # pids that exited between the scan and the read (churn)
    cgroup_errors: int = 0  # /proc/<pid>/cgroup unreadable for another reason
    lookups: int = 0  # container state lookups
    not_found: int = 0  # containers whose state is under no root (labels: id and runtime only)
    state_errors: int = 0  # state files found but unusable (named in the log, once)
    retries: int = 0  # lookups repeated after retry_interval
    containers: int = 0  # container ids cached now
    last_refresh_ns: int = 0


@dataclass
class _Entry:
    pids: frozenset[int]
    procs: dict[int, CgroupContainer | None]  # pid -> its container (None: none)
    ids: frozenset[str] = frozenset()  # the container ids of procs
    context: NamespaceContext = EMPTY
    retry_at: float = math.inf


class ContainerEnricher:
    """Keeps a ``NamespaceContext`` per network namespace; see the module docstring.

    Not thread-safe: call ``refresh()`` from one thread (it reads files only on churn).

    Args:
        roots: where the runtimes' state is (default: the host's own paths).
        retry_interval: seconds before a container whose state was not found is looked up again.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, roots: ContainerRoots | None = None, *, retry_interval: float = DEFAULT_RETRY_INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        self.roots = roots or ContainerRoots()
        self.retry_interval = retry_interval
        self.stats = EnricherStats()
        self._clock = clock
        self._state = RuntimeState(self.roots)
        self._entries: dict[Hashable, _Entry] = {}
        self._infos: dict[str, ContainerInfo | None] = {}  # by id; None: a plain name, not a container
        self._refs: dict[str, int] = {}  # container id -> namespaces whose processes are in it
        self._warned: set[str] = set()

    def refresh(self, pids_by_netns: Mapping[Hashable, Collection[int]]) -> dict[Hashable, NamespaceContext]:
        """The context of every namespace given; namespaces not given are forgotten.

        Args:
            pids_by_netns: for each namespace (any hashable key, e.g. its inode), the pids of
                the processes inside it, each once. Give all of them: a namespace is labelled by a
                container only when every process in it is in a container, and the app
                containers are told from the pause container by their processes.

        Returns:
            ``{key: NamespaceContext}`` for every key given. A namespace whose labels did not
            change gets the very same object back, so ``is`` tells a change.
        """
        t0 = time.perf_counter_ns()
        now = self._clock()
        entries = self._entries
        out: dict[Hashable, NamespaceContext] = {}
        for key, pids in pids_by_netns.items():
            entry = entries.get(key)
            # Unchanged: same size and every pid known (no set built: this runs per namespace
            # per poll).
            if entry is None or len(pids) != len(entry.pids) or not entry.pids.issuperset(pids) \
                    or entry.retry_at <= now:
                new = self._update(entry, frozenset(pids), now)
                self._hold(new.ids, entry.ids if entry is not None else frozenset())
                entries[key] = entry = new
            out[key] = entry.context
        if len(entries) != len(out):
            for key in [k for k in entries if k not in out]:
                self._hold(frozenset(), entries.pop(key).ids)
        self.stats.containers = len(self._infos)
        self.stats.refreshes += 1
        self.stats.last_refresh_ns = time.perf_counter_ns() - t0
        return out

    def _hold(self, new: frozenset[str], old: frozenset[str]) -> None:
        """Count which namespaces use each container; forget a container nobody uses."""
        refs = self._refs
        for cid in new - old:
            refs[cid] = refs.get(cid, 0) + 1
        for cid in old - new:
            refs[cid] -= 1
            if not refs[cid]:
                del refs[cid]
                self._infos.pop(cid, None)

    def context(self, key: Hashable) -> NamespaceContext:
        """The last context of one namespace (empty when unknown)."""
        entry = self._entries.get(key)
        return entry.context if entry is not None else EMPTY

    # -- churn ---------------------------------------------------------------------------

    def _update(self, entry: _Entry | None, pids: frozenset[int], now: float) -> _Entry:
        self.stats.namespaces_changed += 1
        old = entry.procs if entry is not None else {}
        if entry is not None and entry.retry_at <= now:
            for cg in old.values():
                info = self._infos.get(cg.container_id) if cg is not None else None
                if info is not None and not info.found:
                    del self._infos[cg.container_id]
                    self.stats.retries += 1
        procs: dict[int, CgroupContainer | None] = {}
        for pid in pids:
            if pid in old:
                procs[pid] = old[pid]
                continue
            try:
                procs[pid] = read_cgroup(pid, self.roots.proc)
            except (FileNotFoundError, ProcessLookupError):
                self.stats.processes_gone += 1
                continue
            except OSError as exc:
                self.stats.cgroup_errors += 1
                self._warn_once("cgroup", "cannot read %s/%d/cgroup (%s); such processes are left out of "
                                "container labels", self.roots.proc, pid, exc.strerror)
                continue
            self.stats.cgroup_reads += 1
        infos: dict[str, ContainerInfo] = {}
        outsiders = False
        for cg in procs.values():
            info = self._info(cg) if cg is not None else None
            if info is None:
                outsiders = True
            else:
                infos[info.container_id] = info
        context = namespace_context(list(infos.values()), outsiders)
        if entry is not None and context == entry.context:
            context = entry.context  # the same object: callers compare with `is`
        missing = any(not i.found for i in infos.values())
        ids = frozenset(cg.container_id for cg in procs.values() if cg is not None)
        return _Entry(pids, procs, ids, context, now + self.retry_interval if missing else math.inf)

    def _info(self, cg: CgroupContainer) -> ContainerInfo | None:
        cid = cg.container_id
        if cid in self._infos:
            return self._infos[cid]
        self.stats.lookups += 1
        try:
            info = self._state.lookup(cg)
        except ContainerStateError as exc:
            self.stats.state_errors += 1
            self._warn_once("state", "container %s: %s (labels: id only; further such files are counted "
                            "in state_errors)", cid, exc)
            info = None
        if info is None:
            if cg.plain_name:
                self._infos[cid] = None  # a cgroup named like a runc container, without one
                return None
            self.stats.not_found += 1
            self._warn_once("not_found", "no runtime state for container %s (%s) under %s: its labels have "
                            "only the id; mount the runtime's state directories (README: containers and pods)",
                            cid, cg.runtime_hint or "runtime unknown", self.roots)
            info = ContainerInfo(cid, cg.runtime_hint, pod_uid=cg.pod_uid)
        self._infos[cid] = info
        return info

    def _warn_once(self, kind: str, msg: str, *args) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning(msg, *args)


def contexts_for(pids_by_netns: Mapping[Hashable, Collection[int]],
                 roots: ContainerRoots | None = None) -> dict[Hashable, NamespaceContext]:
    """One-off: the contexts of these namespaces, without keeping a cache (``--once``)."""
    return ContainerEnricher(roots).refresh(pids_by_netns)

