"""`vedfin bench freshness`: how long points take from the platform's write to Redis.

On a scratch database with a fresh scenario, the simulator writes like the platform's app
at a set rate while the leaderboard sensor is evaluated every ``interval`` seconds (the
production 300 s shortened), on a Dagster instance of its own, for ``intervals`` ticks.
Each run the sensor requests is executed as the daemon would (a tick while a run is in
flight skips). For every point-earning write (a lesson completion or an achievement
unlock, with its commit time) a poller watches Redis until the user's score includes it:
the latency is the time from the commit to the moment Redis shows the points.

The figures: latency p50, p95 and max, as a ratio to the interval; the refresh runs'
durations; the goals max <= interval + 30 s and a run <= 20 s at the `benchmark` scenario
(<= 60 s at 100,000 users).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import redis
from rich.console import Console
from rich.table import Table

from benchmarks.seed import bench_database
from benchmarks.stats import percentile
from orchestration.defs.resources import (
    LeaderboardRedisResource,
    WarehouseResource,
    platform_settings,
)
from seeds_gen.live import LiveSimulator, PointsWrite
from seeds_gen.load import load_fresh
from seeds_gen.scenarios import make_spec
from vedfin.config import Settings, apply_env, resolve
from vedfin.db import describe_target
from vedfin.leaderboard import LeaderboardSettings

console = Console(stderr=True)
PREFIX = "bench_freshness:"
POLL_SECONDS = 0.2


@dataclass
class Sample:
    write: PointsWrite
    expected: int  # the user's Redis score once this write is in
    seen_at: float | None = None

    @property
    def latency(self) -> float | None:
        return None if self.seen_at is None else self.seen_at - self.write.committed_at


@dataclass
class RunFigure:
    job: str
    seconds: float
    success: bool


@dataclass
class FreshnessResult:
    where: str
    users: int
    interval: int
    ticks: int
    events_per_second: float
    events: int
    samples: list[Sample]
    runs: list[RunFigure]
    skips: dict[str, int] = field(default_factory=dict)

    def latencies(self) -> list[float]:
        return sorted(s.latency for s in self.samples if s.latency is not None)


class RedisWatcher:
    """Follows each sampled write until the user's all-time score includes it."""

    def __init__(self, lb: LeaderboardSettings) -> None:
        self.r = redis.Redis.from_url(lb.redis_url)
        self.key = lb.key("all_time")
        pairs: list[tuple[bytes, float]] = self.r.zrange(self.key, 0, -1, withscores=True)  # type: ignore[assignment]
        self.baseline = {int(u): int(s) for u, s in pairs}
        self.totals: dict[int, int] = defaultdict(int)
        self.pending: list[Sample] = []
        self.samples: list[Sample] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, name="redis-watcher", daemon=True)

    def on_points(self, write: PointsWrite) -> None:
        with self.lock:
            self.totals[write.user_id] += write.points
            expected = self.baseline.get(write.user_id, 0) + self.totals[write.user_id]
            sample = Sample(write, expected)
            self.pending.append(sample)
            self.samples.append(sample)

    def _poll(self) -> None:
        while not self.stop.wait(POLL_SECONDS):
            with self.lock:
                pending = list(self.pending)
            if not pending:
                continue
            pipe = self.r.pipeline(transaction=False)
            for sample in pending:
                pipe.zscore(self.key, str(sample.write.user_id))
            scores = pipe.execute()
            now = time.time()
            with self.lock:
                for sample, score in zip(pending, scores, strict=True):
                    if score is not None and score >= sample.expected:
                        sample.seen_at = now
                self.pending = [s for s in self.pending if s.seen_at is None]


def _platform(url: str, redis_url: str, interval: int, home: str) -> Settings:
    """Point this process (and the dbt it starts) at the scratch database."""
    os.environ.update(
        {
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "LEADERBOARD_PREFIX": PREFIX,
            "VEDFIN_LEADERBOARD_INTERVAL": str(interval),
            "DAGSTER_HOME": home,
        }
    )
    settings = resolve(start=False)
    apply_env(settings)
    return settings


def _evaluate(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> Any:
    sensor = defs.resolve_sensor_def("leaderboard_sensor")
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"leaderboard": LeaderboardRedisResource(), "warehouse": WarehouseResource()},
    )
    return sensor(context)


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _execute(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, log: Path) -> RunFigure:
    """Run ``job`` in this process, dbt's and Dagster's output into ``log`` (the figures
    stay readable): stdout and stderr, and the records of Python's ``dagster`` loggers,
    which would otherwise reach a handler set up before the run (on the console)."""
    started = time.perf_counter()
    dagster_logger = logging.getLogger("dagster")
    with log.open("a") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        handler = logging.StreamHandler(out)
        handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
        propagate = dagster_logger.propagate
        dagster_logger.addHandler(handler)
        dagster_logger.propagate = False
        try:
            result = defs.resolve_job_def(job).execute_in_process(
                instance=instance, raise_on_error=False, run_config=QUIET
            )
        finally:
            dagster_logger.removeHandler(handler)
            dagster_logger.propagate = propagate
    return RunFigure(job, time.perf_counter() - started, result.success)


def run(
    server_url: str,
    redis_url: str,
    *,
    database_url: str | None,
    scenario: str,
    users: int | None,
    interval: int,
    intervals: int,
    events_per_second: float | None,
    seed: int,
) -> FreshnessResult:
    url = bench_database(server_url, database_url, name="vedfin_bench_freshness")
    spec = make_spec(scenario, users=users, seed=seed)
    console.print(
        f"[bold]bench freshness[/] on {describe_target(url)}: {spec.users:,} users "
        f"({scenario}), sensor every {interval} s for {intervals} intervals"
    )
    load_fresh(url, spec, target="dev", reset=True)
    with tempfile.TemporaryDirectory(prefix="vedfin-freshness-") as home:
        _platform(url, redis_url, interval, home)
        # imported here on purpose: the sensor reads its interval when the definitions load
        from orchestration.definitions import defs

        platform_settings.cache_clear()
        with dg.DagsterInstance.ephemeral() as instance:
            log = Path(tempfile.gettempdir()) / "vedfin-bench-freshness.log"
            log.write_text("")
            console.print(f"dbt and Dagster output: {log}")
            initial = _execute(defs, instance, "daily_refresh", log)
            if not initial.success:
                raise RuntimeError(f"the initial daily_refresh failed; see {log}")
            console.print(f"initial daily_refresh (full build + publish): {initial.seconds:.1f} s")
            lb = LeaderboardSettings.from_env(redis_url, "dev", PREFIX)
            return _measure(
                defs,
                instance,
                url,
                lb,
                spec.users,
                interval,
                intervals,
                events_per_second,
                seed,
                log,
            )


def _measure(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    url: str,
    lb: LeaderboardSettings,
    users: int,
    interval: int,
    intervals: int,
    events_per_second: float | None,
    seed: int,
    log: Path,
) -> FreshnessResult:
    watcher = RedisWatcher(lb)
    sim = LiveSimulator(url, seed=seed, events_per_second=events_per_second, target="dev")
    sim.prepare()
    stop = threading.Event()
    sim_thread = threading.Thread(
        target=sim.run, kwargs={"stop": stop, "on_points": watcher.on_points}, daemon=True
    )
    watcher.thread.start()
    sim_thread.start()
    runs: list[RunFigure] = []
    skips: dict[str, int] = defaultdict(int)
    cursor: str | None = None
    started = time.monotonic()
    tick = 0
    drain_ticks = 0
    while True:
        due = started + (tick + 1) * interval
        time.sleep(max(0.0, due - time.monotonic()))
        tick = int((time.monotonic() - started) // interval)  # ticks overrun by a run skip
        if tick >= intervals and not stop.is_set():
            stop.set()  # the writes stop; the next ticks bring the last ones in
            sim_thread.join()
        result = _evaluate(defs, instance, cursor)
        cursor = getattr(result, "cursor", None) or cursor
        requests = getattr(result, "run_requests", None) or []
        if requests:
            figure = _execute(defs, instance, requests[0].job_name or "", log)
            runs.append(figure)
            console.print(
                f"tick {tick:>3}: {requests[0].tags.get('vedfin/reason', '')} -> "
                f"{figure.job} {'ok' if figure.success else 'FAILED'} in {figure.seconds:.1f} s"
            )
        else:
            skip = getattr(result, "skip_reason", None) or result
            message = getattr(skip, "skip_message", "") or ""
            skips[message.split(" (")[0][:60]] += 1
        if stop.is_set():
            drain_ticks += 1
            with watcher.lock:
                done = not watcher.pending
            if done or drain_ticks > 3:
                break
    time.sleep(POLL_SECONDS * 3)
    watcher.stop.set()
    watcher.thread.join()
    summary = sim.summary
    return FreshnessResult(
        where=describe_target(url),
        users=users,
        interval=interval,
        ticks=tick,
        events_per_second=sim.events_per_second,
        events=summary.events,
        samples=watcher.samples,
        runs=runs,
        skips=dict(skips),
    )


def print_figures(result: FreshnessResult, *, run_goal: float) -> None:
    lat = result.latencies()
    refresh = [r.seconds for r in result.runs if r.job == "refresh_leaderboard"]
    unseen = len(result.samples) - len(lat)
    iv = result.interval
    table = Table(title=f"leaderboard freshness, {result.users:,} users, sensor every {iv} s")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("x interval", justify="right")
    table.add_column("goal")
    table.add_row(
        "ticks (with the last ones after the writes) / runs",
        f"{result.ticks} / {len(result.runs)}",
        "",
        ">= 10 intervals",
    )
    table.add_row(
        "events written", f"{result.events:,} at {result.events_per_second:.1f}/s", "", ""
    )
    table.add_row("point writes sampled / seen", f"{len(result.samples)} / {len(lat)}", "", "all")
    for name, q in (("latency p50", 0.5), ("latency p95", 0.95), ("latency max", 1.0)):
        value = percentile(lat, q)
        goal = f"<= {iv + 30} s" if name == "latency max" else ""
        mark = ""
        if goal:
            mark = " ok" if value <= iv + 30 else " MISSED"
        table.add_row(name, f"{value:.1f} s", f"{value / iv:.2f}", goal + mark)
    if refresh:
        worst = max(refresh)
        mark = " ok" if worst <= run_goal else " MISSED"
        table.add_row("refresh run p50", f"{percentile(refresh, 0.5):.1f} s", "", "")
        table.add_row(
            "refresh run max", f"{worst:.1f} s", f"{worst / iv:.2f}", f"<= {run_goal:.0f} s{mark}"
        )
        table.add_row(
            "at 300 s: worst case",
            f"{300 + worst:.0f} s",
            f"{(300 + worst) / 300:.2f}",
            "<= 330 s" + (" ok" if 300 + worst <= 330 else " MISSED"),
        )
    Console().print(table)
    for reason, count in sorted(result.skips.items()):
        console.print(f"skipped ticks: {count} x {reason}")
    if unseen:
        console.print(f"[yellow]{unseen} sampled writes never reached Redis[/]")
