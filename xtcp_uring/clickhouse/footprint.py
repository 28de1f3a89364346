"""What the embedded store costs the daemon: the record table's part and merge settings, and
chDB's code pages after start. Measured in ``benchmarks.daemon`` (issue #14 item 5).

**Parts.** Each insert writes a part. Past 10 MB (100k sockets is ~28 MB) ClickHouse makes it
``Wide``: two files per column, ~400 files for the 186 columns, and creating them was a quarter
of the daemon's CPU under ``perf`` (ext4 inode allocation, in the kernel). ``Compact`` parts
(one data file) up to ``WIDE_PART_MIN_ROWS`` rows cost a handful of files; merges past that
size still write ``Wide`` parts, which queries of a few columns read best.

**Merges.** Every part of an hour's partition is merged again and again as parts grow (write
amplification); by default a merge may start from 2 similar parts. Waiting for
``MIN_PARTS_TO_MERGE`` of them rewrites each row fewer times (log10 rather than log5 of the
parts of an hour: ~3 times instead of ~4-5 at 720 polls an hour) at the price of more parts in
the hour being written; queries merge them on read, as they do anyway.

These apply to the embedded store only (``Store.ensure_table``); a server's DDL is the
operator's (``examples/clickhouse/``).

**Code pages.** chDB is one 555 MB library; loading it and the first inserts touch ~290 MB of
its code and read-only data, most of it (start-up, DDL) never again; pyarrow's libraries add
~55 MB the same way. ``page_out_libraries()``
asks the kernel to reclaim those clean file pages (``MADV_PAGEOUT``; nothing is lost, a page
touched again is read back) and to fetch single pages from then on (``MADV_RANDOM``, no
read-around), so the resident set is what the inserts actually run.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger("xtcp_uring.clickhouse")

WIDE_PART_MIN_ROWS = 1_000_000
MIN_PARTS_TO_MERGE = 10

RECORD_TABLE_SETTINGS = {
    "min_rows_for_wide_part": WIDE_PART_MIN_ROWS,
    "min_bytes_for_wide_part": 0,  # by rows alone (its default, 10 MB, made every poll's part Wide)
    "min_parts_to_merge_at_once": MIN_PARTS_TO_MERGE,
}

_MADV_RANDOM = 1
_MADV_PAGEOUT = 21  # Linux 5.4


def table_settings_sql(db: str, table: str) -> str:
    return f"ALTER TABLE {db}.{table} MODIFY SETTING " + ", ".join(f"{k} = {v}" for k, v in
                                                                  RECORD_TABLE_SETTINGS.items())


# Libraries the embedded store loads whose pages are mostly start-up's: chDB, and pyarrow's
# (loading it maps and touches its S3, Parquet and Substrait libraries, which we never call).
STORE_LIBRARIES = ("_chdb", "libarrow", "libparquet")


def library_mappings(names=STORE_LIBRARIES, maps: str = "/proc/self/maps") -> list[tuple[int, int]]:
    """(start, end) of this process's read-only file mappings of the libraries whose file
    names contain one of ``names``: their code and constants, never their writable data."""
    out = []
    with open(maps) as f:
        for line in f:
            fields = line.split()
            if (len(fields) >= 6 and "w" not in fields[1]
                    and any(n in os.path.basename(fields[5]) for n in names)):
                start, end = (int(x, 16) for x in fields[0].split("-"))
                out.append((start, end))
    return out


def page_out_libraries(names=STORE_LIBRARIES) -> int:
    """Reclaim the resident clean pages of the libraries' read-only mappings; returns the bytes
    of mappings advised (0 where the kernel lacks MADV_PAGEOUT: nothing changes then)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover - no libc to ask
        return 0
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    advised = 0
    for start, end in library_mappings(names):
        if libc.madvise(start, end - start, _MADV_PAGEOUT) != 0:
            log.debug("madvise(MADV_PAGEOUT): %s", os.strerror(ctypes.get_errno()))
            return advised
        libc.madvise(start, end - start, _MADV_RANDOM)
        advised += end - start
    return advised
