"""The roadmap's database tools: pre-commit, the GitHub workflow, the make targets."""

from __future__ import annotations

import os
import re
import subprocess

import psycopg
import pytest
import yaml

from tests.conftest import ROOT, _recreate_database
from vedfin.config import Settings, env_exports, with_database

ROADMAP_TARGETS = (
    "seed-dev", "seed-test", "seed-demo", "seed-benchmark",
    "erd", "docs", "ui", "demo", "bench", "lint",
)  # fmt: skip


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, re.M))


def test_make_help_lists_the_roadmap_targets() -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    listed = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("  make ")}
    assert set(ROADMAP_TARGETS) <= listed, set(ROADMAP_TARGETS) - listed
    assert listed <= _make_targets()


def test_the_workflow_parses_and_runs_only_make_targets_that_exist() -> None:
    spec = yaml.safe_load((ROOT / ".github" / "workflows" / "database-tools.yml").read_text())
    triggers = spec[True]  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    targets = _make_targets()
    ran: set[str] = set()
    for name, job in spec["jobs"].items():
        assert {"postgres", "redis"} <= set(job["services"]), name
        for step in job["steps"]:
            if "run" not in step:
                assert step["uses"].startswith("actions/"), step
                continue
            match = re.fullmatch(r"make ([a-z0-9-]+)", step["run"].strip())
            assert match, f"{name}: a step that is not one make target: {step['run']!r}"
            assert match.group(1) in targets, match.group(1)
            ran.add(match.group(1))
    assert {"erd", "seed-test", "build", "lint", "pre-commit", "bench"} <= ran
    assert spec["jobs"]["benchmarks"]["if"] == (
        "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    )
    uploads = [s["with"]["path"] for j in spec["jobs"].values() for s in j["steps"]
               if s.get("uses", "").startswith("actions/upload-artifact")]  # fmt: skip
    assert uploads == ["docs/erd/", "bench/"]


def test_pre_commit_config_fetches_nothing_from_git() -> None:
    spec = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    assert [r["repo"] for r in spec["repos"]] == ["local"]
    ids = {h["id"] for r in spec["repos"] for h in r["hooks"]}
    assert ids == {"ruff", "ruff-format", "mypy", "sqlfluff", "dbt-parse", "erd"}
    assert all(h["language"] == "system" for r in spec["repos"] for h in r["hooks"])


@pytest.mark.slow
def test_pre_commit_passes_on_every_file(settings: Settings) -> None:
    """What CI runs: every hook on every file (the ERD hook builds its own scratch
    database and must leave docs/erd/ as committed)."""
    done = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "pre-commit"),
            "run",
            "--all-files",
            "--show-diff-on-failure",
        ],
        cwd=ROOT,
        env={**os.environ, **env_exports(settings)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    assert done.stdout.count("Passed") == 6, done.stdout


def test_make_seed_test_refuses_existing_data_unless_reset(settings: Settings) -> None:
    _recreate_database(settings.database_url, "vedfin_make_seed")
    url = with_database(settings.database_url, "vedfin_make_seed")
    env = {**os.environ, **env_exports(settings), "DATABASE_URL": url}

    def make(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "--no-print-directory", *args], cwd=ROOT, env=env, capture_output=True,
            text=True, timeout=300,
        )  # fmt: skip

    first = make("seed-test")
    assert first.returncode == 0, first.stdout + first.stderr
    again = make("seed-test")
    assert again.returncode != 0 and "--reset" in again.stdout + again.stderr
    reset = make("seed-test", "RESET=1")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    with psycopg.connect(url) as conn:
        assert conn.execute("select count(*) from app.users").fetchone() == (20,)
