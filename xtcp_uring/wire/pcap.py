"""Read netlink traffic captured on an ``nlmon`` device from a classic pcap file.

No sockets, no decoding of sock_diag itself: this module only finds the netlink
bytes of each captured skb so that the decoder (and tests) can run on recorded
dumps without privilege.

File layout handled here (libpcap "classic" format, not pcapng):

* 24-byte global header: magic, version, thiszone, sigfigs, snaplen, linktype.
  The magic gives the byte order of every header field and the timestamp
  resolution: ``a1b2c3d4`` microseconds, ``a1b23c4d`` nanoseconds, either order.
* per packet a 16-byte record header (ts_sec, ts_frac, incl_len, orig_len) and
  ``incl_len`` bytes of data.
* link type 253 (``LINKTYPE_NETLINK``): the data starts with a 16-byte cooked
  header written by the kernel's nlmon device, all big-endian — pkttype u16,
  ARPHRD type u16 (824, ``ARPHRD_NETLINK``), address length u16, 8 address
  bytes, protocol u16 (the netlink family; 4 = ``NETLINK_SOCK_DIAG``). The
  netlink messages of one skb follow, in the capturing host's byte order.

Every malformed input raises :class:`PcapError` naming the file and the byte
offset; ``struct.error`` never escapes.
"""

from __future__ import annotations

import os
import struct
from typing import Iterator, NamedTuple, Union

from ..errors import InputError
from .netlink import NETLINK_SOCK_DIAG, NLM_F_REQUEST, header

__all__ = [
    "ARPHRD_NETLINK",
    "LINKTYPE_NETLINK",
    "NetlinkPacket",
    "PcapError",
    "iter_netlink_packets",
    "response_payloads",
]

LINKTYPE_NETLINK = 253
ARPHRD_NETLINK = 824
COOKED_HEADER_LEN = 16

_MAGIC_USEC = 0xA1B2C3D4
_MAGIC_NSEC = 0xA1B23C4D
# Bits 28-31 of the link-type field carry FCS information (pcap spec); the rest
# is the link type itself.
_LINKTYPE_MASK = 0x0FFFFFFF

_GLOBAL_LE = struct.Struct("<IHHiIII")
_GLOBAL_BE = struct.Struct(">IHHiIII")
_RECORD_LE = struct.Struct("<IIII")
_RECORD_BE = struct.Struct(">IIII")
_COOKED = struct.Struct(">HHH8sH")

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]


class PcapError(InputError):
    """The capture cannot be read: bad magic, wrong link type or truncation.

    Attributes:
        source: the file name (or ``"<bytes>"``) the error is about.
        offset: byte offset in the file where the problem starts.
        packets_read: complete packets read before the problem.
    """

    def __init__(self, message: str, *, source: str, offset: int, packets_read: int = 0):
        super().__init__(f"{source}: at byte offset {offset}: {message}")
        self.source = source
        self.offset = offset
        self.packets_read = packets_read


class NetlinkPacket(NamedTuple):
    """One captured skb as seen on an nlmon device.

    ``payload`` is a memoryview into the file's bytes (no copy): the netlink
    messages of the skb, starting with an ``nlmsghdr``. ``caplen < wirelen``
    means the capture's snaplen cut the skb short.
    """

    ts_ns: int
    protocol: int
    payload: memoryview
    pkttype: int
    hatype: int
    caplen: int
    wirelen: int
    offset: int  # file offset of this packet's record header
    byteorder: str  # "little" or "big": the capturing host's, from the magic

    @property
    def is_request(self) -> bool:
        """True when the first nlmsghdr carries NLM_F_REQUEST (user → kernel)."""
        hdr = header(self.payload, 0, "<" if self.byteorder == "little" else ">")
        return hdr is not None and bool(hdr.flags & NLM_F_REQUEST)


def _load(source: Source) -> tuple[memoryview, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        return view, "<bytes>"
    name = os.fspath(source)
    with open(name, "rb") as f:
        return memoryview(f.read()), name


def iter_netlink_packets(source: Source) -> Iterator[NetlinkPacket]:
    """Yield every packet of an nlmon pcap capture, in file order.

    Args:
        source: a path, or the whole file's bytes (bytes/bytearray/memoryview).

    Yields:
        :class:`NetlinkPacket` per record; ``payload`` slices the file bytes.

    Raises:
        PcapError: bad magic, a link type other than LINKTYPE_NETLINK (253), a
            truncated global header, record header or record data, or a record
            too short for the 16-byte cooked header.
        OSError: the path cannot be read.
    """
    data, name = _load(source)
    size = len(data)
    if size < _GLOBAL_LE.size:
        raise PcapError(
            f"truncated pcap global header: {size} of {_GLOBAL_LE.size} bytes",
            source=name,
            offset=0,
        )
    magic_le = _GLOBAL_LE.unpack_from(data, 0)[0]
    if magic_le in (_MAGIC_USEC, _MAGIC_NSEC):
        glob, rec, byteorder, magic = _GLOBAL_LE, _RECORD_LE, "little", magic_le
    else:
        magic_be = _GLOBAL_BE.unpack_from(data, 0)[0]
        if magic_be not in (_MAGIC_USEC, _MAGIC_NSEC):
            raise PcapError(
                f"bad magic 0x{bytes(data[0:4]).hex()}: not a classic pcap file "
                "(expected a1b2c3d4 or a1b23c4d in either byte order; pcapng is "
                "not supported)",
                source=name,
                offset=0,
            )
        glob, rec, byteorder, magic = _GLOBAL_BE, _RECORD_BE, "big", magic_be
    frac_ns = 1 if magic == _MAGIC_NSEC else 1000
    _, _, _, _, _, _, network = glob.unpack_from(data, 0)
    linktype = network & _LINKTYPE_MASK
    if linktype != LINKTYPE_NETLINK:
        raise PcapError(
            f"unsupported link type {linktype}: need LINKTYPE_NETLINK "
            f"({LINKTYPE_NETLINK}), i.e. a capture taken on an nlmon device "
            "(ip link add nlmon0 type nlmon; tcpdump -i nlmon0 -w FILE)",
            source=name,
            offset=20,
        )

    unpack_rec = rec.unpack_from
    unpack_cooked = _COOKED.unpack_from
    rec_len = rec.size
    pos = glob.size
    count = 0
    while pos < size:
        if size - pos < rec_len:
            raise PcapError(
                f"truncated record header: {size - pos} of {rec_len} bytes "
                f"after {count} complete packets",
                source=name,
                offset=pos,
                packets_read=count,
            )
        ts_sec, ts_frac, caplen, wirelen = unpack_rec(data, pos)
        start = pos + rec_len
        end = start + caplen
        if end > size:
            raise PcapError(
                f"truncated record data: header says {caplen} bytes, "
                f"{size - start} left, after {count} complete packets",
                source=name,
                offset=start,
                packets_read=count,
            )
        if caplen < COOKED_HEADER_LEN:
            raise PcapError(
                f"record of {caplen} bytes is shorter than the "
                f"{COOKED_HEADER_LEN}-byte nlmon cooked header "
                f"(after {count} complete packets)",
                source=name,
                offset=start,
                packets_read=count,
            )
        pkttype, hatype, _alen, _addr, protocol = unpack_cooked(data, start)
        yield NetlinkPacket(
            ts_sec * 1_000_000_000 + ts_frac * frac_ns,
            protocol,
            data[start + COOKED_HEADER_LEN : end],
            pkttype,
            hatype,
            caplen,
            wirelen,
            pos,
            byteorder,
        )
        count += 1
        pos = end


def response_payloads(
    source: Source, *, protocol: int | None = NETLINK_SOCK_DIAG
) -> Iterator[memoryview]:
    """Yield the payloads of kernel → user packets only.

    A packet is a request (user → kernel) when its first ``nlmsghdr`` has
    ``NLM_F_REQUEST`` set (dump requests carry 0x0301); those are skipped, as
    are empty payloads. A payload too short to hold an ``nlmsghdr`` is yielded
    so that the decoder reports it.

    Args:
        source: as for :func:`iter_netlink_packets`.
        protocol: keep only packets of this netlink family (default
            ``NETLINK_SOCK_DIAG``); ``None`` keeps every family.

    Raises:
        PcapError: as for :func:`iter_netlink_packets`.
    """
    for pkt in iter_netlink_packets(source):
        if protocol is not None and pkt.protocol != protocol:
            continue
        if not pkt.payload or pkt.is_request:
            continue
        yield pkt.payload
