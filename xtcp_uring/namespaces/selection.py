"""Which namespaces to poll: ``--namespaces`` as a matcher of namespace names."""

from __future__ import annotations

import fnmatch
import re
from typing import Sequence

from ..errors import ConfigError
from .model import HOST_NAME

__all__ = ["Selection"]

_GLOB_CHARS = frozenset("*?[")


class Selection:
    """Which namespaces to poll: ``"all"``, ``"host"``, or names/globs of namespace names.

    A string may hold several comma-separated patterns (``"web-*,host"``); a sequence of
    patterns works too. Patterns match the ``name`` label with ``fnmatch`` (``pid:1234`` for
    namespaces without a bind mount).
    """

    def __init__(self, spec: str | Sequence[str] | Selection = "all"):
        if isinstance(spec, Selection):
            self.patterns: tuple[str, ...] = spec.patterns
        else:
            parts = spec.split(",") if isinstance(spec, str) else list(spec)
            self.patterns = tuple(p.strip() for p in parts if p and p.strip())
        if not self.patterns:
            raise ConfigError("namespace selection is empty: use 'all', 'host' or names/globs")
        self.all = "all" in self.patterns
        self.host_only = self.patterns == (HOST_NAME,)
        # Exact names are a set lookup; globs become one regex. Names repeat every reconcile,
        # so answers are cached (bounded: a host has at most thousands of namespaces).
        self._exact = frozenset(p for p in self.patterns if not _GLOB_CHARS.intersection(p))
        globs = [fnmatch.translate(p) for p in self.patterns if _GLOB_CHARS.intersection(p)]
        self._glob = re.compile("|".join(globs)) if globs else None
        self._cache: dict[str, bool] = {}

    def matches(self, name: str) -> bool:
        if self.all:
            return True
        hit = self._cache.get(name)
        if hit is None:
            hit = name in self._exact or (self._glob is not None and self._glob.match(name) is not None)
            if len(self._cache) > 65536:
                self._cache.clear()
            self._cache[name] = hit
        return hit

    def __repr__(self) -> str:
        return f"Selection({','.join(self.patterns)!r})"
