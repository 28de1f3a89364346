"""Reading runtime annotations and roots: what a label is made of, and what is refused.

Annotations are plain dicts here (what an OCI config.json holds); tests/integration/
test_enrich_runc.py reads the same from real runc state files.
"""

from __future__ import annotations

import json

import pytest

from xtcp_uring import ConfigError
from xtcp_uring.enrich import ContainerRoots
from xtcp_uring.enrich.runtimes import MAX_VALUE, info_from_annotations

ID = "c" * 64


def test_crio_reads_kubelet_labels_from_annotations_or_from_its_labels_json():
    labels = {"io.kubernetes.pod.name": "db-0", "io.kubernetes.pod.namespace": "data",
              "io.kubernetes.pod.uid": "u-2", "io.kubernetes.container.name": "pg"}
    ann = {"io.kubernetes.cri-o.ContainerType": "container", "io.kubernetes.cri-o.ImageName": "pg:16",
           "io.kubernetes.cri-o.Labels": json.dumps(labels)}
    info = info_from_annotations(ID, ann, "runc", "/s")
    assert (info.runtime, info.name, info.image, info.pod_name, info.pod_namespace, info.pod_uid, info.sandbox) == \
        ("cri-o", "pg", "pg:16", "db-0", "data", "u-2", False)
    ann["io.kubernetes.pod.name"] = "direct"  # the annotation wins over the labels JSON
    assert info_from_annotations(ID, ann, "runc", "/s").pod_name == "direct"


def test_values_users_control_are_cut_and_bad_shapes_ignored():
    ann = {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.container-name": "n" * 5000,
           "io.kubernetes.cri.sandbox-name": "web-0"}
    info = info_from_annotations(ID, ann, "runc", "/s")
    assert info.runtime == "containerd" and len(info.name) == MAX_VALUE and info.pod_name == "web-0"
    bad = {"io.kubernetes.cri-o.ContainerType": "container", "io.kubernetes.cri-o.Labels": "{not json",
           "io.kubernetes.pod.name": "p"}
    assert info_from_annotations(ID, bad, "runc", "/s").pod_name == "p"
    listed = {"io.kubernetes.cri-o.ContainerType": "container", "io.kubernetes.cri-o.Labels": "[1, 2]"}
    assert info_from_annotations(ID, listed, "runc", "/s").pod_name == ""


def test_no_annotations_plain_runc_is_named_by_its_id_and_podman_by_its_marker():
    assert info_from_annotations("web1", {}, "runc", "/s").name == "web1"
    assert info_from_annotations(ID, {"io.container.manager": "libpod"}, "runc", "/s").runtime == "podman"


def test_host_paths_under_a_host_root():
    roots = ContainerRoots.under("/host")
    assert roots.host("/run/containerd/runc/k8s.io/x/state.json") == "/host/run/containerd/runc/k8s.io/x/state.json"
    # /var/run is a symlink to /run on the host; through /host it would escape to our own /run
    assert roots.host("/var/run/runc/x") == "/host/run/runc/x"
    assert ContainerRoots().host("/var/run/runc/x") == "/run/runc/x"
    with pytest.raises(ConfigError, match="absolute"):
        ContainerRoots(runc_roots=("run/runc",))
