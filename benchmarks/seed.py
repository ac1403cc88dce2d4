"""`vedfin bench seed`: how fast the generator loads, against the naive way.

Every figure is measured in this run, on this machine, into a scratch database
(``<db>_bench`` on the resolved server unless ``--database-url`` is given):

1. the ``benchmark`` scenario, generated and loaded (target: under 10 s);
2. a load of a few million events, end to end (target: 300,000 event rows/s), ``LOAD_RUNS``
   times, its median;
3. the naive way on rows of the same tables: Faker calls per row and
   ``executemany`` INSERTs into indexed tables, timed on a sample, and the
   ratio of rows/s (target: at least 20x);
4. peak RSS of the generator process at two sizes (memory must stay flat),
   each in a child process of its own.

Beside 2. it measures PostgreSQL alone on the same load, every table already encoded
(no generation at all): COPY, the same keys and indexes, ANALYZE and commit. No
generator can load faster than that on this server, so it says whether a target is
within reach here; it is timed after each of the generator's loads, and the two medians
are compared. Peak RSS counts the generator's worker processes too, when it uses
them (``seed --workers``).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime

from rich.console import Console

from benchmarks.stats import peak_rss_mib, print_table
from seeds_gen.load import FRESH_TABLES, analyze_app, empty_app, load_fresh, restore_app
from seeds_gen.reference import EVENT_TYPES
from seeds_gen.scenarios import make_spec
from vedfin.config import database_on
from vedfin.db import connect

console = Console(stderr=True)
BENCH_END = date(2026, 11, 20)
LOAD_RUNS = 3
"""The generator's load and PostgreSQL alone on its rows are each timed this many times, in
turn, and compared by their medians: single loads of the same rows moved by up to 15%
between runs (10.9 to 12.2 s for the generator, 8.7 to 9.5 s for PostgreSQL alone)."""


@dataclass
class Figure:
    name: str
    value: str
    target: str
    ok: bool | None


def _fresh(url: str, users: int | None, scenario: str = "benchmark") -> tuple[float, int, int]:
    spec = make_spec(scenario, users=users, end_date=BENCH_END)
    result = load_fresh(url, spec, reset=True)
    return result.seconds, result.rows["behavior_logs"], result.total_rows


def postgres_alone(url: str) -> tuple[float, int]:
    """Seconds for PostgreSQL to take the load just made once more with no generator at all.

    Every table the generator fills is read out first in binary (not timed); then the
    fresh load's own steps run on those bytes: one transaction that truncates, drops the
    keys and indexes, COPY FREEZE of each table, puts the keys and indexes back, resets the
    sequences; ANALYZE; commit. The same rows, the same work on the server, so it is the
    most any generator could reach here. Returns (seconds, event rows)."""
    with connect(url) as conn, ExitStack() as stack:
        spools = {t: stack.enter_context(tempfile.TemporaryFile("w+b")) for t in FRESH_TABLES}
        for table, spool in spools.items():
            with conn.cursor().copy(f"copy {table} to stdout with (format binary)") as out:
                for block in out:
                    spool.write(block)
        conn.commit()
        conn.execute("set synchronous_commit = off")
        conn.execute("set maintenance_work_mem = '1GB'")
        started = time.perf_counter()
        with conn.transaction():
            saved = empty_app(conn)
            for table, spool in spools.items():
                spool.seek(0)
                with conn.cursor().copy(
                    f"copy {table} from stdin with (format binary, freeze)"
                ) as cp:
                    while block := spool.read(1 << 20):
                        cp.write(block)
            restore_app(conn, saved)
        analyze_app(conn)
        conn.commit()
        seconds = time.perf_counter() - started
        rows = conn.execute("select count(*) from app.behavior_logs").fetchone()
    return seconds, int(rows[0]) if rows else 0


def naive_rate(url: str, n_events: int, n_users: int) -> tuple[float, float]:
    """Rows/s of Faker-per-row generation with executemany INSERTs (events, users)."""
    from faker import Faker

    fake = Faker("vi_VN")
    Faker.seed(1)
    types = list(EVENT_TYPES)
    start = datetime(2026, 5, 25, tzinfo=UTC)
    end = datetime(2026, 11, 20, tzinfo=UTC)
    with connect(url) as conn:
        conn.execute("drop schema if exists bench_naive cascade")
        conn.execute("create schema bench_naive")
        for table in ("users", "behavior_logs"):
            conn.execute(
                f"create table bench_naive.{table} "
                f"(like app.{table} including defaults including indexes)"
            )
        conn.commit()
        t0 = time.perf_counter()
        rows: list[tuple[object, ...]] = []
        for i in range(n_users):
            rows.append(
                (
                    i + 1,
                    f"{i}.{fake.email()}",
                    fake.name(),
                    fake.phone_number(),
                    fake.province(),
                    fake.random_int(1960, 2007),
                    fake.date_time_between(start, end, tzinfo=UTC),
                )
            )
        with conn.cursor() as cur:
            cur.executemany(
                "insert into bench_naive.users (id, email, full_name, phone, province, "
                "birth_year, created_at) values (%s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
        conn.commit()
        users_rate = n_users / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        events: list[tuple[object, ...]] = []
        for i in range(n_events):
            events.append(
                (
                    i + 1,
                    fake.random_int(1, n_users),
                    fake.random_int(1, 10**6),
                    fake.random_element(types),
                    fake.random_int(1, 14),
                    fake.random_int(1, 72),
                    fake.date_time_between(start, end, tzinfo=UTC),
                    fake.random_int(1, 900),
                    json.dumps({"page": fake.word()}),
                    fake.random_element(["android", "ios", "web"]),
                    fake.date_time_between(start, end, tzinfo=UTC),
                )
            )
        with conn.cursor() as cur:
            cur.executemany(
                "insert into bench_naive.behavior_logs (id, user_id, session_id, event_type, "
                "course_id, lesson_id, occurred_at, duration_seconds, properties, device, "
                "ingested_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                events,
            )
        conn.commit()
        events_rate = n_events / (time.perf_counter() - t0)
        conn.execute("drop schema bench_naive cascade")
        conn.commit()
    return events_rate, users_rate


def peak_rss_child(url: str, users: int) -> tuple[float, float, int]:
    """Load ``users`` in a child process; its peak RSS (MiB, with its generator workers'
    if any), seconds and events."""
    code = (
        "import json\n"
        "from benchmarks.seed import BENCH_END\n"
        "from benchmarks.stats import peak_rss_mib\n"
        "from seeds_gen.load import load_fresh\n"
        "from seeds_gen.scenarios import make_spec\n"
        "if __name__ == '__main__':\n"
        f"    spec = make_spec('benchmark', users={users}, end_date=BENCH_END)\n"
        f"    r = load_fresh({url!r}, spec, reset=True)\n"
        "    mib = peak_rss_mib() + sum(r.worker_peak_mib.values())\n"
        "    print(json.dumps({'rss_mib': mib, 'seconds': r.seconds,\n"
        "                      'events': r.rows['behavior_logs']}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    return data["rss_mib"], data["seconds"], data["events"]


def _runs(seconds: list[float]) -> str:
    return ", ".join(f"{s:.2f}" for s in seconds) + " s"


def bench_database(server_url: str, override: str | None, name: str = "vedfin_bench") -> str:
    """The scratch database a benchmark writes into (created when missing)."""
    return override or database_on(server_url, name)


def run(
    server_url: str,
    *,
    database_url: str | None,
    big_users: int,
    rss_sizes: list[int],
    naive_events: int,
) -> list[Figure]:
    url = bench_database(server_url, database_url)
    figures: list[Figure] = []
    console.print(
        f"[bold]bench seed[/] into {url.split('@')[-1]} (python {sys.version.split()[0]})"
    )

    console.print("1/4 benchmark scenario ...")
    secs, events, total = _fresh(url, None)
    figures.append(
        Figure(
            "benchmark scenario (10,000 users, 180 days): generate + load",
            f"{secs:.2f} s ({total:,} rows, {events:,} events)",
            "< 10 s",
            secs < 10,
        )
    )

    console.print(
        f"2/4 {big_users:,} users (a few million events), then PostgreSQL alone on the same "
        f"rows pre-encoded; {LOAD_RUNS} times in turn ..."
    )
    fast_runs: list[float] = []
    alone_runs: list[float] = []
    for _ in range(LOAD_RUNS):
        secs, events, total = _fresh(url, big_users)
        alone_secs, alone_rows = postgres_alone(url)
        fast_runs.append(secs)
        alone_runs.append(alone_secs)
    secs, alone_secs = statistics.median(fast_runs), statistics.median(alone_runs)
    fast_rate = events / secs
    figures.append(
        Figure(
            f"{big_users:,} users, end to end (incl. keys, indexes, ANALYZE)",
            f"{secs:.2f} s, {events:,} events, {fast_rate:,.0f} event rows/s "
            f"(median of {_runs(fast_runs)})",
            ">= 300,000 event rows/s",
            fast_rate >= 300_000,
        )
    )
    alone_rate = alone_rows / alone_secs
    figures.append(
        Figure(
            "PostgreSQL alone: the same load, every table pre-encoded (COPY FREEZE + "
            "keys/indexes + ANALYZE)",
            f"{alone_secs:.2f} s, {alone_rate:,.0f} event rows/s (median of "
            f"{_runs(alone_runs)}); the generator end to end reaches "
            f"{fast_rate / alone_rate:.0%} of it",
            "the ceiling for any generator here",
            None,
        )
    )

    console.print(f"3/4 the naive way on {naive_events:,} events ...")
    naive_ev, naive_users = naive_rate(url, naive_events, max(naive_events // 100, 100))
    ratio = fast_rate / naive_ev
    figures.append(
        Figure(
            "naive: Faker per row + executemany INSERT (events)",
            f"{naive_ev:,.0f} rows/s",
            "",
            None,
        )
    )
    figures.append(
        Figure(
            "naive: Faker per row + executemany INSERT (users)",
            f"{naive_users:,.0f} rows/s",
            "",
            None,
        )
    )
    figures.append(
        Figure("ratio fast / naive (event rows/s)", f"{ratio:,.1f}x", ">= 20x", ratio >= 20)
    )
    figures.append(
        Figure(
            "ratio PostgreSQL alone / naive (the most any generator could show)",
            f"{alone_rate / naive_ev:,.1f}x",
            "",
            None,
        )
    )

    console.print(f"4/4 peak RSS at {', '.join(f'{u:,}' for u in rss_sizes)} users ...")
    rss = []
    for users in rss_sizes:
        mib, s, ev = peak_rss_child(url, users)
        rss.append(mib)
        figures.append(
            Figure(
                f"peak RSS, {users:,} users ({ev:,} events, {s:.1f} s)",
                f"{mib:,.0f} MiB",
                "flat",
                None,
            )
        )
    if len(rss) >= 2:
        growth = rss[-1] / rss[0]
        size_ratio = rss_sizes[-1] / rss_sizes[0]
        figures.append(
            Figure(
                f"RSS growth for {size_ratio:.0f}x the users", f"{growth:.2f}x", "< 2x", growth < 2
            )
        )
    with connect(url) as conn:  # leave a small database behind, not gigabytes
        conn.execute(
            "truncate "
            + ", ".join(
                f"app.{t}"
                for t in (
                    "behavior_logs",
                    "user_progress",
                    "enrollments",
                    "user_achievements",
                    "streaks",
                    "buddy_group_members",
                    "buddy_groups",
                    "users",
                    "lessons",
                    "courses",
                    "achievements",
                )
            )
            + ", vedfin_meta.seed_users"
        )
        conn.commit()
    return figures


def print_figures(figures: list[Figure]) -> None:
    print_table("vedfin bench seed", figures, width=160)
    console.print(f"(this process peaked at {peak_rss_mib():,.0f} MiB)")
