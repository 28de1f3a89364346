"""Text shared by ``--help`` and the README: the exit codes and where defaults come from.

``tests/unit/test_cli_messages.py`` checks that the README holds the same exit-code table.
"""

from __future__ import annotations

EXIT_CODES = (
    (0, "done (the daemon: stopped by SIGTERM/SIGINT after every sink delivered)"),
    (64, "a bad flag, URL, filter, --fields name, SQL statement or listen address (busy, absent); an "
         "optional extra not installed (the message names the pip install)"),
    (65, "netlink bytes or a capture that do not decode"),
    (66, "an input file is missing or is a directory; --namespaces matched no namespace (--once, namespaces)"),
    (69, "the kernel or io_uring refused (netlink error, io_uring unavailable)"),
    (70, "a bug in xtcp_uring (printed with its traceback: please report it)"),
    (75, "a sink refused at start, or delivered nothing in the whole run; the store could not answer a query"),
    (77, "permission denied (a file, a capability)"),
    (130, "interrupted (Ctrl-C) before the daemon was set up"),
)

ENVIRONMENT = ("Every flag also reads its default from an environment variable XTCP_<FLAG> "
               "(--interval: XTCP_INTERVAL, --log-format: XTCP_LOG_FORMAT); a flag given wins.")


def exit_code_lines() -> list[str]:
    return [f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES]


def epilog() -> str:
    return "\n".join([ENVIRONMENT, "", "exit codes:", *exit_code_lines()])
