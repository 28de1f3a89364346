"""The house rules of the package, read from its imports (ast, nothing imported or run).

Rooms are stacked along the data flow; a module may import its own room and the rooms below
it, never above (docs/architecture.md draws the same stack):

    app                      the program's faces: options, cli, daemon, metrics, logs
    view                     the dashboard: bound filters, chart statements, its HTTP server
    sinks, output, tables    where batches go (tables: the formats for people)
    poller, emit             reconcile → dump → batch; which records a batch keeps
    namespaces, enrich,      which namespaces, entered how; what we know about them
      privileges
    backends, closes         io_uring and plain-socket dumps; close-event subscriptions
    records, schema,         the batch, its schema (and each field's unit), its framings,
      schema_units,          short field names, the table and store
      framing, fields,
      batch_views, clickhouse
    native                   the only door to the C extension
    wire                     bytes only: netlink, requests, filters, pcap
    errors                   the error tree, imported by all
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xtcp_uring"
if not PACKAGE.is_dir():  # the tests may sit one level deeper (tests/unit/)
    PACKAGE = Path(__file__).resolve().parents[2] / "xtcp_uring"

LAYERS = [
    {"errors", "_version", "__init__", "__main__"},
    {"wire"},
    {"native"},
    {"schema", "schema_units", "records", "batch_views", "framing", "fields", "clickhouse"},
    {"backends", "closes"},
    {"namespaces", "enrich", "privileges"},
    {"poller", "emit"},
    {"sinks", "output", "tables", "listen"},
    {"view"},
    {"app"},
]
LAYER = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def room_of(module: str) -> str:
    """``xtcp_uring.wire.request`` -> ``wire``; ``xtcp_uring`` itself -> ``__init__``."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] == "__version__":  # `from .. import __version__`
        return "__init__"
    return parts[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    return imports_in(module_name(path), path.name == "__init__.py", path.read_text())


def imports_in(name: str, is_package: bool, source: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every xtcp_uring import in a module's source, lazy ones too."""
    package = name if is_package else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "xtcp_uring"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "xtcp_uring":
                continue
            if node.module is None or target == "xtcp_uring":  # `from .. import native, records`
                out += [(node.lineno, f"{target}.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, target))
    return out


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_room_has_a_layer():
    rooms = {room_of(module_name(p)) for p in SOURCES}
    assert rooms <= set(LAYER), f"rooms without a layer in this test: {sorted(rooms - set(LAYER))}"


def test_only_native_imports_the_extension():
    offenders = [f"{p.relative_to(PACKAGE)}:{line}" for p in SOURCES for line, mod in imports(p)
                 if mod == "xtcp_uring._native" and room_of(module_name(p)) != "native"]
    assert offenders == []


def test_nothing_outside_native_touches_cdata_calls():
    """``ffi``/``lib`` stay inside native/: elsewhere only Python values cross (tests of the C
    API excepted)."""
    offenders = []
    for p in SOURCES:
        if room_of(module_name(p)) == "native":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("native"):
                offenders += [f"{p.name}:{node.lineno}" for a in node.names if a.name in ("ffi", "lib")]
            if isinstance(node, ast.Attribute) and node.attr in ("ffi", "lib") and \
                    isinstance(node.value, ast.Name) and node.value.id == "native":
                offenders.append(f"{p.name}:{node.lineno}")
    assert offenders == []


def test_no_import_points_up_the_stack():
    upward = []
    for p in SOURCES:
        here = room_of(module_name(p))
        if here in ("__init__", "__main__"):
            continue  # the package's face re-exports (lazily) and starts the CLI
        for line, mod in imports(p):
            there = room_of(mod)
            if there == "_native":
                continue  # the test above
            if LAYER[there] > LAYER[here]:
                upward.append(f"{p.relative_to(PACKAGE)}:{line} ({here}) imports {mod} ({there})")
    assert upward == []


def test_wire_needs_nothing_but_itself_and_errors():
    for p in (PACKAGE / "wire").glob("*.py"):
        assert {room_of(mod) for _, mod in imports(p)} <= {"wire", "errors"}, p.name


def test_the_library_never_sees_the_app_or_argparse():
    for p in SOURCES:
        if room_of(module_name(p)) in ("app", "__main__"):
            continue
        assert not any(room_of(mod) == "app" for _, mod in imports(p)), p.name
        tree = ast.parse(p.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert "argparse" not in names, f"{p.name} imports argparse: flags belong to app/options.py"


@pytest.mark.parametrize("source, expected", [
    ("from .. import native, records\n", {"xtcp_uring.native", "xtcp_uring.records"}),
    ("from ..native.ring import Ring\n", {"xtcp_uring.native.ring"}),
    ("from . import DumpJob\n", {"xtcp_uring.backends.DumpJob"}),
    ("def f():\n    from ..app import options\n", {"xtcp_uring.app"}),
    ("import xtcp_uring._native\nimport os\n", {"xtcp_uring._native"}),
    ("from os import path\n", set()),
])
def test_the_import_reader_resolves_relative_and_lazy_imports(source, expected):
    # The rules above are only as good as this reader; a module of backends/ as the example.
    assert {mod for _, mod in imports_in("xtcp_uring.backends.uring", False, source)} == expected


def test_no_python_module_over_450_lines_without_a_reason():
    long = []
    for p in SOURCES:
        text = p.read_text()
        if text.count("\n") > 450 and "longer than 450 lines" not in text[:2000].lower():
            long.append(f"{p.relative_to(PACKAGE)}: {text.count(chr(10))} lines")
    assert long == []
