"""Smoke tests of the test plumbing itself (tests/conftest.py)."""

from pathlib import Path

import pytest


def test_tmp_sqlite_url_is_inside_tmp_path(tmp_sqlite_url: str, tmp_path: Path) -> None:
    prefix = "sqlite:///"
    assert tmp_sqlite_url.startswith(prefix)
    db_path = Path(tmp_sqlite_url[len(prefix):])
    assert db_path.is_absolute()
    assert db_path.name == "ledger.db"
    assert db_path.parent == tmp_path


@pytest.mark.postgres
def test_fresh_pg_url_is_a_fresh_usable_database(fresh_pg_url: str) -> None:
    import psycopg

    dbname = fresh_pg_url.rsplit("/", 1)[1]
    assert dbname.startswith("tl_")
    with psycopg.connect(fresh_pg_url, connect_timeout=3) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == dbname
        # brand new: no user tables yet
        assert conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()[0] == 0
        conn.execute("CREATE TABLE smoke (id integer PRIMARY KEY, note text NOT NULL)")
        conn.execute("INSERT INTO smoke (id, note) VALUES (%s, %s)", (1, "custody"))
        conn.commit()
    with psycopg.connect(fresh_pg_url, connect_timeout=3) as conn:
        assert conn.execute("SELECT id, note FROM smoke").fetchall() == [(1, "custody")]


def test_store_url_covers_both_backends(store_url: str, request: pytest.FixtureRequest) -> None:
    backend = request.node.callspec.params["store_url"]
    if backend == "sqlite":
        assert store_url.startswith("sqlite:///")
        assert request.node.get_closest_marker("postgres") is None
    else:
        assert store_url.startswith("postgresql://")
        assert request.node.get_closest_marker("postgres") is not None
