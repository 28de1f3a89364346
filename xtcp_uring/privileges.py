"""What this process may do, checked once at start and said plainly (issue: least privilege).

Dumps of the caller's own namespace need nothing. Each capability below widens what the
daemon reaches; without it the daemon still runs and says what it will skip.
"""

from __future__ import annotations

from dataclasses import dataclass

# Capability bit numbers (linux/capability.h).
CAP_NET_ADMIN = 12
CAP_SYS_PTRACE = 19
CAP_SYS_ADMIN = 21

NEEDS = {
    "CAP_SYS_ADMIN": (CAP_SYS_ADMIN, "setns into other network namespaces", "only this process's namespace is polled"),
    "CAP_SYS_PTRACE": (CAP_SYS_PTRACE, "read /proc/<pid>/ns/net of other users' processes",
                       "namespaces held only by other users' processes are not found"),
    "CAP_NET_ADMIN": (CAP_NET_ADMIN, "the mark column (INET_DIAG_MARK), MD5 keys, ULP info",
                      "mark, md5sig_keys and ULP presence stay 0"),
}


@dataclass(frozen=True)
class Privileges:
    effective: int  # CapEff bitmask

    def has(self, cap: int) -> bool:
        return bool(self.effective >> cap & 1)

    def report(self) -> list[str]:
        """One line per capability: held (what it enables) or missing (what is skipped)."""
        lines = []
        for name, (bit, enables, without) in NEEDS.items():
            lines.append(f"{name}: yes ({enables})" if self.has(bit) else f"{name}: no, so {without}")
        return lines

    @property
    def can_enter_namespaces(self) -> bool:
        return self.has(CAP_SYS_ADMIN)


def current(status_path: str = "/proc/self/status") -> Privileges:
    with open(status_path) as f:
        for line in f:
            if line.startswith("CapEff:"):
                return Privileges(int(line.split()[1], 16))
    return Privileges(0)


def holds(cap: int) -> bool:
    """Is ``cap`` in this process's effective set? False when /proc/self/status cannot be read."""
    try:
        return current().has(cap)
    except (OSError, ValueError):
        return False
