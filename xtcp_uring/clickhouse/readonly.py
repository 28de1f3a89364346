"""What a query may run: one read-only statement, checked by ClickHouse's own parser.

chDB runs inside the daemon's process, as root. ``readonly=1`` on the query's own connection
stops INSERT, DDL, SYSTEM, SET and SETTINGS, and most table functions, but measured on chDB
4.4 (ClickHouse 26.9) it lets through: ``INTO OUTFILE`` (chDB's client side writes the file),
``KILL QUERY``, ``USE``, the scalar ``file('/etc/shadow')`` (a string function: anywhere in
an expression, ``'x' IN file(...)`` included), ``hasColumnInTable`` or ``EXISTS`` on a host
path through chDB's ``default`` database (they tell whether the file exists), and every
statement of ``a; b``. So a statement runs only after it passed these steps:

1. ``formatQuery`` of the text, passed as a hex parameter (never spliced into our SQL), gives
   ONE canonical statement, or a syntax error ("Multi-statements are not allowed").
2. ``EXPLAIN AST`` of the canonical text gives the tree without running anything (an output
   clause binds to the inner statement: measured, nothing is written). Allowed:
   * the statement kinds in ``STATEMENTS`` (SELECT/WITH/UNION, SHOW, DESCRIBE, EXISTS, EXPLAIN),
     and below the root no other statement kind;
   * functions: any but the table functions outside ``TABLE_FUNCTIONS`` (the list of table
     functions is chDB's own, so one added by a later chDB is refused too) and ``FUNCTIONS_DENIED``;
   * tables in the record database or ``SYSTEM_DATABASES`` (unqualified names resolve in the
     record database; chDB's "default" database would map them to host files);
   * no SETTINGS clause, no INTO OUTFILE.
3. The canonical text (what was checked, not what was sent) runs on a fresh connection with
   ``readonly=1`` and the limits (``QueryLimits``).

The dump prints identifiers raw, so a crafted name can add lines to it, never hide one: every
rule here holds line by line, and an added line can only refuse more.
"""

from __future__ import annotations

import threading

from ..errors import ConfigError
from .errors import one_line

STATEMENTS = frozenset({
    "SelectWithUnionQuery", "Explain", "ShowTables", "ShowColumns", "ShowIndexes", "ShowCreateTableQuery",
    "ExistsTableQuery", "DescribeQuery",
})
# Statement nodes allowed below the root (subqueries, EXPLAIN's operand, SHOW CREATE's target).
_INNER_STATEMENTS = frozenset({"SelectWithUnionQuery", "SelectQuery", "SelectIntersectExceptQuery", "Subquery",
                               "TablesInSelectQuery", "ShowCreateTableQuery", "ExistsTableQuery", "DescribeQuery"})
_SELECTS = frozenset({"SelectWithUnionQuery", "SelectIntersectExceptQuery"})
_NAMES_ITS_TABLE = frozenset({"ShowCreateTableQuery", "ExistsTableQuery"})
# What EXPLAIN may explain (its FORMAT is an Identifier).
_EXPLAINED = frozenset({"SelectWithUnionQuery", "SelectIntersectExceptQuery", "Identifier"})
# Table functions that only compute rows; every other one reaches files, hosts or processes.
TABLE_FUNCTIONS = frozenset({"numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generate_series",
                             "generateSeries", "format", "view"})
# Scalar functions that open a table named by a string: on chDB's default database that
# name is a host path, and the answer tells whether the file exists.
FUNCTIONS_DENIED = frozenset({"hasColumnInTable", "joinGet", "joinGetOrNull"})
SYSTEM_DATABASES = frozenset({"system", "information_schema", "INFORMATION_SCHEMA"})

_OUTFILE = "INTO OUTFILE writes a file; the query socket only answers"
_SETTINGS = "SETTINGS cannot be changed here: a query's limits are the daemon's --query-* flags"

_CATALOG_LOCK = threading.Lock()
_TABLE_FUNCTION_NAMES: frozenset[str] | None = None


class ReadOnlyViolation(ConfigError):
    """The statement is not one the query path runs; the message says which rule it broke."""


def canonical_statement(conn, sql: str, database: str, params: dict[str, str] | None = None) -> tuple[str, bool]:
    """The one statement ``sql`` holds, as ClickHouse formats it, once it passed every rule,
    and whether it is a SELECT (chDB streams only those).

    Args:
        conn: a chDB connection opened with ``readonly=1`` (``QueryLimits.connection_settings``).
        sql: the client's text; it may hold query parameters ``{name:Type}``.
        database: the record database: tables may be there or in ``SYSTEM_DATABASES``.
        params: values of the query parameters (text, as ClickHouse parses them).

    Raises:
        ReadOnlyViolation: not one statement, or one that could reach outside the store.
    """
    if not sql.strip():
        raise ReadOnlyViolation("empty query")
    try:
        canonical = _text(conn.query("SELECT formatQuery(unhex({q:String}))", "TSVRaw",
                                     params={"q": sql.encode().hex()})).rstrip("\n")
    except RuntimeError as exc:
        why = one_line(str(exc)).split(": In scope SELECT formatQuery(", 1)[0]
        raise ReadOnlyViolation(f"not one SQL statement: {why}") from None
    # formatQuery escapes newlines in literals and names: a top-level clause starts a line.
    for line in canonical.splitlines():
        if line.startswith("INTO OUTFILE"):
            raise ReadOnlyViolation(_OUTFILE)
        if line.startswith("SETTINGS"):
            raise ReadOnlyViolation(_SETTINGS)
    # With the parameters bound, the tree shows their values in place (an Identifier parameter
    # as the table it names): the rules below judge what will run.
    tree = _text(conn.query("EXPLAIN AST " + canonical, "TSVRaw", **({"params": params} if params else {})))
    databases = frozenset(_text(conn.query("SELECT name FROM system.databases", "TSVRaw")).split("\n"))
    check_tree(tree, database, _table_functions(conn), databases)
    return canonical, tree.split(" ", 1)[0] in _SELECTS


def check_tree(tree: str, database: str, table_functions: frozenset[str], databases: frozenset[str]) -> None:
    """Apply the rules to an ``EXPLAIN AST`` dump (see the module docstring).

    Args:
        tree: the dump.
        database: the record database.
        table_functions: chDB's table function names, lower-cased.
        databases: every database chDB has (a compound name starting with one outside the
            allowed ones is refused wherever it appears, as in ``x IN default.t``).
    """
    lines = tree.splitlines()
    root = lines[0].split(" ", 1)[0] if lines else ""
    if root not in STATEMENTS:
        raise ReadOnlyViolation(f"{lines[0].strip() if lines else 'this statement'} is not allowed here: the "
                                "query socket runs SELECT (WITH, UNION), SHOW, DESCRIBE, EXISTS and EXPLAIN only")
    allowed = SYSTEM_DATABASES | {database}
    if root in _NAMES_ITS_TABLE:  # "ExistsTableQuery <db> <table>": EXISTS on a host path tells if it exists
        named = lines[0].split(" ")[1]
        if named and named not in allowed:
            raise ReadOnlyViolation(f"database {named}: only {', '.join(sorted(allowed))} can be read here")
    for line in lines[1:]:
        depth = len(line) - len(line.lstrip(" "))
        kind, _, rest = line.strip().partition(" ")
        name = rest.split(" (", 1)[0]
        if depth == 1 and kind == "Literal":
            raise ReadOnlyViolation(_OUTFILE)
        if kind == "Set":
            raise ReadOnlyViolation(_SETTINGS)
        statement = kind.lower().endswith("query") or line.lower().endswith(" query")  # "SYSTEM query"
        if (statement and kind not in _INNER_STATEMENTS) or (
                root == "Explain" and depth == 1 and kind not in _EXPLAINED):
            raise ReadOnlyViolation(f"{line.strip()} is not allowed inside a query")
        if kind == "Function" and (name in FUNCTIONS_DENIED or (
                name.lower() in table_functions and name not in TABLE_FUNCTIONS)):
            raise ReadOnlyViolation(f"{name}() reaches outside the store; allowed table functions: "
                                    f"{', '.join(sorted(TABLE_FUNCTIONS))}")
        if kind in ("TableIdentifier", "Identifier") and "." in name:
            first = name.split(".", 1)[0]
            if first not in allowed and (kind == "TableIdentifier" or first in databases):
                raise ReadOnlyViolation(f"{name}: only {', '.join(sorted(allowed))} can be read here")


def _table_functions(conn) -> frozenset[str]:
    """chDB's table function names, lower-cased (``file`` and ``FILE`` alike), read once."""
    global _TABLE_FUNCTION_NAMES
    with _CATALOG_LOCK:
        if _TABLE_FUNCTION_NAMES is None:
            names = _text(conn.query("SELECT name FROM system.table_functions", "TSVRaw")).split()
            _TABLE_FUNCTION_NAMES = frozenset(n.lower() for n in names)
        return _TABLE_FUNCTION_NAMES


def _text(result) -> str:
    return result.bytes().decode(errors="replace") if hasattr(result, "bytes") else str(result)
