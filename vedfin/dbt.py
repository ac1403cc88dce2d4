"""Running dbt with the resolved connection (the same environment Dagster gives it)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from vedfin.config import DBT_PROFILES_DIR, DBT_PROJECT_DIR, Settings, env_exports
from vedfin.errors import VedfinError


def dbt_executable() -> str:
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


AS_OF_ENV = "VEDFIN_AS_OF_DATE"
"""The environment variable the models read the as-of date from while they run (see the
macro as_of_date_value). A --vars value would work too, but a new one makes dbt parse the
whole project again on every daily build; this leaves partial parsing on."""


SKIP_UNIT_TESTS = ("--exclude-resource-type", "unit_test")
"""Data builds (vedfin build, the Dagster jobs) leave dbt's unit tests to CI: they check the
models' SQL on fixed inputs, so their result cannot change with the data."""


def as_of_env(as_of: date | None) -> dict[str, str]:
    return {AS_OF_ENV: as_of.isoformat() if as_of is not None else ""}


def run_dbt(
    settings: Settings,
    command: str,
    *args: str,
    as_of: date | None = None,
    target: str | None = None,
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``dbt <command>`` in dbt_project/ with the project's profiles and the resolved env."""
    env = {**os.environ, **env_exports(settings), **as_of_env(as_of)}
    if target:
        env["DBT_TARGET"] = target
    cmd = [
        dbt_executable(),
        command,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROFILES_DIR),
    ]
    cmd += list(args)
    result = subprocess.run(
        cmd, env=env, cwd=DBT_PROJECT_DIR, text=True, capture_output=capture, check=False
    )
    return result


def latest_fresh_run(url: str) -> int | None:
    from vedfin.db import connect

    with connect(url) as conn:
        row = conn.execute(
            "select max(run_id) from vedfin_meta.seed_runs where mode = 'fresh'"
        ).fetchone()
    return None if row is None else row[0]


def full_refresh_reason(url: str, as_of: date) -> str | None:
    """Why a build at ``as_of`` must rebuild the incremental models in full, or None.

    - the raw data was regenerated (`vedfin seed` without --append-days) since the
      last recorded build: ids start again, old rows would linger;
    - ``as_of`` is before the last build's: incremental models only move forward.
    """
    from vedfin.db import connect

    fresh = latest_fresh_run(url)
    with connect(url) as conn:
        row = conn.execute(
            "select fresh_run_id, as_of_date from vedfin_meta.build_state"
        ).fetchone()
    if fresh is not None and (row is None or row[0] != fresh):
        return "the raw data was regenerated since the last build"
    if row is not None and row[1] is not None and as_of < row[1]:
        return f"as-of {as_of} is before the last build's ({row[1]})"
    return None


def record_build(url: str, as_of: date) -> None:
    from vedfin.db import connect

    fresh = latest_fresh_run(url)
    with connect(url) as conn:
        conn.execute(
            """insert into vedfin_meta.build_state (id, fresh_run_id, as_of_date)
               values (true, %s, %s)
               on conflict (id) do update set fresh_run_id = excluded.fresh_run_id,
               as_of_date = excluded.as_of_date, built_at = now()""",
            (fresh, as_of),
        )
        conn.commit()


def build(
    settings: Settings,
    *,
    as_of: date | None = None,
    full_refresh: bool = False,
    select: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    target: str | None = None,
    capture: bool = False,
    unit_tests: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`dbt build`; a full refresh when asked, or when the raw data was regenerated.

    Unit tests only with ``unit_tests`` (they test the SQL on fixed inputs, not the data)."""
    from seeds_gen.scenarios import today_local
    from vedfin.db import check_schema

    check_schema(settings.database_url)
    as_of = as_of or today_local()
    reason = None if full_refresh else full_refresh_reason(settings.database_url, as_of)
    if reason:
        print(f"vedfin: {reason}: full refresh", file=sys.stderr)
        full_refresh = True
    args: list[str] = []
    if full_refresh:
        args.append("--full-refresh")
    if not unit_tests:
        args += list(SKIP_UNIT_TESTS)
    for s in select:
        args += ["--select", s]
    for e in exclude:
        args += ["--exclude", e]
    result = run_dbt(settings, "build", *args, as_of=as_of, target=target, capture=capture)
    if result.returncode != 0:
        tail = ""
        if capture:
            tail = "\n" + "\n".join((result.stdout or "").splitlines()[-25:])
        raise VedfinError(
            f"dbt build failed (exit {result.returncode}); see the log above and "
            f"{DBT_PROJECT_DIR / 'logs' / 'dbt.log'}{tail}"
        )
    if not select and not exclude:
        record_build(settings.database_url, as_of)
    left_out = events_left_out(settings.database_url)
    if left_out:
        print(f"vedfin: {left_out_message(left_out)}", file=sys.stderr)
    return result


def events_left_out(url: str) -> int:
    """Raw events that no incremental run has classified yet (0 when nothing is built).

    An incremental run classifies the events ingested since the previous run (by
    ingested_at) and those that were in the future then; a row written later with an
    ingested_at older than that (a backfill that stamps the past) is only counted by a
    full refresh.
    """
    from vedfin.db import connect

    with connect(url) as conn:
        exists = conn.execute(
            "select to_regclass('intermediate.int_behavior_logs_classified') is not null"
        ).fetchone()
        if not exists or not exists[0]:
            return 0
        # Equal counts first (two index-only counts); the exact anti-join only when they
        # differ (rows left out, or raw rows deleted since they were classified).
        counts = conn.execute(
            """select (select count(*) from app.behavior_logs),
                      (select count(*) from intermediate.int_behavior_logs_classified)"""
        ).fetchone()
        if counts is None or counts[0] == counts[1]:
            return 0
        row = conn.execute(
            """select count(*) from app.behavior_logs as raw
               where not exists (select 1 from intermediate.int_behavior_logs_classified as c
                                 where c.event_id = raw.id)"""
        ).fetchone()
    return int(row[0]) if row else 0


def left_out_message(count: int) -> str:
    return (
        f"{count:,} raw events are not counted yet: they were written with an ingested_at older "
        "than the previous build had already seen (a backfill that stamps the past); "
        "`vedfin build --full-refresh` counts them"
    )
