"""Checks of user arguments: each bad one raises InvalidJobError naming the field."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Callable, Final, Mapping, Union

from .backend import MAX_DURATION, NewJob
from .errors import InvalidJobError

Duration = Union[float, int, timedelta]

DEFAULT_TIMEOUT = 60.0  # seconds
DEFAULT_MAX_BACKOFF = 86400.0  # seconds
DEFAULT_MAX_ATTEMPTS = 20
MAX_PARAMS_BYTES = 64 * 1024 * 1024  # bytes of JSON; larger params belong in a file
MAX_INT = 2**63 - 1  # what a database integer holds
MAX_UNIQUE_KEY_CHARS = 1000


class NotGiven:
    """The default of a create option: the action's default applies, else the global one."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<default>"

    def __bool__(self) -> bool:
        return False


NOT_GIVEN: Final = NotGiven()

# The defaults of the job options an action may set (Performer.action).
GLOBAL_DEFAULTS: Final[Mapping[str, Any]] = {
    "timeout": DEFAULT_TIMEOUT, "max_backoff": DEFAULT_MAX_BACKOFF,
    "max_attempts": DEFAULT_MAX_ATTEMPTS}

# An action's job defaults: options given to Performer.action, by name. Raises
# InvalidJobError("action") for an action the performer does not know.
DefaultsFor = Callable[[str], Mapping[str, Any]]


_NO_OPTIONS: Final[Mapping[str, Any]] = MappingProxyType({})


def no_defaults(action: str) -> Mapping[str, Any]:
    """Any action, with the global defaults (a performer that is not a Performer)."""
    return _NO_OPTIONS


def duration(field: str, value: object, *, allow_zero: bool = True) -> float:
    """A non-negative finite number of seconds (or a timedelta) as a float."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidJobError(field, f"expected seconds or a timedelta, got {value!r}")
    if not math.isfinite(seconds):
        raise InvalidJobError(field, f"must be finite, got {value!r}")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = "non-negative" if allow_zero else "positive"
        raise InvalidJobError(field, f"must be {bound}, got {value!r}")
    if seconds > MAX_DURATION:
        raise InvalidJobError(field, f"must be at most {MAX_DURATION:.0f} s (100 years), "
                              f"got {value!r}")
    return seconds


def optional_duration(field: str, value: object, *, allow_zero: bool = True) -> float | None:
    """Like duration(), but None passes through (meaning "no limit")."""
    return None if value is None else duration(field, value, allow_zero=allow_zero)


def instant(field: str, value: object) -> float:
    """A timezone-aware datetime as seconds since the epoch."""
    if not isinstance(value, datetime):
        raise InvalidJobError(field, f"expected a timezone-aware datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidJobError(field, "naive datetime: give it a timezone (UTC)")
    return value.timestamp()


def name(field: str, value: object) -> str:
    """A non-empty string (a queue, action or scope name)."""
    if not isinstance(value, str):
        raise InvalidJobError(field, f"expected a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidJobError(field, "must not be empty")
    _utf8(field, value)
    return value


def _utf8(field: str, text: str) -> None:
    """Valid UTF-8 without NUL characters (which Postgres cannot store)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidJobError(field, f"not valid text (UTF-8): {exc.reason}") from None
    if "\x00" in text:
        raise InvalidJobError(field, "contains a NUL character (\\u0000)")


def count(field: str, value: object) -> int:
    """A non-negative integer."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidJobError(field, f"expected an integer, got {value!r}")
    if value < 0:
        raise InvalidJobError(field, f"must be non-negative, got {value!r}")
    if value > MAX_INT:
        raise InvalidJobError(field, f"must be at most {MAX_INT}, got {value!r}")
    return value


def params_json(value: object) -> str:
    """A JSON object with string keys, serialised; tuples become lists."""
    # type() first: isinstance against typing's Mapping is slow on the enqueue path.
    if type(value) is not dict and not isinstance(value, Mapping):
        kind = type(value).__name__
        raise InvalidJobError("params", f"expected a JSON object (a dict), got {kind}")
    _check_keys(value)
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidJobError("params", f"not JSON-serialisable: {exc}") from None
    _utf8("params", text)
    if len(text) > MAX_PARAMS_BYTES:
        raise InvalidJobError(
            "params", f"{len(text)} bytes of JSON; the limit is {MAX_PARAMS_BYTES}")
    return text


def _check_keys(value: object, depth: int = 0) -> None:
    """Keys are strings at every depth (json would rewrite 1 as "1"); no NUL in any text."""
    if depth > 200:
        raise InvalidJobError("params", "nested too deeply")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidJobError("params", f"keys must be strings, got {key!r}")
            _check_keys(key, depth + 1)
            _check_keys(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_keys(item, depth + 1)
    elif isinstance(value, str) and "\x00" in value:
        raise InvalidJobError("params", "contains a NUL character (\\u0000)")


def new_job(
    queue: object,
    action: object,
    params: object = None,
    *,
    scheduled_at: object = None,
    timeout: object = NOT_GIVEN,
    max_backoff: object = NOT_GIVEN,
    max_attempts: object = NOT_GIVEN,
    unique_key: object = None,
    defaults: DefaultsFor = no_defaults,
) -> NewJob:
    """Check create_job's arguments and return the row to insert.

    An option not given takes the action's default (``defaults``), else the global one.
    """
    queue = name("queue", queue)
    action = name("action", action)
    given = defaults(action)
    if timeout is NOT_GIVEN:
        timeout = given.get("timeout", DEFAULT_TIMEOUT)
    if max_backoff is NOT_GIVEN:
        max_backoff = given.get("max_backoff", DEFAULT_MAX_BACKOFF)
    if max_attempts is NOT_GIVEN:
        max_attempts = given.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    attempts = count("max_attempts", max_attempts)
    return NewJob(
        queue=queue,
        action=action,
        params=params_json({} if params is None else params),
        scheduled_at=None if scheduled_at is None else instant("scheduled_at", scheduled_at),
        timeout=optional_duration("timeout", timeout, allow_zero=False),
        max_backoff=duration("max_backoff", max_backoff),
        max_attempts=attempts,
        # A job that never runs (max_attempts=0) never waits, so it holds no key.
        unique_key=key(unique_key) if attempts > 0 else None,
    )


def key(value: object) -> str | None:
    """A unique key: None, or a non-empty string of at most 1,000 characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidJobError("unique_key", f"expected a string, got {type(value).__name__}")
    if not value:
        raise InvalidJobError("unique_key", "must not be empty (None: no key)")
    if len(value) > MAX_UNIQUE_KEY_CHARS:
        raise InvalidJobError("unique_key", f"{len(value)} characters; the limit is "
                              f"{MAX_UNIQUE_KEY_CHARS}")
    _utf8("unique_key", value)
    return value


def batch_item(index: int, item: object, options: dict[str, Any],
               defaults: DefaultsFor = no_defaults) -> NewJob:
    """One item of create_jobs: a (queue, action[, params]) tuple or a dict of arguments."""
    try:
        if isinstance(item, Mapping):
            merged = {**options, **item}
            return new_job(**merged, defaults=defaults)
        if isinstance(item, (tuple, list)) and len(item) in (2, 3):
            return new_job(*item, **options, defaults=defaults)
    except InvalidJobError as exc:
        raise InvalidJobError(f"jobs[{index}].{exc.field}", exc.problem) from None
    except TypeError as exc:
        raise InvalidJobError(f"jobs[{index}]", str(exc)) from None
    raise InvalidJobError(
        f"jobs[{index}]", f"expected a (queue, action, params) tuple or a dict, got {item!r}"
    )
