"""The command-line flags of host labels and container enrichment, with their ``XTCP_*``
variables, and the ``Poller`` keywords they become (kept here so the CLI adds one call)."""

from __future__ import annotations

import argparse
import os

__all__ = ["add_context_options", "context_options_from_args"]


def _env(name: str, default=None):
    return os.environ.get("XTCP_" + name, default)


def add_context_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("context on every record")
    g.add_argument("--location", default=_env("LOCATION", ""),
                   help="this host's PoP or site, the `location` column (XTCP_LOCATION)")
    g.add_argument("--label", action="append", default=None, metavar="KEY=VALUE",
                   help="a label of this host, repeatable; the `label` column holds them as k=v,k2=v2 sorted "
                        "by key; also in /metrics xtcp_target_info and Kafka headers "
                        "(XTCP_LABELS=\"k=v,k2=v2\")")
    g.add_argument("--tag", default=_env("TAG", ""), help="free text for the `tag` column (XTCP_TAG)")
    g.add_argument("--containers", choices=("on", "off"), default=_env("CONTAINERS", "on"),
                   help="fill container_* and pod_* from the container runtimes' state (default on)")
    g.add_argument("--container-root", default=_env("CONTAINER_ROOT", None), metavar="PATH",
                   help="where the host's / is seen, to read the runtimes' state (/run/runc, "
                        "/run/containerd, /var/lib/docker...): /host in a DaemonSet that mounts them "
                        "there read-only (default /; XTCP_CONTAINER_ROOT)")


def context_options_from_args(args) -> dict:
    """``Poller`` keywords from the flags above (absent flags: the Poller's defaults)."""
    labels = getattr(args, "label", None)
    if labels is None:
        labels = _env("LABELS", "")
    return {"location": getattr(args, "location", ""), "labels": labels, "tag": getattr(args, "tag", ""),
            "containers": getattr(args, "containers", "on") != "off",
            "container_root": getattr(args, "container_root", None)}
