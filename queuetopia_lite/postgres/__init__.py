"""The Postgres backend (the ``postgres`` extra: psycopg 3 and psycopg-pool)."""

from __future__ import annotations

try:
    import psycopg  # noqa: F401
    import psycopg_pool  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"the queuetopia_lite Postgres backend needs {exc.name or 'psycopg'}: "
        "pip install 'queuetopia_lite[postgres]' (psycopg[binary] and psycopg-pool)"
    ) from exc

from .backend import PostgresBackend

__all__ = ["PostgresBackend"]
