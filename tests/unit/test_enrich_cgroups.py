"""/proc/<pid>/cgroup → container id, for the path shapes each runtime and cgroup driver makes.

The texts are /proc/<pid>/cgroup files as those runtimes leave them (the runc ones were read
from real containers on this machine by tests/integration/test_enrich_runc.py, which checks
the same parser against live processes).
"""

from __future__ import annotations

import pytest

from xtcp_uring.enrich.cgroups import CgroupContainer, parse_cgroup

ID = "4d1f2b3c" * 8
UID = "0f3c2a1e-7b6d-4c5e-9a8b-1c2d3e4f5a6b"


def v2(path: str) -> str:
    return f"0::{path}\n"


def hybrid(path: str) -> str:
    # cgroup v1 controllers plus the unified hierarchy, as on this machine
    return "".join(f"{i}:{c}:{path}\n" for i, c in enumerate(["cpu", "memory", "pids", "name=systemd"], 1)) + v2(path)


@pytest.mark.parametrize("path, hint, pod_uid", [
    (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID.replace('-', '_')}.slice/"
     f"cri-containerd-{ID}.scope", "containerd", UID),
    (f"/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/crio-{ID}.scope", "cri-o", UID),
    (f"/kubepods/burstable/pod{UID}/{ID}", "", UID),  # cgroupfs driver: containerd or CRI-O
    (f"/system.slice/docker-{ID}.scope", "docker", ""),
    (f"/docker/{ID}", "", ""),
    (f"/machine.slice/libpod-{ID}.scope/container", "podman", ""),  # cgroup v2 podman's child
    (f"/../../kubepods.slice/kubepods-burstable.slice/cri-containerd-{ID}.scope", "containerd", ""),  # cgroupns
    (f"/nerdctl-{ID}.scope", "", ""),  # an engine this module has no name for: id, no hint
])
@pytest.mark.parametrize("layout", [v2, hybrid])
def test_container_id_runtime_and_pod_uid_from_each_shape(path, hint, pod_uid, layout):
    assert parse_cgroup(layout(path)) == CgroupContainer(ID, hint, pod_uid)


def test_the_outermost_id_wins_so_a_container_cannot_name_another_below_itself():
    other = "9" * 64
    text = v2(f"/system.slice/docker-{ID}.scope/docker-{other}.scope")
    assert parse_cgroup(text).container_id == ID


@pytest.mark.parametrize("path", [f"/system.slice/crio-conmon-{ID}.scope", f"/machine.slice/libpod-conmon-{ID}.scope"])
def test_conmon_the_runtime_monitor_is_not_in_the_container(path):
    assert parse_cgroup(v2(path)) is None


@pytest.mark.parametrize("text", [
    "0::/\n",
    "0::/init.scope\n",
    "0::/user.slice/user-0.slice/session-3.scope\n",
    "0::/system.slice/ssh.service\n",
    # this machine: v1 memory in a 32-hex cgroup of the sandbox, unified at the root
    "4:memory:/process_api/3bdd4469540e8bd2594d8f680c0b4892\n0::/\n",
    "",
    "garbage without colons\n",
])
def test_host_processes_are_in_no_container(text):
    assert parse_cgroup(text) is None


def test_a_plain_runc_name_is_a_candidate_to_confirm():
    assert parse_cgroup(hybrid("/web-1")) == CgroupContainer("web-1", plain_name=True)
