"""Build xtcp_uring._native (cffi API mode) from csrc/ against liburing.

Only what Python calls is declared: the blocks between BEGIN CDEF / END CDEF in csrc/*.h and
csrc/generated/*.h (written by tools/gen_schema.py), plus every integer `#define XTCP_...` of
those headers, exported as constants whose values come from the C headers themselves.
csrc/*_internal.h are shared between .c files only and never reach cffi. XTCP_SANITIZE builds
with sanitizers (make fuzz).
"""

import os
import re
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"
# Declaration order matters to cffi: the record struct first, the API that uses it next.
HEADERS = ["generated/xtcp_record.h", "xtcp_native.h"]
_CDEF_RE = re.compile(r"/\* BEGIN CDEF[^\n]*\n(.*?)/\* END CDEF \*/", re.S)
_CONST_RE = re.compile(r"^#define (XTCP_[A-Z0-9_]+) +[-(0-9]", re.M)


def _headers():
    extra = sorted(p.name for p in CSRC.glob("*.h")
                   if p.name not in HEADERS and not p.name.endswith("_internal.h"))
    return HEADERS + extra


def cdef_text() -> str:
    parts = []
    for name in _headers():
        text = (CSRC / name).read_text()
        parts.extend(f"#define {c} ..." for c in _CONST_RE.findall(text))
        parts.extend(_CDEF_RE.findall(text))
    return "\n".join(parts)


ffibuilder = FFI()
ffibuilder.cdef(cdef_text())

_cflags = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"]
_ldflags = []
# XTCP_SANITIZE=1: ASan + UBSan. XTCP_SANITIZE=fuzz (with CC=clang): also libFuzzer coverage
# hooks, so atheris sees which C branches an input reached. XTCP_SANITIZE=thread: TSan (run
# with LD_PRELOAD=libtsan.so).
_sanitize = os.environ.get("XTCP_SANITIZE")
if _sanitize == "thread":  # ThreadSanitizer: the ring's decode thread against the caller
    _cflags += ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=thread"]
    _ldflags += ["-fsanitize=thread"]
elif _sanitize in ("1", "fuzz"):
    _checks = "address,undefined" + (",fuzzer-no-link" if _sanitize == "fuzz" else "")
    _cflags += ["-O1", "-g", "-fno-omit-frame-pointer", f"-fsanitize={_checks}", "-fno-sanitize-recover=undefined"]
    _ldflags += [f"-fsanitize={_checks}"]

ffibuilder.set_source(
    "xtcp_uring._native",
    "\n".join(f'#include "{h}"' for h in _headers()),
    # Relative to the checkout: setuptools refuses absolute source paths.
    sources=[str(p.relative_to(ROOT)) for p in sorted(CSRC.glob("*.c"))],
    include_dirs=[str(CSRC)],
    libraries=["uring"],
    extra_compile_args=_cflags,
    extra_link_args=_ldflags,
)

