"""ClickHouse's error codes, and which of them a retry can outlive.

chDB raises ``RuntimeError`` with ClickHouse's text ("Code: 243. DB::Exception: Cannot reserve
1.00 MiB, not enough space. (NOT_ENOUGH_SPACE)"); a ClickHouse server sends the code in the
``X-ClickHouse-Exception-Code`` header. Either way the number decides, not the wording.

Retry is the default: a full disk (NOT_ENOUGH_SPACE), too many open files, a read-only remount
(STD_EXCEPTION "Read-only file system"), a missing table, a timeout or a server that is down
all pass, and the sink's bounded queue covers the wait. Only data the table will never take
(a schema or type it rejects) is refused, and counted apart as ``rejected``.
"""

from __future__ import annotations

import re

from ..errors import SinkError

# Codes from ClickHouse's src/Common/ErrorCodes.cpp (tests pin them to chDB's system.errors).
UNKNOWN_TABLE = 60
UNKNOWN_DATABASE = 81
TABLE_MISSING = frozenset({UNKNOWN_TABLE, UNKNOWN_DATABASE})

# The batch itself, or its shape, is what the table refuses: the same bytes fail every time.
SCHEMA_REJECTED = {
    3: "UNEXPECTED_END_OF_FILE",
    6: "CANNOT_PARSE_TEXT",
    7: "INCORRECT_NUMBER_OF_COLUMNS",
    8: "THERE_IS_NO_COLUMN",
    9: "SIZES_OF_COLUMNS_DOESNT_MATCH",
    15: "DUPLICATE_COLUMN",
    16: "NO_SUCH_COLUMN_IN_TABLE",
    20: "NUMBER_OF_COLUMNS_DOESNT_MATCH",
    26: "CANNOT_PARSE_QUOTED_STRING",
    27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    33: "CANNOT_READ_ALL_DATA",
    38: "CANNOT_PARSE_DATE",
    41: "CANNOT_PARSE_DATETIME",
    43: "ILLEGAL_TYPE_OF_ARGUMENT",
    44: "ILLEGAL_COLUMN",
    47: "UNKNOWN_IDENTIFIER",
    50: "UNKNOWN_TYPE",
    53: "TYPE_MISMATCH",
    62: "SYNTAX_ERROR",
    70: "CANNOT_CONVERT_TYPE",
    72: "CANNOT_PARSE_NUMBER",
    73: "UNKNOWN_FORMAT",
    117: "INCORRECT_DATA",
    131: "TOO_LARGE_STRING_SIZE",
    321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    349: "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
    376: "CANNOT_PARSE_UUID",
    434: "CANNOT_PARSE_PROTOBUF_SCHEMA",
    436: "PROTOBUF_BAD_CAST",
    441: "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
    443: "NO_COLUMNS_SERIALIZED_TO_PROTOBUF_FIELDS",
    444: "UNKNOWN_PROTOBUF_FORMAT",
    675: "CANNOT_PARSE_IPV4",
    676: "CANNOT_PARSE_IPV6",
}

_CODE = re.compile(r"Code: (\d+)\.")
_NOISE = re.compile(r"(?:Code: \d+\. )?DB::\w*Exception: |Streaming (?:insert finish|query) failed: | \(version [\d.]+\)")
_REPEATED_NAME = re.compile(r"(\([A-Z_]+\))\.? \1$")  # "… (READONLY). (READONLY)"
_MAX_MESSAGE = 400


class ClickHouseError(SinkError):
    """ClickHouse refused a statement. ``code`` is ClickHouse's error code (None if unknown);
    ``retriable`` is False only for a batch the table will never take."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code
        self.retriable = code not in SCHEMA_REJECTED

    @property
    def table_missing(self) -> bool:
        return self.code in TABLE_MISSING


def error_code(text: str) -> int | None:
    """The first ``Code: N.`` in ClickHouse's error text, else None."""
    m = _CODE.search(text)
    return int(m.group(1)) if m else None


def one_line(text: str) -> str:
    """ClickHouse's message on one line: no repeated "Code: N. DB::Exception:", no version
    suffix, no stack trace, at most a few hundred characters."""
    code = error_code(text)
    first = text.strip().splitlines()[0] if text.strip() else ""
    message = _REPEATED_NAME.sub(r"\1", _NOISE.sub("", first).strip())
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    return f"Code {code}: {message}" if code is not None else message


def from_text(where: str, text: str, code: int | None = None) -> ClickHouseError:
    """The error ClickHouse's text (and code, when the transport carried it apart) means."""
    code = error_code(text) if code is None else code
    return ClickHouseError(f"{where}: {one_line(text)}", code)
