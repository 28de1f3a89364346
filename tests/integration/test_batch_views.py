"""The library's views of a batch on real sockets: filter by state, label columns, addresses as
text or ipaddress, Arrow and pandas. Real loopback connections, polled from the host namespace
with a kernel filter on their port."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import numpy as np
import pytest

import xtcp_uring
from xtcp_uring import batch_views, schema
from xtcp_uring.errors import ConfigError

N_CONNECTIONS = 3


@pytest.fixture
def batch():
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    pairs = []
    for _ in range(N_CONNECTIONS):
        c = socket.create_connection(("127.0.0.1", port))
        a, _ = srv.accept()
        c.sendall(b"x" * 2000)
        a.recv(4000)
        pairs.append((c, a))
    try:
        yield asyncio.run(xtcp_uring.poll_once(namespaces="host", filter=f"sport {port} or dport {port}")), port, pairs
    finally:
        for c, a in pairs:
            c.close()
            a.close()
        srv.close()


def test_filter_keeps_the_established_and_they_still_encode(batch):
    b, port, pairs = batch
    assert len(b) == 1 + 2 * N_CONNECTIONS  # the listener, both ends of each connection
    est = b.filter(states="established")
    assert len(est) == 2 * N_CONNECTIONS
    assert set(est.column("inet_diag_msg_state").tolist()) == {1}
    assert len(b.filter(states=["listen"])) == 1 and len(b.filter(states=10)) == 1
    # The RTT of the README example: microseconds, listeners (rtt 0) left out.
    assert (est.column("tcp_info_rtt") > 0).all()
    # A filtered batch is C records again: it encodes, and to the sockets kept.
    _, envelope_cls = schema.message_classes()
    env = envelope_cls.FromString(bytes(est.envelope()))
    assert len(env.row) == len(est) and {r.inet_diag_msg_state for r in env.row} == {1}
    mask = est.column("inet_diag_msg_socket_destination_port") == port
    assert len(est.filter(mask=mask)) == N_CONNECTIONS  # the client ends
    with pytest.raises(ValueError, match="one bool per socket"):
        est.filter(mask=mask[:-1])
    with pytest.raises(ConfigError, match="unknown TCP state 'estabished'"):
        b.filter(states="estabished")


def test_labels_are_columns(batch):
    b, _, _ = batch
    assert b.column("netns").tolist() == ["host"] * len(b)
    assert b.column("hostname").tolist() == [socket.gethostname()] * len(b)
    assert b.column("netns_inode").dtype == np.uint64 and len(set(b.column("netns_inode").tolist())) == 1
    with pytest.raises(KeyError, match="not a column"):
        b.column("pdo")


def test_addresses_as_text_or_ipaddress_converted_once_per_address(batch, monkeypatch):
    b, port, pairs = batch
    calls = []
    real = batch_views._address_text
    monkeypatch.setattr(batch_views, "_address_text", lambda raw: calls.append(raw) or real(raw))
    src = b.column("inet_diag_msg_socket_source", addresses="text")
    assert src.tolist() == ["127.0.0.1"] * len(b)
    assert len(calls) == 1  # one distinct address among the 7 sockets: one conversion
    ips = b.column("inet_diag_msg_socket_destination", addresses="ip")
    ports = b.column("inet_diag_msg_socket_destination_port")
    connected = {ip for ip, p in zip(ips.tolist(), ports.tolist()) if p}
    assert connected == {ipaddress.ip_address("127.0.0.1")}
    clients = {c.getsockname()[1] for c, _ in pairs}
    assert clients <= set(b.column("inet_diag_msg_socket_source_port").tolist())


def test_arrow_and_pandas(batch):
    b, _, _ = batch
    table = b.to_arrow()
    assert table.num_rows == len(b) and "tcp_info_rtt" in table.column_names and "netns" in table.column_names
    text = b.to_arrow(addresses="text")
    assert set(text.column("inet_diag_msg_socket_source").to_pylist()) == {"127.0.0.1"}
    df = b.filter(states="established").to_pandas()
    assert len(df) == 2 * N_CONNECTIONS and set(df["inet_diag_msg_socket_source"]) == {"127.0.0.1"}
    assert str(df["netns"].dtype) == "category" and (df["tcp_info_rtt"] > 0).all()
