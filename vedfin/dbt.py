"""Running dbt with the resolved connection (the same environment Dagster gives it)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from dbt.cli.main import dbtRunner
from dbt_common.events.base_types import EventMsg

from vedfin.calendar import today_local
from vedfin.config import DBT_PROFILES_DIR, DBT_PROJECT_DIR, Settings, env_exports
from vedfin.db import check_schema, connect, describe_target
from vedfin.environment import environment
from vedfin.errors import VedfinError


def mart_names(manifest: dict[str, object]) -> tuple[str, ...]:
    """The models dbt builds in the schema marts, from a parsed manifest (manifest.json)."""
    nodes = manifest["nodes"]
    assert isinstance(nodes, dict)
    return tuple(
        sorted(
            n["name"]
            for n in nodes.values()
            if n["resource_type"] == "model" and n["config"].get("schema") == "marts"
        )
    )


def dbt_executable() -> str:
    """The virtualenv's dbt (Dagster's DbtCliResource runs it), whatever PATH says."""
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


BUILD_LOCK_KEY = 0x7665_6466_696E  # "vedfin": one dbt build at a time per database
LOCK_TIMEOUT_ENV = "VEDFIN_BUILD_LOCK_TIMEOUT"
TARGET_DIR = DBT_PROJECT_DIR / "target"
RUNS_DIR = TARGET_DIR / "runs"
KEEP_RUN_DIRS = 10
ARTIFACTS_NOTE = "dbt artifacts (run_results.json, manifest.json):"


def lock_timeout() -> float:
    """Seconds a build waits for another one to finish ($VEDFIN_BUILD_LOCK_TIMEOUT)."""
    return environment().vedfin_build_lock_timeout


def _lock_holder(conn: psycopg.Connection) -> str:
    row = conn.execute(
        """select a.application_name, a.pid, a.client_addr::text,
                  extract(epoch from now() - a.xact_start)::int, a.backend_start
           from pg_locks l join pg_stat_activity a on a.pid = l.pid
           where l.locktype = 'advisory' and l.granted
             and l.classid = %s and l.objid = %s and l.database = (
                 select oid from pg_database where datname = current_database())""",
        ((BUILD_LOCK_KEY >> 32) & 0xFFFFFFFF, BUILD_LOCK_KEY & 0xFFFFFFFF),
    ).fetchone()
    if row is None:
        return "another session"
    name, pid, addr, _, started = row
    where = f", {addr}" if addr else ""
    return f"{name or 'a session'} (backend pid {pid}{where}, connected {started:%H:%M:%S})"


@contextmanager
def build_lock(
    url: str, holder: str, *, timeout: float | None = None, say: Callable[[str], None] = print
) -> Iterator[None]:
    """Hold the database's dbt-build advisory lock (session level) while the block runs.

    Another build (the CLI, a Dagster run, another machine) holding it makes this one wait,
    saying for whom, up to ``timeout`` seconds, then fail with a clear message. The lock
    goes with the connection, so a killed build never leaves it behind."""
    timeout = lock_timeout() if timeout is None else timeout
    conn = connect(url, autocommit=True)
    try:
        conn.execute("select set_config('application_name', %s, false)", (holder[:63],))
        got = conn.execute("select pg_try_advisory_lock(%s)", (BUILD_LOCK_KEY,)).fetchone()
        if not (got and got[0]):
            say(
                f"waiting for the dbt build already running on {describe_target(url)}: "
                f"{_lock_holder(conn)}; up to {timeout:.0f} s ({LOCK_TIMEOUT_ENV})"
            )
            started = time.monotonic()
            conn.execute(f"set lock_timeout = {int(timeout * 1000)}")
            try:
                conn.execute("select pg_advisory_lock(%s)", (BUILD_LOCK_KEY,))
            except psycopg.errors.LockNotAvailable:
                raise VedfinError(
                    f"gave up after {timeout:.0f} s waiting for another dbt build on "
                    f"{describe_target(url)} ({_lock_holder(conn)}); run again when it has "
                    f"finished, or raise {LOCK_TIMEOUT_ENV}"
                ) from None
            say(f"the other build finished; starting after {time.monotonic() - started:.1f} s")
        yield
    finally:
        conn.close()  # releases the session lock


def run_target_path(command: str) -> Path:
    """A target folder of this invocation's own under target/runs/, seeded with the
    project's partial parse so dbt does not parse everything again; the oldest run
    folders beyond the last few are removed."""
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = RUNS_DIR / f"{command}-{stamp}-{os.getpid()}"
    path.mkdir()
    partial = TARGET_DIR / "partial_parse.msgpack"
    if partial.exists():
        shutil.copy2(partial, path / partial.name)
    old = sorted(RUNS_DIR.iterdir(), key=lambda p: p.stat().st_mtime)[:-KEEP_RUN_DIRS]
    for stale in old:
        shutil.rmtree(stale, ignore_errors=True)
    return path


@dataclass
class DbtResult:
    """What one dbt invocation gave: its exit status and, when captured, its log lines."""

    returncode: int
    stdout: str
    result: Any = None  # dbtRunnerResult.result: run results, or the compiled node(s)


@contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """The variables dbt reads (the profile's env_var() calls, the as-of date, the target
    path) set for one invocation, then put back; dbt runs in dbt_project/."""
    saved = {k: os.environ.get(k) for k in env}
    cwd = os.getcwd()
    os.environ.update(env)
    os.chdir(DBT_PROJECT_DIR)
    try:
        yield
    finally:
        os.chdir(cwd)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_dbt(
    settings: Settings,
    command: str,
    *args: str,
    as_of: date | None = None,
    target: str | None = None,
    capture: bool = False,
    target_path: Path | None = None,
) -> DbtResult:
    """``dbt <command>`` (e.g. "build", "docs generate") in this process, through dbt's
    programmatic entry point ``dbtRunner``, with the project's profiles and the resolved
    connection.

    ``capture``: print nothing and return dbt's log lines instead. ``target_path`` (from
    ``run_target_path``): write artifacts there instead of target/, so invocations running
    at the same time never share files."""
    env = {**env_exports(settings), **as_of_env(as_of)}
    if target:
        env["DBT_TARGET"] = target
    if target_path is not None:
        env["DBT_TARGET_PATH"] = str(target_path)
    argv = [*command.split(), "--project-dir", str(DBT_PROJECT_DIR)]
    argv += ["--profiles-dir", str(DBT_PROFILES_DIR)]
    lines: list[str] = []
    callbacks = []
    if capture:
        argv += ["--log-level", "none"]  # the console only; dbt.log keeps everything

        def keep(event: EventMsg) -> None:
            msg = getattr(event.info, "msg", "")
            if event.info.level in ("info", "warn", "error") and msg:
                lines.append(str(msg))

        callbacks.append(keep)
    argv += list(args)
    with _environment(env):
        done = dbtRunner(callbacks=callbacks).invoke(argv)  # type: ignore[arg-type]
    if done.exception is not None:
        lines.append(f"dbt failed: {done.exception}")
    return DbtResult(0 if done.success else 1, "\n".join(lines), done.result)


def compile_inline(settings: Settings, code: str, *, target: str | None = None) -> str:
    """The SQL that ``dbt compile --inline`` makes of ``code`` (a Jinja expression)."""
    done = run_dbt(settings, "compile", "--inline", code, target=target, capture=True)
    if done.returncode != 0:
        raise VedfinError(f"dbt compile --inline failed:\n{done.stdout[-3000:]}")
    return str(done.result.results[0].node.compiled_code)


def docs_generate(settings: Settings, as_of: date | None = None) -> Path:
    """``dbt docs generate`` on the resolved database, in a target folder of its own; the
    folder (index.html, manifest.json, catalog.json)."""
    path = run_target_path("docs")
    done = run_dbt(settings, "docs generate", as_of=as_of, capture=True, target_path=path)
    if done.returncode != 0:
        raise VedfinError(f"dbt docs generate failed:\n{done.stdout[-3000:]}")
    return path


def docs_serve(settings: Settings, path: Path, host: str, port: int) -> None:
    """``dbt docs serve`` of ``path`` on ``host:port`` until interrupted."""
    args = ("--host", host, "--port", str(port), "--no-browser")
    done = run_dbt(settings, "docs serve", *args, target_path=path)
    if done.returncode != 0:
        raise VedfinError(f"could not serve the dbt docs on {host}:{port}: {done.stdout[-500:]}")


def latest_fresh_run(url: str) -> int | None:
    with connect(url) as conn:
        try:
            row = conn.execute(
                "select max(run_id) from vedfin_meta.seed_runs where mode = 'fresh'"
            ).fetchone()
        except psycopg.errors.UndefinedTable:  # no bookkeeping yet: nothing generated
            return None
    return None if row is None else row[0]


def full_refresh_reason(url: str, as_of: date) -> str | None:
    """Why a build at ``as_of`` must rebuild the incremental models in full, or None.

    - the raw data was regenerated (`vedfin seed` without --append-days) since the
      last recorded build: ids start again, old rows would linger;
    - ``as_of`` is before the last build's: incremental models only move forward.
    """
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


def record_build(url: str, as_of: date, *, whole: bool = True) -> None:
    """Remember what the incremental models were built from.

    A whole build records the generated dataset it saw and its as-of date. A partial one
    (a selection, e.g. the five-minute leaderboard run) moved some incremental models to
    ``as_of`` too: it only pushes the recorded as-of date forward, so that a later build
    for an earlier date is still rebuilt in full."""
    with connect(url) as conn:
        if whole:
            conn.execute(
                """insert into vedfin_meta.build_state (id, fresh_run_id, as_of_date)
                   values (true, %s, %s)
                   on conflict (id) do update set fresh_run_id = excluded.fresh_run_id,
                   as_of_date = excluded.as_of_date, built_at = now()""",
                (latest_fresh_run(url), as_of),
            )
        else:
            conn.execute(
                """insert into vedfin_meta.build_state (id, fresh_run_id, as_of_date)
                   values (true, null, %s)
                   on conflict (id) do update
                   set as_of_date = greatest(build_state.as_of_date, excluded.as_of_date)""",
                (as_of,),
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
) -> DbtResult:
    """`dbt build`; a full refresh when asked, or when the raw data was regenerated.

    Unit tests only with ``unit_tests`` (they test the SQL on fixed inputs, not the data)."""
    check_schema(settings.database_url)
    as_of = as_of or today_local()
    holder = f"vedfin build (pid {os.getpid()})"
    with build_lock(settings.database_url, holder, say=_say):
        return _build_locked(
            settings, as_of, full_refresh, select, exclude, target, capture, unit_tests
        )


def _say(message: str) -> None:
    print(f"vedfin: {message}", file=sys.stderr, flush=True)


def _build_locked(
    settings: Settings,
    as_of: date,
    full_refresh: bool,
    select: tuple[str, ...],
    exclude: tuple[str, ...],
    target: str | None,
    capture: bool,
    unit_tests: bool,
) -> DbtResult:
    reason = None if full_refresh else full_refresh_reason(settings.database_url, as_of)
    if reason:
        _say(f"{reason}: full refresh")
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
    artifacts = run_target_path("build")
    result = run_dbt(
        settings, "build", *args, as_of=as_of, target=target, capture=capture, target_path=artifacts
    )
    if result.returncode != 0:
        tail = ""
        if capture:
            tail = "\n" + "\n".join((result.stdout or "").splitlines()[-25:])
        lost = connection_lost(settings.database_url, artifacts)
        raise VedfinError(
            (f"{lost}; " if lost else "")
            + f"dbt build failed (exit {result.returncode}); see the log above, "
            f"{DBT_PROJECT_DIR / 'logs' / 'dbt.log'} and {artifacts / 'run_results.json'}{tail}"
        )
    _say(f"{ARTIFACTS_NOTE} {artifacts}")
    whole = not select and not exclude
    record_build(settings.database_url, as_of, whole=whole)
    if full_refresh:
        settled = vacuum_rebuilt(settings.database_url)
        _say(settled.describe())
    if whole:  # a selection (the five-minute run) would only repeat the daily build's count
        left_out = events_left_out(settings.database_url)
        if left_out:
            _say(left_out_message(left_out))
    return result


REBUILT_SCHEMAS = ("intermediate", "marts")
"""Where a full refresh writes every table anew (the dbt models' custom schemas)."""


@dataclass
class Vacuumed:
    tables: int
    rows: int
    seconds: float

    def describe(self) -> str:
        return (
            f"vacuumed and analyzed the {self.tables} tables the full refresh wrote "
            f"({self.rows:,} rows) in {self.seconds:.1f} s"
        )


def vacuum_rebuilt(url: str) -> Vacuumed:
    """VACUUM (ANALYZE) every table a full refresh rewrote, before anything else runs.

    A table written by CREATE TABLE AS has no statistics, no visibility map and no hint
    bits. Left to autovacuum, its vacuum (throttled, minutes for the 34 million rows of
    int_behavior_logs_classified at 300,000 users) starts during or after the build and
    competes with the next runs for the machine, and the first reader of every page writes
    it again to set its hint bits; in the scaling benchmark at 300,000 users, models of the
    daily build that followed a full build took up to 3x as long as once that vacuum had
    finished (int_user_days 9.9 s against 3.7 s, int_sessions 8.5 s against 2.7 s).
    Done here, unthrottled, it is part of the full refresh's own time, the counts of
    ``events_left_out`` are index-only, and the incremental runs start on settled tables.
    VACUUM takes a lock that readers and writers do not wait for."""
    started = time.perf_counter()
    with connect(url, autocommit=True) as conn:  # VACUUM: never in a transaction
        tables = [
            name
            for (name,) in conn.execute(
                """select format('%%I.%%I', n.nspname, c.relname)
                   from pg_class c join pg_namespace n on n.oid = c.relnamespace
                   where c.relkind = 'r' and n.nspname = any(%s)
                     and pg_has_role(c.relowner, 'usage')
                   order by pg_relation_size(c.oid) desc""",
                (list(REBUILT_SCHEMAS),),
            )
        ]
        for name in tables:
            conn.execute(f"vacuum (analyze) {name}")
        rows = conn.execute(  # as the vacuums just counted them
            "select coalesce(sum(reltuples), 0)::bigint from pg_class "
            "where oid = any(%s::regclass[])",
            (tables,),
        ).fetchone()
    return Vacuumed(len(tables), int(rows[0]) if rows else 0, time.perf_counter() - started)


LOST_CONNECTION = ("server closed the connection", "terminating connection", "connection to server")


def connection_lost(url: str, artifacts: Path) -> str | None:
    """What happened to PostgreSQL when a build failed for lack of it, or None.

    Every model is its own transaction and a table is swapped in only when whole, so a
    build that loses the server leaves each mart as it was or as this build finished it."""
    try:
        results = json.loads((artifacts / "run_results.json").read_text())["results"]
    except (OSError, ValueError, KeyError):
        results = []
    messages = " ".join(str(r.get("message") or "") for r in results if r.get("status") == "error")
    if not any(m in messages for m in LOST_CONNECTION):
        return None
    try:
        connect(url).close()
        alive = True
    except VedfinError:
        alive = False
    where = describe_target(url)
    what = (
        f"the build's connections to {where} were terminated"
        if alive
        else f"PostgreSQL at {where} went away during the build"
    )
    return (
        f"{what}: every mart is whole (those the build finished are new, the others as they "
        "were); run the build again"
    )


def arrival_margin_minutes() -> int:
    """The dbt var arrival_margin_minutes, as dbt_project.yml sets it."""
    import yaml

    data = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    return int(data["vars"]["arrival_margin_minutes"])


def events_left_out(url: str) -> int:
    """Raw events that no incremental run will classify (0 when nothing is built).

    Checked after whole builds only (`vedfin build` without a selection, the Dagster
    daily and full jobs): it counts the whole raw log (two index-only counts, 2.2 s at
    34.5 million events), and the five-minute leaderboard run would only repeat the
    daily build's answer every five minutes.

    An incremental run classifies the events ingested since the previous run (by
    ingested_at, minus the arrival margin) and those that were in the future then; a row
    written later with an ingested_at older than that (a backfill that stamps the past) is
    only counted by a full refresh. Rows that arrived after the last build are not left
    out: the next incremental run takes them.
    """
    with connect(url) as conn:
        exists = conn.execute(
            "select to_regclass('intermediate.int_behavior_logs_classified') is not null"
        ).fetchone()
        if not exists or not exists[0]:
            return 0
        # Equal counts first (two index-only counts); the exact anti-join only when they
        # differ (rows left out or still to come, or raw rows deleted since).
        counts = conn.execute(
            """select (select count(*) from app.behavior_logs),
                      (select count(*) from intermediate.int_behavior_logs_classified)"""
        ).fetchone()
        if counts is None or counts[0] == counts[1]:
            return 0
        row = conn.execute(
            """select count(*) from app.behavior_logs as raw
               where raw.ingested_at < (
                       select max(ingested_at) from intermediate.int_behavior_logs_classified
                   ) - make_interval(mins => %s)
                 and not exists (select 1 from intermediate.int_behavior_logs_classified as c
                                 where c.event_id = raw.id)""",
            (arrival_margin_minutes(),),
        ).fetchone()
    return int(row[0]) if row else 0


def left_out_message(count: int) -> str:
    return (
        f"{count:,} raw events are not counted yet: they were written with an ingested_at older "
        "than the previous build had already seen (a backfill that stamps the past); "
        "`vedfin build --full-refresh` counts them"
    )
