"""The Dagster code location on a real instance (PostgreSQL storage), real dbt, real Redis.

One module-wide fixture runs `dagster job execute -m orchestration.definitions -j
full_pipeline` (the CI path) on fresh databases; the tests then look at what it left and
drive the sensor with ``build_sensor_context`` on the same instance.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest

from tests.conftest import ROOT, isolated_platform, run_cli
from tests.dagster_env import Platform, dagster_job, mart_scores, redis_scores, run
from tests.redis_server import RedisServer
from vedfin.config import Settings, env_exports
from vedfin.leaderboard import LeaderboardReader, snapshot_meta

END = "2026-11-20"
PREFIX = "orch:"


def _execute_job(
    job: str, config: str | None, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return run(dagster_job(job, config), env)


@pytest.fixture(scope="module")
def orch(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
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
    from orchestration.defs.resources import platform_settings

    platform_settings.cache_clear()
    try:
        yield Platform(values, server, url, PREFIX)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        platform_settings.cache_clear()
        server.stop()


@pytest.fixture(scope="module")
def pipeline_run(orch: Platform) -> subprocess.CompletedProcess[str]:
    done = _execute_job("full_pipeline", "orchestration/run_config/test.yaml", orch.values)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


@pytest.fixture(scope="module")
def instance(orch: Platform, pipeline_run: Any) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.from_config(orch.values["DAGSTER_HOME"]) as inst:
        yield inst


def _defs() -> dg.Definitions:
    from orchestration.definitions import defs

    return defs


def test_definitions_load_and_every_dbt_model_has_an_asset(orch: Platform) -> None:
    defs = _defs()
    dg.Definitions.validate_loadable(defs)
    graph = defs.get_repository_def().asset_graph
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    manifest = json.loads((ROOT / "dbt_project" / "target" / "manifest.json").read_text())
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert len(models) >= 20
    from dagster_dbt import get_asset_key_for_model

    from orchestration.defs.dbt.assets import dbt_models

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
        "generate_demo_data",
        "daily_refresh",
        "refresh_leaderboard",
        "publish_leaderboard",
    }
    sensor = defs.resolve_sensor_def("leaderboard_sensor")
    assert sensor.minimum_interval_seconds == 300
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    schedule = defs.resolve_schedule_def("daily_refresh_schedule")
    assert schedule.job_name == "daily_refresh"
    snapshot = graph.get(dg.AssetKey(["leaderboard_snapshot"]))
    assert snapshot.freshness_policy is not None  # the UI says when the snapshot is late


def test_no_scheduled_or_sensor_job_writes_app(orch: Platform) -> None:
    """The jobs a schedule or the sensor starts select the dbt models, their checks (the raw
    sources' tests included) and the snapshot, never the generator's app/* assets."""
    defs = _defs()
    graph = defs.resolve_asset_graph()
    started = {defs.resolve_schedule_def("daily_refresh_schedule").job_name}
    started |= {j.name for j in defs.resolve_sensor_def("leaderboard_sensor").jobs}
    assert started == {"daily_refresh", "refresh_leaderboard", "publish_leaderboard"}
    for name in started:
        keys = defs.resolve_job_def(name).asset_layer.selected_asset_keys
        assert not [k for k in keys if k.path[0] == "app"], name
    daily = defs.resolve_job_def("daily_refresh").asset_layer.selected_asset_keys
    assert {k.path[0] for k in daily} >= {"staging", "intermediate", "marts"}
    from orchestration.defs.jobs import BUILD_AND_PUBLISH, RAW

    raw_checks = [
        k for k in BUILD_AND_PUBLISH.resolve_checks(graph) if k.asset_key.path[0] == "app"
    ]
    assert raw_checks, "the raw sources' dbt tests run in daily_refresh"
    assert {k.path[0] for k in RAW.resolve(graph)} == {"app"}


def test_full_pipeline_via_dagster_job_execute(
    orch: Platform, instance: dg.DagsterInstance
) -> None:
    runs = instance.get_run_records(dg.RunsFilter(job_name="full_pipeline"))
    assert [r.dagster_run.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]
    # the fresh seed made the dbt step a full refresh, which vacuumed what it wrote
    said = [e.user_message for e in instance.all_logs(runs[0].dagster_run.run_id)]
    assert any("--full-refresh" in m for m in said)
    assert sum("vacuumed and analyzed the" in m for m in said) == 1
    from orchestration.defs.leaderboard.assets import FCT_LEADERBOARD, SNAPSHOT_KEY

    for key in (dg.AssetKey(["app", "users"]), FCT_LEADERBOARD, SNAPSHOT_KEY):
        assert instance.get_latest_materialization_event(key) is not None, key
    with psycopg.connect(orch.url) as conn:
        for mart in ("fct_daily_active_users", "fct_cohort_retention", "fct_leaderboard"):
            n = conn.execute(f"select count(*) from marts.{mart}").fetchone()
            assert n is not None and n[0] > 0, mart
    mart = mart_scores(orch.url)
    assert mart and redis_scores(orch.lb) == mart
    meta = snapshot_meta(orch.lb)
    assert meta["as_of_date"] == END and int(meta["source_rows"]) == len(mart)
    top = LeaderboardReader(orch.lb, orch.url).top(10)
    assert top.source == "redis" and top.entries == LeaderboardReader(orch.lb, orch.url).from_sql(
        10
    )


def _evaluate(instance: dg.DagsterInstance, cursor: str | None = None) -> Any:
    from orchestration.defs.leaderboard.sensors import leaderboard_sensor
    from orchestration.defs.resources import LeaderboardRedisResource, WarehouseResource

    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "leaderboard": LeaderboardRedisResource(prefix=PREFIX),
            "warehouse": WarehouseResource(),
        },
    )
    started = time.perf_counter()
    result = leaderboard_sensor(context)
    elapsed = time.perf_counter() - started
    print(f"sensor evaluation: {elapsed * 1000:.1f} ms -> {result}")
    return result


def _skip(result: Any) -> str:
    """The skip message of a sensor result that requested nothing (fails otherwise)."""
    if isinstance(result, dg.SkipReason):
        return result.skip_message or ""
    assert isinstance(result, dg.SensorResult), result
    assert not result.run_requests, result.run_requests
    assert result.skip_reason is not None
    return result.skip_reason.skip_message or ""


def _request(result: Any) -> dg.RunRequest:
    assert isinstance(result, dg.SensorResult), result
    assert result.run_requests and len(result.run_requests) == 1, result
    return result.run_requests[0]


def _publish(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = _defs().resolve_job_def("publish_leaderboard")
    return job.execute_in_process(instance=instance, raise_on_error=False)


def test_sensor_skips_without_new_activity_and_says_the_snapshot_is_current(
    orch: Platform, instance: dg.DagsterInstance
) -> None:
    first = _evaluate(instance)
    assert "no new point-earning activity" in _skip(first)
    events = first.asset_events
    observed = {e.asset_key.path[-1] for e in events if isinstance(e, dg.AssetObservation)}
    assert {"users", "behavior_logs", "user_progress", "user_achievements"} <= observed
    users = next(
        e for e in events if isinstance(e, dg.AssetObservation) and e.asset_key.path[-1] == "users"
    )
    with psycopg.connect(orch.url) as conn:
        n_users = conn.execute("select count(*) from app.users").fetchone()
    assert n_users is not None and users.metadata["rows"].value == n_users[0]
    verified = [e for e in events if isinstance(e, dg.AssetMaterialization)]
    assert [e.asset_key.to_user_string() for e in verified] == ["leaderboard_snapshot"]

    second = _evaluate(instance, first.cursor)  # nothing changed: no new observations
    assert "no new point-earning activity" in _skip(second)
    assert not [e for e in second.asset_events if isinstance(e, dg.AssetObservation)]


def test_redis_restart_leads_to_republish(orch: Platform, instance: dg.DagsterInstance) -> None:
    orch.server.stop()
    down = _evaluate(instance)
    assert "Redis unreachable" in _skip(down)
    failed = _publish(instance)
    assert not failed.success
    failure = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure and "cannot reach Redis" in str(failure[-1].event_specific_data)
    with psycopg.connect(orch.url) as conn:  # the marts are untouched
        assert conn.execute("select count(*) from marts.fct_leaderboard").fetchone()[0] > 0  # type: ignore[index]

    orch.server.start()  # back, and empty: the mart is current, so only a publish
    request = _request(_evaluate(instance))
    assert request.job_name == "publish_leaderboard"
    assert request.tags["vedfin/reason"] == "snapshot missing in Redis, mart current"
    assert _publish(instance).success
    assert redis_scores(orch.lb) == mart_scores(orch.url)
    assert "no new point-earning activity" in _skip(_evaluate(instance))


def _run_leaderboard_checks(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """Run fct_leaderboard's dbt tests (only the checks: the table is not rebuilt)."""
    from orchestration.defs.leaderboard.assets import FCT_LEADERBOARD

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


def test_failed_dbt_test_blocks_the_publish(orch: Platform, instance: dg.DagsterInstance) -> None:
    """A real dbt test on fct_leaderboard fails; the sensor and the publish both refuse."""
    with psycopg.connect(orch.url) as conn:
        user, points = conn.execute(
            "select user_id, total_points from marts.fct_leaderboard order by user_id limit 1"
        ).fetchone()  # type: ignore[misc]
        conn.execute(
            "update marts.fct_leaderboard set total_points = 0 where user_id = %s", (user,)
        )
    checked = _run_leaderboard_checks(instance)
    assert not checked.success  # dbt test expression_is_true ... total_points > 0 failed
    orch.server.stop()
    orch.server.start()  # Redis lost the snapshot: the sensor would republish the mart ...
    message = _skip(_evaluate(instance))
    assert "failed checks" in message and "total_points" in message  # ... but not this one
    blocked = _publish(instance)
    assert not blocked.success
    failure = [e for e in blocked.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure and "not publishing" in str(failure[-1].event_specific_data)
    assert snapshot_meta(orch.lb) == {}  # nothing was published

    with psycopg.connect(orch.url) as conn:
        conn.execute(
            "update marts.fct_leaderboard set total_points = %s where user_id = %s", (points, user)
        )
    assert _run_leaderboard_checks(instance).success
    assert _request(_evaluate(instance)).job_name == "publish_leaderboard"
    assert _publish(instance).success
    assert redis_scores(orch.lb) == mart_scores(orch.url)


def _app_state(url: str) -> dict[str, tuple[int, int]]:
    """Row count and highest id of the big raw tables: what a writer would change."""
    with psycopg.connect(url) as conn:
        return {
            t: conn.execute(f"select count(*), coalesce(max(id), 0) from app.{t}").fetchone()  # type: ignore[misc]
            for t in ("users", "behavior_logs", "user_progress", "enrollments")
        }


def _job_steps(instance: dg.DagsterInstance, job: str) -> set[str]:
    run = instance.get_run_records(dg.RunsFilter(job_name=job), limit=1)[0].dagster_run
    stats = instance.get_run_step_stats(run.run_id)
    return {s.step_key for s in stats}


def test_daily_refresh_builds_what_an_outside_writer_added_and_never_writes_app(
    orch: Platform, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    """The platform writes a day of logins (plain INSERT); daily_refresh builds it."""
    with psycopg.connect(orch.url) as conn:
        users = [r[0] for r in conn.execute("select id from app.users order by id limit 7")]
        conn.execute(
            """insert into app.behavior_logs (user_id, session_id, event_type, occurred_at,
                                              device, properties)
               select u, 900000 + u, 'login', timestamptz '2026-11-21 12:00:00+07', 'web',
                      '{"method": "password"}'
               from unnest(%s::bigint[]) as u""",
            (users,),
        )
    written = _app_state(orch.url)
    config = tmp_path / "daily.yaml"
    config.write_text("ops:\n  dbt_models:\n    config: {as_of: '2026-11-21'}\n")
    done = _execute_job("daily_refresh", str(config), orch.values)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "--full-refresh" not in output
    # the raw tests dagster-dbt cannot attach to one asset: one line, not a warning each
    from orchestration.defs.dbt.assets import UncheckedDbtTests  # needs the parsed manifest

    assert UncheckedDbtTests.PREFIX not in output
    lines = [line for line in output.splitlines() if "without an asset check" in line]
    assert len(lines) == 1, lines
    unchecked = lines[0]
    assert "source_unique_app_streaks_user_id" in unchecked
    assert "source_relationships_app_enrollments_user_id__id__source_app_users_" in unchecked
    observed = instance.fetch_observations(dg.AssetKey(["app", "streaks"]), limit=10).records
    tested = [r.asset_observation for r in observed if r.asset_observation is not None]
    assert any(
        "source_unique_app_streaks_user_id" in (o.description or "")
        and o.metadata["status"].value == "pass"
        for o in tested
    ), "the test's result is still recorded, as an observation of the table"
    assert _app_state(orch.url) == written  # the job read app, wrote nothing there
    assert "generate_app_data" not in _job_steps(instance, "daily_refresh")
    with psycopg.connect(orch.url) as conn:
        day = conn.execute(
            "select activity_date, dau from marts.fct_daily_active_users "
            "order by activity_date desc limit 1"
        ).fetchone()
    assert day is not None and (str(day[0]), day[1]) == ("2026-11-21", len(users))
    assert snapshot_meta(orch.lb)["as_of_date"] == "2026-11-21"
    assert redis_scores(orch.lb) == mart_scores(orch.url)


def test_points_of_a_simulated_completion_reach_redis_after_one_tick_and_one_run(
    orch: Platform, instance: dg.DagsterInstance
) -> None:
    """The live simulator writes like the app (user_progress updated in place, events,
    unlocks); the next tick requests refresh_leaderboard, whose run puts the points in
    Redis."""
    from collections import Counter

    from seeds_gen.live import LiveSimulator, PointsWrite

    settled = _evaluate(instance)
    assert "no new point-earning activity" in _skip(settled)
    before = redis_scores(orch.lb)
    writes: list[PointsWrite] = []
    for seed in range(1, 20):  # until a lesson completion is among the writes
        sim = LiveSimulator(orch.url, seed=seed, events_per_second=1000, target="test")
        sim.run(max_events=150, on_points=writes.append)
        if any(w.kind == "lesson" for w in writes):
            break
    assert any(w.kind == "lesson" for w in writes), "the simulator completed no lesson"
    tick = _evaluate(instance, settled.cursor)
    request = _request(tick)
    assert request.job_name == "refresh_leaderboard"
    assert "completions" in request.tags["vedfin/reason"]
    assert (
        _request(_evaluate(instance, settled.cursor)).run_key == request.run_key
    )  # one per window
    assert {e.asset_key.path[-1] for e in tick.asset_events} >= {"user_progress", "behavior_logs"}

    done = _execute_job("refresh_leaderboard", None, orch.values)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert _job_steps(instance, "refresh_leaderboard") == {"dbt_models", "leaderboard_snapshot"}
    after = redis_scores(orch.lb)
    earned: Counter[int] = Counter()
    for w in writes:
        earned[w.user_id] += w.points
    for user, points in earned.items():
        assert after[user] == before.get(user, 0) + points, user
    assert after == mart_scores(orch.url)
    assert "no new point-earning activity" in _skip(_evaluate(instance, tick.cursor))
