"""The one Definitions object, loaded through workspace.yaml."""

from __future__ import annotations

import dagster as dg

from vedfin.config import apply_env, resolve
from vedfin.db import init_db


@dg.asset(group_name="raw", description="The raw schema `app`, migrated to the latest version.")
def app_schema(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    settings = resolve()
    apply_env(settings)
    result = init_db(settings.database_url)
    context.log.info(f"applied: {result.applied or 'nothing'}; already: {result.already}")
    return dg.MaterializeResult(metadata={"applied": len(result.applied)})


full_pipeline = dg.define_asset_job("full_pipeline", selection=dg.AssetSelection.all())

defs = dg.Definitions(assets=[app_schema], jobs=[full_pipeline])
