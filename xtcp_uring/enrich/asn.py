"""The network of a remote address: a ClickHouse ``ip_trie`` dictionary ``xtcp.asn`` over the
user's prefix file.

The file is CSV, one ``prefix,asn,name`` per line: an IPv4 or IPv6 network in CIDR notation
(a bare address is a /32 or /128), the AS number (``64500`` or ``AS64500``) and its name (quote
it if it holds a comma). Blank lines, ``#`` comments and a ``prefix,asn,name`` header are
skipped. Every line is checked here first because ClickHouse loads a dictionary all or
nothing: one unparsable prefix leaves it FAILED. Errors name ``file:line``.

Loading (``load_prefixes``): the rows go into a fresh table that then takes the place of
``<db>.asn_prefixes`` (``EXCHANGE TABLES``), and ``SYSTEM RELOAD DICTIONARY`` swaps the
dictionary's memory at once: queries see the old prefixes or the new ones, never a mix. The
DDL is ``examples/clickhouse/asn_dictionary.sql``, the same for a server. Ships no data.
"""

from __future__ import annotations

import csv
import io
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import ConfigError, SinkError

__all__ = ["AsnPrefix", "DICTIONARY", "PREFIX_TABLE", "asn_ddl", "load_asn_file", "load_prefixes",
           "parse_prefixes", "read_prefix_file"]

# Package data: tools/gen_schema.py copies examples/clickhouse/asn_dictionary.sql there.
DDL_PATH = Path(__file__).resolve().parent.parent / "data" / "asn_dictionary.sql"
DICTIONARY = "asn"
PREFIX_TABLE = "asn_prefixes"
MAX_ASN = 0xFFFFFFFF
MAX_NAME = 256
_HEADER = ["prefix", "asn", "name"]


@dataclass(frozen=True, slots=True)
class AsnPrefix:
    prefix: str  # canonical: "192.0.2.0/24", "2001:db8::/32" (IPv4-mapped IPv6 written as IPv4)
    asn: int
    name: str


class _BadLine(ValueError):
    pass


def _network(text: str) -> str:
    # inet_pton, not ipaddress: a full routing table is ~1M lines and ipaddress parses ~8x slower.
    if "%" in text:
        raise _BadLine(f"prefix {text!r} has a zone index; give the network only")
    addr, slash, length = text.partition("/")
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    try:
        packed = socket.inet_pton(family, addr)
    except OSError:
        raise _BadLine(f"{text!r} is not an IPv4 or IPv6 prefix") from None
    bits = len(packed) * 8
    if slash and not (length.isdigit() and length.isascii() and int(length) <= bits):
        raise _BadLine(f"{text!r} is not an IPv4 or IPv6 prefix")
    prefixlen = int(length) if slash else bits
    value = int.from_bytes(packed, "big")
    host_bits = (1 << (bits - prefixlen)) - 1
    if value & host_bits:
        network = socket.inet_ntop(family, (value & ~host_bits).to_bytes(len(packed), "big"))
        raise _BadLine(f"prefix {text!r} has host bits set (the network is {network}/{prefixlen})")
    if family == socket.AF_INET6 and prefixlen >= 96 and value >> 32 == 0xFFFF:
        # ::ffff:a.b.c.d/n is a.b.c.d/(n-96) in the trie
        return f"{socket.inet_ntop(socket.AF_INET, packed[12:])}/{prefixlen - 96}"
    return f"{socket.inet_ntop(family, packed)}/{prefixlen}"


def _asn(text: str) -> int:
    digits = text[2:] if text[:2].upper() == "AS" else text
    if not digits.isdigit() or not digits.isascii() or int(digits) > MAX_ASN:
        raise _BadLine(f"ASN {text!r} is not a number from 0 to {MAX_ASN} (AS prefix allowed)")
    return int(digits)


def _parse_line(fields: list[str]) -> AsnPrefix:
    if len(fields) != 3:
        raise _BadLine(f"expected 3 fields prefix,asn,name, got {len(fields)}")
    prefix, asn, name = fields[0].strip(), fields[1].strip(), fields[2].strip()
    if len(name) > MAX_NAME:
        raise _BadLine(f"name longer than {MAX_NAME} characters")
    return AsnPrefix(_network(prefix), _asn(asn), name)


def parse_prefixes(lines: Iterable[bytes | str], source: str = "<input>") -> list[AsnPrefix]:
    """Check and parse prefix-file lines.

    Raises:
        ConfigError: one line: the first bad line as ``source:line: what``, how many more bad
            lines there are, or that there is no prefix at all.
    """
    out: list[AsnPrefix] = []
    first_line: dict[str, int] = {}
    errors: list[str] = []
    seen_row = False
    for lineno, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            errors.append(f"{source}:{lineno}: not UTF-8 text")
            continue
        line = line.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        fields = line.split(",") if '"' not in line else next(csv.reader([line]))
        if not seen_row and [f.strip().lower() for f in fields] == _HEADER:
            seen_row = True
            continue
        seen_row = True
        try:
            row = _parse_line(fields)
        except (_BadLine, csv.Error) as exc:
            errors.append(f"{source}:{lineno}: {exc}")
            continue
        if row.prefix in first_line:
            errors.append(f"{source}:{lineno}: prefix {row.prefix} is already on line {first_line[row.prefix]}")
            continue
        first_line[row.prefix] = lineno
        out.append(row)
    if errors:
        more = f" (and {len(errors) - 1} more bad lines)" if len(errors) > 1 else ""
        raise ConfigError(f"{errors[0]}{more}; nothing was loaded")
    if not out:
        raise ConfigError(f"{source}: no prefixes (expected CSV lines prefix,asn,name)")
    return out


def read_prefix_file(path: str | os.PathLike) -> list[AsnPrefix]:
    """``parse_prefixes`` of a file. Raises ConfigError when it cannot be read or is bad."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"cannot read the ASN prefix file {path}: {exc.strerror}") from exc
    return parse_prefixes(data.splitlines(), str(path))


def asn_ddl(db: str) -> list[str]:
    """The CREATE statements of the prefix table and the dictionary, for database ``db``."""
    if not db.isidentifier():
        raise ConfigError(f"database name {db!r} is not a plain identifier")
    lines = [ln for ln in DDL_PATH.read_text().splitlines() if not ln.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).replace("{db}", db).split(";") if s.strip()]


def _csv_bytes(prefixes: list[AsnPrefix]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for p in prefixes:
        writer.writerow((p.prefix, p.asn, p.name))
    return buf.getvalue().encode()


def load_prefixes(store, prefixes: list[AsnPrefix], db: str = "xtcp") -> int:
    """Make ``<db>.asn`` answer from ``prefixes`` in a chDB ``Store`` (clickhouse.open_store).

    Creates the table and dictionary when missing, replaces the previous prefixes whole.
    Returns the number of prefixes the dictionary holds.

    Raises:
        SinkError: ClickHouse refused a statement or could not load the dictionary.
    """
    store.query(f"CREATE DATABASE IF NOT EXISTS {db}")
    for statement in asn_ddl(db):
        store.query(statement)
    loading = f"{db}.{PREFIX_TABLE}_loading"
    store.query(f"DROP TABLE IF EXISTS {loading}")
    store.query(f"CREATE TABLE {loading} AS {db}.{PREFIX_TABLE}")
    try:
        store.insert(f"INSERT INTO {loading} (prefix, asn, name)", "CSV", _csv_bytes(prefixes))
        store.query(f"EXCHANGE TABLES {db}.{PREFIX_TABLE} AND {loading}")
    finally:
        store.query(f"DROP TABLE IF EXISTS {loading}")
    store.query(f"SYSTEM RELOAD DICTIONARY {db}.{DICTIONARY}")
    status = str(store.query(
        f"SELECT status, element_count, last_exception FROM system.dictionaries "
        f"WHERE database = '{db}' AND name = '{DICTIONARY}'", "TabSeparated")).strip().split("\t")
    if len(status) < 2 or status[0] != "LOADED":
        raise SinkError(f"the ASN dictionary {db}.{DICTIONARY} did not load: {status[-1] if status else 'missing'}")
    return int(status[1])


def load_asn_file(path: str | os.PathLike, data_dir: str | os.PathLike | None = None, db: str = "xtcp") -> int:
    """What the CLI runs: check ``path`` and load it into the embedded store at ``data_dir``.

    Returns the number of prefixes loaded.

    Raises:
        ConfigError: the file is bad (``file:line``), or the store cannot be opened (a running
            daemon holds it: load while it is stopped).
        SinkError: ClickHouse refused the load.
    """
    from .. import clickhouse

    prefixes = read_prefix_file(path)  # before opening the store: a bad file changes nothing
    store = clickhouse.open_store(data_dir if data_dir is not None else clickhouse.DEFAULT_DATA_DIR)
    try:
        return load_prefixes(store, prefixes, db)
    finally:
        store.release()
