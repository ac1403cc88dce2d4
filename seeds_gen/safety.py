"""When the generator may write: never the platform's own ``app``, never prod without
``--force``, never over data without ``--reset``."""

from __future__ import annotations

import psycopg

from vedfin.db import app_is_platforms, connect, describe_target, init_db
from vedfin.errors import UnsafeOperation


def app_row_counts(conn: psycopg.Connection) -> dict[str, int]:
    return {
        t: conn.execute(f"select count(*) from app.{t}").fetchone()[0]  # type: ignore[index]
        for t in ("users", "behavior_logs")
    }


def check_safe(
    url: str,
    target: str,
    *,
    reset: bool,
    force: bool,
    conn: psycopg.Connection,
    append: bool = False,
) -> None:
    if target == "prod" and not force:
        raise UnsafeOperation(
            "refusing to write synthetic data to the prod target; "
            "pass --force if you really mean it"
        )
    if app_is_platforms(conn):
        raise UnsafeOperation(
            f"schema app at {describe_target(url)} belongs to the platform (it was there "
            "before vedfin): the generator never writes it; generate into a database of its own"
        )
    if append:
        return
    counts = app_row_counts(conn)
    if any(counts.values()) and not reset:
        raise UnsafeOperation(
            f"schema app at {describe_target(url)} is not empty ({counts['users']} users, "
            f"{counts['behavior_logs']} events); pass --reset to replace it, or "
            "--append-days N to extend it"
        )


def preflight(
    url: str, target: str, *, reset: bool, force: bool, append: bool = False
) -> list[str]:
    """The migrations and the safety checks of a load, before any work starts (then pass
    ``checked=True`` to the load, which skips them); returns the migrations applied."""
    applied = init_db(url).applied
    with connect(url) as conn:
        check_safe(url, target, reset=reset, force=force, conn=conn, append=append)
    return applied
