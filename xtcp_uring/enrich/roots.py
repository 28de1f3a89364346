"""Where the container runtimes keep their state, and where this process sees the host's files.

Every path here is the *host's* path, the one the runtime itself uses (and writes into its own
state files, such as a bundle path in runc's ``state.json``). ``host_root`` says where the
host's ``/`` is seen from here: ``/`` for a daemon on the host, ``/host`` for a DaemonSet that
mounts each host directory read-only at ``/host/<the same path>``. ``/proc`` is not moved:
with ``hostPID`` the pod's own ``/proc`` shows every host process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["ContainerRoots"]


@dataclass(frozen=True)
class ContainerRoots:
    """The directories read to name containers (host paths; see the module docstring).

    Attributes:
        host_root: where the host's ``/`` is seen from this process.
        proc: this process's view of the host's ``/proc`` (needs ``hostPID`` in a pod).
        runc_roots: ``runc --root`` directories holding ``<id>/state.json``: runc's default
            (also CRI-O's and Podman's runtime root when they run runc).
        containerd_runc: containerd's runc shim root, one directory per containerd namespace
            (``k8s.io`` for Kubernetes, ``moby`` for Docker, ``default``...).
        docker_containers: Docker's ``<data-root>/containers`` with ``<id>/config.v2.json``.
        storage_roots: containers/storage graph roots (Podman, CRI-O): ``<driver>-containers/
            containers.json`` and ``<driver>-containers/<id>/userdata/config.json``.
        storage_run_roots: containers/storage run roots, where CRI-O keeps each bundle.
    """

    host_root: str = "/"
    proc: str = "/proc"
    runc_roots: tuple[str, ...] = ("/run/runc",)
    containerd_runc: str = "/run/containerd/runc"
    docker_containers: str = "/var/lib/docker/containers"
    storage_roots: tuple[str, ...] = ("/var/lib/containers/storage",)
    storage_run_roots: tuple[str, ...] = ("/run/containers/storage",)

    def __post_init__(self) -> None:
        paths = (self.host_root, self.proc, self.containerd_runc, self.docker_containers,
                 *self.runc_roots, *self.storage_roots, *self.storage_run_roots)
        for path in paths:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigError(f"container state roots must be absolute paths, got {path!r}")

    @classmethod
    def under(cls, host_root: str, **overrides) -> ContainerRoots:
        """The default roots, with the host's files seen under ``host_root`` (e.g. ``/host``)."""
        return cls(host_root=host_root, **overrides)

    def host(self, path: str) -> str:
        """Where the host's absolute ``path`` is seen from this process.

        ``/var/run`` is a symlink to ``/run`` on the host; read through ``host_root`` it would
        resolve to this process's own ``/run``, so it is rewritten first.
        """
        if path == "/var/run" or path.startswith("/var/run/"):
            path = path[4:]
        if self.host_root == "/":
            return path
        return os.path.join(self.host_root, path.lstrip("/"))
