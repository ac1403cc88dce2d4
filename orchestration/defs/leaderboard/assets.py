"""The Redis leaderboard snapshot, published from `marts.fct_leaderboard`."""

from datetime import timedelta

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from orchestration.defs.dbt.assets import RAW_ACTIVITY, dbt_models
from orchestration.defs.resources import LeaderboardRedisResource, WarehouseResource
from vedfin.errors import VedfinError
from vedfin.leaderboard import publish

FCT_LEADERBOARD = get_asset_key_for_model([dbt_models], "fct_leaderboard")
SNAPSHOT_KEY = dg.AssetKey(["leaderboard_snapshot"])


def leaderboard_check_keys() -> list[dg.AssetCheckKey]:
    return [key for key in dbt_models.check_keys if key.asset_key == FCT_LEADERBOARD]


FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(minutes=10), warn_window=timedelta(minutes=6)
)
"""The promise: point-earning activity is in Redis within one sensor interval (300 s) plus
the run's time. The sensor republishes when there is new activity and, when there is none,
records that the snapshot was verified current; ten minutes without either is late."""


def latest_leaderboard_build(instance: dg.DagsterInstance) -> tuple[int, str] | None:
    """(storage id, raw activity fingerprint) of fct_leaderboard's latest materialization."""
    records = instance.fetch_materializations(FCT_LEADERBOARD, limit=1).records
    if not records:
        return None
    materialization = records[0].asset_materialization
    value = materialization.metadata.get(RAW_ACTIVITY) if materialization else None
    return records[0].storage_id, str(value.value) if value is not None else ""


def failed_checks(instance: dg.DagsterInstance) -> list[str]:
    """Names of fct_leaderboard's checks whose latest evaluation failed with severity ERROR
    (a WARN failure does not block), read through the instance's latest check record."""
    failed: list[str] = []
    for key in leaderboard_check_keys():
        record = instance.get_latest_asset_check_evaluation_record(key)
        if record is None or record.event is None:
            continue  # never evaluated, or planned and not evaluated yet
        evaluation = record.event.asset_check_evaluation
        if evaluation is None or evaluation.passed:
            continue
        if evaluation.severity == dg.AssetCheckSeverity.ERROR:
            failed.append(key.name)
    return sorted(failed)


@dg.asset(
    key=SNAPSHOT_KEY,
    deps=[FCT_LEADERBOARD],
    group_name="serving",
    kinds={"redis"},
    description="The leaderboard in Redis (sorted sets all_time and weekly, profiles, meta), "
    "swapped in atomically; what the app backend reads.",
    retry_policy=dg.RetryPolicy(max_retries=2, delay=1, backoff=dg.Backoff.EXPONENTIAL),
    freshness_policy=FRESHNESS,
)
def leaderboard_snapshot(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    leaderboard: LeaderboardRedisResource,
) -> dg.MaterializeResult:
    failed = failed_checks(context.instance)
    if failed:
        raise dg.Failure(
            "not publishing: fct_leaderboard failed its checks "
            f"({', '.join(failed)}); fix the data and rebuild",
            allow_retries=False,
        )
    source_id, activity = latest_leaderboard_build(context.instance) or (0, "")
    settings = leaderboard.settings()
    try:
        result = publish(
            warehouse.url(),
            settings,
            run_id=context.run_id,
            source_storage_id=source_id,
            source_activity=activity,
        )
    except VedfinError as exc:
        raise dg.Failure(f"publishing the leaderboard failed: {exc}") from None
    context.log.info(f"{result.describe()} under {settings.prefix!r}")
    return dg.MaterializeResult(
        metadata={
            "rows": result.rows,
            "weekly_rows": result.weekly_rows,
            "version": result.version,
            "kind": result.kind,
            "changed_rows": -1 if result.changed_rows is None else result.changed_rows,
            "publish_ms": round(result.seconds * 1000, 1),
            "prefix": settings.prefix,
            "as_of_date": result.as_of_date or "",
            "source_storage_id": source_id,
            RAW_ACTIVITY: activity,
        }
    )
