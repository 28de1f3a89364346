"""``python -m xtcp_uring load-asn PREFIXES.csv``: fill the ``xtcp.asn`` dictionary of the
embedded store from a prefix file (``enrich.asn``: the format, and why it is checked whole
first). Run it while the daemon is stopped: chDB lets one process hold a store.

    python -m xtcp_uring load-asn prefixes.csv --data-dir /var/lib/xtcp
    python -m xtcp_uring query "SELECT dst, dictGet('xtcp.asn', 'name', dst) AS network, count()
                                FROM xtcp.xtcp_records GROUP BY dst, network"
"""

from __future__ import annotations

import argparse
import os

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..clickhouse import DEFAULT_DATA_DIR

    p.description = ("Load a CSV prefix file (prefix,asn,name per line; IPv4 and IPv6) into the embedded "
                     "store's ip_trie dictionary xtcp.asn, replacing what it held. Queries then use "
                     "dictGet('xtcp.asn', 'asn', dst). Stop the daemon first: chDB lets one process hold a store.")
    p.add_argument("prefixes", help="CSV file: prefix,asn,name")
    p.add_argument("--data-dir", default=os.environ.get("XTCP_DATA_DIR", DEFAULT_DATA_DIR),
                   help="the embedded store (default ./xtcp-data, XTCP_DATA_DIR)")


def run(args) -> int:
    from .asn import load_asn_file

    count = load_asn_file(args.prefixes, args.data_dir)
    print(f"xtcp.asn holds {count} prefixes from {args.prefixes}")
    return 0
