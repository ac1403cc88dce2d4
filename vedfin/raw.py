"""What the platform last wrote to the raw schema `app`: the pipeline observes, never writes.

Two readings, both cheap enough for a five-minute sensor (index lookups and counts):

- ``observe(url)``: per raw table, the row count, the highest id and the latest of its
  time columns (``created_at``, ``ingested_at``, ``updated_at``, ``unlocked_at`` ...).
  Dagster records it as asset observations on ``app/*``, so the UI shows when the
  platform last wrote.
- ``point_activity(url)``: a fingerprint of the activity that earns leaderboard points or
  moves a streak (lesson completions, achievement unlocks, behaviour events). The
  leaderboard snapshot remembers the fingerprint it was built from; a different one
  means there is something new to publish.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from psycopg import sql

from vedfin.db import CONTRACT_COLUMNS, connect

TIME_COLUMNS = {
    table: tuple(c for c in columns if c.endswith(("_at", "_date")))
    for table, columns in CONTRACT_COLUMNS.items()
}
"""The contract's time columns of each raw table: when a row was written or changed."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def observe(url: str) -> dict[str, dict[str, Any]]:
    """Row count, highest id and latest time columns of every raw table, in one snapshot.

    ``behavior_logs`` is the big, append-only table: its latest ``ingested_at`` is read
    from the row with the highest id (an index lookup) rather than by a scan.
    """
    out: dict[str, dict[str, Any]] = {}
    with connect(url) as conn, conn.transaction():
        conn.execute("set transaction isolation level repeatable read, read only")
        for table, columns in TIME_COLUMNS.items():
            rel = sql.Identifier("app", table)
            id_col = "id" if "id" in CONTRACT_COLUMNS[table] else None
            parts: list[sql.Composable] = [sql.SQL("count(*)")]
            names = ["rows"]
            if id_col:
                parts.append(sql.SQL("max({})").format(sql.Identifier(id_col)))
                names.append(f"max_{id_col}")
            scanned = [c for c in columns if table != "behavior_logs"]
            parts += [sql.SQL("max({})").format(sql.Identifier(c)) for c in scanned]
            names += [f"latest_{c}" for c in scanned]
            query = sql.SQL("select {} from {}").format(sql.SQL(", ").join(parts), rel)
            row = conn.execute(query).fetchone() or ()
            out[table] = {n: _jsonable(v) for n, v in zip(names, row, strict=True)}
        latest = conn.execute(
            "select ingested_at from app.behavior_logs order by id desc limit 1"
        ).fetchone()
        out["behavior_logs"]["latest_ingested_at"] = _jsonable(latest[0]) if latest else None
    return out


@dataclass(frozen=True)
class PointActivity:
    """The fingerprint of point-earning raw activity at one moment."""

    events_max_id: int
    events: int
    completions: int
    progress_updated_at: str | None
    unlocks: int
    unlocked_at: str | None

    def key(self) -> str:
        """A stable text form, stored with the snapshot and compared by the sensor."""
        return json.dumps(self.__dict__, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_key(cls, text: str) -> PointActivity | None:
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError):
            return None

    def describe(self) -> str:
        return (
            f"events to id {self.events_max_id:,} ({self.events:,}), "
            f"{self.completions:,} completions (last update {self.progress_updated_at}), "
            f"{self.unlocks:,} unlocks (last {self.unlocked_at})"
        )


def point_activity(url: str) -> PointActivity:
    """Behaviour events (highest id and count: a streak moves with any valid event),
    completed lessons (count and latest update), achievement unlocks (count and latest).

    Counts as well as maxima, so a late-committed row with a lower id, or a completion
    whose ``updated_at`` is not the newest, still changes the fingerprint."""
    with connect(url) as conn, conn.transaction():
        conn.execute("set transaction isolation level repeatable read, read only")
        row = conn.execute(
            """select (select coalesce(max(id), 0) from app.behavior_logs),
                      (select count(*) from app.behavior_logs),
                      (select count(*) filter (where status = 'COMPLETED') from app.user_progress),
                      (select max(updated_at) from app.user_progress),
                      (select count(*) from app.user_achievements),
                      (select max(unlocked_at) from app.user_achievements)"""
        ).fetchone()
    assert row is not None
    return PointActivity(
        events_max_id=int(row[0]),
        events=int(row[1]),
        completions=int(row[2]),
        progress_updated_at=_jsonable(row[3]),
        unlocks=int(row[4]),
        unlocked_at=_jsonable(row[5]),
    )
