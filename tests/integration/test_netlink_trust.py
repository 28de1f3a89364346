"""Only the kernel feeds our netlink sockets (csrc/nl.h), checked on the real kernel.

Sending a unicast to another process's netlink port id needs CAP_NET_ADMIN in the owner of
the namespace (root here; any user in a namespace of their own, tests/integration/test_attack.py).
"""

from __future__ import annotations

import socket
import sys

import pytest
from netlink_attacker import NETLINK_SOCK_DIAG, forged_socket

from xtcp_uring import native
from xtcp_uring.wire import request
from xtcp_uring.backends import DumpJob
from xtcp_uring.backends.sockets import SocketBackend
from xtcp_uring.poller import Poller

pytestmark = pytest.mark.root


def portid(sock: socket.socket) -> int:
    return sock.getsockname()[0]


def test_a_socket_we_open_refuses_every_sender_but_the_kernel():
    ours = socket.socket(fileno=native.open_diag_socket()[0])
    unconnected = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    unconnected.bind((0, 0))
    attacker = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    try:
        gram = forged_socket(1)
        attacker.sendto(gram, (portid(unconnected), 0))  # the control: the same send goes through
        assert unconnected.recv(65536) == gram
        with pytest.raises(ConnectionRefusedError):
            attacker.sendto(gram, (portid(ours), 0))
        # The kernel still answers it.
        ours.setblocking(True)
        ours.send(request.build_request(request.AF_INET, seq=99))
        _, (sender, groups) = ours.recvfrom(65536)
        assert (sender, groups) == (0, 0)
    finally:
        for s in (ours, unconnected, attacker):
            s.close()


async def test_the_socket_backend_drops_datagrams_not_sent_by_the_kernel():
    """A netlink socket someone forgot to connect: the sender check still keeps it clean."""
    victim = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, NETLINK_SOCK_DIAG)
    victim.bind((0, 0))
    attacker = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    seq = 0x1234_5678
    try:
        for _ in range(3):  # forged replies with the right seq, queued before the dump starts
            attacker.sendto(forged_socket(seq), (portid(victim), 0))
        backend = SocketBackend()
        req = request.build_request(request.AF_INET, seq=seq)
        [result] = await backend.dump_all([DumpJob(1, victim.fileno(), ((request.AF_INET, req),))])
        assert result.error is None and result.rejected_sender == 3
        from xtcp_uring.records import decode_buffers

        dump = decode_buffers(result.buffers, seq=seq)
        ports = set(dump.array()["inet_diag_msg_socket_source_port"].tolist())
        assert listener.getsockname()[1] in ports and 31337 not in ports
    finally:
        for s in (victim, attacker, listener):
            s.close()


class RecordingBackend:
    """The real plain-socket backend, remembering the requests it was given."""

    def __init__(self):
        self.inner = SocketBackend()
        self.name = self.inner.name
        self.requests: list[bytes] = []

    async def dump_all(self, jobs):
        self.requests += [req for job in jobs for _, req in job.requests]
        return await self.inner.dump_all(jobs)

    def close(self):
        self.inner.close()


async def test_every_dump_has_its_own_unguessable_seq(netns_farm):
    netns_farm.add(3)
    backend = RecordingBackend()
    async with Poller(namespaces=netns_farm.glob, backend=backend) as poller:
        first, second = await poller.poll(), await poller.poll()
        assert len(first) == len(second) > 0  # the replies matched their requests
        assert poller.stats.netlink_rejected == {"sender": 0, "seq": 0, "malformed": 0}
    seqs = [int.from_bytes(req[8:12], sys.byteorder) for req in backend.requests]
    assert len(seqs) == 2 * 3 * 2 and len(set(seqs)) == len(seqs)  # polls x namespaces x families
    assert not set(seqs) & {0, 1, 2}  # not the poll counter they used to be


async def test_a_reply_of_another_dump_is_counted_as_rejected(netns_farm, backend_options):
    """The end of a dump someone else ran on our socket: dropped by seq, counted, never decoded."""
    [name] = netns_farm.add(1)
    async with Poller(namespaces=name, **backend_options) as poller:
        first = await poller.poll()
        [ns] = poller.manager.namespaces
        stray = socket.socket(fileno=ns.fd)
        try:
            stray.send(request.build_request(request.AF_INET, seq=7))  # builds the first datagram
            stray.recv(65536)  # the sockets; reading them makes the kernel queue the NLMSG_DONE
        finally:
            stray.detach()
        second = await poller.poll()
        assert not any(d.error for d in second.dumps)
        assert len(second) == len(first)
        assert sum(d.stats.rejected_seq for d in second.dumps) == 1
        assert poller.stats.netlink_rejected == {"sender": 0, "seq": 1, "malformed": 0}
