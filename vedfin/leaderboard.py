"""The Redis leaderboard snapshot: publishing it from ``marts.fct_leaderboard`` and reading it.

Keys (prefix configurable, default ``leaderboard:``):

- ``<prefix>all_time``: sorted set, member ``user_id``, score ``total_points``;
- ``<prefix>weekly``: sorted set, member ``user_id``, score ``points_7d`` (users with
  ``points_7d > 0``);
- ``<prefix>profiles``: hash ``user_id`` -> ``{"name": display_name, "rank": rank}``;
- ``<prefix>meta``: hash ``snapshot_at``, ``as_of_date``, ``source_rows``, ``version``,
  ``snapshot_id``, ``kind`` (full or delta), ``changed_rows``, ``run_id``,
  ``source_storage_id`` (the Dagster materialization of ``fct_leaderboard`` it was
  built from), ``publish_ms``.

A publish writes everything under temporary keys unique to that publish
(``<prefix>tmp:<token>:...``) with variadic ``ZADD``/``HSET`` in non-transactional
pipelines, then swaps them in with one ``MULTI``/``EXEC``: the live keys are renamed
to a trash key, the temporary ones renamed to the live names, ``meta`` replaced,
and the trash ``UNLINK``-ed (freed lazily, off Redis's main thread). Readers see the
old snapshot or the new one, never a mix; two publishes at once cannot share keys.
An empty leaderboard is a valid snapshot (``meta`` with ``source_rows`` 0).

A delta instead, when few entries changed: ``vedfin_meta.leaderboard_published_rows``
holds what the current snapshot of each target holds; the changed entries (and the
new ``meta``) go into the live keys in one ``MULTI``/``EXEC``, just as atomic for
readers, provided Redis still holds the recorded snapshot (``snapshot_id`` and
``version`` in ``meta``). See :func:`publish`.

Reading goes through one Lua script (atomic on the server): the top ``n`` entries,
extended to the whole tie at the boundary and ordered like the mart
(``rank``, then ``user_id``), their profiles and ``meta`` in one round trip. When the
snapshot is missing, :class:`LeaderboardReader` answers from the mart and says so; it
counts hits and misses.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import hiredis
import psycopg
import redis

from vedfin.db import connect, describe_target
from vedfin.environment import Environment, environment
from vedfin.errors import ConnectionFailed, VedfinError

DEFAULT_PREFIX: str = Environment.model_fields["leaderboard_prefix"].default
BATCH = 5_000
#: keys expire in non-prod targets so a laptop's Redis does not keep old snapshots forever
NON_PROD_TTL_SECONDS = 7 * 24 * 3600
#: in prod the keys never expire; a snapshot older than this is reported as stale
DEFAULT_MAX_AGE_SECONDS: int = Environment.model_fields["leaderboard_max_age_seconds"].default
SNAPSHOT_PARTS = ("all_time", "weekly", "profiles")


@dataclass(frozen=True)
class LeaderboardSettings:
    """Where the snapshot lives and how it is kept, per target (dev/test/staging/prod)."""

    redis_url: str
    prefix: str = DEFAULT_PREFIX
    target: str = "dev"
    max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS

    @property
    def ttl_seconds(self) -> int | None:
        return None if self.target == "prod" else NON_PROD_TTL_SECONDS

    def key(self, part: str) -> str:
        return f"{self.prefix}{part}"

    def is_stale(self, meta: dict[str, str]) -> bool:
        """Is a snapshot with this ``meta`` older than ``max_age_seconds`` (or undated)?"""
        if not meta.get("snapshot_at"):
            return True
        age = datetime.now(UTC) - datetime.fromisoformat(meta["snapshot_at"])
        return age.total_seconds() > self.max_age_seconds

    @classmethod
    def from_env(
        cls, redis_url: str | None = None, target: str | None = None, prefix: str | None = None
    ) -> LeaderboardSettings:
        """``REDIS_URL``, ``LEADERBOARD_PREFIX``, ``LEADERBOARD_MAX_AGE_SECONDS``, ``DBT_TARGET``,
        each overridden by the argument of the same meaning when given.

        In the ``test`` target the snapshot goes to a separate Redis database
        (``TEST_REDIS_DB``, default 1) so tests never touch a developer's snapshot.
        """
        env = environment()
        url = redis_url or env.redis_url
        if not url:
            raise VedfinError('REDIS_URL is not set: run `vedfin up` or `eval "$(vedfin env)"`')
        tgt = target or env.dbt_target
        if tgt == "test":
            url = with_redis_db(url, env.test_redis_db)
        return cls(
            redis_url=url,
            prefix=prefix or env.leaderboard_prefix,
            target=tgt,
            max_age_seconds=env.leaderboard_max_age_seconds,
        )


def with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


def describe_redis(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or '?'}:{parts.port or 6379}{parts.path or '/0'}"


def client(settings: LeaderboardSettings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=3, socket_timeout=10, decode_responses=False
    )


def _redis_error(settings: LeaderboardSettings, exc: Exception) -> ConnectionFailed:
    return ConnectionFailed(
        f"cannot reach Redis at {describe_redis(settings.redis_url)} ({exc}); "
        "check REDIS_URL or run `vedfin up`"
    )


@contextlib.contextmanager
def _mart_connection(database_url: str) -> Iterator[psycopg.Connection]:
    """A connection (vedfin.db.connect: one-line error when unreachable) on which a missing
    mart is one clear line too."""
    try:
        with connect(database_url) as conn:
            yield conn
    except psycopg.errors.UndefinedTable:
        raise VedfinError(
            f"marts.fct_leaderboard does not exist in {describe_target(database_url)}: build "
            "the marts first (`vedfin build`, or the full_pipeline job)"
        ) from None


# --------------------------------------------------------------------------- publish


@dataclass
class PublishResult:
    rows: int
    weekly_rows: int
    version: int
    seconds: float
    snapshot_at: str
    as_of_date: str | None
    kind: str = "full"
    """``full``: a new snapshot swapped in; ``delta``: only the changed entries written."""
    changed_rows: int | None = None
    """Users whose entry changed since the previous snapshot (None without a record)."""
    snapshot_id: str = ""
    record_seconds: float | None = None
    """Of ``seconds``, the time until the record was compared with the mart and updated
    (connecting included), before the snapshot or the delta went to Redis (None without
    a record)."""

    def describe(self) -> str:
        """One line for logs: what was published and how."""
        how = (
            f"a delta of {self.changed_rows:,} changed entries"
            if self.kind == "delta"
            else "a whole snapshot"
        )
        return (
            f"published {self.rows:,} users ({self.weekly_rows:,} weekly) as version "
            f"{self.version} in {self.seconds * 1000:.0f} ms, {how}"
        )


SnapshotRow = tuple[int, int, int, str]
"""What a snapshot holds of one user: user_id, total points, points this week, profile JSON."""

PUBLISHED = "vedfin_meta.leaderboard_published"
PUBLISHED_ROWS = "vedfin_meta.leaderboard_published_rows"
#: a delta larger than this share of the snapshot is sent as a new snapshot instead
DELTA_MAX_SHARE = 0.5

# The entries of marts.fct_leaderboard that differ from what the last snapshot holds
# (vedfin_meta.leaderboard_published_rows): new, changed (points, name or rank) or gone.
# Columns are compared, and a profile's JSON built for the changed entries only; the
# flags say which of the three parts each entry changes (most changes on a real
# leaderboard are ranks alone: one user's gain moves every rank it passes).
_DELTA_SQL = f"""
create temporary table leaderboard_delta on commit drop as
select
    user_id,
    mart.user_id is null as removed,
    mart.total_points,
    mart.points_7d,
    mart.display_name,
    mart.rank,
    jsonb_build_object('name', mart.display_name, 'rank', mart.rank)::text as profile,
    mart.total_points is distinct from sent.total_points as points_changed,
    mart.points_7d is distinct from sent.points_7d as week_changed,
    (mart.display_name, mart.rank) is distinct from (sent.display_name, sent.rank)
        as profile_changed
from marts.fct_leaderboard as mart
full join (
    select user_id, total_points, points_7d, display_name, rank
    from {PUBLISHED_ROWS}
    where target = %(target)s
) as sent using (user_id)
where (mart.total_points, mart.points_7d, mart.display_name, mart.rank)
    is distinct from (sent.total_points, sent.points_7d, sent.display_name, sent.rank)
"""


def _profile(name: str, rank: int) -> str:
    return json.dumps({"name": name, "rank": rank}, ensure_ascii=False)


def _entries(rows: Sequence[tuple[int, str, int, int, int]]) -> list[SnapshotRow]:
    return [(u, total, week, _profile(name, rank)) for u, name, total, week, rank in rows]


def _streamed(
    conn: psycopg.Connection, query: str, params: dict[str, str]
) -> Iterator[list[SnapshotRow]]:
    """``query``'s rows in batches through a server-side cursor."""
    with conn.cursor(name="leaderboard_publish") as cur:
        cur.itersize = BATCH
        cur.execute(query, params)
        while True:
            batch = cur.fetchmany(BATCH)
            if not batch:
                return
            yield batch  # type: ignore[misc]


def _mart_as_of(conn: psycopg.Connection) -> str | None:
    """The as-of date the marts were built for (from ``fct_daily_active_users``)."""
    row = conn.execute("select max(activity_date) from marts.fct_daily_active_users").fetchone()
    return None if row is None or row[0] is None else row[0].isoformat()


def published_target(settings: LeaderboardSettings) -> str:
    """The record's name for a snapshot: Redis server, database and key prefix."""
    return f"{describe_redis(settings.redis_url)} {settings.prefix}"


def _has_record(conn: psycopg.Connection) -> bool:
    """Can this connection keep the record of what each snapshot holds (migration 005
    applied, the role may write it and create temporary tables, not a standby)?"""
    row = conn.execute(
        "select case when to_regnamespace('vedfin_meta') is null then false "
        "else has_schema_privilege('vedfin_meta', 'usage') end"
    ).fetchone()
    if not row or not row[0]:
        return False
    row = conn.execute(
        "select to_regclass(%s) is not null and to_regclass(%s) is not null",
        (PUBLISHED, PUBLISHED_ROWS),
    ).fetchone()
    if not row or not row[0]:
        return False
    row = conn.execute(
        "select has_table_privilege(%s, 'select, insert, update, delete') "
        "and has_table_privilege(%s, 'select, insert, update, delete') "
        "and has_database_privilege(current_database(), 'temporary') "
        "and not pg_is_in_recovery()",
        (PUBLISHED, PUBLISHED_ROWS),
    ).fetchone()
    return bool(row and row[0])


def publish(
    database_url: str,
    settings: LeaderboardSettings,
    *,
    run_id: str = "",
    source_storage_id: int = 0,
    source_activity: str = "",
    rows: Sequence[tuple[int, str, int, int, int]] | None = None,
    full: bool = False,
) -> PublishResult:
    """Publish ``marts.fct_leaderboard`` (or ``rows``) to Redis, atomically for readers.

    vedfin_meta keeps what the current snapshot holds. When Redis still has that snapshot
    (same snapshot id and version in ``meta``) and at most ``DELTA_MAX_SHARE`` of its
    entries changed, only those are written, in one ``MULTI``/``EXEC`` (a delta);
    otherwise, or with ``full``, a whole new snapshot is built under temporary keys and
    swapped in. Publishes to one target take turns (an advisory lock). The record is
    committed after Redis took the change: if that fails in between, the versions
    differ and the next publish sends a whole snapshot.
    """
    started = time.perf_counter()
    r = client(settings)
    info: dict[str, object] = {
        "run_id": run_id,
        "source_storage_id": source_storage_id,
        "source_activity": source_activity,
    }
    try:
        r.ping()
        if rows is not None:
            return _snapshot(r, settings, [_entries(rows)], None, info, started)
        with _mart_connection(database_url) as conn:
            if not _has_record(conn):
                query = (
                    "select user_id, total_points, points_7d, "
                    "jsonb_build_object('name', display_name, 'rank', rank)::text "
                    "from marts.fct_leaderboard"
                )
                return _snapshot(
                    r, settings, _streamed(conn, query, {}), _mart_as_of(conn), info, started
                )
            with conn.transaction():
                return _publish_recorded(conn, r, settings, info, started, full=full)
    except redis.RedisError as exc:
        raise _redis_error(settings, exc) from exc


def _publish_recorded(
    conn: psycopg.Connection,
    r: redis.Redis,
    settings: LeaderboardSettings,
    info: dict[str, object],
    started: float,
    *,
    full: bool,
) -> PublishResult:
    """Publish with the record of the last snapshot (inside the caller's transaction)."""
    target = {"target": published_target(settings)}
    conn.execute("select pg_advisory_xact_lock(hashtextextended(%(target)s, 0))", target)
    header = conn.execute(
        f"select snapshot_id, version from {PUBLISHED} where target = %(target)s", target
    ).fetchone()
    whole = full or header is None
    if whole:  # a whole snapshot whatever changed: the record becomes the mart
        changed = _replace_record(conn, target)
    else:
        conn.execute(_DELTA_SQL, target)
        conn.execute(
            f"delete from {PUBLISHED_ROWS} as sent using leaderboard_delta as d "
            "where sent.target = %(target)s and sent.user_id = d.user_id",
            target,
        )
        conn.execute(
            f"insert into {PUBLISHED_ROWS} "
            "(target, user_id, total_points, points_7d, display_name, rank) "
            "select %(target)s, user_id, total_points, points_7d, display_name, rank "
            "from leaderboard_delta where not removed order by user_id",
            target,
        )
        row = conn.execute("select count(*) from leaderboard_delta").fetchone()
        changed = int(row[0]) if row else 0
    counts = conn.execute(
        f"select count(*), count(*) filter (where points_7d > 0) from {PUBLISHED_ROWS} "
        "where target = %(target)s",
        target,
    ).fetchone()
    assert counts is not None
    n_rows, n_weekly = (int(c) for c in counts)
    record_seconds = time.perf_counter() - started
    as_of = _mart_as_of(conn)
    result: PublishResult | None = None
    if header is not None and not whole and changed <= DELTA_MAX_SHARE * max(n_rows, 1):
        result = _delta(conn, r, settings, (str(header[0]), int(header[1])), as_of, info,
                        started, n_rows=n_rows, n_weekly=n_weekly, changed=changed)  # fmt: skip
    if result is None:
        query = (
            "select user_id, total_points, points_7d, "
            "jsonb_build_object('name', display_name, 'rank', rank)::text "
            f"from {PUBLISHED_ROWS} where target = %(target)s"
        )
        result = _snapshot(r, settings, _streamed(conn, query, target), as_of, info, started)
        result.changed_rows = changed
    result.record_seconds = record_seconds
    conn.execute(
        f"insert into {PUBLISHED} (target, snapshot_id, version, published_at) "
        "values (%(target)s, %(snapshot_id)s, %(version)s, now()) on conflict (target) do "
        "update set snapshot_id = excluded.snapshot_id, version = excluded.version, "
        "published_at = excluded.published_at",
        target | {"snapshot_id": result.snapshot_id, "version": result.version},
    )
    return result


def _replace_record(conn: psycopg.Connection, target: dict[str, str]) -> int:
    """The record of ``target`` made equal to the mart's entries, for a whole snapshot;
    returns how many entries differ from what it held (every one when it held none).

    Only those are written: the entries gone are deleted, the changed ones updated, the
    new ones inserted (in user_id order, each key to the end of the record's index). An
    entry that did not change keeps its row: deleting and inserting every row made each
    insert check its key against the row just deleted, and left the whole record dead for
    vacuum. No difference table, no profile JSON here: the snapshot takes its entries from
    the record as it streams them."""
    held = conn.execute(
        f"select exists (select 1 from {PUBLISHED_ROWS} where target = %(target)s)", target
    ).fetchone()
    changed = 0
    if held and held[0]:
        changed += conn.execute(
            f"""delete from {PUBLISHED_ROWS} as sent
                where sent.target = %(target)s and not exists (
                    select 1 from marts.fct_leaderboard as mart where mart.user_id = sent.user_id
                )""",
            target,
        ).rowcount
        changed += conn.execute(
            f"""update {PUBLISHED_ROWS} as sent
                set total_points = mart.total_points, points_7d = mart.points_7d,
                    display_name = mart.display_name, rank = mart.rank
                from marts.fct_leaderboard as mart
                where sent.target = %(target)s and sent.user_id = mart.user_id
                    and (mart.total_points, mart.points_7d, mart.display_name, mart.rank)
                    is distinct from
                    (sent.total_points, sent.points_7d, sent.display_name, sent.rank)""",
            target,
        ).rowcount
        new_only = (
            f"where not exists (select 1 from {PUBLISHED_ROWS} as sent "
            "where sent.target = %(target)s and sent.user_id = mart.user_id) "
        )
    else:
        new_only = ""
    changed += conn.execute(
        f"insert into {PUBLISHED_ROWS} "
        "(target, user_id, total_points, points_7d, display_name, rank) "
        "select %(target)s, user_id, total_points, points_7d, display_name, rank "
        f"from marts.fct_leaderboard as mart {new_only}order by user_id",
        target,
    ).rowcount
    return changed


def _meta(
    version: int, snapshot_id: str, kind: str, n_rows: int, n_weekly: int, changed: int | None,
    as_of: str | None, info: dict[str, object], started: float,
) -> tuple[dict[str, object], str]:  # fmt: skip
    snapshot_at = datetime.now(UTC).isoformat(timespec="seconds")
    meta = {
        "snapshot_at": snapshot_at,
        "as_of_date": as_of or "",
        "source_rows": n_rows,
        "weekly_rows": n_weekly,
        "version": version,
        "snapshot_id": snapshot_id,
        "kind": kind,
        "changed_rows": "" if changed is None else changed,
        **info,
        "publish_ms": round((time.perf_counter() - started) * 1000),
    }
    return meta, snapshot_at


def _snapshot(
    r: redis.Redis,
    settings: LeaderboardSettings,
    batches: Iterable[list[SnapshotRow]],
    as_of: str | None,
    info: dict[str, object],
    started: float,
) -> PublishResult:
    """A whole new snapshot under temporary keys, swapped in with one MULTI/EXEC."""
    token = uuid.uuid4().hex
    tmp = {part: settings.key(f"tmp:{token}:{part}") for part in SNAPSHOT_PARTS}
    trash = settings.key(f"trash:{token}")
    n_rows = n_weekly = 0
    try:
        for batch in batches:
            if not batch:
                continue
            all_time: list[Arg] = ["ZADD", tmp["all_time"]]
            weekly: list[Arg] = ["ZADD", tmp["weekly"]]
            profiles: list[Arg] = ["HSET", tmp["profiles"]]
            for u, total, week, profile in batch:
                all_time += (total, u)
                if week > 0:
                    weekly += (week, u)
                profiles += (u, profile)
            commands: list[Sequence[Arg]] = [all_time, profiles]
            if len(weekly) > 2:
                commands.append(weekly)
            # temporary keys expire on their own if this process dies before the swap
            commands += [("EXPIRE", key, 3600) for key in tmp.values()]
            _send(r, commands)
            n_rows += len(batch)
            n_weekly += (len(weekly) - 2) // 2
        version = int(r.incr(settings.key("version")))
        meta, snapshot_at = _meta(version, token, "full", n_rows, n_weekly, None, as_of, info,
                                  started)  # fmt: skip
        present = {"all_time": n_rows > 0, "weekly": n_weekly > 0, "profiles": n_rows > 0}
        _swap(r, settings, tmp, trash, meta, present)
    except BaseException:
        _cleanup(r, list(tmp.values()))
        raise
    return PublishResult(
        rows=n_rows,
        weekly_rows=n_weekly,
        version=version,
        seconds=time.perf_counter() - started,
        snapshot_at=snapshot_at,
        as_of_date=as_of,
        snapshot_id=token,
    )


def _delta(
    conn: psycopg.Connection,
    r: redis.Redis,
    settings: LeaderboardSettings,
    expected: tuple[str, int],
    as_of: str | None,
    info: dict[str, object],
    started: float,
    *,
    n_rows: int,
    n_weekly: int,
    changed: int,
) -> PublishResult | None:
    """Write only the changed entries (``leaderboard_delta``) into the live keys, with the
    new meta, in one MULTI/EXEC; None when Redis does not hold the recorded snapshot
    (restarted, flushed, expired, or replaced by another publisher): then a whole one."""
    live = {part: settings.key(part) for part in SNAPSHOT_PARTS}
    meta_key = settings.key("meta")
    rows = conn.execute(
        "select user_id, removed, total_points, points_7d, profile, points_changed, "
        "week_changed, profile_changed from leaderboard_delta"
    ).fetchall()
    gone = [str(u) for u, removed, *_ in rows if removed]
    kept = [(str(u), *rest) for u, removed, *rest in rows if not removed]
    with r.pipeline(transaction=True) as pipe:
        try:
            pipe.watch(meta_key, *live.values())
            snapshot_id, version_text = pipe.hmget(meta_key, ["snapshot_id", "version"])
            if (snapshot_id, version_text) != (expected[0].encode(), str(expected[1]).encode()):
                return None
            version = int(pipe.incr(settings.key("version")))
            meta, snapshot_at = _meta(version, expected[0], "delta", n_rows, n_weekly, changed,
                                      as_of, info, started)  # fmt: skip
            pipe.multi()
            for i in range(0, len(gone), BATCH):
                part = gone[i : i + BATCH]
                pipe.zrem(live["all_time"], *part)
                pipe.zrem(live["weekly"], *part)
                pipe.hdel(live["profiles"], *part)
            # only the parts an entry changes: a rank alone is one profile field
            for i in range(0, len(kept), BATCH):
                part2 = kept[i : i + BATCH]
                scores = {u: total for u, total, _, _, changed, _, _ in part2 if changed}
                if scores:
                    pipe.zadd(live["all_time"], scores)
                week_moved = [(u, week) for u, _, week, _, _, changed, _ in part2 if changed]
                weekly = {u: week for u, week in week_moved if week > 0}
                if weekly:
                    pipe.zadd(live["weekly"], weekly)
                no_week = [u for u, week in week_moved if week <= 0]
                if no_week:
                    pipe.zrem(live["weekly"], *no_week)
                profiles = {u: p for u, _, _, p, _, _, changed in part2 if changed}
                if profiles:
                    pipe.hset(live["profiles"], mapping=profiles)
            pipe.unlink(meta_key)
            pipe.hset(meta_key, mapping=meta)  # type: ignore[arg-type]
            if settings.ttl_seconds:
                for key in (*live.values(), meta_key):
                    pipe.expire(key, settings.ttl_seconds)
            pipe.execute()
        except redis.WatchError:
            return None
    return PublishResult(
        rows=n_rows,
        weekly_rows=n_weekly,
        version=version,
        seconds=time.perf_counter() - started,
        snapshot_at=snapshot_at,
        as_of_date=as_of,
        kind="delta",
        changed_rows=changed,
        snapshot_id=expected[0],
    )


Arg = str | int | float | bytes
"""An argument of a Redis command as hiredis packs it."""


def _send(r: redis.Redis, commands: Sequence[Sequence[Arg]]) -> None:
    """Send commands in one round trip, packed by hiredis in C, and read every reply.

    The same as a non-transactional pipeline, without redis-py encoding each argument in
    Python: at 182,000 entries that encoding took half of a whole publish. After any error
    the connection is closed, never reused: it may hold replies nobody read."""
    conn = r.connection_pool.get_connection()
    try:
        # hiredis's stub types the argument as a 1-tuple; it takes any number of them
        conn.send_packed_command([hiredis.pack_command(tuple(c)) for c in commands])  # type: ignore[arg-type]
        errors = []
        for _ in commands:
            try:
                conn.read_response()
            except redis.ResponseError as exc:  # read the other replies, then raise
                errors.append(exc)
        if errors:
            raise errors[0]
    except BaseException:
        conn.disconnect()
        raise
    finally:
        r.connection_pool.release(conn)


def _swap(
    r: redis.Redis,
    settings: LeaderboardSettings,
    tmp: dict[str, str],
    trash: str,
    meta: dict[str, object],
    present: dict[str, bool],
) -> None:
    """One MULTI/EXEC: live -> trash, tmp -> live, new meta, UNLINK trash.

    The live keys are WATCHed while deciding which exist, so a concurrent publish that
    swaps in between makes EXEC fail and this one retries on the new state.
    """
    live = {part: settings.key(part) for part in SNAPSHOT_PARTS}
    for _attempt in range(20):
        with r.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(*live.values())
                existing = {part: bool(pipe.exists(key)) for part, key in live.items()}
                pipe.multi()
                for part in SNAPSHOT_PARTS:
                    if existing[part]:
                        pipe.rename(live[part], f"{trash}:{part}")
                    if present[part]:
                        pipe.rename(tmp[part], live[part])
                        pipe.persist(live[part])
                        if settings.ttl_seconds:
                            pipe.expire(live[part], settings.ttl_seconds)
                pipe.unlink(settings.key("meta"))
                pipe.hset(settings.key("meta"), mapping=meta)  # type: ignore[arg-type]
                if settings.ttl_seconds:
                    pipe.expire(settings.key("meta"), settings.ttl_seconds)
                pipe.unlink(*(f"{trash}:{part}" for part in SNAPSHOT_PARTS))
                pipe.execute()
                return
            except redis.WatchError:
                continue
    raise redis.RedisError("the snapshot keys kept changing during the swap (20 attempts)")


def _cleanup(r: redis.Redis, keys: list[str]) -> None:
    with contextlib.suppress(redis.RedisError):  # else they expire on their own
        r.unlink(*keys)


# --------------------------------------------------------------------------- read

# KEYS: all_time or weekly zset, profiles hash, meta hash. ARGV: n.
# Returns nil when there is no snapshot (no meta); else {meta, {member, score, ...}, profiles}.
_READ_TOP = """
if redis.call('EXISTS', KEYS[3]) == 0 then return false end
local meta = redis.call('HGETALL', KEYS[3])
local n = tonumber(ARGV[1])
local entries = {}
if n > 0 then
  local last = redis.call('ZREVRANGE', KEYS[1], n - 1, n - 1, 'WITHSCORES')
  if #last == 0 then
    entries = redis.call('ZREVRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  else
    entries = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', last[2], 'WITHSCORES')
  end
end
local members = {}
for i = 1, #entries, 2 do members[#members + 1] = entries[i] end
local profiles = {}
if #members > 0 then profiles = redis.call('HMGET', KEYS[2], unpack(members)) end
return {meta, entries, profiles}
"""


@dataclass(frozen=True, slots=True)
class Entry:
    rank: int
    user_id: int
    display_name: str
    points: int


@dataclass(frozen=True)
class TopResult:
    entries: list[Entry]
    source: str  # "redis" or "postgres"
    weekly: bool
    meta: dict[str, str] = field(default_factory=dict)
    note: str = ""

    @property
    def hit(self) -> bool:
        return self.source == "redis"


@dataclass
class Stats:
    hits: int = 0
    misses: int = 0
    errors: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


def _ranked(pairs: list[tuple[int, int, str, int | None]], n: int) -> list[Entry]:
    """(user_id, points, name, stored rank) -> entries ordered like the mart, with RANK()."""
    pairs.sort(key=lambda p: (-p[1], p[0]))
    out: list[Entry] = []
    rank = 0
    previous: int | None = None
    for i, (user_id, points, name, stored) in enumerate(pairs[:n]):
        if points != previous:
            rank, previous = i + 1, points
        out.append(Entry(stored if stored is not None else rank, user_id, name, points))
    return out


class LeaderboardReader:
    """What the app backend imports: top ``n`` with masked names, Redis first, SQL fallback.

    ``stats`` counts hits (answered from the snapshot) and misses (snapshot missing or
    Redis unreachable: answered from ``marts.fct_leaderboard``).
    """

    def __init__(self, settings: LeaderboardSettings, database_url: str | None = None) -> None:
        self.settings = settings
        self.database_url = database_url
        self.stats = Stats()
        self._redis = client(settings)
        self._script = self._redis.register_script(_READ_TOP)
        self._lock = threading.Lock()

    def snapshot(self, n: int = 10, *, weekly: bool = False) -> TopResult | None:
        """The snapshot's answer, or None when there is no snapshot. Raises on Redis errors."""
        board = self.settings.key("weekly" if weekly else "all_time")
        raw = self._script(
            keys=[board, self.settings.key("profiles"), self.settings.key("meta")], args=[n]
        )
        if raw is None:
            return None
        meta_flat, flat, profiles = raw
        meta = {
            meta_flat[i].decode(): meta_flat[i + 1].decode() for i in range(0, len(meta_flat), 2)
        }
        pairs: list[tuple[int, int, str, int | None]] = []
        for i in range(0, len(flat), 2):
            profile = profiles[i // 2]
            info = json.loads(profile) if profile else {"name": "", "rank": None}
            pairs.append(
                (
                    int(flat[i]),
                    int(float(flat[i + 1])),
                    info["name"],
                    None if weekly else info["rank"],
                )
            )
        return TopResult(_ranked(pairs, n), "redis", weekly, meta)

    def from_sql(self, n: int = 10, *, weekly: bool = False) -> list[Entry]:
        if not self.database_url:
            raise VedfinError("no DATABASE_URL to answer from marts.fct_leaderboard")
        query = (
            "select user_id, display_name, points_7d, "
            "rank() over (order by points_7d desc)::int from marts.fct_leaderboard "
            "where points_7d > 0 order by 3 desc, 1 limit %s"
            if weekly
            else "select user_id, display_name, total_points, rank from marts.fct_leaderboard "
            "order by rank, user_id limit %s"
        )
        with _mart_connection(self.database_url) as conn:
            rows = conn.execute(query, (n,)).fetchall()
        return [Entry(int(r[3]), int(r[0]), r[1], int(r[2])) for r in rows]

    def top(self, n: int = 10, *, weekly: bool = False) -> TopResult:
        """Top ``n`` (ties at the boundary cut like ``order by rank, user_id limit n``)."""
        if n < 0:
            raise VedfinError("n must be at least 0")
        note = "snapshot missing in Redis"
        try:
            result = self.snapshot(n, weekly=weekly)
        except redis.RedisError as exc:
            with self._lock:
                self.stats.errors += 1
            result, note = None, f"Redis unreachable ({exc.__class__.__name__})"
        if result is not None:
            with self._lock:
                self.stats.hits += 1
            return result
        with self._lock:
            self.stats.misses += 1
        entries = self.from_sql(n, weekly=weekly)
        return TopResult(entries, "postgres", weekly, {}, f"{note}: answered from the mart")


def snapshot_meta(settings: LeaderboardSettings) -> dict[str, str]:
    try:
        raw = client(settings).hgetall(settings.key("meta"))
    except redis.RedisError as exc:
        raise _redis_error(settings, exc) from exc
    return {_text(k): _text(v) for k, v in raw.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
