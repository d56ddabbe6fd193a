"""SPEC 7: every bad argument raises InvalidJobError naming the field, and stores nothing."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from queuetopia_lite import InvalidJobError, JobNotFoundError, Queuetopia


@pytest.fixture
def q(db_path: str) -> Queuetopia:
    return Queuetopia(db_path, durability="normal")


class NotSerialisable:
    pass


BAD_CREATE: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("queue", ("", "a"), {}),
    ("queue", ("   ", "a"), {}),
    ("queue", (None, "a"), {}),
    ("queue", (3, "a"), {}),
    ("action", ("q", ""), {}),
    ("action", ("q", b"bytes"), {}),
    ("params", ("q", "a", [1, 2]), {}),
    ("params", ("q", "a", "text"), {}),
    ("params", ("q", "a", {"x": NotSerialisable()}), {}),
    ("params", ("q", "a", {"x": math.nan}), {}),
    ("params", ("q", "a", {"x": math.inf}), {}),
    ("params", ("q", "a", {1: "non-string key"}), {}),
    ("params", ("q", "a", {"x": {1, 2}}), {}),
    ("timeout", ("q", "a"), {"timeout": -1}),
    ("timeout", ("q", "a"), {"timeout": 0}),
    ("timeout", ("q", "a"), {"timeout": math.inf}),
    ("timeout", ("q", "a"), {"timeout": math.nan}),
    ("timeout", ("q", "a"), {"timeout": "60"}),
    ("timeout", ("q", "a"), {"timeout": timedelta(seconds=-1)}),
    ("max_backoff", ("q", "a"), {"max_backoff": -0.5}),
    ("max_backoff", ("q", "a"), {"max_backoff": math.inf}),
    ("max_attempts", ("q", "a"), {"max_attempts": -1}),
    ("max_attempts", ("q", "a"), {"max_attempts": 2.5}),
    ("max_attempts", ("q", "a"), {"max_attempts": True}),
    ("scheduled_at", ("q", "a"), {"scheduled_at": datetime(2030, 1, 1)}),
    ("scheduled_at", ("q", "a"), {"scheduled_at": "2030-01-01T00:00:00Z"}),
    ("scheduled_at", ("q", "a"), {"scheduled_at": 1234.5}),
]


@pytest.mark.parametrize(("field", "args", "kwargs"), BAD_CREATE)
def test_create_job_rejects_bad_input_and_stores_nothing(q: Queuetopia, field: str,
                                                        args: tuple[Any, ...],
                                                        kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidJobError) as info:
        q.create_job(*args, **kwargs)
    assert info.value.field == field
    assert field in str(info.value)
    assert isinstance(info.value, ValueError)
    assert q.list_jobs() == [] and q.queues() == []


def test_create_jobs_is_all_or_nothing(q: Queuetopia) -> None:
    items = [("q", "a", {"n": 1}), ("q", "a", {"n": 2}), ("", "a", {})]
    with pytest.raises(InvalidJobError) as info:
        q.create_jobs(items)
    assert info.value.field == "jobs[2].queue"
    assert q.list_jobs() == []


@pytest.mark.parametrize("item", [("q",), ("q", "a", {}, "extra"), "q", 42, None])
def test_create_jobs_rejects_malformed_items(q: Queuetopia, item: Any) -> None:
    with pytest.raises(InvalidJobError) as info:
        q.create_jobs([("q", "a"), item])
    assert info.value.field.startswith("jobs[1]")
    assert q.list_jobs() == []


def test_create_jobs_rejects_unknown_options_and_dict_keys(q: Queuetopia) -> None:
    with pytest.raises(InvalidJobError):
        q.create_jobs([("q", "a")], priority=3)
    with pytest.raises(InvalidJobError) as info:
        q.create_jobs([{"queue": "q", "action": "a", "colour": "red"}])
    assert info.value.field == "jobs[0]"
    assert q.list_jobs() == []


def test_create_jobs_accepts_tuples_dicts_and_shared_options(q: Queuetopia) -> None:
    at = datetime.now(timezone.utc) + timedelta(hours=1)
    jobs = q.create_jobs([("q", "a"), {"queue": "r", "action": "b", "params": {"k": 1},
                                       "max_attempts": 3}], timeout=5, scheduled_at=at)
    assert [(j.queue, j.action, j.timeout, j.max_attempts) for j in jobs] == [
        ("q", "a", 5.0, 20), ("r", "b", 5.0, 3)]
    assert all(j.scheduled_at == at for j in jobs)


def test_accepted_edge_values(q: Queuetopia) -> None:
    job = q.create_job("q", "a", {"t": (1, 2)}, timeout=None, max_backoff=0, max_attempts=0,
                       scheduled_at=datetime(2030, 1, 1, tzinfo=timezone(timedelta(hours=2))))
    assert job.params == {"t": [1, 2]} and job.timeout is None and job.max_backoff == 0.0
    assert job.scheduled_at == datetime(2029, 12, 31, 22, tzinfo=timezone.utc)
    assert q.create_job("q", "a", timeout=timedelta(minutes=1)).timeout == 60.0


@pytest.mark.parametrize(("field", "options"), [
    ("scope", {"scope": ""}),
    ("poll_interval", {"poll_interval": 0}),
    ("poll_interval", {"poll_interval": -1}),
    ("max_workers", {"max_workers": 0}),
    ("max_workers", {"max_workers": 1.5}),
    ("lease", {"lease": 0}),
    ("cleanup_interval", {"cleanup_interval": -5}),
    ("job_retention", {"job_retention": math.nan}),
    ("durability", {"durability": "paranoid"}),
])
def test_bad_queuetopia_options(db_path: str, field: str, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidJobError) as info:
        Queuetopia(db_path, **options)
    assert info.value.field == field


def test_bad_performer_and_database_arguments(db_path: str) -> None:
    with pytest.raises(InvalidJobError) as info:
        Queuetopia(db_path, performer=42)  # type: ignore[arg-type]
    assert info.value.field == "performer"
    with pytest.raises(InvalidJobError) as info:
        Queuetopia(3.14)  # type: ignore[arg-type]
    assert info.value.field == "database"


def test_running_without_a_performer_is_refused(q: Queuetopia) -> None:
    with pytest.raises(InvalidJobError) as info:
        q.start()
    assert info.value.field == "performer"


def test_operator_calls_check_their_arguments(q: Queuetopia) -> None:
    with pytest.raises(InvalidJobError):
        q.get_job("1")  # type: ignore[arg-type]
    with pytest.raises(InvalidJobError) as info:
        q.list_jobs(state="sleeping")
    assert info.value.field == "state"
    with pytest.raises(InvalidJobError):
        q.list_jobs(limit=-1)
    with pytest.raises(JobNotFoundError):
        q.retry_job(99)
    with pytest.raises(JobNotFoundError):
        q.cancel_job(99)
    with pytest.raises(InvalidJobError):
        q.prune(-1)


@pytest.mark.parametrize(("args", "field"), [
    (("q\x00", "a"), "queue"),
    (("q", "a\x00"), "action"),
    (("q", "a", {"k": "v\x00"}), "params"),
    (("q", "a", {"k\x00": 1}), "params"),
    (("q", "a", {"k": [{"deep": "\x00"}]}), "params"),
])
def test_nul_characters_are_refused_everywhere(q: Queuetopia, args: tuple[Any, ...],
                                               field: str) -> None:
    with pytest.raises(InvalidJobError) as info:
        q.create_job(*args)
    assert info.value.field == field
    assert q.list_jobs() == []
