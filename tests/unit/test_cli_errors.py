"""The CLI's side of the error tree: a user error is one line and its class's exit code, a bug
is a traceback and 70 (errors.py documents the codes)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from xtcp_uring.app import cli
from xtcp_uring.errors import ConfigError, InputError, InternalError, UserError, XtcpError
from xtcp_uring.wire.filter import FilterError
from xtcp_uring.wire.pcap import PcapError
from xtcp_uring.wire.request import RequestError


def test_input_errors_of_the_wire_are_user_errors():
    for cls in (RequestError, FilterError, PcapError):
        assert issubclass(cls, InputError) and issubclass(cls, UserError) and not issubclass(cls, InternalError)
    assert not issubclass(InternalError, UserError) and issubclass(InternalError, XtcpError)


def test_a_bad_capture_is_one_line_and_exit_64(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a pcap file at all, long enough to read a header")
    r = subprocess.run([sys.executable, "-m", "xtcp_uring", "decode", str(bad)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 64 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"xtcp_uring: {bad}: at byte offset 0") and len(r.stderr.splitlines()) == 1


def test_a_bad_number_in_an_xtcp_variable_names_the_variable():
    r = subprocess.run([sys.executable, "-m", "xtcp_uring", "--once"], capture_output=True, text=True, timeout=60,
                       env={"XTCP_SAMPLE": "every-other", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 64 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr == "xtcp_uring: XTCP_SAMPLE='every-other': want an integer\n"


# A bug cannot be produced on demand, so these two replace a command by one that raises.
@pytest.mark.parametrize("exc", [InternalError("the two encoder walks disagree"), ValueError("a bug's ValueError")])
def test_a_bug_prints_its_traceback_and_exits_70(monkeypatch, capsys, tmp_path, exc):
    def broken(args):
        raise exc

    monkeypatch.setattr(cli, "cmd_decode", broken)
    assert cli.main(["decode", str(tmp_path / "any.pcap")]) == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and str(exc) in err and "internal error" in err


def test_a_user_error_raised_by_a_command_is_one_line(monkeypatch, capsys, tmp_path):
    def refused(args):
        raise ConfigError("--format banana: choose jsonl, pb or pblist")

    monkeypatch.setattr(cli, "cmd_decode", refused)
    assert cli.main(["decode", str(tmp_path / "any.pcap")]) == 64
    assert capsys.readouterr().err == "xtcp_uring: --format banana: choose jsonl, pb or pblist\n"


@pytest.mark.parametrize("argv, message", [
    (["--close-events-rcvbuf", "lots", "--metrics-listen", "off"],
     "xtcp_uring: --close-events-rcvbuf 'lots': want a byte count such as 4M\n"),
    (["--close-events-rcvbuf", "1k", "--metrics-listen", "off"],
     "xtcp_uring: --close-events-rcvbuf '1k': between 4K and 2G\n"),
    (["closes", "--rcvbuf", "3G"], "xtcp_uring: --rcvbuf '3G': between 4K and 2G\n"),
    (["closes", "--flush", "0"], "xtcp_uring: --rescan and --flush are seconds > 0\n"),
])
def test_a_bad_close_events_flag_is_one_line_and_exit_64(tmp_path, argv, message):
    # Checked before any namespace, socket or store is opened (the data dir stays empty).
    r = subprocess.run([sys.executable, "-m", "xtcp_uring", *argv], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert (r.returncode, r.stderr) == (64, message)
    assert list(tmp_path.iterdir()) == []
