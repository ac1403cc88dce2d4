"""Service resolution both ways: embedded servers started and reused, or the given ones."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
import redis

from tests.conftest import run_cli
from vedfin.config import Settings, env_exports, resolve, sqlalchemy_psycopg2_url
from vedfin.services import EmbeddedPostgres, EmbeddedRedis


@pytest.fixture()
def isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A state folder of its own, with no DATABASE_URL / REDIS_URL: a fresh machine."""
    state = tmp_path / "state"
    monkeypatch.setenv("VEDFIN_STATE_DIR", str(state))
    for name in ("DATABASE_URL", "REDIS_URL", "DAGSTER_HOME", "DAGSTER_PG_URL"):
        monkeypatch.delenv(name, raising=False)
    yield state
    EmbeddedPostgres(state).stop()
    EmbeddedRedis(state).stop()


def test_embedded_servers_start_are_reused_and_stop(isolated_state: Path) -> None:
    first = resolve(start=True)
    assert first.embedded_postgres and first.embedded_redis
    with psycopg.connect(first.database_url) as conn:
        assert conn.execute("select current_database()").fetchone() == ("vedfin",)
    assert redis.Redis.from_url(first.redis_url).ping()
    assert (isolated_state / "postgres" / "data" / "PG_VERSION").exists()
    pg_pid = EmbeddedPostgres(isolated_state).status().pid
    redis_pid = EmbeddedRedis(isolated_state).status().pid

    # a second `up` reuses the same processes
    up = run_cli(
        "up", env={"VEDFIN_STATE_DIR": str(isolated_state)}, unset=("DATABASE_URL", "REDIS_URL")
    )
    assert up.returncode == 0, up.stderr
    assert resolve(start=True) == first
    assert EmbeddedPostgres(isolated_state).status().pid == pg_pid
    assert EmbeddedRedis(isolated_state).status().pid == redis_pid

    # Dagster's instance storage is PostgreSQL in the same server
    dagster_yaml = (first.dagster_home / "dagster.yaml").read_text()
    assert "DAGSTER_PG_URL" in dagster_yaml
    assert first.dagster_pg_url.startswith("postgresql+psycopg2://")  # SQLAlchemy's driver
    with psycopg.connect(first.dagster_pg_url.replace("+psycopg2", "")) as conn:
        assert conn.execute("select current_database()").fetchone() == ("dagster",)

    down = run_cli("down", env={"VEDFIN_STATE_DIR": str(isolated_state)})
    assert down.returncode == 0, down.stderr
    assert not EmbeddedPostgres(isolated_state).status().running
    assert not EmbeddedRedis(isolated_state).status().running
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(first.database_url, connect_timeout=2)


def test_given_urls_are_used_and_nothing_is_started(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "untouched"
    monkeypatch.setenv("VEDFIN_STATE_DIR", str(state))
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    resolved = resolve(start=True)
    assert not resolved.embedded_postgres and not resolved.embedded_redis
    assert resolved.database_url == settings.database_url
    assert resolved.redis_url == settings.redis_url
    assert resolved.dagster_pg_url == sqlalchemy_psycopg2_url(settings.database_url)
    assert not (state / "postgres").exists()
    assert not (state / "redis").exists()


def test_env_prints_exports_consistent_with_database_url(settings: Settings) -> None:
    result = run_cli(
        "env", env={"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    )
    assert result.returncode == 0, result.stderr
    exported = dict(
        line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines()
    )
    expected = env_exports(resolve(start=False) if os.environ.get("DATABASE_URL") else settings)
    for key in (
        "DATABASE_URL",
        "REDIS_URL",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "DAGSTER_HOME",
        "DBT_PROFILES_DIR",
    ):
        assert exported[key].strip("'") == expected[key], key
    with psycopg.connect(
        host=exported["PGHOST"],
        port=exported["PGPORT"],
        user=exported["PGUSER"],
        dbname=exported["PGDATABASE"],
        password=os.environ.get("PGPASSWORD", ""),
    ) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
