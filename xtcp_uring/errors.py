"""Errors, split by who must act (as h11 splits local from remote protocol errors).

The CLI prints one line and exits with the class's ``exit_code``; it never shows a traceback
for these. Exit codes (sysexits.h):

    0   done; SIGTERM/SIGINT after every sink delivered something (or had nothing to deliver)
    64  ConfigError: a bad flag, URL, filter or --metrics-listen, a listener address that is
        busy, absent or unresolvable, credentials that would cross the network unencrypted
    65  DecodeError       66  an input file is missing       77  PrivilegeError, permission
    69  NetlinkError, RingUnavailableError
    75  SinkError: a sink refused at start (untrusted certificate, rejected credentials), or
        DeliveryError: a sink delivered nothing in the whole run while it failed or lost records
    130 interrupted before the daemon set up its signal handlers
"""

from __future__ import annotations


class XtcpError(Exception):
    """Base of every error xtcp_uring raises on purpose."""

    exit_code = 1


class DecodeError(XtcpError, ValueError):
    """Netlink bytes that cannot be decoded (the kernel or a capture sent something malformed).

    Carries where: ``offset`` into the buffer, and the ``netns`` label when known.
    """

    exit_code = 65  # EX_DATAERR

    def __init__(self, message: str, *, offset: int | None = None, netns: str | None = None):
        where = []
        if netns is not None:
            where.append(f"netns {netns}")
        if offset is not None:
            where.append(f"offset {offset}")
        super().__init__(f"{message} ({', '.join(where)})" if where else message)
        self.offset = offset
        self.netns = netns


class NetlinkError(XtcpError, OSError):
    """The kernel answered a dump request with NLMSG_ERROR; ``errno`` is the kernel's."""

    exit_code = 69  # EX_UNAVAILABLE


class PrivilegeError(XtcpError, PermissionError):
    """A capability is missing: the operator must grant it (the message names which)."""

    exit_code = 77  # EX_NOPERM


class RingUnavailableError(XtcpError):
    """io_uring cannot be used here (disabled by sysctl or seccomp); the fallback is taken."""

    exit_code = 69


class SinkError(XtcpError):
    """A destination failed. ``retriable`` says whether waiting may fix it."""

    exit_code = 75  # EX_TEMPFAIL
    retriable = True


class ConfigError(XtcpError, ValueError):
    """The user asked for something that cannot work (bad flag, URL, filter)."""

    exit_code = 64  # EX_USAGE


class DeliveryError(SinkError):
    """A sink delivered nothing in a whole run although it had records (or a destination) to
    reach: the operator must fix the destination (the message names it and what was lost)."""

    retriable = False
