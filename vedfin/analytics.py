"""A typed analytics API over the marts, for application code.

One function per question the roadmap names, each returning typed records with the mart
columns' types (``date``, ``int``, ``float``, ``str``, ``bool``; ``None`` where the mart's
definition allows a null)::

    from datetime import date
    from vedfin.analytics import Analytics

    with Analytics.from_env() as analytics:          # as bi_reader, a connection pool
        for day in analytics.daily_active_users(date(2026, 11, 1), date(2026, 11, 20)):
            print(day.activity_date, day.dau, day.stickiness)
        top = analytics.leaderboard_top(10)

It reads the marts as ``bi_reader`` (``ANALYTICS_DATABASE_URL``, or ``DATABASE_URL`` with the
user ``bi_reader_login``, bi_reader's login role from ``vedfin db roles``, and
``BI_READER_PASSWORD``) through a ``psycopg_pool`` pool that is safe
to share between threads. Parameters are always bound, never formatted into SQL; a bad one
(a range that ends before it starts, an unknown course, a top N out of range) raises
:class:`BadRequest` with a message that says what was wrong.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from types import TracebackType
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import class_row
from psycopg_pool import ConnectionPool, PoolTimeout

from vedfin.db import describe_target
from vedfin.errors import ConnectionFailed, VedfinError
from vedfin.roles import BI_LOGIN

MAX_TOP = 1000
MAX_RANGE_DAYS = 3660


class BadRequest(VedfinError, ValueError):
    """A parameter the marts cannot answer; the message says which and why."""


@dataclass(frozen=True, slots=True)
class DailyActiveUsers:
    """One local date of ``marts.fct_daily_active_users``."""

    activity_date: date
    dau: int
    wau: int
    mau: int
    stickiness: float | None  # dau / mau; None when mau is 0
    new_users: int
    is_complete: bool


@dataclass(frozen=True, slots=True)
class CohortRetention:
    """One (cohort week, week number) of ``marts.fct_cohort_retention``."""

    cohort_week: date
    week_number: int
    activity_week: date
    cohort_size: int
    retained_users: int
    retention_rate: float
    retained_users_unbounded: int
    retention_rate_unbounded: float
    is_complete: bool


@dataclass(frozen=True, slots=True)
class LearningFunnel:
    """One signup cohort week of ``marts.fct_learning_funnel``."""

    cohort_week: date
    signed_up: int
    enrolled: int
    started_lesson: int
    completed_course: int
    enroll_rate: float | None
    start_rate: float | None
    completion_rate: float | None
    overall_conversion: float | None
    median_hours_to_enroll: float | None


@dataclass(frozen=True, slots=True)
class CourseFunnel:
    """One course of ``marts.fct_course_funnel``."""

    course_id: int
    title: str
    category: str
    level: str
    enrolled_users: int
    started_users: int
    completed_users: int
    completion_rate: float | None
    median_days_to_complete: float | None


@dataclass(frozen=True, slots=True)
class StudentPattern:
    """One student of ``marts.fct_student_behavior_patterns`` (input of personalisation)."""

    user_id: int
    total_events: int
    active_days: int
    sessions: int
    avg_session_minutes: float
    preferred_hour: int
    preferred_day_of_week: int
    favorite_category: str | None
    lessons_started: int
    lessons_completed: int
    completion_rate_beginner: float | None
    completion_rate_intermediate: float | None
    completion_rate_expert: float | None
    last_active_date: date
    days_since_last_active: int


@dataclass(frozen=True, slots=True)
class LeaderboardEntry:
    """One place of ``marts.fct_leaderboard`` (masked names only)."""

    user_id: int
    display_name: str
    total_points: int
    points_7d: int
    rank: int
    achievements_count: int
    current_streak_days: int
    is_deleted: bool


RECORDS: dict[str, type] = {
    "fct_daily_active_users": DailyActiveUsers,
    "fct_cohort_retention": CohortRetention,
    "fct_learning_funnel": LearningFunnel,
    "fct_course_funnel": CourseFunnel,
    "fct_student_behavior_patterns": StudentPattern,
    "fct_leaderboard": LeaderboardEntry,
}
"""Each mart and the record type of its rows."""

R = TypeVar("R")


def _columns(record: type) -> str:
    return ", ".join(record.__dataclass_fields__)  # type: ignore[attr-defined]


def _range(start: date, end: date, what: str) -> None:
    if not isinstance(start, date) or not isinstance(end, date):
        raise BadRequest(f"{what}: start and end must be dates, not {start!r} and {end!r}")
    if end < start:
        raise BadRequest(f"{what}: the range ends ({end}) before it starts ({start})")
    if (end - start).days > MAX_RANGE_DAYS:
        raise BadRequest(
            f"{what}: a range of at most {MAX_RANGE_DAYS} days, not {(end - start).days}"
        )


def _positive_id(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"{what} must be a positive integer id, not {value!r}")


def bi_reader_url(database_url: str, password: str | None) -> str:
    """The same server and database as ``database_url``, as bi_reader's login role."""
    params = {k: v for k, v in conninfo_to_dict(database_url).items() if v is not None}
    params["user"] = BI_LOGIN
    params.pop("password", None)
    if password:
        params["password"] = password
    return make_conninfo(**{k: str(v) for k, v in params.items()})


class Analytics:
    """The marts' answers, typed. Thread-safe; close it (or use ``with``) when done."""

    def __init__(self, conninfo: str, *, min_size: int = 1, max_size: int = 8) -> None:
        self._target = describe_target(conninfo)
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True, "prepare_threshold": 0},
            open=False,
            name="vedfin-analytics",
        )
        try:
            self._pool.open(wait=True, timeout=10)
        except PoolTimeout as exc:
            self._pool.close()
            raise ConnectionFailed(
                f"cannot connect to {self._target} for the analytics API (as {BI_LOGIN}, which "
                "`vedfin db roles --env ...` creates, with BI_READER_PASSWORD)"
            ) from exc

    @classmethod
    def from_env(cls, *, max_size: int = 8) -> Analytics:
        """``ANALYTICS_DATABASE_URL``, or ``DATABASE_URL`` as bi_reader_login with
        ``BI_READER_PASSWORD``."""
        url = os.environ.get("ANALYTICS_DATABASE_URL") or ""
        if not url:
            base = os.environ.get("DATABASE_URL") or ""
            if not base:
                raise VedfinError(
                    'set ANALYTICS_DATABASE_URL or DATABASE_URL (eval "$(vedfin env)")'
                )
            url = bi_reader_url(base, os.environ.get("BI_READER_PASSWORD"))
        return cls(url, max_size=max_size)

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> Analytics:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _rows(self, record: type[R], query: str, params: Sequence[object]) -> list[R]:
        with self._pool.connection() as conn, conn.cursor(row_factory=class_row(record)) as cur:
            cur.execute(query.format(columns=_columns(record)), params)  # type: ignore[arg-type]
            return cur.fetchall()

    def daily_active_users(self, start: date, end: date) -> list[DailyActiveUsers]:
        """DAU, WAU, MAU and stickiness for each local date from ``start`` to ``end``."""
        _range(start, end, "daily_active_users")
        return self._rows(
            DailyActiveUsers,
            "select {columns} from marts.fct_daily_active_users "
            "where activity_date between %s and %s order by activity_date",
            (start, end),
        )

    def cohort_retention(self, first_cohort: date, last_cohort: date) -> list[CohortRetention]:
        """Every week of the signup cohorts whose week (a Monday) is in the range."""
        _range(first_cohort, last_cohort, "cohort_retention")
        return self._rows(
            CohortRetention,
            "select {columns} from marts.fct_cohort_retention "
            "where cohort_week between %s and %s order by cohort_week, week_number",
            (first_cohort, last_cohort),
        )

    def learning_funnel(self, first_cohort: date, last_cohort: date) -> list[LearningFunnel]:
        """The funnel (signup, enrollment, lesson start, course completion) per cohort week."""
        _range(first_cohort, last_cohort, "learning_funnel")
        return self._rows(
            LearningFunnel,
            "select {columns} from marts.fct_learning_funnel "
            "where cohort_week between %s and %s order by cohort_week",
            (first_cohort, last_cohort),
        )

    def student_pattern(self, user_id: int) -> StudentPattern | None:
        """One student's behaviour pattern; None when the student has no valid event."""
        _positive_id(user_id, "user_id")
        found = self._rows(
            StudentPattern,
            "select {columns} from marts.fct_student_behavior_patterns where user_id = %s",
            (user_id,),
        )
        return found[0] if found else None

    def leaderboard_top(self, n: int = 10) -> list[LeaderboardEntry]:
        """The top ``n`` by total points (ties share a rank; cut by user id at the edge)."""
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_TOP:
            raise BadRequest(f"leaderboard_top: n must be between 1 and {MAX_TOP}, not {n!r}")
        return self._rows(
            LeaderboardEntry,
            "select {columns} from marts.fct_leaderboard order by rank, user_id limit %s",
            (n,),
        )

    def course_funnel(self, course_id: int) -> CourseFunnel:
        """One course's funnel; BadRequest for a course the marts do not know."""
        _positive_id(course_id, "course_id")
        found = self._rows(
            CourseFunnel,
            "select {columns} from marts.fct_course_funnel where course_id = %s",
            (course_id,),
        )
        if not found:
            raise BadRequest(f"course_funnel: there is no course {course_id}")
        return found[0]
