"""Postgres schema: migrations under an advisory lock, versions, isolation, the extra."""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable

import pytest

from queuetopia_lite import DatabaseError, InvalidJobError
from queuetopia_lite.postgres import PostgresBackend
from queuetopia_lite.postgres.backend import SCHEMA_VERSION
from queuetopia_lite.queuetopia import open_backend

from .. import pgserver
from ..conformance.helpers import SCOPE, new


def test_many_processes_migrating_at_once_all_succeed(url: str) -> None:
    results: list[object] = []

    def migrate() -> None:
        try:
            backend = PostgresBackend(url)
            results.append(backend.migrate())
            backend.close()
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [SCHEMA_VERSION] * 6


def test_migrate_false_on_an_empty_schema_asks_for_a_migration(url: str) -> None:
    with pytest.raises(DatabaseError, match="queuetopia-lite migrate"):
        PostgresBackend(url, migrate=False)


def test_a_schema_of_another_application_is_refused(url: str, schema: str, raw: Any) -> None:
    raw.execute(f'CREATE SCHEMA "{schema}"')
    raw.execute(f'CREATE TABLE "{schema}".orders (id int)')
    with pytest.raises(DatabaseError, match="another application"):
        PostgresBackend(url)


def test_a_newer_schema_is_refused(backends: Callable[..., Any], url: str, schema: str,
                                   raw: Any) -> None:
    backends()
    raw.execute(f'UPDATE "{schema}".qt_version SET version = 99')
    with pytest.raises(DatabaseError, match="newer"):
        PostgresBackend(url, migrate=False)


def test_schemas_isolate_completely(request: pytest.FixtureRequest) -> None:
    first = pgserver.fresh_schema(request)
    second = pgserver.fresh_schema(request)
    a = PostgresBackend(pgserver.URL, schema=first)
    b = PostgresBackend(pgserver.schema_url(second))
    try:
        (job,) = a.insert_jobs(SCOPE, [new()], 1_800_000_000.0)
        assert b.get_job(SCOPE, job.id, 1_800_000_000.0) is None
        assert (a.schema, b.schema) == (first, second)
    finally:
        a.close()
        b.close()


def test_a_missing_driver_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.startswith("queuetopia_lite.postgres")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ImportError, match=r"queuetopia_lite\[postgres\]"):
        import queuetopia_lite.postgres  # noqa: F401
    with pytest.raises(InvalidJobError, match="postgres"):
        open_backend("postgresql://nobody@127.0.0.1/none")
