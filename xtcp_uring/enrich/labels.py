"""Host labels: where this host is (``--location``) and the operator's own ``--label KEY=VALUE``
pairs, carried on every record, in ``/metrics`` and in the Kafka headers.

The encoding (one rule everywhere)
----------------------------------
* ``location`` (the record column of the same name, xtcp2's): the PoP or site, e.g. ``ams1``.
* ``--label KEY=VALUE``, repeatable (``XTCP_LABELS="k=v,k2=v2"``): the ``label`` column holds
  them all as ``k=v`` pairs joined by commas, sorted by key: ``rack=r12,role=edge``. In SQL:
  ``extractKeyValuePairs(label, '=', ',')['rack']``. A key is a Prometheus label name
  (``[a-zA-Z_][a-zA-Z0-9_]*``, not ``__``-prefixed, not ``hostname`` or ``location``); a value
  holds no ``,``, ``=`` nor control characters, so the text splits back exactly.
* ``--tag TEXT`` (``XTCP_TAG``): the ``tag`` column, free text (xtcp2's), e.g. a deployment id.
* ``/metrics``: ``xtcp_target_info{hostname=..., location=..., <each label key>=...} 1``.
* Kafka: headers ``location``, ``label`` and ``tag`` with the columns' text (when not empty),
  besides ``schema_version``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from ..errors import ConfigError

__all__ = ["HostLabels", "parse_labels"]

_KEY = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_RESERVED_KEYS = frozenset({"hostname", "location"})
_BAD_VALUE = re.compile(r"[,=\x00-\x1f\x7f]")
MAX_TEXT = 256  # per location, tag, label value: labels are for naming, not for payloads


def _check_text(what: str, value: str) -> str:
    if len(value) > MAX_TEXT:
        raise ConfigError(f"{what} is longer than {MAX_TEXT} characters")
    if re.search(r"[\x00-\x1f\x7f]", value):
        raise ConfigError(f"{what} {value!r} holds a control character")
    return value


def parse_labels(items: Iterable[str] | str | None) -> dict[str, str]:
    """``KEY=VALUE`` items (a list, or one comma-separated string as in ``XTCP_LABELS``) as a dict.

    Raises:
        ConfigError: an item without ``=``, a bad key or value, a key given twice.
    """
    if items is None:
        return {}
    if isinstance(items, str):
        items = items.split(",")
    out: dict[str, str] = {}
    for item in items:
        item = item.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq:
            raise ConfigError(f"--label {item!r}: expected KEY=VALUE")
        if not _KEY.match(key) or key.startswith("__") or key in _RESERVED_KEYS:
            raise ConfigError(f"--label {item!r}: the key must match [a-zA-Z_][a-zA-Z0-9_]*, not start with "
                              f"__, and not be {' or '.join(sorted(_RESERVED_KEYS))}")
        if _BAD_VALUE.search(value):
            raise ConfigError(f"--label {item!r}: a value cannot hold ',', '=' or control characters")
        _check_text(f"--label {key}", value)
        if key in out:
            raise ConfigError(f"--label {key} is given twice ({out[key]!r} and {value!r})")
        out[key] = value
    return out


@dataclass(frozen=True)
class HostLabels:
    """What this host says about itself on every record (see the module docstring)."""

    location: str = ""
    labels: tuple[tuple[str, str], ...] = ()  # sorted by key
    tag: str = ""

    @classmethod
    def build(cls, location: str | None = None, labels: Mapping[str, str] | Iterable[str] | str | None = None,
              tag: str | None = None) -> HostLabels:
        """Checked labels. Raises ConfigError for a value the rule above refuses."""
        if isinstance(labels, Mapping):
            pairs = parse_labels(f"{k}={v}" for k, v in labels.items())
        else:
            pairs = parse_labels(labels)
        return cls(_check_text("--location", (location or "").strip()), tuple(sorted(pairs.items())),
                   _check_text("--tag", (tag or "").strip()))

    @property
    def label(self) -> str:
        """The ``label`` column: ``k=v`` pairs, comma-joined, sorted by key."""
        return ",".join(f"{k}={v}" for k, v in self.labels)

    def record_fields(self) -> dict[str, str]:
        """The record columns these labels fill, for ``records.encode_labels``."""
        return {"location": self.location, "label": self.label, "tag": self.tag}

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        return [(name, value.encode()) for name, value in self.record_fields().items() if value]

    def target_info(self, hostname: str) -> dict[str, str]:
        """Label names and values of the ``xtcp_target_info`` series."""
        return {"hostname": hostname, "location": self.location, **dict(self.labels)}

    def register_target_info(self, registry, hostname: str):
        """Add ``xtcp_target_info{...} 1`` to a prometheus_client registry; returns the gauge."""
        from prometheus_client import Gauge

        info = self.target_info(hostname)
        gauge = Gauge("xtcp_target_info", "This host's labels: hostname, --location and each --label",
                      list(info), registry=registry)
        gauge.labels(**info).set(1)
        return gauge
