"""The record schema, read from the package's copy of ``proto/xtcp_flat_record.proto`` (the
single source of truth; tools/gen_schema.py copies it to ``xtcp_uring/data/``).

This module parses the small, flat subset of proto3 the schema file uses, and derives from it
what Python needs at run time: the protobuf message classes (built from a descriptor, so no
generated ``_pb2`` module can drift from the ``.proto``) and the names of the per-socket
columns the C decoder fills. ``tools/gen_schema.py`` uses the same parse to generate the C
record struct and encoder and the ClickHouse DDL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

try:
    from .errors import InputError
except ImportError:  # loaded by path by tools/gen_schema.py, which must not need the package
    InputError = ValueError

PROTO_PATH = Path(__file__).resolve().parent / "data" / "xtcp_flat_record.proto"
PACKAGE = "xtcp_flat_record.v1"
RECORD_MESSAGE = "XtcpFlatRecord"
ENVELOPE_MESSAGE = "Envelope"
SCHEMA_VERSION = 2  # xtcp2's xtcp_flat_record.v1 is 1; bump when a field changes meaning

SCALAR_TYPES = ("uint32", "uint64", "int64", "string", "bytes")

_FIELD_RE = re.compile(
    r"^\s*(repeated\s+)?(\w+)\s+(\w+)\s*=\s*(\d+)\s*;\s*(?://\s*(.*))?$"
)
_ENUM_VALUE_RE = re.compile(r"^\s*(\w+)\s*=\s*(\d+)\s*;")
_ANNOTATION_RE = re.compile(r"\[([a-z0-9_]+)(?::([a-z0-9_]+))?\]")


class SchemaError(InputError):
    """The .proto uses something this parser does not understand (a developer must fix it)."""


@dataclass(frozen=True)
class Field:
    number: int
    type: str  # a scalar type name, or the name of an enum declared in the message
    name: str
    comment: str = ""
    namespace_label: bool = False  # [ns]: set per namespace by Python
    reserved: bool = False  # [reserved]: kept for xtcp2 compatibility, never filled
    c_storage: str | None = None  # [c:TYPE]
    ch_class: str | None = None  # [ch:CLASS]: ClickHouse codec class (counter, elapsed, lowcard)
    repeated: bool = False

    @property
    def decoded_by_c(self) -> bool:
        return not (self.namespace_label or self.reserved)


@dataclass(frozen=True)
class Enum:
    name: str
    values: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Message:
    name: str
    fields: tuple[Field, ...]
    enums: tuple[Enum, ...]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


def parse(text: str) -> dict[str, Message]:
    """Parse the schema subset: top-level messages holding scalar/enum fields and nested enums."""
    messages: dict[str, Message] = {}
    stack: list[tuple[str, str, list]] = []  # (kind, name, items)
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("//"):
            continue
        if line.startswith(("syntax", "package", "option")):
            continue
        head = re.match(r"^(message|enum)\s+(\w+)\s*\{$", line)
        if head:
            stack.append((head.group(1), head.group(2), []))
            continue
        if line == "}" or line == "};":
            if not stack:
                raise SchemaError(f"line {lineno}: unbalanced '}}'")
            kind, name, items = stack.pop()
            if kind == "enum":
                enum = Enum(name, tuple(items))
                if not stack:
                    raise SchemaError(f"line {lineno}: top-level enums are not supported")
                stack[-1][2].append(enum)
            else:
                fields = tuple(i for i in items if isinstance(i, Field))
                enums = tuple(i for i in items if isinstance(i, Enum))
                messages[name] = Message(name, fields, enums)
            continue
        if not stack:
            raise SchemaError(f"line {lineno}: unexpected {line!r}")
        kind, _, items = stack[-1]
        if kind == "enum":
            m = _ENUM_VALUE_RE.match(line)
            if not m:
                raise SchemaError(f"line {lineno}: bad enum value {line!r}")
            items.append((m.group(1), int(m.group(2))))
            continue
        m = _FIELD_RE.match(line)
        if not m:
            raise SchemaError(f"line {lineno}: bad field {line!r}")
        repeated, ftype, name, number, comment = m.groups()
        notes = dict(_ANNOTATION_RE.findall(comment or ""))
        items.append(
            Field(
                number=int(number),
                type=ftype,
                name=name,
                comment=_ANNOTATION_RE.sub("", comment or "").strip(),
                namespace_label="ns" in notes,
                reserved="reserved" in notes,
                c_storage=notes.get("c") or None,
                ch_class=notes.get("ch") or None,
                repeated=bool(repeated),
            )
        )
    if stack:
        raise SchemaError(f"unterminated {stack[-1][0]} {stack[-1][1]}")
    return messages


@cache
def load() -> dict[str, Message]:
    return parse(PROTO_PATH.read_text())


def record() -> Message:
    return load()[RECORD_MESSAGE]


def socket_fields() -> tuple[Field, ...]:
    """The fields the C decoder fills for every socket, in field-number order."""
    return tuple(f for f in record().fields if f.decoded_by_c)


def label_fields() -> tuple[Field, ...]:
    return tuple(f for f in record().fields if f.namespace_label)


@cache
def message_classes():
    """Return (XtcpFlatRecord, Envelope) protobuf classes built from the parsed .proto."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(
        name="xtcp_flat_record.proto", package=PACKAGE, syntax="proto3"
    )
    scalar = {
        "uint32": descriptor_pb2.FieldDescriptorProto.TYPE_UINT32,
        "uint64": descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
        "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
        "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        "bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
    }
    for msg in load().values():
        mdp = fdp.message_type.add(name=msg.name)
        for enum in msg.enums:
            edp = mdp.enum_type.add(name=enum.name)
            for vname, vnum in enum.values:
                edp.value.add(name=vname, number=vnum)
        enum_names = {e.name for e in msg.enums}
        for f in msg.fields:
            fd = mdp.field.add(name=f.name, number=f.number, json_name=f.name)
            fd.label = (
                descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
                if f.repeated
                else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
            )
            if f.type in scalar:
                fd.type = scalar[f.type]
            elif f.type in enum_names:
                fd.type = descriptor_pb2.FieldDescriptorProto.TYPE_ENUM
                fd.type_name = f".{PACKAGE}.{msg.name}.{f.type}"
            elif f.type in load():
                fd.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
                fd.type_name = f".{PACKAGE}.{f.type}"
            else:
                raise SchemaError(f"field {f.name}: unknown type {f.type}")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    rec = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{RECORD_MESSAGE}"))
    env = message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{ENVELOPE_MESSAGE}"))
    return rec, env
