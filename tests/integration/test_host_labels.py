"""--location, --label, --tag (and XTCP_*): on every record, in /metrics target info and in the
Kafka headers; bad values are one line and an exit code (xtcp_uring/enrich/labels.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest

from kafka_broker import consume, envelope_rows, free_port, kafka_broker
from xtcp_uring.enrich.labels import HostLabels, parse_labels
from xtcp_uring.errors import ConfigError

pytestmark = pytest.mark.root


def test_label_rule_sorts_keys_and_refuses_what_would_not_split_back():
    h = HostLabels.build(" ams1 ", ["role=edge", "rack=r12"], "canary 7")
    assert (h.location, h.label, h.tag) == ("ams1", "rack=r12,role=edge", "canary 7")
    assert HostLabels.build(labels="role=edge, rack=r12").label == "rack=r12,role=edge"  # XTCP_LABELS form
    assert HostLabels.build(labels={"b": "2", "a": "1"}).label == "a=1,b=2"
    assert h.kafka_headers() == [("location", b"ams1"), ("label", b"rack=r12,role=edge"), ("tag", b"canary 7")]
    assert HostLabels.build().kafka_headers() == []
    assert parse_labels("empty=") == {"empty": ""}
    for bad, why in (("rack", "KEY=VALUE"), ("9rack=x", "key must match"), ("__x=1", "key must match"),
                     ("location=x", "key must match"), ("a=b,c", "KEY=VALUE"), ("a=b=c", "cannot hold"),
                     ("a=1,a=2", "given twice"), ("a=\x01", "cannot hold")):
        with pytest.raises(ConfigError, match=why):
            parse_labels(bad)
    with pytest.raises(ConfigError, match="--location"):
        HostLabels.build(location="x" * 300)


def _once(*flags: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xtcp_uring", "--once", "--namespaces", "host", "--format",
                           "jsonl", "--uring", "off", *flags], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_every_record_carries_the_host_labels_from_flags_or_environment():
    r = _once("--location", "ams1", "--label", "rack=r12", "--label", "role=edge", "--tag", "canary")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows and {(x["location"], x["label"], x["tag"]) for x in rows} == {("ams1", "rack=r12,role=edge", "canary")}
    r = _once(env={"XTCP_LOCATION": "fra2", "XTCP_LABELS": "rack=r1,role=core", "XTCP_TAG": "t"})
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows and {(x["location"], x["label"], x["tag"]) for x in rows} == {("fra2", "rack=r1,role=core", "t")}
    # a flag wins over the environment
    r = _once("--label", "rack=r9", env={"XTCP_LABELS": "rack=r1"})
    assert {json.loads(line)["label"] for line in r.stdout.splitlines()} == {"rack=r9"}


def test_a_bad_label_or_container_root_is_one_line_and_exit_64():
    r = _once("--label", "rack")
    assert r.returncode == ConfigError.exit_code
    assert r.stderr.strip() == "xtcp_uring: --label 'rack': expected KEY=VALUE"
    assert r.stdout == ""
    r = _once("--container-root", "host")
    assert (r.returncode, r.stderr.strip()) == (ConfigError.exit_code, "xtcp_uring: --container-root 'host': give an "
                                                "absolute path (where the host's / is mounted, such as /host)")


def _target_info(port: int, deadline: float) -> list[str]:
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
            polled = re.search(r"^xtcp_polls_total ([1-9]\d*)", text, re.M)
            if polled:
                return [line for line in text.splitlines() if line.startswith("xtcp_target_info{")]
        except OSError:
            pass
        assert time.monotonic() < deadline, "the daemon did not poll"
        time.sleep(0.2)


def test_daemon_exports_target_info_and_sends_the_labels_as_kafka_headers(tmp_path):
    port = free_port()
    with kafka_broker() as broker:
        d = subprocess.Popen(
            [sys.executable, "-m", "xtcp_uring", "--interval", "0.3", "--jitter", "0", "--namespaces", "host",
             "--uring", "off", "--sink", f"kafka://{broker.bootstrap}/labels", "--metrics-listen",
             f"127.0.0.1:{port}", "--hostname", "edge-7", "--location", "ams1", "--label", "rack=r12",
             "--label", "role=edge", "--tag", "canary", "--data-dir", str(tmp_path / "data")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            info = _target_info(port, time.monotonic() + 60)
        finally:
            d.terminate()
            _, err = d.communicate(timeout=60)
        assert d.returncode == 0, err
        assert info == ['xtcp_target_info{hostname="edge-7",location="ams1",rack="r12",role="edge"} 1.0']
        messages = asyncio.run(consume(broker.bootstrap, "labels", expect=1))
    assert messages
    for m in messages:
        headers = dict(m.headers)
        assert (headers["location"], headers["label"], headers["tag"]) == (b"ams1", b"rack=r12,role=edge", b"canary")
        rows = envelope_rows(m.value)
        assert rows and {(r.hostname, r.location, r.label, r.tag) for r in rows} == {
            ("edge-7", "ams1", "rack=r12,role=edge", "canary")}
