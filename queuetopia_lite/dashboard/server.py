"""The HTTP side: a standard-library threaded server, its checks, and its error pages.

Every request passes the same gate before any route runs: the Host header (a
loopback dashboard without a token answers only to loopback names, against DNS
rebinding), the access token when there is one (constant-time comparisons), and
for a POST its origin and its form. Reads run on a small pool of threads that
keep their database connections, so a refreshing browser costs no reconnects and
never more than ``READERS`` reads at once.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode, urlsplit

from ..errors import DatabaseError, InvalidJobError
from . import views
from .routes import BadRequest, NotFound, Refused, Request, Response, Routes, parse_query

log = logging.getLogger("queuetopia_lite.dashboard")

READERS = 2  # threads reading the database for pages
MAX_FORM = 4096  # bytes of a POST body
IDLE_TIMEOUT = 30.0  # seconds
COOKIE = "qtl_dashboard"
SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "
     "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
     "base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "::1"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a bind address or a Host header's name) is this machine only."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _token_digest(token: str) -> str:
    # The cookie holds a digest, not the token: any token fits a cookie, and a leaked
    # cookie jar does not show the token itself.
    return hashlib.sha256(b"queuetopia_lite dashboard\0" + token.encode()).hexdigest()


class DashboardServer(ThreadingHTTPServer):
    """The dashboard's HTTP server (``serve()`` starts one in a background thread).

    Attributes:
        url: where it listens, e.g. ``http://127.0.0.1:8765/``.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, routes: Routes, host: str, port: int, token: str | None) -> None:
        self.routes = routes
        self.token = token
        self.token_digest = _token_digest(token) if token else ""
        self.loopback = is_loopback(host)
        self.pool = concurrent.futures.ThreadPoolExecutor(
            READERS, thread_name_prefix="queuetopia-dashboard")
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        """The dashboard's address, for people."""
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}/"

    def server_close(self) -> None:
        """Close the socket and stop the reader threads."""
        super().server_close()
        self.pool.shutdown(wait=False, cancel_futures=True)


class Handler(BaseHTTPRequestHandler):
    """One request: the gate, then the route, then the response with its headers."""

    server: DashboardServer
    server_version = "queuetopia_lite-dashboard"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT  # an idle keep-alive connection frees its thread after this

    def do_GET(self) -> None:
        """Pages and static files."""
        self._serve("GET")

    def do_HEAD(self) -> None:
        """As GET, without the body."""
        self._serve("HEAD")

    def do_POST(self) -> None:
        """Retry and cancel."""
        self._serve("POST")

    def _refuse_method(self) -> None:
        self._send(Response(405, self._page(405, "Method not allowed",
                                            f"{self.command} is not used here"),
                            headers=(("Allow", "GET, HEAD, POST"),)))

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse_method

    def log_message(self, format: str, *args: Any) -> None:
        """Access lines go to the logger at DEBUG, not to stderr."""
        log.debug("%s " + format, self.address_string(), *args)

    # -- the gate -----------------------------------------------------------------------

    def _serve(self, method: str) -> None:
        try:
            response = self._respond(method)
        except BadRequest as exc:
            response = Response(400, self._page(400, "Bad request", str(exc)))
        except NotFound as exc:
            response = Response(404, self._page(404, "Not found", str(exc)))
        except _Unauthorized:
            response = Response(401, self._page(
                401, "Token needed", "this dashboard needs its token: open it once as "
                "/?token=THE_TOKEN (a cookie keeps it), or send 'Authorization: Bearer "
                "THE_TOKEN'"))
        except Refused as exc:
            response = Response(403, self._page(403, "Refused", str(exc)))
        except InvalidJobError as exc:
            response = Response(400, self._page(400, "Bad request", str(exc)))
        except DatabaseError as exc:
            response = Response(503, self._page(503, "The database cannot be read", str(exc)))
        except Exception:  # a page must never show a traceback; the log gets it
            log.exception("dashboard: %s %s failed", method, self.path)
            response = Response(500, self._page(500, "Internal error",
                                                "this page failed; the server log has details"))
        self._send(response, head=method == "HEAD")

    def _respond(self, method: str) -> Response:
        parts = urlsplit(self.path)
        if not parts.path.startswith("/") or parts.scheme or parts.netloc:
            raise BadRequest("a path must start with /")
        self._check_host()
        query = parse_query(parts.query)
        welcome = self._check_token(parts.path, query)
        if welcome is not None:
            return welcome
        form: dict[str, list[str]] = {}
        if method == "POST":
            form = self._read_form()
        request = Request("GET" if method == "HEAD" else method, parts.path, query, form)
        future = self.server.pool.submit(self.server.routes.handle, request)
        return future.result()

    def _check_host(self) -> None:
        # Without a token, a loopback dashboard is guarded only by being local: a page
        # elsewhere that rebinds its own name to 127.0.0.1 must not read it.
        if self.server.token or not self.server.loopback:
            return
        host = self.headers.get("Host", "")
        name = urlsplit("//" + host).hostname or ""
        if not is_loopback(name):
            raise Refused(f"this dashboard answers to 127.0.0.1 and localhost, not {host!r}")

    def _check_token(self, path: str, query: dict[str, list[str]]) -> Response | None:
        """None when the request may go on; a redirect that sets the cookie on a first visit."""
        token = self.server.token
        if not token:
            return None
        given = (query.get("token") or [""])[0]
        if given and hmac.compare_digest(given.encode(), token.encode()):
            rest = {k: v for k, v in query.items() if k != "token"}
            target = path + ("?" + urlencode(rest, doseq=True) if rest else "")
            cookie = (f"{COOKIE}={self.server.token_digest}; Path=/; HttpOnly; "
                      "SameSite=Strict")
            return Response(303, "", headers=(("Location", target), ("Set-Cookie", cookie)))
        auth = self.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer " and hmac.compare_digest(
                auth[7:].strip().encode(), token.encode()):
            return None
        if hmac.compare_digest(self._cookie().encode(), self.server.token_digest.encode()):
            return None
        raise _Unauthorized()

    def _cookie(self) -> str:
        for header in self.headers.get_all("Cookie") or []:
            for item in header.split(";"):
                name, _, value = item.strip().partition("=")
                if name == COOKIE:
                    return value
        return ""

    def _read_form(self) -> dict[str, list[str]]:
        origin = self.headers.get("Origin")
        if origin is not None and origin != "null":
            if urlsplit(origin).netloc != self.headers.get("Host", ""):
                raise Refused("a form from another site may not act here")
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise BadRequest("expected a form (application/x-www-form-urlencoded)")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise BadRequest("a POST needs a Content-Length") from None
        if not 0 <= length <= MAX_FORM:
            raise BadRequest(f"a form of at most {MAX_FORM} bytes is expected")
        body = self.rfile.read(length)
        try:
            return parse_query(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise BadRequest("the form is not UTF-8") from None

    # -- the response ---------------------------------------------------------------------

    def _page(self, status: int, heading: str, message: str) -> str:
        try:
            return views.error_page(self.server.routes.context(), status, heading, message)
        except Exception:  # rendering the error must not fail in turn
            log.exception("dashboard: error page failed")
            return f"<!DOCTYPE html><title>{status}</title><p>{views.e(message)}</p>"

    def _send(self, response: Response, *, head: bool = False) -> None:
        body = response.body.encode("utf-8")
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (*SECURITY_HEADERS, *response.headers):
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)


class _Unauthorized(Refused):
    """No valid token: 401, with a word on how to give one."""


def new_csrf_token() -> str:
    """A fresh per-process token for the dashboard's forms."""
    return secrets.token_urlsafe(24)


__all__ = ["DashboardServer", "is_loopback", "new_csrf_token"]
