"""`python -m xtcp_uring query`: read-only SQL against the store, through the daemon or directly.

chDB locks its directory, so while a daemon stores into it the query goes to that daemon
through ``<data-dir>/query.sock`` (``query_server``); otherwise the store is opened here. Both
ways run the statement the same way (``run_statement``): checked by ``readonly``, on a
connection of its own with ``readonly=1`` and the ``QueryLimits``, its output streamed and
capped.

Values reach a statement as query parameters (``{name:Type}`` in the SQL, ``params`` beside
it), bound by ClickHouse: a caller never splices them into SQL text (``check_params``).

The socket's protocol: the client sends one JSON line ``{"sql": ..., "format": ..., "params":
{name: text}}`` (at most ``MAX_REQUEST_BYTES``; params optional); the server answers with frames ``kind (1 byte) + length (4 bytes, big
endian) + payload``: ``D`` output bytes, then ``Z`` (done) or ``E`` (a JSON error: kind, message).
The client trusts an answer only from a socket, and a peer, owned by root or by itself.
"""

from __future__ import annotations

import codecs
import json
import os
import socket
import stat
import struct
import sys
from dataclasses import dataclass

from ..errors import ConfigError, SinkError, XtcpError
from . import readonly
from .datadir import user_name
from .ddl import DATABASE, DEFAULT_DATA_DIR
from .errors import ClickHouseError, from_text
from .store import open_store

QUERY_SOCKET = "query.sock"  # in the data directory, while a daemon holds the store
FORMATS = {"table": "PrettyCompactNoEscapesMonoBlock", "json": "JSON", "csv": "CSVWithNames",
           "jsoncompact": "JSONCompact"}
MAX_REQUEST_BYTES = 64 << 10
MAX_PARAMS = 64  # query parameters in one request; names are identifiers, values text
FRAME = struct.Struct("!cI")
DATA, DONE, ERROR = b"D", b"Z", b"E"

# ClickHouse codes of the limits, and the flag that sets each.
_LIMIT_FLAGS = {159: "--query-timeout", 396: "--query-max-result-bytes", 241: "--query-max-memory"}


class QueryRefused(XtcpError):
    """The daemon will not answer this user, or this user will not trust that daemon."""

    exit_code = 77  # EX_NOPERM


@dataclass(frozen=True)
class QueryLimits:
    """What one query may use; ClickHouse enforces them on the query's connection.

    Attributes:
        timeout_s: ClickHouse's ``max_execution_time``.
        max_result_bytes: ClickHouse's ``max_result_bytes`` (result blocks), and the cap on the
            formatted output sent back.
        max_memory_bytes: ClickHouse's ``max_memory_usage`` for the query.
    """

    timeout_s: float = 30.0
    max_result_bytes: int = 32 << 20
    max_memory_bytes: int = 512 << 20

    def __post_init__(self):
        if self.timeout_s <= 0 or self.max_result_bytes <= 0 or self.max_memory_bytes <= 0:
            raise ConfigError(f"--query-timeout, --query-max-result-bytes and --query-max-memory must be "
                              f"positive: {self.timeout_s:g} s, {self.max_result_bytes} B, {self.max_memory_bytes} B")

    def connection_settings(self) -> str:
        # readonly first: it also forbids the statement itself from changing the others.
        # max_block_size 8192 (not 65k): a block of wide rows is then ~2.5 MB, not ~20, so the
        # result cap stops a huge SELECT after a few small blocks; measured, a capped 300 MB
        # result grew the daemon by ~60 MB instead of 200-265 MB (allocator keeps big blocks),
        # and a GROUP BY over 20M rows ran as fast.
        return (f"readonly=1&max_execution_time={self.timeout_s:g}&max_result_bytes={self.max_result_bytes}"
                f"&result_overflow_mode=throw&max_block_size=8192&max_memory_usage={self.max_memory_bytes}")


def check_params(params) -> dict[str, str]:
    """``params`` as ClickHouse query parameters: at most ``MAX_PARAMS``, names identifiers,
    values text (ClickHouse parses each as the type its placeholder names).

    Raises:
        ConfigError: anything else.
    """
    if params is None:
        return {}
    if not isinstance(params, dict) or len(params) > MAX_PARAMS:
        raise ConfigError(f"query parameters: want an object of at most {MAX_PARAMS} name: text pairs")
    for name, value in params.items():
        if not (isinstance(name, str) and name.isidentifier() and name.isascii() and isinstance(value, str)):
            raise ConfigError(f"query parameter {str(name)[:40]!r}: names are identifiers, values text")
    return params


def run_statement(store, sql: str, fmt: str, limits: QueryLimits, emit, database: str = DATABASE,
                  params: dict[str, str] | None = None) -> None:
    """Check ``sql`` (``readonly``) and run it on a connection of its own, handing its output
    to ``emit(bytes)`` chunk by chunk; ``params`` are bound to its ``{name:Type}``
    placeholders. Blocking: call it in a thread.

    Raises:
        ConfigError: unknown format, or a statement the query path does not run.
        ClickHouseError: ClickHouse refused it, or it went past a limit (the message names the flag).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not database.isidentifier():
        raise ConfigError(f"database name {database!r} is not a plain identifier")
    bound = {"params": params} if check_params(params) else {}
    conn = store.connect(limits.connection_settings())
    try:
        canonical, is_select = readonly.canonical_statement(conn, sql, database, params)
        conn.query(f"USE {database}")  # unqualified names: the records, never host paths
        if not is_select:  # SHOW, DESCRIBE, EXPLAIN: small, and chDB does not stream them
            _emit_capped([conn.query(canonical, FORMATS[fmt], **bound)], limits, emit)
            return
        stream = conn.send_query(canonical, FORMATS[fmt], **bound)
        try:
            _emit_capped(stream, limits, emit)
        finally:
            stream.close()
    except RuntimeError as exc:
        err = from_text("ClickHouse", str(exc))
        flag = _LIMIT_FLAGS.get(err.code)
        raise ClickHouseError(f"{err} (limit set by {flag})" if flag else str(err), err.code) from None
    finally:
        conn.close()


def _emit_capped(chunks, limits: QueryLimits, emit) -> None:
    sent = 0
    for chunk in chunks:
        data = chunk.bytes()
        sent += len(data)
        if sent > limits.max_result_bytes:
            raise ClickHouseError(f"the result is larger than {limits.max_result_bytes} bytes "
                                  "(--query-max-result-bytes): add LIMIT or aggregate")
        emit(data)


def run_query(sql: str, fmt: str = "table", data_dir: str | os.PathLike = DEFAULT_DATA_DIR,
              limits: QueryLimits | None = None, params: dict[str, str] | None = None) -> str:
    """The result of a read-only statement against the store at ``data_dir``, opened here.

    Args:
        sql: one SELECT (WITH, UNION), SHOW, DESCRIBE, EXISTS or EXPLAIN; unqualified tables
            are in ``xtcp`` (``xtcp_records``).
        fmt: ``table`` (aligned text), ``json`` or ``csv`` (with a header row).
        data_dir: the store's directory (the daemon's ``--data-dir``).
        limits: time, result size and memory (default ``QueryLimits()``).
        params: values of the statement's ``{name:Type}`` query parameters.

    Raises:
        ConfigError: unknown format, a statement that is not read-only, or the store cannot be
            opened (see ``open_store``).
        ClickHouseError: ClickHouse refused the statement or a limit stopped it.
    """
    chunks: list[bytes] = []
    _run_here(sql, fmt, data_dir, limits or QueryLimits(), chunks.append, params)
    # Address columns are raw bytes: show them escaped rather than fail.
    return b"".join(chunks).decode(errors="backslashreplace")


def _run_here(sql: str, fmt: str, data_dir, limits: QueryLimits, emit, params=None) -> None:
    """Open the store in this process (no daemon holds it) and run the statement."""
    if not os.path.isdir(data_dir):
        raise ConfigError(f"no xtcp store at {data_dir}: run the daemon first or pass --data-dir")
    owner = os.stat(data_dir).st_uid
    if owner != os.geteuid():
        raise QueryRefused(f"no daemon answers on {os.path.join(data_dir, QUERY_SOCKET)}, and {data_dir} belongs "
                           f"to {user_name(owner)}: ask while the daemon runs, or as that user")
    store = open_store(data_dir)
    try:
        run_statement(store, sql, fmt, limits, emit, params=params)
    finally:
        store.release()


def run_query_cli(sql: str, data_dir: str | os.PathLike = DEFAULT_DATA_DIR, fmt: str = "table") -> int:
    """``python -m xtcp_uring query``: print the result as it comes; returns the exit code (0)."""
    out = _Output(sys.stdout)
    sock_path = os.path.join(data_dir, QUERY_SOCKET)
    if not (_daemon_socket(sock_path) and query_daemon(sock_path, sql, fmt, out.write)):
        _run_here(sql, fmt, data_dir, QueryLimits(), out.write)
    out.close()
    return 0


def _daemon_socket(sock_path: str) -> bool:
    try:
        os.lstat(sock_path)
    except FileNotFoundError:
        return False
    except PermissionError:
        raise QueryRefused(f"cannot reach {sock_path}: permission denied (the daemon answers root, its own "
                           "user and members of its --query-group)") from None
    return True


def query_daemon(sock_path: str, sql: str, fmt: str, emit, params: dict[str, str] | None = None) -> bool:
    """Ask the daemon behind ``sock_path``, handing its output to ``emit``; False when no daemon
    answers (a socket left by one that was killed).

    Raises:
        QueryRefused: the socket or its peer is not root's or ours, or the daemon refused us.
        ConfigError, ClickHouseError: the daemon's answer.
    """
    trusted = {0, os.geteuid()}
    st = os.lstat(sock_path)
    if not stat.S_ISSOCK(st.st_mode):
        raise QueryRefused(f"{sock_path} is not a socket: not asking it")
    if st.st_uid not in trusted:
        raise QueryRefused(f"{sock_path} belongs to {user_name(st.st_uid)}, not to root or you: "
                           "not trusting its answers")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(sock_path)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        peer_uid = peer_credentials(s)[1]
        if peer_uid not in trusted:
            raise QueryRefused(f"the process behind {sock_path} runs as {user_name(peer_uid)}, not as root "
                               "or you: not trusting its answers")
        try:
            request = {"sql": sql, "format": fmt, **({"params": params} if params else {})}
            s.sendall(json.dumps(request).encode() + b"\n")
        except OSError:
            pass  # it may have said why before hanging up: read on
        try:
            return _read_answer(s.makefile("rb"), sock_path, emit)
        except OSError as exc:  # not a BrokenPipeError for the CLI, which would take it for stdout's
            raise SinkError(f"the daemon behind {sock_path} hung up: {exc.strerror or exc}") from None


def _read_answer(reader, sock_path: str, emit) -> bool:
    while True:
        head = reader.read(FRAME.size)
        if len(head) < FRAME.size:
            raise SinkError(f"the daemon behind {sock_path} hung up before the end of the answer")
        kind, size = FRAME.unpack(head)
        payload = reader.read(size)
        if kind == DATA:
            emit(payload)
        elif kind == DONE:
            return True
        else:
            raise _remote_error(payload)


def _remote_error(payload: bytes) -> XtcpError:
    try:
        err = json.loads(payload)
        kind, message = err["kind"], err["message"]
    except (ValueError, KeyError, TypeError):
        return SinkError(f"the daemon sent an unreadable error: {payload[:200]!r}")
    cls = {"ConfigError": ConfigError, "QueryRefused": QueryRefused, "ReadOnlyViolation": readonly.ReadOnlyViolation,
           "ClickHouseError": ClickHouseError}.get(kind, SinkError)
    return cls(message)


SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)


def peer_credentials(sock: socket.socket) -> tuple[int, int, int, tuple[int, ...]]:
    """(pid, uid, gid, supplementary groups) of the process at the other end of a unix socket,
    as the kernel recorded them at connect(); groups are empty past 256 (getsockopt's cap)."""
    pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 1024)
        groups = struct.unpack(f"{len(raw) // 4}I", raw[: len(raw) // 4 * 4])
    except OSError:
        groups = ()
    return pid, uid, gid, groups


class _Output:
    """stdout for bytes that may split a UTF-8 character between chunks; raw address bytes
    are shown escaped rather than failing."""

    def __init__(self, stream):
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace")
        self.last = "\n"

    def write(self, data: bytes) -> None:
        text = self.decoder.decode(data)
        if text:
            self.stream.write(text)
            self.last = text[-1]

    def close(self) -> None:
        self.write(b"")
        tail = self.decoder.decode(b"", final=True)
        self.stream.write(tail)
        if (tail[-1:] or self.last) != "\n":
            self.stream.write("\n")
        self.stream.flush()
