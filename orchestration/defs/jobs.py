"""The jobs that span the integrations, and the daily schedule.

The raw tables are the platform's: no job that a schedule or sensor starts writes them.
`daily_refresh` (06:30) builds every dbt model incrementally as of today from the raw
tables as they are, with the tests (the raw sources' too), then the Redis leaderboard;
`full_pipeline` is generate, build, publish (what `make run` and CI run). The jobs of one
integration live with it: `generate_demo_data` in raw/, `refresh_leaderboard` and
`publish_leaderboard` in leaderboard/.
"""

from __future__ import annotations

import dagster as dg

from orchestration.defs.dbt.assets import raw_source_checks, raw_sources

RAW = raw_sources()
BUILD_AND_PUBLISH = dg.AssetSelection.all() - RAW | raw_source_checks()

full_pipeline = dg.define_asset_job(
    "full_pipeline",
    selection=dg.AssetSelection.all(),
    description="Generate the raw data (config: scenario, sizes, seed, end date), build every "
    "dbt model with its tests, publish the Redis leaderboard.",
)

daily_refresh = dg.define_asset_job(
    "daily_refresh",
    selection=BUILD_AND_PUBLISH,
    description="Every mart incrementally as of today from the raw tables as the platform "
    "wrote them, the tests, then the leaderboard. Never writes app.",
)

daily_refresh_schedule = dg.ScheduleDefinition(
    name="daily_refresh_schedule",
    job=daily_refresh,
    cron_schedule="30 6 * * *",
    execution_timezone="Asia/Ho_Chi_Minh",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every morning at 06:30 Vietnam time.",
)
