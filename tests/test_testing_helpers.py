"""queuetopia_lite.testing: assert_job_created and refute_job_created."""

from __future__ import annotations

import pytest

from queuetopia_lite import Queuetopia
from queuetopia_lite.testing import assert_job_created, jobs_created, refute_job_created


@pytest.fixture
def q(db_path: str) -> Queuetopia:
    return Queuetopia(db_path, durability="normal", scope="mine")


def test_assert_job_created_matches_queue_action_and_params_subset(q: Queuetopia) -> None:
    q.create_job("mails", "send", {"to": "a@b.c", "body": "hi"})
    q.create_job("mails", "send", {"to": "x@y.z"})
    (job,) = assert_job_created(q, queue="mails", action="send", params={"to": "a@b.c"})
    assert job.params["body"] == "hi"
    assert_job_created(q, 2, queue="mails")
    assert_job_created(q, 2)


def test_assert_job_created_failure_messages(q: Queuetopia) -> None:
    with pytest.raises(AssertionError, match=r"^Expected 1 job in scope 'mine', got 0$"):
        assert_job_created(q)
    q.create_job("mails", "send", {"to": "a"})
    with pytest.raises(AssertionError,
                       match=r"^Expected 2 jobs with queue='mails' in scope 'mine', got 1$"):
        assert_job_created(q, 2, queue="mails")
    with pytest.raises(AssertionError, match=r"params=\{'to': 'b'\}.*got 0"):
        assert_job_created(q, params={"to": "b"})


def test_refute_job_created(q: Queuetopia) -> None:
    refute_job_created(q, queue="sms")
    q.create_job("sms", "send", {"n": 1})
    with pytest.raises(AssertionError, match="Expected 0 job with queue='sms'"):
        refute_job_created(q, queue="sms")
    refute_job_created(q, queue="sms", params={"n": 2})


def test_helpers_see_only_their_scope(q: Queuetopia, db_path: str) -> None:
    other = Queuetopia(db_path, scope="theirs")
    other.create_job("mails", "send")
    refute_job_created(q, queue="mails")
    assert jobs_created(other, queue="mails")[0].scope == "theirs"


def test_jobs_created_oldest_first(q: Queuetopia) -> None:
    ids = [q.create_job("a", "x", {"n": i}).id for i in range(3)]
    assert [j.id for j in jobs_created(q, queue="a")] == ids
