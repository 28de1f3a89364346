"""The contract between the poller and the two ways of running dumps (io_uring, plain sockets).

A backend takes one DumpJob per namespace (its SOCK_DIAG fd and one request per address
family) and returns one DumpResult per (namespace, family) with the raw netlink bytes. It
never decodes: decoding is ``records.decode_buffers``, the same for both backends, so the two
return the same records for the same sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence


@dataclass(frozen=True)
class DumpJob:
    net_id: int  # the namespace manager's id (32 bits in io_uring user_data)
    fd: int  # NETLINK_SOCK_DIAG socket opened inside that namespace
    requests: tuple[tuple[int, bytes], ...]  # (family, request bytes), dumped in this order


@dataclass
class DumpResult:
    net_id: int
    family: int
    buffers: list = field(default_factory=list)  # bytes-like, each whole netlink messages
    nbytes: int = 0
    recvs: int = 0
    elapsed_ns: int = 0
    error: OSError | None = None  # the dump failed or was cut short (namespace gone, EBUSY…)


class DumpBackend(Protocol):
    name: str  # "io_uring", "io_uring+async", "sockets"

    async def dump_all(self, jobs: Sequence[DumpJob]) -> list[DumpResult]:
        """Run every job's requests (jobs in parallel where the backend can) and collect them."""

    def close(self) -> None:
        """Free kernel resources; idempotent."""
