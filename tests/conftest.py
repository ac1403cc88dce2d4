"""Shared fixtures: real PostgreSQL and Redis, never mocks.

The servers are the ones the project resolves (``DATABASE_URL`` / ``REDIS_URL``
or the embedded ones under ``.vedfin/``). Tests work in their own database
(``<db>_test``, or ``TEST_DATABASE_URL``, or one per test) and on Redis servers
of their own (``tests/redis_server.py``) or the test target's Redis database, so a
developer's data survives ``make test``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from vedfin.config import PROJECT_ROOT, Settings, resolve, state_dir, with_database
from vedfin.db import init_db
from vedfin.services import EmbeddedPostgres, EmbeddedRedis


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """Resolve the servers once; stop embedded ones this session started itself."""
    state = state_dir()
    pg_was_running = EmbeddedPostgres(state).postmaster() is not None
    redis_was_running = EmbeddedRedis(state).running() is not None
    resolved = resolve(start=True)
    yield resolved
    if os.environ.get("VEDFIN_KEEP_SERVICES"):
        return
    if resolved.embedded_postgres and not pg_was_running:
        EmbeddedPostgres(state).stop()
    if resolved.embedded_redis and not redis_was_running:
        EmbeddedRedis(state).stop()


def _recreate_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where datname = %s and pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'drop database if exists "{name}"')
        conn.execute(f'create database "{name}"')


@pytest.fixture(scope="session")
def test_db_base(settings: Settings) -> str:
    """URL of an empty database for this test session."""
    if os.environ.get("TEST_DATABASE_URL"):
        return os.environ["TEST_DATABASE_URL"]
    name = f"{settings.pg_params.get('dbname', 'vedfin')}_test"
    _recreate_database(settings.database_url, name)
    return with_database(settings.database_url, name)


@pytest.fixture()
def fresh_db(settings: Settings, request: pytest.FixtureRequest) -> str:
    """A new, empty database for one test (dropped and created again)."""
    base = settings.pg_params.get("dbname", "vedfin")
    name = f"{base}_t_{request.node.name.lower()[:40]}".replace("[", "_").replace("]", "")
    name = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name)
    _recreate_database(settings.database_url, name)
    return with_database(settings.database_url, name)


@pytest.fixture(scope="session")
def migrated_db(test_db_base: str) -> str:
    init_db(test_db_base)
    return test_db_base


def built_database(settings: Settings, name: str, *, scenario: str = "test",
                   end_date: str = "2026-11-20") -> str:  # fmt: skip
    """A fresh database ``name`` on the resolved server with ``scenario`` generated (ending
    ``end_date``) and built at that as-of date, through the CLI as a user would."""
    url = with_database(settings.database_url, name)
    _recreate_database(settings.database_url, name)
    env = {"DATABASE_URL": url, "DBT_TARGET": "test"}
    for args in (
        ("seed", "--scenario", scenario, "--end-date", end_date, "-q"),
        ("build", "--as-of", end_date),
    ):
        done = run_cli(*args, env=env)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return url


def pg15_bindir_or_skip() -> Path:
    """The PostgreSQL 15 binaries, or a skip saying why (a failure under CI=true)."""
    from tests.pg_servers import pg15_bindir

    bindir = pg15_bindir()
    if bindir is None:
        reason = (
            "no PostgreSQL 15 binaries (/usr/lib/postgresql/15/bin): `make test-tools` installs "
            "Debian's postgresql-15 as root, or set TEST_DATABASE_URLS"
        )
        if _must_not_skip():
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    return bindir


def isolated_platform(settings: Settings, name: str, redis_url: str, home: Path) -> Settings:
    """Fresh databases ``name`` (warehouse) and ``name_dagster`` (Dagster storage) on the
    resolved server, the given Redis, and a DAGSTER_HOME with the project's dagster.yaml:
    what one `vedfin env` would give a separate installation, in the test target."""
    import shutil

    from vedfin.config import sqlalchemy_psycopg2_url

    _recreate_database(settings.database_url, name)
    _recreate_database(settings.database_url, f"{name}_dagster")
    shutil.copy(PROJECT_ROOT / "vedfin" / "templates" / "dagster.yaml", home / "dagster.yaml")
    return Settings(
        with_database(settings.database_url, name),
        redis_url,
        home,
        sqlalchemy_psycopg2_url(with_database(settings.database_url, f"{name}_dagster")),
        "test",
        False,
        False,
    )


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``vedfin`` in a child process the way a user would."""
    full_env = {k: v for k, v in os.environ.items() if k not in unset}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "vedfin_cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=PROJECT_ROOT,
        timeout=timeout,
        check=False,
    )


ROOT: Path = PROJECT_ROOT


def _must_not_skip() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def server_params() -> list[str]:
    """The servers the dbt suite runs on: TEST_DATABASE_URLS, or the resolved one and a 15."""
    urls = [u.strip() for u in os.environ.get("TEST_DATABASE_URLS", "").split(",") if u.strip()]
    return [f"url{i}" for i in range(len(urls))] if urls else ["resolved", "pg15"]


@pytest.fixture(scope="session")
def pg15_server() -> Iterator[object]:
    """A throwaway PostgreSQL 15 cluster (tests/pg_servers.py), or a skip saying why."""
    from tests.pg_servers import start_throwaway_cluster

    server = start_throwaway_cluster(pg15_bindir_or_skip())
    try:
        yield server
    finally:
        assert server.stop is not None
        server.stop()


@pytest.fixture(scope="module", params=server_params())
def pg_server(request: pytest.FixtureRequest, settings: Settings) -> object:
    """One server of the matrix (tests/pg_servers.py): a module runs once per server."""
    from tests.pg_servers import Server

    name = request.param
    if name == "resolved":
        return Server("resolved", settings.database_url)
    if name == "pg15":
        return request.getfixturevalue("pg15_server")
    urls = [u.strip() for u in os.environ["TEST_DATABASE_URLS"].split(",") if u.strip()]
    return Server(name, urls[int(name.removeprefix("url"))])


@pytest.fixture(scope="session")
def marts(settings: Settings) -> tuple[str, ...]:
    """The mart models, as dbt's own manifest lists them (`vedfin parse` first)."""
    import json

    from vedfin.dbt import mart_names

    parsed = run_cli("parse")
    assert parsed.returncode == 0, parsed.stdout + parsed.stderr
    manifest = json.loads((ROOT / "dbt_project" / "target" / "manifest.json").read_text())
    names = mart_names(manifest)
    assert {"fct_daily_active_users", "fct_leaderboard"} <= set(names)
    return names
