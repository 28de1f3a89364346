"""A local user attacks the running daemon through the SOCK_DIAG socket it opens in their namespace.

Any user can create a user+network namespace (``unshare -Urn``); the root daemon enters it and
opens a SOCK_DIAG socket there, and inside it that user holds CAP_NET_ADMIN, which lets any
socket of theirs unicast to ours. ``tests/support/netlink_attacker.py`` (as nobody, in its own
namespace) floods that socket with forged dump replies and malformed datagrams. The daemon
must not care: it keeps polling, reports the real sockets of that namespace in every poll and
nothing else, exits 0 on SIGTERM. Every netlink socket we open is connected to the kernel, so
the kernel refuses the attacker's sends (ECONNREFUSED) before anything reaches us; the control
socket of the attacker, never connected, accepts the same sends.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest
from google.protobuf.internal.decoder import _DecodeVarint32
from netns_farm import unprivileged
from test_daemon import Daemon, free_port, metric, scrape

from xtcp_uring import schema

pytestmark = pytest.mark.root

ATTACKER = Path(__file__).resolve().parents[1] / "support" / "netlink_attacker.py"
# The system's Python: the attacker needs only the standard library, and nobody inside a new
# user namespace may not reach the test's interpreter (it can live under a 0700 /root).
ATTACKER_PYTHON = "/usr/bin/python3"
FLOOD_SECONDS = 6
REJECT_REASONS = ("sender", "seq", "malformed")
TCP_ESTABLISHED, TCP_LISTEN = 1, 10
FORGED = {socket.inet_aton("198.51.100.7"), socket.inet_aton("203.0.113.9")}  # netlink_attacker's
RECORD_CLS, _ = schema.message_classes()


def read_records(path: Path) -> list:
    """The length-delimited XtcpFlatRecords a file sink wrote."""
    data, off, out = path.read_bytes(), 0, []
    while off < len(data):
        size, off = _DecodeVarint32(data, off)
        out.append(RECORD_CLS.FromString(data[off:off + size]))
        off += size
    return out


def start_attacker() -> tuple[subprocess.Popen, int]:
    """The attacker in its own user+network namespace, as nobody; returns it and its listener port."""
    source = ATTACKER.read_text()
    proc = subprocess.Popen(
        unprivileged("unshare", "-Urn", "sh", "-c", 'ip link set lo up && exec "$0" -c "$1" "$2"',
                     ATTACKER_PYTHON, source, str(FLOOD_SECONDS)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
    line = proc.stdout.readline()  # unshare and setpriv exec: proc.pid is the attacker itself
    if not line.startswith("ready "):
        proc.kill()
        raise AssertionError(f"attacker did not start: {line!r} {proc.stderr.read()}")
    return proc, int(line.split()[1])


@pytest.mark.parametrize("uring", ["on", "off"], ids=["io_uring", "sockets"])
def test_unprivileged_flood_of_forged_and_malformed_netlink_changes_nothing(tmp_path, uring):
    attacker, listen_port = start_attacker()
    out = tmp_path / "records.pb"
    port = free_port()
    d = Daemon("--interval", "0.2", "--jitter", "0", "--namespaces", f"pid:{attacker.pid}", "--uring", uring,
               "--sink", f"file://{out}", "--metrics-listen", f"127.0.0.1:{port}")
    try:
        d.wait_for_polls(1)
        stdout, stderr = attacker.communicate(timeout=FLOOD_SECONDS + 180)
        report = json.loads(stdout.strip().splitlines()[-1])
        assert "error" not in report, report
        if d.proc.poll() is not None:
            raise AssertionError(f"the daemon died under attack (exit {d.proc.returncode}):\n"
                                 + "".join(d.lines) + d.proc.stderr.read())
        d.wait_for_polls(len(d.polls()) + 3)  # still polling after the flood
        body = scrape(port, "/metrics")[1]
    finally:
        if attacker.poll() is None:
            attacker.kill()
            attacker.wait()
        code = d.stop()
    assert code == 0, "".join(d.lines)

    records = read_records(out)
    forged = [r for r in records if FORGED & {r.inet_diag_msg_socket_source, r.inet_diag_msg_socket_destination}
              or 31337 in (r.inet_diag_msg_socket_source_port, r.inet_diag_msg_socket_destination_port)]
    assert forged == [], f"{len(forged)} forged records published, e.g. {forged[0]}"
    # Every poll during the flood reported the attacker's three real sockets (none cut short).
    margin = 500_000_000
    during: dict[int, set] = {}
    for r in records:
        if report["started_ns"] + margin <= r.timestamp_ns <= report["ended_ns"] - margin:
            during.setdefault(r.poll_id, set()).add(
                (r.inet_diag_msg_state, r.inet_diag_msg_socket_source_port, r.inet_diag_msg_socket_destination_port))
    polls = sorted(during)
    assert len(polls) >= 5 and polls == list(range(polls[0], polls[-1] + 1)), polls
    for poll_id in polls:
        sockets = during[poll_id]
        assert (TCP_LISTEN, listen_port, 0) in sockets, (poll_id, sockets)
        assert sum(1 for s in sockets if s[0] == TCP_ESTABLISHED) == 2, (poll_id, sockets)
        assert len(sockets) == 3, (poll_id, sockets)

    # The kernel refused every send to the daemon's socket, and only because it is connected:
    # the attacker's own unconnected socket took the same datagrams.
    assert report["targets"], "the attacker never found the daemon's socket"
    for kind, outcome in report["outcome"].items():
        assert set(outcome) == {"ECONNREFUSED"}, f"{kind}: {outcome}"
    assert report["control"].get("accepted", 0) > 0, report["control"]
    rejected = {reason: metric(body, "xtcp_netlink_rejected_total", reason=reason) for reason in REJECT_REASONS}
    assert rejected == dict.fromkeys(REJECT_REASONS, 0)  # nothing reached it, nothing to reject
