"""Logging set-up: plain text for people, one JSON object per line for log shippers.

One handler on the root logger, so the libraries' lines (aiokafka, asyncio, chDB's Python
side) and Python ``warnings`` come out in the same format as ours: with ``--log-format json``
every line on stderr parses as JSON. Libraries speak from WARNING up unless ``--log-level
debug``. The same warning repeated (same logger, template and arguments) is shown once per
``REPEAT_WINDOW_S``; the next one shown says how many were held back.
"""

from __future__ import annotations

import json
import logging
import sys
import time

REPEAT_WINDOW_S = 60.0
_OURS = "xtcp_uring"
_json_chosen = False  # --log-format json: the CLI's last line (an error) is JSON too


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        obj.update(getattr(record, "fields", {}))
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            obj["stack"] = self.formatStack(record.stack_info)
        return json.dumps(obj, separators=(",", ":"), default=str)


class RepeatFilter(logging.Filter):
    """Holds back a WARNING-or-worse line seen within the window; the next shown counts them."""

    def __init__(self, window_s: float = REPEAT_WINDOW_S, clock=time.monotonic):
        super().__init__()
        self.window_s, self._clock = window_s, clock
        self._seen: dict[tuple, list] = {}  # key -> [last shown at, held back since]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        try:
            key = (record.name, record.levelno, str(record.msg), repr(record.args))
        except Exception:  # an argument whose repr fails: never lose the line for it
            return True
        now = self._clock()
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self.window_s:
            entry[1] += 1
            return False
        held = entry[1] if entry is not None else 0
        if len(self._seen) > 4096:
            self._seen.clear()
        self._seen[key] = [now, 0]
        if held:
            record.msg = f"{record.msg} (repeated {held} more times in the last {self.window_s:.0f}s)"
        return True


def say_error(text: str) -> None:
    """The CLI's one line for a user error: ``xtcp_uring: text`` on stderr, or a JSON log line."""
    if _json_chosen:
        sys.stderr.write(JsonFormatter().format(logging.makeLogRecord(
            {"name": _OURS, "levelno": logging.ERROR, "levelname": "ERROR", "msg": text})) + "\n")
    else:
        sys.stderr.write(f"xtcp_uring: {text}\n")
    sys.stderr.flush()


def configure(level: str = "info", fmt: str = "text") -> None:
    global _json_chosen
    _json_chosen = fmt == "json"
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RepeatFilter())
    handler._xtcp_uring = True  # ours: replaced by the next configure(), others' handlers kept
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_xtcp_uring", False)] + [handler]
    root.setLevel(logging.DEBUG if level == "debug" else logging.WARNING)  # the libraries
    ours = logging.getLogger(_OURS)
    ours.handlers[:] = []
    ours.setLevel(level.upper())
    ours.propagate = True
    logging.captureWarnings(True)  # warnings.warn() from any library: through the same handler
