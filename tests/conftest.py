"""Fixtures shared by every test directory. Keep this small; say what each fixture is for.

- ``@pytest.mark.root``: the test needs root (namespaces, setns). It is skipped only when
  not root; CI runs as root, so there these tests always run.
- ``CI=true`` (set by ``.ci/run``) turns every skip into a failure: a privileged test that
  skips in CI is a hidden failure. xfail is left alone.
- ``backend_options``: ``Poller`` keyword arguments for each dump backend, ids ``sockets``,
  ``io_uring``, ``io_uring+async``. Run a behaviour on all three, with plain sockets as the
  oracle (uvloop's mixin idea). An io_uring backend that cannot be imported fails, never skips.
- ``netns_farm``: a fresh ``tests/support/netns_farm.NetnsFarm`` (namespaces with known
  sockets), deleted after the test whatever happens. Implies root.

Layout: ``unit/`` (bytes and files only, no root), ``native/`` (the C extension directly),
``integration/`` (real namespaces, brokers, chDB), ``golden/`` (the captures, the ss-text
oracle and the struct oracle, imported as ``golden.*``), ``support/`` (helpers that are not
tests: ``netns_farm``, ``kafka_broker``, ``runc_farm``, ``tls_peer``, ``netlink_attacker``, and
for the dashboard ``view_daemon``, ``view_traffic``, ``browser``) and
``fuzz/`` (the atheris targets of ``make fuzz``; the suite replays their corpora).
``tests/``, ``tests/support`` and ``tests/fuzz`` are on ``sys.path`` (pyproject's pytest
``pythonpath``, and below for runs from elsewhere), so tests say ``from netns_farm import ...``.
"""

from __future__ import annotations

import os
import sys

import pytest

_TESTS = os.path.dirname(os.path.abspath(__file__))
for _path in (os.path.join(_TESTS, "fuzz"), os.path.join(_TESTS, "support"), _TESTS):
    if _path not in sys.path:
        sys.path.insert(0, _path)  # so tests can `import netns_farm`, `golden.cases`, `fuzz_ring`

from netns_farm import NetnsFarm, sweep_stale  # noqa: E402

IS_ROOT = os.geteuid() == 0
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_runtest_setup(item):
    if item.get_closest_marker("root") and not IS_ROOT:
        pytest.skip("needs root (network namespaces); CI runs as root")


def _fail_skip_in_ci(report) -> None:
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())  # a whole module skipped (importorskip at the top)


def pytest_sessionstart(session):
    if IS_ROOT:
        sweep_stale()  # namespaces of earlier runs that were killed before their cleanup


BACKENDS = {
    "sockets": {"use_uring": False},
    "io_uring": {"use_uring": True, "async_dumps": False},
    "io_uring+async": {"use_uring": True, "async_dumps": True},
    "io_uring+inline-decode": {"use_uring": True, "decode_thread": False},
}


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
def backend_options(request) -> dict:
    """Poller options selecting one backend; io_uring ones fail loudly if the ring is missing."""
    options = dict(BACKENDS[request.param])
    if options["use_uring"]:
        try:
            from xtcp_uring.backends.uring import UringBackend  # noqa: F401
        except ImportError as exc:
            pytest.fail(f"io_uring backend not importable: {exc}")
    return options


@pytest.fixture
def netns_farm():
    if not IS_ROOT:
        pytest.skip("needs root (network namespaces); CI runs as root")
    with NetnsFarm() as farm:
        yield farm
