"""Jobs and the daily schedule.

The raw tables are the platform's: no job that a schedule or sensor starts writes them.

- `daily_refresh` (06:30 every day): every dbt model incrementally, as of today, from the
  raw tables as they are, with its tests (the raw sources' tests included), then the
  Redis leaderboard.
- `refresh_leaderboard` (the five-minute sensor): `fct_leaderboard` and what it depends on,
  incrementally, as of today, their tests, then the snapshot.
- `publish_leaderboard` (the sensor, when Redis lost the snapshot but the mart is current).
- `generate_demo_data`: synthetic data into `app` (dev, test, demo, benchmark; refused on
  prod), started by hand only.
- `full_pipeline`: generate, build, publish (what `make run` and CI run).
"""

from __future__ import annotations

import dagster as dg

from orchestration.assets.leaderboard import SNAPSHOT_KEY
from orchestration.assets.raw import generate_app_data

RAW = dg.AssetSelection.assets(generate_app_data)
RAW_CHECKS = dg.AssetSelection.checks_for_assets(generate_app_data)
"""The dbt tests on the raw sources: they check what the platform wrote, so every build
runs them even though no job but the generator's materializes `app/*`."""
BUILD_AND_PUBLISH = dg.AssetSelection.all() - RAW | RAW_CHECKS

full_pipeline = dg.define_asset_job(
    "full_pipeline",
    selection=dg.AssetSelection.all(),
    description="Generate the raw data (config: scenario, sizes, seed, end date), build every "
    "dbt model with its tests, publish the Redis leaderboard.",
)

generate_demo_data = dg.define_asset_job(
    "generate_demo_data",
    selection=RAW,
    description="Synthetic platform data into the raw schema app: fresh (a scenario or "
    "sizes, seed, end date) or append (days after the data's end); refused on prod.",
)

daily_refresh = dg.define_asset_job(
    "daily_refresh",
    selection=BUILD_AND_PUBLISH,
    description="Every mart incrementally as of today from the raw tables as the platform "
    "wrote them, the tests, then the leaderboard. Never writes app.",
)

refresh_leaderboard = dg.define_asset_job(
    "refresh_leaderboard",
    selection=dg.AssetSelection.assets(SNAPSHOT_KEY).upstream() - RAW | RAW_CHECKS,
    description="fct_leaderboard and its upstream models incrementally as of today, their "
    "tests, then the Redis snapshot (the five-minute sensor's job).",
)

publish_leaderboard = dg.define_asset_job(
    "publish_leaderboard",
    selection=dg.AssetSelection.assets(SNAPSHOT_KEY),
    description="Republish the Redis leaderboard from marts.fct_leaderboard as it is (the "
    "sensor's job when Redis lost the snapshot and the mart is current).",
)

daily_refresh_schedule = dg.ScheduleDefinition(
    name="daily_refresh_schedule",
    job=daily_refresh,
    cron_schedule="30 6 * * *",
    execution_timezone="Asia/Ho_Chi_Minh",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every morning at 06:30 Vietnam time.",
)
