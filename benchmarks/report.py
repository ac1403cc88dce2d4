"""`vedfin bench all`: every benchmark in one run, one report.

On the resolved servers, each benchmark in its scratch database: seed (generator vs the
PostgreSQL-alone ceiling and the naive way, memory), build (full vs incremental, BI reads),
leaderboard (publish, reads, hit rate), api (the typed API under 8 callers), freshness
(write-to-Redis latency with the sensor), the scaling curve (more users) and the history
curve (the same users, longer histories; both in benchmarks/scaling.py). Writes
``report.json`` (every figure with its target or baseline from the same run, and the
machine), ``REPORT.md``, ``scaling.png`` and ``history.png`` into the output folder.

``--quick`` runs the same code on tiny sizes (the test scenario's order: seconds per
benchmark) so that CI keeps every benchmark working; its figures prove nothing about
speed and go to ``bench/quick/`` unless told otherwise.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis
from psycopg.conninfo import conninfo_to_dict
from rich.console import Console

from benchmarks import api as bench_api
from benchmarks import build as bench_build
from benchmarks import freshness as bench_freshness
from benchmarks import leaderboard as bench_leaderboard
from benchmarks import scaling
from benchmarks import seed as bench_seed
from benchmarks.seed import bench_database
from benchmarks.stats import percentile
from vedfin.config import PROJECT_ROOT, Settings, state_dir
from vedfin.db import describe_target
from vedfin.leaderboard import describe_redis

console = Console(stderr=True)


@dataclass(frozen=True)
class Sizes:
    seed_big_users: int
    seed_rss: list[int]
    naive_events: int
    build_users: int | None
    read_seconds: int
    leaderboard: list[int]
    leaderboard_reads: int
    api_users: int | None
    api_seconds: float
    freshness_users: int | None
    freshness_interval: int
    freshness_intervals: int
    scaling: list[int]
    history_users: int
    history_days: list[int]


FULL = Sizes(40_000, [10_000, 100_000], 20_000, None, 10, [10_000, 100_000], 2000, None, 20,
             None, 20, 6, [1_000, 10_000, 100_000], 30_000, [30, 120, 960])  # fmt: skip
QUICK = Sizes(1_000, [200, 2_000], 1_000, 300, 1, [1_000], 200, 300, 2, 300, 5, 2,
              [100, 300, 1_000], 100, [10, 20, 40])  # fmt: skip


@dataclass
class Section:
    name: str
    command: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _server(described: str) -> str:
    """host:port of a server, from describe_target / describe_redis ("host:port/db")."""
    return described.rsplit("/", 1)[0]


def _project_servers() -> tuple[str | None, str | None]:
    """host:port of the project's own embedded PostgreSQL and Redis while they run."""
    from vedfin.services import EmbeddedPostgres, EmbeddedRedis

    state = state_dir()
    own_pg, own_redis = EmbeddedPostgres(state), EmbeddedRedis(state)
    pg, rd = own_pg.postmaster(), own_redis.running()
    return (
        _server(describe_target(own_pg.url(pg[1]))) if pg else None,
        _server(describe_redis(own_redis.url(rd[1]))) if rd else None,
    )


def machine(settings: Settings) -> dict[str, Any]:
    """The machine and the servers; a server is "embedded" when it is the project's own,
    whether resolved by default or named by DATABASE_URL / REDIS_URL (`vedfin env`)."""
    own_pg, own_redis = _project_servers()
    with psycopg.connect(settings.database_url) as conn:
        pg = conn.execute("select version()").fetchone()
    info = redis.Redis.from_url(settings.redis_url).info("server")
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(_memory_gib(), 1),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "postgresql": pg[0] if pg else "?",
        "redis": info.get("redis_version", "?"),
        "embedded_postgres": settings.embedded_postgres
        or _server(describe_target(settings.database_url)) == own_pg,
        "embedded_redis": settings.embedded_redis
        or _server(describe_redis(settings.redis_url)) == own_redis,
    }


def _rows(figures: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "measure": f.name,
            "figure": f.value,
            "target": getattr(f, "target", ""),
            "ok": getattr(f, "ok", None),
        }
        for f in figures
    ]


def _freshness_rows(result: bench_freshness.FreshnessResult) -> list[dict[str, Any]]:
    lat = result.latencies()
    iv = result.interval
    refresh = [r.seconds for r in result.runs if r.job == "refresh_leaderboard"]
    worst = percentile(lat, 1.0)
    rows: list[dict[str, Any]] = [
        {"measure": "sensor interval, ticks", "figure": f"{iv} s, {result.ticks}", "target": "",
         "ok": None},
        {"measure": "point writes sampled / seen in Redis",
         "figure": f"{len(result.samples)} / {len(lat)}", "target": "all",
         "ok": len(lat) == len(result.samples)},
        {"measure": "latency p50 / p95 / max",
         "figure": f"{percentile(lat, 0.5):.1f} / {percentile(lat, 0.95):.1f} / {worst:.1f} s",
         "target": f"max <= interval + 30 s ({iv + 30} s)", "ok": bool(lat) and worst <= iv + 30},
    ]  # fmt: skip
    if refresh:
        rows.append({"measure": "refresh_leaderboard run p50 / max",
                     "figure": f"{percentile(refresh, 0.5):.1f} / {max(refresh):.1f} s",
                     "target": "<= 20 s", "ok": max(refresh) <= 20})  # fmt: skip
    return rows


LARGE_USERS = 300_000
LARGE_NEEDS_GIB = (8.0, 40.0)  # memory, free disk: the 300,000-user database is about 15 GB


def large_size_allowed(settings: Settings) -> tuple[bool, str]:
    """Whether this machine takes the 300,000-user point of the scaling curve, and why."""
    memory = _memory_gib()
    host = conninfo_to_dict(settings.database_url).get("host")
    local = (
        settings.embedded_postgres
        or host in (None, "127.0.0.1", "localhost", "::1")
        or str(host).startswith("/")  # a Unix socket
    )
    free = shutil.disk_usage(PROJECT_ROOT).free / 2**30
    need_mem, need_disk = LARGE_NEEDS_GIB
    if memory < need_mem:
        return False, f"{memory:.1f} GiB of memory (it needs {need_mem:.0f})"
    if local and free < need_disk:
        return False, f"{free:.0f} GiB free on disk (it needs {need_disk:.0f})"
    return True, f"{memory:.1f} GiB of memory, {free:.0f} GiB free on disk"


def scaling_sizes(settings: Settings, quick: bool, sizes: list[int] | None) -> list[int]:
    if sizes:
        return sorted(set(sizes))
    if quick:
        return QUICK.scaling
    allowed, why = large_size_allowed(settings)
    console.print(
        f"scaling sizes: {', '.join(f'{n:,}' for n in FULL.scaling)}"
        + (f" and {LARGE_USERS:,}" if allowed else f"; not {LARGE_USERS:,}")
        + f" ({why})"
    )
    return [*FULL.scaling, LARGE_USERS] if allowed else FULL.scaling


def run_all(
    settings: Settings, *, quick: bool, out: Path, sizes_scaling: list[int] | None = None
) -> dict[str, Any]:
    sizes = QUICK if quick else FULL
    curve_sizes = scaling_sizes(settings, quick, sizes_scaling)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "vedfin bench all" + (" --quick" if quick else ""),
        "quick": quick,
        "machine": machine(settings),
        "sections": [],
    }
    server = settings.database_url
    sections: list[Section] = []

    def timed(section: Section, fn: Any) -> None:
        t = time.perf_counter()
        console.rule(f"[bold]{section.name}")
        section.rows = fn()
        section.seconds = time.perf_counter() - t
        sections.append(section)

    timed(Section("seed", "vedfin bench seed"), lambda: _rows(bench_seed.run(
        server, database_url=None, big_users=sizes.seed_big_users, rss_sizes=sizes.seed_rss,
        naive_events=sizes.naive_events)))  # fmt: skip
    timed(Section("build", "vedfin bench build"), lambda: _rows(bench_build.run(
        settings, bench_database(server, None), read_seconds=sizes.read_seconds,
        users=sizes.build_users, run_only=True, reads=True)))  # fmt: skip
    timed(Section("leaderboard", "vedfin bench leaderboard"), lambda: _rows(bench_leaderboard.run(
        bench_database(server, None, name="vedfin_bench_lb"), settings.redis_url,
        sizes=sizes.leaderboard, reads=sizes.leaderboard_reads)))  # fmt: skip
    timed(Section("api", "vedfin bench api"), lambda: _rows(bench_api.run(
        settings, bench_database(server, None, name="vedfin_bench_api"), users=sizes.api_users,
        clients=8, seconds=sizes.api_seconds)))  # fmt: skip
    timed(Section("freshness", "vedfin bench freshness"), lambda: _freshness_rows(
        bench_freshness.run(server, settings.redis_url, database_url=None,
                            scenario="benchmark", users=sizes.freshness_users,
                            interval=sizes.freshness_interval,
                            intervals=sizes.freshness_intervals, events_per_second=None,
                            seed=7)))  # fmt: skip
    console.rule("[bold]scaling curve")
    t = time.perf_counter()
    scratch = "vedfin_bench_scaling"
    curve = scaling.measure(settings, bench_database(server, None, name=scratch), curve_sizes)
    report["scaling"] = curve.as_json()
    report["scaling"]["seconds"] = round(time.perf_counter() - t, 1)
    scaling.drop_database(server, scratch)  # gigabytes at the largest size
    console.rule("[bold]history curve")
    t = time.perf_counter()
    scratch = "vedfin_bench_history"
    history = scaling.measure_history(
        settings, bench_database(server, None, name=scratch), sizes.history_users,
        sizes.history_days,
    )  # fmt: skip
    report["history"] = history.as_json() | {
        "users": sizes.history_users,
        "days": sorted(set(sizes.history_days)),
        "seconds": round(time.perf_counter() - t, 1),
    }
    scaling.drop_database(server, scratch)
    report["sections"] = [s.__dict__ for s in sections]
    report["seconds"] = round(time.perf_counter() - started, 1)
    out.mkdir(parents=True, exist_ok=True)
    server_name = report["machine"]["postgresql"].split(" on ")[0]
    where = f"{report['machine']['cores']} cores, {server_name}, {report['generated_at']}"
    scaling.plot(curve, out / "scaling.png", f"vedfin scaling curve ({where})")
    scaling.plot(
        history, out / "history.png",
        f"vedfin history curve ({sizes.history_users:,} users, {where})",
    )  # fmt: skip
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "REPORT.md").write_text(markdown(report))
    return report


def _where(embedded: bool) -> str:
    return "embedded" if embedded else "external"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"# Benchmark report ({report['command']})",
        "",
        f"Generated {report['generated_at']} by `{report['command']}` in {report['seconds']} s. "
        "Every figure below comes from this one run; each target or baseline beside it was "
        "measured in the same run.",
        "",
        "| machine | |",
        "|---|---|",
        f"| cores | {m['cores']} |",
        f"| memory | {m['memory_gib']} GiB |",
        f"| PostgreSQL | {_cell(m['postgresql'])} ({_where(m['embedded_postgres'])}) |",
        f"| Redis | {m['redis']} ({_where(m['embedded_redis'])}) |",
        f"| Python | {m['python']} on {m['platform']} |",
        "",
    ]  # fmt: skip
    if report["quick"]:
        lines += ["**Quick mode**: tiny sizes so that CI runs every benchmark; the figures "
                  "say nothing about speed.", ""]  # fmt: skip
    for s in report["sections"]:
        lines += [f"## {s['name']} (`{s['command']}`, {s['seconds']:.0f} s)", "",
                  "| measure | figure | target / baseline | |", "|---|---|---|---|"]  # fmt: skip
        for r in s["rows"]:
            mark = "" if r["ok"] is None else ("met" if r["ok"] else "**missed**")
            lines.append(f"| {_cell(r['measure'])} | {_cell(r['figure'])} | "
                         f"{_cell(r['target'])} | {mark} |")  # fmt: skip
        lines.append("")
    sc = report["scaling"]
    sizes = sc["sizes"]
    lines += [
        f"## Scaling curve ({sc['seconds']:.0f} s)",
        "",
        "![scaling curve](scaling.png)",
        "",
        "Each step in a process of its own (peak RSS of that process; the server's memory is "
        "not in it). New data held constant across sizes: "
        f"{scaling.DAILY_EVENTS} simulated events before the daily build, "
        f"{scaling.FIVE_MINUTE_EVENTS} before each five-minute run; each five-minute run "
        f"is the median of {scaling.FIVE_MINUTE_RUNS} in a row, the whole publish the median "
        f"of {scaling.PUBLISH_RUNS} (each into an empty record; every run's time is in "
        "report.json). The first five-minute curve runs on the contract's indexes alone "
        "(the arrivals since the last run are found by reading the whole raw log); the "
        "second, on the same database after the index on `app.behavior_logs (ingested_at)` "
        "that `vedfin db init` suggests (its build time is in report.json). Exponent: "
        "slope of the "
        "least-squares line of log(seconds) against log(users) over every size; beside it the "
        "slope between the two largest sizes alone, where fixed costs weigh least. A curve "
        "meets its goal when both are within it.",
        "",
    ]
    lines += _curve_table(sc, [f"{n:,} users" for n in sizes])
    lines += _where_time_goes(sc, [f"{n:,} users" for n in sizes])
    if "history" in report:
        lines += _history(report["history"])
    return "\n".join(lines)


def _curve_table(sc: dict[str, Any], labels: list[str]) -> list[str]:
    """Each curve's points, its exponents and its verdict."""
    sizes = sc["sizes"]
    lines = [
        "| step | " + " | ".join(labels) + " | exponent (time) | "
        "between the two largest | goal | | exponent (memory) |",
        "|---|" + "---|" * len(sizes) + "---|---|---|---|---|",
    ]
    for name, d in sc["steps"].items():
        cells = " | ".join(
            f"{t:.2f} s, {r:.0f} MiB" for t, r in zip(d["seconds"], d["peak_rss_mib"], strict=True)
        )
        last = scaling.exponent(sizes[-2:], d["seconds"][-2:])
        ok = scaling.met(d["exponent_time"], last, d["goal_exponent"])
        met = "met" if ok else "**missed**"
        lines.append(
            f"| {name} | {cells} | {d['exponent_time']:.2f} | {last:.2f} | "
            f"<= {d['goal_exponent']} | {met} | {d['exponent_memory']:.2f} |"
        )
    lines.append("")
    return lines


def _history(hc: dict[str, Any]) -> list[str]:
    labels = [f"{d:,} days, {e:,} events" for d, e in zip(hc["days"], hc["sizes"], strict=True)]
    lines = [
        f"## History curve ({hc['seconds']:.0f} s)",
        "",
        "![history curve](history.png)",
        "",
        f"The same {hc['users']:,} users at every point, with a longer history each time: "
        f"the benchmark scenario over {', '.join(f'{d:,}' for d in hc['days'])} days, each "
        "in a fresh database, then the steps of the scaling curve with the same new data "
        f"({scaling.DAILY_EVENTS} events before the daily build, "
        f"{scaling.FIVE_MINUTE_EVENTS} before each five-minute run, the median of "
        f"{scaling.FIVE_MINUTE_RUNS}), on the contract's indexes alone. Exponents against "
        "the events loaded (the total size). Against users, the daily build and the "
        "five-minute run also grow with what the contract makes every user carry (figures "
        "a new as-of date moves); here the users stay the same and only the history grows.",
        "",
    ]
    built = hc["steps"]["full build"]["details"]
    if all("mau" in n for n in built):
        lines += [
            "Users active at the last date built (DAU / WAU / MAU), at each length: "
            + "; ".join(f"{n['days']:,} days {n['dau']:,} / {n['wau']:,} / {n['mau']:,}"
                        for n in built)
            + ". A longer history spreads the same users' signups over more days, so "
            "fewer of them are still active at its end.",
            "",
        ]  # fmt: skip
    lines += _curve_table(hc, labels)
    lines += _where_time_goes(hc, labels)
    return lines


def _growth_row(step: str, part: str, values: list[float]) -> str:
    growth = f"{values[-1] / values[0]:.2f}x" if values[0] > 0 else ""
    cells = " | ".join(f"{v:.2f} s" for v in values)
    return f"| {step} | {part} | {cells} | {growth} |"


def _where_time_goes(sc: dict[str, Any], labels: list[str], top: int = 6) -> list[str]:
    """For each dbt step, its time at the two largest sizes split into dbt's elapsed time,
    the slowest models (their own times; dbt runs several at once) and the tests."""
    sizes = sc["sizes"][-2:]
    if len(sc["sizes"]) < 2:
        return []
    lines = [
        "### Where the time goes",
        "",
        "From each build's run results at the two largest sizes. A model's time is its own; "
        "dbt runs up to its thread count at once, so they add up to more than dbt's "
        "elapsed time. Outside dbt: start-up and parsing, the build's checks and, in the "
        "five-minute run, the publish to Redis. generate+load: its own phases. publish: "
        "the whole step (a child process), publish() itself, and of that the time up to "
        "the record kept in PostgreSQL being compared and updated (connecting included), "
        "before the snapshot goes to Redis.",
        "",
        "| step | part | " + " | ".join(labels[-2:]) + " | growth |",
        "|---|---|" + "---|" * len(sizes) + "---|",
    ]
    for name, d in sc["steps"].items():
        notes = d["details"][-2:]
        if len(notes) == 2 and all("phases" in n for n in notes):  # the load's own phases
            rows = [("whole step", d["seconds"][-2:])]
            for phase in notes[-1]["phases"]:
                rows.append((phase, [n["phases"].get(phase, 0.0) for n in notes]))
            lines += [_growth_row(name, label, values) for label, values in rows]
            continue
        if len(notes) == 2 and all("record_seconds" in n for n in notes):  # a whole publish
            rows = [
                ("whole step", d["seconds"][-2:]),
                ("publish()", [n["publish_seconds"] for n in notes]),
                ("of which the record in PostgreSQL", [n["record_seconds"] for n in notes]),
            ]
            lines += [_growth_row(name, label, values) for label, values in rows]
            continue
        if len(notes) < 2 or not all("models" in n for n in notes):
            continue
        step_seconds = d["seconds"][-2:]
        dbt_seconds = [n["dbt_seconds"] for n in notes]
        parts: list[tuple[str, list[float]]] = [
            ("whole step", step_seconds),
            ("dbt elapsed", dbt_seconds),
            ("outside dbt", [t - b for t, b in zip(step_seconds, dbt_seconds, strict=True)]),
        ]
        if all("publish_seconds" in n for n in notes):
            parts.append(("of which publish", [n["publish_seconds"] for n in notes]))
        largest = notes[-1]["models"]
        for model in sorted(largest, key=lambda m: -largest[m])[:top]:
            parts.append((f"`{model}`", [n["models"].get(model, 0.0) for n in notes]))
        parts.append((f"tests ({notes[-1]['tests']})", [n["tests_seconds"] for n in notes]))
        lines += [_growth_row(name, label, values) for label, values in parts]
    lines += [
        "",
        f"The {sc.get('axis', 'users')} grow {sizes[-1] / sizes[0]:.1f}x between these sizes; "
        "a part that grows as much grows with the data.",
        "",
    ]
    return lines
