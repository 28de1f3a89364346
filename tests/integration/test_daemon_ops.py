"""The daemon's contract with its operator: a bad or busy --metrics-listen is one line and an
exit, a non-loopback listener is warned about, and a run whose sink delivered nothing is never
a success (exit 75, /readyz 503 while it lasts). ``--once --sink`` delivers to the sink."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from test_daemon import Daemon, free_port, scrape
from unit.test_metrics import BAD_LISTEN

pytestmark = pytest.mark.root


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xtcp_uring", *args], capture_output=True, text=True,
                          timeout=timeout)


def error_line(r: subprocess.CompletedProcess) -> str:
    """The one line the CLI prints for an error; nothing that looks like a traceback."""
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("xtcp_uring: ")]
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.mark.parametrize("value", list(BAD_LISTEN))
def test_every_bad_metrics_listen_is_one_line_and_exit_64(value, tmp_path):
    r = run(f"--metrics-listen={value}", "--max-polls", "1", "--sink", f"file://{tmp_path}/x.pb")
    assert r.returncode == 64
    assert r.stderr == f"xtcp_uring: --metrics-listen {value!r}: {BAD_LISTEN[value]}\n"
    assert not (tmp_path / "x.pb").exists(), "nothing was started"


def test_busy_or_absent_metrics_address_is_one_line_and_exit_64(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run("--metrics-listen", f"127.0.0.1:{port}", "--max-polls", "1", "--sink", f"file://{tmp_path}/x.pb")
    assert r.returncode == 64
    assert r.stderr == (f"xtcp_uring: --metrics-listen 127.0.0.1:{port}: the port is in use (another "
                        "xtcp_uring?); choose another port or 'off'\n")
    r = run("--metrics-listen", "192.0.2.1:9108", "--max-polls", "1", "--sink", f"file://{tmp_path}/x.pb")
    assert (r.returncode, r.stderr) == (64, "xtcp_uring: --metrics-listen 192.0.2.1:9108: no such address on "
                                            "this host\n")
    r = run("--metrics-listen", "no-such-host.invalid:9108", "--max-polls", "1", "--sink", f"file://{tmp_path}/x.pb")
    assert r.returncode == 64
    assert error_line(r).startswith("xtcp_uring: --metrics-listen no-such-host.invalid:9108: cannot resolve ")


def test_a_listener_reachable_from_other_hosts_is_warned_about(tmp_path):
    port = free_port()
    r = run("--metrics-listen", f"0.0.0.0:{port}", "--max-polls", "1", "--namespaces", "host",
            "--sink", f"file://{tmp_path}/x.pb")
    assert r.returncode == 0, r.stderr
    assert "WARNING xtcp_uring.metrics: metrics listen on 0.0.0.0, reachable from other hosts" in r.stderr
    r = run("--metrics-listen", f"127.0.0.1:{port}", "--max-polls", "1", "--namespaces", "host",
            "--sink", f"file://{tmp_path}/y.pb")
    assert r.returncode == 0 and "reachable from other hosts" not in r.stderr


FAST_CLOSE = "close_timeout_s=1&write_timeout_s=1&retry_max_s=0.2"


@pytest.mark.parametrize("sink", [
    f"file:///dev/null/not-a-dir/records.pb?{FAST_CLOSE}",  # unwritable
    f"kafka://no-such-host.invalid:9092/xtcp?{FAST_CLOSE}&request_timeout_ms=500",  # unresolvable
    f"kafka://127.0.0.1:{free_port()}/xtcp?{FAST_CLOSE}&request_timeout_ms=500",  # broker down throughout
    f"clickhouse+http://127.0.0.1:{free_port()}/xtcp?{FAST_CLOSE}",  # server down throughout
], ids=["unwritable-file", "unresolvable-host", "broker-down", "clickhouse-down"])
def test_a_run_that_delivered_nothing_exits_75(sink):
    r = run("--once", "--namespaces", "host", "--sink", sink)
    assert r.returncode == 75, r.stderr
    line = error_line(r)
    assert line.startswith(f"xtcp_uring: nothing was delivered to {sink} (")
    assert "records dropped" in line and r.stdout == ""


def test_once_with_a_sink_delivers_to_it_not_to_stdout(tmp_path):
    out = tmp_path / "records.pb"
    r = run("--once", "--namespaces", "host", "--sink", f"file://{out}")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and out.stat().st_size > 0
    sent = int(r.stderr.split(f"sink file://{out}: sent ")[1].split()[0])
    from google.protobuf.internal.decoder import _DecodeVarint32

    data, off, n = out.read_bytes(), 0, 0
    while off < len(data):
        size, off = _DecodeVarint32(data, off)
        off += size
        n += 1
    assert n == sent > 0
    assert "metrics on" not in r.stderr, "--once opens no listener"


def test_readyz_is_503_while_a_sink_delivers_nothing_and_the_exit_is_75(tmp_path):
    port = free_port()
    good = tmp_path / "good.pb"
    bad = f"file:///dev/null/not-a-dir/records.pb?{FAST_CLOSE}"
    d = Daemon("--interval", "0.3", "--jitter", "0", "--namespaces", "host", "--sink", f"file://{good}",
               "--sink", bad, "--metrics-listen", f"127.0.0.1:{port}")
    try:
        d.wait_for_polls(2)
        deadline = time.monotonic() + 30
        while True:
            status, body = scrape(port, "/readyz")
            if status == 503 and "not delivering" in body:
                break
            assert time.monotonic() < deadline, (status, body)
            time.sleep(0.1)
        assert body == f"sink {bad}: not delivering (" + body.split(" (", 1)[1]
        assert f"file://{good}" not in body, "the sink that delivers is not blamed"
        assert good.stat().st_size > 0
    finally:
        code = d.stop()
    assert code == 75, "".join(d.lines)
    assert "Traceback" not in "".join(d.lines)
    assert [line for line in d.lines if line.startswith("xtcp_uring: ")] == [
        line for line in d.lines if line.startswith(f"xtcp_uring: nothing was delivered to {bad} (")]


def test_readyz_turns_ready_when_the_sink_delivers_again(tmp_path):
    """A destination that appears later: not ready while the sink cannot write, ready once it
    delivers, and the run (which delivered) exits 0."""
    port = free_port()
    target = tmp_path / "later" / "records.pb"
    d = Daemon("--interval", "0.3", "--jitter", "0", "--namespaces", "host", "--sink",
               f"file://{target}?retry_max_s=0.2", "--metrics-listen", f"127.0.0.1:{port}")
    try:
        d.wait_for_polls(2)
        deadline = time.monotonic() + 30
        while scrape(port, "/readyz")[0] != 503:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        target.parent.mkdir()
        while scrape(port, "/readyz")[0] != 200:
            assert time.monotonic() < deadline, scrape(port, "/readyz")
            time.sleep(0.1)
    finally:
        code = d.stop()
    assert code == 0, "".join(d.lines)
