"""A container's name, image and pod, read from its runtime's own state files.

No runtime API is called (no socket, no client library): the files below are what each runtime
writes for itself, readable by root on the host or through read-only mounts in a pod.

* **runc** ``<runc root>/<id>/state.json``: ``config.labels`` holds ``bundle=<dir>`` and every
  OCI annotation as ``key=value``. The bundle's ``config.json`` is the OCI spec itself; its
  ``annotations`` are read first, the labels when the bundle is not visible.
  containerd keeps one runc root per containerd namespace (``/run/containerd/runc/k8s.io``);
  CRI-O, Podman and plain runc use ``/run/runc``.
* **Kubernetes annotations** in the OCI spec. containerd CRI: ``io.kubernetes.cri.container-type``
  (``sandbox`` | ``container``), ``…sandbox-name``, ``…sandbox-namespace``, ``…sandbox-uid``,
  ``…container-name``, ``…image-name``. CRI-O: ``io.kubernetes.cri-o.ContainerType``,
  ``…ImageName``, and the kubelet's labels ``io.kubernetes.pod.name``, ``…pod.namespace``,
  ``…pod.uid``, ``io.kubernetes.container.name`` (also inside the JSON of
  ``io.kubernetes.cri-o.Labels``).
* **Docker** ``<data-root>/containers/<id>/config.v2.json``: ``Name`` (``/name``),
  ``Config.Image`` and ``Config.Labels``; under dockershim the labels carry
  ``io.kubernetes.pod.*``, ``io.kubernetes.container.name`` and ``io.kubernetes.docker.type``
  (``podsandbox`` | ``container``).
* **containers/storage** (Podman, CRI-O) ``<graph root>/<driver>-containers/containers.json``: a
  list of ``{"id", "names", "metadata"}`` where ``metadata`` is a JSON string with
  ``image-name`` and ``name``; each container's OCI spec is ``<id>/userdata/config.json``
  under the graph root (Podman) or the run root (CRI-O). Podman marks its specs with the
  annotation ``io.container.manager=libpod``.

Every value is a string from a file the runtime wrote, but annotations come from users (pod
annotations pass through): values are cut at ``MAX_VALUE`` characters and non-strings ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace

from ..errors import XtcpError
from .cgroups import CgroupContainer
from .roots import ContainerRoots

__all__ = ["ContainerInfo", "ContainerStateError", "RuntimeState", "info_from_annotations"]

MAX_VALUE = 512  # characters kept of one name/image/annotation value
_MAX_SPEC = 4 << 20  # state.json, config.json, config.v2.json: a few KiB each in practice
_MAX_STORAGE_INDEX = 64 << 20  # containers.json: ~1 KiB per container on the host

_CRI_TYPE = "io.kubernetes.cri.container-type"
_CRIO_PREFIX = "io.kubernetes.cri-o."
_K8S_POD_NAME = "io.kubernetes.pod.name"
_K8S_POD_NAMESPACE = "io.kubernetes.pod.namespace"
_K8S_POD_UID = "io.kubernetes.pod.uid"
_K8S_CONTAINER_NAME = "io.kubernetes.container.name"


class ContainerStateError(XtcpError):
    """A runtime's state file exists but cannot be used (unreadable, not the JSON expected)."""


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """One container as its runtime describes it.

    ``runtime`` is ``containerd``, ``cri-o``, ``docker``, ``podman`` or ``runc``. ``sandbox``
    marks a pod's pause (infra) container. ``source`` is the state file read, empty when no
    state was found: then only the id (from the cgroup) and a runtime guess are known.
    """

    container_id: str
    runtime: str
    name: str = ""
    image: str = ""
    pod_name: str = ""
    pod_namespace: str = ""
    pod_uid: str = ""
    sandbox: bool = False
    source: str = ""

    @property
    def found(self) -> bool:
        return bool(self.source)


def _text(value) -> str:
    return value[:MAX_VALUE] if isinstance(value, str) else ""


def _read_json(path: str, limit: int = _MAX_SPEC):
    """The parsed file; None when it does not exist. Raises ContainerStateError otherwise."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size > limit:
                raise ContainerStateError(f"{path} is larger than {limit} bytes; not read")
            data = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ContainerStateError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return json.loads(data)
    except ValueError as exc:
        raise ContainerStateError(f"{path} is not valid JSON: {exc}") from exc


def _annotations(obj) -> dict[str, str]:
    ann = obj.get("annotations") if isinstance(obj, dict) else None
    return {k: v for k, v in ann.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(ann, dict) else {}


def info_from_annotations(container_id: str, ann: dict[str, str], runtime: str, source: str) -> ContainerInfo:
    """A ContainerInfo from OCI annotations; the annotations name the runtime when they can."""
    if _CRI_TYPE in ann:  # containerd's CRI plugin
        return ContainerInfo(
            container_id, "containerd",
            name=_text(ann.get("io.kubernetes.cri.container-name")),
            image=_text(ann.get("io.kubernetes.cri.image-name")),
            pod_name=_text(ann.get("io.kubernetes.cri.sandbox-name")),
            pod_namespace=_text(ann.get("io.kubernetes.cri.sandbox-namespace")),
            pod_uid=_text(ann.get("io.kubernetes.cri.sandbox-uid")),
            sandbox=ann.get(_CRI_TYPE) == "sandbox", source=source)
    if any(k.startswith(_CRIO_PREFIX) for k in ann):
        labels = {}
        try:
            labels = json.loads(ann.get(_CRIO_PREFIX + "Labels", "{}"))
        except ValueError:
            pass
        if not isinstance(labels, dict):
            labels = {}

        def kube(key: str) -> str:
            return _text(ann.get(key)) or _text(labels.get(key))

        sandbox = ann.get(_CRIO_PREFIX + "ContainerType") == "sandbox"
        return ContainerInfo(
            container_id, "cri-o",
            name="" if sandbox else kube(_K8S_CONTAINER_NAME),
            image="" if sandbox else _text(ann.get(_CRIO_PREFIX + "ImageName")),
            pod_name=kube(_K8S_POD_NAME),
            pod_namespace=kube(_K8S_POD_NAMESPACE) or _text(ann.get(_CRIO_PREFIX + "Namespace")),
            pod_uid=kube(_K8S_POD_UID), sandbox=sandbox, source=source)
    if ann.get("io.container.manager") == "libpod":
        runtime = "podman"
    # Plain runc: the id is the name its user chose (`runc run <name>`).
    return ContainerInfo(container_id, runtime, name=container_id if runtime == "runc" else "", source=source)


class RuntimeState:
    """Finds a container's state under one set of ``ContainerRoots`` and reads it.

    ``lookup()`` returns None when no runtime has state for the id (not a container, or its
    runtime's directories are not visible here) and raises ``ContainerStateError`` when state
    exists but cannot be used. Not thread-safe: one caller (the enricher) at a time.
    """

    def __init__(self, roots: ContainerRoots | None = None):
        self.roots = roots or ContainerRoots()
        self._storage_index: dict[str, tuple[tuple[int, int], dict[str, dict]]] = {}

    def lookup(self, cg: CgroupContainer) -> ContainerInfo | None:
        cid = cg.container_id
        if cg.plain_name:
            sources = (self._runc,)
        else:
            sources = {
                "containerd": (self._containerd,),
                "cri-o": (self._runc, self._storage),
                "docker": (self._docker, self._containerd),
                "podman": (self._storage, self._runc),
            }.get(cg.runtime_hint, (self._containerd, self._runc, self._docker, self._storage))
        error = None
        for source in sources:
            try:
                info = source(cid)
            except ContainerStateError as exc:
                error = error or exc
                continue
            if info is not None:
                if cg.pod_uid and not info.pod_uid:
                    info = replace(info, pod_uid=cg.pod_uid)
                return info
        if error is not None:
            raise error
        return None

    # -- runc (also under containerd) ----------------------------------------------------

    def _runc(self, cid: str) -> ContainerInfo | None:
        for root in self.roots.runc_roots:
            info = self._runc_state(os.path.join(root, cid, "state.json"), cid, "runc")
            if info is not None:
                return info
        return None

    def _containerd(self, cid: str) -> ContainerInfo | None:
        base = self.roots.host(self.roots.containerd_runc)
        try:
            namespaces = sorted(os.listdir(base))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise ContainerStateError(f"cannot list {base}: {exc.strerror}") from exc
        for ns in namespaces:
            path = os.path.join(self.roots.containerd_runc, ns, cid, "state.json")
            info = self._runc_state(path, cid, "docker" if ns == "moby" else "containerd")
            if info is not None:
                return info
        return None

    def _runc_state(self, host_path: str, cid: str, runtime: str) -> ContainerInfo | None:
        path = self.roots.host(host_path)
        state = _read_json(path)
        if state is None:
            return None
        config = state.get("config") if isinstance(state, dict) else None
        if not isinstance(config, dict) or state.get("id") != cid:
            raise ContainerStateError(f"{path} is not a runc state file of container {cid}")
        labels = {}
        for item in config.get("labels") or ():
            if isinstance(item, str) and "=" in item:
                key, _, value = item.partition("=")
                labels[key] = value
        bundle = labels.pop("bundle", "")
        ann = labels
        if bundle.startswith("/"):
            spec = _read_json(os.path.join(self.roots.host(bundle), "config.json"))
            if spec is not None:
                ann = _annotations(spec)
        return info_from_annotations(cid, ann, runtime, path)

    # -- Docker --------------------------------------------------------------------------

    def _docker(self, cid: str) -> ContainerInfo | None:
        path = self.roots.host(os.path.join(self.roots.docker_containers, cid, "config.v2.json"))
        doc = _read_json(path)
        if doc is None:
            return None
        config = doc.get("Config") if isinstance(doc, dict) else None
        if not isinstance(config, dict):
            raise ContainerStateError(f"{path} has no Config object; not a Docker container config")
        labels = config.get("Labels")
        labels = labels if isinstance(labels, dict) else {}
        sandbox = labels.get("io.kubernetes.docker.type") == "podsandbox"
        name = _text(labels.get(_K8S_CONTAINER_NAME)) or _text(doc.get("Name")).lstrip("/")
        return ContainerInfo(
            cid, "docker",
            name="" if sandbox else name,
            image=_text(config.get("Image")),
            pod_name=_text(labels.get(_K8S_POD_NAME)),
            pod_namespace=_text(labels.get(_K8S_POD_NAMESPACE)),
            pod_uid=_text(labels.get(_K8S_POD_UID)),
            sandbox=sandbox, source=path)

    # -- containers/storage (Podman, CRI-O) ------------------------------------------------

    def _storage(self, cid: str) -> ContainerInfo | None:
        for graph in self.roots.storage_roots:
            base = self.roots.host(graph)
            try:
                drivers = sorted(d for d in os.listdir(base) if d.endswith("-containers"))
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                raise ContainerStateError(f"cannot list {base}: {exc.strerror}") from exc
            for driver in drivers:
                index = os.path.join(base, driver, "containers.json")
                entry = self._storage_entries(index).get(cid)
                spec_path, spec = self._storage_spec(graph, driver, cid)
                if entry is None and spec is None:
                    continue
                return self._storage_info(cid, entry or {}, spec_path or index, spec)
        return None

    def _storage_entries(self, path: str) -> dict[str, dict]:
        """containers.json by id, parsed again only when the file changed."""
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        stamp = (st.st_mtime_ns, st.st_size)
        cached = self._storage_index.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        doc = _read_json(path, _MAX_STORAGE_INDEX)
        if not isinstance(doc, list):
            raise ContainerStateError(f"{path} is not a containers/storage container list")
        entries = {e["id"]: e for e in doc if isinstance(e, dict) and isinstance(e.get("id"), str)}
        self._storage_index[path] = (stamp, entries)
        return entries

    def _storage_spec(self, graph: str, driver: str, cid: str) -> tuple[str, dict | None]:
        for root in (graph, *self.roots.storage_run_roots):
            path = self.roots.host(os.path.join(root, driver, cid, "userdata", "config.json"))
            spec = _read_json(path)
            if spec is not None:
                return path, spec
        return "", None

    @staticmethod
    def _storage_info(cid: str, entry: dict, source: str, spec: dict | None) -> ContainerInfo:
        meta = entry.get("metadata")
        try:
            meta = json.loads(meta) if isinstance(meta, str) else {}
        except ValueError:
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        names = entry.get("names")
        name = _text(names[0]) if isinstance(names, list) and names else _text(meta.get("name"))
        ann = _annotations(spec) if spec is not None else {}
        info = info_from_annotations(cid, ann, "podman", source)
        if info.runtime == "cri-o":
            return replace(info, image=info.image or ("" if info.sandbox else _text(meta.get("image-name"))))
        return replace(info, runtime="podman", name=name, image=_text(meta.get("image-name")))
