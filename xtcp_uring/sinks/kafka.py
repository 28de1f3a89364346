"""Kafka sink (aiokafka): each message is one ClickHouse ProtobufList message.

``kafka://host:port[,host:port]/topic?compression=zstd&acks=1&linger_ms=5&max_request_size=1M
&records_per_message=0``. A batch becomes messages of at most ``records_per_message`` records
(0: no limit) that fit ``max_request_size``, split at record boundaries; the key is the host
name and the header ``schema_version`` carries ``schema.SCHEMA_VERSION`` (headers ``location``,
``label`` and ``tag`` carry the host's labels when set: ``enrich.labels``). A ClickHouse Kafka
engine table with ``kafka_format = 'ProtobufList'`` reads them as they are
(``examples/clickhouse/kafka_pipeline.sql``).

Security: ``ca_file=`` (or ``tls=true`` for the system's CAs) turns on TLS, ``cert_file=`` and
``key_file=`` add a client certificate (``key_password_file=`` or ``XTCP_KAFKA_KEY_PASSWORD``
for an encrypted key). ``sasl_mechanism=PLAIN|SCRAM-SHA-256|SCRAM-SHA-512`` with
``username=`` (or ``kafka://user@host:9092/topic``) authenticates; the password comes from
``password_file=``, else the environment variable ``password_env=`` names (default
``XTCP_KAFKA_PASSWORD``), never from the query string. SASL without TLS to a host off this
machine is refused unless the daemon runs with ``--allow-insecure``. An untrusted broker
certificate or rejected credentials stop the sink at start with one line (not retried).

aiokafka reconnects by itself after a broker outage; until then writes time out and the base
retries them while the bounded queue covers the gap. Delivery is at least once: a write that
timed out may still land, and its retry then duplicates it.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from .. import schema
from ..errors import ConfigError, SinkError
from ..framing import ENVELOPE
from .base import Payload, Sink
from .config import SinkConfig
from .encoded import Encoded
from .security import check_tls_peer, cleartext_hosts, client_tls_context, public_url, read_secret

_COMPRESSION = ("zstd", "lz4", "gzip", "snappy", "none")
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# Room left in max_request_size for the record batch header, key and headers.
_REQUEST_OVERHEAD = 1024


@dataclass(kw_only=True)
class KafkaConfig(SinkConfig):
    bootstrap: str
    topic: str
    compression: str = "zstd"  # zstd, lz4 and snappy need cramjam; gzip is stdlib
    acks: str = "1"  # 0, 1 or all
    linger_ms: int = 5
    max_request_size: int = 1 << 20  # also Kafka's default message.max.bytes
    records_per_message: int = 0  # 0: as many as fit max_request_size
    request_timeout_ms: int = 10_000
    key: str = ""  # default: this host's name
    client_id: str = "xtcp_uring"
    tls: bool = False  # implied by ca_file or cert_file
    ca_file: str = ""  # PEM bundle the broker's certificate must chain to (default: the system's)
    cert_file: str = ""  # client certificate (PEM), for brokers that require one
    key_file: str = ""  # its private key, if not in cert_file
    key_password_file: str = ""  # for an encrypted key_file; else XTCP_KAFKA_KEY_PASSWORD
    sasl_mechanism: str = ""  # PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    username: str = ""
    password_file: str = ""
    password_env: str = "XTCP_KAFKA_PASSWORD"
    password: str = field(default="", repr=False)  # from the URL's user info or a keyword only

    @classmethod
    def from_parts(cls, url: str, u, opts: dict) -> "KafkaConfig":
        topic = u.path.strip("/")
        userinfo, _, hosts = u.netloc.rpartition("@")
        if not hosts or not topic or "/" in topic:
            raise ConfigError(f"{url}: expected kafka://[user@]host:port[,host:port]/topic")
        if any(k == "password" for k, _ in parse_qsl(u.query)):
            raise ConfigError(f"{public_url(url)}: give the password with password_file= or the environment "
                              "variable XTCP_KAFKA_PASSWORD, not in the URL")
        fixed = {"bootstrap": hosts, "topic": topic}
        if userinfo:
            user, _, password = userinfo.partition(":")
            fixed["username"] = unquote(user)
            if password:
                fixed["password"] = unquote(password)
        return cls._build(url, u.query, opts, **fixed)

    @property
    def hosts(self) -> list[tuple[str, int]]:
        out = []
        for item in self.bootstrap.split(","):
            host, _, port = item.strip().rpartition(":")
            out.append((host.strip("[]") or item, int(port) if port.isdigit() else 9092))
        return out

    @property
    def security_protocol(self) -> str:
        return {(False, False): "PLAINTEXT", (True, False): "SSL", (False, True): "SASL_PLAINTEXT",
                (True, True): "SASL_SSL"}[(self.tls, bool(self.sasl_mechanism))]

    def cleartext_credentials(self) -> list[str]:
        if not self.sasl_mechanism or self.tls:
            return []
        return cleartext_hosts([h for h, _ in self.hosts])

    def validate(self) -> None:
        super().validate()
        self.sasl_mechanism = self.sasl_mechanism.upper()
        if self.sasl_mechanism and self.sasl_mechanism not in _SASL_MECHANISMS:
            raise ConfigError(f"{self.url}: sasl_mechanism must be one of {', '.join(_SASL_MECHANISMS)}")
        if self.sasl_mechanism:
            if not self.username:
                raise ConfigError(f"{self.url}: SASL needs username= (or kafka://user@host:port/topic)")
            self.password = read_secret(self.url, "password", file=self.password_file, env=self.password_env,
                                        inline=self.password)
            if not self.password:
                raise ConfigError(f"{self.url}: SASL {self.sasl_mechanism} needs a password: password_file=PATH "
                                  f"or the environment variable {self.password_env}")
        elif self.username or self.password or self.password_file:
            raise ConfigError(f"{self.url}: a user name or password needs sasl_mechanism= "
                              f"({', '.join(_SASL_MECHANISMS)})")
        self.tls = bool(self.tls or self.ca_file or self.cert_file)
        self.ssl_context = None
        if self.tls:
            key_password = read_secret(self.url, "key password", file=self.key_password_file,
                                       env="XTCP_KAFKA_KEY_PASSWORD")
            self.ssl_context = client_tls_context(self.url, ca_file=self.ca_file, cert_file=self.cert_file,
                                                  key_file=self.key_file, key_password=key_password)
        elif self.key_file or self.key_password_file:
            raise ConfigError(f"{self.url}: key_file needs cert_file")
        if self.compression not in _COMPRESSION:
            raise ConfigError(f"{self.url}: compression must be one of {', '.join(_COMPRESSION)}")
        try:
            from aiokafka import codec
        except ImportError:
            raise ConfigError(f"{self.url}: aiokafka is not installed: pip install 'xtcp_uring[kafka]'") from None
        if self.compression in ("zstd", "lz4", "snappy"):
            if not codec.has_zstd():  # cramjam provides all three
                raise ConfigError(f"{self.url}: compression={self.compression} needs cramjam "
                                  "(pip install cramjam), or use compression=gzip|none")
        if self.acks not in ("0", "1", "all"):
            raise ConfigError(f"{self.url}: acks must be 0, 1 or all")
        if self.max_request_size <= 2 * _REQUEST_OVERHEAD:
            raise ConfigError(f"{self.url}: max_request_size too small")
        if self.records_per_message < 0:
            raise ConfigError(f"{self.url}: records_per_message must be >= 0")


class KafkaSink(Sink):
    scheme = "kafka"
    Config = KafkaConfig
    config: KafkaConfig

    def __init__(self, config: KafkaConfig):
        super().__init__(config)
        self._producer = None
        self._key = (config.key or socket.gethostname()).encode()
        self._headers = [("schema_version", str(schema.SCHEMA_VERSION).encode())]

    def add_headers(self, headers: list[tuple[str, bytes]]) -> None:
        """Headers sent with every message besides ``schema_version`` (the host's
        ``location``, ``label``, ``tag``: ``enrich.labels``)."""
        self._headers = self._headers + list(headers)

    @property
    def encoding(self) -> str | None:
        return ENVELOPE

    def prepare(self, encoded: Encoded) -> list[Payload]:
        c = self.config
        messages = encoded.protobuf_list(c.records_per_message, c.max_request_size - _REQUEST_OVERHEAD)
        if not messages:
            return []
        # One payload per batch: its messages go out together and are retried together.
        return [Payload([m for m, _ in messages], sum(len(m) for m, _ in messages), sum(n for _, n in messages))]

    async def _connect(self) -> None:
        from aiokafka import AIOKafkaProducer, errors

        c = self.config
        if c.tls:
            host, port = c.hosts[0]
            await check_tls_peer(host, port, c.ssl_context, c.write_timeout_s)
        security = {"security_protocol": c.security_protocol}
        if c.tls:
            security["ssl_context"] = c.ssl_context
        if c.sasl_mechanism:
            security.update(sasl_mechanism=c.sasl_mechanism, sasl_plain_username=c.username,
                            sasl_plain_password=c.password)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=c.bootstrap.split(","),
            client_id=c.client_id,
            acks=int(c.acks) if c.acks != "all" else "all",
            compression_type=None if c.compression == "none" else c.compression,
            linger_ms=c.linger_ms,
            max_request_size=c.max_request_size,
            request_timeout_ms=c.request_timeout_ms,
            retry_backoff_ms=min(100, int(c.retry_initial_s * 1000)),
            **security,
        )
        auth_failures = (errors.SaslAuthenticationFailed, errors.AuthenticationFailedError,
                         errors.UnsupportedSaslMechanismError, errors.IllegalSaslStateError)
        try:
            await self._producer.start()
        except Exception as exc:
            # aiokafka's SCRAM raises KeyError/ValueError when the broker ends the exchange
            # without a valid server signature: a refusal as much as an error code is.
            if c.sasl_mechanism and isinstance(exc, (*auth_failures, KeyError, ValueError)):
                err = SinkError(f"SASL {c.sasl_mechanism} authentication as {c.username!r} failed "
                                f"({type(exc).__name__}: {exc}): check the user name, the password and the "
                                "mechanisms the broker enables")
                err.retriable = False
                raise err from None
            raise

    async def _write(self, messages: list[bytes]) -> None:
        # Queue every message before awaiting any delivery: aiokafka pipelines them.
        sent, first_error = [], None
        for m in messages:
            try:
                fut = await self._producer.send(self.config.topic, m, key=self._key, headers=self._headers)
                sent.append((m, fut))
            except Exception as exc:
                first_error = first_error or exc
                sent.append((m, None))
        results = await asyncio.gather(*(f for _, f in sent if f is not None), return_exceptions=True)
        outcome = iter(results)
        failed = [m for m, f in sent if f is None or isinstance(next(outcome), BaseException)]
        if failed:
            messages[:] = failed  # a retry resends only what did not land
            if first_error is None:
                first_error = next(r for r in results if isinstance(r, BaseException))
            raise first_error

    async def _disconnect(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    def _retriable(self, exc: BaseException) -> bool | None:
        from aiokafka import errors

        if isinstance(exc, errors.KafkaTimeoutError):
            return True
        if isinstance(exc, errors.KafkaError):
            return bool(exc.retriable)
        return super()._retriable(exc)
