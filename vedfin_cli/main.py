"""``vedfin``: the single entry point of the project.

Every command resolves the same connection settings (``vedfin.config``): the
servers named by ``DATABASE_URL`` / ``REDIS_URL``, or the project's own embedded
PostgreSQL and Redis under ``.vedfin/``.

Each command imports the modules behind it (dbt, the generator with numpy, Dagster, the
benchmarks) when it runs, not at start-up: measured here, `vedfin --help` and `vedfin env`
answer in 0.26 s, against 2.4 s more with all of them imported up front. There is no
import cycle to dodge (tests/test_architecture.py).
"""

from __future__ import annotations

import json as _json
import re
import shlex
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from vedfin import __version__
from vedfin.config import apply_env, env_exports, resolve, state_dir
from vedfin.environment import environment
from vedfin.errors import VedfinError
from vedfin.services import EmbeddedPostgres, EmbeddedRedis, state_lock

console = Console(stderr=True, soft_wrap=True)


class VedfinGroup(click.Group):
    """Turns known errors into one line and an exit code, not a traceback wall."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VedfinError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            sys.exit(exc.exit_code)


@click.group(cls=VedfinGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vedfin")
def cli() -> None:
    """VedFin analytics: synthetic data, dbt marts, Dagster, a Redis leaderboard.

    Without DATABASE_URL / REDIS_URL, vedfin runs its own PostgreSQL and Redis
    under .vedfin/ (started on demand, stopped by `vedfin down`).
    """


@cli.command()
def up() -> None:
    """Start (or reuse) the services and print where they are."""
    settings = resolve(start=True)
    _print_status(settings.embedded_postgres, settings.embedded_redis)
    console.print('Use them from your shell with:  [bold]eval "$(vedfin env)"[/]')


@cli.command()
def down() -> None:
    """Stop the embedded PostgreSQL and Redis (their data stays in .vedfin/)."""
    state = state_dir()
    with state_lock(state):
        pg_stopped = EmbeddedPostgres(state).stop()
        redis_stopped = EmbeddedRedis(state).stop()
    console.print(f"postgresql: {'stopped' if pg_stopped else 'was not running'}")
    console.print(f"redis: {'stopped' if redis_stopped else 'was not running'}")


@cli.command()
def status() -> None:
    """Show which servers this shell would use and whether they run."""
    env = environment()
    _print_status(not env.database_url, not env.redis_url)


def _print_status(embedded_pg: bool, embedded_redis: bool) -> None:
    env = environment()
    state = state_dir()
    click.echo(f"state folder: {state}")
    for embedded, svc, env_name, url in (
        (embedded_pg, EmbeddedPostgres(state).status(), "DATABASE_URL", env.database_url),
        (embedded_redis, EmbeddedRedis(state).status(), "REDIS_URL", env.redis_url),
    ):
        if embedded:
            state_word = f"running (pid {svc.pid})" if svc.running else "stopped"
            click.echo(f"{svc.name:<11} embedded  {state_word:<20} {svc.url or '-'}")
            click.echo(f"{'':<11} data {svc.data_dir}  log {svc.log_file}")
        else:
            click.echo(f"{svc.name:<11} external  from ${env_name:<14} {_redact(url)}")


def _redact(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", url)


@cli.command("env")
@click.option("--no-start", is_flag=True, help="Do not start the embedded servers; fail if down.")
def env_cmd(no_start: bool) -> None:
    """Print `export` lines for DATABASE_URL, REDIS_URL, DAGSTER_HOME, PG* and dbt.

    Use as:  eval "$(vedfin env)"  then run dbt, dagster or psql directly.
    """
    settings = resolve(start=not no_start)
    for key, value in env_exports(settings).items():
        click.echo(f"export {key}={shlex.quote(value)}")


@cli.group()
def db() -> None:
    """The raw schema `app`: migrations."""


@db.command("init")
def db_init() -> None:
    """Apply the versioned migrations (idempotent; refuses on drift).

    On the platform's own database, where the schema app was there before vedfin, the app
    migration is not applied: app is checked against the data contract and only vedfin's
    bookkeeping (schema vedfin_meta) is created."""
    from vedfin.db import arrival_index_advice, connect, describe_target, init_db

    settings = resolve()
    result = init_db(settings.database_url)
    where = describe_target(settings.database_url)
    if result.platform_app:
        console.print(
            f"{where}: schema app belongs to the platform and follows the contract; "
            "vedfin reads it and never writes it"
        )
        with connect(settings.database_url) as conn:
            advice = arrival_index_advice(conn)
        if advice:
            console.print(f"note: {advice}")
    if result.applied:
        console.print(
            f"applied {len(result.applied)} migration(s) to {where}: " + ", ".join(result.applied)
        )
    else:
        console.print(f"{where}: schema app is up to date ({len(result.already)} migration(s))")


@db.command("roles")
@click.option(
    "--env",
    "env",
    type=click.Choice(["dev", "staging", "prod"]),
    required=True,
    help="Which environment's roles, grants and logging to apply.",
)
@click.option(
    "--browser-database",
    default=None,
    metavar="NAME",
    help="Also create database NAME owned by the admin-browser role (NocoDB's metadata).",
)
def db_roles(env: str, browser_database: str | None) -> None:
    """Create or update, idempotently, the roles this environment needs.

    \b
    bi_reader             SELECT on marts (every environment)
    vedfin_admin_browser  the admin browser (NocoDB): everything in dev; SELECT in
                          staging and prod, never app.users' email, full_name, phone;
                          in prod every statement audit-logged (pgaudit if loaded,
                          else log_statement = 'all' on the role)

    Also log_min_duration_statement on the database (dev off, staging 500 ms, prod
    200 ms) and pg_stat_statements where the server has it. Passwords from
    BI_READER_PASSWORD and ADMIN_BROWSER_PASSWORD (required in prod). Needs a superuser.
    """
    from vedfin.roles import apply_roles

    report = apply_roles(resolve().database_url, env, browser_database)
    console.print(f"[bold]{report.target}[/]: roles for {env}")
    for line in report.lines:
        console.print(f"  {line}")


@db.command("slow")
@click.option("-n", "limit", type=click.IntRange(1, 1000), default=10, show_default=True)
def db_slow(limit: int) -> None:
    """The slowest statements that read the marts (pg_stat_statements, by mean time)."""
    from vedfin.roles import slow_mart_queries

    found = slow_mart_queries(resolve().database_url, limit)
    table = Table(title="slowest mart queries (pg_stat_statements)")
    for col in ("calls", "mean ms", "max ms", "rows", "query"):
        table.add_column(col, overflow="fold")
    for q in found:
        text = " ".join(q.query.split())
        table.add_row(
            f"{q.calls:,}", f"{q.mean_ms:.2f}", f"{q.max_ms:.2f}", f"{q.rows:,}", text[:160]
        )
    Console(width=160).print(table)
    if not found:
        click.echo("no statement on the marts recorded yet", err=True)


@cli.command()
@click.option(
    "--scenario",
    type=click.Choice(["test", "dev", "demo", "benchmark"]),
    help="Named size: test 20 users/5 courses, dev 50/10, demo 1,000/14, "
    "benchmark 10,000/14 over 180 days. [default: dev]",
)
@click.option(
    "--users", type=click.IntRange(min=1), help="Number of users (overrides the scenario)."
)
@click.option("--days", type=click.IntRange(1, 3650), help="Days of history ending on --end-date.")
@click.option("--courses", type=click.IntRange(1, 14), help="Courses from the catalogue (1-14).")
@click.option(
    "--seed", type=int, help="Random seed; with --end-date the output is identical every time."
)
@click.option(
    "--end-date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Last local date of the data (YYYY-MM-DD). [default: today, up to now]",
)
@click.option(
    "--append-days",
    type=click.IntRange(min=1),
    help="Extend the existing dataset by N more days instead of generating anew.",
)
@click.option(
    "--bad-events",
    "bad_events",
    type=click.FloatRange(0, 0.5),
    default=0.0,
    show_default=True,
    help="Also write this share of events that break the contract's rules "
    "(unknown user/type, future, before signup, duplicate).",
)
@click.option("--reset", is_flag=True, help="Replace a non-empty app schema.")
@click.option("--force", is_flag=True, help="Allow writing to the prod target.")
@click.option(
    "--target",
    type=click.Choice(["dev", "test", "staging", "prod"]),
    help="Target environment (default: $DBT_TARGET or dev); prod is refused.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    help="Processes that simulate the users of a fresh load while this one encodes and "
    "writes; the rows are the same with any number. [default: the cores beyond two, "
    "none on two cores or fewer]",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def seed(
    scenario: str | None,
    users: int | None,
    days: int | None,
    courses: int | None,
    seed: int | None,
    end_date: Any,
    append_days: int | None,
    bad_events: float,
    reset: bool,
    force: bool,
    target: str | None,
    workers: int | None,
    quiet: bool,
) -> None:
    """Generate synthetic platform data into the raw schema `app`.

    \b
    Examples:
      vedfin seed --scenario dev
      vedfin seed --scenario benchmark --reset
      vedfin seed --users 5000 --days 90 --seed 7 --end-date 2026-11-20
      vedfin seed --append-days 1          # one more day, for incremental builds
    """
    from seeds_gen.cli_support import run_seed

    settings = resolve()
    run_seed(
        settings.database_url,
        target or settings.target,
        scenario=scenario,
        users=users,
        days=days,
        courses=courses,
        seed=seed,
        end_date=end_date.date() if end_date else None,
        append_days=append_days,
        bad_events=bad_events,
        reset=reset,
        force=force,
        workers=workers,
        quiet=quiet,
    )


@cli.command()
@click.option(
    "--events-per-second",
    "events_per_second",
    type=click.FloatRange(min=0, min_open=True),
    help="Behavior events written per second. [default: the evening peak of the data's "
    "last 7 days with events, at least 1.0]",
)
@click.option(
    "--seed", type=int, help="Random seed: the same actions, users and lessons every time."
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds. [default: run until Ctrl-C]",
)
@click.option(
    "--max-events",
    "max_events",
    type=click.IntRange(min=1),
    help="Stop after this many behavior events.",
)
@click.option("--force", is_flag=True, help="Allow writing to the prod target.")
@click.option(
    "--target",
    type=click.Choice(["dev", "test", "staging", "prod"]),
    help="Target environment (default: $DBT_TARGET or dev); prod is refused.",
)
@click.option("-q", "--quiet", is_flag=True, help="No live line (the summary still prints).")
def simulate(
    events_per_second: float | None,
    seed: int | None,
    duration: float | None,
    max_events: int | None,
    force: bool,
    target: str | None,
    quiet: bool,
) -> None:
    """Act as the platform's application on top of an existing dataset, live.

    Signups, logins, enrollments, lesson starts, progress and completions (user_progress
    updated in place), achievements and streaks, each action one transaction stamped with
    the wall clock. Ctrl-C (or SIGTERM) stops cleanly: nothing is half-written.

    \b
    Examples:
      vedfin simulate                          # until Ctrl-C, at the data's evening load
      vedfin simulate --events-per-second 50 --seed 7
      vedfin simulate --duration 60 --max-events 1000 -q
    """
    from seeds_gen.live import run_simulate

    settings = resolve()
    run_simulate(
        settings.database_url,
        target or settings.target,
        seed=seed,
        events_per_second=events_per_second,
        duration=duration,
        max_events=max_events,
        force=force,
        quiet=quiet,
    )


@cli.command("build")
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The as-of local date (dbt var as_of_date). [default: today in Asia/Ho_Chi_Minh]",
)
@click.option("--full-refresh", is_flag=True, help="Rebuild incremental models from scratch.")
@click.option("-s", "--select", "select", multiple=True, help="dbt selection (repeatable).")
@click.option("--exclude", multiple=True, help="dbt exclusion (repeatable).")
@click.option(
    "--target",
    type=click.Choice(["dev", "test", "staging", "prod"]),
    help="dbt target [default: $DBT_TARGET or dev].",
)
@click.option(
    "--unit-tests",
    is_flag=True,
    help="Also run dbt's unit tests (the SQL logic on fixed inputs; `make test` runs them).",
)
def build_cmd(
    as_of: Any,
    full_refresh: bool,
    select: tuple[str, ...],
    exclude: tuple[str, ...],
    target: str | None,
    unit_tests: bool,
) -> None:
    """Run `dbt build` (models and their data tests) with the resolved connection.

    Unit tests check the models' logic on fixed inputs, not the data, so data builds skip
    them (dbt's advice for production); --unit-tests adds them, and `make test` runs them
    on every supported PostgreSQL.

    \b
    Examples:
      vedfin build
      vedfin build --as-of 2026-11-20 --full-refresh
      vedfin build -s marts.engagement --unit-tests
    """
    from vedfin.dbt import build

    settings = resolve()
    build(
        settings,
        as_of=as_of.date() if as_of else None,
        full_refresh=full_refresh,
        select=select,
        exclude=exclude,
        target=target,
        unit_tests=unit_tests,
    )


_compile_as_of = click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="As-of date for compiling the models [default: today, local].",
)
"""The --as-of of the commands that only compile the models (erd, docs)."""


@cli.command("erd")
@click.option(
    "--artifacts",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Use the manifest.json and catalog.json in this folder as they are (e.g. "
    "dbt_project/target) instead of running `dbt docs generate` first.",
)
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write the diagrams to [default: docs/erd].",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 when a diagram differs from what is in the folder.",
)
@click.option(
    "--clean-build",
    is_flag=True,
    help="Build a scratch database (<db>_erd: the test scenario, a full dbt build) and "
    "draw from it, so the diagrams depend on the code alone (make erd, pre-commit).",
)
@_compile_as_of
def erd_cmd(
    artifacts: Path | None, output: Path | None, check: bool, clean_build: bool, as_of: Any
) -> None:
    """Mermaid ER diagrams of the project (dbterd, from dbt's artifacts) in docs/erd/.

    Without --artifacts it first runs `dbt docs generate` on the resolved database, which
    must hold the built marts (`vedfin build`): the catalog gives every column its type.
    Four files: erd-project.md and the domain views erd-learning.md, erd-gamification.md,
    erd-analytics.md.

    \b
    Examples:
      vedfin erd --clean-build          # what make erd and pre-commit run
      vedfin erd                        # from the resolved database as it is built
      vedfin erd --artifacts dbt_project/target --check
    """
    import time

    from vedfin import erd
    from vedfin.dbt import docs_generate

    started = time.perf_counter()
    if clean_build and artifacts is None:
        artifacts = _clean_build(resolve())
        took = time.perf_counter() - started
        click.echo(f"clean build and dbt docs generate: {took:.1f} s", err=True)
    elif artifacts is None:
        artifacts = docs_generate(resolve(), as_of.date() if as_of else None)
        click.echo(f"dbt docs generate: {time.perf_counter() - started:.1f} s", err=True)
    rendered = time.perf_counter()
    pages = erd.render(artifacts)
    result = erd.write(pages, output or erd.ERD_DIR, check=check)
    took = time.perf_counter() - rendered
    for path in result.written:
        state = "differs" if path in result.changed else "up to date"
        if not check and path in result.changed:
            state = "written"
        click.echo(f"{path}: {state}", err=True)
    click.echo(f"{len(pages)} diagrams from {artifacts} in {took:.2f} s", err=True)
    if check and result.changed:
        raise click.exceptions.Exit(1)


ERD_AS_OF = "2026-11-20"
PROJECT_ROOT_BENCH = Path(__file__).resolve().parent.parent / "bench"


def _clean_build(settings: Any) -> Path:
    """The test scenario in the scratch database <db>_erd, built in full, its docs
    generated: artifacts that depend on the project's code only."""
    from dataclasses import replace
    from datetime import date

    from seeds_gen.load import load_fresh
    from seeds_gen.scenarios import make_spec
    from vedfin.config import database_on
    from vedfin.dbt import build, docs_generate

    as_of = date.fromisoformat(ERD_AS_OF)
    url = database_on(settings.database_url, f"{settings.pg_params.get('dbname') or 'vedfin'}_erd")
    scratch = replace(settings, database_url=url)
    load_fresh(url, make_spec("test", end_date=as_of), target=settings.target, reset=True)
    build(scratch, as_of=as_of, full_refresh=True, capture=True)
    return docs_generate(scratch, as_of)


@cli.command("docs")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on.")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=8080, show_default=True, help="Port."
)
@click.option(
    "--generate/--no-generate",
    default=True,
    show_default=True,
    help="Run `dbt docs generate` on the resolved database first; --no-generate serves the "
    "last generated docs.",
)
@_compile_as_of
def docs_cmd(host: str, port: int, generate: bool, as_of: Any) -> None:
    """Generate dbt's docs (every mart, column and metric definition, lineage from the
    sources to the marts and their exposures) and serve them; Ctrl-C stops.

    The database should hold the built marts (`vedfin build`) so that the catalog lists
    every column with its type. `make docs` runs this (PORT=... for another port).

    \b
    Examples:
      vedfin docs
      vedfin docs --port 8081 --no-generate
    """
    from vedfin.dbt import RUNS_DIR, docs_generate, docs_serve

    settings = resolve()
    if generate:
        path = docs_generate(settings, as_of.date() if as_of else None)
    else:
        found = sorted(RUNS_DIR.glob("docs-*/catalog.json"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise VedfinError("no generated docs yet: run `vedfin docs` without --no-generate")
        path = found[-1].parent
    click.echo(f"dbt docs from {path} on http://{host}:{port} (Ctrl-C stops)", err=True)
    docs_serve(settings, path, host, port)


@cli.command("parse")
def parse_cmd() -> None:
    """Write dbt's manifest (`dbt parse`) that the Dagster definitions load.

    Run by `make run`, `make ui`, CI and the tests; `dagster dev` also does it itself.
    """
    from vedfin.dbt import run_dbt

    settings = resolve()
    result = run_dbt(settings, "parse", "--quiet", capture=True)
    if result.returncode != 0:
        raise VedfinError(f"dbt parse failed:\n{(result.stdout or '')[-3000:]}")
    click.echo("dbt manifest written: dbt_project/target/manifest.json", err=True)


@cli.group()
def leaderboard() -> None:
    """The Redis leaderboard snapshot: read it, publish it, check it."""


def _leaderboard_settings(prefix: str | None) -> Any:
    from vedfin.leaderboard import LeaderboardSettings

    settings = resolve()
    return settings, LeaderboardSettings.from_env(settings.redis_url, settings.target, prefix)


_prefix_option = click.option(
    "--prefix", help="Key prefix [default: $LEADERBOARD_PREFIX or leaderboard:]."
)


@leaderboard.command("top")
@click.option(
    "-n",
    "n",
    type=click.IntRange(0, 10_000),
    default=10,
    show_default=True,
    help="How many places (ties at the boundary are cut by user id).",
)
@click.option("--weekly", is_flag=True, help="Points earned in the last 7 local days.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_prefix_option
def leaderboard_top(n: int, weekly: bool, as_json: bool, prefix: str | None) -> None:
    """The top N with masked names, from the Redis snapshot (or the mart if it is missing).

    \b
    Examples:
      vedfin leaderboard top
      vedfin leaderboard top -n 100 --weekly
    """

    from vedfin.leaderboard import LeaderboardReader

    settings, lb = _leaderboard_settings(prefix)
    reader = LeaderboardReader(lb, settings.database_url)
    result = reader.top(n, weekly=weekly)
    if as_json:
        click.echo(
            _json.dumps(
                {
                    "source": result.source,
                    "note": result.note,
                    "meta": result.meta,
                    "entries": [asdict(e) for e in result.entries],
                },
                ensure_ascii=False,
            )
        )
        return
    title = ("weekly" if weekly else "all-time") + f" leaderboard, top {n}"
    table = Table(title=title)
    table.add_column("rank", justify="right")
    table.add_column("user_id", justify="right")
    table.add_column("name")
    table.add_column("points", justify="right")
    for e in result.entries:
        table.add_row(str(e.rank), str(e.user_id), e.display_name, f"{e.points:,}")
    Console().print(table)
    err = Console(stderr=True)
    if result.hit:
        stale = " [yellow](stale)[/]" if lb.is_stale(result.meta) else ""
        err.print(
            f"from Redis: snapshot version {result.meta.get('version')}, published "
            f"{result.meta.get('snapshot_at')}, as of {result.meta.get('as_of_date')}"
            f"{stale}"
        )
    else:
        err.print(f"[yellow]from PostgreSQL: {result.note}[/]")


@leaderboard.command("publish")
@_prefix_option
@click.option(
    "--full",
    is_flag=True,
    help="Send a whole new snapshot even when only a few entries changed (by default "
    "only the changed entries are written when Redis still holds the last snapshot).",
)
def leaderboard_publish(prefix: str | None, full: bool) -> None:
    """Publish marts.fct_leaderboard to Redis now (what the Dagster run does)."""
    from vedfin.leaderboard import publish

    settings, lb = _leaderboard_settings(prefix)
    result = publish(settings.database_url, lb, run_id="cli", full=full)
    click.echo(result.describe(), err=True)


@leaderboard.command("status")
@_prefix_option
def leaderboard_status(prefix: str | None) -> None:
    """The snapshot's meta; exit 1 when it is missing or stale (older than
    $LEADERBOARD_MAX_AGE_SECONDS, default 900)."""
    from vedfin.leaderboard import describe_redis, snapshot_meta

    _settings, lb = _leaderboard_settings(prefix)
    meta = snapshot_meta(lb)
    where = f"{describe_redis(lb.redis_url)} prefix {lb.prefix!r}"
    if not meta:
        raise VedfinError(
            f"no leaderboard snapshot at {where}: run full_pipeline or `vedfin leaderboard publish`"
        )
    for key in sorted(meta):
        click.echo(f"{key}: {meta[key]}")
    if lb.is_stale(meta):
        raise VedfinError(f"the snapshot at {where} is older than {lb.max_age_seconds} s")


@cli.command("demo")
@click.option("--port", type=int, default=3000, show_default=True, help="Dagster UI port.")
@click.option(
    "--interval",
    type=click.IntRange(min=5),
    default=60,
    show_default=True,
    help="Leaderboard sensor interval for the demo (production: 300).",
)
@click.option(
    "--events-per-second",
    type=click.FloatRange(min=0, min_open=True),
    help="Simulator rate [default: the demo data's evening peak].",
)
@click.option("--seed", type=int, help="Simulator seed [default: random, printed].")
@click.option(
    "--database",
    default="vedfin_demo",
    show_default=True,
    help="The demo's own database on the resolved server (created when missing).",
)
def demo_cmd(
    port: int, interval: int, events_per_second: float | None, seed: int | None, database: str
) -> None:
    """Watch the leaderboard move: the demo scenario in a database of its own, the Dagster UI
    (sensor on) and the live simulator together; Ctrl-C stops both.

    \b
    Example:
      vedfin demo                 # or: make demo
      vedfin demo --interval 30 --events-per-second 20
    """
    from vedfin_cli.demo import run_demo

    run_demo(
        resolve(),
        database=database,
        port=port,
        interval=interval,
        events_per_second=events_per_second,
        seed=seed,
    )


def _user_counts(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    """A comma-separated list of user counts (each at least 10), or a usage error."""
    if value is None:
        return None
    try:
        counts = [int(x.replace("_", "")) for x in value.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers") from None
    if not counts or min(counts) < 10:
        raise click.BadParameter("give one or more user counts, each at least 10")
    return counts


@cli.group()
def bench() -> None:
    """Benchmarks that print their figures and ratios (not timed tests)."""


@bench.command("seed")
@click.option(
    "--database-url",
    help="Scratch database to use [default: vedfin_bench on the "
    "resolved server]. Its app schema is replaced.",
)
@click.option(
    "--big-users",
    type=click.IntRange(min=1000),
    default=40_000,
    show_default=True,
    help="Users for the few-million-events load.",
)
@click.option(
    "--rss-users",
    default="10000,100000",
    show_default=True,
    callback=_user_counts,
    help="Comma-separated sizes for the peak-RSS measurement.",
)
@click.option(
    "--naive-events",
    type=click.IntRange(min=1000),
    default=20_000,
    show_default=True,
    help="Events the naive way inserts (its rate is measured on this sample).",
)
def bench_seed(
    database_url: str | None, big_users: int, rss_users: list[int], naive_events: int
) -> None:
    """Generation and load speed, the naive way side by side, and memory."""
    from benchmarks.seed import print_figures, run

    settings = resolve()
    print_figures(
        run(
            settings.database_url,
            database_url=database_url,
            big_users=big_users,
            rss_sizes=rss_users,
            naive_events=naive_events,
        )
    )


@bench.command("leaderboard")
@click.option(
    "--database-url",
    help="Scratch database [default: vedfin_bench_lb on the resolved server]; its "
    "marts.fct_leaderboard is replaced.",
)
@click.option(
    "--sizes",
    default="10000,100000",
    show_default=True,
    help="Comma-separated leaderboard sizes to publish.",
)
@click.option(
    "--reads",
    type=click.IntRange(min=100),
    default=2000,
    show_default=True,
    help="Top-100 reads per path for the latency percentiles.",
)
def bench_leaderboard(database_url: str | None, sizes: str, reads: int) -> None:
    """Publish time, top-100 read p99 (Redis vs SQL) and hit rate during refreshes."""
    from benchmarks.leaderboard import print_figures, run
    from benchmarks.seed import bench_database

    settings = resolve()
    url = database_url or bench_database(settings.database_url, None, name="vedfin_bench_lb")
    print_figures(
        run(
            url,
            settings.redis_url,
            sizes=[int(x) for x in sizes.split(",") if x.strip()],
            reads=reads,
        )
    )


@bench.command("api")
@click.option(
    "--database-url",
    help="Scratch database [default: vedfin_bench_api on the resolved server]; its app "
    "schema and marts are replaced unless --no-build.",
)
@click.option("--users", type=click.IntRange(min=1), default=None, help="Users to generate "
              "[default: the benchmark scenario's 10,000].")  # fmt: skip
@click.option("--clients", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Concurrent callers (threads sharing one pool).")  # fmt: skip
@click.option("--seconds", type=click.FloatRange(min=1), default=20, show_default=True,
              help="How long the callers run.")  # fmt: skip
@click.option("--build/--no-build", "prepare", default=True, show_default=True,
              help="Seed and build first; --no-build uses the marts as they are.")  # fmt: skip
def bench_api(
    database_url: str | None, users: int | None, clients: int, seconds: float, prepare: bool
) -> None:
    """Latency of the typed analytics API (vedfin.analytics) under concurrent callers."""
    from benchmarks.api import print_figures, run
    from benchmarks.seed import bench_database

    settings = resolve()
    url = database_url or bench_database(settings.database_url, None, name="vedfin_bench_api")
    print_figures(
        run(settings, url, users=users, clients=clients, seconds=seconds, prepare=prepare)
    )


@bench.command("all")
@click.option("--quick", is_flag=True,
              help="Tiny sizes (seconds per benchmark): CI's check that every benchmark runs; "
              "the figures say nothing about speed.")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for report.json, REPORT.md, scaling.png and history.png "
              "[default: bench/, or bench/quick/ with --quick].")  # fmt: skip
@click.option("--sizes", callback=_user_counts, default=None, metavar="N,N,...",
              help="Users at each point of the scaling curve [default: 1000,10000,100000, and "
              "300000 where the machine has 8 GiB of memory and 40 GiB free disk].")  # fmt: skip
def bench_all(quick: bool, out: Path | None, sizes: list[int] | None) -> None:
    """Every benchmark on fresh scratch databases, the scaling curve (more users) and the
    history curve (the same users, a longer history), in one report: bench/report.json,
    bench/REPORT.md and the log-log plots bench/scaling.png and bench/history.png."""
    from benchmarks.report import run_all

    folder = out or PROJECT_ROOT_BENCH / ("quick" if quick else "")
    report = run_all(resolve(), quick=quick, out=folder, sizes_scaling=sizes)
    files = ("report.json", "REPORT.md", "scaling.png", "history.png")
    written = ", ".join(str(folder / f) for f in files)
    click.echo(f"wrote {written} in {report['seconds']:.0f} s", err=True)


@bench.command("freshness")
@click.option(
    "--database-url",
    help="Scratch database [default: vedfin_bench_freshness on the resolved server]; its "
    "app schema is replaced.",
)
@click.option(
    "--scenario",
    type=click.Choice(["test", "dev", "demo", "benchmark"]),
    default="benchmark",
    show_default=True,
    help="The dataset the simulator writes on top of.",
)
@click.option("--users", type=click.IntRange(min=10), help="Override the scenario's users.")
@click.option(
    "--interval",
    type=click.IntRange(min=5),
    default=30,
    show_default=True,
    help="Sensor interval in seconds (production: 300).",
)
@click.option(
    "--intervals",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Intervals the simulator writes for.",
)
@click.option(
    "--events-per-second",
    type=click.FloatRange(min=0, min_open=True),
    help="Simulator rate [default: the data's evening peak, at least 1/s].",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Data and simulator seed.")
def bench_freshness(
    database_url: str | None,
    scenario: str,
    users: int | None,
    interval: int,
    intervals: int,
    events_per_second: float | None,
    seed: int,
) -> None:
    """Write-to-Redis latency of leaderboard points: the simulator writing, the sensor at a
    shortened interval; p50/p95/max as a ratio to the interval, and the runs' durations."""
    from benchmarks.freshness import print_figures, run

    settings = resolve()
    result = run(
        settings.database_url,
        settings.redis_url,
        database_url=database_url,
        scenario=scenario,
        users=users,
        interval=interval,
        intervals=intervals,
        events_per_second=events_per_second,
        seed=seed,
    )
    print_figures(result, run_goal=60.0 if result.users >= 100_000 else 20.0)


@bench.command("build")
@click.option(
    "--database-url",
    help="Scratch database [default: vedfin_bench on the resolved "
    "server]. Its app schema and marts are replaced.",
)
@click.option(
    "--read-seconds",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="pgbench duration per mart query.",
)
@click.option(
    "--users",
    type=click.IntRange(min=1),
    default=None,
    help="Users to generate [default: the benchmark scenario's 10,000]. The incremental "
    "target is 35 percent of the full build at 10,000 users and 15 percent above.",
)
@click.option(
    "--run-only/--no-run-only",
    "run_only",
    default=True,
    show_default=True,
    help="Also time `dbt run` (models without tests), full vs incremental.",
)
@click.option(
    "--reads/--no-reads",
    default=True,
    show_default=True,
    help="Also time the BI reads (pgbench) against the mart tables and against the models' "
    "SQL at read time.",
)
def bench_build(
    database_url: str | None, read_seconds: int, users: int | None, run_only: bool, reads: bool
) -> None:
    """Full vs incremental dbt build; BI reads on the marts vs the models' SQL at read time.

    Runs on the resolved server: DATABASE_URL (any supported PostgreSQL, 15 to 18) or the
    embedded one; --database-url names the scratch database directly.
    """
    from benchmarks.build import print_rows, run
    from benchmarks.seed import bench_database

    settings = resolve()
    url = bench_database(settings.database_url, database_url)
    print_rows(
        run(settings, url, read_seconds=read_seconds, users=users, run_only=run_only, reads=reads)
    )


def main() -> None:
    cli(prog_name="vedfin")


if __name__ == "__main__":
    main()


__all__ = ["cli", "main", "apply_env"]
