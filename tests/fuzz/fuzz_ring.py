"""Fuzz the io_uring ring's chunk path with atheris (run by `make fuzz`, under ASan + UBSan).

The real ring code, no mock: each input is a run of datagrams written into one end of an
AF_UNIX SOCK_SEQPACKET pair whose other end is the job's fd, so the ring's SEND goes to the
peer and each of its RECVs reads one of those datagrams. It then scans each chunk for the end
of the dump, hands it to the decode thread (or decodes it inline), and encodes the records.

Input: byte 0 picks the mode (bit 0: decode thread, else inline; bits 1-2: no encoding,
delimited or Envelope rows; bit 3: the 7.0 tcp_info layout; bit 4: a DONE of the dump's seq is
appended to the last datagram). The rest is up to MAX_DATAGRAMS datagrams, each a u16
little-endian length and that many bytes (the last one takes what is left). The dump's seq is
the first message's, so real captures decode.

The oracle is the plain decoder: the ring must hand over exactly the records (and encoded
bytes) that ``records.decode_buffers`` makes of the datagrams up to the one that ended the
dump, with the matching error. A crash, a sanitizer report, a hang or a mismatch is a bug.
Seeds: the shared captures' replies re-cut into small datagrams. tests/data/fuzz-corpus-ring
is what a 5.1M-input run kept (libFuzzer -merge=1, which re-runs argv[0]: call this file through
an executable wrapper for that); test_ring_input replays it in the normal suite.
"""

from __future__ import annotations

import errno
import select
import socket
import struct
import sys
from pathlib import Path

from xtcp_uring import native, records
from xtcp_uring.wire import request
from xtcp_uring.native import ffi, lib

SEEDS = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "xtcp2"
MAX_LEN = 8192  # default -max_len: room for several messages per datagram, fast enough for 10M runs
MAX_DATAGRAMS = 9  # the peer queues at most net.unix.max_dgram_qlen (10): 9 + the request
FRAMINGS = (None, native.FRAME_DELIMITED, native.FRAME_ENVELOPE_ROWS)
LABEL = records.encode_labels(netns="fuzz", netns_inode=7)
_LEN = struct.Struct("<H")
_HDR = struct.Struct("=IHHII")
NLMSG_DONE = 3
SO_SNDBUFFORCE = 32  # root: past net.core.wmem_max

_rings: dict[bool, object] = {}


def _ring(decode_thread: bool):
    ring = _rings.get(decode_thread)
    if ring is None:
        err = ffi.new("int *")
        ring = lib.xtcp_ring_new(64, lib.XTCP_RING_DECODE_THREAD if decode_thread else 0, err)
        assert ring != ffi.NULL, f"io_uring: {err[0]}"
        _rings[decode_thread] = ring
    return ring


def close_rings() -> None:
    while _rings:
        lib.xtcp_ring_free(_rings.popitem()[1])


def split(data: bytes) -> tuple[int, list[bytes]]:
    """(mode byte, datagrams) of one fuzz input."""
    if not data:
        return 0, []
    mode, rest, grams = data[0], data[1:], []
    while rest and len(grams) < MAX_DATAGRAMS:
        if len(rest) < 2 or len(grams) == MAX_DATAGRAMS - 1:
            grams.append(rest)
            break
        n = _LEN.unpack_from(rest)[0]
        grams.append(rest[2:2 + n])
        rest = rest[2 + n:]
    return mode, [g[:65535] for g in grams]


def join(mode: int, grams: list[bytes]) -> bytes:
    return bytes([mode]) + b"".join(_LEN.pack(len(g)) + g for g in grams)


def expected(grams: list[bytes], seq: int) -> tuple[list[bytes], int]:
    """The datagrams the ring reads before its dump ends, and the errno it ends with."""
    for i, gram in enumerate(grams):
        if not gram:  # an empty datagram reads as the end of the stream
            return grams[:i], errno.ENODATA
        state, code = native.scan_chunk(gram, seq)
        if state != native.SCAN_MORE:
            return grams[:i + 1], code
    return grams, errno.ENODATA  # the peer shut down: recv returns 0


def run_ring(mode: int, grams: list[bytes]):
    """Run one dump of ``grams`` through the ring; returns (event error, Dump)."""
    decode_thread, framing, layout = bool(mode & 1), FRAMINGS[(mode >> 1) % 3], (mode >> 3) & 1
    seq = _HDR.unpack_from(grams[0], 0)[3] if grams and len(grams[0]) >= 16 else 1
    if mode & 0x10 and grams:
        grams[-1] = grams[-1] + _HDR.pack(20, NLMSG_DONE, 2, seq, 0) + bytes(4)
    ring = _ring(decode_thread)
    assert lib.xtcp_ring_set_output(ring, layout, lib.XTCP_RING_NO_ENCODE if framing is None else framing) == 0
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        # Every datagram is queued before the ring reads one: room for 9 of 64 KiB.
        peer.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 1 << 20)
        for gram in grams:
            peer.send(gram)
        peer.shutdown(socket.SHUT_WR)
        req = request.build_request(request.AF_INET, seq=seq)
        assert lib.xtcp_ring_add_job(ring, 1, ours.fileno(), req, len(req), request.AF_INET, LABEL, len(LABEL)) == 0
        assert lib.xtcp_ring_submit(ring) >= 0
        events = ffi.new("struct xtcp_ring_event[1]")
        while lib.xtcp_ring_reap(ring, events, 1, 0) == 0:
            ready, _, _ = select.select([lib.xtcp_ring_eventfd(ring)], [], [], 10)
            assert ready, "the ring never finished the job"
        out = ffi.new("struct xtcp_ring_output *")
        assert lib.xtcp_ring_job_take(ring, 0, out) == 0
        dump = records.dump_from_ring(out, labels=LABEL, framing=framing)
        assert lib.xtcp_ring_reset(ring) == 0
        return events[0].error, dump, seq, layout, framing
    finally:
        ours.close()
        peer.close()


def one_input(data: bytes) -> None:
    mode, grams = split(data)
    error, dump, seq, layout, framing = run_ring(mode, grams)
    read, want_error = expected(grams, seq)
    oracle = records.decode_buffers(read, layout=layout, strict=False, seq=seq)
    assert error == want_error, (error, want_error)
    assert dump.count == oracle.count, (dump.count, oracle.count)
    if dump.count:
        size = dump.count * native.RECORD_SIZE
        assert ffi.buffer(dump.records, size)[:] == ffi.buffer(oracle.records, size)[:], "records differ"
    assert dump.stats.rejected_seq == oracle.stats.rejected_seq
    assert dump.stats.rejected_malformed == oracle.stats.rejected_malformed
    if framing is not None:
        want = bytes(native.encode(oracle.records, 0, oracle.count, LABEL, framing)) if oracle.count else b""
        assert bytes(dump.encoded) == want, "encoded bytes differ"


def _messages(payload: bytes) -> list[bytes]:
    out, off = [], 0
    while off + 16 <= len(payload):
        n = _HDR.unpack_from(payload, off)[0]
        if n < 16 or off + n > len(payload):
            break
        out.append(payload[off:off + ((n + 3) & ~3)])
        off += (n + 3) & ~3
    return out


def write_seed_corpus(corpus: Path) -> None:
    """Each capture's replies re-cut into small datagrams of one to three whole messages (the
    fuzzer runs with a small -max_len: many short inputs beat a few 32 KiB ones), in each mode."""
    from xtcp_uring.wire.pcap import PcapError, response_payloads

    corpus.mkdir(parents=True, exist_ok=True)
    for pcap in sorted(SEEDS.glob("*/*.pcap")):
        try:
            messages = [m for p in response_payloads(pcap) for m in _messages(bytes(p))]
        except PcapError:
            continue
        grams = [b"".join(messages[i:i + 1 + i % 3]) for i in range(0, min(len(messages), 12), 2)]
        for mode in (0b0001, 0b0010, 0b0101, 0b10100):  # thread, inline+delimited, thread+envelope, +DONE
            (corpus / f"{pcap.stem}-{mode}").write_bytes(join(mode, grams[:MAX_DATAGRAMS]))


if __name__ == "__main__":
    import atheris

    corpus = Path("build/fuzz-corpus-ring")
    write_seed_corpus(corpus)
    print(f"ring module: {native.__file__}", file=sys.stderr)
    args = sys.argv + ([] if any(a.startswith("-max_len=") for a in sys.argv) else [f"-max_len={MAX_LEN}"])
    atheris.Setup(args + [str(corpus)], one_input)
    atheris.Fuzz()
