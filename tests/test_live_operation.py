"""The pipeline on a database it never wrote: the platform's, filled by an outside writer.

The writer creates the contract's tables with its own DDL (one extra column the contract
does not name, as a real platform would have) and fills them with plain ``COPY``: no
``vedfin seed``, no ``vedfin_meta``, no generator bookkeeping. The jobs a schedule or the
sensor starts must build every mart from it and publish, without ever writing ``app``;
two builds started together must both succeed, one after the other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest

from tests.conftest import ROOT, _recreate_database, isolated_platform, run_cli
from tests.dagster_env import Platform, dagster_job, mart_scores, redis_scores, run
from tests.redis_server import RedisServer
from vedfin.config import Settings, env_exports, with_database
from vedfin.db import MIGRATIONS_DIR, RAW_TABLES, init_db
from vedfin.dbt import BUILD_LOCK_KEY
from vedfin.leaderboard import snapshot_meta

END = "2026-11-20"
PREFIX = "live:"
TABLES = RAW_TABLES  # parents first


def write_like_the_platform(source_url: str, url: str) -> None:
    """The platform's schema (its own DDL, an extra column) and rows by plain COPY."""
    ddl = (MIGRATIONS_DIR / "V001__app_schema.sql").read_text()
    with psycopg.connect(url, autocommit=True) as dst, psycopg.connect(source_url) as src:
        dst.execute(ddl)
        dst.execute("alter table app.users add column referral_code text")
        for table in TABLES:
            columns = [
                r[0]
                for r in src.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = 'app' and table_name = %s order by ordinal_position",
                    (table,),
                )
            ]
            names = ", ".join(columns)
            with (
                src.cursor().copy(f"copy app.{table} ({names}) to stdout") as out,
                dst.cursor().copy(f"copy app.{table} ({names}) from stdin") as into,
            ):
                for block in out:
                    into.write(block)
        # an app's inserts advance the id sequences; a COPY of explicit ids does not
        for table in TABLES:
            if table not in ("user_achievements", "streaks", "buddy_group_members"):
                dst.execute(
                    f"select setval(pg_get_serial_sequence('app.{table}', 'id'), max(id)) "
                    f"from app.{table} having max(id) is not null"
                )


@pytest.fixture(scope="module")
def platform(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    from seeds_gen.load import load_fresh
    from seeds_gen.scenarios import make_spec

    source = with_database(settings.database_url, "vedfin_live_source")
    _recreate_database(settings.database_url, "vedfin_live_source")
    init_db(source)
    load_fresh(source, make_spec("test", seed=7, end_date=date.fromisoformat(END)), target="test")
    server = RedisServer().start()
    scoped = isolated_platform(
        settings, "vedfin_live", server.url, tmp_path_factory.mktemp("dagster_home")
    )
    write_like_the_platform(source, scoped.database_url)
    values = {**env_exports(scoped), "LEADERBOARD_PREFIX": PREFIX}
    parsed = run_cli("parse", env=values)
    assert parsed.returncode == 0, parsed.stderr
    saved = dict(os.environ)
    os.environ.update(values)  # the Dagster instance these tests open reads DAGSTER_PG_URL
    try:
        yield Platform(values, server, scoped.database_url, PREFIX)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def _app_state(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        return {
            t: conn.execute(
                f"select count(*), md5(string_agg(t::text, ',' order by t::text)) from app.{t} as t"
            ).fetchone()
            for t in TABLES
        }


def _as_of_config(tmp_path: Path, as_of: str) -> Path:
    config = tmp_path / f"as_of_{as_of}.yaml"
    config.write_text(f"ops:\n  dbt_models:\n    config: {{as_of: '{as_of}'}}\n")
    return config


def test_daily_refresh_on_a_database_only_an_outside_writer_wrote(
    platform: Platform, tmp_path: Path, marts: tuple[str, ...]
) -> None:
    with psycopg.connect(platform.url) as conn:
        meta = conn.execute("select to_regnamespace('vedfin_meta')").fetchone()
    assert meta == (None,), "the writer left no vedfin bookkeeping"
    before = _app_state(platform.url)

    done = run(dagster_job("daily_refresh", _as_of_config(tmp_path, END)), platform.values)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "no generated dataset" not in done.stdout + done.stderr
    assert _app_state(platform.url) == before  # read, never written
    with psycopg.connect(platform.url) as conn:
        for mart in marts:
            n = conn.execute(f"select count(*) from marts.{mart}").fetchone()
            assert n is not None and n[0] > 0, mart
        origin = conn.execute(
            "select checksum from vedfin_meta.schema_migrations where version = '001'"
        ).fetchone()
        seeded = conn.execute("select count(*) from vedfin_meta.seed_runs").fetchone()
        grants = conn.execute("select nspacl from pg_namespace where nspname = 'app'").fetchone()
    assert origin == ("platform",) and seeded == (0,)
    assert grants == (None,), "the platform's grants on app are left as they were"
    assert snapshot_meta(platform.lb)["as_of_date"] == END
    assert redis_scores(platform.lb) == mart_scores(platform.url)
    with dg.DagsterInstance.from_config(platform.values["DAGSTER_HOME"]) as instance:
        observed = instance.fetch_observations(dg.AssetKey(["app", "users"]), limit=20).records
        runs = instance.get_run_records(dg.RunsFilter(job_name="daily_refresh"), limit=1)
        steps = {s.step_key for s in instance.get_run_step_stats(runs[0].dagster_run.run_id)}
    ours = [
        r.asset_observation
        for r in observed
        if r.asset_observation and "rows" in r.asset_observation.metadata
    ]
    assert ours, "the build records what the platform wrote as observations on app/*"
    assert ours[0].metadata["rows"].value == before["users"][0]
    assert "latest_created_at" in ours[0].metadata
    assert steps == {"dbt_models", "leaderboard_snapshot"}


def test_events_that_arrive_after_a_build_are_not_called_left_out(platform: Platform) -> None:
    """Written after the build (the platform never stops): the next incremental run takes
    them, so nothing is reported; only a row stamped before the arrival margin is."""
    from vedfin.dbt import events_left_out

    with psycopg.connect(platform.url) as conn:
        user = conn.execute("select min(id) from app.users").fetchone()[0]  # type: ignore[index]
        conn.execute(
            "insert into app.behavior_logs (user_id, session_id, event_type, occurred_at, device) "
            "values (%s, 990001, 'login', now(), 'web')",
            (user,),
        )
        conn.commit()
        assert events_left_out(platform.url) == 0
        conn.execute(
            """insert into app.behavior_logs (user_id, session_id, event_type, occurred_at,
                                              device, ingested_at)
               values (%s, 990002, 'login', timestamptz '2026-11-12 09:00+07', 'web',
                       timestamptz '2026-11-12 09:00:05+07')""",
            (user,),
        )
        conn.commit()
        assert events_left_out(platform.url) == 1
        conn.execute("delete from app.behavior_logs where session_id in (990001, 990002)")


def test_db_init_adopts_the_platforms_schema_and_the_generator_refuses_it(
    platform: Platform,
) -> None:
    before = _app_state(platform.url)
    done = run_cli("db", "init", env=platform.values)
    assert done.returncode == 0, done.stderr
    assert "belongs to the platform" in done.stdout + done.stderr
    # the contract's indexes leave arrivals to a scan of the log: init says what to add
    said = " ".join((done.stdout + done.stderr).split())  # as one line, however it wrapped
    assert "has no index on ingested_at" in said
    assert "create index concurrently behavior_logs_ingested_at on app.behavior_logs" in said
    with psycopg.connect(platform.url, autocommit=True) as conn:
        conn.execute("create index test_arrivals on app.behavior_logs (ingested_at)")
        try:
            with_index = run_cli("db", "init", env=platform.values)
        finally:
            conn.execute("drop index app.test_arrivals")
    assert with_index.returncode == 0, with_index.stderr
    assert "ingested_at" not in with_index.stdout + with_index.stderr
    seeded = run_cli("seed", "--scenario", "test", "--reset", env=platform.values)
    assert seeded.returncode == 3, seeded.stdout + seeded.stderr
    assert "belongs to the platform" in seeded.stderr
    assert _app_state(platform.url) == before


def test_on_prod_no_job_writes_app(platform: Platform, tmp_path: Path) -> None:
    """On the prod target the generator job refuses; the daily job builds and never
    writes app (the platform's writes are the only ones)."""
    prod = {**platform.values, "DBT_TARGET": "prod", "PGSSLMODE": "disable"}
    before = _app_state(platform.url)
    refused = run(dagster_job("generate_demo_data"), prod)
    assert refused.returncode != 0
    assert "refusing to write synthetic data to the prod target" in refused.stdout + refused.stderr
    done = run(dagster_job("daily_refresh", _as_of_config(tmp_path, END)), prod)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert _app_state(platform.url) == before


def _waiting_for_lock(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select count(*) from pg_locks where locktype = 'advisory' and not granted "
            "and objid = %s",
            (BUILD_LOCK_KEY & 0xFFFFFFFF,),
        ).fetchone()
    return int(row[0]) if row else 0


def _wait_for(predicate: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_builds_started_together_all_succeed_one_after_the_other(
    platform: Platform, tmp_path: Path
) -> None:
    """While a build holds the database's lock, a `vedfin build` and two Dagster runs are
    started: the CLI and one run wait on the lock, the other run waits for the pool `dbt`.
    Released, all three succeed (before: `relation ... already exists`)."""
    config = _as_of_config(tmp_path, END)
    holder = psycopg.connect(platform.url, autocommit=True)
    holder.execute("select pg_advisory_lock(%s)", (BUILD_LOCK_KEY,))
    outputs = {name: (tmp_path / f"{name}.out").open("w+") for name in ("cli", "run1", "run2")}
    commands = {
        "cli": [sys.executable, "-m", "vedfin_cli", "build", "--as-of", END],
        "run1": dagster_job("refresh_leaderboard", config),
        "run2": dagster_job("refresh_leaderboard", config),
    }
    procs = {
        name: subprocess.Popen(
            cmd,
            env={**os.environ, **platform.values},
            cwd=ROOT,
            stdout=outputs[name],
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, cmd in commands.items()
    }

    def text(name: str) -> str:
        outputs[name].flush()
        return (tmp_path / f"{name}.out").read_text()

    try:
        _wait_for(lambda: _waiting_for_lock(platform.url) >= 2, "two builds waiting on the lock")
        _wait_for(
            lambda: any("blocked by limit for pool dbt" in text(r) for r in ("run1", "run2")),
            "a Dagster run queued by the pool",
            timeout=300,  # each run is a `dagster job execute` process: slow to start under load
        )
        assert "waiting for the dbt build already running" in text("cli")
    finally:
        holder.close()  # the first build finishes: the others go one after the other
    codes = {name: proc.wait(timeout=900) for name, proc in procs.items()}
    assert codes == {"cli": 0, "run1": 0, "run2": 0}, {n: text(n)[-3000:] for n in procs}
    for name in procs:
        assert "already exists" not in text(name) and "duplicate key" not in text(name)


def test_a_build_that_waits_too_long_gives_up_clearly(platform: Platform) -> None:
    with psycopg.connect(platform.url, autocommit=True) as holder:
        holder.execute("select set_config('application_name', 'a long build', false)")
        holder.execute("select pg_advisory_lock(%s)", (BUILD_LOCK_KEY,))
        done = run_cli(
            "build", "--as-of", END, env={**platform.values, "VEDFIN_BUILD_LOCK_TIMEOUT": "2"}
        )
    assert done.returncode == 1
    assert "gave up after 2 s waiting for another dbt build" in done.stderr
    assert "a long build" in done.stderr
