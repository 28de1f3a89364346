"""The one table of golden fixtures: pcap captures and the ``ss`` text of the same dump.

Data lives in ``shared/testdata/xtcp2/<kernel>/`` beside the repository (override
with ``XTCP_TESTDATA=/path/to/xtcp2``). Naming, per kernel directory:

* ``<kernel>_tcp_<N>_sockets[_<variant>].pcap`` ↔ ``<kernel>_ss_tcp_info_a_<N>[_<variant>]``
* in ``6_6_44`` without the kernel prefix: ``tcp_100_sockets_bbr.pcap`` ↔
  ``ss_tcp_info_a_100_bbr``, plus ``ss_tcp_info_a_4.pcap`` ↔ ``ss_tcp_info_a_4``
* ``uname`` holds ``uname -a`` of the capturing VM (absent for 6_6_44, where the
  release comes from the directory name).

Each ss invocation sends one dump request per family (AF_INET, then AF_INET6),
each answered by messages ending in NLMSG_DONE. ``GoldenCase.ss_run`` says which
invocation in the pcap the ss text shows: split the pcap's responses after every
second NLMSG_DONE and take that index. Most captures hold exactly one
invocation; the 6_6_44 ``tcp_*`` captures hold three, and only the one named in
``_KNOWN`` matches the text (same cookies, inodes and every printed value).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "GoldenCase",
    "capture_files",
    "golden_cases",
    "ss_text_files",
    "testdata_root",
]

ENV_VAR = "XTCP_TESTDATA"

# Facts found by decoding every capture and matching it with its ss text by
# (cookie, inode) and then field by field; see the module docstring for ss_run.
_KNOWN: dict[str, dict[str, object]] = {
    "6_6_44-tcp_1000_sockets": {"ss_run": 1, "runs": 3},
    "6_6_44-tcp_100_sockets": {"ss_run": 2, "runs": 3},
    "6_6_44-tcp_100_sockets_bbr": {"ss_run": 1, "runs": 3},
    "6_6_44-tcp_100_sockets_dctcp": {"ss_run": 1, "runs": 3},
    "6_6_44-tcp_100_sockets_vegas": {"ss_run": 1, "runs": 3},
    "6_6_44-tcp_10_sockets": {
        "ss_run": None,
        "runs": 3,
        "problem": "ss text is from another session: only the 2 sshd listeners of its "
        "32 sockets appear in the pcap (different cookies/inodes)",
    },
}

_PAIRED_PCAP = re.compile(r"^(?P<prefix>(?:\d+_\d+_\d+_)?)tcp_(?P<n>\d+)_sockets(?P<variant>_\w+)?$")


@dataclass(frozen=True)
class GoldenCase:
    """One (capture, ss text) pair.

    Attributes:
        id: pytest id, ``<kernel dir>-<pcap stem without kernel prefix>``.
        kernel: directory name, e.g. ``6_6_44``.
        release: kernel release, e.g. ``6.6.44`` (from ``uname``, else the dir name).
        pcap: the nlmon capture.
        ss_text: the ``ss -tia`` text printed from (one of) its dumps.
        uname: ``uname -a`` text, or None when the directory has no ``uname``.
        ss_run: which ss invocation in the pcap the text shows (None: none does).
        runs: how many ss invocations the pcap holds.
        problem: why the pair cannot be compared, or None.
    """

    id: str
    kernel: str
    release: str
    pcap: Path
    ss_text: Path
    uname: str | None
    ss_run: int | None = 0
    runs: int = 1
    problem: str | None = None


def testdata_root() -> Path:
    """``$XTCP_TESTDATA`` if set, else ``<repo>/../shared/testdata/xtcp2``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared/testdata/xtcp2"


def _all_nul(path: Path) -> bool:
    data = path.read_bytes()
    return not data.strip(b"\0")


def _file_id(kernel: str, name: str) -> str:
    short = name[len(kernel) + 1 :] if name.startswith(kernel + "_") else name
    return f"{kernel}-{short}"


def _release(kernel: str, uname: str | None) -> str:
    if uname:
        fields = uname.split()
        if len(fields) >= 3 and fields[0] == "Linux":
            return fields[2]
    return kernel.replace("_", ".")


def _kernel_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        (d for d in root.iterdir() if d.is_dir() and re.fullmatch(r"\d+_\d+_\d+", d.name)),
        key=lambda d: tuple(int(x) for x in d.name.split("_")),
    )


def golden_cases(root: Path | None = None) -> list[GoldenCase]:
    """Every (pcap, ss text) pair under the test data, sorted by kernel then name."""
    root = testdata_root() if root is None else root
    cases = []
    for kdir in _kernel_dirs(root):
        kernel = kdir.name
        uname_path = kdir / "uname"
        uname = uname_path.read_text().strip() if uname_path.is_file() else None
        release = _release(kernel, uname)
        for pcap in sorted(kdir.glob("*.pcap")):
            stem = pcap.name[: -len(".pcap")]
            m = _PAIRED_PCAP.match(stem)
            if m:
                ss_name = f"{m['prefix']}ss_tcp_info_a_{m['n']}{m['variant'] or ''}"
            elif stem.startswith("ss_tcp_info_a_"):
                ss_name = stem
            else:
                continue
            ss_text = kdir / ss_name
            if not ss_text.is_file():
                continue
            case_id = _file_id(kernel, stem)
            known = _KNOWN.get(case_id, {})
            problems = [str(known["problem"])] if "problem" in known else []
            for label, path in (("pcap", pcap), ("ss text", ss_text)):
                if _all_nul(path):
                    problems.append(f"{label} {path.name} is all NUL bytes (truncated copy)")
            cases.append(
                GoldenCase(
                    id=case_id,
                    kernel=kernel,
                    release=release,
                    pcap=pcap,
                    ss_text=ss_text,
                    uname=uname,
                    ss_run=known.get("ss_run", 0),  # type: ignore[arg-type]
                    runs=int(known.get("runs", 1)),  # type: ignore[arg-type]
                    problem="; ".join(problems) or None,
                )
            )
    return cases


def ss_text_files(root: Path | None = None) -> list[tuple[str, Path, bool]]:
    """Every ss text file (paired or not): ``(id, path, usable)``; usable is False
    for files that are all NUL bytes."""
    root = testdata_root() if root is None else root
    out = []
    for kdir in _kernel_dirs(root):
        for path in sorted(kdir.glob("*ss_tcp_info_a_*")):
            if path.suffix == ".pcap":
                continue
            out.append((_file_id(kdir.name, path.name), path, not _all_nul(path)))
    return out


def capture_files(root: Path | None = None) -> list[tuple[str, Path, bool]]:
    """Every pcap under the test data: ``(id, path, usable)``."""
    root = testdata_root() if root is None else root
    out = []
    for kdir in _kernel_dirs(root):
        for path in sorted(kdir.glob("*.pcap")):
            out.append((_file_id(kdir.name, path.stem), path, not _all_nul(path)))
    return out
