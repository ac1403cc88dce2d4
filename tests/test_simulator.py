"""The live platform simulator (`vedfin simulate`), against a real PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import psycopg
import psycopg.conninfo
import pytest

from seeds_gen.live import LiveSimulator, PointsWrite
from seeds_gen.load import load_fresh
from seeds_gen.scenarios import make_spec
from tests.conftest import ROOT, _recreate_database, run_cli
from vedfin.config import Settings, with_database
from vedfin.db import CONTRACT_COLUMNS, MIGRATIONS_DIR, RAW_TABLES, init_db
from vedfin.errors import VedfinError

END = date(2026, 11, 20)
TABLES = RAW_TABLES  # parents first


@pytest.fixture(scope="module")
def template(settings: Settings) -> Iterator[str]:
    """A small generated dataset (60 users, 5 courses, 30 days), cloned by each test."""
    name = f"{settings.pg_params.get('dbname', 'vedfin')}_sim_tpl"
    _recreate_database(settings.database_url, name)
    url = with_database(settings.database_url, name)
    load_fresh(url, make_spec("test", users=60, seed=11, end_date=END), target="test")
    yield name
    _drop(settings, name)


def _drop(settings: Settings, db: str) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{db}" with (force)')


def _clone(settings: Settings, template: str, name: str) -> str:
    """A new database identical to the template (ids and sequences included)."""
    base = settings.pg_params.get("dbname", "vedfin")
    db = "".join(ch if ch.isalnum() else "_" for ch in f"{base}_sim_{name}")[:60]
    _drop(settings, db)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(f'create database "{db}" template "{template}"')
    return with_database(settings.database_url, db)


@pytest.fixture()
def clone(settings: Settings, template: str, request: pytest.FixtureRequest) -> Iterator[str]:
    url = _clone(settings, template, request.node.name.lower())
    yield url
    _drop(settings, str(psycopg.conninfo.conninfo_to_dict(url)["dbname"]))


def _one(url: str, query: str, params: tuple[object, ...] = ()) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _rows(url: str, query: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def _max_ids(url: str) -> dict[str, int]:
    return {
        t: int(_one(url, f"select coalesce(max(id), 0) from app.{t}"))
        for t in ("users", "behavior_logs", "user_progress", "enrollments")
    }


def _check_integrity(url: str) -> None:
    """What the marts rely on, after any run (or interruption) of the simulator."""
    assert (
        _rows(
            url,
            "select u.id, count(b.id) from app.users u left join app.behavior_logs b "
            "on b.user_id = u.id and b.event_type = 'signup' group by u.id having count(b.id) <> 1",
        )
        == []
    ), "every user has exactly one signup event"
    assert (
        _one(
            url,
            "select count(*) from app.behavior_logs b join app.users u on u.id = b.user_id "
            "where b.occurred_at < u.created_at",
        )
        == 0
    ), "no event before its user's signup"
    assert (
        _one(
            url,
            "select count(*) from app.user_progress where (status = 'COMPLETED') <> "
            "(completed_at is not null) or completed_at < started_at or updated_at < started_at",
        )
        == 0
    )
    for table in ("user_progress", "user_achievements", "enrollments", "streaks"):
        orphans = _one(
            url,
            f"select count(*) from app.{table} t where not exists "
            "(select 1 from app.users u where u.id = t.user_id)",
        )
        assert orphans == 0, table


def test_simulate_writes_what_the_app_writes(clone: str) -> None:
    before = _max_ids(clone)
    in_progress = {
        r[0] for r in _rows(clone, "select id from app.user_progress where status = 'IN_PROGRESS'")
    }
    assert in_progress, "the dataset has unfinished lessons to resume"
    points: list[PointsWrite] = []
    summary = LiveSimulator(clone, seed=5, events_per_second=5000).run(
        max_events=2000, on_points=points.append
    )

    new_events = _one(
        clone, "select count(*) from app.behavior_logs where id > %s", (before["behavior_logs"],)
    )
    assert new_events == summary.events >= 2000
    new_users = _one(clone, "select count(*) from app.users where id > %s", (before["users"],))
    assert new_users == summary.signups > 0
    # lesson completions UPDATE existing rows in place: an unfinished row is completed now
    completed = {
        r[0] for r in _rows(clone, "select id from app.user_progress where status = 'COMPLETED'")
    }
    assert in_progress & completed, "an IN_PROGRESS row of the dataset was completed in place"
    assert summary.completions > 0 and summary.lesson_starts > 0 and summary.enrollments > 0
    started = _one(
        clone, "select count(*) from app.user_progress where id > %s", (before["user_progress"],)
    )
    assert started == summary.lesson_starts
    # each write has its event
    by_type = dict(
        _rows(
            clone,
            "select event_type, count(*) from app.behavior_logs where id > %s group by 1",
            (before["behavior_logs"],),
        )
    )
    assert by_type["signup"] == summary.signups
    assert by_type["lesson_start"] == summary.lesson_starts
    assert by_type["lesson_complete"] == summary.completions
    assert by_type["enroll"] == summary.enrollments
    assert by_type["achievement_unlocked"] == summary.unlocks > 0
    assert by_type["login"] == summary.sessions
    unlocked = _one(
        clone,
        "select count(*) from app.user_achievements where unlocked_at >= "
        "(select min(occurred_at) from app.behavior_logs where id > %s)",
        (before["behavior_logs"],),
    )
    assert unlocked == summary.unlocks
    # streaks moved to the local today, a row for every new user
    today_streaks = _one(
        clone,
        "select count(*) from app.streaks "
        "where last_active_date = (now() at time zone 'Asia/Ho_Chi_Minh')::date",
    )
    assert today_streaks >= summary.signups + 1
    assert summary.streak_updates > 0
    assert (
        _one(
            clone,
            "select count(*) from app.users u where id > %s and not exists "
            "(select 1 from app.streaks s where s.user_id = u.id)",
            (before["users"],),
        )
        == 0
    )
    # wall clock, ingested_at by default, sessions numbered after the existing ones
    lo, hi = _rows(
        clone,
        "select min(occurred_at), max(occurred_at) from app.behavior_logs where id > %s",
        (before["behavior_logs"],),
    )[0]
    assert lo is not None and hi is not None
    assert abs(lo.timestamp() - time.time()) < 120 and abs(hi.timestamp() - time.time()) < 120
    assert (
        _one(
            clone,
            "select count(*) from app.behavior_logs where id > %s and "
            "(ingested_at < occurred_at or session_id <= (select max(session_id) "
            "from app.behavior_logs where id <= %s))",
            (before["behavior_logs"], before["behavior_logs"]),
        )
        == 0
    )
    # points are reported after their commit
    assert len(points) == summary.completions + summary.unlocks
    assert sum(p.points for p in points) == summary.points > 0
    assert {p.kind for p in points} == {"lesson", "achievement"}
    assert all(a.committed_at <= b.committed_at for a, b in zip(points, points[1:], strict=False))
    _check_integrity(clone)


SEQUENCE_SQL = """
select event_type, user_id, session_id, course_id, lesson_id, duration_seconds, properties::text
from app.behavior_logs where id > %s order by id
"""


def _run_sequence(url: str, seed: int, n: int) -> tuple[list[Any], list[Any]]:
    before = _max_ids(url)
    LiveSimulator(url, seed=seed, events_per_second=5000).run(max_events=n)
    events = _rows(url, SEQUENCE_SQL, (before["behavior_logs"],))
    rows = _rows(
        url,
        "select user_id, lesson_id, status, progress_pct, time_spent_seconds "
        "from app.user_progress order by id",
    ) + _rows(
        url,
        "select email, full_name, phone, province, persona from app.users where id > %s "
        "order by id",
        (before["users"],),
    )
    return list(events), list(rows)


def test_same_seed_same_actions(settings: Settings, template: str) -> None:
    """Two identical databases, one seed: the same actions, users, lessons and rows (only
    the timestamps differ); another seed: other actions."""
    urls = [_clone(settings, template, f"det_{k}") for k in "abc"]
    try:
        events_a, rows_a = _run_sequence(urls[0], 42, 800)
        events_b, rows_b = _run_sequence(urls[1], 42, 800)
        events_c, _ = _run_sequence(urls[2], 43, 800)
    finally:
        for url in urls:
            _drop(settings, str(psycopg.conninfo.conninfo_to_dict(url)["dbname"]))
    assert len(events_a) >= 800
    assert {e[0] for e in events_a} >= {"signup", "login", "lesson_start", "lesson_complete"}
    assert events_a == events_b
    assert rows_a == rows_b
    assert events_c != events_a


def test_paced_by_the_clock(clone: str) -> None:
    """--events-per-second with --duration: at most rate x duration events (plus the last
    action's), never a burst; the duration is kept. No lower bound on the count: a busy
    machine may write fewer, and this is not a speed test."""
    summary = LiveSimulator(clone, seed=3, events_per_second=40).run(duration=1.5)
    assert summary.seconds >= 1.4
    assert 1 <= summary.events <= 75, summary
    n = _one(
        clone,
        "select count(*) from app.behavior_logs where occurred_at > now() - interval '1 minute'",
    )
    assert n == summary.events


def _copy_app(src: str, dst: str, skip: tuple[str, ...] = ()) -> None:
    """What an outside writer does: plain COPY of the contract's columns, explicit ids."""
    with psycopg.connect(src) as s, psycopg.connect(dst) as d:
        for table in TABLES:
            if table in skip:
                continue
            cols = ", ".join(CONTRACT_COLUMNS[table])
            with (
                s.cursor().copy(f"copy app.{table} ({cols}) to stdout") as out,
                d.cursor().copy(f"copy app.{table} ({cols}) from stdin") as into,
            ):
                for block in out:
                    into.write(block)
        d.commit()


@pytest.mark.parametrize("ddl", ["db_init", "own_ddl"])
def test_runs_on_data_of_an_outside_writer(
    fresh_db: str, settings: Settings, template: str, ddl: str
) -> None:
    """The contract's tables, by `vedfin db init` or by the writer's own DDL (no vedfin_meta
    at all), filled with plain COPY: no generator bookkeeping, sequences left at 1."""
    if ddl == "db_init":
        init_db(fresh_db)
    else:
        with psycopg.connect(fresh_db) as conn:  # the platform's own DDL: other extras
            conn.execute((MIGRATIONS_DIR / "V001__app_schema.sql").read_text())
            conn.execute("alter table app.users drop column gender")
            conn.execute("alter table app.users add column locale text not null default 'vi'")
            conn.execute("alter table app.achievements drop column description")
    _copy_app(with_database(settings.database_url, template), fresh_db, skip=("streaks",))
    if _one(fresh_db, "select to_regclass('vedfin_meta.seed_users') is not null"):
        assert _one(fresh_db, "select count(*) from vedfin_meta.seed_users") == 0
        assert _one(fresh_db, "select count(*) from vedfin_meta.seed_runs") == 0
    before = _max_ids(fresh_db)
    summary = LiveSimulator(fresh_db, seed=9, events_per_second=5000).run(max_events=600)
    assert summary.events >= 600 and summary.signups > 0 and summary.sessions > 0
    # new rows are numbered by the identity columns, after the copied ids
    assert (
        _one(fresh_db, "select min(id) from app.users where id > %s", (before["users"],))
        == before["users"] + 1
    )
    # no streak rows were copied: every user active now has one, dated today
    assert _one(fresh_db, "select count(*) from app.streaks") > summary.signups
    assert (
        _one(
            fresh_db,
            "select count(*) from app.behavior_logs b where id > %s and not exists ("
            "select 1 from app.streaks s where s.user_id = b.user_id and s.last_active_date"
            " >= (b.occurred_at at time zone 'Asia/Ho_Chi_Minh')::date)",
            (before["behavior_logs"],),
        )
        == 0
    )
    _check_integrity(fresh_db)


def test_refuses_prod(clone: str) -> None:
    before = _max_ids(clone)
    result = run_cli(
        "simulate", "--target", "prod", "--max-events", "5", env={"DATABASE_URL": clone}
    )
    assert result.returncode != 0
    assert "prod" in result.stderr and "--force" in result.stderr
    assert "Traceback" not in result.stderr
    assert _max_ids(clone) == before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_stops_cleanly_on_a_signal(clone: str, sig: signal.Signals) -> None:
    before = _max_ids(clone)
    env = {**os.environ, "DATABASE_URL": clone}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vedfin_cli",
            "simulate",
            "--events-per-second",
            "200",
            "--seed",
            "1",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(3)
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(sig)
        # the action in progress finishes first (by design); a commit can stall for
        # seconds on this machine's disk while the suite's earlier loads are written out
        # (CI once took over 10 s here), so allow a minute: a simulator that ignored the
        # signal would never stop
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "behavior events" in err  # the summary
    written = _one(
        clone, "select count(*) from app.behavior_logs where id > %s", (before["behavior_logs"],)
    )
    assert written > 50
    _check_integrity(clone)


@pytest.mark.parametrize("rate", ["0", "-1"])
def test_rate_must_be_positive(rate: str) -> None:
    result = run_cli("simulate", "--events-per-second", rate, "--max-events", "1")
    assert result.returncode == 2
    assert "--events-per-second" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(VedfinError, match="positive"):
        LiveSimulator("postgresql://nowhere", events_per_second=float(rate))


def test_empty_or_missing_app_is_a_clear_error(fresh_db: str) -> None:
    result = run_cli("simulate", "--max-events", "5", env={"DATABASE_URL": fresh_db})
    assert result.returncode == 1
    assert "no raw schema app" in result.stderr and "Traceback" not in result.stderr
    init_db(fresh_db)
    result = run_cli("simulate", "--max-events", "5", env={"DATABASE_URL": fresh_db})
    assert result.returncode == 1
    assert "vedfin seed" in result.stderr and "populated database" in result.stderr
    assert "Traceback" not in result.stderr
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "insert into app.users (email, full_name, created_at) values ('a@b.vn', 'A', now())"
        )
        conn.execute(
            "insert into app.courses (slug, title, category, level, published_at) "
            "values ('c', 'C', 'saving', 'BEGINNER', now())"
        )
    with pytest.raises(VedfinError, match="no lessons"):
        LiveSimulator(fresh_db).run(max_events=1)
    assert _one(fresh_db, "select count(*) from app.behavior_logs") == 0
