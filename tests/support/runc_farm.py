"""Test helper: real runc containers in real network namespaces, their state laid out as each
runtime lays it out; everything deleted afterwards.

Every container here is a real ``runc run -d`` (Debian's runc; no extra flags are needed on this
machine's hybrid cgroup layout, where crun refuses to run): a real process in a real cgroup
whose path has the shape each runtime gives it, in a network namespace made with ``ip netns
add`` (so tests can open sockets in it), with ``--root`` at the runtime's runc root under a
temporary directory. What each style adds:

* ``containerd_pod``: runc root ``run/containerd/runc/k8s.io``, bundles where containerd's
  shim keeps them, the CRI plugin's annotations; a pause container plus app containers.
* ``crio_pod``: runc root ``run/runc``, bundles in containers/storage's run root
  (``overlay-containers/<id>/userdata``), CRI-O's annotations and its ``containers.json``.
* ``docker_container``, ``podman_container``: dockerd and podman cannot run here (no engine
  installed, and they need their own daemons/storage), so the farm writes their state files
  the way those engines do (Docker's ``config.v2.json``; containers/storage's
  ``containers.json``) beside a real runc container with their cgroup shape.
* ``plain_runc``: ``runc run <name>`` with runc's default cgroup ``/<name>``.

The root filesystem binds the host's ``/usr`` read-only (``bin``, ``lib``... are symlinks into
it, as on the host). App containers run ``python3`` holding a listening socket, a connected
client and the accepted end on ``PORT`` (the first app of a namespace; the next ones PORT+1...),
and write ``/status/ready`` once they are open.

``close()`` (or the ``with`` block) deletes containers, namespaces, cgroup directories and
files, whatever happened; ``sweep_stale()`` does it for farms of test processes that died.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field

from xtcp_uring.enrich import ContainerRoots

PORT = 7070
_counter = itertools.count(1)
_TAG_RE = re.compile(r"^xtcp-enrich-(\d+)-")
_CGROUP_FS = "/sys/fs/cgroup"
_APP = (
    "import socket, time\n"
    "srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "srv.bind(('127.0.0.1', {port})); srv.listen()\n"
    "cli = socket.create_connection(('127.0.0.1', {port})); acc, _ = srv.accept()\n"
    "open('/status/ready', 'w').close()\n"
    "time.sleep(3600)\n"
)


@dataclass
class Netns:
    name: str
    path: str
    inode: int


@dataclass
class Container:
    id: str
    runc_root: str
    bundle: str
    cgroup: str  # the cgroup path given to runc
    pid: int = 0
    app: bool = True
    port: int = 0  # the app's listening port, 0 for a pause container
    netns: int = 0  # inode of its network namespace
    extra_files: list[str] = field(default_factory=list)  # engine state the farm wrote

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until the app has its sockets open (its /status/ready file exists)."""
        deadline = time.monotonic() + timeout
        while not os.path.exists(os.path.join(self.bundle, "status", "ready")):
            if time.monotonic() > deadline:
                log = os.path.join(self.bundle, "out.log")
                raise TimeoutError(f"container {self.id} not ready: {open(log).read()[-2000:]}")
            time.sleep(0.02)


@dataclass
class Pod:
    name: str
    namespace: str
    uid: str
    sandbox: Container
    apps: list[Container]

    @property
    def containers(self) -> list[Container]:
        return [self.sandbox, *self.apps]


def _cgroup_dirs(rel: str) -> list[str]:
    """``rel`` in every mounted hierarchy (v1 controllers, the unified one)."""
    if os.path.exists(os.path.join(_CGROUP_FS, "cgroup.controllers")):
        return [_CGROUP_FS + rel]
    return [os.path.join(_CGROUP_FS, h) + rel for h in sorted(os.listdir(_CGROUP_FS))]


def _rmdir_tree(path: str) -> None:
    if not os.path.isdir(path):
        return
    for dirpath, _dirs, _files in os.walk(path, topdown=False):
        try:
            os.rmdir(dirpath)  # cgroup directories go with rmdir, their files with them
        except OSError:
            pass


def _runc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["runc", *args], capture_output=True, text=True, timeout=60)
    if check and proc.returncode:
        raise RuntimeError(f"runc {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def _write_json(path: str, doc) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.rename(tmp, path)  # the engines replace their files whole, too


class RuncFarm:
    """Containers of every runtime style; a context manager, ``close()`` is idempotent."""

    def __init__(self):
        self.tag = f"xtcp-enrich-{os.getpid()}-{next(_counter)}"
        self.base = os.path.join("/tmp", self.tag)
        self.cgroup_prefix = "/" + self.tag
        os.makedirs(self.base)
        b = self.base
        self.roots = ContainerRoots(
            runc_roots=(f"{b}/run/runc",),
            containerd_runc=f"{b}/run/containerd/runc",
            docker_containers=f"{b}/var/lib/docker/containers",
            storage_roots=(f"{b}/var/lib/containers/storage",),
            storage_run_roots=(f"{b}/run/containers/storage",),
        )
        self.netns_list: list[Netns] = []
        self.containers: dict[str, Container] = {}
        self._plain_cgroups: list[str] = []
        self._storage: dict[str, dict] = {}  # containers.json entries by id

    def __enter__(self) -> RuncFarm:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- namespaces ----------------------------------------------------------------------

    def netns(self) -> Netns:
        # xtcptest-<pid>-: conftest's sweep_stale() removes these if this process dies.
        name = f"xtcptest-{os.getpid()}-e{self.tag.rsplit('-', 1)[1]}-{len(self.netns_list)}"
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        ns = Netns(name, f"/run/netns/{name}", os.stat(f"/run/netns/{name}").st_ino)
        self.netns_list.append(ns)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)
        return ns

    def delete_netns(self, ns: Netns) -> None:
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)
        if ns in self.netns_list:
            self.netns_list.remove(ns)

    # -- runtime styles ------------------------------------------------------------------

    def containerd_pod(self, ns: Netns, name: str, namespace: str, apps: list[tuple[str, str]]) -> Pod:
        """A Kubernetes pod as containerd's CRI plugin runs it (systemd cgroup driver)."""
        uid = str(uuid.uuid4())
        root = f"{self.base}/run/containerd/runc/k8s.io"
        slice_ = f"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid.replace('-', '_')}.slice"
        sandbox_id = secrets.token_hex(32)
        common = {"io.kubernetes.cri.sandbox-name": name, "io.kubernetes.cri.sandbox-namespace": namespace,
                  "io.kubernetes.cri.sandbox-uid": uid, "io.kubernetes.cri.sandbox-id": sandbox_id}
        sandbox = self._run(
            sandbox_id, root, f"{self.base}/run/containerd/io.containerd.runtime.v2.task/k8s.io/{sandbox_id}",
            f"{slice_}/cri-containerd-{sandbox_id}.scope", ns,
            {**common, "io.kubernetes.cri.container-type": "sandbox"}, app=False)
        pod = Pod(name, namespace, uid, sandbox, [])
        for app_name, image in apps:
            self.containerd_app(pod, ns, app_name, image)
        return pod

    def containerd_app(self, pod: Pod, ns: Netns, name: str, image: str) -> Container:
        cid = secrets.token_hex(32)
        slice_ = f"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{pod.uid.replace('-', '_')}.slice"
        ann = {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.container-name": name,
               "io.kubernetes.cri.image-name": image, "io.kubernetes.cri.sandbox-name": pod.name,
               "io.kubernetes.cri.sandbox-namespace": pod.namespace, "io.kubernetes.cri.sandbox-uid": pod.uid,
               "io.kubernetes.cri.sandbox-id": pod.sandbox.id}
        c = self._run(cid, pod.sandbox.runc_root,
                      f"{self.base}/run/containerd/io.containerd.runtime.v2.task/k8s.io/{cid}",
                      f"{slice_}/cri-containerd-{cid}.scope", ns, ann)
        pod.apps.append(c)
        return c

    def crio_pod(self, ns: Netns, name: str, namespace: str, apps: list[tuple[str, str]]) -> Pod:
        """A Kubernetes pod as CRI-O runs it with runc (systemd cgroup driver)."""
        uid = str(uuid.uuid4())
        slice_ = f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid.replace('-', '_')}.slice"
        kube = {"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace,
                "io.kubernetes.pod.uid": uid}
        sandbox_id = secrets.token_hex(32)
        sandbox = self._crio(sandbox_id, ns, f"{slice_}/crio-{sandbox_id}.scope", {
            **kube, "io.kubernetes.cri-o.ContainerType": "sandbox", "io.kubernetes.cri-o.SandboxID": sandbox_id,
            "io.kubernetes.cri-o.Namespace": namespace, "io.kubernetes.container.name": "POD",
            "io.kubernetes.cri-o.Labels": json.dumps({**kube, "io.kubernetes.container.name": "POD"}),
        }, name=f"k8s_POD_{name}_{namespace}_{uid}_0", image="registry.k8s.io/pause:3.9", pod=True, app=False)
        pod = Pod(name, namespace, uid, sandbox, [])
        for app_name, image in apps:
            cid = secrets.token_hex(32)
            # The kubelet's labels travel only inside io.kubernetes.cri-o.Labels here, as a
            # check that both places are read.
            labels = {**kube, "io.kubernetes.container.name": app_name}
            pod.apps.append(self._crio(cid, ns, f"{slice_}/crio-{cid}.scope", {
                "io.kubernetes.cri-o.ContainerType": "container", "io.kubernetes.cri-o.SandboxID": sandbox_id,
                "io.kubernetes.cri-o.ImageName": image, "io.kubernetes.cri-o.Labels": json.dumps(labels),
                "io.kubernetes.cri-o.Name": f"k8s_{app_name}_{name}_{namespace}_{uid}_0",
            }, name=f"k8s_{app_name}_{name}_{namespace}_{uid}_0", image=image, pod=False))
        return pod

    def _crio(self, cid, ns, cgroup, ann, *, name, image, pod, app=True) -> Container:
        userdata = f"{self.base}/run/containers/storage/overlay-containers/{cid}/userdata"
        c = self._run(cid, f"{self.base}/run/runc", userdata, cgroup, ns, ann, app=app)
        meta = {"pod": pod, "pod-name": name, "pod-id": ann.get("io.kubernetes.cri-o.SandboxID", cid),
                "image-name": image, "image-id": secrets.token_hex(32), "name": name, "metadata-name": name}
        self._storage_add(cid, [name], meta)
        return c

    def docker_container(self, ns: Netns, name: str, image: str, labels: dict | None = None,
                         cgroup: str | None = None) -> Container:
        """A container as dockerd runs it (systemd driver); its config.v2.json written here."""
        cid = secrets.token_hex(32)
        c = self._run(cid, f"{self.base}/run/docker/runtime-runc/moby",
                      f"{self.base}/run/containerd/io.containerd.runtime.v2.task/moby/{cid}",
                      cgroup.format(id=cid) if cgroup else f"system.slice/docker-{cid}.scope", ns, {})
        path = f"{self.base}/var/lib/docker/containers/{cid}/config.v2.json"
        _write_json(path, {
            "ID": cid, "Name": "/" + name, "Image": "sha256:" + secrets.token_hex(32), "Driver": "overlay2",
            "Config": {"Hostname": cid[:12], "Image": image, "Labels": labels or {}, "Cmd": ["python3"]},
            "State": {"Running": True, "Pid": c.pid, "Status": "running"},
        })
        c.extra_files.append(os.path.dirname(path))
        return c

    def podman_container(self, ns: Netns, name: str, image: str) -> Container:
        """A container as podman runs it (systemd driver); containers/storage written here."""
        cid = secrets.token_hex(32)
        userdata = f"{self.base}/var/lib/containers/storage/overlay-containers/{cid}/userdata"
        # Podman's runc root is not among the farm's roots: its containers are found through
        # containers/storage alone.
        c = self._run(cid, f"{self.base}/run/podman-runc", userdata, f"machine.slice/libpod-{cid}.scope", ns,
                      {"io.container.manager": "libpod"})
        self._storage_add(cid, [name], {"image-name": image, "image-id": secrets.token_hex(32), "name": name,
                                        "created-at": int(time.time())})
        return c

    def plain_runc(self, ns: Netns, suffix: str) -> Container:
        """``runc run <name>``: no annotations, runc's default cgroup ``/<name>``. The name is
        ``<farm tag>-<suffix>``, so ``sweep_stale()`` finds its cgroup."""
        name = f"{self.tag}-{suffix}"
        c = self._run(name, f"{self.base}/run/runc", f"{self.base}/bundles/{name}", None, ns, {})
        self._plain_cgroups.append("/" + name)
        return c

    # -- running and removing ------------------------------------------------------------

    def _run(self, cid: str, runc_root: str, bundle: str, cgroup: str | None, ns: Netns, ann: dict,
             *, app: bool = True) -> Container:
        rootfs = os.path.join(bundle, "rootfs")
        for d in ("usr", "proc", "dev", "tmp", "status"):
            os.makedirs(os.path.join(rootfs, d), exist_ok=True)
        for link in ("bin", "lib", "lib64", "sbin"):
            if os.path.lexists("/" + link) and not os.path.lexists(os.path.join(rootfs, link)):
                os.symlink(f"usr/{link}", os.path.join(rootfs, link))
        status = os.path.join(bundle, "status")
        os.makedirs(status, exist_ok=True)
        port = PORT + sum(1 for c in self.containers.values() if c.port and c.netns == ns.inode) if app else 0
        args = ["/usr/bin/python3", "-c", _APP.format(port=port)] if app else ["/usr/bin/sleep", "infinity"]
        cgroup_path = f"{self.cgroup_prefix}/{cgroup}" if cgroup else None
        spec = {
            "ociVersion": "1.0.2",
            "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": args, "cwd": "/",
                        "env": ["PATH=/usr/bin:/bin"], "noNewPrivileges": True},
            "root": {"path": "rootfs", "readonly": True},
            "hostname": cid[:12],
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
                {"destination": "/status", "type": "bind", "source": status, "options": ["rbind", "rw"]},
            ],
            "annotations": ann,
            "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"},
                                     {"type": "network", "path": ns.path}]},
        }
        if cgroup_path:
            spec["linux"]["cgroupsPath"] = cgroup_path
        _write_json(os.path.join(bundle, "config.json"), spec)
        c = Container(cid, runc_root, bundle, cgroup_path or "/" + cid, app=app, port=port, netns=ns.inode)
        self.containers[cid] = c
        with open(os.path.join(bundle, "out.log"), "w") as log:
            # -d: runc returns once the process runs; its stdio stays on the log file.
            proc = subprocess.run(["runc", "--root", runc_root, "run", "-d", "--bundle", bundle, cid],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, timeout=60)
        if proc.returncode:
            raise RuntimeError(f"runc run {cid} failed: {open(os.path.join(bundle, 'out.log')).read()}")
        with open(os.path.join(runc_root, cid, "state.json")) as f:
            c.pid = json.load(f)["init_process_pid"]
        return c

    def remove(self, c: Container) -> None:
        _runc("--root", c.runc_root, "delete", "--force", c.id, check=False)
        self.containers.pop(c.id, None)
        if self._storage.pop(c.id, None) is not None:
            self._write_storage()
        for path in c.extra_files:
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(c.bundle, ignore_errors=True)

    def remove_pod(self, pod: Pod) -> None:
        for c in reversed(pod.containers):
            self.remove(c)

    def _storage_add(self, cid: str, names: list[str], meta: dict) -> None:
        self._storage[cid] = {"id": cid, "names": names, "image": meta.get("image-id", ""),
                              "layer": secrets.token_hex(32), "metadata": json.dumps(meta),
                              "created": "2024-01-01T00:00:00Z"}
        self._write_storage()

    def _write_storage(self) -> None:
        _write_json(f"{self.base}/var/lib/containers/storage/overlay-containers/containers.json",
                    list(self._storage.values()))

    # -- what the namespace manager would hand over ---------------------------------------

    def pids_by_netns(self, namespaces: list[Netns] | None = None) -> dict[int, list[int]]:
        """Every process in each namespace, from /proc, as the manager's scan sees them."""
        wanted = {ns.inode: [] for ns in (self.netns_list if namespaces is None else namespaces)}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                link = os.readlink(f"/proc/{entry}/ns/net")
            except OSError:
                continue
            inode = int(link[5:-1]) if link.startswith("net:[") else -1
            if inode in wanted:
                wanted[inode].append(int(entry))
        return wanted

    # -- cleanup -------------------------------------------------------------------------

    def close(self) -> None:
        for c in list(self.containers.values()):
            self.remove(c)
        for ns in list(self.netns_list):
            self.delete_netns(ns)
        for rel in [self.cgroup_prefix, *self._plain_cgroups]:
            for path in _cgroup_dirs(rel):
                _rmdir_tree(path)
        shutil.rmtree(self.base, ignore_errors=True)


def sweep_stale() -> list[str]:
    """Remove what farms of dead test processes left: their containers, cgroups and files."""
    swept = []
    for name in os.listdir("/tmp"):
        m = _TAG_RE.match(name)
        if not m or os.path.exists(f"/proc/{m.group(1)}") or not os.path.isdir(os.path.join("/tmp", name)):
            continue
        base = os.path.join("/tmp", name)
        for dirpath, _dirs, files in os.walk(base):
            if "state.json" in files:
                root, cid = os.path.split(dirpath)
                _runc("--root", root, "delete", "--force", cid, check=False)
        shutil.rmtree(base, ignore_errors=True)
        swept.append(name)
    for hierarchy in _cgroup_dirs(""):
        for name in os.listdir(hierarchy) if os.path.isdir(hierarchy) else ():
            m = _TAG_RE.match(name)
            if m and not os.path.exists(f"/proc/{m.group(1)}"):
                _rmdir_tree(os.path.join(hierarchy, name))
    return swept
