"""The store is private: what the daemon and chDB create is 0700/0600, an older store is
tightened, and a directory (or anything in it, query.sock included) that another user owns is
refused with one line, never used. Real daemon, real chDB, real file ownership."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time

import pytest

from xtcp_uring import clickhouse
from xtcp_uring.errors import ConfigError

pytest.importorskip("chdb")
pytestmark = pytest.mark.root

NOBODY = 65534


def modes(root) -> dict[str, str]:
    """Octal mode of everything under root (symlinks left out: their mode means nothing)."""
    out = {".": oct(stat.S_IMODE(os.lstat(root).st_mode))}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            if not stat.S_ISLNK(st.st_mode):
                out[os.path.relpath(path, root)] = oct(stat.S_IMODE(st.st_mode))
    return out


def assert_private(root) -> None:
    found = modes(root)
    loose = {p: m for p, m in found.items() if int(m, 8) & 0o077}
    assert not loose, f"readable by others: {loose}"
    assert len(found) > 10 and any(p.startswith("store/") for p in found), found  # chDB's tree was seen


def daemon(data, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "xtcp_uring", "--data-dir", str(data), "--interval", "0.5",
                             "--namespaces", "host", "--metrics-listen", "off", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def refused(data) -> str:
    """Run the daemon on data; it must exit 64 at once with one line and no traceback."""
    r = subprocess.run([sys.executable, "-m", "xtcp_uring", "--data-dir", str(data), "--max-polls", "1",
                        "--namespaces", "host", "--metrics-listen", "off"], capture_output=True, text=True, timeout=120)
    lines = [line for line in r.stderr.splitlines() if "xtcp_uring:" in line and " INFO " not in line]
    assert r.returncode == 64, r.stderr
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_what_the_daemon_and_chdb_create_is_ours_alone(tmp_path):
    data = tmp_path / "store"
    proc = daemon(data)
    try:
        deadline = time.monotonic() + 90
        while not (data / "query.sock").exists() or not any((data / "store").glob("*/*/*_1_1_0")):
            assert time.monotonic() < deadline and proc.poll() is None, "no part written"
            time.sleep(0.2)
        assert_private(data)
        assert modes(data)["query.sock"] == "0o600"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert_private(data)


def test_an_older_store_made_readable_is_tightened(tmp_path):
    data = tmp_path / "store"
    legacy = ("import chdb.session as s, sys; c = s.Session(sys.argv[1]); "
              "c.query('CREATE DATABASE xtcp'); "
              "c.query('CREATE TABLE xtcp.t (a UInt8) ENGINE = MergeTree ORDER BY a'); "
              "c.query('INSERT INTO xtcp.t VALUES (1)'); c.close()")
    subprocess.run(["sh", "-c", 'umask 022 && exec "$@"', "sh", sys.executable, "-c", legacy, str(data)], check=True)
    assert any(int(m, 8) & 0o044 for m in modes(data).values()), "the legacy store was not readable to others"
    store = clickhouse.open_store(data)
    try:
        assert_private(data)
        assert store.query("SELECT a FROM xtcp.t").bytes().strip() == b"1"
    finally:
        store.release()


def test_a_data_dir_owned_by_another_user_is_refused(tmp_path):
    data = tmp_path / "store"
    data.mkdir()
    os.chown(data, NOBODY, NOBODY)
    line = refused(data)
    assert f"{data} belongs to uid 65534 (nobody)" in line and "--data-dir" in line
    assert os.listdir(data) == []


def test_a_data_dir_behind_another_users_symlink_is_refused(tmp_path):
    (tmp_path / "real").mkdir(mode=0o700)
    link = tmp_path / "store"
    link.symlink_to(tmp_path / "real")
    os.lchown(link, NOBODY, NOBODY)
    assert f"{link} belongs to uid 65534 (nobody)" in refused(link)


def test_a_query_sock_owned_by_another_user_is_refused(tmp_path):
    data = tmp_path / "store"
    data.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(data / "query.sock"))
    os.chown(data / "query.sock", NOBODY, NOBODY)
    assert f"{data}/query.sock belongs to uid 65534 (nobody)" in refused(data)
    assert os.lstat(data / "query.sock").st_uid == NOBODY, "the foreign socket was not left for the operator"


def test_a_directory_that_is_not_a_store_is_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    os.chmod(tmp_path / "notes.txt", 0o644)
    with pytest.raises(ConfigError, match="holds files but no chDB store"):
        clickhouse.open_store(tmp_path)
    assert modes(tmp_path)["notes.txt"] == "0o644"
