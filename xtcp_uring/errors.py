"""One error tree, split by who must act (as h11 splits local from remote protocol errors).

    XtcpError
    ├── UserError             the operator must act; the CLI prints one line, no traceback
    │   ├── ConfigError       a bad flag, URL, filter or listener
    │   ├── InputError        bytes or a file given to us that cannot be read
    │   │   └── DecodeError   netlink bytes that do not decode
    │   ├── PrivilegeError    a capability or a permission is missing
    │   └── UnavailableError  something outside us refused: the kernel, io_uring, a sink
    │       ├── NetlinkError, RingUnavailableError
    │       └── SinkError
    │           └── DeliveryError
    └── InternalError         a bug in xtcp_uring: the CLI prints a traceback

Modules add their own leaves (``wire.request.RequestError`` is an InputError, a ClickHouse
refusal a SinkError), so a caller can catch a branch without knowing every module.

Exit codes of the CLI (sysexits.h), one per class (``exit_code``):

    0   done; SIGTERM/SIGINT after every sink delivered something (or had nothing to deliver)
    64  ConfigError, InputError: a bad flag, URL, filter, capture or --metrics-listen, a
        listener address that is busy, absent or unresolvable, credentials that would cross
        the network unencrypted
    65  DecodeError
    66  an input file is missing or is a directory, or NoMatchError: --namespaces matched no namespace (--once,
        namespaces; the daemon warns and keeps looking)
    69  NetlinkError, RingUnavailableError
    70  InternalError, or any exception that is not an XtcpError (a bug: with a traceback)
    75  SinkError: a sink refused at start (untrusted certificate, rejected credentials), or
        DeliveryError: a sink delivered nothing in the whole run while it failed or lost records
    77  PrivilegeError, permission denied on a file
    130 interrupted before the daemon set up its signal handlers
"""

from __future__ import annotations


class XtcpError(Exception):
    """Base of every error xtcp_uring raises on purpose."""

    exit_code = 1


class UserError(XtcpError):
    """Someone outside the program must act (the message says who and what)."""

    exit_code = 64  # EX_USAGE


class InternalError(XtcpError):
    """A bug in xtcp_uring (two of its own parts disagree); never caused by input."""

    exit_code = 70  # EX_SOFTWARE


class ConfigError(UserError, ValueError):
    """The user asked for something that cannot work (bad flag, URL, filter)."""

    exit_code = 64  # EX_USAGE


class InputError(UserError, ValueError):
    """Bytes or a file handed to us (a request parameter, a capture, a schema) that cannot be read."""

    exit_code = 64  # EX_USAGE


class DecodeError(InputError):
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


class PrivilegeError(UserError, PermissionError):
    """A capability is missing: the operator must grant it (the message names which)."""

    exit_code = 77  # EX_NOPERM


class UnavailableError(UserError):
    """Something outside the program refused: the kernel, io_uring, a destination."""

    exit_code = 69  # EX_UNAVAILABLE


class NetlinkError(UnavailableError, OSError):
    """The kernel answered a dump request with NLMSG_ERROR; ``errno`` is the kernel's."""

    exit_code = 69  # EX_UNAVAILABLE


class RingUnavailableError(UnavailableError):
    """io_uring cannot be used here (disabled by sysctl or seccomp); the fallback is taken."""

    exit_code = 69


class SinkError(UnavailableError):
    """A destination failed. ``retriable`` says whether waiting may fix it."""

    exit_code = 75  # EX_TEMPFAIL
    retriable = True


class DeliveryError(SinkError):
    """A sink delivered nothing in a whole run although it had records (or a destination) to
    reach: the operator must fix the destination (the message names it and what was lost)."""

    retriable = False


class NoMatchError(UserError):
    """A selection (``--namespaces``) that matches nothing that exists; the message names what does."""

    exit_code = 66  # EX_NOINPUT
