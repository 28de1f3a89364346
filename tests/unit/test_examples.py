"""Deployment examples must not rot: they parse, and say what the daemon really needs."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import yaml

from xtcp_uring import privileges

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NEEDED = set(privileges.NEEDS)  # CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_NET_ADMIN


def daemon_flags() -> set[str]:
    out = subprocess.run([sys.executable, "-m", "xtcp_uring", "--help"], capture_output=True, text=True,
                         check=True).stdout
    return set(re.findall(r"(--[a-z][a-z-]+)", out))


def test_daemonset_has_hostpid_netns_mounts_probes_and_only_the_needed_capabilities():
    ds = yaml.safe_load((EXAMPLES / "kubernetes" / "daemonset.yaml").read_text())
    assert ds["kind"] == "DaemonSet" and ds["apiVersion"] == "apps/v1"
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostPID"] is True
    (c,) = spec["containers"]
    caps = c["securityContext"]["capabilities"]
    assert caps["drop"] == ["ALL"]
    assert {"CAP_" + x for x in caps["add"]} == NEEDED
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    for path in ("/var/run/netns", "/run/docker/netns"):
        assert mounts[path]["readOnly"] is True
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["ports"][0]["containerPort"] == 9108
    flags = daemon_flags()
    for arg in c["args"]:
        assert arg.split("=")[0] in flags, arg


def test_systemd_unit_grants_exactly_the_needed_capabilities_and_runs_a_real_command():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read_string((EXAMPLES / "systemd" / "xtcp-uring.service").read_text())
    service = unit["Service"]
    assert set(service["CapabilityBoundingSet"].split()) == NEEDED
    assert set(service["AmbientCapabilities"].split()) == NEEDED
    assert service["NoNewPrivileges"] == "yes"
    assert "AF_NETLINK" in service["RestrictAddressFamilies"]
    assert service["ExecReload"].endswith("-HUP $MAINPID")
    cmd = service["ExecStart"].replace("\\\n", " ").split()
    assert cmd[1:3] == ["-m", "xtcp_uring"]
    flags = daemon_flags()
    assert all(a in flags for a in cmd if a.startswith("--"))


def test_containerfile_copies_only_paths_that_exist():
    text = (EXAMPLES / "Containerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src
    assert "liburing-dev" in text and "liburing2" in text
