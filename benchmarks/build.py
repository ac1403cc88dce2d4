"""`vedfin bench build`: dbt build times (full vs incremental) and BI read latency.

All figures come from this run, in a scratch database (``vedfin_bench``):

1. the benchmark scenario seeded, then ``dbt build --full-refresh``;
2. ``--append-days 1`` and an incremental ``dbt build``; its marts are compared with
   a full refresh at the same as-of date (equal results); beside it, a ``dbt build``
   that selects no node at a new as-of date: dbt's own start-up and parse, the part of
   any build that no model or test can make shorter;
3. the same with ``dbt run`` (models only, no tests);
4. the dashboard queries under pgbench, 8 clients (``-l`` per-transaction log), against
   the mart tables and against each mart's own compiled SQL run at read time (what a view
   would cost; the model stays the one definition of every metric); the answers are
   compared and the p95 ratio printed.
"""

from __future__ import annotations

import glob
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import psycopg
from psycopg import sql
from rich.console import Console

from benchmarks.stats import percentile, print_table
from seeds_gen.load import load_append, load_fresh
from seeds_gen.scenarios import make_spec
from vedfin.config import DBT_PROJECT_DIR, Settings, env_exports
from vedfin.dbt import SKIP_UNIT_TESTS, mart_names, run_dbt, run_target_path
from vedfin.errors import VedfinError
from vedfin.services import embedded_bin_dir

console = Console(stderr=True)
END = date(2026, 11, 20)


def _marts() -> tuple[str, ...]:
    """The mart models, from the manifest the last dbt invocation here wrote."""
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    return mart_names(manifest)


NO_NODE = "tag:selects_no_node"  # no model or test has this tag


def dashboard_queries(as_of: str) -> dict[str, str]:
    """name -> a dashboard's query, with the mart it reads as a ``{model}`` placeholder."""
    day = f"date '{as_of}'"
    return {
        "DAU, 90-day range": (
            "select activity_date, dau, wau, mau from {fct_daily_active_users} "
            f"where activity_date between {day} - 89 and {day} order by 1"
        ),
        "cohort matrix": (
            "select cohort_week, week_number, cohort_size, retained_users "
            "from {fct_cohort_retention} order by 1, 2"
        ),
        "learning funnel": (
            "select cohort_week, signed_up, enrolled, started_lesson "
            "from {fct_learning_funnel} order by 1"
        ),
        "one student's pattern": (
            "select user_id, total_events, active_days, last_active_date "
            "from {fct_student_behavior_patterns} where user_id = :uid"
        ),
        "leaderboard top 100": (
            "select user_id, total_points, rank from {fct_leaderboard} "
            "order by rank, user_id limit 100"
        ),
    }


MODELS = (
    "fct_daily_active_users",
    "fct_cohort_retention",
    "fct_learning_funnel",
    "fct_student_behavior_patterns",
    "fct_leaderboard",
)


def on_tables(query: str) -> str:
    """The query on the mart tables BI tools read."""
    return query.format(**{m: f"marts.{m}" for m in MODELS})


def on_model_sql(query: str, compiled: dict[str, str]) -> str:
    """The same query on each mart's own SQL run at read time (what a view would do), over
    the same upstream dbt relations: the model is the one definition of the metric."""
    return query.format(**{m: f"({compiled[m]}) as {m}" for m in MODELS})


def compiled_models(settings: Settings, as_of: date) -> dict[str, str]:
    """Each dashboard mart's SQL as a full build compiles it (``dbt compile --full-refresh``),
    on one line with its comments removed."""
    path = run_target_path("compile")
    args = ("--full-refresh", "--select", " ".join(MODELS))
    result = run_dbt(settings, "compile", *args, as_of=as_of, capture=True, target_path=path)
    if result.returncode != 0:
        raise VedfinError(f"dbt compile failed during the benchmark:\n{result.stdout[-3000:]}")
    nodes = json.loads((path / "manifest.json").read_text())["nodes"].values()
    return {
        n["name"]: " ".join(re.sub(r"--[^\n]*", " ", n["compiled_code"]).split())
        for n in nodes
        if n["resource_type"] == "model" and n["name"] in MODELS
    }


@dataclass
class Row:
    name: str
    value: str
    target: str = ""
    ok: bool | None = None


def _timed(settings: Settings, command: str, as_of: date, *args: str) -> float:
    return _timed_output(settings, command, as_of, *args)[0]


def _timed_output(settings: Settings, command: str, as_of: date, *args: str) -> tuple[float, str]:
    if command == "build":  # as `vedfin build` and the Dagster jobs: unit tests are CI's
        args = (*SKIP_UNIT_TESTS, *args)
    started = time.perf_counter()
    result = run_dbt(settings, command, *args, as_of=as_of, capture=True)
    if result.returncode != 0:
        raise VedfinError(f"dbt {command} failed during the benchmark:\n{result.stdout[-3000:]}")
    return time.perf_counter() - started, result.stdout or ""


def partial_parsing_note(output: str) -> str:
    """What dbt said about partial parsing in one invocation's output."""
    for line in output.splitlines():
        if "Unable to do partial parsing" in line:
            reason = line.split("Unable to do partial parsing", 1)[1].strip()
            return f"full re-parse ({reason})"
    return "partial parsing kept"


def _snapshot(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("drop schema if exists bench_snap cascade")
        conn.execute("create schema bench_snap")
        for m in _marts():
            conn.execute(
                sql.SQL("create table bench_snap.{t} as select * from marts.{t}").format(
                    t=sql.Identifier(m)
                )
            )


def _equal_to_snapshot(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        for m in _marts():
            row = conn.execute(
                sql.SQL(
                    "select (select count(*) from (select * from bench_snap.{t} except all "
                    "select * from marts.{t}) a) + (select count(*) from (select * from marts.{t} "
                    "except all select * from bench_snap.{t}) b)"
                ).format(t=sql.Identifier(m))
            ).fetchone()
            if row is None or row[0] != 0:
                return False
        conn.execute("drop schema bench_snap cascade")
    return True


def pgbench_p95(
    url: str,
    query: str,
    *,
    clients: int,
    seconds: int | None,
    transactions: int | None,
    max_uid: int,
) -> tuple[float, float, int]:
    """(p95 ms, mean ms, transactions) of ``query`` under pgbench with -l."""

    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "q.sql"
        script.write_text(f"\\set uid random(1, {max_uid})\n{' '.join(query.split())};\n")
        args = [
            str(embedded_bin_dir() / "pgbench"),
            "-n",
            "-f",
            str(script),
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-l",
            "--log-prefix",
            str(Path(tmp) / "log"),
        ]
        args += ["-T", str(seconds)] if seconds else ["-t", str(transactions)]
        args.append(url)
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise VedfinError(f"pgbench failed: {done.stderr[-2000:]}")
        latencies = []
        for log in glob.glob(str(Path(tmp) / "log*")):
            for line in Path(log).read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3:
                    latencies.append(int(parts[2]) / 1000.0)
    latencies.sort()
    p95 = percentile(latencies, 0.95)
    return p95, statistics.fmean(latencies), len(latencies)


def _answers(url: str, query: str, uid: int) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(query.replace(":uid", str(uid))).fetchall()  # type: ignore[arg-type]
    return [tuple(str(v) for v in r) for r in rows]


def run(
    settings: Settings,
    url: str,
    *,
    read_seconds: int,
    users: int | None = None,
    run_only: bool = True,
    reads: bool = True,
) -> list[Row]:
    bench_settings = Settings(
        url,
        settings.redis_url,
        settings.dagster_home,
        settings.dagster_pg_url,
        settings.target,
        False,
        False,
    )
    os.environ.update({k: v for k, v in env_exports(bench_settings).items() if k.startswith("PG")})
    rows: list[Row] = []
    spec = make_spec("benchmark", users=users, end_date=END)
    console.print(f"seeding the benchmark scenario ({spec.users:,} users) ...")
    load_fresh(url, spec, reset=True)
    with psycopg.connect(url) as conn:
        events = conn.execute("select count(*) from app.behavior_logs").fetchone()
        version = conn.execute("show server_version").fetchone()
    rows.append(
        Row(
            "data",
            f"benchmark scenario: {spec.users:,} users, {spec.days} days, {events[0]:,} events; "  # type: ignore[index]
            f"PostgreSQL {version[0]}",  # type: ignore[index]
        )
    )
    target = 0.35 if spec.users <= 10_000 else 0.15

    console.print("dbt build --full-refresh ...")
    full = _timed(bench_settings, "build", END, "--full-refresh")
    rows.append(
        Row(
            "dbt build, full refresh (models + data tests)",
            f"{full:.1f} s",
            "< 60 s" if spec.users <= 10_000 else "",
            full < 60 if spec.users <= 10_000 else None,
        )
    )
    load_append(url, 1)
    day2 = END + timedelta(days=1)
    console.print("dbt build, incremental after --append-days 1 ...")
    inc = _timed(bench_settings, "build", day2)
    _snapshot(url)
    full2 = _timed(bench_settings, "build", day2, "--full-refresh")
    equal = _equal_to_snapshot(url)
    rows.append(
        Row(
            "dbt build, incremental after --append-days 1",
            f"{inc:.1f} s = {inc / full:.0%} of full ({full2:.1f} s at the same as-of)",
            f"<= {target:.0%}",
            inc / full <= target,
        )
    )
    floor, output = _timed_output(
        bench_settings, "build", day2 + timedelta(days=7), "--select", NO_NODE
    )
    rows.append(
        Row(
            "dbt build selecting no node at a new as-of (dbt start-up, no SQL)",
            f"{floor:.1f} s = {floor / full:.0%} of the full build; {partial_parsing_note(output)}",
            "<= 4 s",
            floor <= 4,
        )
    )
    rows.append(
        Row(
            "incremental marts = full-refresh marts",
            "equal" if equal else "DIFFERENT",
            "equal",
            equal,
        )
    )
    as_of_day = day2
    if run_only:
        console.print("dbt run (models only) ...")
        full_run = _timed(bench_settings, "run", day2, "--full-refresh")
        load_append(url, 1)
        as_of_day = day2 + timedelta(days=1)
        inc_run = _timed(bench_settings, "run", as_of_day)
        rows.append(
            Row(
                "dbt run (models only): full vs incremental",
                f"{full_run:.1f} s vs {inc_run:.1f} s = {inc_run / full_run:.0%}",
                f"<= {target:.0%}",
                inc_run / full_run <= target,
            )
        )
    if reads:
        rows += _bi_reads(bench_settings, url, as_of_day, read_seconds)
    return rows


def _bi_reads(settings: Settings, url: str, as_of: date, read_seconds: int) -> list[Row]:
    rows: list[Row] = []
    with psycopg.connect(url) as conn:
        max_uid = conn.execute("select max(user_id) from marts.dim_users").fetchone()[0]  # type: ignore[index]
    compiled = compiled_models(settings, as_of)
    console.print(f"BI reads: pgbench, 8 clients, {read_seconds} s per mart query ...")
    for name, query in dashboard_queries(as_of.isoformat()).items():
        mart_q, raw_q = on_tables(query), on_model_sql(query, compiled)
        same = all(
            _answers(url, mart_q, uid) == _answers(url, raw_q, uid)
            for uid in (1, max_uid // 2, max_uid)
        )
        p95, mean, n = pgbench_p95(
            url, mart_q, clients=8, seconds=read_seconds, transactions=None, max_uid=max_uid
        )
        raw_p95, raw_mean, raw_n = pgbench_p95(
            url, raw_q, clients=8, seconds=None, transactions=2, max_uid=max_uid
        )
        rows.append(
            Row(
                f"BI read: {name}",
                f"table p95 {p95:.2f} ms ({n:,} tx) | model SQL p95 {raw_p95:,.0f} ms "
                f"({raw_n} tx)"
                f" | {raw_p95 / p95:,.0f}x | answers {'equal' if same else 'DIFFER'}",
                "p95 < 10 ms, equal",
                p95 < 10 and same,
            )
        )
    return rows


def print_rows(rows: list[Row]) -> None:
    print_table("vedfin bench build", rows)
