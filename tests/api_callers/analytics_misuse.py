"""Wrong uses of the analytics API that mypy must reject (tests/test_analytics.py)."""

from __future__ import annotations

from datetime import date

from vedfin.analytics import Analytics


def wrong(analytics: Analytics) -> None:
    rank: str = analytics.leaderboard_top(5)[0].rank  # an int
    rate: float = analytics.daily_active_users(date(2026, 1, 1), date(2026, 1, 2))[0].stickiness
    hour: int = analytics.student_pattern(1).preferred_hour  # may be None
    analytics.course_funnel("1")  # an int id
    print(rank, rate, hour)
