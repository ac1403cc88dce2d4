"""The one Definitions object, loaded through workspace.yaml: it only assembles.

Laid out by integration under `orchestration/defs/`: `raw/` (the raw tables `app/*`,
written by the platform and observed, materializable by the generator outside prod, and the
`generate_demo_data` job), `dbt/` (every dbt model grouped by layer, dbt tests as asset
checks), `leaderboard/` (the Redis snapshot, `refresh_leaderboard`, `publish_leaderboard`,
the five-minute sensor), `jobs.py` (`daily_refresh` and its schedule, `full_pipeline`) and
`resources.py`.
"""

from __future__ import annotations

import dagster as dg

from orchestration.defs.dbt.assets import dbt_models, dbt_resource
from orchestration.defs.jobs import daily_refresh, daily_refresh_schedule, full_pipeline
from orchestration.defs.leaderboard.assets import leaderboard_snapshot
from orchestration.defs.leaderboard.jobs import publish_leaderboard, refresh_leaderboard
from orchestration.defs.leaderboard.sensors import leaderboard_sensor
from orchestration.defs.raw.assets import generate_app_data
from orchestration.defs.raw.jobs import generate_demo_data
from orchestration.defs.resources import LeaderboardRedisResource, WarehouseResource

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
