"""Test helper: active TCP connections in the namespace it runs in, until stdin closes.

``python view_traffic.py N`` (run with ``ip netns exec``) listens on 127.0.0.1 and ::1 and
opens N connections to each of three loopback /24s (127.0.0.1, 127.0.1.1, 127.1.2.1) and to
::1, half with CUBIC and half with BBR (when the kernel has it), then keeps them busy: each
sends a few hundred KB every 0.2 s and the server answers. So the dashboard sees RTT,
delivery rate, bytes and both congestion controls on the same destinations. Prints "ready"
once every connection is up.
"""

from __future__ import annotations

import random
import selectors
import socket
import sys
import threading

PORT = 7777
DESTS = [("127.0.0.1", socket.AF_INET), ("127.0.1.1", socket.AF_INET), ("127.1.2.1", socket.AF_INET),
         ("::1", socket.AF_INET6)]


def serve(listener: socket.socket, stop: threading.Event) -> None:
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    while not stop.is_set():
        for key, _ in sel.select(0.2):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = key.fileobj.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError:  # the client went first
                data = b""
            if not data:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                continue
            try:
                key.fileobj.send(b"k" * min(len(data) // 4, 65536))
            except (BlockingIOError, OSError):
                pass


def main() -> None:
    per_dest = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    stop = threading.Event()
    for host, fam in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
        ls = socket.socket(fam, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("0.0.0.0" if fam == socket.AF_INET else "::1", PORT))
        ls.listen(128)
        threading.Thread(target=serve, args=(ls, stop), daemon=True).start()
    available = open("/proc/sys/net/ipv4/tcp_available_congestion_control").read().split()
    ccs = ["cubic", "bbr" if "bbr" in available else "reno"]
    conns = []
    for host, fam in DESTS:
        for i in range(per_dest):
            c = socket.socket(fam, socket.SOCK_STREAM)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, ccs[i % 2].encode())
            c.connect((host, PORT))
            c.setblocking(False)
            conns.append(c)
    print("ready", flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    rng = random.Random(7)
    while not stop.wait(0.2):
        for c in conns:
            try:
                c.send(b"x" * rng.randint(20_000, 400_000))
                c.recv(1 << 20)
            except (BlockingIOError, OSError):
                pass


if __name__ == "__main__":
    main()
