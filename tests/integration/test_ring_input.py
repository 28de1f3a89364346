"""The ring's chunk path fed hostile datagrams: scan, decode thread or inline decode, encode.

The job's fd is one end of an AF_UNIX SOCK_SEQPACKET pair: the ring's SEND goes to the other
end and each of its RECVs reads one datagram the test wrote there, so the real io_uring code
runs on exactly these bytes. Each case runs in a child process: a crash (the one these inputs
caused before the ring and the decoder shared one bounds-checked walker) fails the test, it
does not take the test run down. The last test replays the inputs ``make fuzz`` kept for the
ring (tests/fuzz/fuzz_ring.py) against the plain decoder.
"""

from __future__ import annotations

import errno
import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import fuzz_ring
import pytest
from netlink_attacker import HDR, SOCK_DIAG_BY_FAMILY, forged_socket, status_message

NLMSG_ERROR, NLMSG_DONE = 2, 3
CORPUS = Path(__file__).resolve().parent.parent / "data" / "fuzz-corpus-ring"
SEQ = 0x5EC0_0001
MODES = {"decode-thread": "True", "inline-decode": "False"}

_CHILD = textwrap.dedent("""
    import asyncio, json, socket, sys
    from xtcp_uring import native
    from xtcp_uring.backends import DumpJob
    from xtcp_uring.wire.request import build_request
    from xtcp_uring.backends.uring import UringBackend

    decode_thread, grams = sys.argv[1] == "True", [bytes.fromhex(g) for g in sys.argv[2:]]
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for gram in grams:
        peer.send(gram)
    job = DumpJob(7, ours.fileno(), ((2, build_request(2, seq=%(seq)d)),), (b"",))

    async def main():
        with UringBackend(decode_thread=decode_thread, encode=native.FRAME_DELIMITED, timeout=2) as ring:
            [r] = await asyncio.wait_for(ring.dump_all([job]), 10)
            d = r.dump
            print(json.dumps({"errno": r.error.errno if r.error else 0, "count": d.count,
                              "sports": [int(p) for p in d.array()["inet_diag_msg_socket_source_port"]],
                              "encoded": len(d.encoded_as(native.FRAME_DELIMITED) or b""),
                              "rejected_seq": d.stats.rejected_seq, "short_messages": d.stats.short_messages,
                              "rejected_malformed": d.stats.rejected_malformed}))

    asyncio.run(main())
""") % {"seq": SEQ}


def run_ring(mode: str, grams: list[bytes]) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, MODES[mode], *(g.hex() for g in grams)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"the ring died (exit {out.returncode}): {out.stderr[-2000:]}"
    return json.loads(out.stdout)


def real(sport: int) -> bytes:
    """A well-formed socket message of the dump in flight, source port ``sport``."""
    msg = bytearray(forged_socket(SEQ))
    struct.pack_into(">H", msg, HDR.size + 4, sport)
    return bytes(msg)


DONE = status_message(NLMSG_DONE, SEQ, 0)
# A last message whose nlmsg_len is not a multiple of 4 (its padding missing): the walker
# before the fix stepped past the end of the buffer on these and read on until it crashed.
ODD_LAST = HDR.pack(17, SOCK_DIAG_BY_FAMILY, 0, SEQ, 0) + b"\x41"   # too short for a socket
BIG_ODD = HDR.pack(65533, SOCK_DIAG_BY_FAMILY, 0, SEQ, 0) + b"\x41" * (65533 - HDR.size)  # 3 B short of the buffer


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("odd, sports, short", [(ODD_LAST, [1, 3], 1), (real(2) + ODD_LAST, [1, 2, 3], 1),
                                                (BIG_ODD, [1, 0x4141, 3], 0)],
                         ids=["17-bytes", "17-bytes-last", "65533-bytes"])
def test_a_last_message_without_its_padding_is_walked_within_the_datagram(mode, odd, sports, short):
    r = run_ring(mode, [real(1), odd, real(3) + DONE])
    assert (r["errno"], r["sports"], r["rejected_malformed"]) == (0, sports, 0)
    assert r["short_messages"] == short and r["encoded"] > 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bad", [b"\x10\0\0\0\x14\0", real(2) + b"\x10\0\0\0",
                                 HDR.pack(4096, SOCK_DIAG_BY_FAMILY, 0, SEQ, 0) + bytes(16),
                                 HDR.pack(4, SOCK_DIAG_BY_FAMILY, 0, SEQ, 0) + bytes(16)],
                         ids=["short-header", "short-header-last", "length-past-end", "length-below-header"])
def test_a_malformed_datagram_ends_its_dump_with_ebadmsg_and_keeps_what_came_before(mode, bad):
    r = run_ring(mode, [real(1), bad, real(3) + DONE])
    assert (r["errno"], r["rejected_malformed"]) == (errno.EBADMSG, 1)
    assert r["sports"] == ([1, 2] if bad.startswith(real(2)) else [1])  # whole messages before it
    assert r["encoded"] > 0


@pytest.mark.parametrize("mode", MODES)
def test_messages_of_another_seq_are_dropped_and_counted_never_decoded(mode):
    other = [forged_socket(seq) for seq in (SEQ - 1, SEQ + 1, 1)]
    r = run_ring(mode, [b"".join(other), real(1) + other[0], other[1] + status_message(NLMSG_DONE, 1, 0) + real(2) + DONE])
    assert (r["errno"], r["sports"], r["rejected_seq"], r["rejected_malformed"]) == (0, [1, 2], 6, 0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("mtype", [NLMSG_DONE, NLMSG_ERROR], ids=["done", "error"])
def test_a_status_no_kernel_sends_reads_as_eproto(mode, mtype):
    """INT32_MIN has no negation in int32 (undefined behaviour before); positive is no errno."""
    for status in (-2**31, 5, -4096):
        r = run_ring(mode, [real(1) + status_message(mtype, SEQ, status)])
        assert (r["errno"], r["sports"]) == (errno.EPROTO, [1]), status


def test_fuzz_inputs_replay_through_the_ring_as_the_plain_decoder_reads_them(tmp_path):
    """What ``make fuzz`` kept for the ring target (tests/fuzz/fuzz_ring.py), and its seeds: for
    each, the ring hands over exactly the records and encoded bytes the plain decoder makes of
    the same datagrams, in both decode modes and every framing."""
    fuzz_ring.write_seed_corpus(tmp_path)
    files = sorted(CORPUS.iterdir()) + sorted(tmp_path.iterdir())
    modes = {(data[0] & 1, (data[0] >> 1) % 3) for data in (f.read_bytes() for f in files) if data}
    assert len(files) >= 600 and modes == {(t, f) for t in (0, 1) for f in (0, 1, 2)}
    try:
        for f in files:
            fuzz_ring.one_input(f.read_bytes())
    finally:
        fuzz_ring.close_rings()
