"""The running daemon's query.sock: who may ask (SO_PEERCRED), what a query may do to the
daemon (nothing: SYSTEM SHUTDOWN, a 300 MB result, a client that sends nothing), and whom the
client trusts. Real daemon, real unprivileged users (setpriv to nobody), real sockets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from xtcp_uring.clickhouse import query as query_client

pytest.importorskip("chdb")
pytestmark = pytest.mark.root

NOBODY = 65534
NOGROUP = 65534


def query(data, sql: str, fmt: str = "csv", as_user: tuple[int, int, list[int]] | None = None,
          timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "xtcp_uring", "query", sql, "--data-dir", str(data), "--format", fmt]
    if as_user is not None:
        uid, gid, groups = as_user
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}",
               f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups",
               "--inh-caps=-all", "--bounding-set=-all", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def wait_for_records(data, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = query(data, "SELECT count() FROM xtcp_records")
        if r.returncode == 0 and int(r.stdout.split()[1]) > 0:
            return int(r.stdout.split()[1])
        time.sleep(0.3)
    raise AssertionError(f"no records reached the store: {r.stderr}")


class ShellJob:
    """The daemon started the way a terminal starts a job: in a process group of its own with
    a sibling (a `sleep` of the same job). A query must never reach that group."""

    def __init__(self, data, *flags: str):
        argv = " ".join([sys.executable, "-m", "xtcp_uring", "--data-dir", str(data), "--interval", "0.5",
                         "--jitter", "0", "--namespaces", "host", "--metrics-listen", "off", *flags])
        self.proc = subprocess.Popen(["sh", "-c", f"sleep 600 >/dev/null 2>&1 & exec {argv}"], start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def members(self) -> set[int]:
        out = subprocess.run(["pgrep", "-g", str(self.proc.pid)], capture_output=True, text=True).stdout
        return {int(p) for p in out.split()}

    def stop(self) -> tuple[int, str]:
        """SIGTERM the daemon (the job's leader after exec); returns its exit code and log."""
        self.proc.send_signal(signal.SIGTERM)
        _, log = self.proc.communicate(timeout=60)
        os.killpg(self.proc.pid, signal.SIGKILL)  # the sibling sleep
        return self.proc.returncode, log


@pytest.fixture
def walkable_dir():
    """A directory under /tmp that anyone may walk through (pytest's own are root's alone), so
    the test users reach as far as the store's own modes let them."""
    path = tempfile.mkdtemp(prefix="xtcp-query-", dir="/tmp")
    os.chmod(path, 0o711)
    yield path
    subprocess.run(["rm", "-rf", path], check=True)


@pytest.fixture(scope="module")
def job():
    parent = tempfile.mkdtemp(prefix="xtcp-query-", dir="/tmp")
    os.chmod(parent, 0o711)
    data = os.path.join(parent, "store")
    job = ShellJob(data, "--query-timeout", "3", "--query-max-memory", "128M")
    try:
        wait_for_records(data)
        yield job, Path(data)
    finally:
        code, log = job.stop()
        subprocess.run(["rm", "-rf", parent], check=True)
    assert code == 0, log


def test_the_daemon_answers_a_select(job):
    _, data = job
    r = query(data, "SELECT netns, count() > 0 AS some FROM xtcp.xtcp_records GROUP BY netns")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ['"netns","some"', '"host",1']


@pytest.mark.parametrize("sql, why", [
    ("SYSTEM SHUTDOWN", "SYSTEM query is not allowed"),
    ("SELECT * FROM file('/etc/shadow', 'LineAsString')", "file() reaches outside"),
    ("SELECT 1 INTO OUTFILE '/root/xtcp-query-outfile'", "INTO OUTFILE"),
    ("DROP TABLE xtcp.xtcp_records", "DropQuery"),
    ("SET readonly = 0", "is not allowed here"),
    ("KILL QUERY WHERE 1", "KillQueryQuery"),
])
def test_a_refused_statement_reaches_neither_the_daemon_nor_its_shell_job(job, sql, why):
    job, data = job
    members = job.members()
    assert job.proc.pid in members and len(members) == 2, "the daemon and its sibling sleep"
    r = query(data, sql)
    assert r.returncode == 64 and why in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not os.path.exists("/root/xtcp-query-outfile")
    assert job.members() == members, "a process of the daemon's group died"
    assert wait_for_records(data) > 0, "the table is gone"


def test_limits_stop_a_huge_result_without_the_daemon_swelling(job):
    job, data = job
    before = rss_bytes(job.proc.pid)
    r = query(data, "SELECT number, repeat('x', 300) FROM numbers(1000000)")  # ~300 MB
    assert r.returncode == 75 and "--query-max-result-bytes" in r.stderr, r.stderr
    assert len(r.stdout) < 40 << 20  # the cap (32 MiB) and no more
    growth = rss_bytes(job.proc.pid) - before
    assert growth < 256 << 20, f"the daemon grew by {growth >> 20} MiB"
    r = query(data, "SELECT count() FROM system.numbers")
    assert r.returncode == 75 and "--query-timeout" in r.stderr, r.stderr
    r = query(data, "SELECT groupArray(randomString(1000)) FROM numbers(1000000)")
    assert r.returncode == 75 and "--query-max-memory" in r.stderr, r.stderr


def test_only_root_the_daemons_user_or_its_group_may_ask(job):
    """Even with the directory and socket opened to everyone, the kernel's word on the client
    (SO_PEERCRED) keeps nobody out."""
    job, data = job
    sock = data / "query.sock"
    os.chmod(data, 0o711)
    os.chmod(sock, 0o666)
    try:
        r = query(data, "SELECT count() FROM xtcp_records", as_user=(NOBODY, NOGROUP, []))
    finally:
        os.chmod(sock, 0o600)
        os.chmod(data, 0o700)
    assert r.returncode == 77, r.stderr
    assert "uid 65534 (nobody) may not query this store" in r.stderr and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_client_that_sends_nothing_or_too_much_is_dropped(job):
    _, data = job
    for request, why in ((b"", "no request within"), (b"x" * (100 << 10), "request longer than")):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(str(data / "query.sock"))
            s.sendall(request)
            reader = s.makefile("rb")
            kind, size = query_client.FRAME.unpack(reader.read(query_client.FRAME.size))
            assert kind == query_client.ERROR and why in json.loads(reader.read(size))["message"]


def test_query_group_members_may_ask_and_others_cannot_reach_the_socket(walkable_dir):
    data = Path(walkable_dir) / "store"
    job = ShellJob(data, "--query-group", str(NOGROUP))
    try:
        wait_for_records(data)
        st, sock = os.stat(data), os.stat(data / "query.sock")
        assert (oct(st.st_mode & 0o777), st.st_gid) == ("0o710", NOGROUP)
        assert (oct(sock.st_mode & 0o777), sock.st_gid) == ("0o660", NOGROUP)
        member = query(data, "SELECT count() > 0 FROM xtcp_records", as_user=(NOBODY, NOGROUP, []))
        assert member.returncode == 0 and member.stdout.split()[-1] == "1", member.stderr
        by_supplementary = query(data, "SELECT 1", as_user=(NOBODY, 4242, [NOGROUP]))
        assert by_supplementary.returncode == 0, by_supplementary.stderr
        outsider = query(data, "SELECT 1", as_user=(NOBODY, 4242, []))
        assert outsider.returncode == 77 and "permission denied" in outsider.stderr, outsider.stderr
    finally:
        code, log = job.stop()
    assert code == 0, log


@pytest.fixture
def nobody_dir():
    path = tempfile.mkdtemp(prefix="xtcp-nobody-", dir="/tmp")
    os.chown(path, NOBODY, NOGROUP)
    yield path
    subprocess.run(["rm", "-rf", path], check=True)


def test_the_client_trusts_no_socket_and_no_peer_of_another_user(nobody_dir):
    """A socket another user owns, or one whose listening process is another user's, gets
    no question: a fake daemon could answer anything."""
    listener = subprocess.Popen(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOGROUP}", "--clear-groups", sys.executable, "-c",
         "import socket, sys, time; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(); "
         "print('ready', flush=True); time.sleep(60)", os.path.join(nobody_dir, "query.sock")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "ready"
        sock = os.path.join(nobody_dir, "query.sock")
        with pytest.raises(query_client.QueryRefused, match="belongs to uid 65534"):
            query_client.query_daemon(sock, "SELECT 1", "csv", lambda data: None)
        os.chown(sock, 0, 0)  # the file looks like root's now; the process behind it is not
        with pytest.raises(query_client.QueryRefused, match="runs as uid 65534"):
            query_client.query_daemon(sock, "SELECT 1", "csv", lambda data: None)
    finally:
        listener.kill()
        listener.wait()


def test_peer_credentials_are_the_kernels():
    a, b = socket.socketpair()
    with a, b:
        pid, uid, gid, groups = query_client.peer_credentials(a)
    assert (pid, uid, gid) == (os.getpid(), os.geteuid(), os.getegid())
    assert set(groups) == set(os.getgroups())


def test_without_a_daemon_another_users_store_is_not_opened(walkable_dir):
    data = Path(walkable_dir) / "store"
    data.mkdir(mode=0o711)
    r = query(data, "SELECT 1", as_user=(NOBODY, NOGROUP, []))
    assert r.returncode == 77 and "no daemon answers" in r.stderr and "belongs to uid 0 (root)" in r.stderr, r.stderr
    assert os.listdir(data) == []


@pytest.mark.parametrize("flags, why", [
    (["--query-group", "no-such-group-xtcp"], "no such group"),
    (["--query-max-memory", "lots"], "want a byte count"),
    (["--query-timeout", "0"], "must be positive"),
])
def test_bad_query_flags_are_one_line(flags, why, tmp_path):
    r = subprocess.run([sys.executable, "-m", "xtcp_uring", "--data-dir", str(tmp_path / "store"), "--max-polls", "1",
                        "--metrics-listen", "off", *flags], capture_output=True, text=True, timeout=60)
    assert r.returncode == 64 and why in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "store").exists(), "flags are checked before anything is created"
