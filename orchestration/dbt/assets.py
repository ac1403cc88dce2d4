"""Every dbt model as a Dagster asset (grouped by layer); dbt tests as asset checks."""

import json
import os
from collections.abc import Iterator, Mapping
from datetime import date
from functools import cache
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)
from pydantic import Field

from orchestration.dbt.project import dbt_project
from orchestration.resources import WarehouseResource, platform_settings
from seeds_gen.scenarios import today_local
from vedfin.dbt import (
    SKIP_UNIT_TESTS,
    as_of_env,
    dbt_executable,
    events_left_out,
    full_refresh_reason,
    left_out_message,
    record_build,
)

LAYERS = ("staging", "intermediate", "marts")


class LayeredTranslator(DagsterDbtTranslator):
    """Groups models by the folder layer they live in (staging / intermediate / marts)."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return "raw"
        fqn = dbt_resource_props.get("fqn", [])
        for part in fqn[1:2]:
            if part in LAYERS:
                return str(part)
        return super().get_group_name(dbt_resource_props)


translator = LayeredTranslator(
    settings=DagsterDbtTranslatorSettings(
        enable_asset_checks=True, enable_source_tests_as_checks=True
    )
)


class DbtBuildConfig(dg.Config):  # type: ignore[misc]
    """How `dbt build` runs from Dagster (the same command as `vedfin build`)."""

    as_of: str = Field(
        default="",
        description="The as-of local date YYYY-MM-DD (dbt var as_of_date); empty: today in "
        "Asia/Ho_Chi_Minh.",
    )
    full_refresh: bool = Field(
        default=False,
        description="Rebuild incremental models from scratch (automatic after a fresh seed "
        "and for an as-of date before the last build's).",
    )


def config_date(value: str, field: str) -> date | None:
    """An optional YYYY-MM-DD run-config value; a clear failure when it is not one."""
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise dg.Failure(f"{field} {value!r} is not a date (YYYY-MM-DD)") from None


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    name="dbt_models",
)
def dbt_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    config: DbtBuildConfig,
) -> Iterator[Any]:
    platform_settings()  # export DATABASE_URL / PG* for dbt's profiles
    url = warehouse.url()
    as_of = config_date(config.as_of, "as_of") or today_local()
    os.environ.update(as_of_env(as_of))  # the models read it as they run (keeps partial parsing)
    args = ["build", *SKIP_UNIT_TESTS]
    reason = None if config.full_refresh else full_refresh_reason(url, as_of)
    if reason:
        context.log.info(f"{reason}: --full-refresh")
    if config.full_refresh or reason:
        args.append("--full-refresh")
    yield from dbt.cli(args, context=context).stream()
    if not context.is_subset:
        record_build(url, as_of)
    left_out = events_left_out(url)
    if left_out:
        context.log.warning(left_out_message(left_out))


@cache
def dbt_resource() -> DbtCliResource:
    return DbtCliResource(
        project_dir=dbt_project,
        profiles_dir=str(dbt_project.profiles_dir),
        dbt_executable=dbt_executable(),  # the virtualenv's dbt, whatever PATH says
    )


def source_asset_keys() -> list[dg.AssetKey]:
    """The asset keys dbt gives the `app` source tables (what the generator produces)."""
    data = json.loads(dbt_project.manifest_path.read_text())
    return sorted(
        (
            translator.get_asset_key(props)
            for props in data["sources"].values()
            if props["source_name"] == "app"
        ),
        key=lambda k: k.to_user_string(),
    )
