"""Sinks: where batches go, chosen by URL.

    kafka://[user@]host:port/topic?compression=zstd&acks=1&linger_ms=5&records_per_message=0
            &ca_file=ca.pem&sasl_mechanism=SCRAM-SHA-512&password_file=/etc/xtcp/kafka.pw
    chdb:///path/to/dir?ttl_days=30              embedded ClickHouse, table xtcp.xtcp_records
    clickhouse+https://user@host:8443/db?ca_file=ca.pem&password_file=/etc/xtcp/ch.pw
                                                 ClickHouse server (also clickhouse+http)
    file:///path/to/records.pb                   length-delimited XtcpFlatRecord
    -  (or stdout:?format=jsonl|pb|pblist)        standard output
    udp://host:port?max_datagram=60000            one ProtobufList message per datagram

Every sink also takes the shared options of ``SinkConfig`` (``queue_bytes``, ``wait_s``,
``retry_initial_s``, ``retry_max_s``, ``write_timeout_s``, ``close_timeout_s``) in the query
string or as keywords. Sink modules are imported on first use, so the core package never
imports aiokafka, chdb or pyarrow. Passwords come from files or the environment
(``sinks.security``); a sink that would send credentials unencrypted to another host is refused
unless ``allow_insecure``.
"""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from .base import Payload, Sink, SinkGroup, SinkStats
from .config import SinkConfig, split_url
from .encoded import Encoded, envelope_messages

# scheme -> (module, class)
SCHEMES = {
    "kafka": ("kafka", "KafkaSink"),
    "chdb": ("chdb", "ChdbSink"),
    "clickhouse+http": ("clickhouse_http", "ClickHouseHttpSink"),
    "clickhouse+https": ("clickhouse_http", "ClickHouseHttpSink"),
    "file": ("file", "FileSink"),
    "stdout": ("file", "StdoutSink"),
    "udp": ("udp", "UdpSink"),
}


def sink_class(url: str) -> type[Sink]:
    """The Sink class for a URL's scheme (``-`` is stdout)."""
    return _class_for(url, split_url(url).scheme.lower())


def _class_for(url: str, scheme: str) -> type[Sink]:
    if scheme not in SCHEMES:
        raise ConfigError(f"unknown sink {url!r}; known: {', '.join(sorted(SCHEMES))}, or - for stdout")
    module, cls = SCHEMES[scheme]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def open_sink(url: str, *, allow_insecure: bool = False, **opts) -> Sink:
    """Make (not start) the sink a URL names; ``opts`` override its query parameters.

    Raises:
        ConfigError: unknown scheme, bad URL or option; credentials that would cross the
            network unencrypted (unless ``allow_insecure``).
    """
    parts = split_url(url)  # once: the scheme picks the class, the rest is its config
    cls = _class_for(url, parts.scheme.lower())
    sink = cls(cls.Config.from_parts(url, parts, opts))
    exposed = sink.config.cleartext_credentials()
    if exposed and not allow_insecure:
        raise ConfigError(f"{sink.name}: refusing to send credentials unencrypted to {', '.join(exposed)}: "
                          "use TLS (kafka: ca_file= or tls=true; clickhouse+https://) or --allow-insecure")
    return sink


__all__ = [
    "SCHEMES",
    "Encoded",
    "Payload",
    "Sink",
    "SinkConfig",
    "SinkGroup",
    "SinkStats",
    "envelope_messages",
    "open_sink",
    "sink_class",
]
