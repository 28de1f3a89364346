"""The DaemonSet's mounts for container labels agree with ContainerRoots and stay read-only."""

from __future__ import annotations

from pathlib import Path

import yaml

from xtcp_uring.enrich import ContainerRoots

DAEMONSET = Path(__file__).resolve().parents[2] / "examples" / "kubernetes" / "daemonset.yaml"


def test_runtime_state_is_mounted_read_only_at_host_under_its_own_path():
    spec = yaml.safe_load(DAEMONSET.read_text())["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    roots = ContainerRoots.under("/host")
    known = {roots.containerd_runc, roots.docker_containers, *roots.runc_roots, *roots.storage_roots,
             *roots.storage_run_roots}
    host_mounts = [m for m in container["volumeMounts"] if m["mountPath"].startswith("/host/")]
    assert host_mounts, "the DaemonSet mounts no runtime state"
    for m in host_mounts:
        host_path = volumes[m["name"]]["hostPath"]["path"]
        assert m["readOnly"] is True
        assert roots.host(host_path) == m["mountPath"]
        assert any(host_path == k or host_path.startswith(k + "/") for k in known), host_path
    assert all(volumes[m["name"]].get("hostPath", {}).get("path") not in ("/run", "/var/run", "/")
               for m in container["volumeMounts"])
