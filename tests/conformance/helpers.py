"""Small builders for the conformance suite."""

from __future__ import annotations

import json
from typing import Any

from queuetopia_lite import Backend
from queuetopia_lite.backend import Claim, Failure, NewJob, StepResult, Success

T0 = 1_800_000_000.0  # a fixed "now" (2027-01-15)
SCOPE = "s"
OWNER = "host:1"


def new(queue: str = "q", action: str = "act", params: dict[str, Any] | None = None, *,
        scheduled_at: float | None = None, timeout: float | None = 60.0,
        max_backoff: float = 86400.0, max_attempts: int = 20,
        unique_key: str | None = None) -> NewJob:
    """A valid NewJob with test defaults."""
    return NewJob(queue=queue, action=action, params=json.dumps(params or {}),
                  scheduled_at=scheduled_at, timeout=timeout, max_backoff=max_backoff,
                  max_attempts=max_attempts, unique_key=unique_key)


def claim(backend: Backend, now: float, n: int = 10, scope: str = SCOPE,
          lease: float = 30.0, **kw: Any) -> list[Claim]:
    """Claim up to n heads at ``now``."""
    return backend.step(scope, now, claim=n, owner=OWNER, lease=lease, **kw).claimed


def succeed(backend: Backend, c: Claim, now: float, scope: str = SCOPE) -> StepResult:
    """Record a success."""
    return backend.step(scope, now, outcomes=[Success(c)])


def fail(backend: Backend, c: Claim, now: float, delay: float = 2.0, scope: str = SCOPE,
         error: str = "RuntimeError: boom", keep_lock: bool = False) -> StepResult:
    """Record a failure retried ``delay`` seconds after ``now``."""
    return backend.step(scope, now, outcomes=[Failure(c, error, now + delay, keep_lock)])
