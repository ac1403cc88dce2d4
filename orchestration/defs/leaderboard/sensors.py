"""The five-minute leaderboard sensor: it decides, a run does the work.

Every interval (300 s; `VEDFIN_LEADERBOARD_INTERVAL` shortens it for the freshness
benchmark) it reads the fingerprint of point-earning raw activity (behaviour events, lesson
completions, achievement unlocks: `vedfin.raw.point_activity`) and the snapshot's
`meta.source_activity` in Redis, the fingerprint the snapshot was built from:

- new activity: a `refresh_leaderboard` run (fct_leaderboard and its upstream
  incrementally as of today, their tests, then the publish; failed checks block it);
- the snapshot is missing from Redis (restarted empty, keys expired): the same run, or
  only `publish_leaderboard` when fct_leaderboard was built from the current activity;
- nothing new: it skips, says so, and records on `leaderboard_snapshot` that the snapshot
  was verified current (what its FreshnessPolicy measures);
- a leaderboard run already queued or running, PostgreSQL or Redis unreachable: it skips,
  saying why.

When the activity changed since the previous tick it also records what the platform wrote
as observations on `app/*`. The run key is ``<job>:<fingerprint digest>:<window>`` so one
window never launches two runs for the same activity, and a failed run is retried in the
next window.
"""

import hashlib
import json
import time

import dagster as dg

from orchestration.defs.dbt.assets import raw_observations
from orchestration.defs.leaderboard.assets import (
    SNAPSHOT_KEY,
    failed_checks,
    latest_leaderboard_build,
)
from orchestration.defs.leaderboard.jobs import publish_leaderboard, refresh_leaderboard
from orchestration.defs.resources import LeaderboardRedisResource, WarehouseResource
from vedfin.environment import environment
from vedfin.errors import VedfinError
from vedfin.leaderboard import snapshot_meta
from vedfin.raw import PointActivity, point_activity

INTERVAL_ENV = "VEDFIN_LEADERBOARD_INTERVAL"
ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
LEADERBOARD_JOBS = (refresh_leaderboard.name, publish_leaderboard.name)


def interval_seconds() -> int:
    """Seconds between the sensor's ticks ($VEDFIN_LEADERBOARD_INTERVAL, default 300)."""
    return environment().vedfin_leaderboard_interval


def _in_flight(instance: dg.DagsterInstance) -> str | None:
    for job in LEADERBOARD_JOBS:
        runs = instance.get_run_records(
            filters=dg.RunsFilter(job_name=job, statuses=ACTIVE), limit=1
        )
        if runs:
            return f"{job} run {runs[0].dagster_run.run_id[:8]}"
    return None


def _what_changed(before: PointActivity | None, now: PointActivity) -> str:
    if before is None:
        return "activity since a snapshot of unknown origin"
    parts = []
    if now.events != before.events:
        parts.append(f"{now.events - before.events:+,} events")
    if now.completions != before.completions or now.progress_updated_at != (
        before.progress_updated_at
    ):
        parts.append(f"{now.completions - before.completions:+,} completions")
    if now.unlocks != before.unlocks:
        parts.append(f"{now.unlocks - before.unlocks:+,} unlocks")
    return "new activity: " + (", ".join(parts) or "rows rewritten")


def _request(job_name: str, activity: str, reason: str) -> dg.RunRequest:
    digest = hashlib.sha1(activity.encode()).hexdigest()[:12]
    window = int(time.time() // interval_seconds())
    return dg.RunRequest(
        run_key=f"{job_name}:{digest}:{window}",
        job_name=job_name,
        tags={"vedfin/reason": reason[:200]},
    )


@dg.sensor(
    name="leaderboard_sensor",
    jobs=[refresh_leaderboard, publish_leaderboard],
    minimum_interval_seconds=interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every five minutes: when points-earning activity is new (or Redis lost the "
    "snapshot), rebuild fct_leaderboard incrementally and republish; never after failed "
    "checks.",
)
def leaderboard_sensor(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    leaderboard: LeaderboardRedisResource,
) -> dg.SensorResult | dg.SkipReason:
    url = warehouse.url()
    try:
        current = point_activity(url)
    except VedfinError as exc:
        return dg.SkipReason(f"PostgreSQL unreachable, will try again next interval: {exc}")
    key = current.key()
    cursor = json.loads(context.cursor) if context.cursor else {}
    events: list[dg.AssetObservation | dg.AssetMaterialization] = []
    if cursor.get("activity") != key:
        events += raw_observations(url, "seen by the leaderboard sensor")
    new_cursor = json.dumps({"activity": key})
    try:
        meta = snapshot_meta(leaderboard.settings())
    except VedfinError as exc:
        return dg.SensorResult(
            skip_reason=f"Redis unreachable, will try again next interval: {exc}",
            asset_events=events,
            cursor=new_cursor,
        )
    running = _in_flight(context.instance)
    if running:
        return dg.SensorResult(
            skip_reason=f"{running} is already queued or running",
            asset_events=events,
            cursor=new_cursor,
        )
    built_from = meta.get("source_activity", "") if meta else None
    if built_from == key:
        events.append(
            dg.AssetMaterialization(
                asset_key=SNAPSHOT_KEY,
                description="verified current: no point-earning activity since it was built",
                metadata={"version": int(meta["version"]), "verified_only": True},
            )
        )
        return dg.SensorResult(
            skip_reason=f"no new point-earning activity since snapshot version "
            f"{meta['version']} ({current.describe()})",
            asset_events=events,
            cursor=new_cursor,
        )
    requests: list[dg.RunRequest] = []
    skip: str | None = None
    if built_from is None:  # no snapshot in Redis
        mart = latest_leaderboard_build(context.instance)
        failed = failed_checks(context.instance)
        if mart is not None and mart[1] == key and not failed:
            requests.append(
                _request(publish_leaderboard.name, key, "snapshot missing in Redis, mart current")
            )
        elif mart is not None and mart[1] == key:
            skip = f"snapshot missing, but fct_leaderboard failed checks {', '.join(failed)}"
        else:
            requests.append(_request(refresh_leaderboard.name, key, "snapshot missing in Redis"))
    else:
        reason = _what_changed(PointActivity.from_key(built_from), current)
        requests.append(_request(refresh_leaderboard.name, key, reason))
    return dg.SensorResult(
        run_requests=requests, skip_reason=skip, asset_events=events, cursor=new_cursor
    )
