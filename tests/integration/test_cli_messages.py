"""What a new user sees when something is off: one line, a documented exit code, no traceback.

Real processes, real namespaces (`ip netns add`), a real unprivileged user (setpriv to nobody),
a real refused Kafka port. The one fault made up is a missing optional module (it cannot be
uninstalled from the shared venv for one test): a `sys.modules` entry of None makes the import
fail exactly as a module that is not installed does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from xtcp_uring.app.helptext import EXIT_CODES

ROOT = Path(__file__).resolve().parents[2]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def xtcp(*args, prefix=(), env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "xtcp_uring", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd="/tmp")


@pytest.fixture
def two_namespaces():
    names = [f"p16-{uuid.uuid4().hex[:6]}-{i}" for i in range(2)]
    for n in names:
        subprocess.run(["ip", "netns", "add", n], check=True)
    yield names
    for n in names:
        subprocess.run(["ip", "netns", "delete", n], check=False)


@pytest.mark.root
def test_a_selection_matching_nothing_names_what_exists_and_exits_66(two_namespaces):
    r = xtcp("--once", "--namespaces", "nosuch-*", "--format", "jsonl")
    assert r.returncode == 66 and r.stdout == "" and "Traceback" not in r.stderr, r.stderr
    [line] = [ln for ln in r.stderr.splitlines()]
    assert line.startswith("xtcp_uring: --namespaces nosuch-* matched no namespace; found ")
    assert "host" in line and two_namespaces[0] in line or " more" in line
    r = xtcp("namespaces", "--namespaces", "nosuch")
    assert r.returncode == 66 and "matched no namespace" in r.stderr and len(r.stderr.splitlines()) == 1


@pytest.mark.root
def test_without_privilege_one_summary_line_not_one_per_namespace(two_namespaces):
    r = xtcp("--once", "--namespaces", "all", "--format", "jsonl", prefix=NOBODY)
    assert r.returncode == 0, r.stderr
    warnings = r.stderr.splitlines()
    assert len(warnings) == 1, r.stderr
    m = re.search(r"WARNING xtcp_uring: polling (\d+) of (\d+) namespaces; (\d+) need CAP_SYS_ADMIN \(setns\)",
                  warnings[0])
    assert m, warnings[0]
    polled, total, need = map(int, m.groups())
    assert polled >= 1 and need >= 2 and total == polled + need
    assert "run as root, or grant those capabilities" in warnings[0]
    # What it did poll is there: its own namespace's sockets.
    assert r.stdout and all(json.loads(line) for line in r.stdout.splitlines()[:3])


def test_the_pid_1_note_is_not_printed_on_every_command():
    r = xtcp("--once", "--namespaces", "host", "--format", "jsonl")
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_json_logs_every_line_parses_library_lines_included():
    # Port 1 refuses: aiokafka logs its own error, our sink its retries, the CLI its verdict.
    r = xtcp("--once", "--namespaces", "host", "--log-format", "json", "--sink", "kafka://127.0.0.1:1/t",
             timeout=180)
    assert r.returncode == 75, r.stderr
    objs = [json.loads(line) for line in r.stderr.splitlines()]  # every line, or this raises
    loggers = {o["logger"] for o in objs}
    assert "aiokafka" in loggers and "xtcp_uring.daemon" in loggers
    assert objs[-1]["level"] == "error" and objs[-1]["msg"].startswith("nothing was delivered to kafka://")
    # aiokafka says "Unable connect" on every retry: shown once per window.
    assert sum(1 for o in objs if o["logger"] == "aiokafka" and "Unable connect" in o["msg"]) == 1


def test_a_poll_of_few_sockets_is_not_zero_megabytes(tmp_path):
    r = xtcp("--once", "--namespaces", "host", "--filter", "sport 1", "--sink", f"file://{tmp_path}/x.pb")
    assert r.returncode == 0, r.stderr
    [poll] = [ln for ln in r.stderr.splitlines() if ": poll 1:" in ln]
    assert " MB" not in poll and re.search(r", \d+ B, ", poll), poll


def test_a_missing_extra_names_the_pip_install(tmp_path):
    code = ("import sys; sys.modules['prometheus_client'] = None\n"  # as if not installed (see module doc)
            "from xtcp_uring.app.cli import main; sys.exit(main(['--metrics-listen', '127.0.0.1:0', "
            f"'--data-dir', '{tmp_path}', '--max-polls', '1']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 64 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.splitlines()[-1] == (
        "xtcp_uring: prometheus_client is not installed, and this command needs it: pip install "
        "'xtcp_uring[metrics]' (in a checkout: .venv/bin/pip install -e '.[metrics]', or `make run`, which "
        "installs what the default command needs)")


def test_user_mistakes_of_the_issue_have_their_codes(tmp_path):
    r = xtcp("decode", "/tmp")  # a directory is not a capture: missing input, not a permission
    assert r.returncode == 66 and r.stderr == "xtcp_uring: Is a directory: /tmp\n"
    store = tmp_path / "store"
    assert xtcp("--once", "--namespaces", "host", "--sink", f"chdb://{store}").returncode == 0
    r = xtcp("query", "SELECT nosuch FROM xtcp_records", "--data-dir", str(store))
    assert r.returncode == 64 and "UNKNOWN_IDENTIFIER" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr


def test_exit_codes_are_in_help_and_readme():
    help_text = xtcp("--help").stdout
    readme = (ROOT / "README.md").read_text()
    for code, meaning in EXIT_CODES:
        assert re.search(rf"^\s+{code}\s+{re.escape(meaning[:40])}", help_text, re.M), code
        assert f"| {code} | {meaning} |" in readme, code
    assert "XTCP_<FLAG>" in help_text


@pytest.mark.root
def test_the_daemon_without_privilege_says_it_once_not_every_poll(two_namespaces):
    r = xtcp("--namespaces", "all", "--interval", "0.2", "--max-polls", "4", "--metrics-listen", "off",
             "--sink", "-", prefix=NOBODY)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert sum(1 for ln in lines if "need CAP_SYS_ADMIN" in ln) == 1, r.stderr
    polls = [ln for ln in lines if re.search(r": poll \d+:", ln)]
    assert len(polls) == 4 and not any("dumps failed" in ln for ln in polls), polls
    assert all(": 1 namespaces," in ln for ln in polls), polls  # the one it could open


def test_repeats_are_held_back_and_counted():
    import logging

    from xtcp_uring.app.logs import RepeatFilter

    now = [0.0]
    f = RepeatFilter(window_s=60, clock=lambda: now[0])

    def rec(msg, *args, level=logging.WARNING):
        return logging.LogRecord("aiokafka", level, __file__, 1, msg, args, None)

    assert f.filter(rec("Unable connect to %s", "a"))
    assert not f.filter(rec("Unable connect to %s", "a")) and not f.filter(rec("Unable connect to %s", "a"))
    assert f.filter(rec("Unable connect to %s", "b"))  # other arguments: another line
    assert f.filter(rec("poll %d", 1, level=logging.INFO)) and f.filter(rec("poll %d", 1, level=logging.INFO))
    now[0] = 61.0
    again = rec("Unable connect to %s", "a")
    assert f.filter(again) and again.getMessage() == "Unable connect to a (repeated 2 more times in the last 60s)"
