"""Job control through the facade (SPEC 12): GiveUp, Snooze, action defaults, unique keys."""

from __future__ import annotations

from datetime import timedelta

import pytest

from queuetopia_lite import (
    Backend,
    GiveUp,
    InvalidJobError,
    Job,
    JobState,
    Performer,
    QueueState,
    Queuetopia,
    Snooze,
)

from .conftest import FakeClock


class Shop(Performer):
    """Actions that give up, snooze, fail or succeed; records failures handed to the hook."""

    def __init__(self) -> None:
        super().__init__()
        self.failed: list[Job] = []
        self.ran: list[int] = []

        @self.action("charge", max_attempts=5, timeout=30.0, max_backoff=600.0)
        def charge(job: Job) -> None:
            self.ran.append(job.id)
            if job.params.get("expired"):
                raise GiveUp("card expired")
            if self.ran.count(job.id) <= job.params.get("down", 0):
                raise Snooze(60)  # attempts stays 1 on every run: the snoozes do not count

        @self.action("flaky", backoff=7)
        def flaky(job: Job) -> None:
            raise RuntimeError("flaky")

        @self.action("shaky", backoff=lambda job: 100.0 * job.attempts)
        def shaky(job: Job) -> None:
            raise RuntimeError("shaky")

        @self.action("plain")
        def plain(job: Job) -> None:
            self.ran.append(job.id)

    def handle_failed_job(self, job: Job) -> None:
        self.failed.append(job)


@pytest.fixture
def shop() -> Shop:
    return Shop()


@pytest.fixture
def q(backend: Backend, shop: Shop, clock: FakeClock) -> Queuetopia:
    return Queuetopia(backend, shop, clock=clock)


def test_give_up_fails_now_calls_the_hook_and_the_queue_goes_on(
        q: Queuetopia, shop: Shop) -> None:
    bad = q.create_job("payments", "charge", {"expired": True})
    good = q.create_job("payments", "charge", {})
    assert q.drain() == 2  # the next job ran at once: no backoff, no hold
    stored = q.get_job(bad.id)
    assert stored is not None and stored.state == JobState.FAILED
    assert stored.error == "card expired" and stored.attempts == 1
    assert [e["error"] for e in stored.errors] == ["card expired"]
    assert [job.id for job in shop.failed] == [bad.id]
    done = q.get_job(good.id)
    assert done is not None and done.state == JobState.DONE


def test_snooze_runs_again_later_without_spending_attempts(
        q: Queuetopia, shop: Shop, clock: FakeClock) -> None:
    job = q.create_job("sync", "charge", {"down": 2}, max_attempts=1)
    after = q.create_job("sync", "plain")
    assert q.drain() == 1
    snoozed = q.get_job(job.id)
    assert snoozed is not None and snoozed.attempts == 0 and snoozed.errors == []
    assert snoozed.next_attempt_at is not None
    assert snoozed.next_attempt_at.timestamp() == pytest.approx(clock.now + 60)
    (status,) = q.queues()
    assert status.state == QueueState.SCHEDULED and status.head is not None
    assert status.head.id == job.id
    clock.advance(59)
    assert q.drain() == 0  # the head waits; the next job waits behind it
    clock.advance(1)
    assert q.drain() == 1  # snoozed once more
    clock.advance(60)
    assert q.drain() == 2  # now it succeeds, then the next job runs
    done = q.get_job(job.id)
    assert done is not None and done.state == JobState.DONE and done.attempts == 1
    assert shop.ran == [job.id, job.id, job.id, after.id]
    assert shop.failed == []


def test_snooze_refuses_a_bad_duration() -> None:
    assert Snooze(timedelta(minutes=2)).seconds == 120.0
    with pytest.raises(InvalidJobError, match="seconds"):
        Snooze(-1)


def test_action_defaults_apply_unless_the_create_call_gives_its_own(q: Queuetopia) -> None:
    job = q.create_job("payments", "charge")
    assert (job.max_attempts, job.timeout, job.max_backoff) == (5, 30.0, 600.0)
    own = q.create_job("payments", "charge", max_attempts=2, timeout=None)
    assert (own.max_attempts, own.timeout, own.max_backoff) == (2, None, 600.0)
    plain = q.create_job("other", "plain")
    assert (plain.max_attempts, plain.timeout, plain.max_backoff) == (20, 60.0, 86400.0)
    (batch,) = q.create_jobs([("payments", "charge")])
    assert batch.max_attempts == 5
    (dict_item,) = q.create_jobs([{"queue": "p", "action": "charge", "max_attempts": 3}],
                                 timeout=5.0)
    assert (dict_item.max_attempts, dict_item.timeout) == (3, 5.0)


def test_unknown_action_is_refused_at_enqueue_naming_the_known_ones(q: Queuetopia) -> None:
    with pytest.raises(InvalidJobError, match=r"unknown action .chrage.*charge, flaky") as info:
        q.create_job("payments", "chrage")
    assert info.value.field == "action"
    with pytest.raises(InvalidJobError) as batch:
        q.create_jobs([("payments", "charge"), ("payments", "chrage")])
    assert batch.value.field == "jobs[1].action"
    assert q.list_jobs() == []


def test_a_plain_callable_performer_accepts_any_action(backend: Backend) -> None:
    q = Queuetopia(backend, lambda job: None)
    assert q.create_job("a", "anything").action == "anything"


def test_bad_action_options_are_refused_at_registration() -> None:
    performer = Performer()
    with pytest.raises(InvalidJobError, match="max_attempts"):
        performer.action("a", max_attempts=-1)
    with pytest.raises(InvalidJobError, match="timeout"):
        performer.action("a", timeout=0)
    with pytest.raises(InvalidJobError, match="backoff"):
        performer.action("a", backoff=float("nan"))


def test_an_action_backoff_number_or_function_sets_the_retry_time(
        q: Queuetopia, clock: FakeClock) -> None:
    flaky = q.create_job("a", "flaky")
    shaky = q.create_job("b", "shaky")
    q.drain()
    stored = q.get_job(flaky.id)
    assert stored is not None and stored.next_attempt_at is not None
    assert stored.next_attempt_at.timestamp() == pytest.approx(clock.now + 7)
    stored = q.get_job(shaky.id)
    assert stored is not None and stored.next_attempt_at is not None
    assert stored.next_attempt_at.timestamp() == pytest.approx(clock.now + 100)


def test_unique_key_through_the_facade(q: Queuetopia, shop: Shop) -> None:
    first = q.create_job("sync_device_7", "plain", unique_key="sync-device-7")
    again = q.create_job("sync_device_7", "plain", unique_key="sync-device-7")
    assert again.id == first.id
    jobs = q.create_jobs([{"queue": "s", "action": "plain", "unique_key": "x"},
                          {"queue": "s", "action": "plain", "unique_key": "x"}])
    assert jobs[0].id == jobs[1].id
    assert q.drain() == 2
    fresh = q.create_job("sync_device_7", "plain", unique_key="sync-device-7")
    assert fresh.id != first.id


@pytest.mark.parametrize("bad", ["", 7, "x" * 1001, "a\x00b"])
def test_a_bad_unique_key_is_refused(q: Queuetopia, bad: object) -> None:
    with pytest.raises(InvalidJobError) as info:
        q.create_job("a", "plain", unique_key=bad)  # type: ignore[arg-type]
    assert info.value.field == "unique_key"
    assert q.list_jobs() == []
