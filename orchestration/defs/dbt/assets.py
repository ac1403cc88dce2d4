"""Every dbt model as a Dagster asset (grouped by layer); dbt tests as asset checks."""

import json
import logging
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

from orchestration.defs.dbt.project import dbt_project
from orchestration.defs.resources import WarehouseResource, platform_settings
from vedfin.calendar import today_local
from vedfin.db import init_db
from vedfin.dbt import (
    SKIP_UNIT_TESTS,
    as_of_env,
    build_lock,
    dbt_executable,
    events_left_out,
    full_refresh_reason,
    left_out_message,
    record_build,
    vacuum_rebuilt,
)
from vedfin.raw import observe, point_activity

DBT_POOL = "dbt"
"""The concurrency pool of every dbt step (limit 1 in dagster.yaml): one build at a time."""
RAW_ACTIVITY = "raw_activity"
"""Metadata on fct_leaderboard: the point-earning raw activity it was built from."""

LAYERS = ("staging", "intermediate", "marts")
DAGSTER_LOGGER = logging.getLogger("dagster.builtin")
"""The logger dagster-dbt writes its warnings to (dagster.get_dagster_logger())."""


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
    pool=DBT_POOL,
)
def dbt_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    config: DbtBuildConfig,
) -> Iterator[Any]:
    """`dbt build` of the selected models (their tests as checks), one build at a time.

    Before dbt starts: the database's build lock (a `vedfin build` running elsewhere
    makes this step wait), observations of the raw tables, and the fingerprint of
    point-earning activity that fct_leaderboard is about to be built from."""
    platform_settings()  # export DATABASE_URL / PG* for dbt's profiles
    url = warehouse.url()
    as_of = config_date(config.as_of, "as_of") or today_local()
    os.environ.update(as_of_env(as_of))  # the models read it as they run (keeps partial parsing)
    holder = f"dagster run {context.run_id[:8]} ({context.job_name})"
    with build_lock(url, holder, say=context.log.info):
        init = init_db(url)  # vedfin's bookkeeping; a platform's schema app is only checked
        if init.applied:
            context.log.info(f"applied migrations: {', '.join(init.applied)}")
        activity = point_activity(url)
        for observation in raw_observations(url, "read by the dbt build"):
            context.log_event(observation)
        args = ["build", *SKIP_UNIT_TESTS]
        reason = None if config.full_refresh else full_refresh_reason(url, as_of)
        if reason:
            context.log.info(f"{reason}: --full-refresh")
        if config.full_refresh or reason:
            args.append("--full-refresh")
        with UncheckedDbtTests() as unchecked:
            for event in dbt.cli(args, context=context).stream():
                if isinstance(event, dg.Output) and _is_leaderboard(context, event.output_name):
                    event = event.with_metadata(
                        {**event.metadata, RAW_ACTIVITY: activity.key(), "as_of_date": str(as_of)}
                    )
                yield event
        if unchecked.tests:
            context.log.info(unchecked.summary())
        if context.selected_asset_keys:  # models were built (not only their tests)
            record_build(url, as_of, whole=not context.is_subset)
            if "--full-refresh" in args:
                context.log.info(vacuum_rebuilt(url).describe())
    if not context.is_subset:  # after whole builds only, as `vedfin build` (see events_left_out)
        left_out = events_left_out(url)
        if left_out:
            context.log.warning(left_out_message(left_out))


class UncheckedDbtTests(logging.Filter):
    """Replaces dagster-dbt's warning per dbt test that has no asset check with one line.

    dagster-dbt can attach a test to one asset only: a relationships test between two raw
    tables (attached to neither) and the tests of raw tables no model reads (`streaks`,
    `buddy_groups`) have no check, so it records their results as asset observations and
    warns, in several lines, once for each in every whole build. They are meant to run:
    they check what the platform wrote, and a failing one still fails the dbt step."""

    PREFIX = "Logging an `AssetObservation` instead of an `AssetCheckResult` for dbt test `"

    def __init__(self) -> None:
        super().__init__()
        self.tests: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith(self.PREFIX):
            return True
        self.tests.append(message[len(self.PREFIX) :].split("`", 1)[0])
        return False

    def __enter__(self) -> "UncheckedDbtTests":
        DAGSTER_LOGGER.addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        DAGSTER_LOGGER.removeFilter(self)

    def summary(self) -> str:
        return (
            f"{len(self.tests)} dbt tests ran without an asset check in this run (dagster-dbt "
            "attaches a test to one selected asset: relationships between two raw tables, "
            "tables no model reads, tests dbt selected indirectly) and passed or warned; their "
            "results are asset observations of the tables they test: "
            + ", ".join(sorted(self.tests))
        )


def _is_leaderboard(context: dg.AssetExecutionContext, output_name: str) -> bool:
    return context.asset_key_for_output(output_name).path[-1] == "fct_leaderboard"


def raw_observations(url: str, seen_by: str) -> list[dg.AssetObservation]:
    """One observation per raw table `app/*`: rows, highest id, latest write times."""
    keys = {key.path[-1]: key for key in source_asset_keys()}
    return [
        dg.AssetObservation(
            asset_key=keys[table],
            description=f"what the platform has written to app.{table}, {seen_by}",
            metadata={name: value for name, value in stats.items() if value is not None},
        )
        for table, stats in observe(url).items()
        if table in keys
    ]


@cache
def dbt_resource() -> DbtCliResource:
    return DbtCliResource(
        project_dir=dbt_project,
        profiles_dir=str(dbt_project.profiles_dir),
        dbt_executable=dbt_executable(),  # the virtualenv's dbt, whatever PATH says
    )


def raw_sources() -> dg.AssetSelection:
    """The raw tables `app/*` (materializable only by the generator)."""
    return dg.AssetSelection.assets(*source_asset_keys())


def raw_source_checks() -> dg.AssetSelection:
    """The dbt tests on the raw sources: they check what the platform wrote, so every build
    runs them even though no scheduled job materializes `app/*`."""
    return dg.AssetSelection.checks_for_assets(*source_asset_keys())


@cache
def source_asset_keys() -> tuple[dg.AssetKey, ...]:
    """The asset keys dbt gives the `app` source tables (read from the manifest once)."""
    data = json.loads(dbt_project.manifest_path.read_text())
    keys = (
        translator.get_asset_key(props)
        for props in data["sources"].values()
        if props["source_name"] == "app"
    )
    return tuple(sorted(keys, key=lambda k: k.to_user_string()))
