"""Short field names for people (`--fields rtt,cwnd,retrans`) and the columns they stand for.

Each short name maps to one schema column (or two, for an address with its port) and says
its unit and how a table shows it. Full schema names are accepted too, so anything in the
``.proto`` can be asked for. Values are built per column from the numpy arrays of a batch
(one ``tolist()`` per column per dump), never by walking sockets one object at a time.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import numpy as np

from . import schema
from .errors import ConfigError
from .wire.request import TCP_STATES

__all__ = ["FieldSpec", "SHORT_NAMES", "DEFAULT_TABLE_FIELDS", "resolve", "field_values", "valid_names"]

# How a value is shown in a table (jsonl and csv keep the schema's raw unit).
TEXT, COUNT, USEC, RATE, BYTES, STATE, ENDPOINT = "text", "count", "usec", "rate", "bytes", "state", "endpoint"


@dataclass(frozen=True)
class FieldSpec:
    name: str  # what the user typed / the output key
    column: str  # schema column (for an endpoint: the address column; the port is column + "_port")
    kind: str
    unit: str = ""  # the raw unit, for --help and the README

    @property
    def header(self) -> str:
        return {USEC: f"{self.name}(ms)", RATE: f"{self.name}(Mbit/s)"}.get(self.kind, self.name)


_T = "tcp_info_"
SHORT_NAMES: dict[str, FieldSpec] = {s.name: s for s in (
    FieldSpec("state", "inet_diag_msg_state", STATE),
    FieldSpec("local", "inet_diag_msg_socket_source", ENDPOINT),
    FieldSpec("peer", "inet_diag_msg_socket_destination", ENDPOINT),
    FieldSpec("src", "inet_diag_msg_socket_source", TEXT),
    FieldSpec("dst", "inet_diag_msg_socket_destination", TEXT),
    FieldSpec("sport", "inet_diag_msg_socket_source_port", COUNT),
    FieldSpec("dport", "inet_diag_msg_socket_destination_port", COUNT),
    FieldSpec("family", "inet_diag_msg_family", COUNT),
    FieldSpec("cookie", "inet_diag_msg_socket_cookie", COUNT),
    FieldSpec("uid", "inet_diag_msg_uid", COUNT),
    FieldSpec("inode", "inet_diag_msg_inode", COUNT),
    FieldSpec("recvq", "inet_diag_msg_rqueue", COUNT, "bytes"),
    FieldSpec("sendq", "inet_diag_msg_wqueue", COUNT, "bytes"),
    FieldSpec("rtt", _T + "rtt", USEC, "microseconds"),
    FieldSpec("rttvar", _T + "rtt_var", USEC, "microseconds"),
    FieldSpec("minrtt", _T + "min_rtt", USEC, "microseconds"),
    FieldSpec("rto", _T + "rto", USEC, "microseconds"),
    FieldSpec("cwnd", _T + "snd_cwnd", COUNT, "segments"),
    FieldSpec("ssthresh", _T + "snd_ssthresh", COUNT, "segments"),
    FieldSpec("mss", _T + "snd_mss", COUNT, "bytes"),
    FieldSpec("pmtu", _T + "pmtu", COUNT, "bytes"),
    FieldSpec("retrans", _T + "total_retrans", COUNT, "segments"),
    FieldSpec("lost", _T + "lost", COUNT, "segments"),
    FieldSpec("unacked", _T + "unacked", COUNT, "segments"),
    FieldSpec("bytes_acked", _T + "bytes_acked", BYTES, "bytes"),
    FieldSpec("bytes_received", _T + "bytes_received", BYTES, "bytes"),
    FieldSpec("bytes_sent", _T + "bytes_sent", BYTES, "bytes"),
    FieldSpec("bytes_retrans", _T + "bytes_retrans", BYTES, "bytes"),
    FieldSpec("notsent", _T + "not_sent_bytes", BYTES, "bytes"),
    FieldSpec("segs_out", _T + "segs_out", COUNT, "segments"),
    FieldSpec("segs_in", _T + "segs_in", COUNT, "segments"),
    FieldSpec("pacing_rate", _T + "pacing_rate", RATE, "bytes/s"),
    FieldSpec("delivery_rate", _T + "delivery_rate", RATE, "bytes/s"),
    FieldSpec("snd_wnd", _T + "snd_wnd", BYTES, "bytes"),
    FieldSpec("rcv_wnd", _T + "rcv_wnd", BYTES, "bytes"),
    FieldSpec("busy", _T + "busy_time", USEC, "microseconds"),
    FieldSpec("cc", "congestion_algorithm_string", TEXT),
    FieldSpec("netns", "netns", TEXT),
    FieldSpec("host", "hostname", TEXT),
)}

DEFAULT_TABLE_FIELDS = ("state", "recvq", "sendq", "local", "peer", "rtt", "rttvar", "cwnd", "retrans",
                        "bytes_acked", "bytes_received", "delivery_rate")
_ADDRESSES = ("inet_diag_msg_socket_source", "inet_diag_msg_socket_destination")
_STATE_NAMES = {v: k.upper() for k, v in TCP_STATES.items()}
_STATE_NAMES.update({1: "ESTAB", 10: "LISTEN", 2: "SYN-SENT", 3: "SYN-RECV", 4: "FIN-WAIT-1", 5: "FIN-WAIT-2",
                     6: "TIME-WAIT", 7: "UNCONN", 8: "CLOSE-WAIT", 9: "LAST-ACK", 11: "CLOSING"})


def valid_names() -> list[str]:
    return list(SHORT_NAMES)


def resolve(spec: str | None, *, default=DEFAULT_TABLE_FIELDS) -> list[FieldSpec]:
    """The fields of ``--fields a,b,c`` (short names or schema column names), in order.

    Raises:
        ConfigError: a name that is neither; the message lists the short names.
    """
    names = [n.strip() for n in spec.split(",") if n.strip()] if spec else list(default)
    columns = {f.name: f for f in schema.record().fields if not f.reserved}
    out, unknown = [], []
    for n in names:
        if n in SHORT_NAMES:
            out.append(SHORT_NAMES[n])
        elif n in columns:
            f = columns[n]
            kind = TEXT if f.namespace_label or n in _ADDRESSES or n == "congestion_algorithm_string" else COUNT
            out.append(FieldSpec(n, n, kind))
        else:
            unknown.append(n)
    if unknown:
        raise ConfigError(f"--fields: unknown {', '.join(unknown)}; short names: {','.join(SHORT_NAMES)} "
                          "(or any column name of proto/xtcp_flat_record.proto)")
    if not out:
        raise ConfigError("--fields: no field named")
    return out


def _text(raw: bytes) -> str:
    addr = ipaddress.ip_address(raw)
    if addr.version == 6 and addr.ipv4_mapped:  # as ss and people write it: ::ffff:127.0.0.1
        return f"::ffff:{addr.ipv4_mapped}"
    return str(addr)


def _addresses(arr: np.ndarray, column: str) -> list[str]:
    lens = arr[column + "_len"].tolist()
    return [_text(bytes(raw[:n])) if n in (4, 16) else "" for raw, n in zip(arr[column].tolist(), lens)]


def _dump_values(dump, arr: np.ndarray, labels: dict, f: FieldSpec) -> list:
    if f.column in arr.dtype.names:
        if f.kind == ENDPOINT:
            ports = arr[f.column + "_port"].tolist()
            return [f"[{a}]:{p}" if ":" in a else f"{a}:{p}" for a, p in zip(_addresses(arr, f.column), ports)]
        if f.column in _ADDRESSES:
            return _addresses(arr, f.column)
        if f.column == "congestion_algorithm_string":
            return [bytes(v).split(b"\0")[0].decode("ascii", "replace") for v in arr[f.column].tolist()]
        if f.kind == STATE:
            return [_STATE_NAMES.get(v, str(v)) for v in arr[f.column].tolist()]
        return arr[f.column].tolist()
    # A namespace label: one value for the whole dump.
    value = labels.get(f.column, dump.netns if f.column == "netns" else "")
    return [value] * dump.count


def field_values(batch, fields: list[FieldSpec], label_dict) -> list[list]:
    """One list of values per field, every socket of the batch in order (raw units)."""
    columns: list[list] = [[] for _ in fields]
    for dump in batch.dumps:
        if not dump.count:
            continue
        arr = dump.array()
        labels = label_dict(dump)
        for i, f in enumerate(fields):
            columns[i].extend(_dump_values(dump, arr, labels, f))
    return columns
