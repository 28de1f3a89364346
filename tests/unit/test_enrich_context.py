"""The labelling rule: which pod and container a namespace is labelled with (namespace_context).

The ContainerInfo values are what the runtime readers return; tests/integration/
test_enrich_runc.py gets the same results from real runc containers.
"""

from __future__ import annotations

from xtcp_uring.enrich import ContainerInfo, NamespaceContext, namespace_context

POD = dict(pod_name="web-0", pod_namespace="shop", pod_uid="u-1")


def info(cid, name="", image="", sandbox=False, runtime="containerd", **pod):
    return ContainerInfo(cid, runtime, name=name, image=image, sandbox=sandbox, source="/state", **pod)


def test_a_pod_with_one_app_is_labelled_by_the_pod_and_the_app_not_the_pause():
    ctx = namespace_context([info("p" * 64, sandbox=True, **POD), info("a" * 64, "nginx", "nginx:1", **POD)])
    assert ctx.labels() == {"container_id": "a" * 64, "container_runtime": "containerd", "container_name": "nginx",
                            "container_image": "nginx:1", "pod_name": "web-0", "pod_namespace": "shop"}
    assert ctx.pod_uid == "u-1" and not ctx.shared
    assert [c.sandbox for c in ctx.containers] == [False, True]


def test_several_apps_are_listed_in_one_order_by_name():
    ctx = namespace_context([info("b" * 64, "sidecar", "envoy:1", **POD), info("p" * 64, sandbox=True, **POD),
                             info("a" * 64, "app", "app:2", **POD)])
    assert ctx.container_name == "app,sidecar"
    assert ctx.container_image == "app:2,envoy:1"
    assert ctx.container_id == "a" * 64 + "," + "b" * 64
    assert ctx.pod_name == "web-0"


def test_only_the_pause_container_known_labels_the_pod_alone():
    ctx = namespace_context([info("p" * 64, sandbox=True, **POD)])
    assert (ctx.pod_name, ctx.container_id, ctx.container_name, ctx.container_runtime) == ("web-0", "", "", "containerd")


def test_processes_outside_containers_leave_the_namespace_unlabelled():
    ctx = namespace_context([info("a" * 64, "nginx", **POD)], outsiders=True)
    assert ctx.shared and ctx.labels() == NamespaceContext().labels()
    assert [c.container_id for c in ctx.containers] == ["a" * 64]


def test_containers_of_two_pods_name_no_pod():
    ctx = namespace_context([info("a" * 64, "x", pod_name="a", pod_namespace="n", pod_uid="1"),
                             info("b" * 64, "y", pod_name="b", pod_namespace="n", pod_uid="2")])
    assert (ctx.pod_name, ctx.pod_namespace) == ("", "")


def test_a_container_known_only_by_its_cgroup_joins_its_pod_by_uid():
    found = info("a" * 64, "nginx", **POD)
    bare = ContainerInfo("p" * 64, "containerd", pod_uid="u-1")  # state not found: id and uid only
    ctx = namespace_context([found, bare])
    assert (ctx.pod_name, ctx.pod_uid) == ("web-0", "u-1")


def test_no_containers_no_labels():
    assert namespace_context([]) == NamespaceContext()
    assert namespace_context([], outsiders=True) == NamespaceContext()


def test_a_container_without_state_is_an_app_only_when_nothing_was_found():
    found = info("a" * 64, "nginx", **POD)
    bare = ContainerInfo("p" * 64, "containerd", pod_uid="u-1")  # the pause container, state unreadable
    assert namespace_context([found, bare]).container_id == "a" * 64
    assert namespace_context([bare]).container_id == "p" * 64
