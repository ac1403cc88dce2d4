"""How cost grows with the data: the scaling curve of `vedfin bench all`.

At each size (1,000, 10,000 and 100,000 users by default) in a scratch database created
afresh for that size (``fresh_database``, not timed):

1. ``generate+load``: the benchmark scenario generated and loaded, ending yesterday;
2. ``full build``: ``dbt build --full-refresh`` (models and data tests);
3. the live simulator writes a fixed number of events today (the same at every size);
4. ``daily incremental build``: ``vedfin build`` at today's as-of date;
5. ``publish``: a whole snapshot published alone (``full=True``), as the daily job
   publishes after its build, ``PUBLISH_RUNS`` times in a row; the curve takes the median
   run. The record of what the last snapshot held
   (``vedfin_meta.leaderboard_published_rows``) is emptied and vacuumed before each (not
   timed), so every entry is new and each run and size does the same work; before, the
   record held the last size's entries and each size's publish replaced them, and then
   each run inserted over the rows deleted for the runs before it;
6. the simulator writes a few more events (fixed);
7. ``five-minute run``: what the sensor's run does, ``+fct_leaderboard`` built
   incrementally, then the snapshot published to Redis: as on a running platform, Redis
   holds the last snapshot (5.), so a publish sends only the changed entries unless more
   than ``DELTA_MAX_SHARE`` of them changed. Steps 6 and 7 run ``FIVE_MINUTE_RUNS``
   times (the sensor runs every five minutes all day) and the curve takes the median
   run; every run's time is in the details. The first run after the daily build reads
   pages that build wrote or evicted: at 300,000 users single runs of the same step took
   15 s to 21 s;
8. ``index ingested_at``: the index ``vedfin db init`` suggests to a platform whose
   ``app.behavior_logs`` has none (the contract fixes none), built as the advice says
   (``create index concurrently``); its time is in the details of the next curve;
9. ``five-minute run, ingested_at indexed``: steps 6 and 7 again, ``FIVE_MINUTE_RUNS``
   times, on the platform that followed that advice: the arrivals since the last run
   are an index range instead of a scan of the whole log.

The history curve (``measure_history``) holds the users constant (30,000 by default) and
lengthens the history they made (30, 120 and 960 days): steps 1 to 4, 6 and 7 at each
length, against the events loaded. Against users, the daily build and the five-minute run
grow because the contract gives every user figures that a new as-of date moves; against
history alone, at the same users, they should not.

Each step runs in a child process of its own (``python -m benchmarks.scaling STEP ...``)
that reports its time and its peak RSS (VmHWM: the process's own, see
``benchmarks.stats.peak_rss_mib``; the PostgreSQL server's memory is not in it). A
least-squares line through log(size), log(value) gives each curve's exponent: 1 grows
linearly with the data, 0 not at all.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from rich.console import Console

from benchmarks.stats import peak_rss_mib
from seeds_gen.live import LiveSimulator
from seeds_gen.load import load_fresh
from seeds_gen.scenarios import make_spec
from vedfin.calendar import today_local
from vedfin.config import PROJECT_ROOT, Settings, ensure_databases, resolve
from vedfin.db import INGESTED_AT_INDEX
from vedfin.dbt import DbtResult, build
from vedfin.leaderboard import (
    PUBLISHED,
    PUBLISHED_ROWS,
    LeaderboardSettings,
    publish,
    published_target,
)

console = Console(stderr=True)
STEPS = (
    "generate+load",
    "full build",
    "daily incremental build",
    "five-minute run",
    "publish",
    "five-minute run, ingested_at indexed",
)
FULL_WORK = ("generate+load", "full build", "publish")
FIVE_MINUTE_STEPS = ("five-minute run", "five-minute run, ingested_at indexed")
NEW_DATA_WORK = ("daily incremental build", *FIVE_MINUTE_STEPS)
FULL_GOAL = 1.05
NEW_DATA_GOAL = 0.3
DAILY_EVENTS = 300
FIVE_MINUTE_EVENTS = 60
FIVE_MINUTE_RUNS = 3
PUBLISH_RUNS = 5
RUNS = {**dict.fromkeys(FIVE_MINUTE_STEPS, FIVE_MINUTE_RUNS), "publish": PUBLISH_RUNS}
"""The steps measured several times in a row at each size, and how many: the curve takes
the median run (single measurements of a second or less moved by up to 1.5x between runs)."""


def _step(
    name: str, url: str, users: int, redis_url: str, days: int | None = None
) -> dict[str, Any]:
    """Run one step here (in the child) and return its figures. ``days``: the history the
    load generates (default: the benchmark scenario's 180 days)."""
    settings = replace(resolve(start=False), database_url=url, redis_url=redis_url)
    today = today_local()
    lb = LeaderboardSettings(redis_url, prefix="vedfin_bench_scaling:", target="dev")
    if name in ("generate+load", "publish"):  # no record of an earlier snapshot (else the
        # whole publish replaced the last size's or run's entries), and a fresh platform has
        # no index app lacks
        with psycopg.connect(url, autocommit=True) as conn:
            if name == "generate+load":
                conn.execute("drop index if exists app.behavior_logs_ingested_at")
            row = conn.execute("select to_regclass(%s)", (PUBLISHED_ROWS,)).fetchone()
            if row and row[0]:
                for table in (PUBLISHED_ROWS, PUBLISHED):
                    conn.execute(f"delete from {table} where target = %s", (published_target(lb),))
                    # and vacuumed, as a platform's record is when it has none: the rows
                    # deleted here would otherwise pile up run after run (five runs: five
                    # times the entries) under the next run's inserts
                    conn.execute(f"vacuum {table}")
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if name == "generate+load":
        spec = make_spec("benchmark", users=users, days=days, end_date=today - timedelta(days=1))
        result = load_fresh(url, spec, reset=True)
        extra = {
            "rows": result.total_rows,
            "events": result.rows["behavior_logs"],
            "phases": {k: round(v, 3) for k, v in result.phases.items()},
        }
    elif name == "full build":
        extra = dbt_figures(
            build(settings, as_of=today - timedelta(days=1), full_refresh=True, capture=True)
        )
    elif name in ("simulate daily", "simulate five minutes"):
        n = DAILY_EVENTS if name == "simulate daily" else FIVE_MINUTE_EVENTS
        sim = LiveSimulator(url, seed=11, events_per_second=100_000, target="dev")
        summary = sim.run(max_events=n)
        extra = {"events": summary.events}
    elif name == "daily incremental build":
        extra = dbt_figures(build(settings, as_of=today, capture=True))
    elif name in FIVE_MINUTE_STEPS:
        selection = ("+fct_leaderboard",)
        extra = dbt_figures(build(settings, as_of=today, select=selection, capture=True))
        published = publish(url, lb)
        extra |= {
            "published": published.rows,
            "publish_seconds": round(published.seconds, 3),
            "publish_kind": published.kind,
            "publish_changed": published.changed_rows,
        }
    elif name == "publish":
        published = publish(url, lb, full=True)  # the whole snapshot
        extra = {
            "published": published.rows,
            "publish_seconds": round(published.seconds, 3),
            "publish_changed": published.changed_rows,
        }
        if published.record_seconds is not None:
            extra["record_seconds"] = round(published.record_seconds, 3)
    elif name == "index ingested_at":
        with psycopg.connect(url, autocommit=True) as conn:  # concurrently: no transaction
            conn.execute(INGESTED_AT_INDEX)  # fails if the index is there already
            conn.execute("analyze app.behavior_logs")
    else:
        raise ValueError(f"unknown step {name!r}")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mib": peak_rss_mib(), **extra}


def dbt_figures(done: DbtResult) -> dict[str, Any]:
    """Where a build's time went: dbt's own elapsed time, each model's and all tests'
    (summed over dbt's threads) from its run results."""
    nodes = list(getattr(done.result, "results", None) or [])
    models = sorted(
        ((r.node.name, float(r.execution_time)) for r in nodes if r.node.resource_type == "model"),
        key=lambda item: -item[1],
    )
    tests = [float(r.execution_time) for r in nodes if r.node.resource_type == "test"]
    return {
        "dbt_seconds": round(float(getattr(done.result, "elapsed_time", 0.0) or 0.0), 3),
        "models": {name: round(seconds, 3) for name, seconds in models},
        "tests": len(tests),
        "tests_seconds": round(sum(tests), 3),
    }


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` on the server of ``server_url``, its sessions ended; refused
    for the server's own database."""
    if name == conninfo_to_dict(server_url).get("dbname"):
        raise ValueError(
            f"the benchmark's scratch database {name!r} is the server's own database: "
            "refusing to drop it"
        )
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
        )


def fresh_database(server_url: str, url: str) -> None:
    """Drop and create the database of ``url`` (not timed): every size starts on a fresh
    database, as the issue's "every benchmark on a fresh database" asks, not on the files,
    statistics and dead space the size before left behind (its load was truncated inside
    the next size's load, its marts stayed until that size's build replaced them)."""
    name = str(conninfo_to_dict(url)["dbname"])
    drop_database(server_url, name)
    ensure_databases(server_url, [name])


def run_step(
    name: str, url: str, users: int, redis_url: str, days: int | None = None
) -> dict[str, Any]:
    """The step in a child process: its own peak RSS."""
    args = [sys.executable, "-m", "benchmarks.scaling", name, url, str(users), redis_url]
    args += [str(days)] if days is not None else []
    done = subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"scaling step {name!r} at {users:,} users failed:\n{done.stderr[-3000:]}"
        )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def exponent(sizes: list[int], values: list[float]) -> float:
    """The slope of the least-squares line through (log size, log value)."""
    xs = [math.log(s) for s in sizes]
    ys = [math.log(max(v, 1e-9)) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def met(overall: float, two_largest: float, goal: float) -> bool:
    """A curve meets its goal when both its slope over every size and its slope between
    the two largest sizes are within it: fixed costs at the small sizes flatten the first,
    so it alone would pass a curve that grows with the data where the data is large."""
    return overall <= goal and two_largest <= goal


@dataclass
class Curve:
    step: str
    seconds: list[float] = field(default_factory=list)
    peak_rss_mib: list[float] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)

    def goal(self) -> float:
        return FULL_GOAL if self.step in FULL_WORK else NEW_DATA_GOAL


@dataclass
class Scaling:
    sizes: list[int]
    curves: dict[str, Curve]
    axis: str = "users"  # what the sizes count: users, or the events of a history curve

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sizes": self.sizes, "axis": self.axis, "steps": {}}
        for name, c in self.curves.items():
            e_t = exponent(self.sizes, c.seconds)
            tail = exponent(self.sizes[-2:], c.seconds[-2:])
            out["steps"][name] = {
                "seconds": [round(x, 3) for x in c.seconds],
                "peak_rss_mib": [round(x, 1) for x in c.peak_rss_mib],
                "exponent_time": round(e_t, 3),
                "exponent_time_two_largest": round(tail, 3),
                "exponent_memory": round(exponent(self.sizes, c.peak_rss_mib), 3),
                "goal_exponent": c.goal(),
                "met": met(e_t, tail, c.goal()),
                "details": c.notes,
            }
        return out


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median time (the lower middle one of an even count), with every run's
    time and the highest peak RSS among them."""
    chosen = sorted(runs, key=lambda f: f["seconds"])[(len(runs) - 1) // 2]
    return chosen | {
        "peak_rss_mib": max(f["peak_rss_mib"] for f in runs),
        "runs_seconds": [round(f["seconds"], 3) for f in runs],
    }


StepHook = Callable[[str, dict[str, Any]], dict[str, Any]]


def measure_point(
    settings: Settings,
    url: str,
    users: int,
    plan: list[str],
    curves: dict[str, Curve],
    point: dict[str, Any],
    days: int | None = None,
    done: StepHook | None = None,
) -> None:
    """One point of a curve, in a database created afresh for it: every step of ``plan``
    in a child process of its own (``run_step``). A step in ``RUNS`` counts once its
    repeats are all in, as their median run. ``done(name, figures)`` sees each step's
    final figures and returns figures to add to them (what a step's point needs from
    another step, or from the database after it); a step with a curve then adds its time,
    its peak RSS and the rest (under ``point``'s keys) to that curve."""
    fresh_database(settings.database_url, url)
    repeated: dict[str, list[dict[str, Any]]] = {s: [] for s in RUNS}
    for name in plan:
        figures = run_step(name, url, users, settings.redis_url, days)
        shown = {k: v for k, v in figures.items() if k != "models"}
        console.print(f"  {name}: {shown}")
        if name in RUNS:
            repeated[name].append(figures)
            if len(repeated[name]) < RUNS[name]:
                continue
            figures = median_run(repeated[name])
        if done is not None:
            figures |= done(name, figures)
        if name in curves:
            curves[name].seconds.append(figures.pop("seconds"))
            curves[name].peak_rss_mib.append(figures.pop("peak_rss_mib"))
            curves[name].notes.append(point | figures)


def measure(settings: Settings, url: str, sizes: list[int]) -> Scaling:
    curves = {s: Curve(s) for s in STEPS}
    plan = [
        "generate+load",
        "full build",
        "simulate daily",
        "daily incremental build",
        "publish",
    ]
    plan += ["publish"] * (PUBLISH_RUNS - 1)
    plan += ["simulate five minutes", "five-minute run"] * FIVE_MINUTE_RUNS
    plan += ["index ingested_at"]
    plan += ["simulate five minutes", "five-minute run, ingested_at indexed"] * FIVE_MINUTE_RUNS
    indexing: dict[str, Any] = {}

    def done(name: str, figures: dict[str, Any]) -> dict[str, Any]:
        """The index's build time goes with the curve that runs on it."""
        if name == "index ingested_at":
            indexing["index_seconds"] = round(figures["seconds"], 3)
        return indexing if name == "five-minute run, ingested_at indexed" else {}

    for users in sizes:
        console.print(f"scaling: {users:,} users ...")
        measure_point(settings, url, users, plan, curves, {"users": users}, done=done)
    return Scaling(sizes, curves)


HISTORY_STEPS = ("generate+load", "full build", "daily incremental build", "five-minute run")


def measure_history(settings: Settings, url: str, users: int, days: list[int]) -> Scaling:
    """The history curve: the same number of users with longer and longer histories, each
    in a fresh database. Its sizes are the events each load wrote: the total size, which
    grows while the users, and with them every per-user figure a new as-of date moves
    (days since last active, points of the last 7 days, streaks, ranks), stay the same.
    The full work grows with it; the daily build and the five-minute run (on the
    contract's indexes alone) should not, as the new data before them is the same."""
    curves = {s: Curve(s) for s in HISTORY_STEPS}
    plan = ["generate+load", "full build", "simulate daily", "daily incremental build"]
    plan += ["simulate five minutes", "five-minute run"] * FIVE_MINUTE_RUNS
    sizes: list[int] = []

    def done(name: str, figures: dict[str, Any]) -> dict[str, Any]:
        """The events loaded are the point's size; DAU/WAU/MAU of the last date built,
        what the later steps' per-user figures are about."""
        if name == "generate+load":
            sizes.append(int(figures["events"]))
        return recent_activity(url) if name == "full build" else {}

    for n_days in sorted(set(days)):
        console.print(f"history: {users:,} users over {n_days:,} days ...")
        point = {"users": users, "days": n_days}
        measure_point(settings, url, users, plan, curves, point, n_days, done)
    return Scaling(sizes, curves, axis="events")


def recent_activity(url: str) -> dict[str, int]:
    """DAU, WAU and MAU of the last date built (not timed): how many users the new as-of
    date's figures are about, where the whole history is not."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select dau, wau, mau from marts.fct_daily_active_users "
            "order by activity_date desc limit 1"
        ).fetchone()
    return dict(zip(("dau", "wau", "mau"), map(int, row or (0, 0, 0)), strict=True))


def plot(scaling: Scaling, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = scaling.as_json()["steps"]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13, 7.5))
    for name, c in scaling.curves.items():
        d = data[name]
        verdict = "met" if d["met"] else "missed"
        label = (
            f"{name}: exponent {d['exponent_time']:.2f}, two largest "
            f"{exponent(scaling.sizes[-2:], c.seconds[-2:]):.2f} "
            f"(goal <= {d['goal_exponent']}: {verdict})"
        )
        ax_t.loglog(scaling.sizes, c.seconds, marker="o", label=label)
        ax_m.loglog(scaling.sizes, c.peak_rss_mib, marker="o",
                    label=f"{name}: exponent {d['exponent_memory']:.2f}")  # fmt: skip
    ax_t.set(xlabel=scaling.axis, ylabel="seconds", title="time")
    ax_m.set(xlabel=scaling.axis, ylabel="peak RSS of the step's process (MiB)", title="memory")
    for ax in (ax_t, ax_m):
        ax.grid(True, which="both", alpha=0.3)
        # below the axes: inside them the legend hid the lowest curve (the publish)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    step, db_url, n_users, redis = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    n_days = int(sys.argv[5]) if len(sys.argv) > 5 else None
    print(json.dumps(_step(step, db_url, n_users, redis, n_days)))
