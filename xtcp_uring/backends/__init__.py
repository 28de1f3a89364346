"""The two ways of running dumps, behind one contract: io_uring (``uring``), plain sockets (``sockets``).

A backend takes one DumpJob per namespace (its SOCK_DIAG fd and one request per address
family) and returns one DumpResult per (namespace, family) carrying the ``records.Dump`` of that
dump. io_uring decodes each chunk as it arrives; the socket backend decodes the bytes once the
dump has ended (and keeps them in ``buffers``). Both go through the same C decoder, so the two
backends return the same records for the same sockets.

A backend gets sockets already open (``namespaces``) and requests already built (``wire``);
it never enters a namespace and never builds a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, Sequence

if TYPE_CHECKING:
    from ..records import Dump


@dataclass(frozen=True)
class DumpJob:
    net_id: int  # the namespace manager's id (32 bits in io_uring user_data)
    fd: int  # NETLINK_SOCK_DIAG socket opened inside that namespace
    requests: tuple[tuple[int, bytes], ...]  # (family, request bytes), dumped in this order
    labels: tuple[bytes, ...] = ()  # per request: encoded [ns] fields (records.encode_labels)


@dataclass
class DumpResult:
    net_id: int
    family: int
    buffers: list = field(default_factory=list)  # bytes-like, each whole netlink messages (sockets)
    dump: Dump | None = None  # the records: set by both backends (a stand-in may leave it None)
    nbytes: int = 0
    recvs: int = 0
    elapsed_ns: int = 0
    error: OSError | None = None  # the dump failed or was cut short (namespace gone, EBUSY…)
    rejected_sender: int = 0  # datagrams from anyone but the kernel: dropped unread


class DumpBackend(Protocol):
    name: str  # "io_uring", "io_uring+async", "sockets"

    async def dump_all(self, jobs: Sequence[DumpJob]) -> list[DumpResult]:
        """Run every job's requests (jobs in parallel where the backend can) and collect them."""

    def close(self) -> None:
        """Free kernel resources; idempotent."""
