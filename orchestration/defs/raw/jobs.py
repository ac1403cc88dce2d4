"""The generator as a job of its own: started by hand (UI, `dagster job execute`), never by a
schedule or sensor."""

from __future__ import annotations

import dagster as dg

from orchestration.defs.raw.assets import generate_app_data

generate_demo_data = dg.define_asset_job(
    "generate_demo_data",
    selection=dg.AssetSelection.assets(generate_app_data),
    description="Synthetic platform data into the raw schema app: fresh (a scenario or "
    "sizes, seed, end date) or append (days after the data's end); refused on prod.",
)
