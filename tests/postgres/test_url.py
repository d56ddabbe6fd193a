"""Postgres URLs: secrets never shown, bad URLs and schema names refused clearly."""

from __future__ import annotations

import pytest

from queuetopia_lite import InvalidJobError

connection = pytest.importorskip("queuetopia_lite.postgres.connection",
                                 reason="psycopg is not installed")


def test_passwords_are_never_shown_netloc_or_query() -> None:
    conninfo, shown, schema = connection.split_url(
        "postgresql://app:pw@db.internal/app?password=qs&sslpassword=k&sslmode=require", None)
    assert "pw" in conninfo and "qs" in conninfo  # libpq still gets them
    assert shown == "postgresql://app@db.internal/app?sslmode=require"
    assert schema == "queuetopia"


@pytest.mark.parametrize("url", ["postgresql://postgres@[::1/test",
                                 "postgresql://host:99999999/db"])
def test_a_bad_url_is_an_invalid_argument(url: str) -> None:
    with pytest.raises(InvalidJobError) as info:
        connection.split_url(url, None)
    assert info.value.field == "database"


@pytest.mark.parametrize("schema", ["a%b", "x" * 64, "nul\x00"])
def test_bad_schema_names_are_refused(schema: str) -> None:
    with pytest.raises(InvalidJobError) as info:
        connection.split_url("postgresql://h/db", schema)
    assert info.value.field == "schema"
