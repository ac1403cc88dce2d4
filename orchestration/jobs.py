"""Jobs and the daily schedule."""

from __future__ import annotations

import dagster as dg

from orchestration.assets.leaderboard import SNAPSHOT_KEY

full_pipeline = dg.define_asset_job(
    "full_pipeline",
    selection=dg.AssetSelection.all(),
    description="Generate the raw data (config: scenario, sizes, seed, end date), build every "
    "dbt model with its tests, publish the Redis leaderboard.",
)

daily_refresh = dg.define_asset_job(
    "daily_refresh",
    selection=dg.AssetSelection.all(),
    description="Append the days since the data's end (a day, daily), build incrementally, "
    "publish the leaderboard.",
    config={"ops": {"generate_app_data": {"config": {"mode": "append", "append_days": 0}}}},
)

publish_leaderboard = dg.define_asset_job(
    "publish_leaderboard",
    selection=dg.AssetSelection.assets(SNAPSHOT_KEY),
    description="Republish the Redis leaderboard from marts.fct_leaderboard (the sensor's job).",
)

daily_refresh_schedule = dg.ScheduleDefinition(
    name="daily_refresh_schedule",
    job=daily_refresh,
    cron_schedule="30 6 * * *",
    execution_timezone="Asia/Ho_Chi_Minh",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every morning at 06:30 Vietnam time.",
)
