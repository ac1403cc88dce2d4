"""`vedfin bench all --quick`: every benchmark still runs and the report holds together
(CI runs this so the benchmarks never rot; the quick figures prove nothing about speed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import scaling
from tests.conftest import run_cli
from vedfin.config import Settings

SECTIONS = ["seed", "build", "leaderboard", "api", "freshness"]
NAMED_STEPS = {
    "generate+load",
    "full build",
    "daily incremental build",
    "five-minute run",
    "publish",
}


@pytest.mark.slow
def test_bench_all_quick_writes_the_whole_report(tmp_path: Path) -> None:
    sizes = "1000,100,300"  # the quick sizes, given out of order: the curve sorts them
    done = run_cli(
        "bench", "all", "--quick", "--sizes", sizes, "--out", str(tmp_path), timeout=1800
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    # the freshness benchmark's jobs log into its log file, not between the figures
    assert "dagster.builtin" not in done.stdout + done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["quick"] is True
    machine = report["machine"]
    assert machine["cores"] >= 1 and machine["memory_gib"] > 0
    assert machine["postgresql"].startswith("PostgreSQL") and machine["redis"]
    assert [s["name"] for s in report["sections"]] == SECTIONS
    for section in report["sections"]:
        assert section["rows"], section["name"]
        assert all(r["measure"] and r["figure"] for r in section["rows"])
    sizes = report["scaling"]["sizes"]
    assert sizes == [100, 300, 1000]
    steps = report["scaling"]["steps"]
    assert list(steps) == list(scaling.STEPS) and set(steps) >= NAMED_STEPS  # the issue's
    for curve in steps.values():
        assert len(curve["seconds"]) == len(sizes) and all(s > 0 for s in curve["seconds"])
        assert all(m > 0 for m in curve["peak_rss_mib"])
        assert isinstance(curve["exponent_time"], float)
        goal = curve["goal_exponent"]
        both = curve["exponent_time"] <= goal and curve["exponent_time_two_largest"] <= goal
        assert curve["met"] is both  # the verdict needs the tail's slope within the goal too
    png = (tmp_path / "scaling.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    for step in ("full build", "daily incremental build", *scaling.FIVE_MINUTE_STEPS):
        for note in report["scaling"]["steps"][step]["details"]:
            # each build's own run results: dbt's time, every model's, the tests'
            assert 0 < note["dbt_seconds"] < curve_seconds(report, step, note["users"])
            assert "fct_leaderboard" in note["models"] and note["tests"] > 0
    for step, count in scaling.RUNS.items():
        for note in report["scaling"]["steps"][step]["details"]:
            # the curve's point is the median of the runs in a row, each one recorded
            runs = note["runs_seconds"]
            assert len(runs) == count
            chosen = curve_seconds(report, step, note["users"])
            assert chosen == pytest.approx(sorted(runs)[(len(runs) - 1) // 2], abs=1e-3)
    for note in report["scaling"]["steps"]["five-minute run, ingested_at indexed"]["details"]:
        assert note["index_seconds"] > 0  # the suggested index was built before these runs
    for note in report["scaling"]["steps"]["publish"]["details"]:
        # the record starts empty at each size: the whole publish writes every entry anew
        assert note["publish_changed"] == note["published"] > 0
        assert 0 < note["record_seconds"] <= note["publish_seconds"]
    for note in report["scaling"]["steps"]["generate+load"]["details"]:
        assert set(note["phases"]) >= {"generate + copy events", "keys and indexes"}
    history = report["history"]  # the same users, longer and longer histories
    assert history["axis"] == "events" and history["users"] == 100
    assert history["days"] == [10, 20, 40] and list(history["steps"]) == list(scaling.HISTORY_STEPS)
    assert len(history["sizes"]) == 3 and history["sizes"] == sorted(history["sizes"])
    assert len(set(history["sizes"])) == 3  # a longer history loads more events
    for name, curve in history["steps"].items():
        assert [n["days"] for n in curve["details"]] == [10, 20, 40]
        assert all(s > 0 for s in curve["seconds"]) and len(curve["seconds"]) == 3
        goal = scaling.FULL_GOAL if name in scaling.FULL_WORK else scaling.NEW_DATA_GOAL
        assert curve["goal_exponent"] == goal
    for note in history["steps"]["full build"]["details"]:
        assert 0 <= note["dau"] <= note["wau"] <= note["mau"] <= 100 and note["mau"] > 0
    for note in history["steps"]["five-minute run"]["details"]:
        assert len(note["runs_seconds"]) == scaling.FIVE_MINUTE_RUNS
    png = (tmp_path / "history.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    md = (tmp_path / "REPORT.md").read_text()
    assert "## Scaling curve" in md and "![scaling curve](scaling.png)" in md
    assert "## History curve" in md and "![history curve](history.png)" in md
    assert (
        "| 40 days, " in md and "(DAU / WAU / MAU)" in md
    )  # the history's points are named by their length and events
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert len(headings) == len(SECTIONS) + 2
    assert "### Where the time goes" in md and "| five-minute run | of which publish |" in md


def curve_seconds(report: dict, step: str, users: int) -> float:
    curve = report["scaling"]["steps"][step]
    return float(curve["seconds"][report["scaling"]["sizes"].index(users)])


@pytest.mark.parametrize(
    ("value", "message"),
    [("1000,x", "not a comma-separated list"), ("5", "each at least 10"), (",", "one or more")],
)
def test_bench_sizes_are_checked_before_anything_runs(value: str, message: str) -> None:
    done = run_cli("bench", "all", "--sizes", value, timeout=60)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_the_median_run_keeps_its_own_figures_and_every_time() -> None:
    runs = [
        {"seconds": 21.0, "peak_rss_mib": 180.0, "dbt_seconds": 15.0},
        {"seconds": 15.0, "peak_rss_mib": 190.0, "dbt_seconds": 10.0},
        {"seconds": 17.0, "peak_rss_mib": 185.0, "dbt_seconds": 12.0},
    ]
    chosen = scaling.median_run(runs)
    assert chosen["seconds"] == 17.0 and chosen["dbt_seconds"] == 12.0
    assert chosen["peak_rss_mib"] == 190.0  # the highest of the runs
    assert chosen["runs_seconds"] == [21.0, 15.0, 17.0]
    assert scaling.median_run(runs[:2])["seconds"] == 15.0  # the lower middle of two


def test_the_report_calls_the_project_s_own_servers_embedded_however_they_were_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`eval "$(vedfin env)"` names the embedded servers in DATABASE_URL / REDIS_URL: the
    report's machine still says embedded for them (it said external)."""
    from dataclasses import replace

    from benchmarks.report import machine
    from vedfin.config import resolve

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    own = resolve()  # the project's own servers, as `vedfin env` prints them
    assert own.embedded_postgres and own.embedded_redis
    named = replace(own, embedded_postgres=False, embedded_redis=False)
    found = machine(named)
    assert (found["embedded_postgres"], found["embedded_redis"]) == (True, True)


def test_each_size_of_the_scaling_curve_starts_on_a_fresh_database(
    settings: Settings, fresh_db: str
) -> None:
    """The size before leaves nothing behind: its tables, its marts, its record of the
    published snapshot (each size's load used to truncate the last one's inside its own
    transaction, and its marts stayed until the build)."""
    import psycopg

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("create table left_behind (id int)")
        conn.execute("insert into left_behind values (1)")
    holding = psycopg.connect(fresh_db)  # a session still open on it is no obstacle
    try:
        holding.execute("select 1")
        scaling.fresh_database(settings.database_url, fresh_db)
    finally:
        holding.close()
    with psycopg.connect(fresh_db) as conn:
        row = conn.execute("select to_regclass('left_behind')").fetchone()
        assert row is not None and row[0] is None
        conn.execute("create table kept (id int)")
        conn.commit()
    with pytest.raises(ValueError, match="refusing to drop it"):  # never the server's own
        scaling.fresh_database(fresh_db, fresh_db)
    with psycopg.connect(fresh_db) as conn:
        row = conn.execute("select to_regclass('kept')").fetchone()
        assert row is not None and row[0] is not None
