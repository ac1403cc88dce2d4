"""The project files that set things up: compose, profiles, layout."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import _must_not_skip
from vedfin.config import PROJECT_ROOT
from vedfin.roles import ADMIN_BROWSER


def test_docker_compose_declares_the_stack() -> None:
    spec = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    for name in ("dagster-webserver", "dagster-daemon"):
        env = services[name]["environment"]
        assert {"DATABASE_URL", "REDIS_URL", "DAGSTER_HOME", "DAGSTER_PG_URL"} <= set(env)


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def _compose_or_skip() -> list[str]:
    command = _compose_command()
    if command is None:
        reason = "neither `docker compose` nor `docker-compose` is installed (make test-tools)"
        if _must_not_skip():
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    return command


def test_docker_compose_config_validates() -> None:
    command = _compose_or_skip()
    result = subprocess.run(
        [*command, "-f", str(PROJECT_ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_nocodb_runs_under_the_admin_profile_as_the_admin_browser_role() -> None:
    command = _compose_or_skip()
    env = {
        **os.environ,
        "VEDFIN_ENV": "staging",
        "ADMIN_BROWSER_PASSWORD": "s3cret-from-env",
        "NOCODB_JWT_SECRET": "jwt-from-env",
    }
    done = subprocess.run(
        [*command, "-f", str(PROJECT_ROOT / "docker-compose.yml"), "--profile", "admin", "config"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    nocodb, init = services["nocodb"], services["nocodb-init"]
    assert nocodb["profiles"] == ["admin"] and init["profiles"] == ["admin"]
    nc_db = nocodb["environment"]["NC_DB"]
    assert f"u={ADMIN_BROWSER}&" in nc_db and "p=s3cret-from-env&" in nc_db  # from the env
    cmd = init["command"] if isinstance(init["command"], str) else " ".join(init["command"])
    assert "vedfin db roles --env staging --browser-database nocodb" in " ".join(cmd.split())
    plain = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    assert "s3cret" not in str(plain) and "nocodb" not in plain["services"]["postgres"].get(
        "profiles", []
    )


def test_profiles_read_every_connection_detail_from_env() -> None:
    profiles = yaml.safe_load((PROJECT_ROOT / "profiles" / "profiles.yml").read_text())
    outputs = profiles["vedfin"]["outputs"]
    assert set(outputs) == {"dev", "test", "staging", "prod"}
    for name, output in outputs.items():
        for key in ("host", "port", "user", "password", "dbname"):
            assert "env_var(" in str(output[key]), (name, key)


def test_top_level_layout() -> None:
    for path in (
        "dbt_project",
        "orchestration",
        "seeds_gen",
        "profiles",
        "tests",
        "workspace.yaml",
        "pyproject.toml",
        "docker-compose.yml",
        "README.md",
        "Makefile",
        ".ci/run",
    ):
        assert (PROJECT_ROOT / path).exists(), path
