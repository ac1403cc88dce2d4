"""The one Definitions object, loaded through workspace.yaml.

Assets: the raw tables (`raw`: written by the platform, observed by the pipeline,
materializable by the synthetic generator outside prod), every dbt model grouped by layer
(`staging`, `intermediate`, `marts`) with dbt tests as asset checks, and the Redis
leaderboard snapshot (`serving`). Jobs: see orchestration/jobs.py.
"""

from __future__ import annotations

import dagster as dg

from orchestration.assets.leaderboard import leaderboard_snapshot
from orchestration.assets.raw import generate_app_data
from orchestration.dbt.assets import dbt_models, dbt_resource
from orchestration.jobs import (
    daily_refresh,
    daily_refresh_schedule,
    full_pipeline,
    generate_demo_data,
    publish_leaderboard,
    refresh_leaderboard,
)
from orchestration.resources import LeaderboardRedisResource, WarehouseResource
from orchestration.sensors.leaderboard import leaderboard_sensor

defs = dg.Definitions(
    assets=[generate_app_data, dbt_models, leaderboard_snapshot],
    jobs=[
        full_pipeline,
        generate_demo_data,
        daily_refresh,
        refresh_leaderboard,
        publish_leaderboard,
    ],
    schedules=[daily_refresh_schedule],
    sensors=[leaderboard_sensor],
    resources={
        "dbt": dbt_resource(),
        "warehouse": WarehouseResource(),
        "leaderboard": LeaderboardRedisResource(),
    },
)
