"""`python -m xtcp_uring`: the host-wide poller daemon, one-shot dumps, pcap decoding, SQL.

    python -m xtcp_uring                       poll every namespace into the embedded store
    python -m xtcp_uring --once --format jsonl dump this host's sockets once to stdout
    python -m xtcp_uring decode FILE.pcap      decode an nlmon capture
    python -m xtcp_uring namespaces            list the namespaces found
    python -m xtcp_uring query "SQL"           query the embedded store
    python -m xtcp_uring closes                stream every TCP socket's final state as it closes

Every daemon flag also reads from an XTCP_* environment variable (--interval: XTCP_INTERVAL).
Errors print one line and exit with a code per error class; never a traceback for a user
mistake.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from . import __version__, native, output, records
from .clickhouse import DEFAULT_DATA_DIR
from .daemon import add_daemon_options, env_default
from .errors import ConfigError, XtcpError

log = logging.getLogger("xtcp_uring")

SUBCOMMANDS = ("decode", "namespaces", "query", "closes")


def _add_poll_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to poll")
    g.add_argument("--namespaces", default=env_default("namespaces", "all"),
                   help="all | host | a name or glob of namespace names (default: all)")
    g.add_argument("--families", default=env_default("families", "inet,inet6"), help="inet,inet6 (default both)")
    g.add_argument("--states", default=env_default("states", None),
                   help="TCP state bitmask, e.g. 0x1ffe (default: every state but bound-inactive)")
    g.add_argument("--filter", default=env_default("filter", None),
                   help='kernel-side filter, e.g. "dport 443 and dst 10.0.0.0/8"')
    g.add_argument("--groups", default=env_default("groups", None),
                   help="attribute groups: info,cong,cc_info,tos,tclass,skmeminfo,meminfo")
    g.add_argument("--sample", type=int, default=int(env_default("sample", 1)),
                   help="keep every Nth socket, chosen by cookie (default 1: all)")
    g.add_argument("--max-namespaces", type=int, default=_int_or_none(env_default("max_namespaces", None)),
                   help="namespaces polled at once, one open socket each; the rest are skipped and counted "
                        "(default: the open-file limit less a reserve for chDB and sinks, 15904 at 20000; "
                        "half that with --close-events on, two sockets per namespace). "
                        "The host and namespaces of our own user namespace come first")
    g.add_argument("--skip-user-namespaces", action="store_true",
                   default=env_default("skip_user_namespaces", "") in ("1", "true"),
                   help="leave out namespaces owned by other user namespaces (unshare -Urn, rootless "
                        "containers, user-namespaced pods); counted as skipped")
    g = p.add_argument_group("how to poll")
    g.add_argument("--uring", choices=("auto", "on", "off"), default=env_default("uring", "auto"),
                   help="io_uring, or plain netlink sockets (off); auto falls back when unavailable")
    g.add_argument("--async-dumps", action="store_true", default=env_default("async_dumps", "") in ("1", "true"),
                   help="IOSQE_ASYNC: dump namespaces in parallel on io-wq workers")


def _int_or_none(value) -> int | None:
    return None if value in (None, "") else int(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m xtcp_uring",
        description="TCP socket telemetry (inet_diag) for every network namespace.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n")[1],
    )
    p.add_argument("--version", action="version", version=__version__)
    p.add_argument("--log-level", default=env_default("log_level", "info"), choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-format", default=env_default("log_format", "text"), choices=("text", "json"))
    g = p.add_argument_group("one-shot")
    g.add_argument("--once", action="store_true",
                   help="poll once, write the records to stdout (or deliver them to --sink), exit")
    g.add_argument("--format", default=env_default("format", "jsonl"), choices=output.FORMATS,
                   help="stdout format for --once and --sink - (default jsonl)")
    _add_poll_options(p)
    add_daemon_options(p)  # the daemon's own flags live beside its loop
    from .closes_cli import add_close_options

    add_close_options(p)
    return p


def _subparser(cmd: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m xtcp_uring {cmd}")
    if cmd == "decode":
        p.description = "Decode a netlink capture (pcap, link type 253, as taken on an nlmon device)."
        p.add_argument("pcap")
        p.add_argument("--format", default="jsonl", choices=output.FORMATS)
        p.add_argument("--kernel-release", default=None,
                       help="release of the captured kernel; picks the meaning of tcp_info bytes 276-279")
    elif cmd == "namespaces":
        p.description = "List the network namespaces found, their labels and socket counts."
        p.add_argument("--namespaces", default="all")
        p.add_argument("--json", action="store_true")
    elif cmd == "query":
        p.description = "Run SQL against the embedded ClickHouse store (chDB)."
        p.add_argument("sql")
        p.add_argument("--data-dir", default=env_default("data_dir", DEFAULT_DATA_DIR))
        p.add_argument("--format", default="table", choices=("table", "json", "csv"))
    elif cmd == "closes":
        from .closes_cli import add_subparser_options

        add_subparser_options(p)
    return p


def cmd_decode(args) -> int:
    from .pcap import response_payloads

    layout = native.tcp_info_layout(args.kernel_release) if args.kernel_release else native.TCP_INFO_LAYOUT_6_18
    labels = records.encode_labels(kernel_release=args.kernel_release) if args.kernel_release else b""
    # One pcap packet is one recv: decode them as separate buffers (several dumps may follow).
    dump = records.decode_buffers([bytes(p) for p in response_payloads(args.pcap)], layout=layout,
                                  labels=labels, netns=args.pcap, strict=False)
    output.write(records.Batch([dump]), sys.stdout.buffer, args.format)
    s = dump.stats
    if s.malformed_offset is not None or s.bad_attributes or s.unknown_attributes:
        log.warning("%s: %d sockets; malformed at %s, bad attributes %d, unknown attributes %d",
                    args.pcap, dump.count, s.malformed_offset, s.bad_attributes, s.unknown_attributes)
    return 0


def cmd_once(args) -> int:
    from .limits import raise_open_file_limit
    from .poller import poll_once, poller_options_from_args

    raise_open_file_limit()  # every namespace at once needs a socket each
    batch = asyncio.run(poll_once(**poller_options_from_args(args)))
    output.write(batch, sys.stdout.buffer, args.format)
    for d in batch.dumps:
        if d.error:
            log.warning("netns %s family %d: %s", d.netns, d.family, d.error)
    return 0


def cmd_namespaces(args) -> int:
    from .limits import raise_open_file_limit
    from .poller import list_namespaces

    raise_open_file_limit()
    rows = asyncio.run(list_namespaces(args.namespaces))
    if args.json:
        import json

        for row in rows:
            print(json.dumps(row))
        return 0
    cols = ("net_id", "name", "inode", "cookie", "pid", "sockets", "error")
    print("  ".join(f"{c:>12}" if c != "name" else f"{c:<24}" for c in cols))
    for row in rows:
        print("  ".join(f"{str(row.get(c, '')):>12}" if c != "name" else f"{str(row.get(c, '')):<24}" for c in cols))
    return 0


def cmd_query(args) -> int:
    from .clickhouse import run_query_cli

    return run_query_cli(args.sql, data_dir=args.data_dir, fmt=args.format)


def setup_logging(level: str, fmt: str) -> None:
    from .logs import configure

    configure(level, fmt)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            cmd, args = argv[0], _subparser(argv[0]).parse_args(argv[1:])
            setup_logging("info", "text")
            if cmd == "closes":
                from .closes_cli import cmd_closes

                return cmd_closes(args)
            return {"decode": cmd_decode, "namespaces": cmd_namespaces, "query": cmd_query}[cmd](args)
        args = build_parser().parse_args(argv)
        setup_logging(args.log_level, args.log_format)
        from .daemon import run_daemon, sinks_given

        if args.once and sinks_given(args):
            args.max_polls = 1  # one poll, delivered to the sinks named, flushed; exit code as the daemon's
            return run_daemon(args)
        if args.once:
            return cmd_once(args)

        return run_daemon(args)
    except XtcpError as exc:
        print(f"xtcp_uring: {exc}", file=sys.stderr)
        return exc.exit_code
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        where = f": {exc.filename}" if exc.filename is not None else ""
        print(f"xtcp_uring: {exc.strerror or exc}{where}", file=sys.stderr)
        return 66 if isinstance(exc, FileNotFoundError) else 77
    except ValueError as exc:  # bad user input caught by the parsers of filters, URLs, numbers
        print(f"xtcp_uring: {exc}", file=sys.stderr)
        return ConfigError.exit_code
    except BrokenPipeError:  # `| head` closed stdout: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
