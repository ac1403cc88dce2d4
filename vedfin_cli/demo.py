"""`vedfin demo` (`make demo`): watch the leaderboard move.

In a database of its own (`vedfin_demo` on the resolved server, so a developer's data is
never touched) with its own Dagster instance and Redis key prefix: the `demo` scenario
(generated once, kept afterwards), a first `daily_refresh`, then the Dagster UI with the
daemon (sensor and schedule on) in the background and the live simulator in the
foreground. The sensor runs every `--interval` seconds (60 by default for the demo; 300 in
production). Ctrl-C stops the simulator between two transactions and then the UI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from seeds_gen.live import run_simulate
from vedfin.config import (
    PROJECT_ROOT,
    Settings,
    _write_dagster_yaml,
    ensure_databases,
    env_exports,
    sqlalchemy_psycopg2_url,
    state_dir,
    with_database,
)
from vedfin.db import connect, describe_target, init_db
from vedfin.errors import UnsafeOperation, VedfinError

console = Console(stderr=True, soft_wrap=True)
PREFIX = "demo:leaderboard:"


def demo_settings(settings: Settings, database: str) -> Settings:
    """The same servers; the demo's own database, Dagster storage and DAGSTER_HOME."""
    ensure_databases(settings.database_url, [database, f"{database}_dagster"])
    home = state_dir() / f"dagster_home_{database}"
    _write_dagster_yaml(home)
    return replace(
        settings,
        database_url=with_database(settings.database_url, database),
        dagster_home=home,
        dagster_pg_url=sqlalchemy_psycopg2_url(
            with_database(settings.database_url, f"{database}_dagster")
        ),
    )


def _users(url: str) -> int:
    with connect(url) as conn:
        row = conn.execute("select count(*) from app.users").fetchone()
    return int(row[0]) if row else 0


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    console.print(f"[bold]{what}[/] ...")
    done = subprocess.run(args, env=env, cwd=PROJECT_ROOT, check=False)
    if done.returncode != 0:
        raise VedfinError(f"{what} failed (exit {done.returncode}); see the output above")


def run_demo(
    settings: Settings,
    *,
    database: str,
    port: int,
    interval: int,
    events_per_second: float | None,
    seed: int | None,
) -> None:
    if settings.target == "prod":
        raise UnsafeOperation("the demo writes synthetic data: not on the prod target")
    demo = demo_settings(settings, database)
    url = demo.database_url
    env = {
        **os.environ,
        **env_exports(demo),
        "LEADERBOARD_PREFIX": PREFIX,
        "VEDFIN_LEADERBOARD_INTERVAL": str(interval),
    }
    init_db(url)
    vedfin = [sys.executable, "-m", "vedfin_cli"]
    if _users(url) == 0:
        _run(
            [*vedfin, "seed", "--scenario", "demo"],
            env,
            f"generating the demo scenario in {database}",
        )
    else:
        console.print(
            f"{describe_target(url)} already holds the demo data: the simulator continues it"
        )
    _run([*vedfin, "parse"], env, "dbt parse")
    job = ["job", "execute", "-m", "orchestration.definitions", "-j", "daily_refresh"]
    _run([_bin("dagster"), *job], env, "daily_refresh: every mart, then the leaderboard")
    ui_args = [_bin("dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    log = state_dir() / f"{database}-ui.log"
    with log.open("a") as out:
        ui = subprocess.Popen(
            ui_args,
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    console.print(
        f"Dagster UI on http://127.0.0.1:{port} (log {log}); leaderboard_sensor every "
        f"{interval} s.\nWatch the leaderboard move: "
        f"LEADERBOARD_PREFIX={PREFIX} DATABASE_URL={url} vedfin leaderboard top -n 10",
        highlight=False,
    )
    try:
        run_simulate(
            url,
            settings.target,
            seed=seed,
            events_per_second=events_per_second,
            duration=None,
            max_events=None,
            force=False,
            quiet=False,
        )
    finally:
        console.print("stopping the Dagster UI ...")
        try:
            os.killpg(ui.pid, signal.SIGINT)
            ui.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
