"""Container and pod labels on the records themselves: real runc containers (tests/runc_farm.py)
carrying each runtime's Kubernetes annotations, polled by the CLI and the Poller.

The farm keeps each runtime's state under a temporary directory laid out as the host's ``/``
would be (``<base>/run/containerd/runc``, ``<base>/run/runc``, ``<base>/var/lib/docker``...). The
daemon is pointed at it the way a DaemonSet is pointed at its read-only mounts of the host:
``--container-root``, here a directory whose ``run``, ``var`` and bundle paths lead to the farm's.
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
from xtcp_uring import Poller

pytestmark = pytest.mark.root

NGINX = "docker.io/library/nginx:1.25"
POSTGRES = "quay.io/example/postgres:16"


@pytest.fixture
def farm():
    if os.geteuid() != 0:
        pytest.skip("needs root (runc, network namespaces); CI runs as root")
    if shutil.which("runc") is None:
        pytest.fail("runc is not installed: `make install` installs Debian's runc (APT_PACKAGES)")
    sweep_stale()
    with RuncFarm() as f:
        yield f


@pytest.fixture
def host_root(farm, tmp_path):
    """What a DaemonSet pod sees at its mount of the host's /: the farm's state at host paths."""
    root = tmp_path / "host"
    root.mkdir()
    for top in ("run", "var"):
        os.makedirs(os.path.join(farm.base, top), exist_ok=True)
        os.symlink(os.path.join(farm.base, top), root / top)
    # runc's state.json names each bundle by its absolute path, read under the root too
    os.makedirs(str(root) + os.path.dirname(farm.base), exist_ok=True)
    os.symlink(farm.base, str(root) + farm.base)
    return str(root)


def ready(*containers):
    for c in containers:
        if c.app:
            c.wait_ready()


def test_once_shows_pod_container_image_and_location_on_every_record_of_a_pod(farm, host_root):
    """The issue's demo: `python -m xtcp_uring --once --location ams1 --namespaces all`."""
    ns = farm.netns()
    pod = farm.containerd_pod(ns, "web-0", "shop", [("nginx", NGINX)])
    ready(*pod.containers)
    r = subprocess.run([sys.executable, "-m", "xtcp_uring", "--once", "--location", "ams1", "--namespaces", "all",
                        "--container-root", host_root, "--format", "jsonl"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    all_rows = [json.loads(line) for line in r.stdout.splitlines()]
    rows = [row for row in all_rows if row["netns_inode"] == ns.inode]
    (app,) = pod.apps
    assert {(row["netns"], row["location"], row["pod_name"], row["pod_namespace"], row["container_name"],
             row["container_image"], row["container_runtime"], row["container_id"]) for row in rows} == {
        (ns.name, "ams1", "web-0", "shop", "nginx", NGINX, "containerd", app.id)}
    ports = sorted((row["inet_diag_msg_socket_source_port"], row["inet_diag_msg_socket_destination_port"])
                   for row in rows if row["inet_diag_msg_family"] == 2)
    assert (PORT, 0) in ports and len(ports) == 3  # the app's listener, its client, the accepted end
    # the host's own sockets carry the location but no container
    host_rows = [row for row in all_rows if row["netns"] == "host"]
    assert host_rows and all(row["location"] == "ams1" and "pod_name" not in row for row in host_rows)


def test_namespaces_command_shows_kind_pod_container_and_location(farm, host_root):
    ns_pod, ns_plain = farm.netns(), farm.netns()
    pod = farm.crio_pod(ns_pod, "db-0", "data", [("postgres", POSTGRES)])
    farm.docker_container(ns_plain, "legacy", "legacy/app:3")
    ready(*pod.containers, *[c for c in farm.containers.values() if c.netns == ns_plain.inode])
    r = subprocess.run([sys.executable, "-m", "xtcp_uring", "namespaces", "--json", "--location", "ams1",
                        "--namespaces", f"host,{ns_pod.name},{ns_plain.name}", "--container-root", host_root],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in map(json.loads, r.stdout.splitlines())}
    pick = ("kind", "pod", "container", "image", "runtime", "location", "sockets")
    assert {name: tuple(row[k] for k in pick) for name, row in rows.items()} == {
        "host": ("host", "", "", "", "", "ams1", rows["host"]["sockets"]),
        ns_pod.name: ("pod", "data/db-0", "postgres", POSTGRES, "cri-o", "ams1", 3),
        ns_plain.name: ("container", "", "legacy", "legacy/app:3", "docker", "ams1", 3),  # listener, client, accepted
    }
    # the table form has the same columns
    r = subprocess.run([sys.executable, "-m", "xtcp_uring", "namespaces", "--location", "ams1",
                        "--namespaces", ns_pod.name, "--container-root", host_root],
                       capture_output=True, text=True, timeout=300)
    header, line = r.stdout.splitlines()
    assert header.split()[:7] == ["net_id", "name", "kind", "pod", "container", "image", "location"]
    assert line.split()[1:7] == [ns_pod.name, "pod", "data/db-0", "postgres", POSTGRES, "ams1"]


def test_labels_follow_containers_started_and_removed_between_polls(farm, host_root):
    ns = farm.netns()
    first = farm.containerd_pod(ns, "web-0", "shop", [("nginx", NGINX)])
    ready(*first.containers)

    def labels(batch):
        return {(r.pod_name, r.pod_namespace, r.container_name, r.container_image) for r in batch
                if r.netns_inode == ns.inode}

    async def polls():
        async with Poller(namespaces=ns.name, container_root=host_root, use_uring=False) as p:
            got = [labels(await p.poll())]
            farm.remove_pod(first)
            second = farm.crio_pod(ns, "db-0", "data", [("postgres", POSTGRES)])
            ready(*second.containers)
            got.append(labels(await p.poll()))
            farm.remove_pod(second)
            got.append(labels(await p.poll()))
            return got

    first_poll, second_poll, third_poll = asyncio.run(polls())
    assert first_poll == {("web-0", "shop", "nginx", NGINX)}
    assert second_poll == {("db-0", "data", "postgres", POSTGRES)}
    # no process left in the namespace: what sockets remain (TIME_WAIT) belong to no container
    assert third_poll <= {("", "", "", "")}
