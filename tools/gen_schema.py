"""Generate the C record struct + encoder and the ClickHouse DDL (records, rollups, cluster)
from the .proto, and the package data (xtcp_uring/data/): copies of the files the installed
package reads, so a wheel needs no checkout. The sources stay where people look for them
(proto/, examples/); every file under xtcp_uring/data/ is written here and says so in its first
line.

    python tools/gen_schema.py          # rewrite the generated files
    python tools/gen_schema.py --check  # exit 1 if any generated file is stale (tests run this)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_SOURCE = ROOT / "proto" / "xtcp_flat_record.proto"
ASN_DDL_SOURCE = ROOT / "examples" / "clickhouse" / "asn_dictionary.sql"  # hand-written
HEADER_OUT = ROOT / "csrc" / "generated" / "xtcp_record.h"
DDL_OUT = ROOT / "examples" / "clickhouse" / "xtcp_records.sql"
KAFKA_OUT = ROOT / "examples" / "clickhouse" / "kafka_pipeline.sql"
DATA = ROOT / "xtcp_uring" / "data"
# Issue #14 (store): the rollups and a cluster's DDL, rendered by tools/clickhouse_sql.py.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import clickhouse_sql as _ch  # noqa: E402  (tools/ is not a package)
ROLLUPS_OUT = ROOT / "examples" / "clickhouse" / "rollups.sql"
CLUSTER_OUT = ROOT / "examples" / "clickhouse" / "cluster" / "xtcp_cluster.sql"
BANNER = "generated from proto/xtcp_flat_record.proto by tools/gen_schema.py; do not edit"


def _load_schema(module: str = "schema"):
    # By path, so generating does not import the package (whose extension may not be built yet).
    spec = importlib.util.spec_from_file_location(f"_xtcp_{module}", ROOT / "xtcp_uring" / f"{module}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    mod.PROTO_PATH = PROTO_SOURCE  # the source, not the package's copy of it (written below)
    return mod


def copied(source: Path, comment: str) -> str:
    """source's text under a first line saying it is a generated copy."""
    rel = source.relative_to(ROOT)
    return f"{comment} generated from {rel} by tools/gen_schema.py; do not edit\n" + source.read_text()


# C storage: (declaration suffix, alignment, max encoded payload bytes, encoder kind)
_STORAGE = {
    "uint8": ("uint8_t", 1, 5, "varint32"),
    "uint16": ("uint16_t", 2, 5, "varint32"),
    "uint32": ("uint32_t", 4, 5, "varint32"),
    "uint64": ("uint64_t", 8, 10, "varint64"),
    "int64": ("int64_t", 8, 10, "varint64"),
    "bytes16": ("uint8_t", 1, 1 + 16, "bytes"),
    "char16": ("char", 1, 1 + 16, "string"),
}


def _storage(field, enum_names) -> str:
    if field.c_storage:
        if field.c_storage not in _STORAGE:
            raise SystemExit(f"{field.name}: unknown [c:{field.c_storage}]")
        return field.c_storage
    if field.type in ("uint32", "uint64", "int64"):
        return field.type
    if field.type in enum_names:
        return "uint32"
    raise SystemExit(f"{field.name}: type {field.type} needs a [c:...] storage annotation")


def _tag_bytes(number: int, wire_type: int) -> list[int]:
    value, out = (number << 3) | wire_type, []
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return out


def render_header(schema) -> str:
    msg = schema.record()
    enum_names = {e.name for e in msg.enums}
    fields = schema.socket_fields()
    members = []
    for f in fields:
        st = _storage(f, enum_names)
        ctype, align, _, kind = _STORAGE[st]
        if kind in ("bytes", "string"):
            members.append((align, 16, f"    {ctype} {f.name}[16];"))
            if kind == "bytes":
                members.append((1, 1, f"    uint8_t {f.name}_len;"))
        else:
            members.append((align, align, f"    {ctype} {f.name};"))
    # Largest alignment first: no padding holes, so the record stays small in memory.
    members.sort(key=lambda m: -m[0])

    enc, size, max_len = [], [], 0
    for f in fields:  # field-number order: the canonical protobuf order
        st = _storage(f, enum_names)
        _, _, payload_max, kind = _STORAGE[st]
        wire = 2 if kind in ("bytes", "string") else 0
        tag = _tag_bytes(f.number, wire)
        max_len += len(tag) + payload_max
        put_tag = " ".join(f"*p++ = 0x{b:02x};" for b in tag)
        t = len(tag)
        if kind in ("varint32", "varint64"):
            size.append(f"    if (r->{f.name}) n += {t} + xtcp_pb_varint_len((uint64_t)r->{f.name});")
        elif kind == "bytes":
            size.append(f"    if (r->{f.name}_len) n += {t} + 1 + r->{f.name}_len;")
        else:
            size.append(f"    {{ size_t k = strnlen(r->{f.name}, 16); if (k) n += {t} + 1 + k; }}")
        if kind == "varint32":
            enc.append(f"    if (r->{f.name}) {{ {put_tag} p = xtcp_pb_varint(p, r->{f.name}); }}")
        elif kind == "varint64":
            enc.append(
                f"    if (r->{f.name}) {{ {put_tag} p = xtcp_pb_varint(p, (uint64_t)r->{f.name}); }}"
            )
        elif kind == "bytes":
            enc.append(
                f"    if (r->{f.name}_len) {{ {put_tag} *p++ = r->{f.name}_len; "
                f"memcpy(p, r->{f.name}, r->{f.name}_len); p += r->{f.name}_len; }}"
            )
        else:
            enc.append(
                f"    {{ size_t n = strnlen(r->{f.name}, 16); if (n) {{ {put_tag} *p++ = (uint8_t)n; "
                f"memcpy(p, r->{f.name}, n); p += n; }} }}"
            )
    out = [
        f"/* {BANNER} */",
        "#ifndef XTCP_RECORD_H",
        "#define XTCP_RECORD_H",
        "",
        "#include <stdint.h>",
        "#include <string.h>",
        "",
        f"#define XTCP_RECORD_FIELDS {len(fields)}",
        "/* Upper bound of one encoded record's per-socket fields (labels come on top). */",
        f"#define XTCP_RECORD_MAX_ENCODED {max_len}",
        "",
        "/* BEGIN CDEF: cffi_build.py passes this block to ffi.cdef() */",
        "struct xtcp_record {",
        *[m[2] for m in members],
        "};",
        "/* END CDEF */",
        "",
        "static inline uint8_t *xtcp_pb_varint(uint8_t *p, uint64_t v)",
        "{",
        "    while (v >= 0x80) { *p++ = (uint8_t)(v | 0x80); v >>= 7; }",
        "    *p++ = (uint8_t)v;",
        "    return p;",
        "}",
        "",
        "static inline size_t xtcp_pb_varint_len(uint64_t v)",
        "{",
        "    /* 7 bits per byte: ceil(significant bits / 7), without a loop. */",
        "    return (size_t)((64 - __builtin_clzll(v | 1)) * 9 + 64) / 64;",
        "}",
        "",
        "/* Exactly the bytes xtcp_record_encode_fields writes for r. */",
        "static inline size_t xtcp_record_encoded_size(const struct xtcp_record *r)",
        "{",
        "    size_t n = 0;",
        *size,
        "    return n;",
        "}",
        "",
        "/* Append the non-zero per-socket fields of r (proto3: zero is not sent); return the end. */",
        "static inline uint8_t *xtcp_record_encode_fields(const struct xtcp_record *r, uint8_t *p)",
        "{",
        *enc,
        "    return p;",
        "}",
        "",
        "#endif",
        "",
    ]
    return "\n".join(out)


def _load(name: str, path: Path):
    # By path, so generating does not import the package (whose extension may not be built yet).
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def render_ddl(schema) -> str:
    return "\n".join([
        f"-- {BANNER}",
        "-- The MergeTree table every sink writes to. {db} and {ttl} are filled in by",
        "-- xtcp_uring.clickhouse.table_ddl(); the rollups fed from it are in rollups.sql, the",
        "-- Kafka-engine path in kafka_pipeline.sql, a sharded cluster's DDL in cluster/.",
        "-- Codecs follow the .proto's [ch:...] annotations; the sort key keeps one socket's",
        "-- samples of one hour together (partitions are hours since the epoch).",
        _ch.records_table(schema, _ch.LOCAL, "{ttl}", _unit_of()),
        "",
    ])


def render_rollups(rollups) -> str:
    return "\n".join([
        f"-- {BANNER}",
        "-- (and xtcp_uring/clickhouse/rollups.py). Minute and hour rollups of xtcp_records, filled by",
        "-- materialized views on every insert; run after xtcp_records.sql. {db} is the database.",
        "-- Read them with the -Merge functions listed in rollups.py's READ, e.g.",
        f"--   SELECT location, quantilesBFloat16Merge({rollups.QUANTILE_LEVELS})(rtt_us), sum(retrans_segs)",
        f"--   FROM {{db}}.{rollups.MINUTE_TABLE} WHERE time > now() - INTERVAL 1 HOUR GROUP BY location",
        "",
        ";\n\n".join(_ch.rollup_statements(rollups, _ch.LOCAL)) + ";",
        "",
    ])


CLUSTER_NAME = "xtcp_cluster"
CLUSTER_DB = "xtcp"


def render_cluster(schema, rollups) -> str:
    fl = _ch.cluster_flavour(CLUSTER_NAME, CLUSTER_DB)
    db, on = fl.db, fl.on_cluster
    version = schema.SCHEMA_VERSION
    dist = []
    for name in ("xtcp_records", *rollups.TABLES):
        dist.append(f"CREATE TABLE IF NOT EXISTS {db}.{name}{on} AS {db}.{name}_local\n"
                    f"ENGINE = Distributed({CLUSTER_NAME}, {db}, {name}_local, cityHash64(hostname))")
    kafka = "\n".join([
        "-- One Kafka consumer per node: the topic's partitions (keyed by hostname) are shared by",
        "-- every node of the group, each inserting into its own shard's local table.",
        _ch.kafka_table(schema, f"{db}.xtcp_records_kafka", on, _unit_of()),
    ])
    view = "\n".join([
        "-- One view per schema_version: rows of another version stay in the Kafka table's",
        "-- reach until a view for them is added (map renamed or retyped columns there).",
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.xtcp_records_kafka_v{version}_mv{on}",
        f"TO {db}.xtcp_records_local AS",
        f"SELECT * FROM {db}.xtcp_records_kafka WHERE schema_version = {version}",
    ])
    statements = [
        f"CREATE DATABASE IF NOT EXISTS {db}{on}",
        _ch.records_table(schema, fl, "TTL toDateTime(intDiv(timestamp_ns, 1000000000)) + INTERVAL 7 DAY", _unit_of()),
        *_ch.rollup_statements(rollups, fl),
        *dist,
        kafka,
        view,
    ]
    return "\n".join([
        f"-- {BANNER}",
        f"-- A sharded, replicated cluster named {CLUSTER_NAME} (remote_servers), macros {{shard}} and",
        "-- {replica} per node, ZooKeeper or ClickHouse Keeper. Local tables end in _local; the",
        "-- Distributed tables of the usual names (xtcp_records, xtcp_1m, xtcp_1h, ...) are what to query.",
        "-- Raw rows keep 7 days, the minute rollups 35, the hour rollups 400 (edit the TTL lines to change).",
        "-- See README.md beside this file.",
        "",
        ";\n\n".join(statements) + ";",
        "",
    ])


def _unit_of():
    return _load_schema("schema_units").unit_of


def render_kafka_ddl(schema) -> str:
    """The Kafka-engine table and its view into the record table (xtcp_records.sql)."""
    return "\n".join([f"-- {BANNER}", *_KAFKA_PROSE, _ch.kafka_table(schema, "xtcp.xtcp_records_kafka", "", _unit_of())
                      + ";", *_KAFKA_TAIL, ""])


_KAFKA_PROSE = """\
-- Many hosts -> Kafka -> ClickHouse: each host runs
--     python -m xtcp_uring --sink kafka://kafka:9092/xtcp
-- and the server reads the topic with a Kafka engine table and a materialized view into
-- the MergeTree table of xtcp_records.sql (create that first, with {db} = xtcp, {ttl} empty
-- or a TTL clause, then rollups.sql: its views roll up whatever reaches xtcp_records, the
-- Kafka engine's inserts included). A sharded cluster: cluster/xtcp_cluster.sql.
--
-- Message format (checked by tests/integration/test_sinks_kafka.py against chDB):
--   one Kafka message = one ClickHouse ProtobufList message
--                     = varint(length of Envelope) + Envelope { repeated XtcpFlatRecord row = 1 }
--   ClickHouse reads exactly one length-delimited Envelope per message. Kafka engine support
--   for ProtobufList needs ClickHouse >= 26.3.1 (earlier versions fail from the second message
--   of a poll with "Unexpected end of ProtobufList message", ClickHouse issue #78746).
--   Key: the sending host's name. Headers: schema_version, and the host's location, label and
--   tag when set (--location, --label, --tag).
--
-- The .proto: copy proto/xtcp_flat_record.proto into the server's format_schema_path
-- (default /var/lib/clickhouse/format_schemas/). Columns are matched to fields by name. The
-- Kafka table lists the record table's stored columns with their COMMENTs (a Kafka table
-- refuses CODECs and ALIAS columns: codecs, sec, nsec, src and dst are on the record table).""".splitlines()

_KAFKA_TAIL = """\

-- Moves each block the Kafka table reads into the MergeTree table. A message that does not
-- parse stops the consumer with an error in the server log; to skip such messages instead
-- (each one is a whole poll batch), add kafka_skip_broken_messages = N above.
CREATE MATERIALIZED VIEW IF NOT EXISTS xtcp.xtcp_records_kafka_mv TO xtcp.xtcp_records AS
SELECT * FROM xtcp.xtcp_records_kafka;""".splitlines()


def outputs() -> dict[Path, str]:
    schema = _load_schema()
    rollups = _load("_xtcp_rollups", ROOT / "xtcp_uring" / "clickhouse" / "rollups.py")
    ddl = render_ddl(schema)
    rollups_sql = render_rollups(rollups)
    return {
        HEADER_OUT: render_header(schema),
        DDL_OUT: ddl,  # for ClickHouse servers
        DATA / "xtcp_records.sql": ddl,  # what the package's store runs
        ROLLUPS_OUT: rollups_sql,  # for ClickHouse servers
        DATA / "rollups.sql": rollups_sql,  # what the package's store runs after the table
        CLUSTER_OUT: render_cluster(schema, rollups),
        DATA / "xtcp_flat_record.proto": copied(PROTO_SOURCE, "//"),  # schema.py, chDB's format_schema
        DATA / "asn_dictionary.sql": copied(ASN_DDL_SOURCE, "--"),  # enrich.asn
        KAFKA_OUT: render_kafka_ddl(schema),  # the Kafka engine table and its view, for servers
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail if a generated file is stale")
    args = ap.parse_args()
    stale = []
    for path, text in outputs().items():
        current = path.read_text() if path.exists() else None
        if current != text:
            if args.check:
                stale.append(path.relative_to(ROOT))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if stale:
        print("stale generated files (run: python tools/gen_schema.py): " + ", ".join(map(str, stale)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
