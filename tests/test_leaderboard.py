"""The Redis leaderboard against real Redis and PostgreSQL: publish, read, swap, faults."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator

import psycopg
import pytest
import redis
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.conftest import run_cli
from tests.redis_server import RedisServer
from vedfin.errors import ConnectionFailed
from vedfin.leaderboard import (
    Entry,
    LeaderboardReader,
    LeaderboardSettings,
    _send,
    publish,
    published_target,
    snapshot_meta,
)

Row = tuple[int, str, int, int, int]


def dataset(n: int, seed: int) -> list[Row]:
    """n users with many ties in total_points and points_7d, ranked like the mart."""
    rng = random.Random(seed)
    raw = [
        (u, f"Nguyễn V. {chr(65 + u % 26)}.", rng.randint(1, 40) * 10, rng.choice([0, 0, 10, 20]))
        for u in range(1, n + 1)
    ]
    totals = sorted((t for _, _, t, _ in raw), reverse=True)
    first_index = {}
    for i, t in enumerate(totals):
        first_index.setdefault(t, i + 1)
    return [(u, name, t, w, first_index[t]) for u, name, t, w in raw]


def write_mart(url: str, rows: list[Row]) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("create schema if not exists marts")
        conn.execute("drop table if exists marts.fct_leaderboard")
        conn.execute(
            "create table marts.fct_leaderboard (user_id bigint primary key, display_name text, "
            "total_points bigint, points_7d bigint, rank bigint)"
        )
        conn.execute("drop table if exists marts.fct_daily_active_users")
        conn.execute("create table marts.fct_daily_active_users (activity_date date)")
        conn.execute("insert into marts.fct_daily_active_users values ('2026-11-20')")
        with conn.cursor().copy(
            "copy marts.fct_leaderboard (user_id, display_name, total_points, points_7d, rank) "
            "from stdin"
        ) as copy:
            for row in rows:
                copy.write_row(row)


def expected_top(rows: list[Row], n: int, weekly: bool = False) -> list[Entry]:
    if weekly:
        ranked = sorted((r for r in rows if r[3] > 0), key=lambda r: (-r[3], r[0]))
        out, previous, rank = [], None, 0
        for i, r in enumerate(ranked):
            if r[3] != previous:
                rank, previous = i + 1, r[3]
            out.append(Entry(rank, r[0], r[1], r[3]))
        return out[:n]
    ranked = sorted(rows, key=lambda r: (r[4], r[0]))
    return [Entry(r[4], r[0], r[1], r[2]) for r in ranked[:n]]


@pytest.fixture()
def server() -> Iterator[RedisServer]:
    srv = RedisServer().start()
    yield srv
    srv.stop()


@pytest.fixture()
def lb(server: RedisServer) -> LeaderboardSettings:
    return LeaderboardSettings(server.url, prefix="lbtest:", target="dev")


def test_publish_scores_equal_the_mart(migrated_db: str, lb: LeaderboardSettings) -> None:
    rows = dataset(2_000, seed=1)
    write_mart(migrated_db, rows)
    result = publish(migrated_db, lb, run_id="t1")
    assert result.rows == 2_000 and result.weekly_rows == sum(1 for r in rows if r[3] > 0)
    r = redis.Redis.from_url(lb.redis_url, decode_responses=True)
    all_time = dict(r.zrange("lbtest:all_time", 0, -1, withscores=True))
    assert {int(k): int(v) for k, v in all_time.items()} == {u: t for u, _, t, _, _ in rows}
    weekly = dict(r.zrange("lbtest:weekly", 0, -1, withscores=True))
    assert {int(k): int(v) for k, v in weekly.items()} == {u: w for u, _, _, w, _ in rows if w > 0}
    profiles = {int(k): json.loads(v) for k, v in r.hgetall("lbtest:profiles").items()}
    assert profiles == {u: {"name": name, "rank": rank} for u, name, _, _, rank in rows}
    meta = snapshot_meta(lb)
    assert meta["source_rows"] == "2000" and meta["run_id"] == "t1"
    assert meta["as_of_date"] == "2026-11-20"
    # non-prod keys expire; the temporary and trash keys are gone
    assert 0 < r.ttl("lbtest:all_time") <= 7 * 24 * 3600
    assert not list(r.scan_iter("lbtest:tmp:*")) and not list(r.scan_iter("lbtest:trash:*"))

    reader = LeaderboardReader(lb, migrated_db)
    for n in (1, 7, 10, 100, 2_000, 5_000):
        for weekly in (False, True):
            got = reader.top(n, weekly=weekly)
            assert got.source == "redis"
            assert got.entries == expected_top(rows, n, weekly), (n, weekly)
            assert got.entries == reader.from_sql(n, weekly=weekly), (n, weekly)
    assert reader.stats.hits == 12 and reader.stats.misses == 0


def snapshot_in_redis(lb: LeaderboardSettings) -> tuple[dict, dict, dict]:
    """(all_time, weekly, profiles) as Redis holds them now."""
    r = redis.Redis.from_url(lb.redis_url, decode_responses=True)
    scores = [
        {int(k): int(v) for k, v in r.zrange(lb.key(part), 0, -1, withscores=True)}
        for part in ("all_time", "weekly")
    ]
    profiles = {int(k): json.loads(v) for k, v in r.hgetall(lb.key("profiles")).items()}
    return scores[0], scores[1], profiles


def as_snapshot(rows: list[Row]) -> tuple[dict, dict, dict]:
    return (
        {u: t for u, _, t, _, _ in rows},
        {u: w for u, _, _, w, _ in rows if w > 0},
        {u: {"name": name, "rank": rank} for u, name, _, _, rank in rows},
    )


def reranked(rows: list[tuple[int, str, int, int]]) -> list[Row]:
    """(user_id, name, total, week) -> rows with RANK() over total descending."""
    totals = sorted((t for _, _, t, _ in rows), reverse=True)
    first: dict[int, int] = {}
    for i, t in enumerate(totals):
        first.setdefault(t, i + 1)
    return [(u, name, t, w, first[t]) for u, name, t, w in rows]


def test_a_small_change_is_published_as_a_delta(migrated_db: str, lb: LeaderboardSettings) -> None:
    """After a few users earn points, one leaves and one arrives, the next publish writes
    only the entries that changed (points, weekly points, or a rank moved by them), and
    Redis then holds exactly the new mart."""
    before = dataset(2_000, seed=30)
    write_mart(migrated_db, before)
    first = publish(migrated_db, lb)
    assert first.kind == "full" and first.changed_rows == 2_000  # the record was empty
    base = [(u, name, t, w) for u, name, t, w, _ in before]
    base[0] = (base[0][0], base[0][1], base[0][2] + 5, base[0][3] + 5)  # new points
    base[1] = (base[1][0], "Trần T. B.", base[1][2], 0)  # renamed, no points this week
    last = min(range(len(base)), key=lambda i: base[i][2])  # one of the lowest totals
    base = base[:last] + base[last + 1 :] + [(9_999, "Lê V. C.", 10, 10)]  # gone, new
    after = reranked(base)
    write_mart(migrated_db, after)
    old = {r[0]: (r[2], r[3], r[1], r[4]) for r in before}
    new = {r[0]: (r[2], r[3], r[1], r[4]) for r in after}
    differing = {u for u in old.keys() | new.keys() if old.get(u) != new.get(u)}
    assert 3 < len(differing) < 500  # ranks moved for some, not for most

    second = publish(migrated_db, lb, run_id="delta")
    assert second.kind == "delta" and second.changed_rows == len(differing)
    assert second.version == first.version + 1 and second.rows == 2_000
    assert snapshot_in_redis(lb) == as_snapshot(after)
    meta = snapshot_meta(lb)
    assert (
        meta["kind"] == "delta"
        and meta["run_id"] == "delta"
        and meta["version"] == str(second.version)
    )
    assert meta["source_rows"] == "2000" and meta["weekly_rows"] == str(
        sum(1 for r in after if r[3] > 0)
    )
    r = redis.Redis.from_url(lb.redis_url)
    assert 0 < r.ttl(lb.key("all_time")) <= 7 * 24 * 3600 and r.ttl(lb.key("meta")) > 0
    reader = LeaderboardReader(lb, migrated_db)
    for n in (1, 10, 2_000):
        assert reader.top(n).entries == reader.from_sql(n) == expected_top(after, n)
    # nothing changed: a delta of no entries, a new version
    third = publish(migrated_db, lb)
    assert (third.kind, third.changed_rows, third.version) == ("delta", 0, second.version + 1)
    # full=True sends a whole snapshot whatever changed
    assert publish(migrated_db, lb, full=True).kind == "full"
    assert snapshot_in_redis(lb) == as_snapshot(after)


def test_a_whole_snapshot_replaces_the_record_and_counts_what_changed(
    migrated_db: str, lb: LeaderboardSettings
) -> None:
    """full=True over a record: the entries that differ (changed, gone, new) are counted
    and only they are written, the record becomes the mart, Redis holds it whole; the
    record's tables are unlogged (a cache of Redis)."""
    before = dataset(1_000, seed=36)
    write_mart(migrated_db, before)
    first = publish(migrated_db, lb, full=True)
    assert (first.kind, first.changed_rows, first.rows) == ("full", 1_000, 1_000)
    record_sql = (
        "select user_id, xmin::text from vedfin_meta.leaderboard_published_rows where target = %s"
    )
    with psycopg.connect(migrated_db) as conn:
        written = dict(conn.execute(record_sql, (published_target(lb),)).fetchall())
    # every 100th user gains points, users 1-7 leave, 1001-1009 arrive
    kept = [(u, n, t + 5 if u % 100 == 0 else t, w) for u, n, t, w, _ in before if u > 7]
    arrived = [(u, f"Trần T. {chr(65 + u % 26)}.", 30, 10) for u in range(1_001, 1_010)]
    after = reranked(kept + arrived)
    write_mart(migrated_db, after)
    old = {r[0]: r[1:] for r in before}
    differing = [r for r in after if old.get(r[0]) != r[1:]]
    assert 10 <= len(differing) < 1_000
    whole = publish(migrated_db, lb, full=True)
    assert (whole.kind, whole.changed_rows, whole.rows) == ("full", len(differing) + 7, 1_002)
    assert snapshot_in_redis(lb) == as_snapshot(after)
    with psycopg.connect(migrated_db) as conn:
        rewritten = dict(conn.execute(record_sql, (published_target(lb),)).fetchall())
        record = conn.execute(
            "select user_id, display_name, total_points, points_7d, rank "
            "from vedfin_meta.leaderboard_published_rows where target = %s order by user_id",
            (published_target(lb),),
        ).fetchall()
        persistence = conn.execute(
            "select relname, relpersistence from pg_class where oid in "
            "('vedfin_meta.leaderboard_published'::regclass, "
            "'vedfin_meta.leaderboard_published_rows'::regclass)"
        ).fetchall()
    # the entries that did not change kept their rows (same row version), the others not
    untouched = {u for u in rewritten if u in written and rewritten[u] == written[u]}
    assert untouched == {r[0] for r in after} - {r[0] for r in differing}
    assert record == sorted(after)
    assert sorted(persistence) == [
        ("leaderboard_published", "u"),
        ("leaderboard_published_rows", "u"),
    ]
    nothing = publish(migrated_db, lb)  # the record matches: an empty delta
    assert (nothing.kind, nothing.changed_rows) == ("delta", 0)


def test_commands_sent_together_read_every_reply_even_after_an_error(
    lb: LeaderboardSettings,
) -> None:
    """The snapshot's batches go out packed by hiredis in one round trip: an error reply
    in the middle raises once every reply is read, the commands around it took effect,
    and the client's next command gets its own reply."""
    r = redis.Redis.from_url(lb.redis_url)
    key, other = lb.key("test:send"), lb.key("test:send:other")
    r.delete(key, other)
    r.set(other, "a string")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        _send(r, [("ZADD", key, 1, "a"), ("HSET", other, "f", "v"), ("EXPIRE", key, 60)])
    assert r.zscore(key, "a") == 1.0 and 0 < r.ttl(key) <= 60
    assert r.ping() and r.get(other) == b"a string"
    r.delete(key, other)


def _calls(r: redis.Redis, command: str) -> int:
    stats = r.info("commandstats").get(f"cmdstat_{command}")
    return int(stats["calls"]) if stats else 0


def test_a_delta_writes_only_the_parts_that_changed(
    migrated_db: str, lb: LeaderboardSettings
) -> None:
    """A rename (or a rank moved by others) changes a profile and no score: the delta
    sends that profile field and no sorted-set command; new points send the scores."""
    before = dataset(500, seed=35)
    write_mart(migrated_db, before)
    publish(migrated_db, lb)
    r = redis.Redis.from_url(lb.redis_url)
    renamed = [(u, "Phạm T. D.", t, w, rank) if i == 0 else (u, n, t, w, rank)
               for i, (u, n, t, w, rank) in enumerate(before)]  # fmt: skip
    write_mart(migrated_db, renamed)
    zadd, zrem, hset = _calls(r, "zadd"), _calls(r, "zrem"), _calls(r, "hset")
    delta = publish(migrated_db, lb)
    assert (delta.kind, delta.changed_rows) == ("delta", 1)
    assert (_calls(r, "zadd"), _calls(r, "zrem")) == (zadd, zrem)
    assert _calls(r, "hset") == hset + 2  # the profile, then the new meta
    assert snapshot_in_redis(lb) == as_snapshot(renamed)
    # new points for one user: its scores change, and the profiles of those it passed
    base = [(u, n, t, w) for u, n, t, w, _ in renamed]
    top = max(t for _, _, t, _ in base)
    base[-1] = (base[-1][0], base[-1][1], top + 1, base[-1][3] + top + 1)
    after = reranked(base)
    write_mart(migrated_db, after)
    zadd = _calls(r, "zadd")
    moved = publish(migrated_db, lb)
    assert moved.kind == "delta" and moved.changed_rows > 1
    assert _calls(r, "zadd") == zadd + 2  # all_time and weekly, once each
    assert snapshot_in_redis(lb) == as_snapshot(after)


def test_a_snapshot_redis_no_longer_holds_is_published_whole(
    migrated_db: str, lb: LeaderboardSettings
) -> None:
    """Flushed, or replaced by another publisher: the record no longer matches Redis, so a
    delta would patch the wrong snapshot; the publish sends a whole one."""
    rows = dataset(500, seed=31)
    write_mart(migrated_db, rows)
    publish(migrated_db, lb)
    r = redis.Redis.from_url(lb.redis_url)
    r.flushdb()
    again = publish(migrated_db, lb)
    assert again.kind == "full" and snapshot_in_redis(lb) == as_snapshot(rows)
    other = dataset(300, seed=32)
    publish(migrated_db, lb, rows=other)  # someone else's snapshot, not in the record
    assert snapshot_in_redis(lb) == as_snapshot(other)
    back = publish(migrated_db, lb)
    assert back.kind == "full" and snapshot_in_redis(lb) == as_snapshot(rows)
    # most entries changed: a whole snapshot too
    write_mart(migrated_db, dataset(500, seed=33))
    assert publish(migrated_db, lb).kind == "full"
    assert snapshot_in_redis(lb) == as_snapshot(dataset(500, seed=33))


def test_a_role_that_cannot_keep_the_record_publishes_whole_snapshots(
    migrated_db: str, lb: LeaderboardSettings
) -> None:
    """A publisher that may read the marts but not write vedfin_meta still publishes."""
    rows = dataset(300, seed=34)
    write_mart(migrated_db, rows)
    role = "vedfin_test_publisher"
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(f"drop role if exists {role}")
        conn.execute(f"create role {role} login password 'publisher-test'")
        conn.execute(f"grant usage on schema marts to {role}")
        conn.execute(f"grant select on all tables in schema marts to {role}")
    params = conninfo_to_dict(migrated_db) | {"user": role, "password": "publisher-test"}
    url = make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
    try:
        for _ in range(2):
            result = publish(url, lb)
            assert result.kind == "full" and result.changed_rows is None
            assert snapshot_in_redis(lb) == as_snapshot(rows)
    finally:
        with psycopg.connect(migrated_db, autocommit=True) as conn:
            conn.execute(f"drop owned by {role}")
            conn.execute(f"drop role {role}")


def test_empty_leaderboard_is_a_valid_snapshot(migrated_db: str, lb: LeaderboardSettings) -> None:
    write_mart(migrated_db, dataset(50, seed=2))
    publish(migrated_db, lb)
    write_mart(migrated_db, [])
    result = publish(migrated_db, lb)
    assert result.rows == 0
    assert snapshot_meta(lb)
    r = redis.Redis.from_url(lb.redis_url)
    assert not r.exists("lbtest:all_time", "lbtest:weekly", "lbtest:profiles")
    reader = LeaderboardReader(lb, migrated_db)
    top = reader.top(10)
    assert top.source == "redis" and top.entries == [] and top.meta["source_rows"] == "0"


def test_missing_snapshot_answers_from_sql_and_counts_a_miss(
    migrated_db: str, lb: LeaderboardSettings
) -> None:
    rows = dataset(300, seed=3)
    write_mart(migrated_db, rows)
    reader = LeaderboardReader(lb, migrated_db)
    top = reader.top(10)
    assert top.source == "postgres" and "snapshot missing" in top.note
    assert top.entries == expected_top(rows, 10)
    publish(migrated_db, lb)
    assert reader.top(10).source == "redis"
    assert (reader.stats.hits, reader.stats.misses) == (1, 1)


def test_twenty_publishes_while_a_reader_loops(migrated_db: str, lb: LeaderboardSettings) -> None:
    """Readers see snapshot A or snapshot B, whole, never a miss or a mix."""
    a, b = dataset(3_000, seed=10), dataset(2_500, seed=11)
    answers = {
        "3000": (expected_top(a, 50), expected_top(a, 50, weekly=True)),
        "2500": (expected_top(b, 50), expected_top(b, 50, weekly=True)),
    }
    write_mart(migrated_db, a)
    publish(migrated_db, lb)
    reader = LeaderboardReader(lb, migrated_db)
    stop = threading.Event()
    bad: list[str] = []
    reads = 0

    def loop() -> None:
        nonlocal reads
        while not stop.is_set():
            for weekly in (False, True):
                got = reader.top(50, weekly=weekly)
                reads += 1
                if got.source != "redis":
                    bad.append(f"miss: {got.note}")
                    continue
                want = answers[got.meta["source_rows"]][int(weekly)]
                if got.entries != want:
                    bad.append(f"half-written read at version {got.meta['version']}")

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        for i in range(20):
            rows = b if i % 2 == 0 else a
            publish(migrated_db, lb, rows=rows)
    finally:
        stop.set()
        thread.join()
    assert bad == []
    assert reads > 20 and reader.stats.misses == 0 and reader.stats.errors == 0
    assert snapshot_meta(lb)["source_rows"] == "3000"


def test_concurrent_publishes_do_not_interleave(migrated_db: str, lb: LeaderboardSettings) -> None:
    a, b = dataset(2_000, seed=20), dataset(1_500, seed=21)
    errors: list[BaseException] = []

    def many(rows: list[Row]) -> None:
        try:
            for _ in range(5):
                publish(migrated_db, lb, rows=rows)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=many, args=(rows,)) for rows in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    meta = snapshot_meta(lb)
    final = a if meta["source_rows"] == "2000" else b
    r = redis.Redis.from_url(lb.redis_url, decode_responses=True)
    assert {int(k): int(v) for k, v in r.zrange("lbtest:all_time", 0, -1, withscores=True)} == {
        u: t for u, _, t, _, _ in final
    }
    assert r.hlen("lbtest:profiles") == len(final)
    assert not list(r.scan_iter("lbtest:tmp:*")) and not list(r.scan_iter("lbtest:trash:*"))


def test_prefixes_are_isolated_and_prod_keys_do_not_expire(
    migrated_db: str, server: RedisServer
) -> None:
    write_mart(migrated_db, dataset(100, seed=4))
    prod = LeaderboardSettings(server.url, prefix="p:", target="prod")
    dev = LeaderboardSettings(server.url, prefix="d:", target="dev")
    publish(migrated_db, prod)
    r = redis.Redis.from_url(server.url)
    assert r.ttl("p:all_time") == -1 and r.ttl("p:meta") == -1
    assert not snapshot_meta(dev)
    publish(migrated_db, dev)
    assert r.ttl("d:all_time") > 0
    meta = snapshot_meta(prod)
    assert not prod.is_stale(meta)
    old = {**meta, "snapshot_at": "2026-01-01T00:00:00+00:00"}
    assert prod.is_stale(old)


def test_test_target_uses_its_own_redis_database(server: RedisServer) -> None:
    settings = LeaderboardSettings.from_env(server.url, "test")
    assert settings.redis_url.endswith("/1")
    assert LeaderboardSettings.from_env(server.url, "dev").redis_url.endswith("/0")


def test_redis_down_fails_clearly_and_leaves_the_mart(
    migrated_db: str, server: RedisServer, lb: LeaderboardSettings
) -> None:
    rows = dataset(200, seed=5)
    write_mart(migrated_db, rows)
    publish(migrated_db, lb)
    server.stop()
    with pytest.raises(ConnectionFailed, match=r"cannot reach Redis at 127\.0\.0\.1:\d+"):
        publish(migrated_db, lb)
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("select count(*) from marts.fct_leaderboard").fetchone() == (200,)
    # a reader keeps answering, from the mart, and counts the error and the miss
    reader = LeaderboardReader(lb, migrated_db)
    top = reader.top(5)
    assert top.source == "postgres" and "Redis unreachable" in top.note
    assert top.entries == expected_top(rows, 5)
    assert reader.stats.errors == 1 and reader.stats.misses == 1
    # back, empty: the snapshot is missing until the next publish
    server.start()
    assert not snapshot_meta(lb)
    publish(migrated_db, lb)
    assert reader.top(5).source == "redis"


def test_cli_leaderboard_top_and_status(migrated_db: str, server: RedisServer) -> None:
    rows = dataset(100, seed=6)
    write_mart(migrated_db, rows)
    env = {
        "DATABASE_URL": migrated_db,
        "REDIS_URL": server.url,
        "DBT_TARGET": "dev",
        "LEADERBOARD_PREFIX": "cli:",
    }
    miss = run_cli("leaderboard", "top", "-n", "3", "--json", env=env)
    assert miss.returncode == 0, miss.stderr
    assert json.loads(miss.stdout)["source"] == "postgres"
    status = run_cli("leaderboard", "status", env=env)
    assert status.returncode == 1 and "no leaderboard snapshot" in status.stderr
    pub = run_cli("leaderboard", "publish", env=env)
    assert pub.returncode == 0 and "published 100 users" in pub.stderr
    assert "a whole snapshot" in pub.stderr
    again = run_cli("leaderboard", "publish", env=env)
    assert again.returncode == 0 and "a delta of 0 changed entries" in again.stderr
    forced = run_cli("leaderboard", "publish", "--full", env=env)
    assert forced.returncode == 0 and "a whole snapshot" in forced.stderr
    hit = run_cli("leaderboard", "top", "-n", "3", "--json", env=env)
    body = json.loads(hit.stdout)
    assert body["source"] == "redis"
    assert [e["user_id"] for e in body["entries"]] == [e.user_id for e in expected_top(rows, 3)]
    table = run_cli("leaderboard", "top", "-n", "3", env=env)
    assert "from Redis: snapshot version" in table.stderr
    assert run_cli("leaderboard", "status", env=env).returncode == 0


def test_cli_errors_are_one_clear_line(fresh_db: str, server: RedisServer) -> None:
    """No mart yet, or a server that cannot be reached: one line, non-zero exit, no traceback."""
    env = {"DATABASE_URL": fresh_db, "REDIS_URL": server.url, "LEADERBOARD_PREFIX": "err:"}
    for args in (("top",), ("publish",)):
        result = run_cli("leaderboard", *args, env=env)
        assert result.returncode == 1, result.stderr
        assert "marts.fct_leaderboard does not exist" in result.stderr
        assert "Traceback" not in result.stderr
    down = run_cli("leaderboard", "status", env={**env, "REDIS_URL": "redis://127.0.0.1:1/0"})
    assert down.returncode == 2 and "cannot reach Redis at 127.0.0.1:1" in down.stderr
    assert "Traceback" not in down.stderr
