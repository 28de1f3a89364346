"""xTCPView: the dashboard of RTT, retransmits and sockets over the store.

``python -m xtcp_uring view`` serves it over the embedded store (through the daemon's
``query.sock`` while one runs) or a ClickHouse server (``--clickhouse URL``); the daemon serves
it itself with ``--ui-listen HOST:PORT``. Rooms: ``filters`` (the request's filters as bound
parameters), ``charts`` (one bounded statement per chart and the shape drawn), ``rollup`` (the
same charts over the store's rollups ``xtcp_1m``/``xtcp_1h``, where they answer), ``backends``
(where statements run, read-only), ``server`` (HTTP: the page, its static files, the JSON
endpoints). The page (``static/``) draws with uPlot, shipped in ``static/vendor`` with its
licence: no fetch from anywhere else, no build step.
"""

from __future__ import annotations

from . import charts, filters, rollup
from .backends import Backend, DaemonBackend, HttpBackend, StoreBackend, open_backend
from .server import DEFAULT_LISTEN, ViewServer

__all__ = ["Backend", "DaemonBackend", "DEFAULT_LISTEN", "HttpBackend", "StoreBackend", "ViewServer", "open_backend",
           "serve"]


async def serve(backend: Backend, host: str, port: int, flag: str = "--listen") -> ViewServer:
    """Start a ``ViewServer`` on ``host:port`` over ``backend``; ``await close()`` it when done."""
    server = ViewServer(backend, host, port, flag)
    await server.start()
    return server
