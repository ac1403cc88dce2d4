"""What the Dagster test modules share: a platform of their own, `dagster job execute` as CI
runs it, and the leaderboard as the mart and Redis hold it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import redis

from tests.conftest import ROOT
from tests.redis_server import RedisServer
from vedfin.leaderboard import LeaderboardSettings


class Platform:
    """The environment a test module's jobs run in: its databases, its Redis, its prefix."""

    def __init__(self, values: dict[str, str], server: RedisServer, url: str, prefix: str) -> None:
        self.values = values
        self.server = server
        self.url = url
        self.prefix = prefix

    @property
    def lb(self) -> LeaderboardSettings:
        """What the resource resolves in the test target: Redis database 1, this prefix."""
        return LeaderboardSettings.from_env(self.server.url, "test", self.prefix)


def dagster_job(job: str, config: Path | str | None = None) -> list[str]:
    """`dagster job execute -m orchestration.definitions -j <job> [-c <config>]`: the CI path."""
    args = [str(Path(sys.executable).parent / "dagster"), "job", "execute"]
    args += ["-m", "orchestration.definitions", "-j", job]
    return args + (["-c", str(config)] if config else [])


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def mart_scores(url: str) -> dict[int, int]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("select user_id, total_points from marts.fct_leaderboard"))


def redis_scores(lb: LeaderboardSettings) -> dict[int, int]:
    r = redis.Redis.from_url(lb.redis_url, decode_responses=True)
    return {int(k): int(v) for k, v in r.zrange(lb.key("all_time"), 0, -1, withscores=True)}
