"""Every environment variable vedfin reads, typed and validated in one place.

Read afresh on each call of :func:`environment` (tests and `vedfin env` change the process
environment), through ``pydantic-settings``. A value of the wrong type is one clear line
naming the variable, never a traceback from deep inside a build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from vedfin.errors import VedfinError

Target = Literal["dev", "test", "staging", "prod"]
TARGETS: tuple[str, ...] = Target.__args__  # type: ignore[attr-defined]


class Environment(BaseSettings):
    """The variables, by their names in the environment (case-insensitive)."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_ignore_empty=True)

    database_url: str = Field(default="", description="PostgreSQL to use; empty: the embedded one")
    redis_url: str = Field(default="", description="Redis to use; empty: the embedded one")
    dagster_pg_url: str = Field(default="", description="Dagster's storage; empty: beside the data")
    dagster_home: Path | None = Field(default=None, description="Dagster instance folder")
    dbt_target: Target = Field(default="dev", description="dbt target and environment")
    vedfin_state_dir: Path | None = Field(default=None, description="embedded servers' data")
    vedfin_build_lock_timeout: float = Field(
        default=1800.0, ge=0, description="seconds a build waits for another one"
    )
    vedfin_leaderboard_interval: int = Field(
        default=300, ge=5, description="seconds between the leaderboard sensor's ticks"
    )
    leaderboard_prefix: str = Field(default="leaderboard:", min_length=1, description="Redis keys")
    leaderboard_max_age_seconds: int = Field(
        default=900, ge=1, description="a snapshot older than this is stale"
    )
    test_redis_db: int = Field(default=1, ge=0, description="Redis database of the test target")


def environment() -> Environment:
    """The environment as it is now; a bad value raises VedfinError naming the variable."""
    try:
        return Environment()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "?"
            problems.append(f"{name}={err.get('input')!r}: {err['msg']}")
        raise VedfinError("bad environment: " + "; ".join(problems)) from None
