"""The query path is read-only by construction, on chDB's real behaviour: every class of
statement that could reach outside the store (host files, network, processes, writes, DDL,
SYSTEM, settings, KILL, USE, several statements) is refused and leaves no trace; what reads
the store answers; limits hold; queries never touch the sink's session. The daemon's socket
runs the same path (test_query_socket.py)."""

from __future__ import annotations

import os
import re

import pytest

from integration.test_sinks_chdb import make_batch
from xtcp_uring import clickhouse
from xtcp_uring.clickhouse import QueryLimits, readonly
from xtcp_uring.clickhouse.errors import ClickHouseError
from xtcp_uring.errors import ConfigError

pytest.importorskip("chdb")

OUT = "{out}"  # replaced by a directory of the test's own: nothing may appear in it

BLOCKED = {
    "file table function": ("SELECT * FROM file('/etc/hostname', 'LineAsString')", "file() reaches outside"),
    "file scalar": ("SELECT file('/etc/hostname')", "file() reaches outside"),
    "file on the right of IN": ("SELECT 'x' IN file('/etc/hostname', 'LineAsString')", "file() reaches outside"),
    "file in a subquery": ("SELECT * FROM (SELECT * FROM file('/etc/hostname'))", "file() reaches outside"),
    "host path as a table": ("SELECT * FROM default.`/etc/hostname`", "can be read here"),
    "host path as an IN table": ("SELECT 1 IN default.`/etc/hostname`", "can be read here"),
    "file probe by table name": ("SELECT hasColumnInTable('default', '/etc/hostname', 'c1')", "reaches outside"),
    "file probe by EXISTS": ("EXISTS TABLE default.`/etc/hostname`", "database default"),
    "file probe by SHOW CREATE": ("SHOW CREATE TABLE default.`/etc/hostname`", "database default"),
    "url": ("SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')", "url() reaches outside"),
    "s3": ("SELECT * FROM s3('http://127.0.0.1:1/b/k', 'CSV')", "s3() reaches outside"),
    "remote": ("SELECT * FROM remote('127.0.0.1:1', system.one)", "remote() reaches outside"),
    "mysql": ("SELECT * FROM mysql('127.0.0.1:1', 'd', 't', 'u', 'p')", "mysql() reaches outside"),
    "postgresql": ("SELECT * FROM postgresql('127.0.0.1:1', 'd', 't', 'u', 'p')", "postgresql() reaches outside"),
    "executable": ("SELECT * FROM executable('id', 'TSV', 'x String')", "executable() reaches outside"),
    "input": ("SELECT * FROM input('x String')", "input() reaches outside"),
    "python objects": ("SELECT * FROM Python(os)", "Python() reaches outside"),
    "into outfile": (f"SELECT 1 INTO OUTFILE '{OUT}/outfile'", "INTO OUTFILE"),
    "into outfile of show": (f"SHOW TABLES INTO OUTFILE '{OUT}/show'", "INTO OUTFILE"),
    "into outfile of explain": (f"EXPLAIN SELECT 1 INTO OUTFILE '{OUT}/explain'", "INTO OUTFILE"),
    "insert": ("INSERT INTO xtcp_records (hostname) VALUES ('forged')", "InsertQuery"),
    "insert into function": (f"INSERT INTO FUNCTION file('{OUT}/f.csv', 'CSV', 'a UInt8') VALUES (1)", "InsertQuery"),
    "drop": ("DROP TABLE xtcp.xtcp_records", "DropQuery"),
    "create": ("CREATE TABLE t (a UInt8) ENGINE = Memory", "CreateQuery"),
    "alter": ("ALTER TABLE xtcp_records DELETE WHERE 1", "AlterQuery"),
    "truncate": ("TRUNCATE TABLE xtcp_records", "is not allowed here"),
    "system shutdown": ("SYSTEM SHUTDOWN", "SYSTEM"),
    "system flush": ("SYSTEM FLUSH LOGS", "SYSTEM"),
    "set": ("SET readonly = 0", "is not allowed here"),
    "settings": ("SELECT 1 SETTINGS max_memory_usage = 0", "SETTINGS"),
    "settings in a subquery": ("SELECT * FROM (SELECT 1 SETTINGS readonly = 0)", "SETTINGS"),
    "kill": ("KILL QUERY WHERE 1", "KillQueryQuery"),
    "optimize": ("OPTIMIZE TABLE xtcp_records FINAL", "OptimizeQuery"),
    "use": ("USE system", "UseQuery"),
    "two statements": ("SELECT 1; DROP TABLE xtcp.xtcp_records", "not one SQL statement"),
    "explain of system": ("EXPLAIN SYNTAX SYSTEM SHUTDOWN", "SYSTEM query"),
    "explain of insert": ("EXPLAIN PIPELINE INSERT INTO xtcp_records SELECT * FROM xtcp_records", "InsertQuery"),
    "table function explain": ("SELECT * FROM (EXPLAIN SELECT 1)", "viewExplain() reaches outside"),
}


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    data = tmp_path_factory.mktemp("query-store")
    store = clickhouse.open_store(data)
    store.ensure_table()
    store.insert_arrow(clickhouse.arrow_table(make_batch(1)))
    yield data
    store.release()


def count(data) -> int:
    return int(clickhouse.run_query("SELECT count() FROM xtcp.xtcp_records", "csv", data).split()[1])


@pytest.mark.parametrize("name", list(BLOCKED))
def test_statements_that_reach_outside_the_store_are_refused(store_dir, tmp_path, name):
    sql, why = BLOCKED[name]
    before = count(store_dir)
    with pytest.raises((ConfigError, ClickHouseError), match=re.escape(why)) as refused:
        clickhouse.run_query(sql.replace(OUT, str(tmp_path)), "table", store_dir)
    assert "\n" not in str(refused.value)
    assert os.listdir(tmp_path) == [], "the statement wrote a file"
    assert count(store_dir) == before


def test_readonly_1_alone_would_let_these_through(store_dir, tmp_path):
    """Why the parser check exists: chDB's own readonly=1 runs them (if this fails, chDB
    closed a gap; the check stays as a second wall)."""
    store = clickhouse.open_store(store_dir)
    conn = store.connect("readonly=1")
    try:
        conn.query(f"SELECT 1 INTO OUTFILE '{tmp_path}/written-by-readonly-1'")
        assert os.path.exists(tmp_path / "written-by-readonly-1")
        assert open("/etc/hostname").read().strip() in str(conn.query("SELECT file('/etc/hostname')"))
        assert str(conn.query("KILL QUERY WHERE 0")).strip() == ""
        conn.query("USE system")
        assert str(conn.query("SELECT currentDatabase()")).strip() == '"system"'
    finally:
        conn.close()
        store.release()


ALLOWED = {
    "SELECT count() AS n FROM xtcp_records": '"n"\n909',
    "WITH 2 AS k SELECT count() * k AS n FROM xtcp.xtcp_records": '"n"\n1818',
    "SELECT count() AS n FROM xtcp_records WHERE netns IN (SELECT netns FROM xtcp_records LIMIT 1)": '"n"\n',
    "SELECT sum(number) AS n FROM numbers(10)": '"n"\n45',
    "SELECT name FROM system.tables WHERE database = 'xtcp' AND engine = 'MergeTree'": '"name"\n"xtcp_records"',
    "SHOW TABLES LIKE 'xtcp_rec%'": '"name"\n"xtcp_records"',
    "DESCRIBE xtcp_records": '"tcp_info_rtt","UInt32"',
    "EXISTS TABLE xtcp_records": '"result"\n1',
    "EXPLAIN SELECT count() FROM xtcp_records": '"explain"',
    "SELECT 1 AS n UNION ALL SELECT 2": '"n"\n',
}


@pytest.mark.parametrize("sql", list(ALLOWED))
def test_statements_that_read_the_store_answer(store_dir, sql):
    assert ALLOWED[sql] in clickhouse.run_query(sql, "csv", store_dir)


def test_limits_stop_a_query_and_name_the_flag(store_dir):
    tight = QueryLimits(timeout_s=1, max_result_bytes=1 << 20, max_memory_bytes=64 << 20)
    with pytest.raises(ClickHouseError, match="--query-max-result-bytes"):
        clickhouse.run_query("SELECT number, randomString(100) FROM numbers(1000000)", "csv", store_dir, tight)
    with pytest.raises(ClickHouseError, match="--query-timeout"):
        clickhouse.run_query("SELECT count() FROM system.numbers", "csv", store_dir, tight)
    with pytest.raises(ClickHouseError, match="--query-max-memory"):
        clickhouse.run_query("SELECT groupArray(randomString(1000)) FROM numbers(1000000)", "csv", store_dir, tight)
    # Formatted output is capped too (JSON of a result whose blocks fit the bytes limit).
    with pytest.raises(ClickHouseError, match="larger than 1048576 bytes"):
        clickhouse.run_query("SELECT toUInt8(number % 10) AS n FROM numbers(500000)", "json", store_dir, tight)


def test_a_query_never_touches_the_sinks_session(store_dir):
    store = clickhouse.open_store(store_dir)
    conn = store.connect(QueryLimits().connection_settings())
    try:
        conn.query("USE system")
        assert str(conn.query("SELECT getSetting('readonly')")).strip() == "1"
        assert str(store.query("SELECT currentDatabase(), getSetting('readonly')")).strip() == '"default",0'
    finally:
        conn.close()
        store.release()


def test_check_tree_refuses_lines_a_crafted_name_adds():
    """EXPLAIN AST prints names raw: a name holding a newline adds a line, and added lines can
    only refuse more (here a fake root-level Literal reads as INTO OUTFILE)."""
    tree = "SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  Identifier a\n Literal 'x'\n"
    with pytest.raises(readonly.ReadOnlyViolation, match="INTO OUTFILE"):
        readonly.check_tree(tree, "xtcp", frozenset({"file"}), frozenset({"default", "xtcp"}))
