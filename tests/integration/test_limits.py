"""Bounded resources: at most --max-namespaces sockets, the rest skipped and counted; our own
user namespace before others'; fd exhaustion survived. Real namespaces throughout: ``ip netns
add`` for ours, ``unshare -Urn`` processes for namespaces owned by another user namespace
(what any unprivileged user can make), and a daemon run under a lowered RLIMIT_NOFILE."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import subprocess
import time

import pytest

from test_daemon import Daemon, free_port, metric, query, scrape
from xtcp_uring.namespaces import SKIP_LIMIT, SKIP_USERNS, NamespaceManager

pytestmark = pytest.mark.root


@contextlib.contextmanager
def foreign_namespaces(n: int):
    """n network namespaces, each owned by a new user namespace (``unshare -Urn``): names."""
    own = os.readlink("/proc/self/ns/net")
    procs = [subprocess.Popen(["unshare", "-Urn", "sleep", "infinity"], start_new_session=True) for _ in range(n)]
    try:
        deadline = time.monotonic() + 10
        for p in procs:
            while True:
                with contextlib.suppress(FileNotFoundError):
                    if os.readlink(f"/proc/{p.pid}/ns/net") != own:
                        break
                assert time.monotonic() < deadline and p.poll() is None, "unshare -Urn did not start"
                time.sleep(0.005)
        yield [f"pid:{p.pid}" for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def open_names(m: NamespaceManager) -> set[str]:
    return {ns.name for ns in m.namespaces}


def test_namespaces_past_the_cap_are_skipped_counted_and_taken_when_room_appears(netns_farm):
    names = netns_farm.add(5, sockets=False)
    with NamespaceManager(netns_farm.glob, max_namespaces=3) as m:
        m.reconcile_blocking()
        assert open_names(m) == set(names[:3]), "bind-mounted namespaces in name order"
        assert sorted(m.skipped) == [(n, SKIP_LIMIT) for n in names[3:]]
        assert (m.stats.current, m.stats.skipped, m.stats.skipped_total) == (3, 2, 2)
        m.reconcile_blocking()
        assert m.stats.skipped_total == 2, "a namespace still skipped is counted once"
        netns_farm.remove(names[0])
        m.reconcile_blocking()
        assert open_names(m) == set(names[1:4]) and m.skipped == [(names[4], SKIP_LIMIT)]
        assert m.stats.skipped_total == 2


def test_namespaces_of_other_user_namespaces_never_keep_ours_out(netns_farm):
    with foreign_namespaces(3) as theirs:
        with NamespaceManager([netns_farm.glob, *theirs], max_namespaces=3) as m:
            m.reconcile_blocking()
            assert open_names(m) == set(theirs)
            assert all(ns.userns and ns.userns != os.stat("/proc/self/ns/user").st_ino for ns in m.namespaces)
            ours = netns_farm.add(2, sockets=False)  # a flood got there first; then real containers start
            m.reconcile_blocking()
            assert m.stats.evicted == 2, "two of theirs closed to make room for ours"
            m.reconcile_blocking()
            assert set(ours) <= open_names(m) and len(open_names(m) & set(theirs)) == 1
            assert {why for _, why in m.skipped} == {SKIP_LIMIT} and len(m.skipped) == 2
            m.reconcile_blocking()
            assert m.stats.evicted == 2 and set(ours) <= open_names(m), "stable: no thrashing"


def test_skip_user_namespaces_leaves_them_out_and_counts_them(netns_farm):
    ours = netns_farm.add(2, sockets=False)
    with foreign_namespaces(2) as theirs:
        with NamespaceManager([netns_farm.glob, *theirs], skip_user_namespaces=True) as m:
            m.reconcile_blocking()
            assert open_names(m) == set(ours)
            assert sorted(m.skipped) == sorted((n, SKIP_USERNS) for n in theirs)
            assert m.stats.skipped_userns == 2
            m.reconcile_blocking()
            assert m.stats.skipped_total == 2 and m.stats.opened == 2


def test_a_scan_without_fds_closes_nothing_and_is_counted(netns_farm):
    """Every fd taken (really: RLIMIT_NOFILE lowered, then filled): listing /run/netns and /proc
    fails with EMFILE. The reconcile keeps what it holds, counts it, and recovers after."""
    names = netns_farm.add(3, sockets=False)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with NamespaceManager(netns_farm.glob, task_scan_interval=0) as m:
        m.reconcile_blocking()
        assert open_names(m) == set(names)
        netns_farm.remove(names[0])  # a complete scan would close it
        hog = []
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
        try:
            with contextlib.suppress(OSError):
                while True:
                    hog.append(os.open("/dev/null", os.O_RDONLY))
            m.reconcile_blocking()
            assert open_names(m) == set(names), "a scan cut short closes nothing"
            assert m.stats.fd_exhausted_scan >= 2  # the bind-mount directory and /proc
        finally:
            for fd in hog:
                os.close(fd)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        m.reconcile_blocking()
        assert open_names(m) == set(names[1:]) and m.stats.vanished == 1


def _nofile(n: int):
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


LIMIT = 512  # default cap: 512 - 256 (the smallest reserve) = 256 namespaces
FARM = 300


def test_lowered_open_file_limit_polls_what_fits_counts_the_rest_and_chdb_still_inserts(netns_farm, tmp_path):
    with_sockets = netns_farm.add(5)  # "-0".."-4": first in name order, so among those polled
    netns_farm.add(FARM - 5, sockets=False)
    port = free_port()
    data = tmp_path / "store"
    # One socket per namespace here; with close events (two each) see test_daemon_closes.py.
    d = Daemon("--interval", "0.5", "--jitter", "0", "--namespaces", netns_farm.glob, "--data-dir", str(data),
               "--metrics-listen", f"127.0.0.1:{port}", "--close-events", "off", preexec_fn=_nofile(LIMIT))
    try:
        polls = d.wait_for_polls(3)
        assert {p[1] for p in polls} == {256}
        body = scrape(port, "/metrics")[1]
        assert metric(body, "xtcp_namespaces", state="open") == 256
        assert metric(body, "xtcp_namespaces", state="skipped") == FARM - 256
        assert metric(body, "xtcp_max_namespaces") == 256
        assert metric(body, "xtcp_namespace_events_total", event="skipped") == FARM - 256
        deadline = time.monotonic() + 60
        while metric(scrape(port, "/metrics")[1], "xtcp_records_published_total", sink=f"chdb://{data}") == 0:
            assert time.monotonic() < deadline, "chDB inserted nothing under the lowered limit"
            time.sleep(0.2)
        assert scrape(port, "/readyz")[0] == 200
    finally:
        code = d.stop()
    log = "".join(d.lines)
    assert code == 0, log
    assert "Traceback" not in log
    assert f"open-file limit {LIMIT} (the hard limit); polling at most 256 namespaces" in log
    assert len(re.findall(rf"{FARM - 256} network namespaces are not polled \(.*\): 256 are open, "
                          r"--max-namespaces is 256", log)) == 1
    stored = query("SELECT netns, count() > 0 FROM xtcp.xtcp_records GROUP BY netns ORDER BY netns", data)
    assert stored.splitlines()[1:] == [f'"{n}",1' for n in sorted(with_sockets)]


def test_running_out_of_fds_is_counted_and_survived(netns_farm, tmp_path):
    """--max-namespaces far past what the limit allows: opens hit EMFILE, then every listing of
    /proc and /run/netns does. The daemon keeps polling what it holds, says so once per kind,
    delivers to its sink (opened before), and stops cleanly."""
    netns_farm.add(5)
    netns_farm.add(FARM - 5, sockets=False)
    out = tmp_path / "records.pb"
    d = Daemon("--interval", "0.3", "--jitter", "0", "--namespaces", netns_farm.glob, "--max-namespaces",
               "100000", "--sink", f"file://{out}", "--metrics-listen", "off", preexec_fn=_nofile(256))
    try:
        polls = d.wait_for_polls(6)
    finally:
        code = d.stop()
    log = "".join(d.lines)
    assert code == 0, log
    assert "Traceback" not in log
    held = {p[1] for p in polls}
    assert len(held) == 1 and 100 < held.pop() < FARM, "the same namespaces polled every time"
    assert log.count("ran out of file descriptors opening network namespaces") == 1
    assert log.count("Too many open files; namespaces already open stay open") <= 3  # once per directory
    sent = int(re.search(r"sink file://\S+: sent (\d+) records, dropped 0", log).group(1))
    assert sent == sum(p[2] for p in d.polls()) > 0, "every polled record reached the sink"
