"""ClickHouse's error text and codes → one line, and retry or reject (no ClickHouse needed;
tests/integration/test_store_faults.py checks the codes against chDB's own table)."""

from __future__ import annotations

import pytest

from xtcp_uring.clickhouse import errors
from xtcp_uring.sinks.clickhouse_http import _http_error


def test_error_text_becomes_one_line():
    text = ("Streaming insert finish failed: Code: 76. DB::ErrnoException: Cannot open file /x/primary.cidx: , "
            "errno: 24, strerror: Too many open files. (CANNOT_OPEN_FILE) (version 26.9.2.1)\nStack trace:\n0. x")
    err = errors.from_text("chDB", text)
    assert str(err) == ("chDB: Code 76: Cannot open file /x/primary.cidx: , errno: 24, strerror: Too many open "
                        "files. (CANNOT_OPEN_FILE)")
    assert err.retriable and err.code == 76
    repeated = ("Code: 164. DB::Exception: Code: 164. DB::Exception: Cannot modify 'readonly' setting in readonly "
                "mode. (READONLY) (version 26.9.2.1). (READONLY)")
    assert errors.one_line(repeated) == "Code 164: Cannot modify 'readonly' setting in readonly mode. (READONLY)"
    assert len(errors.one_line("Code: 1. DB::Exception: " + "x" * 5000)) < 420


@pytest.mark.parametrize("code, retriable", [
    (243, True),   # NOT_ENOUGH_SPACE
    (76, True),    # CANNOT_OPEN_FILE (EMFILE, EROFS)
    (1001, True),  # STD_EXCEPTION ("Read-only file system")
    (60, True),    # UNKNOWN_TABLE: created again, or waited for
    (159, True),   # TIMEOUT_EXCEEDED
    (16, False),   # NO_SUCH_COLUMN_IN_TABLE
    (53, False),   # TYPE_MISMATCH
    (444, False),  # UNKNOWN_PROTOBUF_FORMAT
])
def test_only_what_the_table_refuses_is_not_retried(code, retriable):
    assert errors.from_text("x", f"Code: {code}. DB::Exception: something. (NAME)").retriable is retriable


@pytest.mark.parametrize("status, header, body, retriable", [
    (500, "243", b"Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)", True),
    (404, "60", b"Code: 60. DB::Exception: Table xtcp.xtcp_records does not exist. (UNKNOWN_TABLE)", True),
    (400, "53", b"Code: 53. DB::Exception: Type mismatch. (TYPE_MISMATCH)", False),
    (400, None, b"Code: 27. DB::Exception: Cannot parse input. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)", False),
    (502, None, b"<html>Bad Gateway</html>", True),  # a proxy in front: no code
    (401, None, b"Unauthorized", True),  # credentials get fixed; the queue covers the wait
    (413, None, b"Request Entity Too Large", False),  # this batch never fits
])
def test_http_errors_retry_unless_the_batch_is_refused(status, header, body, retriable):
    err = _http_error("clickhouse+http://h:8123/xtcp", status, header, body)
    assert err.retriable is retriable
    assert str(err).startswith(f"clickhouse+http://h:8123/xtcp: HTTP {status}: ") and "\n" not in str(err)
