"""Container and pod labels from real runc containers, laid out as each runtime lays them out.

Every container is a real ``runc run -d`` process in a real cgroup and an ``ip netns add``
namespace (tests/support/runc_farm.py). containerd CRI and CRI-O state is runc's own plus the OCI spec
those runtimes write. dockerd and podman cannot run here (not installed; they need their own
daemon and storage), so for those the farm writes the engine's state files (Docker's
config.v2.json, containers/storage's containers.json) the way the engines do, beside a real
runc container with their cgroup path.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys

import pytest

from runc_farm import PORT, RuncFarm, sweep_stale
from xtcp_uring.enrich import ContainerEnricher, ContainerRoots, contexts_for
from xtcp_uring.enrich.cgroups import read_cgroup

pytestmark = pytest.mark.root

NGINX = "docker.io/library/nginx:1.25"


@pytest.fixture
def farm():
    if os.geteuid() != 0:
        pytest.skip("needs root (runc, network namespaces); CI runs as root")
    if shutil.which("runc") is None:
        pytest.fail("runc is not installed: `make install` installs Debian's runc (APT_PACKAGES)")
    sweep_stale()
    with RuncFarm() as f:
        yield f


def ready(*containers):
    for c in containers:
        if c.app:
            c.wait_ready()


def test_containerd_cri_pod_is_labelled_by_its_pod_and_app_container(farm):
    ns = farm.netns()
    pod = farm.containerd_pod(ns, "web-0", "shop", [("nginx", NGINX)])
    ready(*pod.containers)
    ctx = ContainerEnricher(farm.roots).refresh(farm.pids_by_netns())[ns.inode]
    (app,) = pod.apps
    assert ctx.labels() == {"container_id": app.id, "container_runtime": "containerd", "container_name": "nginx",
                            "container_image": NGINX, "pod_name": "web-0", "pod_namespace": "shop"}
    assert ctx.pod_uid == pod.uid
    # both containers were found from their processes' cgroups and runc's state
    assert {c.container_id: c.sandbox for c in ctx.containers} == {app.id: False, pod.sandbox.id: True}
    assert all(c.source.endswith(f"/run/containerd/runc/k8s.io/{c.container_id}/state.json") for c in ctx.containers)
    assert read_cgroup(app.pid).container_id == app.id


def test_crio_pod_is_labelled_from_its_annotations_and_labels(farm):
    ns = farm.netns()
    pod = farm.crio_pod(ns, "db-0", "data", [("postgres", "quay.io/example/postgres:16")])
    ready(*pod.containers)
    ctx = ContainerEnricher(farm.roots).refresh(farm.pids_by_netns())[ns.inode]
    assert ctx.labels() == {"container_id": pod.apps[0].id, "container_runtime": "cri-o",
                            "container_name": "postgres", "container_image": "quay.io/example/postgres:16",
                            "pod_name": "db-0", "pod_namespace": "data"}
    assert ctx.pod_uid == pod.uid


def test_docker_and_podman_and_plain_runc_containers(farm):
    """dockerd and podman cannot run here: their state files are written as those engines write
    them, beside real runc containers in the cgroups those engines make."""
    ns_docker, ns_shim, ns_podman, ns_plain = (farm.netns() for _ in range(4))
    docker = farm.docker_container(ns_docker, "cache", "redis:7")
    uid = "0f3c2a1e-7b6d-4c5e-9a8b-1c2d3e4f5a6b"
    kube = {"io.kubernetes.pod.name": "legacy-0", "io.kubernetes.pod.namespace": "old", "io.kubernetes.pod.uid": uid}
    # Kubernetes through dockershim, cgroupfs driver: a bare id, no runtime prefix in the cgroup.
    shim_sandbox = farm.docker_container(ns_shim, "k8s_POD_legacy-0", "registry.k8s.io/pause:3.9",
                                         {**kube, "io.kubernetes.docker.type": "podsandbox",
                                          "io.kubernetes.container.name": "POD"},
                                         cgroup=f"kubepods/besteffort/pod{uid}/{{id}}")
    shim_app = farm.docker_container(ns_shim, "k8s_app_legacy-0", "legacy/app:3",
                                     {**kube, "io.kubernetes.docker.type": "container",
                                      "io.kubernetes.container.name": "app"},
                                     cgroup=f"kubepods/besteffort/pod{uid}/{{id}}")
    podman = farm.podman_container(ns_podman, "proxy", "docker.io/library/haproxy:2.9")
    plain = farm.plain_runc(ns_plain, "plain")
    ready(docker, shim_sandbox, shim_app, podman, plain)
    contexts = contexts_for(farm.pids_by_netns(), farm.roots)  # the one-off form (--once)

    assert contexts[ns_docker.inode].labels() == {
        "container_id": docker.id, "container_runtime": "docker", "container_name": "cache",
        "container_image": "redis:7", "pod_name": "", "pod_namespace": ""}
    assert contexts[ns_shim.inode].labels() == {
        "container_id": shim_app.id, "container_runtime": "docker", "container_name": "app",
        "container_image": "legacy/app:3", "pod_name": "legacy-0", "pod_namespace": "old"}
    assert contexts[ns_podman.inode].labels() == {
        "container_id": podman.id, "container_runtime": "podman", "container_name": "proxy",
        "container_image": "docker.io/library/haproxy:2.9", "pod_name": "", "pod_namespace": ""}
    assert contexts[ns_plain.inode].labels() == {
        "container_id": plain.id, "container_runtime": "runc", "container_name": plain.id,
        "container_image": "", "pod_name": "", "pod_namespace": ""}


def test_every_record_of_a_poll_maps_to_its_pod(farm):
    """The sockets the apps opened, dumped by a real poll, each land in a labelled namespace."""
    from xtcp_uring import poll_once

    ns_a, ns_b = farm.netns(), farm.netns()
    pod_a = farm.containerd_pod(ns_a, "web-0", "shop", [("nginx", NGINX)])
    pod_b = farm.crio_pod(ns_b, "db-0", "data", [("postgres", "quay.io/example/postgres:16")])
    ready(*pod_a.containers, *pod_b.containers)
    contexts = ContainerEnricher(farm.roots).refresh(farm.pids_by_netns())
    batch = asyncio.run(poll_once(namespaces=[ns_a.name, ns_b.name]))
    sockets: dict[tuple, list] = {}
    for rec in batch:
        ctx = contexts[rec.netns_inode]
        key = (ctx.pod_namespace, ctx.pod_name, ctx.container_name, ctx.container_image)
        sockets.setdefault(key, []).append(
            (rec.inet_diag_msg_socket_source_port, rec.inet_diag_msg_socket_destination_port))
    assert set(sockets) == {("shop", "web-0", "nginx", NGINX),
                            ("data", "db-0", "postgres", "quay.io/example/postgres:16")}
    for ports in sockets.values():
        # the app's listener, its client and the accepted end
        listener = [p for p in ports if p == (PORT, 0)]
        client = [p for p in ports if p[1] == PORT]
        accepted = [p for p in ports if p[0] == PORT and p[1] not in (0, PORT)]
        assert (len(listener), len(client), len(accepted), len(ports)) == (1, 1, 1, 3), ports


def test_a_pod_with_a_sidecar_lists_both_apps_and_a_pod_with_only_its_pause_names_the_pod(farm):
    ns1, ns2 = farm.netns(), farm.netns()
    pod = farm.containerd_pod(ns1, "api-0", "shop", [("app", "example/app:2"), ("envoy", "envoyproxy/envoy:1.29")])
    lonely = farm.containerd_pod(ns2, "starting-0", "shop", [])
    ready(*pod.containers, *lonely.containers)
    contexts = ContainerEnricher(farm.roots).refresh(farm.pids_by_netns())
    ctx = contexts[ns1.inode]
    ids = {c.id: c for c in pod.apps}
    assert ctx.container_name == "app,envoy"
    assert ctx.container_image == "example/app:2,envoyproxy/envoy:1.29"
    assert [ids[i] for i in ctx.container_id.split(",")] == pod.apps
    assert contexts[ns2.inode].labels() == {"container_id": "", "container_runtime": "containerd",
                                            "container_name": "", "container_image": "",
                                            "pod_name": "starting-0", "pod_namespace": "shop"}


def test_a_process_outside_any_container_unlabels_the_namespace(farm):
    ns = farm.netns()
    pod = farm.containerd_pod(ns, "web-0", "shop", [("nginx", NGINX)])
    ready(*pod.containers)
    intruder = subprocess.Popen(["ip", "netns", "exec", ns.name, "sleep", "60"])
    try:
        enricher = ContainerEnricher(farm.roots)
        for _ in range(200):  # until `ip netns exec` has become `sleep` inside the namespace
            pids = farm.pids_by_netns()
            if intruder.pid in pids[ns.inode]:
                break
            asyncio.run(asyncio.sleep(0.01))
        ctx = enricher.refresh(pids)[ns.inode]
        assert ctx.shared and ctx.pod_name == "" and ctx.container_id == ""
        assert {c.container_id for c in ctx.containers} == {pod.sandbox.id, pod.apps[0].id}
    finally:
        intruder.kill()
        intruder.wait()
    ctx = enricher.refresh(farm.pids_by_netns())[ns.inode]
    assert not ctx.shared and ctx.pod_name == "web-0"


def test_a_daemonset_reads_the_host_state_under_its_mount_and_falls_back_to_runc_labels(farm, tmp_path):
    """host_root: the state files are read under it, bundle paths in state.json included."""
    ns = farm.netns()
    pod = farm.containerd_pod(ns, "web-0", "shop", [("nginx", NGINX)])
    ready(*pod.containers)
    host = tmp_path / "host"
    for c in pod.containers:  # what a pod sees through its read-only mounts of the host's dirs
        for src in (os.path.join(c.runc_root, c.id), c.bundle):
            dst = str(host) + src
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("rootfs", "status"))
    app = pod.apps[0]
    spec_path = f"{host}{app.bundle}/config.json"
    spec = json.loads(open(spec_path).read())
    spec["annotations"]["io.kubernetes.cri.container-name"] = "seen-through-host-root"
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    roots = ContainerRoots.under(str(host), runc_roots=farm.roots.runc_roots,
                                 containerd_runc=farm.roots.containerd_runc)
    ctx = ContainerEnricher(roots).refresh(farm.pids_by_netns())[ns.inode]
    assert ctx.container_name == "seen-through-host-root" and ctx.pod_name == "web-0"
    assert all(c.source.startswith(str(host)) for c in ctx.containers)

    # Without the bundle (only the runc state mounted), the annotations runc copied into
    # state.json's labels are used.
    os.remove(spec_path)
    ctx = ContainerEnricher(roots).refresh(farm.pids_by_netns())[ns.inode]
    assert ctx.container_name == "nginx" and ctx.container_image == NGINX


def test_state_nowhere_or_unusable_keeps_the_id_counts_and_retries(farm, tmp_path):
    ns = farm.netns()
    pod = farm.containerd_pod(ns, "web-0", "shop", [("nginx", NGINX)])
    ready(*pod.containers)
    host = tmp_path / "host"
    roots = ContainerRoots.under(str(host), containerd_runc=farm.roots.containerd_runc)
    now = [0.0]
    enricher = ContainerEnricher(roots, retry_interval=30.0, clock=lambda: now[0])
    pids = farm.pids_by_netns()
    ctx = enricher.refresh(pids)[ns.inode]
    # runc state not mounted: the cgroup still gives the ids, the runtime and the pod uid
    assert ctx.container_id == ",".join(sorted([pod.apps[0].id, pod.sandbox.id]))
    assert ctx.container_runtime == "containerd" and ctx.pod_uid == pod.uid and ctx.pod_name == ""
    assert enricher.stats.not_found == 2

    # the state appears (the operator fixed the mount; one file is damaged): after the retry
    # interval the found one is used, the damaged one counted
    for c in pod.containers:
        shutil.copytree(os.path.join(c.runc_root, c.id), str(host) + os.path.join(c.runc_root, c.id))
    with open(str(host) + os.path.join(pod.sandbox.runc_root, pod.sandbox.id, "state.json"), "w") as f:
        f.write('{"id": "truncated')
    now[0] = 10.0
    assert enricher.refresh(pids)[ns.inode] is ctx  # not yet due
    now[0] = 31.0
    ctx = enricher.refresh(pids)[ns.inode]
    assert ctx.container_name == "nginx" and ctx.pod_name == "web-0" and ctx.container_id == pod.apps[0].id
    assert enricher.stats.state_errors == 1 and enricher.stats.retries == 2


def test_churn_containers_come_and_go_between_refreshes_and_labels_follow(farm):
    ns = farm.netns()
    enricher = ContainerEnricher(farm.roots)
    first = farm.containerd_pod(ns, "web-0", "shop", [("nginx", NGINX)])
    ready(*first.containers)
    ctx = enricher.refresh(farm.pids_by_netns())[ns.inode]
    assert (ctx.pod_name, ctx.container_name) == ("web-0", "nginx")
    unchanged = enricher.refresh(farm.pids_by_netns())[ns.inode]
    assert unchanged is ctx and enricher.stats.namespaces_changed == 1

    sidecar = farm.containerd_app(first, ns, "envoy", "envoyproxy/envoy:1.29")
    ready(sidecar)
    assert enricher.refresh(farm.pids_by_netns())[ns.inode].container_name == "envoy,nginx"
    farm.remove(sidecar)
    first.apps.remove(sidecar)
    ctx = enricher.refresh(farm.pids_by_netns())[ns.inode]
    assert ctx.container_name == "nginx" and enricher.stats.containers == 2

    # the pod goes, another pod of another runtime takes the same namespace
    farm.remove_pod(first)
    assert enricher.refresh(farm.pids_by_netns())[ns.inode].labels()["pod_name"] == ""
    second = farm.crio_pod(ns, "db-0", "data", [("postgres", "quay.io/example/postgres:16")])
    ready(*second.containers)
    ctx = enricher.refresh(farm.pids_by_netns())[ns.inode]
    assert (ctx.pod_name, ctx.container_name, ctx.container_runtime) == ("db-0", "postgres", "cri-o")
    assert {c.container_id for c in ctx.containers} == {second.sandbox.id, second.apps[0].id}

    # the namespace goes: forgotten, caches empty
    farm.remove_pod(second)
    gone = ns.inode
    farm.delete_netns(ns)
    assert gone not in enricher.refresh(farm.pids_by_netns())
    assert enricher.stats.containers == 0 and enricher.context(gone).pod_name == ""


def test_a_process_that_exits_before_its_cgroup_is_read_is_churn_not_an_error(farm):
    ns = farm.netns()
    pod = farm.containerd_pod(ns, "web-0", "shop", [("nginx", NGINX)])
    ready(*pod.containers)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pids = farm.pids_by_netns()
    pids[ns.inode].append(dead.pid)  # scanned just before it exited
    enricher = ContainerEnricher(farm.roots)
    ctx = enricher.refresh(pids)[ns.inode]
    assert ctx.pod_name == "web-0" and enricher.stats.processes_gone == 1 and enricher.stats.cgroup_errors == 0
