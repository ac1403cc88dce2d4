"""Running dbt with the resolved connection (the same environment Dagster gives it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from vedfin.config import DBT_PROFILES_DIR, DBT_PROJECT_DIR, Settings, env_exports
from vedfin.errors import VedfinError


def dbt_executable() -> str:
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def dbt_vars(as_of: date | None = None, extra: dict[str, object] | None = None) -> str:
    values: dict[str, object] = dict(extra or {})
    if as_of is not None:
        values["as_of_date"] = as_of.isoformat()
    return json.dumps(values)


def run_dbt(
    settings: Settings,
    command: str,
    *args: str,
    as_of: date | None = None,
    target: str | None = None,
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``dbt <command>`` in dbt_project/ with the project's profiles and the resolved env."""
    env = {**os.environ, **env_exports(settings)}
    if target:
        env["DBT_TARGET"] = target
    cmd = [
        dbt_executable(),
        command,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROFILES_DIR),
    ]
    if command not in {"deps", "clean", "debug"}:
        cmd += ["--vars", dbt_vars(as_of)]
    cmd += list(args)
    result = subprocess.run(
        cmd, env=env, cwd=DBT_PROJECT_DIR, text=True, capture_output=capture, check=False
    )
    return result


def latest_fresh_run(url: str) -> int | None:
    from vedfin.db import connect

    with connect(url) as conn:
        row = conn.execute(
            "select max(run_id) from vedfin_meta.seed_runs where mode = 'fresh'"
        ).fetchone()
    return None if row is None else row[0]


def regenerated_since_last_build(url: str) -> bool:
    """True when `vedfin seed` replaced the raw data after the last recorded build."""
    from vedfin.db import connect

    fresh = latest_fresh_run(url)
    with connect(url) as conn:
        row = conn.execute("select fresh_run_id from vedfin_meta.build_state").fetchone()
    return fresh is not None and (row is None or row[0] != fresh)


def record_build(url: str) -> None:
    from vedfin.db import connect

    fresh = latest_fresh_run(url)
    with connect(url) as conn:
        conn.execute(
            """insert into vedfin_meta.build_state (id, fresh_run_id) values (true, %s)
               on conflict (id) do update set fresh_run_id = excluded.fresh_run_id,
               built_at = now()""",
            (fresh,),
        )
        conn.commit()


def build(
    settings: Settings,
    *,
    as_of: date | None = None,
    full_refresh: bool = False,
    select: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    target: str | None = None,
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`dbt build`; a full refresh when asked, or when the raw data was regenerated."""
    from vedfin.db import check_schema

    check_schema(settings.database_url)
    if not full_refresh and regenerated_since_last_build(settings.database_url):
        print(
            "vedfin: the raw data was regenerated since the last build: full refresh",
            file=sys.stderr,
        )
        full_refresh = True
    args: list[str] = []
    if full_refresh:
        args.append("--full-refresh")
    for s in select:
        args += ["--select", s]
    for e in exclude:
        args += ["--exclude", e]
    result = run_dbt(settings, "build", *args, as_of=as_of, target=target, capture=capture)
    if result.returncode != 0:
        tail = ""
        if capture:
            tail = "\n" + "\n".join((result.stdout or "").splitlines()[-25:])
        raise VedfinError(
            f"dbt build failed (exit {result.returncode}); see the log above and "
            f"{DBT_PROJECT_DIR / 'logs' / 'dbt.log'}{tail}"
        )
    if not select and not exclude:
        record_build(settings.database_url)
    return result
