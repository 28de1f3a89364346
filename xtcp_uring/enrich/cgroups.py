"""Which container a process runs in, from the cgroup path in ``/proc/<pid>/cgroup``.

Runtimes name a container's cgroup after its id, in a few shapes:

=====================================  ===========================================================
cgroup path (last parts)               who
=====================================  ===========================================================
``cri-containerd-<id>.scope``          containerd CRI, systemd cgroup driver
``crio-<id>.scope``                    CRI-O, systemd driver (``crio-conmon-<id>.scope``: its monitor)
``docker-<id>.scope``                  Docker, systemd driver
``libpod-<id>.scope`` (``/container``)  Podman (cgroup v2 adds a ``container`` child)
``/docker/<id>``, ``/pod<uid>/<id>``   cgroupfs driver: Docker, Kubernetes with containerd/CRI-O
``/<name>``                            plain ``runc run <name>`` (any name, confirmed by its state)
=====================================  ===========================================================

``<id>`` is 64 hex digits. Kubernetes puts the pod's uid in a parent: ``pod<uid>`` (cgroupfs) or
``kubepods-<qos>-pod<uid with _ for ->.slice`` (systemd). Under cgroup v1 every hierarchy has a
line; the unified (``0::``) line is read first, then the others. In a cgroup namespace the path
starts with ``/..`` parts; only names matter here.

A container can create cgroups *below* its own when its cgroup is delegated to it, so it could
name one after another container. The outermost id-shaped part is the one the runtime made:
parts are read from the root down and the first match wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CgroupContainer", "parse_cgroup", "read_cgroup"]

# A systemd or cgroupfs name around a 64-hex id; the prefix names the runtime.
_ID_RE = re.compile(r"^(?:([a-z][a-z0-9-]*?)-)?([0-9a-f]{64})(?:\.scope)?$")
_POD_RE = re.compile(r"^(?:kubepods-(?:[a-z]+-)?)?pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$")
# A plain runc container name (runc allows [\w+-.]); systemd unit names are never one.
_NAME_RE = re.compile(r"^[A-Za-z0-9][\w+.-]*$")
_UNIT_SUFFIXES = (".service", ".scope", ".slice", ".mount", ".socket", ".swap")
_PREFIX_RUNTIME = {"cri-containerd": "containerd", "crio": "cri-o", "docker": "docker", "libpod": "podman"}
_MAX_CGROUP_FILE = 1 << 16  # a few hundred bytes in practice; a hierarchy per line


@dataclass(frozen=True, slots=True)
class CgroupContainer:
    """The container a cgroup path names.

    ``runtime_hint`` comes from the name's prefix (``containerd``, ``cri-o``, ``docker``,
    ``podman``) and is empty for a bare id. ``plain_name`` is set when no id-shaped part was
    found and ``container_id`` is only the cgroup's first part, to be confirmed by a runc state
    directory of that name (else the process is not in a container).
    """

    container_id: str
    runtime_hint: str = ""
    pod_uid: str = ""
    plain_name: bool = False


def _ordered_paths(text: str) -> list[str]:
    unified, others = [], []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        (unified if parts[0] == "0" and parts[1] == "" else others).append(parts[2])
    return unified + others


def parse_cgroup(text: str) -> CgroupContainer | None:
    """The container named by the contents of a ``/proc/<pid>/cgroup`` file, or None."""
    paths = _ordered_paths(text)
    for path in paths:
        parts = [p for p in path.split("/") if p and p != ".."]
        pod_uid = ""
        for part in parts:
            if not pod_uid and (m := _POD_RE.match(part)):
                pod_uid = m.group(1).replace("_", "-")
                continue
            m = _ID_RE.match(part)
            if m is None:
                continue
            prefix = m.group(1) or ""
            if "conmon" in prefix:
                break  # CRI-O/Podman's monitor process sits beside the container, not in it
            return CgroupContainer(m.group(2), _PREFIX_RUNTIME.get(prefix, ""), pod_uid)
    if paths:
        parts = [p for p in paths[0].split("/") if p and p != ".."]
        if parts and _NAME_RE.match(parts[0]) and not parts[0].endswith(_UNIT_SUFFIXES):
            return CgroupContainer(parts[0], plain_name=True)
    return None


def read_cgroup(pid: int, proc: str = "/proc") -> CgroupContainer | None:
    """``parse_cgroup`` of one process.

    Raises:
        FileNotFoundError, ProcessLookupError: the process is gone (normal churn).
        OSError: the file cannot be read (the caller counts it).
    """
    with open(f"{proc}/{pid}/cgroup", "rb") as f:
        data = f.read(_MAX_CGROUP_FILE)
    return parse_cgroup(data.decode("utf-8", "replace"))
