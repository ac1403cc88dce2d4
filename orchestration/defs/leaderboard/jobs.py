"""The leaderboard's jobs: what the five-minute sensor starts."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.dbt.assets import raw_source_checks, raw_sources
from orchestration.defs.leaderboard.assets import SNAPSHOT_KEY

refresh_leaderboard = dg.define_asset_job(
    "refresh_leaderboard",
    selection=dg.AssetSelection.assets(SNAPSHOT_KEY).upstream() - raw_sources()
    | raw_source_checks(),
    description="fct_leaderboard and its upstream models incrementally as of today, their "
    "tests, then the Redis snapshot (the five-minute sensor's job).",
)

publish_leaderboard = dg.define_asset_job(
    "publish_leaderboard",
    selection=dg.AssetSelection.assets(SNAPSHOT_KEY),
    description="Republish the Redis leaderboard from marts.fct_leaderboard as it is (the "
    "sensor's job when Redis lost the snapshot and the mart is current).",
)
