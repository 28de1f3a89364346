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


def complete_help(parser) -> None:
    """Each option's help ends with its default and its ``XTCP_*`` variable, unless it says them."""
    import argparse

    for action in parser._actions:  # noqa: SLF001 - argparse has no public walk of its options
        if not action.option_strings or action.help == argparse.SUPPRESS or action.dest in ("help", "version"):
            continue
        action.help = action.help or ""
        flag = max(action.option_strings, key=len)
        extra = []
        if "default" not in action.help and action.default not in (None, False, "", argparse.SUPPRESS):
            extra.append(f"default {action.default}")
        variable = "XTCP_" + flag.lstrip("-").upper().replace("-", "_")
        if variable not in action.help and action.dest not in ("once",):
            extra.append(variable)
        if extra:
            action.help = f"{action.help} [{'; '.join(extra)}]".strip().replace("%", "%%")
