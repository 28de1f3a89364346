"""Network namespaces: find them, enter them, keep one SOCK_DIAG socket open in each.

    model      Namespace, NamespaceFailure, NamespaceStats, ReconcileReport
    selection  which namespaces to poll (``--namespaces``)
    scan       find every namespace of the host (/proc, bind mounts), opening nothing
    opener     the opener thread: enter a namespace, open its socket, come back
    admission  who gets one of the ``max_namespaces`` sockets, who is skipped or evicted
    limits     the open-file budget that sizes ``max_namespaces``
    manager    NamespaceManager: scan → plan → open, before every poll
"""

from .admission import SKIP_LIMIT, SKIP_USERNS
from .manager import DEFAULT_BIND_ROOTS, NamespaceManager
from .model import HOST_NAME, Namespace, NamespaceFailure, NamespaceStats, ReconcileReport
from .selection import Selection

__all__ = [
    "DEFAULT_BIND_ROOTS",
    "HOST_NAME",
    "Namespace",
    "NamespaceFailure",
    "NamespaceManager",
    "NamespaceStats",
    "ReconcileReport",
    "SKIP_LIMIT",
    "SKIP_USERNS",
    "Selection",
]
