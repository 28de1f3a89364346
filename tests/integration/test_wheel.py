"""The package as a user gets it: a wheel installed into a fresh venv, run from outside the
checkout. Catches what an editable install hides: a file read from the checkout (proto/,
examples/), package data left out of the wheel, a module that only imports with tests/ or
the repository root on sys.path.

The wheel is built once per session (``pip wheel . --no-deps --no-build-isolation``). The
runtime dependencies are installed with ``--no-index`` from ``build/wheelhouse``, filled once
per machine by ``pip download`` of the exact versions in this .venv (PyPI, through pip's own
cache), so the fresh venv runs what the suite was run with and later runs need no network.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import socket
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from golden import cases

REPO = Path(__file__).resolve().parents[2]
WHEELHOUSE = REPO / "build" / "wheelhouse"
PACKAGE_DATA = ["xtcp_flat_record.proto", "xtcp_records.sql", "rollups.sql", "asn_dictionary.sql"]


def _runtime_requirements(name: str = "xtcp_uring") -> dict[str, str]:
    """name -> installed version of every runtime dependency of ``name``, transitively."""
    found: dict[str, str] = {}
    todo = [name]
    while todo:
        for spec in importlib.metadata.requires(todo.pop()) or []:
            req = Requirement(spec)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue  # an extra (kafka, chdb...) or another platform's dependency
            key = req.name.lower().replace("_", "-")
            if key not in found:
                found[key] = importlib.metadata.version(req.name)
                todo.append(req.name)
    return found


def _have_wheel(name: str, version: str) -> bool:
    stem = name.replace("-", "_")
    return any(WHEELHOUSE.glob(f"{stem}-{version}-*.whl"))


def _clean_env() -> dict[str, str]:
    """This environment without anything pointing Python at the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO)))
    return env


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Path:
    """The python of a fresh venv with only the built wheel and its runtime dependencies."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-q", "-w", str(dist)],
                   cwd=REPO, check=True, capture_output=True, text=True)
    [wheel] = dist.glob("xtcp_uring-*.whl")
    missing = [f"{n}=={v}" for n, v in _runtime_requirements().items() if not _have_wheel(n, v)]
    if missing:
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--disable-pip-version-check", "-q", "-d", str(WHEELHOUSE), *missing],
                       check=True, capture_output=True, text=True)
    target = root / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    python = target / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--find-links", str(WHEELHOUSE),
                    "--disable-pip-version-check", "-q", str(wheel)],
                   check=True, capture_output=True, text=True, env=_clean_env())
    return python


def run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), *args], cwd=cwd, env=_clean_env(), capture_output=True,
                          text=True, timeout=120)


def test_installed_package_runs_from_its_own_files(installed, tmp_path):
    proc = run(installed, "-c", "import json, xtcp_uring, xtcp_uring.schema as s, xtcp_uring.clickhouse.ddl as d, "
               "xtcp_uring.enrich.asn as a; print(json.dumps([xtcp_uring.__file__, str(s.PROTO_PATH), "
               "str(d.DDL_PATH), str(d.ROLLUPS_PATH), str(a.DDL_PATH), len(s.socket_fields())]))", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    package, proto, ddl, rollups, asn_ddl, fields = json.loads(proc.stdout)
    venv_root = str(installed.parent.parent)
    for path in (package, proto, ddl, rollups, asn_ddl):
        assert path.startswith(venv_root) and not path.startswith(str(REPO)), path
        assert Path(path).exists(), path
    assert sorted(Path(p).name for p in (proto, ddl, rollups, asn_ddl)) == sorted(PACKAGE_DATA)
    assert fields > 100  # the .proto was found and parsed


def test_decode_a_capture_outside_the_checkout(installed, tmp_path):
    capture = cases.testdata_root() / "6_8_12" / "6_8_12_tcp_10_sockets.pcap"
    got = run(installed, "-m", "xtcp_uring", "decode", str(capture), cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    rows = [json.loads(line) for line in got.stdout.splitlines()]
    assert rows and all("inet_diag_msg_socket_cookie" in r for r in rows)
    # The same records as the checkout's own build decodes from the same file.
    ours = subprocess.run([sys.executable, "-m", "xtcp_uring", "decode", str(capture)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert ours.returncode == 0, ours.stderr
    assert got.stdout == ours.stdout


@pytest.mark.root
def test_once_polls_the_host_namespace(installed, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        got = run(installed, "-m", "xtcp_uring", "--once", "--namespaces", "host", cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    rows = [json.loads(line) for line in got.stdout.splitlines()]
    ours = [r for r in rows if r.get("inet_diag_msg_socket_source_port") == port]
    assert ours, f"our listener on port {port} is not among {len(rows)} records"
    assert ours[0]["inet_diag_msg_state"] == 10  # TCP_LISTEN


def test_the_dashboard_serves_its_page_and_vendored_chart_library_from_the_wheel(installed, tmp_path):
    # A ClickHouse URL makes `view` start without a store (the wheel has no chdb extra); the page
    # and uPlot come from the installed package's files, never fetched from anywhere at runtime.
    import urllib.request

    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    proc = subprocess.Popen([str(installed), "-m", "xtcp_uring", "view", "--clickhouse", "http://127.0.0.1:9/",
                             "--listen", f"127.0.0.1:{port}"], cwd=tmp_path, env=_clean_env(),
                            stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not lines or "xTCPView on" not in lines[-1]:
            lines.append(proc.stderr.readline())
            assert lines[-1], "view did not start: " + "".join(lines)
        static = REPO / "xtcp_uring" / "view" / "static"
        for path, local in (("/", static / "index.html"),
                            ("/static/vendor/uplot-1.6.32/uPlot.iife.min.js",
                             static / "vendor" / "uplot-1.6.32" / "uPlot.iife.min.js")):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
                assert r.status == 200 and r.read() == local.read_bytes(), path
    finally:
        proc.terminate()
        proc.wait(30)
