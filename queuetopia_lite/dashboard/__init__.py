"""A local web dashboard: find the blocked queue, read its error, retry or cancel.

``serve(q)`` starts it in a background thread of the calling process (for
applications that embed it) and returns the server; ``run(q)`` serves in the
foreground until SIGINT or SIGTERM (the ``dashboard`` command). Standard library
only: ``http.server``, server-rendered HTML and a little plain JavaScript.

Safety: it binds to 127.0.0.1 unless told otherwise, and any other address needs
a ``token`` (checked on every request, in constant time); retry and cancel are
POSTs carrying a per-process CSRF token; ``read_only=True`` hides and refuses them.
"""

from __future__ import annotations

import signal
import threading
import types
from typing import Any

from ..errors import InvalidJobError
from ..queuetopia import Queuetopia
from .routes import Routes
from .server import DashboardServer, is_loopback, new_csrf_token

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_REFRESH = 5.0  # seconds between the page's own refreshes
MIN_TOKEN = 8  # characters
SHUTDOWN_POLL = 0.05  # seconds: how soon shutdown() is noticed


def serve(q: Queuetopia, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          read_only: bool = False, token: str | None = None,
          refresh: float = DEFAULT_REFRESH) -> DashboardServer:
    """Start the dashboard for ``q`` in a daemon thread; return its server.

    Args:
        q: the Queuetopia to show (its scope only). No performer is needed.
        host: the address to bind; anything but a loopback address needs ``token``.
        port: the TCP port; 0 picks a free one (see ``server.url``).
        read_only: hide retry and cancel, and refuse their POSTs.
        token: a secret every request must carry: once as ``?token=`` (a cookie
            keeps it) or as ``Authorization: Bearer``. At least 8 characters.
        refresh: seconds between the pages' own refreshes (0: none).

    Stop it with ``server.shutdown(); server.server_close()``, or use it as a
    context manager (``with serve(q) as server: ...``).

    Raises:
        InvalidJobError: a non-loopback host without a token, a short token, a bad port.
        OSError: the address is taken or cannot be bound.
    """
    server = make_server(q, host=host, port=port, read_only=read_only, token=token,
                         refresh=refresh)
    thread = threading.Thread(target=server.serve_forever, args=(SHUTDOWN_POLL,),
                              name="queuetopia-dashboard", daemon=True)
    thread.start()
    return server


def run(q: Queuetopia, **options: Any) -> None:
    """Serve in the foreground (``serve``'s options) until SIGINT or SIGTERM."""
    serve_until_signal(make_server(q, **options))


def serve_until_signal(server: DashboardServer) -> None:
    """Serve ``server`` in this thread until SIGINT or SIGTERM, then close it."""
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, frame: types.FrameType | None) -> None:
            # shutdown() waits for serve_forever: ask for it from another thread.
            threading.Thread(target=server.shutdown, daemon=True).start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        server.serve_forever(SHUTDOWN_POLL)
    finally:
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def make_server(q: Queuetopia, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                read_only: bool = False, token: str | None = None,
                refresh: float = DEFAULT_REFRESH) -> DashboardServer:
    """The dashboard's server, bound but not serving yet (``serve`` and ``run`` use it)."""
    if token is not None and (len(token) < MIN_TOKEN or token != token.strip()):
        raise InvalidJobError("token", f"expected at least {MIN_TOKEN} characters, "
                              "without surrounding spaces")
    if not token and not is_loopback(host):
        raise InvalidJobError("token", f"binding {host!r} (not a loopback address) needs a "
                              "token: anyone who can reach it could retry and cancel jobs")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidJobError("port", f"expected 0..65535, got {port!r}")
    if not 0 <= refresh <= 3600:
        raise InvalidJobError("refresh", f"expected 0..3600 seconds, got {refresh!r}")
    routes = Routes(q, title=f"{q.backend.location} · scope {q.scope}", csrf=new_csrf_token(),
                    read_only=read_only, refresh=refresh)
    return DashboardServer(routes, host, port, token or None)


__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "DashboardServer", "make_server", "run", "serve",
           "serve_until_signal"]
