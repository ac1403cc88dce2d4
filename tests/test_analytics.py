"""The typed analytics API (vedfin.analytics) against the marts of a real build."""

from __future__ import annotations

import subprocess
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import astuple, fields
from datetime import date, timedelta

import psycopg
import pytest

from tests.conftest import ROOT, built_database, run_cli
from vedfin.analytics import RECORDS, Analytics, BadRequest, bi_reader_url
from vedfin.config import Settings

END = date(2026, 11, 20)
PASSWORD = "bi-analytics-pw"


@pytest.fixture(scope="module")
def built(settings: Settings) -> str:
    url = built_database(settings, "vedfin_analytics", scenario="demo", end_date=END.isoformat())
    env = {"DATABASE_URL": url, "DBT_TARGET": "test"}
    done = run_cli("db", "roles", "--env", "dev", env={**env, "BI_READER_PASSWORD": PASSWORD})
    assert done.returncode == 0, done.stdout + done.stderr
    return url


@pytest.fixture(scope="module")
def api(built: str) -> Iterator[Analytics]:
    with Analytics(bi_reader_url(built, PASSWORD), max_size=4) as analytics:
        yield analytics


def _mart(url: str, query: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def _typed(record: object) -> None:
    """Every field holds a value of its annotated type (None only where allowed)."""
    hints = typing.get_type_hints(type(record))
    for f in fields(record):  # type: ignore[arg-type]
        value, hint = getattr(record, f.name), hints[f.name]
        allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        if value is None:
            assert type(None) in allowed, (type(record).__name__, f.name)
        else:
            assert isinstance(value, tuple(a for a in allowed if a is not type(None))), (
                type(record).__name__, f.name, value, hint
            )  # fmt: skip
            assert not (isinstance(value, bool) and bool not in allowed), f.name


def test_every_record_has_its_marts_columns(built: str) -> None:
    for mart, record in RECORDS.items():
        columns = [
            c for (c,) in _mart(
                built,
                "select column_name from information_schema.columns where table_schema = 'marts' "
                "and table_name = %s order by ordinal_position",
                mart,
            )
        ]  # fmt: skip
        assert [f.name for f in fields(record)] == [c for c in columns if c != "last_ingested_at"]


def test_each_function_returns_what_the_mart_holds_typed(api: Analytics, built: str) -> None:
    start, end = END - timedelta(days=29), END
    days = api.daily_active_users(start, end)
    assert [astuple(d) for d in days] == _mart(
        built,
        "select activity_date, dau, wau, mau, stickiness, new_users, is_complete "
        "from marts.fct_daily_active_users where activity_date between %s and %s order by 1",
        start, end,
    )  # fmt: skip
    assert len(days) == 30
    weeks = (date(2026, 8, 3), date(2026, 11, 16))
    retention = api.cohort_retention(*weeks)
    assert retention and [astuple(r) for r in retention] == _mart(
        built,
        "select cohort_week, week_number, activity_week, cohort_size, retained_users, "
        "retention_rate, retained_users_unbounded, retention_rate_unbounded, is_complete "
        "from marts.fct_cohort_retention where cohort_week between %s and %s order by 1, 2",
        *weeks,
    )  # fmt: skip
    funnel = api.learning_funnel(*weeks)
    assert funnel and [astuple(f) for f in funnel] == _mart(
        built,
        "select * from marts.fct_learning_funnel where cohort_week between %s and %s order by 1",
        *weeks,
    )
    top = api.leaderboard_top(25)
    assert [astuple(t) for t in top] == _mart(
        built,
        "select user_id, display_name, total_points, points_7d, rank, achievements_count, "
        "current_streak_days, is_deleted from marts.fct_leaderboard order by rank, user_id "
        "limit 25",
    )
    user = top[0].user_id
    pattern = api.student_pattern(user)
    assert pattern is not None and pattern.user_id == user
    (row,) = _mart(
        built, "select * from marts.fct_student_behavior_patterns where user_id = %s", user
    )
    assert astuple(pattern) == row[:-1]  # all but last_ingested_at
    (course_id,) = _mart(built, "select min(course_id) from marts.fct_course_funnel")[0]
    course = api.course_funnel(int(course_id))  # type: ignore[call-overload]
    assert (
        astuple(course)
        == _mart(built, "select * from marts.fct_course_funnel where course_id = %s", course_id)[0]
    )
    for record in [*days, *retention, *funnel, *top, pattern, course]:
        _typed(record)


def test_bad_parameters_are_refused_clearly(api: Analytics) -> None:
    cases = [
        (lambda: api.daily_active_users(END, END - timedelta(days=1)), "ends (2026-11-19) before"),
        (lambda: api.cohort_retention(END, date(2020, 1, 1)), "before it starts"),
        (lambda: api.learning_funnel("2026-01-01", END), "must be dates"),  # type: ignore[arg-type]
        (lambda: api.daily_active_users(date(2000, 1, 1), END), "at most 3660 days"),
        (lambda: api.course_funnel(999_999), "there is no course 999999"),
        (lambda: api.course_funnel(0), "positive integer id"),
        (lambda: api.student_pattern("1 or 1=1"), "positive integer id"),  # type: ignore[arg-type]
        (lambda: api.leaderboard_top(0), "between 1 and 1000"),
        (lambda: api.leaderboard_top(1001), "between 1 and 1000"),
    ]
    for call, message in cases:
        with pytest.raises(BadRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
            call()
    assert api.student_pattern(10_000_000) is None  # no such student: no pattern
    assert api.daily_active_users(date(2030, 1, 1), date(2030, 1, 2)) == []


def test_the_api_reads_as_bi_reader(built: str) -> None:
    url = bi_reader_url(built, PASSWORD)
    assert "user=bi_reader_login" in url and "password=" + PASSWORD in url
    with psycopg.connect(url) as conn:
        assert conn.execute("select current_user").fetchone() == ("bi_reader_login",)
        member = conn.execute("select pg_has_role(current_user, 'bi_reader', 'member')")
        assert member.fetchone() == (True,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select count(*) from app.users")


def test_mypy_accepts_typed_callers_and_rejects_wrong_ones() -> None:
    def mypy(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--follow-imports=silent",
             str(ROOT / "tests" / "api_callers" / name)],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    good = mypy("analytics_caller.py")
    assert good.returncode == 0, good.stdout + good.stderr
    bad = mypy("analytics_misuse.py")
    assert bad.returncode == 1, bad.stdout
    for expected in (
        'expression has type "int", variable has type "str"',
        'expression has type "float | None", variable has type "float"',
        'Item "None" of "StudentPattern | None" has no attribute "preferred_hour"',
        'Argument 1 to "course_funnel" of "Analytics" has incompatible type "str"',
    ):
        assert expected in bad.stdout, (expected, bad.stdout)
