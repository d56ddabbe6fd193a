"""What each URL does: read through the Queuetopia, render a page, or act on a job.

Routes know nothing of HTTP plumbing: each takes a Request and returns a Response.
Reads go through the public API (``queues``, ``get_job``, ``list_jobs``,
``count_jobs``, ``retry_job``, ``cancel_job``) and the backend's bounded
dashboard reads (``queue_page``, ``pending_jobs``, ``job_activity``).
"""

from __future__ import annotations

import dataclasses
import hmac
import re
import time
from typing import Callable
from urllib.parse import parse_qs, unquote

from ..errors import JobNotFoundError, JobStateError
from ..queuetopia import Queuetopia
from . import views
from .assets import CSS, JS

PAGE_SIZE = 50  # queues per overview page
QUEUE_JOBS = 100  # unfinished jobs shown on a queue page (in run order)
QUEUE_HISTORY = 30  # finished jobs shown on a queue page
ACTIVITY_WINDOW = 3600.0  # seconds of the chart
ACTIVITY_BUCKET = 60.0  # seconds per bar
MAX_SEARCH = 200  # characters
MAX_PAGE = 10**6
MAX_JOB_ID = 2**63 - 1

_JOB = re.compile(r"/jobs/([0-9]{1,19})")
_ACTION = re.compile(r"/jobs/([0-9]{1,19})/(retry|cancel)")


@dataclasses.dataclass(frozen=True)
class Request:
    """One request, parsed: its method, path (still %-quoted) and query arguments."""

    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def arg(self, name: str) -> str:
        """The first value of query argument ``name`` ('' if absent)."""
        values = self.query.get(name)
        return values[0] if values else ""


@dataclasses.dataclass(frozen=True)
class Response:
    """What to send: a status, a body and its type, and extra headers."""

    status: int
    body: str
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


class BadRequest(Exception):
    """Input the dashboard cannot use: a 400 page with this message."""


class NotFound(Exception):
    """Nothing at this path, or no such job or queue: a 404 page with this message."""


class Refused(Exception):
    """An action that is not allowed here (read-only, bad CSRF token): a 403 page."""


@dataclasses.dataclass
class Routes:
    """The pages and actions of one dashboard over one Queuetopia."""

    q: Queuetopia
    title: str
    csrf: str
    read_only: bool
    refresh: float
    clock: Callable[[], float] = time.time

    def context(self, notice: str = "") -> views.Context:
        """The rendering context as of now."""
        return views.Context(title=self.title, now=self.clock(), csrf=self.csrf,
                             read_only=self.read_only, refresh=self.refresh, notice=notice)

    def handle(self, request: Request) -> Response:
        """Dispatch by method and path; raises BadRequest, NotFound or Refused."""
        path = request.path
        if request.method == "POST":
            match = _ACTION.fullmatch(path)
            if match is None:
                raise NotFound("nothing to post to here")
            return self.act(request, int(match.group(1)), match.group(2))
        if path == "/":
            return self.overview(request)
        if path == "/static/dashboard.css":
            return Response(200, CSS, "text/css; charset=utf-8")
        if path == "/static/dashboard.js":
            return Response(200, JS, "text/javascript; charset=utf-8")
        if path.startswith("/queues/") and path.count("/") == 2 and len(path) > len("/queues/"):
            try:
                name = unquote(path[len("/queues/"):], errors="strict")
            except UnicodeDecodeError:
                raise BadRequest("the queue name in the path is not UTF-8") from None
            return self.queue(request, name)
        match = _JOB.fullmatch(path)
        if match is not None:
            return self.job(request, int(match.group(1)))
        raise NotFound(f"no page at {path}")

    # -- pages ------------------------------------------------------------------------

    def overview(self, request: Request) -> Response:
        """Counts, the last hour's chart and a page of queues (failing first)."""
        search = request.arg("q").strip()
        if len(search) > MAX_SEARCH:
            raise BadRequest(f"the search is longer than {MAX_SEARCH} characters")
        only = request.arg("only") or None
        if only not in (None, "failing", "running"):
            raise BadRequest("only= takes 'failing' or 'running'")
        number = _page_number(request.arg("page"))
        ctx = self.context(_notice(request))
        backend, scope = self.q.backend, self.q.scope
        counts = self.q.count_jobs()
        page = backend.queue_page(scope, ctx.now, search=search or None, only=only,
                                  limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
        # Whole minutes, the last one still running: bars line up with the clock.
        since = (ctx.now // ACTIVITY_BUCKET + 1) * ACTIVITY_BUCKET - ACTIVITY_WINDOW
        activity = backend.job_activity(scope, ctx.now, since=since, bucket=ACTIVITY_BUCKET)
        return Response(200, views.overview(ctx, counts, page, activity, search=search,
                                            only=only, page_number=number,
                                            page_size=PAGE_SIZE))

    def queue(self, request: Request, name: str) -> Response:
        """One queue: status, jobs in run order with the head marked, recent history."""
        statuses = self.q.queues(name)
        if not statuses:
            raise NotFound(f"no queue named {name!r} in scope {self.q.scope!r}")
        ctx = self.context(_notice(request))
        pending = self.q.backend.pending_jobs(self.q.scope, name, ctx.now, limit=QUEUE_JOBS)
        history = self.q.list_jobs(queue=name, limit=QUEUE_HISTORY)
        return Response(200, views.queue_page(ctx, statuses[0], pending, history,
                                              limit=QUEUE_JOBS))

    def job(self, request: Request, job_id: int) -> Response:
        """One job: fields, params, errors and (unless read-only) its actions."""
        job = self.q.get_job(job_id) if 0 < job_id <= MAX_JOB_ID else None
        if job is None:
            raise NotFound(f"no job {job_id} in scope {self.q.scope!r}")
        return Response(200, views.job_page(self.context(_notice(request)), job))

    # -- actions ----------------------------------------------------------------------

    def act(self, request: Request, job_id: int, action: str) -> Response:
        """Retry or cancel a job, then go back to its page (POST, redirect, GET)."""
        if self.read_only:
            raise Refused("this dashboard is read-only: retry and cancel are off")
        sent = (request.form.get("csrf") or [""])[0]
        if not _same(sent, self.csrf):
            raise Refused("the form's token is missing or stale: reload the page and try again")
        if not 0 < job_id <= MAX_JOB_ID:
            raise NotFound(f"no job {job_id}")
        try:
            if action == "retry":
                self.q.retry_job(job_id)
            else:
                self.q.cancel_job(job_id)
        except JobNotFoundError:
            raise NotFound(f"no job {job_id} in scope {self.q.scope!r}") from None
        except JobStateError as exc:
            return Response(409, views.error_page(self.context(), 409, "Not possible", str(exc)))
        done = "retried" if action == "retry" else "cancelled"
        return Response(303, "", headers=(("Location", f"/jobs/{job_id}?done={done}"),))


def _page_number(text: str) -> int:
    if not text:
        return 1
    if not text.isdigit() or not 0 < int(text) <= MAX_PAGE:
        raise BadRequest(f"page= takes a number from 1 to {MAX_PAGE:,}")
    return int(text)


def _notice(request: Request) -> str:
    return {"retried": "Retried: the job is runnable now.",
            "cancelled": "Cancelled: its queue moves on."}.get(request.arg("done"), "")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def parse_query(text: str) -> dict[str, list[str]]:
    """Query or form arguments; malformed ones are a BadRequest."""
    try:
        return parse_qs(text, keep_blank_values=True, strict_parsing=False,
                        errors="strict", max_num_fields=20)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed arguments ({exc})") from None
