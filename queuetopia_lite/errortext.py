"""The text saved in a job's ``error``: bounded, its first line a summary."""

from __future__ import annotations

import traceback

from .errors import QueuetopiaError

MAX_ERROR_CHARS = 16_000  # the traceback's middle is cut beyond this


def error_text(exc: BaseException) -> str:
    """``Type: message`` on the first line, then the traceback, bounded in size."""
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not lose the failure
        message = "<unprintable message>"
    if isinstance(exc, QueuetopiaError):
        return storable(message)  # our own errors (unknown action...) need no traceback
    summary = f"{type(exc).__name__}: {message}".splitlines()[0] if message else type(exc).__name__
    try:
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:
        trace = "(traceback unavailable)"
    text = storable(summary + "\n" + trace)
    if len(text) > MAX_ERROR_CHARS:
        keep = MAX_ERROR_CHARS // 2
        text = text[:keep] + "\n[... cut ...]\n" + text[-keep:]
    return text


def storable(text: str) -> str:
    """``text`` as every backend can store it: valid UTF-8, no NUL character.

    A lone surrogate (a file name from ``os.fsdecode`` of bytes that are not UTF-8)
    cannot be encoded, and Postgres refuses NUL in text: either would make the
    outcome unsavable, so both become visible escapes instead.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00") if "\x00" in text else text
