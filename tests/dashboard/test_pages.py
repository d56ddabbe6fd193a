"""The dashboard's pages over HTTP: what each route shows, escaped, and its bad input."""

from __future__ import annotations

import html
import re

import pytest

from queuetopia_lite import Job, JobState, Queuetopia

from .helpers import OWNER, XSS, fetch


def rows(page: str) -> list[str]:
    """The queue names of the overview's table, in order."""
    return [html.unescape(name) for name in re.findall(r'<tr class="q-\w+" data-queue="([^"]*)"',
                                                        page)]


def test_overview_counts_and_lists_blocked_first_then_running(base: str,
                                                              jobs: dict[str, Job]) -> None:
    reply = fetch(base + "/")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    page = reply.body
    assert rows(page) == ["mail/customer-7", "reports", "sms", "cleanup"]  # idle last
    blocked = page[page.index('data-queue="mail/customer-7"'):]
    blocked = blocked[:blocked.index("</tr>")]
    assert "blocked" in blocked and OWNER in blocked
    assert "RuntimeError: &lt;script&gt;alert(1)&lt;/script&gt;" in blocked
    assert f'href="/jobs/{jobs["blocked"].id}"' in blocked
    running = page[page.index('data-queue="reports"'):]
    assert "running" in running[:running.index("</tr>")]
    assert OWNER in running[:running.index("</tr>")]
    # counts by state: 1 retrying, 1 running, 1 done, 2 available
    assert re.search(r'class="count s-retrying"><span class="n">1<', page)
    assert re.search(r'class="count s-available"><span class="n">2<', page)
    assert re.search(r'class="count s-done"><span class="n">1<', page)
    assert '<svg class="chart"' in page and "1 done" in page


def test_search_filters_and_pages(base: str, q: Queuetopia) -> None:
    q.create_jobs([(f"bulk-{i:03}", "noop") for i in range(120)])
    first = fetch(base + "/?q=BULK").body
    assert rows(first) == [f"bulk-{i:03}" for i in range(50)]
    assert "page 1 of 3" in first and 'href="/?q=BULK&amp;page=2"' in first
    third = fetch(base + "/?q=BULK&page=3").body
    assert rows(third) == [f"bulk-{i:03}" for i in range(100, 120)]
    assert "page 3 of 3" in third and "next" not in third.split("page 3 of 3")[1][:30]
    assert rows(fetch(base + "/?only=failing").body) == ["mail/customer-7"]
    assert rows(fetch(base + "/?only=running").body) == ["reports"]
    assert rows(fetch(base + "/?q=no-such-queue").body) == []
    assert "nothing here" in fetch(base + "/?q=no-such-queue").body
    # the search box keeps its text, escaped
    assert 'value="&lt;x&gt;&quot;"' in fetch(base + "/?q=%3Cx%3E%22").body


def test_queue_page_lists_jobs_in_order_with_the_head_marked(base: str, q: Queuetopia,
                                                             jobs: dict[str, Job]) -> None:
    later = q.create_job("mail/customer-7", "send", {"n": 3})
    page = fetch(base + "/queues/mail%2Fcustomer-7").body
    order = [int(n) for n in re.findall(r'<tr class="[^"]*" data-job="(\d+)"', page)]
    assert order[:3] == [jobs["blocked"].id, jobs["behind"].id, later.id]
    head = re.search(r'<tr class="is-head" data-job="(\d+)"', page)
    assert head is not None and int(head.group(1)) == jobs["blocked"].id
    assert "<h1>Queue mail/customer-7</h1>" in page
    # the running queue: its running head is listed first, marked
    reports = fetch(base + "/queues/reports").body
    assert f'class="is-head" data-job="{jobs["running"].id}"' in reports
    assert OWNER in reports
    # finished jobs are listed as history
    cleanup = fetch(base + "/queues/cleanup").body
    assert f'data-job="{jobs["done"].id}"' in cleanup.split("Finished recently")[1]


def test_queue_names_with_any_characters(base: str, q: Queuetopia) -> None:
    name = 'ünï/cödé ?#&"<>'
    q.create_job(name, "noop")
    overview = fetch(base + "/").body
    link = re.search(r'<a href="(/queues/[^"]+)">' + re.escape(html.escape(name)), overview)
    assert link is not None
    page = fetch(base + html.unescape(link.group(1)))
    assert page.status == 200 and f"<h1>Queue {html.escape(name)}</h1>" in page.body


def test_job_page_shows_params_error_and_times(base: str, jobs: dict[str, Job]) -> None:
    page = fetch(base + f"/jobs/{jobs['blocked'].id}").body
    assert f"<h1>Job #{jobs['blocked'].id}</h1>" in page
    assert "&quot;to&quot;: &quot;&lt;b&gt;ann@example.com&lt;/b&gt;&quot;" in page
    assert '<pre class="error">RuntimeError: &lt;script&gt;alert(1)&lt;/script&gt;</pre>' in page
    assert XSS not in page and "<b>ann" not in page
    assert "1 of 20" in page and OWNER in page
    assert re.search(r'<dt>next attempt</dt><dd><time datetime="[^"]+"', page)
    assert 'id="retry-button"' in page and 'id="cancel-button"' in page
    done = fetch(base + f"/jobs/{jobs['done'].id}").body
    assert 'id="retry-button"' not in done and 'id="cancel-button"' not in done
    running = fetch(base + f"/jobs/{jobs['running'].id}").body
    assert 'id="retry-button"' not in running and 'id="cancel-button"' in running


def test_static_files_and_security_headers(base: str) -> None:
    js = fetch(base + "/static/dashboard.js")
    assert js.status == 200 and js.headers["Content-Type"].startswith("text/javascript")
    css = fetch(base + "/static/dashboard.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    reply = fetch(base + "/")
    assert "script-src 'self'" in reply.headers["Content-Security-Policy"]
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Cache-Control"] == "no-store"
    assert "<script>" not in reply.body  # only <script src=...>: the CSP allows no inline


@pytest.mark.parametrize(("path", "status"), [
    ("/nope", 404), ("/jobs", 404), ("/jobs/", 404), ("/jobs/abc", 404), ("/jobs/0", 404),
    ("/jobs/999999", 404), ("/jobs/99999999999999999999", 404), ("/jobs/1/retry", 404),
    ("/queues/", 404), ("/queues/no-such-queue", 404), ("/queues/a/b", 404),
    ("/queues/%ff", 400), ("/static/../jobs/1", 404), ("/static/other.js", 404),
    ("/?page=0", 400), ("/?page=abc", 400), ("/?page=-1", 400), ("/?page=99999999", 400),
    ("/?only=everything", 400), ("/?q=" + "x" * 201, 400), ("/?page=2&page=x", 200),
    ("/?a=%ff", 400),
])
def test_bad_paths_and_arguments(base: str, path: str, status: int) -> None:
    reply = fetch(base + path)
    assert reply.status == status
    assert "Traceback" not in reply.body
    if status != 200:
        assert f'data-status="{status}"' in reply.body  # a readable page, not a bare code


def test_other_methods_are_refused_and_head_has_no_body(base: str) -> None:
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        assert fetch(base + "/", method=method).status == 405
    head = fetch(base + "/", method="HEAD")
    assert head.status == 200 and head.body == "" and int(head.headers["Content-Length"]) > 0


def test_a_broken_database_gives_a_readable_page(tmp_path: object, q: Queuetopia) -> None:
    from queuetopia_lite.dashboard import serve

    q.create_job("a", "noop")
    path = q.backend.location
    q.close()
    with open(path, "r+b") as f:  # the header and first pages: no longer a database
        f.write(b"this is not a database file at all" * 200)
    with serve(q, port=0) as server:
        try:
            reply = fetch(server.url)
            assert reply.status == 503
            assert "The database cannot be read" in reply.body and path in reply.body
            assert "Traceback" not in reply.body
        finally:
            server.shutdown()


def test_unchanged_states_after_reads(base: str, q: Queuetopia, jobs: dict[str, Job]) -> None:
    before = q.count_jobs()
    for path in ("/", "/queues/reports", f"/jobs/{jobs['blocked'].id}"):
        assert fetch(base + path).status == 200
    assert q.count_jobs() == before
    assert before[JobState.RETRYING] == 1


def test_every_page_on_postgres(request: pytest.FixtureRequest) -> None:
    from queuetopia_lite.dashboard import serve

    from .. import pgserver
    from .helpers import fill

    q = Queuetopia(pgserver.schema_url(pgserver.fresh_schema(request)))
    try:
        jobs = fill(q)
        with serve(q, port=0) as server:
            try:
                base = server.url.rstrip("/")
                overview = fetch(base + "/").body
                assert rows(overview) == ["mail/customer-7", "reports", "sms", "cleanup"]
                assert "RuntimeError: &lt;script&gt;alert(1)&lt;/script&gt;" in overview
                assert rows(fetch(base + "/?q=MAIL").body) == ["mail/customer-7"]
                queue = fetch(base + "/queues/mail%2Fcustomer-7").body
                assert f'class="is-head" data-job="{jobs["blocked"].id}"' in queue
                job = fetch(f"{base}/jobs/{jobs['blocked'].id}")
                assert job.status == 200 and XSS not in job.body
                assert fetch(base + "/jobs/999999").status == 404
            finally:
                server.shutdown()
    finally:
        q.close()


def test_pages_read_while_another_process_holds_the_write_lock(base: str, q: Queuetopia,
                                                               jobs: dict[str, Job]) -> None:
    import apsw

    writer = apsw.Connection(q.backend.location)
    writer.set_busy_timeout(0)
    writer.execute("BEGIN IMMEDIATE")  # the write lock, held for the whole test
    try:
        writer.execute("UPDATE qt_jobs SET error = 'uncommitted' WHERE id = ?",
                       (jobs["done"].id,))
        for path in ("/", "/?q=mail", "/queues/mail%2Fcustomer-7",
                     f"/jobs/{jobs['done'].id}"):
            reply = fetch(base + path)
            assert reply.status == 200, path
            assert "uncommitted" not in reply.body  # a snapshot of committed data
    finally:
        writer.execute("ROLLBACK")
        writer.close()
