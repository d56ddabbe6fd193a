"""SPEC 7: every bad argument raises InvalidJobError naming the field, and stores nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from queuetopia_lite import InvalidJobError, Queuetopia
from queuetopia_lite.errors import JobNotFoundError


@pytest.fixture
def q(tmp_path: Path) -> Queuetopia:
    return Queuetopia(os.fspath(tmp_path / "j.db"), lambda job: None)


@pytest.mark.parametrize("field,kwargs", [
    ("params", {"params": {"x": "\ud800"}}),
    ("params", {"params": {"\udcff": 1}}),
    ("queue", {"queue": "\ud800"}),
    ("action", {"action": "bad\udc80"}),
    ("max_attempts", {"max_attempts": 2**63}),
])
def test_unstorable_argument_crashes_instead_of_invalid_job_error(
        q: Queuetopia, field: str, kwargs: dict[str, Any]) -> None:
    """Expected: InvalidJobError naming the field. Observed: lone surrogates pass
    validation.name()/params_json() (json.dumps(ensure_ascii=False) keeps them) and apsw
    raises a raw UnicodeEncodeError at insert; max_attempts beyond SQLite's 64-bit INTEGER
    passes validation.count() and apsw raises a raw OverflowError."""
    args: dict[str, Any] = {"queue": "q", "action": "a"}
    args.update(kwargs)
    with pytest.raises(InvalidJobError) as info:
        q.create_job(**args)
    assert info.value.field == field
    assert q.list_jobs() == []


def test_create_jobs_with_unstorable_item_names_the_item(q: Queuetopia) -> None:
    """Same root cause in create_jobs: expected InvalidJobError('jobs[1].params'), all or none."""
    with pytest.raises(InvalidJobError) as info:
        q.create_jobs([("q", "a", {}), ("q", "a", {"x": "\ud800"})])
    assert info.value.field == "jobs[1].params"
    assert q.list_jobs() == []


def test_nested_non_string_keys_are_silently_rewritten(q: Queuetopia) -> None:
    """params must be a JSON object; top-level non-string keys are refused, but nested ones
    are silently turned into strings by json.dumps, so the performer gets different params
    than were given ({1: 'x'} becomes {'1': 'x'}). Expected: refused like top-level ones
    (or stored as given)."""
    given = {"outer": {1: "x"}}
    try:
        job = q.create_job("q", "a", given)
    except InvalidJobError as exc:
        assert exc.field == "params"
        return
    assert job.params == given


@pytest.mark.parametrize("call", ["get_job", "retry_job", "cancel_job"])
def test_job_id_beyond_64_bits_crashes_with_overflow_error(q: Queuetopia, call: str) -> None:
    """An id no job can have: expected None (get_job) or JobNotFoundError/InvalidJobError.
    Observed: a raw OverflowError from apsw (validation only checks isinstance int)."""
    fn = getattr(q, call)
    try:
        result = fn(2**64)
    except (JobNotFoundError, InvalidJobError):
        return
    assert result is None


def test_list_jobs_limit_beyond_64_bits_crashes(q: Queuetopia) -> None:
    """Expected InvalidJobError('limit') or a result; observed a raw OverflowError."""
    try:
        assert q.list_jobs(limit=2**64) == []
    except InvalidJobError as exc:
        assert exc.field == "limit"
