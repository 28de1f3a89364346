"""Context for records beyond the socket: which container and pod a namespace belongs to
(``containers``), which network a remote address is in (``asn``, a ClickHouse dictionary;
the ``load-asn`` command fills it), which namespace is ``host`` and names that stay (``host``),
the operator's ``--location``/``--label``/``--tag`` (``labels``; the flags are
``app/options.py``'s), and the per-namespace label bytes of every dump (``namespace_labels``).

Pure Python over files; nothing here imports the C extension (``namespace_labels`` loads it
when a labeler is made).
"""

from __future__ import annotations

from .containers import LABEL_FIELDS, ContainerEnricher, EnricherStats, NamespaceContext, contexts_for, namespace_context
from .roots import ContainerRoots
from .runtimes import ContainerInfo

__all__ = [
    "LABEL_FIELDS",
    "ContainerEnricher",
    "ContainerInfo",
    "ContainerRoots",
    "EnricherStats",
    "NamespaceContext",
    "contexts_for",
    "namespace_context",
]
