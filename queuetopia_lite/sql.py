"""Named SQL: each dialect keeps its statements in .sql files, one section a name.

A section starts with a line ``-- name: some_name`` and runs to the next one, so
one grep finds both the Python method and its query.
"""

from __future__ import annotations

import re
from importlib import resources

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def load(package: str, filename: str) -> dict[str, str]:
    """Read ``filename`` from ``package`` and return its sections by name."""
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for index in range(1, len(parts), 2):
        queries[parts[index]] = parts[index + 1].strip()
    return queries
