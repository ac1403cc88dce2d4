"""Named scenarios and the specification of one generation run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta

from seeds_gen.reference import catalog
from seeds_gen.simulate import US, Window, local_midnight_us
from vedfin.calendar import today_local

SCENARIOS: dict[str, dict[str, int]] = {
    "test": {"users": 20, "courses": 5, "days": 30},
    "dev": {"users": 50, "courses": 10, "days": 60},
    "demo": {"users": 1000, "courses": 14, "days": 120},
    "benchmark": {"users": 10_000, "courses": 14, "days": 180},
}
DEFAULT_SEED = 20261122
CHUNK_USERS = 2000


@dataclass(frozen=True)
class Spec:
    scenario: str
    users: int
    courses: int
    days: int
    seed: int
    end_date: date
    cutoff_us: int  # end of end_date local, or "now" when the end date was not fixed
    bad_events_rate: float = 0.0

    @property
    def window(self) -> Window:
        return Window(self.end_date - timedelta(days=self.days - 1), self.end_date, self.cutoff_us)

    def as_json(self) -> dict[str, object]:
        d = asdict(self)
        d["end_date"] = self.end_date.isoformat()
        return d


def make_spec(
    scenario: str | None = None,
    *,
    users: int | None = None,
    days: int | None = None,
    courses: int | None = None,
    seed: int | None = None,
    end_date: date | None = None,
    bad_events_rate: float = 0.0,
) -> Spec:
    """A scenario's sizes, overridden by any explicit size; validated."""
    if scenario is not None and scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    base = SCENARIOS[scenario or "dev"]
    n_courses = courses if courses is not None else base["courses"]
    max_courses = len(catalog()[0])
    spec_users = users if users is not None else base["users"]
    spec_days = days if days is not None else base["days"]
    if spec_users < 1:
        raise ValueError("--users must be at least 1")
    if not 1 <= spec_days <= 3650:
        raise ValueError("--days must be between 1 and 3650")
    if not 1 <= n_courses <= max_courses:
        raise ValueError(f"--courses must be between 1 and {max_courses} (the catalogue's size)")
    if not 0 <= bad_events_rate <= 0.5:
        raise ValueError("--bad-events must be a rate between 0 and 0.5")
    if end_date is None:
        end = today_local()
        cutoff = int(datetime.now(UTC).timestamp() * US)
    else:
        end = end_date
        cutoff = local_midnight_us(end + timedelta(days=1)) - 1
    label = (
        scenario
        if scenario and users is None and days is None and courses is None
        else (f"{scenario or 'custom'}+custom" if scenario else "custom")
    )
    return Spec(
        label,
        spec_users,
        n_courses,
        spec_days,
        DEFAULT_SEED if seed is None else seed,
        end,
        cutoff,
        bad_events_rate,
    )
