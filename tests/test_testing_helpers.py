"""queuetopia_lite.testing: FakeClock, perform_job, assert_job_created and refute_job_created."""

from __future__ import annotations

import dataclasses
import socket
from datetime import datetime, timedelta, timezone

import pytest

from queuetopia_lite import InvalidJobError, Job, JobState, Performer, Queuetopia
from queuetopia_lite.errors import UnknownActionError
from queuetopia_lite.testing import (
    DEFAULT_START,
    FakeClock,
    assert_job_created,
    jobs_created,
    make_job,
    perform_job,
    refute_job_created,
)


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


def failure(call: object) -> str:
    """The message of the AssertionError that ``call()`` raises."""
    with pytest.raises(AssertionError) as info:
        call()  # type: ignore[operator]
    return str(info.value)


def test_assert_job_created_failure_messages(q: Queuetopia) -> None:
    assert failure(lambda: assert_job_created(q)) == "Expected 1 job in scope 'mine', got 0"
    first = q.create_job("mails", "send", {"to": "a"})
    assert failure(lambda: assert_job_created(q, 2, queue="mails")) == (
        "Expected 2 jobs in queue 'mails' of scope 'mine', got 1; "
        f'matching jobs: #{first.id} send {{"to": "a"}} (available)')
    assert failure(lambda: assert_job_created(q, params={"to": "b"})) == (
        "Expected 1 job with params={'to': 'b'} in scope 'mine', got 0; "
        f"jobs in scope 'mine': #{first.id} send in 'mails' {{\"to\": \"a\"}} (available)")


def test_a_failure_lists_the_jobs_of_the_queue_up_to_ten(q: Queuetopia) -> None:
    jobs = q.create_jobs([("mails", "send_mail", {"n": i}) for i in range(12)])
    message = failure(lambda: assert_job_created(q, queue="mails", action="send_sms"))
    head, listing = message.split("; ", 1)
    assert head == "Expected 1 job with action='send_sms' in queue 'mails' of scope 'mine', got 0"
    assert listing.startswith(f'jobs in queue \'mails\': #{jobs[-1].id} send_mail {{"n": 11}}')
    assert listing.count("#") == 10 and listing.endswith(", ...")


def test_a_failure_lists_the_jobs_of_the_action_when_the_queue_has_none(q: Queuetopia) -> None:
    job = q.create_job("sms", "send", {"to": "a"})
    message = failure(lambda: assert_job_created(q, queue="mails", action="send"))
    assert message.endswith(f"got 0; jobs with action='send': #{job.id} send in 'sms' "
                            '{"to": "a"} (available)')


def test_refute_job_created(q: Queuetopia) -> None:
    refute_job_created(q, queue="sms")
    q.create_job("sms", "send", {"n": 1})
    with pytest.raises(AssertionError, match=r"Expected 0 job in queue 'sms' .*got 1; "
                       r"matching jobs: #1 send \{\"n\": 1\}"):
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


# -- FakeClock --------------------------------------------------------------------


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock()
    assert clock() == clock() == DEFAULT_START
    assert clock.advance(30) == DEFAULT_START + 30 == clock()
    moment = datetime(2030, 1, 31, 9, 0, tzinfo=timezone.utc)
    assert clock.set(moment) == moment.timestamp() == clock()
    assert clock.instant == moment
    assert clock.set(5.5) == 5.5
    assert FakeClock(moment)() == moment.timestamp()


def test_fake_clock_refuses_a_naive_datetime() -> None:
    with pytest.raises(InvalidJobError, match="timezone"):
        FakeClock(datetime(2030, 1, 1))


def test_fake_clock_drives_a_queuetopia(db_path: str) -> None:
    clock = FakeClock()
    ran: list[int] = []
    q = Queuetopia(db_path, lambda job: ran.append(job.id), clock=clock, durability="normal")
    job = q.create_job("q", "x", scheduled_at=clock.instant + timedelta(minutes=1))
    assert job.created_at == clock.instant
    assert q.drain() == 0  # not due on the fake clock
    clock.advance(60)
    assert q.drain() == 1 and ran == [job.id]
    done = q.get_job(job.id)
    assert done is not None and done.done_at == clock.instant
    q.close()


# -- perform_job ------------------------------------------------------------------


def test_perform_job_returns_the_result_and_hands_a_complete_running_job() -> None:
    performer = Performer()
    seen: list[Job] = []

    @performer.action("charge")
    def charge(job: Job) -> str:
        seen.append(job)
        return f"charged {job.params['order']}"

    clock = FakeClock()
    assert perform_job(performer, "charge", {"order": 7, "items": (1, 2)}, clock=clock,
                       attempts=3) == "charged 7"
    (job,) = seen
    assert job.params == {"order": 7, "items": [1, 2]}  # after the JSON round trip
    assert (job.queue, job.action, job.state, job.attempts) == ("test", "charge",
                                                                 JobState.RUNNING, 3)
    assert job.attempted_at == job.scheduled_at == job.created_at == clock.instant
    assert job.attempted_by is not None and job.attempted_by.startswith(socket.gethostname())
    assert (job.timeout, job.max_backoff, job.max_attempts) == (60.0, 86400.0, 20)
    assert job.error is None and job.done_at is None and job.next_attempt_at is None


def test_perform_job_raises_the_actions_exception() -> None:
    def boom(job: Job) -> None:
        raise ValueError(f"bad {job.params['n']}")

    with pytest.raises(ValueError, match="bad 1"):
        perform_job(boom, "anything", {"n": 1})


def test_perform_job_unknown_action_fails_as_in_a_worker() -> None:
    with pytest.raises(UnknownActionError, match="nope"):
        perform_job(Performer(), "nope")


def test_perform_job_takes_any_job_field_and_refuses_others() -> None:
    job = perform_job(lambda job: job, "x", queue="mails", id=42, scope="shop", max_attempts=3,
                      error="RuntimeError: earlier")
    assert (job.id, job.scope, job.queue, job.max_attempts) == (42, "shop", "mails", 3)
    assert job.error == "RuntimeError: earlier"
    with pytest.raises(InvalidJobError, match="colour"):
        perform_job(lambda job: None, "x", colour="red")
    with pytest.raises(InvalidJobError, match="params"):
        perform_job(lambda job: None, "x", {1: "not a string key"})


def test_make_job_fills_every_field_of_job() -> None:
    job = make_job("x")
    missing = [f.name for f in dataclasses.fields(Job) if getattr(job, f.name, None) is None
               and f.name not in ("next_attempt_at", "done_at", "error", "errors",
                                     "unique_key")]
    assert missing == []
