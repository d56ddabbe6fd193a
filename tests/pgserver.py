"""The Postgres server the tests use: reachability, and a fresh schema per test.

Without a server, Postgres tests skip with the reason printed (``-ra``); with
the environment variable CI set they fail instead, so CI cannot pass silently.
"""

from __future__ import annotations

import os
import uuid
from functools import lru_cache

import pytest

URL = os.environ.get("QUEUETOPIA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@lru_cache(maxsize=1)
def _unreachable() -> str | None:
    """Why the server cannot be used, or None when it can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'queuetopia_lite[postgres]')"
    try:
        psycopg.connect(URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at {URL} is unreachable: {str(exc).strip().splitlines()[0]}"
    return None


def require_postgres() -> None:
    """Skip the test without a server (fail it when CI is set)."""
    reason = _unreachable()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}")
        pytest.skip(reason)


def drop_schema(schema: str) -> None:
    """Drop a test schema and everything in it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def fresh_schema(request: pytest.FixtureRequest) -> str:
    """A new schema name for this test, dropped at its end."""
    require_postgres()
    schema = f"qtl_test_{uuid.uuid4().hex[:12]}"
    request.addfinalizer(lambda: drop_schema(schema))
    return schema


def schema_url(schema: str) -> str:
    """The test server's URL selecting ``schema``."""
    return f"{URL}{'&' if '?' in URL else '?'}schema={schema}"
