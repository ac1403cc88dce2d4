"""Resources, configured from the environment (vedfin's one resolution of the servers)."""

from __future__ import annotations

from functools import lru_cache

import dagster as dg

from vedfin.config import Settings, apply_env, resolve
from vedfin.leaderboard import LeaderboardSettings


@lru_cache(maxsize=1)
def platform_settings() -> Settings:
    """DATABASE_URL / REDIS_URL from the environment, else the embedded servers (started if
    needed); exported into this process so dbt's profiles and child processes see them."""
    settings = resolve(start=True)
    apply_env(settings)
    return settings


class WarehouseResource(dg.ConfigurableResource):  # type: ignore[misc]
    """The PostgreSQL warehouse (raw schema `app`, the marts)."""

    def url(self) -> str:
        return platform_settings().database_url

    def target(self) -> str:
        return platform_settings().target


class LeaderboardRedisResource(dg.ConfigurableResource):  # type: ignore[misc]
    """Where the leaderboard snapshot is published (Redis), with its key prefix."""

    redis_url: str = ""
    prefix: str = ""  # empty: $LEADERBOARD_PREFIX, else "leaderboard:"
    target: str = ""

    def settings(self) -> LeaderboardSettings:
        base = platform_settings()
        return LeaderboardSettings.from_env(
            self.redis_url or base.redis_url, self.target or base.target, self.prefix or None
        )
