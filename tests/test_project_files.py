"""The project files that set things up: compose, profiles, layout."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from vedfin.config import PROJECT_ROOT


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


def test_docker_compose_config_validates() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    result = subprocess.run(
        [*command, "-f", str(PROJECT_ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


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
