"""A missing optional dependency, said as the ``pip install`` that adds it (exit 64, no traceback).

The extras are ``pyproject.toml``'s ``[project.optional-dependencies]``; ``make run`` installs
``chdb``, ``metrics`` and ``fast``, the ones the default command uses.
"""

from __future__ import annotations

# top-level module -> the extra that provides it
EXTRA_OF = {
    "aiokafka": "kafka", "cramjam": "kafka",
    "chdb": "chdb", "pyarrow": "chdb",
    "prometheus_client": "metrics",
    "uvloop": "fast",
    "pyroute2": "bench", "matplotlib": "bench",
    "pandas": "chdb",  # chdb requires pandas
}


def install_hint(extra: str) -> str:
    return (f"pip install 'xtcp_uring[{extra}]' (in a checkout: .venv/bin/pip install -e '.[{extra}]', "
            "or `make run`, which installs what the default command needs)")


def missing_extra_message(exc: ModuleNotFoundError) -> str | None:
    """The one line for an optional module that is not installed; None when it is not one of ours."""
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    return f"{top} is not installed, and this command needs it: {install_hint(extra)}"
