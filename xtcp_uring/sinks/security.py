"""How a sink proves who it is and protects its connection: secrets, TLS, cleartext checks.

Secrets never need the command line, where every local user reads them in
``/proc/<pid>/cmdline``: each comes from a file (``password_file=``) or an environment variable
(``XTCP_KAFKA_PASSWORD``, ``XTCP_CLICKHOUSE_PASSWORD``, or the one ``password_env=`` names),
and a password left in a URL is masked wherever the URL is shown (logs, metric labels). The
daemon warns when a sink URL on its command line carries one.

TLS contexts are built when the sink is configured, so a missing or malformed CA, certificate
or key is a configuration error at once. ``check_tls_peer`` makes one TLS handshake before a
client library takes over, so an untrusted certificate is reported as such (one line, not
retried) instead of as an endless "cannot connect".
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import ssl
import stat
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..errors import ConfigError, SinkError

__all__ = ["SECRET_OPTIONS", "check_tls_peer", "cleartext_hosts", "client_tls_context", "public_url",
           "read_secret"]

log = logging.getLogger("xtcp_uring.sinks")

# Query options whose value is a secret: masked whenever a URL is shown.
SECRET_OPTIONS = frozenset({"password", "sasl_password", "key_password", "token", "secret"})


def public_url(url: str) -> str:
    """The URL as logs and metric labels show it: passwords (user info, secret options) masked."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        user, sep, _ = userinfo.partition(":")
        netloc = f"{user}:***@{hosts}" if sep else netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k in SECRET_OPTIONS for k, _ in pairs):
            query = urlencode([(k, "***" if k in SECRET_OPTIONS else v) for k, v in pairs], safe="/:,*")
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return parts._replace(netloc=netloc, query=query).geturl()


def read_secret(url: str, what: str, *, file: str = "", env: str = "", inline: str = "") -> str:
    """A secret from a file (first line; trailing newline dropped), else the environment
    variable ``env``, else ``inline`` (from the URL). Empty when none is given.

    Raises:
        ConfigError: the file cannot be read (names the file, never the secret).
    """
    if file:
        try:
            with open(file, encoding="utf-8") as f:
                mode = os.fstat(f.fileno()).st_mode
                value = f.read().splitlines()[0]
        except IndexError:
            raise ConfigError(f"{url}: {what} file {file} is empty") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{url}: cannot read the {what} file {file}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            log.warning("%s: the %s file %s is readable by other users (chmod 600 it)", url, what, file)
        return value
    if env and os.environ.get(env):
        return os.environ[env]
    return inline


def client_tls_context(url: str, *, ca_file: str = "", cert_file: str = "", key_file: str = "",
                       key_password: str = "") -> ssl.SSLContext:
    """A TLS client context that verifies the server (``ca_file``, else the system's CAs) and,
    with ``cert_file``, presents a client certificate.

    Raises:
        ConfigError: a file that is missing or not a usable PEM (named in the message).
    """
    try:
        ctx = ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{url}: ca_file {ca_file}: {_why(exc)}") from None
    if key_file and not cert_file:
        raise ConfigError(f"{url}: key_file needs cert_file (the client certificate)")
    if cert_file:
        try:
            ctx.load_cert_chain(cert_file, key_file or None, password=key_password or None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{url}: cert_file {cert_file} / key_file {key_file or cert_file}: "
                              f"{_why(exc)}") from None
    return ctx


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return getattr(exc, "strerror", None) or str(exc)


def cleartext_hosts(hosts: list[str]) -> list[str]:
    """The hosts credentials would reach over the network (not loopback)."""
    out = []
    for host in hosts:
        name = host.strip("[]").lower()
        if name == "localhost" or name.endswith(".localhost"):
            continue
        try:
            if ipaddress.ip_address(name).is_loopback:
                continue
        except ValueError:
            pass
        out.append(host)
    return out


async def check_tls_peer(host: str, port: int, ctx: ssl.SSLContext, timeout: float) -> None:
    """One TLS handshake with the server, to tell an untrusted certificate from an outage.
    (Messages leave out the sink: the sink's own logs and errors put its name first.)

    Raises:
        SinkError: not retriable when the certificate is not trusted (the operator must act).
        OSError, asyncio.TimeoutError: the server cannot be reached (retriable).
    """
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ctx, server_hostname=host),
                                           timeout)
    except ssl.SSLCertVerificationError as exc:
        err = SinkError(f"TLS: the certificate of {host}:{port} is not trusted: {exc.verify_message} "
                        "(check ca_file)")
        err.retriable = False
        raise err from None
    except ssl.SSLError as exc:
        err = SinkError(f"TLS handshake with {host}:{port} failed: {exc.reason or exc}")
        err.retriable = False
        raise err from None
    writer.close()
    try:
        await writer.wait_closed()
    except (OSError, ssl.SSLError):
        pass
