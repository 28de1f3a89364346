"""Batches for people: an aligned table like ``ss`` (units converted), CSV, and JSON lines of chosen fields.

The table shows RTTs in milliseconds, rates in Mbit/s and byte counts as 1.5K/2.0M/3.1G
(powers of 1024); the header says the unit. CSV and JSON lines keep the schema's raw units
(microseconds, bytes, bytes per second) so that a program reading them does no parsing.
"""

from __future__ import annotations

import csv
import io
import json
from typing import BinaryIO

from .fields import DEFAULT_TABLE_FIELDS, BYTES, COUNT, RATE, USEC, FieldSpec, field_values, resolve

__all__ = ["write_table", "write_csv", "write_jsonl_fields", "human_bytes"]


def human_bytes(n: int) -> str:
    if n < 1024:
        return str(n)
    for suffix in ("K", "M", "G", "T", "P"):
        n /= 1024.0
        if n < 1024 or suffix == "P":
            return f"{n:.1f}{suffix}"
    return str(n)  # not reached


def _show(f: FieldSpec, values: list) -> list[str]:
    if f.kind == USEC:
        return [f"{v / 1000:.3f}" for v in values]
    if f.kind == RATE:  # bytes/s -> Mbit/s
        return [f"{v * 8 / 1e6:.2f}" for v in values]
    if f.kind == BYTES:
        return [human_bytes(v) for v in values]
    return [str(v) for v in values]


def _numeric(f: FieldSpec) -> bool:
    return f.kind in (USEC, RATE, BYTES, COUNT)


def write_table(batch, out: BinaryIO, fields: str | None, label_dict) -> int:
    """Aligned columns with a header line: numbers right-aligned, text left-aligned."""
    if fields is None and len({d.netns for d in batch.dumps if d.count}) > 1:
        fields = ",".join(DEFAULT_TABLE_FIELDS + ("netns",))  # sockets of several namespaces: say whose
    specs = resolve(fields)
    shown = [_show(f, v) for f, v in zip(specs, field_values(batch, specs, label_dict))]
    widths = [max([len(f.header)] + [len(s) for s in col]) for f, col in zip(specs, shown)]

    def line(cells) -> str:
        return "  ".join(c.rjust(w) if _numeric(f) else c.ljust(w)
                         for f, c, w in zip(specs, cells, widths)).rstrip()

    rows = [line([f.header for f in specs])]
    rows.extend(line(cells) for cells in zip(*shown))
    out.write(("\n".join(rows) + "\n").encode())
    return len(rows) - 1


def write_csv(batch, out: BinaryIO, fields: str | None, label_dict) -> int:
    """A header of field names, then one row per socket in raw units."""
    specs = resolve(fields)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([f.name for f in specs])
    columns = field_values(batch, specs, label_dict)
    rows = list(zip(*columns))
    writer.writerows(rows)
    out.write(text.getvalue().encode())
    return len(rows)


def write_jsonl_fields(batch, out: BinaryIO, fields: str, label_dict) -> int:
    """One JSON object per socket holding only the fields asked for, keyed by the names given."""
    specs = resolve(fields)
    names = [f.name for f in specs]
    rows = list(zip(*field_values(batch, specs, label_dict)))
    if rows:
        out.write(("\n".join(json.dumps(dict(zip(names, r)), separators=(",", ":")) for r in rows) + "\n").encode())
    return len(rows)
