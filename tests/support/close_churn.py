"""Open, use and close TCP connections in the current namespace; report each end's last TCP_INFO.

Run inside a namespace (``ip netns exec NAME python close_churn.py N``): brings ``lo`` up,
listens on 127.0.0.1 and ::1, and for each family makes N connections, each sending a few
random-sized chunks both ways and reading them whole. Just before closing an end it reads
``getsockopt(TCP_INFO)`` and prints one JSON line per end: family, sport, dport, SO_COOKIE,
bytes_acked, bytes_received, total_retrans, and how it closed. Odd-numbered connections end
gracefully: both sides shut down writing and read the peer's FIN, and the reading comes after
both FINs were acked, so nothing moves between it and close(). Even-numbered ones close
abortively (SO_LINGER 0): the first end is reset by the kernel's tcp_disconnect (its counters
and destination port zeroed before it is destroyed), its peer receives the RST and keeps its
counters. The listeners are closed last and reported too (dport 0).

``--quiet``: churn only, print the number of socket ends closed (the flood test).
"""

import json
import random
import socket
import struct
import subprocess
import sys
import time

TCP_INFO = 11
TCP_CLOSE = 7
SO_COOKIE = 57
_LINGER_ABORT = struct.pack("ii", 1, 0)


def tcp_info(s: socket.socket) -> dict:
    raw = s.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 280)
    total_retrans, = struct.unpack_from("I", raw, 100)
    acked, received = struct.unpack_from("QQ", raw, 120)
    return {"bytes_acked": acked, "bytes_received": received, "total_retrans": total_retrans}


def cookie(s: socket.socket) -> int:
    return struct.unpack("Q", s.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0]


def read_exactly(s: socket.socket, n: int) -> None:
    while n:
        chunk = s.recv(min(n, 65536))
        if not chunk:
            raise EOFError
        n -= len(chunk)


def main() -> None:
    n = int(sys.argv[1])
    quiet = "--quiet" in sys.argv
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    rng = random.Random(n)
    ends = 0
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        srv = socket.socket(family, socket.SOCK_STREAM)
        srv.bind((host, 0))
        srv.listen(128)
        for i in range(n):
            c = socket.create_connection(srv.getsockname()[:2])
            a, _ = srv.accept()
            ports = {s: (s.getsockname()[1], s.getpeername()[1]) for s in (c, a)}
            if not quiet:
                for _ in range(rng.randint(1, 4)):
                    k = rng.randint(1, 20000)
                    c.sendall(b"c" * k)
                    read_exactly(a, k)
                    k = rng.randint(1, 20000)
                    a.sendall(b"a" * k)
                    read_exactly(c, k)
            abort = i % 2 == 0
            if not abort and not quiet:
                # Both FINs sent, received and acked first: then nothing moves after the reading.
                c.shutdown(socket.SHUT_WR)
                assert a.recv(1) == b""
                a.shutdown(socket.SHUT_WR)
                assert c.recv(1) == b""
                deadline = time.monotonic() + 2
                while a.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 1)[0] != TCP_CLOSE and time.monotonic() < deadline:
                    time.sleep(0.001)
            # Both ends read before either closes (an RST or FIN changes the peer's state).
            last = [(s, *ports[s], {**tcp_info(s), "cookie": cookie(s)}) for s in (c, a)]
            for s, sport, dport, info in last:
                if abort:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
                if not quiet:
                    print(json.dumps({"family": int(family), "sport": sport, "dport": dport, "abort": abort, **info}))
                s.close()
                ends += 1
        if not quiet:
            print(json.dumps({"family": int(family), "sport": srv.getsockname()[1], "dport": 0, "abort": False,
                              "listener": True, "cookie": cookie(srv)}))
        srv.close()
        ends += 1
    if quiet:
        print(ends)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
