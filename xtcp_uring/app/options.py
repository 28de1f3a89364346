"""Every flag and XTCP_* variable of the program, defined once, and what they turn into.

Each flag reads its default from ``XTCP_<FLAG>`` (``--interval``: ``XTCP_INTERVAL``). The
parsed arguments stop here: ``poller_options`` / ``daemon_poller_options`` give the ``Poller``
its keywords, ``sink_options`` and ``sink_urls`` the sinks theirs, ``query_options`` the query
server its limits, ``closes_stream_options`` the ``closes`` subcommand its own. The library below ``app`` never sees argparse.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re

from .. import __version__, framing
from ..clickhouse import DEFAULT_DATA_DIR
from ..errors import ConfigError
from . import helptext

__all__ = ["build_parser", "subparser", "env_default", "env_number", "poller_options", "daemon_poller_options",
           "context_options", "close_event_options", "closes_stream_options", "parse_rcvbuf", "sink_options",
           "store_options", "sink_urls", "sinks_given", "query_options", "parse_listen", "SUBCOMMANDS"]

SUBCOMMANDS = ("decode", "namespaces", "query", "load-asn", "view", "closes")
_CLI_DOC = """\
    xtcp-uring                                  poll every namespace into the embedded store
    xtcp-uring --once --fields rtt,cwnd,retrans dump the sockets once: a table on a terminal, jsonl in a pipe
    xtcp-uring decode FILE.pcap                 decode an nlmon capture
    xtcp-uring namespaces                       list the namespaces found
    xtcp-uring query "SQL"                      query the embedded store
    xtcp-uring load-asn FILE.csv                load prefix,asn,name lines into xtcp.asn
    xtcp-uring view                             the dashboard at http://127.0.0.1:9109/
    xtcp-uring closes                           stream every TCP socket's final state as it closes
(After `make run` the command is .venv/bin/xtcp-uring.)"""


def env_default(name: str, default):
    """The XTCP_<NAME> environment variable, else default: every flag's fallback."""
    return os.environ.get("XTCP_" + name.upper().replace("-", "_"), default)


def env_number(name: str, default, kind: type):
    """``XTCP_<NAME>`` as a number of ``kind``, else ``default``.

    Raises:
        ConfigError: the variable is set but is not such a number (it names the variable).
    """
    raw = env_default(name, None)
    if raw in (None, ""):
        return default
    try:
        return kind(raw)
    except ValueError:
        var = "XTCP_" + name.upper().replace("-", "_")
        raise ConfigError(f"{var}={raw!r}: want {'an integer' if kind is int else 'a number'}") from None


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
    g.add_argument("--sample", type=int, default=env_number("sample", 1, int),
                   help="keep every Nth socket, chosen by cookie (default 1: all)")
    g.add_argument("--emit", choices=("all", "changed"), default=env_default("emit", "all"),
                   help="all: every socket every poll; changed: a socket's record only when it is new, changed "
                        "state, retransmitted, moved a counter, is above --keep-rtt-above, or is due a keyframe "
                        "(counted per reason in xtcp_emit_records_total)")
    g.add_argument("--keyframe-every", type=int, default=env_number("keyframe_every", 60, int),
                   help="--emit changed: send every socket at least once per this many polls (default 60)")
    g.add_argument("--keep-rtt-above", type=int, default=env_number("keep_rtt_above", 0, int),
                   help="--emit changed: always send sockets whose RTT is above this many microseconds (0: off)")
    g.add_argument("--max-namespaces", type=int, default=env_number("max_namespaces", None, int),
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="xtcp-uring",
        description="TCP socket telemetry (inet_diag) for every network namespace.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_CLI_DOC + "\n\n" + helptext.epilog(),
    )
    p.add_argument("--version", action="version", version=__version__)
    p.add_argument("--log-level", default=env_default("log_level", "info"), choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-format", default=env_default("log_format", "text"), choices=("text", "json"))
    g = p.add_argument_group("one-shot")
    g.add_argument("--once", action="store_true",
                   help="poll once, write the records to stdout (or deliver them to --sink), exit")
    _add_output_options(g, env=True)
    _add_poll_options(p)
    _add_context_options(p)
    _add_daemon_options(p)
    _add_close_options(p)
    helptext.complete_help(p)  # every default and XTCP_* name shown
    return p


def _add_output_options(g, env: bool = False) -> None:
    from ..fields import SHORT_NAMES

    g.add_argument("--format", default=env_default("format", None) if env else None, choices=framing.CLI_FORMATS,
                   help="table (aligned, ms and Mbit/s), jsonl, csv, pb or pblist. Default: table when stdout is "
                        "a terminal, jsonl when it is a pipe or file (and for --sink -)")
    g.add_argument("--fields", default=env_default("fields", None) if env else None,
                   help="columns for table, csv and jsonl, comma-separated: " + ", ".join(SHORT_NAMES)
                        + " or any schema column name (raw units in csv/jsonl: microseconds, bytes, bytes/s)")


def subparser(cmd: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"xtcp-uring {cmd}")
    if cmd == "decode":
        p.description = "Decode a netlink capture (pcap, link type 253, as taken on an nlmon device)."
        p.add_argument("pcap")
        _add_output_options(p)
        p.add_argument("--kernel-release", default=None,
                       help="release of the captured kernel; picks the meaning of tcp_info bytes 276-279")
    elif cmd == "namespaces":
        p.description = "List the network namespaces found, their labels and socket counts."
        p.add_argument("--namespaces", default="all")
        p.add_argument("--json", action="store_true")
        _add_context_options(p)
    elif cmd == "query":
        p.description = "Run SQL against the embedded ClickHouse store (chDB)."
        p.add_argument("sql")
        p.add_argument("--data-dir", default=env_default("data_dir", DEFAULT_DATA_DIR))
        p.add_argument("--format", default="table", choices=("table", "json", "csv"))
    elif cmd == "load-asn":
        p.description = ("Load a CSV prefix file (prefix,asn,name per line; IPv4 and IPv6) into the embedded "
                         "store's ip_trie dictionary xtcp.asn, replacing what it held. Queries then use "
                         "dictGet('xtcp.asn', 'asn', dst). Stop the daemon first: chDB lets one process hold a "
                         "store.")
        p.add_argument("prefixes", help="CSV file: prefix,asn,name")
        p.add_argument("--data-dir", default=env_default("data_dir", DEFAULT_DATA_DIR),
                       help="the embedded store (default ./xtcp-data, XTCP_DATA_DIR)")
    elif cmd == "view":
        p.description = ("The xTCPView dashboard over the embedded store (through its daemon while one runs) "
                         "or a ClickHouse server.")
        p.add_argument("--listen", default=env_default("view_listen", "127.0.0.1:9109"),
                       help="HOST:PORT or [IPV6]:PORT to serve on (default 127.0.0.1:9109)")
        where = p.add_mutually_exclusive_group()
        where.add_argument("--data-dir", default=env_default("data_dir", DEFAULT_DATA_DIR),
                           help="the embedded store (default ./xtcp-data)")
        where.add_argument("--clickhouse", default=env_default("clickhouse", None),
                           help="a ClickHouse server instead: http(s)://[user[:password]@]host:8123[/database]")
    elif cmd == "closes":
        p.description = "Stream the final state of every TCP socket closed in the selected namespaces."
        p.add_argument("--namespaces", default="all", help="all | host | names or globs (default all)")
        p.add_argument("--format", default="jsonl", choices=("jsonl", "table"))
        p.add_argument("--uring", choices=("auto", "on", "off"), default="auto",
                       help="read with io_uring, or plain sockets (off)")
        p.add_argument("--rcvbuf", default="4M", help="receive buffer per namespace subscription (default 4M)")
        p.add_argument("--rescan", type=float, default=2.0, help="seconds between namespace rescans (default 2)")
        p.add_argument("--flush", type=float, default=0.2, help="seconds between writes (default 0.2)")
        p.add_argument("--max-records", type=int, default=None, help="exit after this many close records")
    return p


def _add_close_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("daemon: close events (every socket's final state, short-lived ones included)")
    g.add_argument("--close-events", choices=("on", "off"), default=env_default("close_events", "on"),
                   help="subscribe to each namespace's TCP destroy events and send one close record per "
                        "socket end to the sinks (default on; not with --once)")
    g.add_argument("--close-events-rcvbuf", default=env_default("close_events_rcvbuf", "4M"),
                   help="receive buffer of each namespace's subscription; events past it are lost and "
                        "counted in xtcp_close_events_lost_total (default 4M)")


def _add_context_options(p: argparse.ArgumentParser) -> None:
    """Host labels and container enrichment (``enrich``): what every record says about where it is."""
    g = p.add_argument_group("context on every record")
    g.add_argument("--location", default=env_default("location", ""),
                   help="this host's PoP or site, the `location` column; the rollups xtcp_1m/xtcp_1h group by it "
                        "(XTCP_LOCATION)")
    g.add_argument("--label", action="append", default=None, metavar="KEY=VALUE",
                   help="a label of this host, repeatable; the `label` column holds them as k=v,k2=v2 sorted "
                        "by key; also in /metrics xtcp_target_info and Kafka headers "
                        "(XTCP_LABELS=\"k=v,k2=v2\")")
    g.add_argument("--tag", default=env_default("tag", ""), help="free text for the `tag` column (XTCP_TAG)")
    g.add_argument("--containers", choices=("on", "off"), default=env_default("containers", "on"),
                   help="fill container_* and pod_* from the container runtimes' state (default on)")
    g.add_argument("--container-root", default=env_default("container_root", None), metavar="PATH",
                   help="where the host's / is seen, to read the runtimes' state (/run/runc, "
                        "/run/containerd, /var/lib/docker...): /host in a DaemonSet that mounts them "
                        "there read-only (default /; XTCP_CONTAINER_ROOT)")


def context_options(args) -> dict:
    """``Poller`` keywords of the context flags (``list_namespaces`` takes them too); a parser
    without them gives the Poller's defaults."""
    labels = getattr(args, "label", None)
    if labels is None:
        labels = env_default("labels", "")
    return {"location": getattr(args, "location", ""), "labels": labels, "tag": getattr(args, "tag", ""),
            "containers": getattr(args, "containers", "on") != "off",
            "container_root": getattr(args, "container_root", None)}


def _add_daemon_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("daemon: when")
    g.add_argument("--interval", type=float, default=env_number("interval", 10.0, float), help="seconds between polls")
    g.add_argument("--jitter", type=float, default=env_number("jitter", 0.1, float),
                   help="random delay per tick, as a fraction of the interval (default 0.1)")
    g.add_argument("--max-polls", type=int, default=env_number("max_polls", 0, int) or None,
                   help="stop after this many polls (default: run until SIGTERM)")
    g = p.add_argument_group("daemon: where to")
    g.add_argument("--sink", action="append", default=None,
                   help="destination URL, repeatable: kafka://host:9092/topic, chdb:///dir, "
                        "clickhouse+http://host:8123/db, file:///x.pb, udp://host:port, - (stdout). "
                        "Default: chdb under --data-dir. XTCP_SINK takes a comma-separated list")
    g.add_argument("--data-dir", default=env_default("data_dir", DEFAULT_DATA_DIR),
                   help="embedded ClickHouse store for the default sink and `query` (default ./xtcp-data)")
    g.add_argument("--retention", default=env_default("retention", None),
                   help="how long the embedded store keeps records, e.g. 7d, 12h, or off (default 7d); "
                        "applied to an existing store too. Rollups keep theirs: xtcp_1m 35d, xtcp_1h 400d")
    g.add_argument("--max-store-bytes", default=env_default("max_store_bytes", None),
                   help="bound of the embedded store on disk, e.g. 20G: past it the oldest hours of records "
                        "are dropped (xtcp_store_partitions_dropped_total). Default: no bound but --retention")
    g.add_argument("--queue-bytes", default=env_default("queue_bytes", None),
                   help="per-sink bound of queued encoded batches, e.g. 64M (oldest dropped past it)")
    g.add_argument("--hostname", default=env_default("hostname", None), help="hostname label (default: this host's)")
    g.add_argument("--allow-insecure", action="store_true", default=env_default("allow_insecure", "") in ("1", "true"),
                   help="let a sink send credentials unencrypted to another host (Kafka SASL without TLS, "
                        "Basic auth over clickhouse+http); refused otherwise")
    g = p.add_argument_group("daemon: the query socket (<data-dir>/query.sock, read-only SQL)")
    g.add_argument("--query-group", default=env_default("query_group", None),
                   help="group (name or gid) whose members may query too (default: root and this user only)")
    g.add_argument("--query-timeout", type=float, default=env_number("query_timeout", 30.0, float),
                   help="seconds one query may run (default 30)")
    g.add_argument("--query-max-result-bytes", default=env_default("query_max_result_bytes", "32M"),
                   help="largest result a query may return, e.g. 32M (default)")
    g.add_argument("--query-max-memory", default=env_default("query_max_memory", "512M"),
                   help="memory one query may use, e.g. 512M (default)")
    g.add_argument("--ui-listen", default=env_default("ui_listen", "off"),
                   help="HOST:PORT or [IPV6]:PORT for the xTCPView dashboard over the store, through this "
                        "query path (e.g. 127.0.0.1:9109; default off)")
    g = p.add_argument_group("daemon: operations")
    g.add_argument("--metrics-listen", default=env_default("metrics_listen", "127.0.0.1:9108"),
                   help="HOST:PORT or [IPV6]:PORT for /metrics, /healthz, /readyz (default 127.0.0.1:9108); "
                        "'off' to disable")
    g.add_argument("--max-namespace-series", type=int, default=env_number("max_namespace_series", 100, int),
                   help="per-namespace metric series before the rest are summed as _other")


def poller_options(args) -> dict:
    """``Poller`` keyword arguments from the parsed poll options (``--once``, ``namespaces``)."""
    options = {"namespaces": args.namespaces, "families": args.families, "sample": args.sample,
               "emit": getattr(args, "emit", "all"), "keyframe_every": getattr(args, "keyframe_every", 60),
               "keep_rtt_above_us": getattr(args, "keep_rtt_above", 0),
               "use_uring": {"auto": "auto", "on": True, "off": False}[args.uring],
               "async_dumps": bool(args.async_dumps),
               "max_namespaces": getattr(args, "max_namespaces", None),
               "skip_user_namespaces": bool(getattr(args, "skip_user_namespaces", False)),
               "warn_namespace_failures": False,  # app/coverage.py says it in one line
               **context_options(args)}
    if args.states:
        options["states"] = args.states
    if args.filter:
        options["filter"] = args.filter
    if args.groups:
        options["groups"] = args.groups
    return options


def daemon_poller_options(args, encode: str | None) -> dict:
    """The daemon's ``Poller`` keywords: the poll options plus when to poll, the labels and
    close events.

    Raises:
        ConfigError: a bad --close-events-rcvbuf (before any I/O).
    """
    return {**poller_options(args), "interval": args.interval, "jitter": args.jitter,
            "max_polls": args.max_polls, "hostname": args.hostname, "encode": encode,
            **close_event_options(args)}


def parse_rcvbuf(value, flag: str = "--close-events-rcvbuf") -> int:
    """A close-event subscription's receive buffer in bytes (4K..2G).

    Raises:
        ConfigError: not a byte count, or out of range.
    """
    from ..sinks.config import parse_size

    try:
        size = parse_size(str(value))
    except ValueError:
        raise ConfigError(f"{flag} {value!r}: want a byte count such as 4M") from None
    if not 4096 <= size <= 1 << 31:
        raise ConfigError(f"{flag} {value!r}: between 4K and 2G")
    return size


def close_event_options(args) -> dict:
    """The ``Poller``'s close-event keywords: on unless --once or --close-events off.

    Raises:
        ConfigError: a bad --close-events-rcvbuf.
    """
    if getattr(args, "once", False) or getattr(args, "close_events", "off") != "on":
        return {}
    return {"close_events": True, "close_events_rcvbuf": parse_rcvbuf(args.close_events_rcvbuf)}


def closes_stream_options(args) -> dict:
    """``app.closes.stream_closes`` keywords from the ``closes`` subcommand's flags.

    Raises:
        ConfigError: a bad --rcvbuf, --rescan, --flush or --max-records.
    """
    if not args.rescan > 0 or not args.flush > 0:
        raise ConfigError("--rescan and --flush are seconds > 0")
    if args.max_records is not None and args.max_records < 1:
        raise ConfigError(f"--max-records {args.max_records}: want at least 1")
    return {"namespaces": args.namespaces, "fmt": args.format, "rcvbuf": parse_rcvbuf(args.rcvbuf, "--rcvbuf"),
            "use_uring": {"auto": "auto", "on": True, "off": False}[args.uring], "rescan_s": args.rescan,
            "flush_s": args.flush, "max_records": args.max_records}


def sink_options(args, url: str) -> dict:
    """``open_sink`` keywords for one URL from the daemon's flags."""
    opts = {"allow_insecure": args.allow_insecure}
    if url == "-":
        opts["format"] = args.format or framing.JSONL
    if args.queue_bytes:
        opts["queue_bytes"] = args.queue_bytes
    if url.startswith("chdb:"):
        opts.update(store_options(args))
    return opts


def store_options(args) -> dict:
    """The chdb sink's keywords from --retention and --max-store-bytes (checked here, before I/O).

    Raises:
        ConfigError: a duration or size that does not parse.
    """
    from ..clickhouse.retention import parse_retention
    from ..sinks.config import parse_size

    opts = {}
    if args.retention is not None:
        parse_retention(args.retention, "--retention")
        opts["retention"] = str(args.retention)
    if args.max_store_bytes is not None:
        try:
            opts["max_store_bytes"] = parse_size(str(args.max_store_bytes))
        except ValueError:
            raise ConfigError(f"--max-store-bytes {args.max_store_bytes!r}: want a byte count such as 20G") from None
        if opts["max_store_bytes"] <= 0:
            raise ConfigError(f"--max-store-bytes {args.max_store_bytes!r}: must be positive")
    return opts


def sink_urls(args) -> list[str]:
    urls = args.sink or [u for u in env_default("sink", "").split(",") if u]
    return urls or [f"chdb://{os.path.abspath(args.data_dir)}"]


def sinks_given(args) -> bool:
    """Did the user name a sink (flag or XTCP_SINK), rather than take the default store?"""
    return bool(args.sink or env_default("sink", ""))


def query_options(args) -> dict:
    """``serve_queries`` keywords from the --query-* flags.

    Raises:
        ConfigError: a size, duration or group that does not parse or does not exist.
    """
    import grp

    from ..clickhouse import QueryLimits
    from ..sinks.config import parse_size

    sizes = {}
    for flag, value in (("--query-max-result-bytes", args.query_max_result_bytes),
                        ("--query-max-memory", args.query_max_memory)):
        try:
            sizes[flag] = parse_size(str(value))
        except ValueError:
            raise ConfigError(f"{flag} {value!r}: want a byte count such as 32M or 1G") from None
    limits = QueryLimits(timeout_s=args.query_timeout, max_result_bytes=sizes["--query-max-result-bytes"],
                         max_memory_bytes=sizes["--query-max-memory"])
    group = args.query_group
    if group is not None:
        try:
            group = int(group) if str(group).isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(f"--query-group {args.query_group}: no such group") from None
    return {"limits": limits, "group": group}


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.?$")


def parse_listen(value: str, flag: str = "--metrics-listen") -> tuple[str, int] | None:
    """``--metrics-listen`` (or the listen flag named by ``flag``, which errors name):
    ``HOST:PORT``, ``[V6]:PORT``, ``:PORT`` (127.0.0.1) or ``off`` (None).

    Raises:
        ConfigError: anything else, with what was wrong (the port range, brackets for IPv6).
    """
    text = value.strip()
    if text.lower() == "off":
        return None
    where = f"{flag} {value!r}"
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ConfigError(f"{where}: an IPv6 address is written [ADDR]:PORT, e.g. [::1]:9108")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(f"{where}: {host!r} is not an IPv6 address") from None
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ConfigError(f"{where}: expected HOST:PORT, [IPV6]:PORT or off")
        if ":" in host:
            raise ConfigError(f"{where}: put an IPv6 address in brackets, e.g. [::1]:9108")
        host = host or "127.0.0.1"
        if not _HOSTNAME.match(host):
            raise ConfigError(f"{where}: {host!r} is not a host name or IPv4 address")
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"{where}: the port must be a number from 1 to 65535")
    return host, int(port)
