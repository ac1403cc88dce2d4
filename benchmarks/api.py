"""`vedfin bench api`: latency of the typed analytics API under concurrent callers.

All figures come from this run: the ``benchmark`` scenario (10,000 users unless
``--users``) seeded and built in a scratch database (``vedfin_bench_api``; or
``--database-url`` naming one already built, with ``--no-build``), ``bi_reader`` given its
login by ``vedfin db roles --env dev``, then N threads (8 by default) sharing one
:class:`vedfin.analytics.Analytics` (a pool of N connections) call the six functions with
random parameters for ``--seconds``. Each call is timed from the caller's side, so the
figure includes the pool, the round trip and building the typed records.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta

import psycopg
from rich.console import Console

from benchmarks.stats import percentile, print_table
from seeds_gen.load import load_fresh
from seeds_gen.scenarios import make_spec
from vedfin.analytics import Analytics, bi_reader_url
from vedfin.config import Settings
from vedfin.dbt import build
from vedfin.roles import apply_roles

console = Console(stderr=True)
END = date(2026, 11, 20)
TARGET_P95_MS = 10.0


@dataclass
class Figure:
    name: str
    value: str
    target: str = ""
    ok: bool | None = None


def _calls(url: str, rng: random.Random) -> list[tuple[str, Callable[[Analytics], object]]]:
    with psycopg.connect(url) as conn:
        first, last = conn.execute(
            "select min(activity_date), max(activity_date) from marts.fct_daily_active_users"
        ).fetchone()  # type: ignore[misc]
        users = [
            u for (u,) in conn.execute("select user_id from marts.fct_student_behavior_patterns")
        ]
        courses = [c for (c,) in conn.execute("select course_id from marts.fct_course_funnel")]
    span = (last - first).days

    def day() -> date:
        return first + timedelta(days=rng.randrange(span + 1))

    def monday() -> date:
        d = day()
        return d - timedelta(days=d.weekday())

    def dau(a: Analytics) -> object:
        d = day()
        return a.daily_active_users(d, d + timedelta(days=29))

    def retention(a: Analytics) -> object:
        m = monday()
        return a.cohort_retention(m, m + timedelta(weeks=3))

    def funnel(a: Analytics) -> object:
        m = monday()
        return a.learning_funnel(m, m + timedelta(weeks=11))

    return [
        ("daily_active_users (30 days)", dau),
        ("cohort_retention (4 cohorts)", retention),
        ("learning_funnel (12 cohorts)", funnel),
        ("student_pattern", lambda a: a.student_pattern(rng.choice(users))),
        ("leaderboard_top (100)", lambda a: a.leaderboard_top(100)),
        ("course_funnel", lambda a: a.course_funnel(rng.choice(courses))),
    ]


def run(
    settings: Settings,
    url: str,
    *,
    users: int | None,
    clients: int,
    seconds: float,
    prepare: bool = True,
) -> list[Figure]:
    figures: list[Figure] = []
    if prepare:
        spec = make_spec("benchmark", users=users, end_date=END)
        console.print(f"seeding the benchmark scenario ({spec.users:,} users) and building ...")
        load_fresh(url, spec, reset=True)
        build(replace(settings, database_url=url), as_of=END, full_refresh=True, capture=True)
    apply_roles(url, "dev")
    with psycopg.connect(url) as conn:
        n_users = conn.execute("select count(*) from marts.dim_users").fetchone()[0]  # type: ignore[index]
        version = conn.execute("show server_version").fetchone()[0]  # type: ignore[index]
    figures.append(Figure("data", f"{n_users:,} users in the marts; PostgreSQL {version}"))
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    with Analytics(bi_reader_url(url, None), min_size=clients, max_size=clients) as api:

        def caller(seed: int) -> None:
            rng = random.Random(seed)
            calls = _calls(url, rng)
            mine: dict[str, list[float]] = defaultdict(list)
            while time.perf_counter() < stop:
                name, call = rng.choice(calls)
                started = time.perf_counter()
                try:
                    call(api)
                except Exception as exc:  # counted and reported, never hidden
                    with lock:
                        errors.append(f"{name}: {exc}")
                    continue
                mine[name].append((time.perf_counter() - started) * 1000)
            with lock:
                for k, v in mine.items():
                    latencies[k].extend(v)

        console.print(f"{clients} concurrent callers for {seconds:.0f} s ...")
        threads = [threading.Thread(target=caller, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    every = [x for v in latencies.values() for x in v]
    for name in sorted(latencies):
        v = latencies[name]
        p95 = percentile(v, 0.95)
        figures.append(
            Figure(
                name,
                f"p50 {percentile(v, 0.5):.2f} ms, p95 {p95:.2f} ms, p99 {percentile(v, 0.99):.2f} "
                f"ms ({len(v):,} calls)",
                f"p95 < {TARGET_P95_MS:.0f} ms",
                p95 < TARGET_P95_MS,
            )
        )
    p95 = percentile(every, 0.95)
    figures.append(
        Figure(
            f"all calls, {clients} concurrent callers",
            f"p50 {percentile(every, 0.5):.2f} ms, p95 {p95:.2f} ms, p99 "
            f"{percentile(every, 0.99):.2f} ms; {len(every) / seconds:,.0f} calls/s; "
            f"{len(errors)} errors",
            f"p95 < {TARGET_P95_MS:.0f} ms, no errors",
            p95 < TARGET_P95_MS and not errors,
        )
    )
    for e in errors[:5]:
        console.print(f"[red]error[/] {e}")
    return figures


def print_figures(figures: list[Figure]) -> None:
    print_table("vedfin bench api", figures, width=180)
