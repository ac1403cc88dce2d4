"""The reporting calendar: one zone, one "today" (the contract's `reporting_tz`)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

REPORTING_TZ = "Asia/Ho_Chi_Minh"
ZONE = ZoneInfo(REPORTING_TZ)


def today_local() -> date:
    """Today in the reporting zone: the default as-of date of every build."""
    return datetime.now(ZONE).date()
