"""Every command in the README's shell blocks is run here, in order, as pasted, so none can rot.

Each line of a ```sh block is either run (the `xtcp-uring` commands, with `.venv` meaning this
checkout's venv, in a fresh directory) or named in NOT_RUN with the test that covers it
instead. A new command in the README that is neither fails this test. The one substitution
is SUBSTITUTE: a capture file the README calls capture.pcap is a golden capture here. The
metrics port is taken from XTCP_METRICS_LISTEN=off (other tests may hold 9108 meanwhile); the
command line itself is unchanged.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

from tests.golden import cases

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"

NOT_RUN = {  # command prefix -> where it is covered instead
    "make run": "tests/integration/test_make_run.py (what it installs; it then runs until stopped)",
    "make test": "this suite",
    ".venv/bin/xtcp-uring closes": "tests/integration/test_daemon_closes.py (a stream that runs until Ctrl-C)",
    ".venv/bin/xtcp-uring view": "tests/integration/test_view_cli.py (a server that runs until Ctrl-C)",
    "make run RUN_ARGS=": "tests/integration/test_view_cli.py (--ui-listen: the daemon serving the view)",
    "docker build": "tests/integration/test_containerfile.py (no image builder runs here)",
    "docker run": "tests/integration/test_containerfile.py (the image's default command, run outside)",
    ".venv/bin/python -m benchmarks --scenario big --rounds 10": "its flags are checked below; a run takes "
                                                                 "minutes with 100k sockets (make bench)",
}
# Files the README's commands read, as a reader would have them.
FILES = {"prefixes.csv": "10.0.0.0/8,64512,Example private\n192.0.2.0/24,64496,Documentation\n"}
SUBSTITUTE = {"capture.pcap": str(cases.testdata_root() / "6_8_12" / "6_8_12_tcp_10_sockets.pcap")}


def readme_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), re.S):
        pending = ""
        for line in block.splitlines():
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            line = (pending + line).strip()
            pending = ""
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def test_the_readme_uses_the_console_script():
    for cmd in readme_commands():
        assert not cmd.startswith(("python -m xtcp_uring", "python3 -m xtcp_uring")), cmd


def test_every_readme_command_runs(tmp_path):
    env = {**os.environ, "XTCP_METRICS_LISTEN": "off"}
    ran = []
    # An established connection, so the examples that look at established sockets have one.
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    try:
        _run_all(tmp_path, env, ran)
    finally:
        for s in (client, accepted, server):
            s.close()
    assert len(ran) >= 8
    assert (tmp_path / "sockets.csv").read_text().startswith("local,peer,rtt,bytes_acked\n")
    assert (tmp_path / "xtcp-data").is_dir()  # the daemon example stored there; the query example read it


def _run_all(tmp_path, env, ran):
    for name, text in FILES.items():
        (tmp_path / name).write_text(text)
    for cmd in readme_commands():
        covered = next((prefix for prefix in NOT_RUN if cmd.startswith(prefix)), None)
        if covered is not None:
            continue
        assert cmd.startswith(".venv/bin/xtcp-uring"), f"a README command no test runs: {cmd!r} (run it here or " \
                                                         "add it to NOT_RUN with the test that covers it)"
        line = f"{REPO}/{cmd}"
        for text, real in SUBSTITUTE.items():
            line = line.replace(text, real)
        r = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0 and "Traceback" not in r.stderr, (cmd, r.stderr[-2000:])
        assert r.stdout or r.stderr or ">" in cmd, cmd  # each says something (or writes the file it names)
        ran.append(cmd)


def test_the_benchmark_command_of_the_readme_parses():
    cmd = next(c for c in readme_commands() if c.startswith(".venv/bin/python -m benchmarks"))
    r = subprocess.run([str(REPO / ".venv/bin/python"), "-m", "benchmarks", "--help"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    for flag in re.findall(r"--[a-z-]+", cmd):
        assert flag in r.stdout, flag
    assert "big" in r.stdout
