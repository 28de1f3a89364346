"""examples/Containerfile, linted: no image builder can run on this machine (a docker client
without a daemon, no buildah or podman, and no registry to pull python:3.11-slim from), so the
file is read instruction by instruction and what its image would run is run here instead.

What is checked: every COPY source exists; the install is not editable (the runtime stage has no
checkout); it installs the extras the default command needs (chdb: no --sink means the embedded
store; metrics: /metrics is served); the runtime stage has the liburing the extension links;
ENTRYPOINT is the package's console script; CMD parses with our flags, writes under the VOLUME;
and that same command, run here with chDB for one poll, stores records."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

from xtcp_uring.app.options import build_parser, sink_urls

REPO = Path(__file__).resolve().parents[2]
CONTAINERFILE = REPO / "examples" / "Containerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, argument text) with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for line in CONTAINERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list] = []
    for ins in instructions():
        if ins[0] == "FROM":
            result.append([])
        result[-1].append(ins)
    return result


def exec_form(text: str) -> list[str]:
    import json

    return json.loads(text)


def test_the_containerfile_lints():
    build, runtime = stages()
    for word, arg in build:
        if word == "COPY" and not arg.startswith("--from"):
            *sources, _ = arg.split()
            for src in sources:
                assert (REPO / src).exists(), f"COPY {src}: not in the checkout"
    [install] = [arg for word, arg in build if word == "RUN" and "pip install" in arg and "[" in arg]
    assert " -e " not in install, "an editable install needs the checkout at run time"
    extras = set(re.search(r'"\.\[([a-z,]+)\]"', install).group(1).split(","))
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert extras <= set(pyproject["optional-dependencies"])
    cmd = exec_form(dict(runtime)["CMD"])
    args = build_parser().parse_args(cmd)
    assert not args.sink and sink_urls(args)[0].startswith("chdb://") and "chdb" in extras  # the default store
    assert args.metrics_listen != "off" and "metrics" in extras
    volume = exec_form(dict(runtime)["VOLUME"])[0]
    assert args.data_dir.startswith(volume + "/")
    [entry] = exec_form(dict(runtime)["ENTRYPOINT"])
    assert Path(entry).name in pyproject["scripts"] and entry.startswith("/opt/xtcp/bin/")
    assert any(w == "COPY" and a.startswith("--from=build /opt/xtcp") for w, a in runtime)
    assert not any(w == "COPY" and "/src" in a for w, a in runtime)
    links = re.search(r"libraries=\[([^]]*)\]", (REPO / "cffi_build.py").read_text()).group(1)
    assert '"uring"' in links and "liburing2" in dict(runtime)["RUN"]


def test_the_images_default_command_stores_records(tmp_path):
    _, runtime = stages()
    cmd = exec_form(dict(runtime)["CMD"])
    with socket.socket() as s:  # a free port on loopback for /metrics (9108 may be taken here)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [a.replace("/var/lib/xtcp", str(tmp_path)).replace("0.0.0.0:9108", f"127.0.0.1:{port}") for a in cmd]
    script = Path(sys.executable).with_name(Path(exec_form(dict(runtime)["ENTRYPOINT"])[0]).name)
    r = subprocess.run([str(script), *cmd, "--max-polls", "1", "--namespaces", "host"], capture_output=True,
                       text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    q = subprocess.run([str(script), "query", "SELECT count() FROM xtcp.xtcp_records", "--format", "csv",
                        "--data-dir", str(tmp_path / "xtcp-data")], capture_output=True, text=True, timeout=120)
    assert q.returncode == 0 and int(q.stdout.split()[-1]) > 0, (q.stdout, q.stderr)  # a header, then the count


def test_the_readme_says_how_to_build_and_run_it():
    readme = (REPO / "README.md").read_text()
    comment = CONTAINERFILE.read_text()
    for text in (readme, comment):
        assert "docker build -f examples/Containerfile -t xtcp-uring ." in text
        assert "--pid=host" in text
