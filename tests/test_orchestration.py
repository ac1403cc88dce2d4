"""The Dagster code location on a real instance (PostgreSQL storage), real dbt, real Redis.

One module-wide fixture runs `dagster job execute -m orchestration.definitions -j
full_pipeline` (the CI path) on fresh databases; the tests then look at what it left and
drive the sensor with ``build_sensor_context`` on the same instance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest

from tests.conftest import ROOT, isolated_platform, run_cli
from tests.redis_server import RedisServer
from vedfin.config import Settings, env_exports
from vedfin.leaderboard import LeaderboardReader, LeaderboardSettings, snapshot_meta

END = "2026-11-20"
PREFIX = "orch:"


class Env:
    def __init__(self, values: dict[str, str], server: RedisServer, url: str) -> None:
        self.values = values
        self.server = server
        self.url = url

    @property
    def lb(self) -> LeaderboardSettings:
        """What the resource resolves in the test target: Redis database 1, our prefix."""
        return LeaderboardSettings.from_env(self.server.url, "test", PREFIX)


def _execute_job(job: str, config: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`dagster job execute -m orchestration.definitions -j <job> -c <config>`: the CI path."""
    args = ["job", "execute", "-m", "orchestration.definitions", "-j", job, "-c", config]
    return subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def orch(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    server = RedisServer().start()
    scoped = isolated_platform(
        settings, "vedfin_orch", server.url, tmp_path_factory.mktemp("dagster_home")
    )
    url = scoped.database_url
    values = {**env_exports(scoped), "LEADERBOARD_PREFIX": PREFIX}
    parsed = run_cli("parse", env=values)  # the explicit `dbt parse` the definitions need
    assert parsed.returncode == 0, parsed.stderr
    saved = dict(os.environ)
    os.environ.update(values)
    from orchestration.resources import platform_settings

    platform_settings.cache_clear()
    try:
        yield Env(values, server, url)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        platform_settings.cache_clear()
        server.stop()


@pytest.fixture(scope="module")
def pipeline_run(orch: Env) -> subprocess.CompletedProcess[str]:
    done = _execute_job("full_pipeline", "orchestration/run_config/test.yaml", orch.values)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


@pytest.fixture(scope="module")
def instance(orch: Env, pipeline_run: Any) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(orch.values["DAGSTER_HOME"]) as inst:
        yield inst


def _defs() -> dg.Definitions:
    from orchestration.definitions import defs

    return defs


def _mart_scores(url: str) -> dict[int, int]:
    with psycopg.connect(url) as conn:
        return dict(
            conn.execute("select user_id, total_points from marts.fct_leaderboard").fetchall()
        )


def _redis_scores(lb: LeaderboardSettings) -> dict[int, int]:
    import redis

    r = redis.Redis.from_url(lb.redis_url, decode_responses=True)
    return {int(k): int(v) for k, v in r.zrange(f"{PREFIX}all_time", 0, -1, withscores=True)}


def test_definitions_load_and_every_dbt_model_has_an_asset(orch: Env) -> None:
    defs = _defs()
    dg.Definitions.validate_loadable(defs)
    graph = defs.get_repository_def().asset_graph
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    manifest = json.loads((ROOT / "dbt_project" / "target" / "manifest.json").read_text())
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert len(models) >= 20
    from dagster_dbt import get_asset_key_for_model

    from orchestration.dbt.assets import dbt_models

    for name, node in models.items():
        key = get_asset_key_for_model([dbt_models], name)
        assert key.to_user_string() in keys, f"dbt model {name} has no asset"
        assert graph.get(key).group_name == node["fqn"][1]  # staging/intermediate/marts
    for table in ("users", "behavior_logs", "user_progress", "enrollments"):
        assert f"app/{table}" in keys
        assert graph.get(dg.AssetKey(["app", table])).group_name == "raw"
    assert "leaderboard_snapshot" in keys
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert any(a == "marts/fct_leaderboard" and "unique" in n for a, n in checks)
    assert any(a == "app/behavior_logs" for a, _ in checks), "source tests are checks too"
    assert {j.name for j in defs.resolve_all_job_defs()} >= {
        "full_pipeline",
        "daily_refresh",
        "publish_leaderboard",
    }
    sensor = defs.resolve_sensor_def("leaderboard_sensor")
    assert sensor.minimum_interval_seconds == 300
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    schedule = defs.resolve_schedule_def("daily_refresh_schedule")
    assert schedule.job_name == "daily_refresh"


def test_full_pipeline_via_dagster_job_execute(orch: Env, instance: dg.DagsterInstance) -> None:
    runs = instance.get_run_records(dg.RunsFilter(job_name="full_pipeline"))
    assert [r.dagster_run.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]
    from orchestration.assets.leaderboard import FCT_LEADERBOARD, SNAPSHOT_KEY

    for key in (dg.AssetKey(["app", "users"]), FCT_LEADERBOARD, SNAPSHOT_KEY):
        assert instance.get_latest_materialization_event(key) is not None, key
    with psycopg.connect(orch.url) as conn:
        for mart in ("fct_daily_active_users", "fct_cohort_retention", "fct_leaderboard"):
            n = conn.execute(f"select count(*) from marts.{mart}").fetchone()
            assert n is not None and n[0] > 0, mart
    mart = _mart_scores(orch.url)
    assert mart and _redis_scores(orch.lb) == mart
    meta = snapshot_meta(orch.lb)
    assert meta["as_of_date"] == END and int(meta["source_rows"]) == len(mart)
    top = LeaderboardReader(orch.lb, orch.url).top(10)
    assert top.source == "redis" and top.entries == LeaderboardReader(orch.lb, orch.url).from_sql(
        10
    )


def _evaluate(instance: dg.DagsterInstance, cursor: str | None = None) -> Any:
    from orchestration.resources import LeaderboardRedisResource
    from orchestration.sensors.leaderboard import leaderboard_sensor

    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"leaderboard": LeaderboardRedisResource(prefix=PREFIX)},
    )
    started = time.perf_counter()
    result = leaderboard_sensor(context)
    elapsed = time.perf_counter() - started
    print(f"sensor evaluation: {elapsed * 1000:.1f} ms -> {result}")
    return result


def _publish(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = _defs().resolve_job_def("publish_leaderboard")
    return job.execute_in_process(instance=instance, raise_on_error=False)


def _new_fct_materialization(instance: dg.DagsterInstance) -> None:
    from orchestration.assets.leaderboard import FCT_LEADERBOARD

    instance.report_runless_asset_event(dg.AssetMaterialization(FCT_LEADERBOARD))


def test_sensor_fires_on_new_materialization_once_per_window(
    orch: Env, instance: dg.DagsterInstance
) -> None:
    first = _evaluate(instance)
    assert isinstance(first, dg.SkipReason) and "up to date" in (first.skip_message or "")

    _new_fct_materialization(instance)
    request = _evaluate(instance)
    assert isinstance(request, dg.RunRequest)
    assert request.tags["vedfin/reason"] == "fct_leaderboard changed"
    again = _evaluate(instance)
    assert isinstance(again, dg.RunRequest) and again.run_key == request.run_key

    result = _publish(instance)
    assert result.success
    after = _evaluate(instance)
    assert isinstance(after, dg.SkipReason) and "up to date" in (after.skip_message or "")
    assert _redis_scores(orch.lb) == _mart_scores(orch.url)


def test_redis_restart_leads_to_republish(orch: Env, instance: dg.DagsterInstance) -> None:
    orch.server.stop()
    down = _evaluate(instance)
    assert isinstance(down, dg.SkipReason) and "Redis unreachable" in (down.skip_message or "")
    failed = _publish(instance)
    assert not failed.success
    failure = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure and "cannot reach Redis" in str(failure[-1].event_specific_data)
    with psycopg.connect(orch.url) as conn:  # the marts are untouched
        assert conn.execute("select count(*) from marts.fct_leaderboard").fetchone()[0] > 0  # type: ignore[index]

    orch.server.start()  # back, and empty
    request = _evaluate(instance)
    assert isinstance(request, dg.RunRequest)
    assert request.tags["vedfin/reason"] == "snapshot missing in Redis"
    assert _publish(instance).success
    assert _redis_scores(orch.lb) == _mart_scores(orch.url)
    assert isinstance(_evaluate(instance), dg.SkipReason)


def _run_leaderboard_checks(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """Run fct_leaderboard's dbt tests (only the checks: the table is not rebuilt)."""
    from orchestration.assets.leaderboard import FCT_LEADERBOARD

    defs = _defs()
    job = dg.define_asset_job(
        "check_fct_leaderboard", selection=dg.AssetSelection.checks_for_assets(FCT_LEADERBOARD)
    )
    scoped = dg.Definitions(
        assets=list(defs.assets or []), jobs=[job], resources=dict(defs.resources or {})
    )
    return scoped.resolve_job_def("check_fct_leaderboard").execute_in_process(
        instance=instance, raise_on_error=False
    )


def test_failed_dbt_test_blocks_the_publish(orch: Env, instance: dg.DagsterInstance) -> None:
    """A real dbt test on fct_leaderboard fails; the sensor and the publish both refuse."""
    with psycopg.connect(orch.url) as conn:
        user, points = conn.execute(
            "select user_id, total_points from marts.fct_leaderboard order by user_id limit 1"
        ).fetchone()  # type: ignore[misc]
        conn.execute(
            "update marts.fct_leaderboard set total_points = 0 where user_id = %s", (user,)
        )
    _new_fct_materialization(instance)
    checked = _run_leaderboard_checks(instance)
    assert not checked.success  # dbt test expression_is_true ... total_points > 0 failed
    before = snapshot_meta(orch.lb)["version"]
    skipped = _evaluate(instance)
    assert isinstance(skipped, dg.SkipReason)
    message = skipped.skip_message or ""
    assert "failed checks" in message and "total_points" in message
    blocked = _publish(instance)
    assert not blocked.success
    failure = [e for e in blocked.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure and "not publishing" in str(failure[-1].event_specific_data)
    assert snapshot_meta(orch.lb)["version"] == before  # nothing was published

    with psycopg.connect(orch.url) as conn:
        conn.execute(
            "update marts.fct_leaderboard set total_points = %s where user_id = %s", (points, user)
        )
    assert _run_leaderboard_checks(instance).success
    assert isinstance(_evaluate(instance), dg.RunRequest)
    assert _publish(instance).success
    assert _redis_scores(orch.lb) == _mart_scores(orch.url)


def test_daily_refresh_appends_builds_incrementally_and_publishes(
    orch: Env, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    config = tmp_path / "daily.yaml"
    config.write_text(
        "ops:\n"
        "  generate_app_data:\n    config: {mode: append, append_days: 1}\n"
        "  dbt_models:\n    config: {as_of: '2026-11-21'}\n"
    )
    with psycopg.connect(orch.url) as conn:
        events_before = conn.execute("select count(*) from app.behavior_logs").fetchone()
    done = _execute_job("daily_refresh", str(config), orch.values)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "--full-refresh" not in done.stdout + done.stderr
    with psycopg.connect(orch.url) as conn:
        events_after = conn.execute("select count(*) from app.behavior_logs").fetchone()
        last_day = conn.execute(
            "select max(activity_date) from marts.fct_daily_active_users"
        ).fetchone()
    assert (
        events_before is not None
        and events_after is not None
        and events_after[0] > events_before[0]
    )
    assert last_day is not None and str(last_day[0]) == "2026-11-21"
    assert snapshot_meta(orch.lb)["as_of_date"] == "2026-11-21"
    assert _redis_scores(orch.lb) == _mart_scores(orch.url)
