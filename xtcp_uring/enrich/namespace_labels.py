"""The per-namespace part of every record's labels: which namespace, which container and pod,
and the host's own ``--label``/``--tag`` (``labels``), encoded once per namespace and family.

The poller calls ``refresh(namespaces)`` once per poll, after the namespace reconcile: the
container enricher gets every namespace's pids (the host's namespace is left out: its
processes are not in one container) and answers from its cache unless processes changed.
``namespace_part(ns, family)`` is then a dict lookup per dump; a new encoding is made only when
a namespace's name, pid or context changed.

Protobuf writes fields in number order, and the label groups have disjoint, increasing field
numbers (versions 1-2, poll 10-11, host 20-22, then this part: namespace 30-34, container and
pod 40-45, label/tag 50-51, family 63), so the poller's concatenation of the groups is
byte for byte one ``encode_labels`` call.
"""

from __future__ import annotations

from typing import Iterable

from .containers import EMPTY, ContainerEnricher, NamespaceContext
from .labels import HostLabels

__all__ = ["NamespaceLabeler", "describe"]


class NamespaceLabeler:
    """Label bytes per (namespace, family); see the module docstring.

    Args:
        host_labels: the operator's labels (``label`` and ``tag`` columns are written here).
        enricher: container/pod lookups; None leaves the container and pod columns empty.
    """

    def __init__(self, host_labels: HostLabels | None = None, enricher: ContainerEnricher | None = None):
        from .. import records  # the C extension, only when labels are encoded

        self._encode = records.encode_labels
        self.host_labels = host_labels or HostLabels()
        self.enricher = enricher
        self._contexts: dict = {}
        self._cache: dict[tuple, tuple[NamespaceContext, bytes]] = {}

    def refresh(self, namespaces: Iterable) -> None:
        """Container and pod context for these namespaces (``namespaces.Namespace``); the rest
        are forgotten. Reads files only for namespaces whose processes changed."""
        namespaces = list(namespaces)
        if self.enricher is not None:
            self._contexts = self.enricher.refresh({ns.key: ns.pids for ns in namespaces if not ns.is_host})
        if len(self._cache) > 4 * max(1024, len(namespaces)):
            self._cache.clear()  # namespaces come and go: do not grow forever

    def context(self, ns) -> NamespaceContext:
        return self._contexts.get(ns.key, EMPTY)

    def namespace_part(self, ns, family: int) -> bytes:
        ctx = self._contexts.get(ns.key, EMPTY)
        key = (ns.name, ns.inode, ns.cookie, ns.pid, family, id(ctx))
        hit = self._cache.get(key)
        if hit is not None and hit[0] is ctx:
            return hit[1]
        host = self.host_labels
        part = self._encode(netns=ns.name, netns_inode=ns.inode, netns_cookie=ns.cookie, netns_pid=ns.pid,
                            **ctx.labels(), label=host.label, tag=host.tag, dump_family=family)
        self._cache[key] = (ctx, part)
        return part


def describe(ns, ctx: NamespaceContext, location: str = "") -> dict[str, str]:
    """What the ``namespaces`` command shows beside a namespace's name: what it is (``host``,
    ``pod``, ``container`` or ``netns``), its pod (``namespace/name``), its container(s) and image(s),
    the runtime, and this host's location."""
    if ns.is_host:
        kind = "host"
    elif ctx.pod_name or ctx.pod_namespace:
        kind = "pod"
    elif ctx.container_id:
        kind = "container"
    else:
        kind = "netns"
    pod = f"{ctx.pod_namespace}/{ctx.pod_name}" if ctx.pod_name else ""
    return {"kind": kind, "pod": pod, "container": ctx.container_name, "image": ctx.container_image,
            "runtime": ctx.container_runtime, "location": location}
