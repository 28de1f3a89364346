"""The store's directory is ours alone: owned by the user that runs us, readable by nobody else.

The store holds every namespace's connections, and its ``query.sock`` answers SQL: another
user who owns the directory, or any file in it, could read them or put their own socket in
its place. So a directory (or anything in it) owned by someone else is refused, never fixed
up, and what we own loses its group and other bits (0700 directories, 0600 files; the daemon
also runs with umask 077 so chDB creates them so). With ``--query-group`` the top directory
is 0710 and that group's: its members can reach ``query.sock`` without listing the store.
"""

from __future__ import annotations

import os
import pwd
import stat

from ..errors import ConfigError

# Entries chDB makes at the top of its directory; a directory holding anything else (and no
# chDB lock file) is not a store, and tightening it could lock its real owner out.
CHDB_ENTRIES = frozenset({"status", "store", "data", "metadata", "metadata_dropped", "tmp", "user_files",
                          "user_scripts", "format_schemas", "access", "flags", "named_collections",
                          "preprocessed_configs", "dictionaries_lib", "query.sock"})


def prepare(path: str) -> None:
    """Create ``path`` (0700), or check an existing one, before chDB opens it.

    Raises:
        ConfigError: ``path`` belongs to another user, or holds files that are not a chDB store.
    """
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    check_owner(path)
    if not stat.S_ISDIR(os.stat(path).st_mode):
        raise ConfigError(f"data dir {path} is not a directory")
    entries = set(os.listdir(path))
    if entries and "status" not in entries and not entries <= CHDB_ENTRIES:
        raise ConfigError(f"data dir {path} holds files but no chDB store ({', '.join(sorted(entries)[:3])}…): "
                          "give --data-dir a new or empty directory")


def tighten(path: str) -> None:
    """Take group and other access away from ``path`` and everything under it; run once chDB
    holds the directory's lock, so no other process of ours is using it.

    Raises:
        ConfigError: something under ``path`` belongs to another user.
    """
    euid = os.geteuid()
    os.chmod(path, 0o700)
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            _tighten(os.path.join(top, name), euid)


def share_with_group(path: str, gid: int) -> None:
    """Let ``gid`` traverse the top directory (0710) to reach ``query.sock``, list nothing."""
    os.chown(path, -1, gid)
    os.chmod(path, 0o710)


def check_owner(path: str, euid: int | None = None) -> os.stat_result:
    """lstat ``path`` and refuse it unless it is ours (a symlink is judged by its own owner too,
    then by what it points at)."""
    euid = os.geteuid() if euid is None else euid
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        if st.st_uid not in (0, euid):
            raise ConfigError(_foreign(path, st.st_uid, euid))
        st = os.stat(path)
    if st.st_uid != euid:
        raise ConfigError(_foreign(path, st.st_uid, euid))
    return st


def _tighten(path: str, euid: int) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:  # a temporary part chDB's background merge removed while we walked
        return
    if stat.S_ISLNK(st.st_mode):
        return  # chDB's own links (data/<db>/<table> -> store/…): their target is walked
    if st.st_uid != euid:
        raise ConfigError(_foreign(path, st.st_uid, euid))
    if st.st_mode & 0o077:
        try:
            os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o077)
        except FileNotFoundError:
            pass


def user_name(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def _foreign(path: str, owner: int, euid: int) -> str:
    return (f"{path} belongs to {user_name(owner)}, not to {user_name(euid)} that runs xtcp_uring: its owner "
            "could read the store or answer its queries; remove it or chown it, or pick another --data-dir")
