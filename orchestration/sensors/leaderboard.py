"""The five-minute leaderboard sensor: it decides, a run does the work.

It requests a `publish_leaderboard` run when

- `fct_leaderboard` has a materialization newer than the one the Redis snapshot was
  built from (the snapshot's `meta.source_storage_id`), or
- the snapshot is missing from Redis (Redis restarted empty, keys expired),

and skips, saying why, when the latest checks of `fct_leaderboard` failed, when a
publish run is already queued or running, or when Redis is unreachable. The run key is
``<materialization storage id>:<5-minute window>`` so one window never launches two
runs for the same data; the cursor records the materialization last requested.
"""

import json
import time

import dagster as dg

from orchestration.assets.leaderboard import failed_checks, latest_materialization_id
from orchestration.resources import LeaderboardRedisResource
from vedfin.errors import VedfinError
from vedfin.leaderboard import snapshot_meta

INTERVAL_SECONDS = 300
PUBLISH_JOB = "publish_leaderboard"
ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _publish_in_flight(instance: dg.DagsterInstance) -> bool:
    runs = instance.get_run_records(
        filters=dg.RunsFilter(job_name=PUBLISH_JOB, statuses=ACTIVE), limit=1
    )
    return bool(runs)


@dg.sensor(
    name="leaderboard_sensor",
    job_name=PUBLISH_JOB,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Republishes the Redis leaderboard when fct_leaderboard changed or the "
    "snapshot is missing; never after failed checks.",
)
def leaderboard_sensor(
    context: dg.SensorEvaluationContext, leaderboard: LeaderboardRedisResource
) -> dg.RunRequest | dg.SkipReason:
    storage_id = latest_materialization_id(context.instance)
    if storage_id is None:
        return dg.SkipReason("fct_leaderboard has not been materialized yet")
    failed = failed_checks(context.instance)
    if failed:
        return dg.SkipReason(
            f"fct_leaderboard (materialization {storage_id}) failed checks "
            f"{', '.join(failed)}: not publishing it"
        )
    try:
        meta = snapshot_meta(leaderboard.settings())
    except VedfinError as exc:
        return dg.SkipReason(f"Redis unreachable, will try again next interval: {exc}")
    published = int(meta.get("source_storage_id") or 0) if meta else None
    if published is not None and published >= storage_id:
        return dg.SkipReason(f"snapshot version {meta.get('version')} is up to date")
    if _publish_in_flight(context.instance):
        return dg.SkipReason("a publish_leaderboard run is already queued or running")
    reason = "snapshot missing in Redis" if published is None else "fct_leaderboard changed"
    window = int(time.time() // INTERVAL_SECONDS)
    context.update_cursor(json.dumps({"requested_storage_id": storage_id, "window": window}))
    return dg.RunRequest(
        run_key=f"{storage_id}:{window}",
        tags={"vedfin/reason": reason, "vedfin/source_storage_id": str(storage_id)},
    )
