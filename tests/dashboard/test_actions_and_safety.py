"""Retry and cancel over HTTP (CSRF-checked POSTs), read-only mode, the token, the host check."""

from __future__ import annotations

import http.client
from typing import Iterator

import pytest

from queuetopia_lite import InvalidJobError, Job, JobState, Queuetopia
from queuetopia_lite.dashboard import DashboardServer, make_server, serve

from .helpers import csrf_of, fetch, post

TOKEN = "s3cret-token-for-tests"


def test_retry_makes_the_blocked_job_runnable_and_redirects_to_it(
        base: str, q: Queuetopia, jobs: dict[str, Job]) -> None:
    job_id = jobs["blocked"].id
    page = fetch(f"{base}/jobs/{job_id}").body
    reply = post(f"{base}/jobs/{job_id}/retry", {"csrf": csrf_of(page)})
    assert reply.status == 303
    assert reply.headers["Location"] == f"/jobs/{job_id}?done=retried"
    job = q.get_job(job_id)
    assert job is not None and job.state == JobState.AVAILABLE and job.attempts == 1
    after = fetch(f"{base}/jobs/{job_id}?done=retried").body
    assert "Retried: the job is runnable now." in after


def test_cancel_moves_the_queue_on(base: str, q: Queuetopia, jobs: dict[str, Job]) -> None:
    job_id = jobs["blocked"].id
    csrf = csrf_of(fetch(f"{base}/jobs/{job_id}").body)
    assert post(f"{base}/jobs/{job_id}/cancel", {"csrf": csrf}).status == 303
    job = q.get_job(job_id)
    assert job is not None and job.state == JobState.CANCELLED
    (status,) = q.queues("mail/customer-7")
    assert status.head is not None and status.head.id == jobs["behind"].id


def test_actions_in_the_wrong_state_or_on_unknown_jobs(base: str, q: Queuetopia,
                                                       jobs: dict[str, Job]) -> None:
    csrf = csrf_of(fetch(f"{base}/jobs/{jobs['blocked'].id}").body)
    done = post(f"{base}/jobs/{jobs['done'].id}/retry", {"csrf": csrf})
    assert done.status == 409 and "nothing to retry" in done.body
    assert post(f"{base}/jobs/{jobs['done'].id}/cancel", {"csrf": csrf}).status == 409
    assert post(f"{base}/jobs/999999/retry", {"csrf": csrf}).status == 404
    assert post(f"{base}/jobs/0/cancel", {"csrf": csrf}).status == 404
    assert post(f"{base}/jobs/1/delete", {"csrf": csrf}).status == 404
    assert post(f"{base}/", {"csrf": csrf}).status == 404
    done_job = q.get_job(jobs["done"].id)
    assert done_job is not None and done_job.state == JobState.DONE


@pytest.mark.parametrize("fields", [{}, {"csrf": ""}, {"csrf": "forged"}, {"other": "x"}])
def test_a_post_without_the_csrf_token_changes_nothing(base: str, q: Queuetopia,
                                                       jobs: dict[str, Job],
                                                       fields: dict[str, str]) -> None:
    reply = post(f"{base}/jobs/{jobs['blocked'].id}/cancel", fields)
    assert reply.status == 403 and "token" in reply.body
    job = q.get_job(jobs["blocked"].id)
    assert job is not None and job.state == JobState.RETRYING


def test_a_post_from_another_origin_or_not_a_form_is_refused(base: str, q: Queuetopia,
                                                             jobs: dict[str, Job]) -> None:
    url = f"{base}/jobs/{jobs['blocked'].id}/cancel"
    csrf = csrf_of(fetch(f"{base}/jobs/{jobs['blocked'].id}").body)
    assert post(url, {"csrf": csrf}, Origin="http://evil.example").status == 403
    as_json = fetch(url, method="POST", data=b'{"csrf": "x"}',
                    headers={"Content-Type": "application/json"})
    assert as_json.status == 400
    big = fetch(url, method="POST", data=b"csrf=" + b"x" * 10000,
                headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert big.status == 400
    job = q.get_job(jobs["blocked"].id)
    assert job is not None and job.state == JobState.RETRYING


@pytest.fixture
def read_only(q: Queuetopia, jobs: dict[str, Job]) -> Iterator[str]:
    """A read-only dashboard's URL (no trailing slash)."""
    with serve(q, port=0, read_only=True) as server:
        yield server.url.rstrip("/")
        server.shutdown()


def test_read_only_hides_and_refuses_the_actions(read_only: str, base: str, q: Queuetopia,
                                                 jobs: dict[str, Job]) -> None:
    job_id = jobs["blocked"].id
    page = fetch(f"{read_only}/jobs/{job_id}").body
    assert "read-only" in page
    assert 'id="retry-button"' not in page and "<form method=\"post\"" not in page
    # even with a valid token from a writable dashboard of the same process
    csrf = csrf_of(fetch(f"{base}/jobs/{job_id}").body)
    for action in ("retry", "cancel"):
        reply = post(f"{read_only}/jobs/{job_id}/{action}", {"csrf": csrf})
        assert reply.status == 403 and "read-only" in reply.body
    job = q.get_job(job_id)
    assert job is not None and job.state == JobState.RETRYING


@pytest.fixture
def guarded(q: Queuetopia, jobs: dict[str, Job]) -> Iterator[DashboardServer]:
    """A dashboard that needs TOKEN."""
    with serve(q, port=0, token=TOKEN) as server:
        yield server
        server.shutdown()


def test_the_token_is_needed_on_every_request(guarded: DashboardServer,
                                              jobs: dict[str, Job]) -> None:
    url = guarded.url.rstrip("/")
    for path in ("/", "/static/dashboard.js", f"/jobs/{jobs['blocked'].id}", "/nope"):
        reply = fetch(url + path)
        assert reply.status == 401 and "Token needed" in reply.body
        assert fetch(url + path, headers={"Authorization": "Bearer wrong-token"}).status == 401
    assert fetch(url + "/?token=wrong-token").status == 401
    assert fetch(url + "/", headers={"Cookie": "qtl_dashboard=forged"}).status == 401
    assert post(f"{url}/jobs/{jobs['blocked'].id}/cancel", {"csrf": "x"}).status == 401


def test_a_token_in_the_url_sets_a_cookie_once(guarded: DashboardServer,
                                               jobs: dict[str, Job]) -> None:
    url = guarded.url.rstrip("/")
    first = fetch(f"{url}/jobs/{jobs['blocked'].id}?token={TOKEN}&done=retried")
    assert first.status == 303
    assert first.headers["Location"] == f"/jobs/{jobs['blocked'].id}?done=retried"
    cookie = first.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    pair = cookie.split(";")[0]
    assert fetch(url + "/", headers={"Cookie": pair}).status == 200
    assert fetch(url + "/", headers={"Authorization": f"Bearer {TOKEN}"}).status == 200


def test_binding_beyond_loopback_needs_a_token(q: Queuetopia) -> None:
    for host in ("0.0.0.0", "::", "192.0.2.1", "example.com"):
        with pytest.raises(InvalidJobError, match="token"):
            make_server(q, host=host, port=0)
    with pytest.raises(InvalidJobError, match="token"):
        make_server(q, port=0, token="short")
    with pytest.raises(InvalidJobError, match="port"):
        make_server(q, port=70000)
    server = make_server(q, host="0.0.0.0", port=0, token=TOKEN)  # allowed with a token
    server.server_close()


def test_a_loopback_dashboard_answers_only_to_loopback_names(server: DashboardServer) -> None:
    host, port = server.server_address[:2]
    for name, status in (("evil.example", 403), (f"evil.example:{port}", 403),
                         ("localhost", 200), (f"127.0.0.1:{port}", 200)):
        conn = http.client.HTTPConnection(str(host), port, timeout=30)
        try:
            conn.putrequest("GET", "/", skip_host=True)
            conn.putheader("Host", name)
            conn.endheaders()
            assert conn.getresponse().status == status, name
        finally:
            conn.close()
