"""Fixtures of the Postgres-only tests: a fresh schema, raw connections, backends on it."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from .. import pgserver


@pytest.fixture
def schema(request: pytest.FixtureRequest) -> str:
    """A fresh schema name (dropped after the test); skips without a server."""
    return pgserver.fresh_schema(request)


@pytest.fixture
def url(schema: str) -> str:
    """The test server's URL selecting the fresh schema."""
    return pgserver.schema_url(schema)


@pytest.fixture
def raw() -> Iterator[Any]:
    """A plain autocommit psycopg connection to the test database."""
    pgserver.require_postgres()
    import psycopg

    with psycopg.connect(pgserver.URL, autocommit=True) as conn:
        yield conn


@pytest.fixture
def backends(url: str) -> Iterator[Callable[..., Any]]:
    """Makes PostgresBackends on the fresh schema (like nodes), closed after the test."""
    from queuetopia_lite.postgres import PostgresBackend

    made: list[PostgresBackend] = []

    def make(**options: Any) -> PostgresBackend:
        backend = PostgresBackend(url, **options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
