"""Helpers of the dashboard tests: an HTTP client without redirects, and a database to show."""

from __future__ import annotations

import dataclasses
import re
import time
import urllib.error
import urllib.request
from email.message import Message
from typing import Any

from queuetopia_lite import Job, Queuetopia
from queuetopia_lite.backend import Failure, Success

OWNER = "worker-host:4242"
XSS = "<script>alert(1)</script>"


@dataclasses.dataclass
class Reply:
    """One HTTP response, read whole."""

    status: int
    headers: Message
    body: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the tests look at redirects themselves


_OPENER = urllib.request.build_opener(_NoRedirect)


def fetch(url: str, *, method: str = "GET", data: bytes | None = None,
          headers: dict[str, str] | None = None) -> Reply:
    """Send one request; any status comes back as a Reply (never raised)."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=30) as response:
            return Reply(response.status, response.headers, response.read().decode())
    except urllib.error.HTTPError as exc:
        with exc:
            return Reply(exc.code, exc.headers, exc.read().decode())


def post(url: str, fields: dict[str, str], **headers: str) -> Reply:
    """POST a form."""
    body = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in fields.items()).encode()
    return fetch(url, method="POST", data=body, headers={
        "Content-Type": "application/x-www-form-urlencoded", **headers})


def csrf_of(page: str) -> str:
    """The CSRF token of the first form on a page."""
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None, "no form on the page"
    return match.group(1)


def fill(q: Queuetopia) -> dict[str, Job]:
    """Queues in every state: blocked (its error is a script tag), running, idle, waiting.

    Returns the interesting jobs by name: ``blocked`` (the failed head), ``behind`` (the
    job waiting behind it), ``running``, ``done``.
    """
    backend, scope = q.backend, q.scope
    blocked = q.create_job("mail/customer-7", "send", {"to": "<b>ann@example.com</b>"})
    behind = q.create_job("mail/customer-7", "send", {"to": "bob@example.com"})
    running = q.create_job("reports", "build", {"kind": "daily"})
    done = q.create_job("cleanup", "sweep", {})
    now = time.time()
    claims = {c.job.queue: c for c in backend.step(scope, now, claim=10, owner=OWNER,
                                                   lease=3600.0).claimed}
    backend.step(scope, now, outcomes=[
        Failure(claims["mail/customer-7"], f"RuntimeError: {XSS}", now + 3600.0),
        Success(claims["cleanup"])])
    q.create_job("sms", "send", {"to": "+1"})  # available: nobody runs it
    jobs = {"blocked": blocked, "behind": behind, "running": running, "done": done}
    return {name: q.get_job(job.id) or job for name, job in jobs.items()}
