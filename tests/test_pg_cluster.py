"""The throwaway PostgreSQL cluster fixture: a real server 15, a usable database ``wasl``."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

import tests.pg as tests_pg

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    eng = sa.create_engine(pg_url)
    yield eng
    eng.dispose()


def test_url_names_the_wasl_database_as_postgres(pg_url: str) -> None:
    url = sa.engine.make_url(pg_url)
    assert (url.drivername, url.username, url.host, url.database) == (
        "postgresql+psycopg", "postgres", "127.0.0.1", "wasl")
    assert url.port is not None


def test_server_is_postgresql_15(engine: Engine) -> None:
    with engine.connect() as conn:
        version = conn.execute(sa.text("SHOW server_version")).scalar_one()
        database = conn.execute(sa.text("SELECT current_database()")).scalar_one()
    assert version.startswith("15"), version
    assert database == "wasl"


def test_create_insert_select(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE probe (id serial PRIMARY KEY, body jsonb NOT NULL)"))
        conn.execute(sa.text("INSERT INTO probe (body) VALUES (CAST(:a AS jsonb)), (CAST(:b AS jsonb))"),
                     {"a": '{"n": 1}', "b": '{"n": 2}'})
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, body->>'n' FROM probe ORDER BY id")).all()
        conn.execute(sa.text("DROP TABLE probe"))
        conn.commit()
    assert [tuple(r) for r in rows] == [(1, "1"), (2, "2")]


def test_fsync_is_off_for_speed(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(sa.text("SHOW fsync")).scalar_one() == "off"


def test_cluster_is_gone_after_the_block() -> None:
    tests_pg.require_binaries()
    with tests_pg.pg_cluster() as url:
        port = sa.engine.make_url(url).port
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_missing_binaries_raise_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tests_pg, "PG_BIN", tmp_path)
    with pytest.raises(tests_pg.PostgresUnavailable, match="apt-get install -y postgresql-15"):
        with tests_pg.pg_cluster():
            pass


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_binaries_skip_but_fail_on_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              ci: str, outcome: type[BaseException]) -> None:
    monkeypatch.setattr(tests_pg, "PG_BIN", tmp_path)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="PostgreSQL 15 binaries missing"):
        tests_pg.require_binaries()


def test_missing_postgres_user_names_the_ci_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tests_pg, "PG_USER", "wasl-no-such-user")
    with pytest.raises(RuntimeError, match=r"\.ci/run must .*apt-get install -y postgresql-15"):
        tests_pg.check_postgres_user()
