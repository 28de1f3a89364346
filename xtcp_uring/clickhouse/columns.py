"""Bring a record table made by an older version up to the current columns.

``CREATE TABLE IF NOT EXISTS`` leaves an existing table as it is, so a store (or server table)
made before a field was added to the .proto would refuse inserts naming the new column. At
start the sinks call ``missing_column_statements()``: one ``ALTER TABLE ... ADD COLUMN IF NOT
EXISTS`` per column of the generated DDL the table lacks (new fields, the ALIAS columns), each
with its type and COMMENT. Nothing is dropped or changed: columns are only ever added.
"""

from __future__ import annotations

import re

from .ddl import DDL_PATH

__all__ = ["column_definitions", "missing_column_statements"]

_COLUMN = re.compile(r"^\s+`(\w+)` (.+?),?$")


def column_definitions() -> dict[str, str]:
    """Column name -> its definition (type, ALIAS, COMMENT) in the generated DDL, in order."""
    sql = DDL_PATH.read_text()
    body = sql[sql.index("(\n") + 2 : sql.index("\n)")]
    return {m.group(1): m.group(2) for m in map(_COLUMN.match, body.splitlines()) if m}


def missing_column_statements(db: str, table: str, existing: set[str]) -> list[str]:
    """The ALTERs that add the DDL's columns missing from ``existing`` (names), each placed
    after its predecessor in the DDL, so the table ends with the DDL's column order."""
    out, previous = [], None
    for name, definition in column_definitions().items():
        if name not in existing:
            where = f" AFTER `{previous}`" if previous else " FIRST"
            out.append(f"ALTER TABLE {db}.{table} ADD COLUMN IF NOT EXISTS `{name}` {definition}{where}")
        previous = name
    return out
