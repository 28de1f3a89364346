"""`python -m xtcp_uring` (the ``xtcp-uring`` script): the daemon, one-shot dumps, pcap decoding, SQL,
close events, the dashboard.

The flags are ``options``'s; this module picks the command and maps errors to exit codes
(``errors``): a user error prints one line and exits with its class's code, an internal error
(a bug) prints a traceback and exits 70.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import traceback

from .. import native, output, records
from ..errors import InternalError, NoMatchError, XtcpError
from .logs import say_error
from .options import (SUBCOMMANDS, build_parser, closes_stream_options, context_options, parse_listen,
                      poller_options, subparser)

log = logging.getLogger("xtcp_uring")

EX_SOFTWARE = InternalError.exit_code  # 70: a bug, reported with its traceback


def cmd_decode(args) -> int:
    from ..wire.pcap import response_payloads

    layout = native.tcp_info_layout(args.kernel_release) if args.kernel_release else native.TCP_INFO_LAYOUT_6_18
    labels = records.encode_labels(kernel_release=args.kernel_release) if args.kernel_release else b""
    # One pcap packet is one recv: decode them as separate buffers (several dumps may follow).
    dump = records.decode_buffers([bytes(p) for p in response_payloads(args.pcap)], layout=layout,
                                  labels=labels, netns=args.pcap, strict=False)
    output.write(records.Batch([dump]), sys.stdout.buffer, output.stdout_format(args.format), args.fields)
    s = dump.stats
    if s.malformed_offset is not None or s.bad_attributes or s.unknown_attributes:
        log.warning("%s: %d sockets; malformed at %s, bad attributes %d, unknown attributes %d",
                    args.pcap, dump.count, s.malformed_offset, s.bad_attributes, s.unknown_attributes)
    return 0


def cmd_once(args) -> int:
    from ..namespaces.limits import raise_open_file_limit
    from .coverage import poll_once_checked

    raise_open_file_limit()  # every namespace at once needs a socket each
    fmt = output.stdout_format(args.format)
    output.check_fields(fmt, args.fields)  # a bad --fields fails before the poll
    batch = asyncio.run(poll_once_checked(**poller_options(args)))  # warns once: what was not reached
    output.write(batch, sys.stdout.buffer, fmt, args.fields)
    return 0


def cmd_namespaces(args) -> int:
    from ..namespaces.limits import raise_open_file_limit
    from ..poller import list_namespaces

    raise_open_file_limit()
    rows = asyncio.run(list_namespaces(args.namespaces, **context_options(args)))
    if not rows and args.namespaces != "all":
        raise NoMatchError(f"--namespaces {args.namespaces} matched no namespace; "
                           "`xtcp-uring namespaces` (no selection) lists every one")
    if args.json:
        import json

        for row in rows:
            print(json.dumps(row))
        return 0
    print_namespace_table(rows, sys.stdout)
    return 0


def print_namespace_table(rows: list[dict], out) -> None:
    """One line per namespace, columns as wide as their longest value."""
    cols = ("net_id", "name", "kind", "pod", "container", "image", "location", "pid", "sockets", "error")
    cells = [[str(row.get(c, "")) for c in cols] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    for line in [list(cols), *cells]:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip(), file=out)


def cmd_query(args) -> int:
    from ..clickhouse import run_query_cli

    from ..clickhouse.errors import ClickHouseError
    from ..errors import InputError

    try:
        return run_query_cli(args.sql, data_dir=args.data_dir, fmt=args.format)
    except ClickHouseError as exc:
        if exc.retriable:  # the store could not answer now (75)
            raise
        raise InputError(f"query: {exc}") from None  # the SQL itself (syntax, unknown column): 64


def cmd_closes(args) -> int:
    from .closes import stream_closes

    return stream_closes(**closes_stream_options(args))


def cmd_load_asn(args) -> int:
    """Fill the embedded store's ``xtcp.asn`` dictionary from a prefix file (``enrich.asn``: the
    format, and why it is checked whole first). Run it while the daemon is stopped."""
    from ..enrich.asn import load_asn_file

    count = load_asn_file(args.prefixes, args.data_dir)
    print(f"xtcp.asn holds {count} prefixes from {args.prefixes}")
    return 0


def cmd_view(args) -> int:
    from ..errors import ConfigError
    from ..view import open_backend, serve

    listen = parse_listen(args.listen, flag="--listen")
    if listen is None:
        raise ConfigError("--listen off: the view has nothing else to do; give HOST:PORT")
    backend = open_backend(args.data_dir, args.clickhouse)

    async def run() -> None:
        server = await serve(backend, *listen)
        print(f"xTCPView on {server.url} over {backend.describe()}; Ctrl-C stops", file=sys.stderr)
        try:
            await asyncio.Event().wait()
        finally:
            await server.close()

    try:
        asyncio.run(run())
    finally:
        backend.close()
    return 0


def setup_logging(level: str, fmt: str) -> None:
    from .logs import configure

    configure(level, fmt)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            cmd, args = argv[0], subparser(argv[0]).parse_args(argv[1:])
            setup_logging("info", "text")
            commands = {"decode": cmd_decode, "namespaces": cmd_namespaces, "query": cmd_query,
                        "load-asn": cmd_load_asn, "view": cmd_view, "closes": cmd_closes}
            return commands[cmd](args)
        args = build_parser().parse_args(argv)
        setup_logging(args.log_level, args.log_format)
        from .daemon import run_daemon
        from .options import sinks_given

        if args.once and sinks_given(args):
            args.max_polls = 1  # one poll, delivered to the sinks named, flushed; exit code as the daemon's
            return run_daemon(args)
        if args.once:
            return cmd_once(args)

        return run_daemon(args)
    except InternalError:
        return _internal_error()
    except XtcpError as exc:  # a user error: one line, the message says who must act
        say_error(str(exc))
        return exc.exit_code
    except ModuleNotFoundError as exc:  # an optional extra: say which pip install; else a bug
        from .extras import missing_extra_message

        message = missing_extra_message(exc)
        if message is None:
            return _internal_error()
        say_error(message)
        return 64
    except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        where = f": {exc.filename}" if exc.filename is not None else ""
        say_error(f"{exc.strerror or exc}{where}")
        return 77 if isinstance(exc, PermissionError) else 66  # missing, or a directory: no input to read
    except BrokenPipeError:  # `| head` closed stdout: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception:  # not raised on purpose: a bug, whatever its class (a ValueError included)
        return _internal_error()


def _internal_error() -> int:
    traceback.print_exc()
    print("xtcp_uring: internal error (a bug in xtcp_uring; please report it with the traceback above)",
          file=sys.stderr)
    return EX_SOFTWARE
