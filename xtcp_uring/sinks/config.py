"""Sink configuration: the options every sink has, read from its URL's query and keywords.

Each sink's config subclasses ``SinkConfig`` (its ``from_url`` reads what is particular to its
scheme); values are converted to the field's type here, once, with errors that name the URL.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit

from ..errors import ConfigError
from .security import SECRET_OPTIONS, public_url

__all__ = ["SinkConfig", "parse_size", "split_url"]

_SIZE_SUFFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def split_url(url: str) -> SplitResult:
    """A sink URL's parts (``-`` is ``stdout:``): the one place a sink URL is split."""
    return urlsplit("stdout:" if url == "-" else url)


@dataclass(kw_only=True)
class SinkConfig:
    """Options every sink has; each sink's config subclasses this and adds its own.

    Any field can be given as a URL query parameter (``?queue_bytes=64M&retry_max_s=2``) or as
    a keyword to ``open_sink``; keywords win.
    """

    queue_bytes: int = 64 << 20  # bound of the queue of encoded payloads
    wait_s: float = 0.0  # how long send() waits for room before dropping the oldest
    retry_initial_s: float = 0.1
    retry_max_s: float = 5.0
    write_timeout_s: float = 30.0  # one connect or write attempt
    close_timeout_s: float = 10.0  # how long close() flushes before dropping what is left
    url: str = ""  # for logs and errors, password removed

    @classmethod
    def from_url(cls, url: str, **opts):
        """The config a sink URL (and keyword options) describe; the URL is split once, here
        or in ``open_sink``."""
        return cls.from_parts(url, split_url(url), opts)

    @classmethod
    def from_parts(cls, url: str, parts: SplitResult, opts: dict):
        """Subclasses read scheme, host and path from ``parts``, then call ``_build``."""
        raise NotImplementedError

    @classmethod
    def _build(cls, url: str, query: str, opts: dict, **fixed):
        """Make the config from the URL's fixed parts, its query string and keyword options."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        values = dict(fixed)
        given = dict(parse_qsl(query, keep_blank_values=True))
        given.update(opts)
        for key, raw in given.items():
            if key not in fields or key == "url" or key in fixed:
                known = sorted(n for n in fields if n != "url" and n not in fixed)
                raise ConfigError(f"{_public_url(url)}: unknown option {key!r}; known: {', '.join(known)}")
            values[key] = _convert(key, raw, hints[key], url)
        values["url"] = _public_url(url)
        config = cls(**values)
        config.validate()
        return config

    def cleartext_credentials(self) -> list[str]:
        """Hosts this sink would send credentials to without TLS, off this machine; the daemon
        refuses such a sink unless --allow-insecure."""
        return []

    def validate(self) -> None:
        if self.queue_bytes <= 0:
            raise ConfigError(f"{self.url}: queue_bytes must be positive")
        if self.retry_initial_s <= 0 or self.retry_max_s < self.retry_initial_s:
            raise ConfigError(f"{self.url}: need 0 < retry_initial_s <= retry_max_s")


def _convert(key: str, raw: Any, hint: Any, url: str):
    want = {t for t in typing.get_args(hint)} or {hint}
    want.discard(type(None))
    if not isinstance(raw, str):
        # A keyword option, already typed by the caller (acks=1 for a str field is fine too).
        return str(raw) if want == {str} and isinstance(raw, int) else raw
    try:
        if raw.lower() in ("", "none") and type(None) in typing.get_args(hint):
            return None
        if bool in want:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if int in want:
            return parse_size(raw) if key.endswith("_bytes") or key.endswith("_size") else int(raw)
        if float in want:
            return float(raw)
        return raw
    except ValueError:
        shown = "" if key in SECRET_OPTIONS else f" {raw!r}"
        raise ConfigError(f"{_public_url(url)}: bad value{shown} for {key}") from None


def parse_size(raw: str) -> int:
    """A byte count with an optional k/M/G suffix (powers of 1024): "64M" is 67108864.

    Raises:
        ValueError: not a number.
    """
    suffix = raw[-1:].lower()
    if suffix in _SIZE_SUFFIXES:
        return int(float(raw[:-1]) * _SIZE_SUFFIXES[suffix])
    return int(raw)


def _public_url(url: str) -> str:
    return public_url(url)
