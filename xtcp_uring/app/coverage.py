"""What a poll reached, said once: "polling N of M namespaces; K need CAP_SYS_ADMIN ...".

Without privilege every other namespace fails the same way; one line says how many and which
capability would reach them, instead of a warning per namespace (the names are in
``xtcp-uring namespaces``). A ``--namespaces`` selection that matches nothing is an error for
one-shot commands (``NoMatchError``, exit 66) naming what exists, and a warning for the daemon.
"""

from __future__ import annotations

import errno
import logging

from ..errors import NoMatchError, PrivilegeError
from ..privileges import CAP_SYS_PTRACE
from ..privileges import current as current_privileges

log = logging.getLogger("xtcp_uring")

_SHOW = 8  # names listed in a message before "and N more"


def coverage_line(batch, manager) -> str | None:
    """One line when some selected namespace was not polled or not found for want of privilege; else None."""
    failures = manager.failures if manager is not None else []
    polled = len({d.netns for d in batch.dumps if d.family})  # failures to open have no family
    need_admin = sum(1 for f in failures if isinstance(f.error, PrivilegeError) and f.error.errno == errno.EPERM)
    need_ptrace = sum(1 for f in failures if isinstance(f.error, PrivilegeError) and f.error.errno == errno.EACCES)
    other = len(failures) - need_admin - need_ptrace
    denied = manager.stats.proc_denied if manager is not None else 0
    if denied and current_privileges().has(CAP_SYS_PTRACE):
        denied = 0  # root already: a Yama/LSM policy, nothing to grant
    if not (failures or denied):
        return None
    parts = []
    if need_admin:
        parts.append(f"{need_admin} need CAP_SYS_ADMIN (setns)")
    if need_ptrace:
        parts.append(f"{need_ptrace} need CAP_SYS_PTRACE (another user's /proc/<pid>/ns/net)")
    if other:
        reasons = sorted({f.error.strerror or str(f.error) for f in failures if not isinstance(f.error, PrivilegeError)})
        parts.append(f"{other} failed to open ({'; '.join(reasons[:3])})")
    if denied:
        parts.append(f"namespaces held only by {denied} processes of other users are not seen without "
                     "CAP_SYS_PTRACE")
    grant = " (run as root, or grant those capabilities)" if need_admin or need_ptrace or denied else ""
    return (f"polling {polled} of {polled + len(failures)} namespaces; " + ", ".join(parts) + grant
            + "; `xtcp-uring namespaces` lists them")


async def poll_once_checked(**options):
    """One poll (``poller.poll_once``), then the selection checked and the coverage said in one line.

    Raises:
        NoMatchError: see ``check_selection``.
    """
    from ..poller import Poller

    async with Poller(**options) as poller:
        batch = await poller.poll()
        check_selection(batch, poller.manager)
        line = coverage_line(batch, poller.manager)
    if line:
        log.warning("%s", line)
    for line in dump_errors(batch):
        log.warning("%s", line)
    return batch


def check_selection(batch, manager) -> None:
    """Raise when a selection other than ``all`` matched no namespace that exists.

    Raises:
        NoMatchError: the message names the selection and the namespaces found.
    """
    if manager is None or manager.selection.all or batch.dumps:
        return
    raise NoMatchError(no_match_message(manager))


def no_match_message(manager) -> str:
    names = sorted(set(manager.found_names))
    shown = ", ".join(names[:_SHOW]) + (f" and {len(names) - _SHOW} more" if len(names) > _SHOW else "")
    patterns = ",".join(manager.selection.patterns)
    return f"--namespaces {patterns} matched no namespace; found {len(names)}: {shown or 'none'}"


def dump_errors(batch) -> list[str]:
    """Errors of dumps that ran (not the namespaces that could not be opened), one line per distinct error."""
    by_error: dict[str, list[str]] = {}
    for d in batch.dumps:
        if d.error and d.family:
            by_error.setdefault(d.error, []).append(d.netns)
    lines = []
    for error, names in by_error.items():
        shown = ", ".join(names[:_SHOW]) + (f" and {len(names) - _SHOW} more" if len(names) > _SHOW else "")
        lines.append(f"{len(names)} dump{'s' if len(names) > 1 else ''} failed ({shown}): {error}")
    return lines
