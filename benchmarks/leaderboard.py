"""`vedfin bench leaderboard`: publish time, read latency and hit rate of the Redis snapshot.

All figures come from this run, against the resolved PostgreSQL and Redis:

1. a ``marts.fct_leaderboard`` of N users (10k and 100k by default: tied scores, masked
   names) in a scratch database; ``publish`` timed (best of 3);
2. top-100 reads through :class:`LeaderboardReader` (one Lua call) vs the same answer
   from SQL (``order by rank, user_id limit 100`` on the indexed mart): p50/p99, ratio;
3. a reader looping while the snapshot is republished 20 times: hit rate, reads.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from dataclasses import dataclass

import psycopg
import redis

from benchmarks.stats import percentile
from vedfin.leaderboard import LeaderboardReader, LeaderboardSettings, publish


@dataclass
class Figure:
    name: str
    value: str
    target: str = ""


def fill_mart(url: str, users: int, seed: int = 7) -> None:
    """A fct_leaderboard-shaped table of ``users`` rows, ranked with RANK()."""
    rng = random.Random(seed)
    with psycopg.connect(url) as conn:
        conn.execute("create schema if not exists marts")
        conn.execute("drop table if exists marts.fct_leaderboard")
        conn.execute(
            "create table marts.fct_leaderboard (user_id bigint not null, display_name text, "
            "total_points bigint, points_7d bigint, rank bigint)"
        )
        conn.execute("drop table if exists marts.fct_daily_active_users")
        conn.execute("create table marts.fct_daily_active_users (activity_date date)")
        conn.execute("insert into marts.fct_daily_active_users values (current_date)")
        with conn.cursor().copy(
            "copy marts.fct_leaderboard (user_id, display_name, total_points, points_7d) from stdin"
        ) as copy:
            for u in range(1, users + 1):
                total = int(rng.paretovariate(1.3) * 40) // 5 * 5
                copy.write_row(
                    (u, f"Nguyễn V. {chr(65 + u % 26)}.", total, rng.choice((0, 0, 5, 10, 25)))
                )
        conn.execute(
            "update marts.fct_leaderboard f set rank = r.rank from (select user_id, "
            "rank() over (order by total_points desc) as rank from marts.fct_leaderboard) r "
            "where r.user_id = f.user_id"
        )
        conn.execute("create unique index on marts.fct_leaderboard (user_id)")
        conn.execute("create index on marts.fct_leaderboard (rank, user_id)")
        conn.execute("analyze marts.fct_leaderboard")


def run(url: str, redis_url: str, *, sizes: list[int], reads: int) -> list[Figure]:
    lb = LeaderboardSettings(redis_url, prefix="vedfin_bench:", target="dev")
    figures: list[Figure] = []
    for users in sizes:
        fill_mart(url, users)
        times = []
        for _ in range(3):
            times.append(publish(url, lb, full=True).seconds)
        figures.append(
            Figure(
                f"publish {users:,} users",
                f"{min(times) * 1000:,.0f} ms (best of 3; {users / min(times):,.0f} users/s)",
            )
        )

    reader = LeaderboardReader(lb, url)
    for _ in range(50):  # warm both paths
        reader.top(100)
        reader.from_sql(100)
    assert reader.top(100).entries == reader.from_sql(100), "Redis and SQL answers differ"
    redis_ms, sql_ms = [], []
    for _ in range(reads):
        t0 = time.perf_counter()
        reader.top(100)
        t1 = time.perf_counter()
        reader.from_sql(100)
        t2 = time.perf_counter()
        redis_ms.append((t1 - t0) * 1000)
        sql_ms.append((t2 - t1) * 1000)
    r99, s99 = percentile(redis_ms, 0.99), percentile(sql_ms, 0.99)
    figures.append(
        Figure(
            f"top-100 read ({sizes[-1]:,} users, {reads:,} reads)",
            f"Redis p50 {statistics.median(redis_ms):.2f} ms, p99 {r99:.2f} ms | SQL (new "
            f"connection + indexed query) p50 {statistics.median(sql_ms):.2f} ms, p99 "
            f"{s99:.2f} ms | {s99 / r99:.1f}x | answers equal",
        )
    )
    with psycopg.connect(url) as conn:  # SQL on a kept connection, the fair comparison
        kept = []
        for _ in range(reads):
            t0 = time.perf_counter()
            conn.execute(
                "select user_id, display_name, total_points, rank from marts.fct_leaderboard "
                "order by rank, user_id limit 100"
            ).fetchall()
            kept.append((time.perf_counter() - t0) * 1000)
    figures.append(
        Figure(
            "top-100 from SQL on a kept connection",
            f"p50 {statistics.median(kept):.2f} ms, p99 {percentile(kept, 0.99):.2f} ms",
        )
    )

    loop_reader = LeaderboardReader(lb, url)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            loop_reader.top(100)

    thread = threading.Thread(target=loop)
    thread.start()
    started = time.perf_counter()
    for _ in range(20):
        publish(url, lb, full=True)  # whole snapshots: each one a swap under the readers
    stop.set()
    thread.join()
    elapsed = time.perf_counter() - started
    s = loop_reader.stats
    figures.append(
        Figure(
            "hit rate while republishing 20 times",
            f"{s.hit_rate:.2%} ({s.hits:,} hits, {s.misses} misses, {s.errors} errors in "
            f"{elapsed:.1f} s)",
            "100%",
        )
    )
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter("vedfin_bench:*"))
    if keys:
        client.unlink(*keys)
    return figures


def print_figures(figures: list[Figure]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="vedfin bench leaderboard")
    for col in ("measure", "figure", "target"):
        table.add_column(col)
    for f in figures:
        table.add_row(f.name, f.value, f.target)
    Console(width=200).print(table)
