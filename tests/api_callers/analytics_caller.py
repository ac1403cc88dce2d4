"""Application code calling the analytics API, as mypy sees it (tests/test_analytics.py)."""

from __future__ import annotations

from datetime import date

from vedfin.analytics import Analytics, CourseFunnel, DailyActiveUsers, LeaderboardEntry


def dashboard(analytics: Analytics) -> tuple[int, float | None, str, int]:
    days: list[DailyActiveUsers] = analytics.daily_active_users(
        date(2026, 11, 1), date(2026, 11, 20)
    )
    last_dau: int = days[-1].dau
    stickiness: float | None = days[-1].stickiness
    top: list[LeaderboardEntry] = analytics.leaderboard_top(5)
    name: str = top[0].display_name
    course: CourseFunnel = analytics.course_funnel(1)
    pattern = analytics.student_pattern(1)
    hour: int = pattern.preferred_hour if pattern is not None else -1
    return last_dau + course.enrolled_users, stickiness, name, hour
