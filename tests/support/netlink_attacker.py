"""An unprivileged attacker of the daemon's SOCK_DIAG socket (run by tests/integration/test_attack.py).

Runs as nobody inside its own ``unshare -Urn`` namespace, where it holds CAP_NET_ADMIN and so
may unicast to any netlink socket of that namespace, the daemon's included. It opens a few real
TCP sockets (so the daemon has something true to report here), then finds the daemon's socket
the way an attacker would (``/proc/net/netlink`` lists every protocol-4 socket of this
namespace with its port id) and floods it for ``seconds`` with:

- forged dump replies: well-formed SOCK_DIAG_BY_FAMILY messages for a made-up connection
  (``FORGED_SOURCE:FORGED_SPORT`` → ``FORGED_DESTINATION:FORGED_DPORT``), one message per
  sequence number, for the guessable ones (a poll counter: 1, 2, 3…) and for brute-forced
  blocks; and forged NLMSG_DONE for the guessable ones (to cut real dumps short);
- malformed datagrams: a last message whose nlmsg_len is not a multiple of 4, lengths past
  the end, nlmsg_len below the header, a short header, NLMSG_ERROR/DONE with status INT32_MIN.

Usage: ``python netlink_attacker.py SECONDS``. Prints ``ready`` once its sockets are up, then
one JSON line at the end: the port ids it attacked, when the flood started and ended, and per
kind of datagram how many sends the kernel accepted and how many it refused (by errno name). A control socket of its own,
never connected, must accept the same sends: proof that a refusal is the target's doing.
"""

import errno
import json
import socket
import struct
import sys
import time

FORGED_SOURCE, FORGED_DESTINATION = "198.51.100.7", "203.0.113.9"  # TEST-NET-2 / TEST-NET-3
FORGED_SPORT, FORGED_DPORT = 31337, 4444
NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, NLMSG_ERROR, NLMSG_DONE, NLM_F_MULTI = 4, 20, 2, 3, 2
HDR = struct.Struct("=IHHII")  # nlmsg_len, type, flags, seq, pid
GUESSES = 360  # messages per forged datagram: seqs 1..360 cover a poll counter's first polls


def forged_socket(seq: int) -> bytes:
    """One well-formed SOCK_DIAG_BY_FAMILY reply message (inet_diag_msg, no attributes)."""
    msg = struct.pack("=BBBBHH16s16sIIIIIIII", socket.AF_INET, 1, 0, 0, socket.htons(FORGED_SPORT),
                      socket.htons(FORGED_DPORT), socket.inet_aton(FORGED_SOURCE), socket.inet_aton(FORGED_DESTINATION),
                      0, 0xDEAD, 0xBEEF, 0, 0, 0, 0, 1234)
    return HDR.pack(HDR.size + len(msg), SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, seq, 0) + msg


def status_message(mtype: int, seq: int, status: int) -> bytes:
    return HDR.pack(HDR.size + 4, mtype, NLM_F_MULTI, seq, 0) + struct.pack("=i", status)


def datagrams() -> dict[str, list[bytes]]:
    guessed = b"".join(forged_socket(seq) for seq in range(1, GUESSES + 1))
    brute = [b"".join(forged_socket(seq) for seq in range(start, start + GUESSES))
             for start in range(GUESSES + 1, 64 * GUESSES, GUESSES)]
    odd_last = forged_socket(1) + HDR.pack(17, SOCK_DIAG_BY_FAMILY, 0, 1, 0) + b"\x41"
    big_odd = HDR.pack(65533, SOCK_DIAG_BY_FAMILY, 0, 1, 0) + b"\x41" * (65533 - HDR.size)
    return {
        "forged_guessed": [guessed],
        "forged_brute_force": brute,
        "done_guessed": [b"".join(status_message(NLMSG_DONE, seq, 0) for seq in range(1, 4 * GUESSES))],
        "odd_length_last": [odd_last, HDR.pack(17, SOCK_DIAG_BY_FAMILY, 0, 1, 0) + b"\0", big_odd],
        "length_past_end": [HDR.pack(4096, SOCK_DIAG_BY_FAMILY, 0, 1, 0) + b"\0" * 16],
        "length_below_header": [HDR.pack(4, SOCK_DIAG_BY_FAMILY, 0, 1, 0) + b"\0" * 16],
        "short_header": [b"\x10\0\0\0\x14\0\0\0", forged_socket(2) + b"\x10\0\0\0"],
        "status_int32_min": [status_message(NLMSG_ERROR, seq, -2**31) + status_message(NLMSG_DONE, seq, -2**31)
                             for seq in range(1, GUESSES + 1)],
    }


def diag_portids() -> set[int]:
    """Port ids of the protocol-4 (SOCK_DIAG) sockets of this namespace, the kernel's (0) aside."""
    found = set()
    with open("/proc/net/netlink") as f:
        next(f)
        for line in f:
            cols = line.split()
            if int(cols[1]) == NETLINK_SOCK_DIAG and int(cols[2]) != 0:
                found.add(int(cols[2]) & 0xFFFFFFFF)
    return found


def real_sockets() -> list[socket.socket]:
    """A listener and a connection on loopback: what the daemon must keep reporting."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    cli = socket.create_connection(lst.getsockname())
    srv, _ = lst.accept()
    return [lst, cli, srv]


def main(seconds: float) -> None:
    keep = real_sockets()
    sender = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    sender.bind((0, 0))
    control = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    control.bind((0, 0))
    control.setblocking(False)
    ours = {sender.getsockname()[0] & 0xFFFFFFFF, control.getsockname()[0] & 0xFFFFFFFF}
    print("ready", keep[0].getsockname()[1], flush=True)

    deadline = time.monotonic() + 120
    targets: set[int] = set()
    while not targets:
        if time.monotonic() > deadline:
            print(json.dumps({"error": "no SOCK_DIAG socket of the daemon appeared"}), flush=True)
            return
        targets = diag_portids() - ours
        time.sleep(0.05)

    kinds = datagrams()
    outcome: dict[str, dict[str, int]] = {kind: {} for kind in kinds}
    control_outcome: dict[str, int] = {}
    attacked: set[int] = set(targets)

    def count(table: dict[str, int], exc: OSError | None) -> None:
        key = "accepted" if exc is None else errno.errorcode.get(exc.errno, str(exc.errno))
        table[key] = table.get(key, 0) + 1

    started_ns = time.time_ns()
    end = time.monotonic() + seconds
    next_refresh = 0.0
    while time.monotonic() < end:
        if time.monotonic() >= next_refresh:  # the daemon may have reopened its socket
            targets = (diag_portids() - ours) or targets
            attacked |= targets
            next_refresh = time.monotonic() + 0.25
        for kind, grams in kinds.items():
            for gram in grams:
                for portid in targets:
                    try:
                        sender.sendto(gram, socket.MSG_DONTWAIT, (portid, 0))
                        count(outcome[kind], None)
                    except OSError as exc:
                        count(outcome[kind], exc)
        try:  # the control: the same kind of send to a socket nobody connected
            sender.sendto(kinds["forged_guessed"][0], socket.MSG_DONTWAIT, (control.getsockname()[0], 0))
            count(control_outcome, None)
            while True:
                control.recv(65536)
        except BlockingIOError:
            pass
        except OSError as exc:
            count(control_outcome, exc)
    print(json.dumps({"targets": sorted(attacked), "outcome": outcome, "control": control_outcome,
                      "started_ns": started_ns, "ended_ns": time.time_ns()}), flush=True)
    for s in keep:
        s.close()


if __name__ == "__main__":
    main(float(sys.argv[1]))
