"""Loading generated rows into PostgreSQL with COPY, safely.

A fresh load is one transaction: truncate, drop the secondary structures
(foreign keys, unique and primary keys, indexes), stream every table in with
COPY (``FREEZE``: the rows are born visible to everyone), put the structures
back exactly as they were, and commit. If anything fails, the transaction rolls
back and the previous data is untouched.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import IO

import psycopg
from psycopg.copy import QueuedLibpqWriter

from seeds_gen.chunks import ChunkRows, Counters, StreakState
from seeds_gen.generate import ALL_EVENT_NAMES, ExistingUser, append_chunks, fresh_chunks
from seeds_gen.pgcopy import EVENT_COLUMNS, HEADER, TRAILER, encode_events, text_table
from seeds_gen.reference import people
from seeds_gen.scenarios import Spec
from seeds_gen.simulate import (
    EPOCH,
    PROPS,
    Catalog,
    LearnState,
    Progress,
    UserParams,
    Window,
    local_midnight_us,
)
from vedfin.db import RAW_TABLES, app_is_platforms, connect, describe_target, init_db
from vedfin.errors import UnsafeOperation, VedfinError

APP_TABLES = RAW_TABLES
COLUMNS: dict[str, tuple[str, ...]] = {
    "users": (
        "id",
        "email",
        "full_name",
        "phone",
        "gender",
        "province",
        "birth_year",
        "persona",
        "signup_channel",
        "created_at",
        "deleted_at",
    ),
    "courses": ("id", "slug", "title", "category", "level", "description", "published_at"),
    "lessons": (
        "id",
        "course_id",
        "position",
        "title",
        "content_type",
        "duration_minutes",
        "points",
    ),
    "enrollments": ("id", "user_id", "course_id", "enrolled_at"),
    "user_progress": (
        "id",
        "user_id",
        "lesson_id",
        "course_id",
        "status",
        "progress_pct",
        "time_spent_seconds",
        "started_at",
        "completed_at",
        "updated_at",
    ),
    "achievements": ("id", "code", "name", "description", "points"),
    "user_achievements": ("user_id", "achievement_id", "unlocked_at"),
    "streaks": ("user_id", "current_days", "longest_days", "last_active_date"),
    "buddy_groups": ("id", "name", "created_at"),
    "buddy_group_members": ("group_id", "user_id", "joined_at"),
    "seed_users": (
        "user_id",
        "signup_at",
        "persona",
        "engagement",
        "active_until",
        "p_active",
        "learner",
        "max_courses",
        "device",
        "group_id",
        "joined_at",
        "streak_last_day",
        "streak_run",
        "streak_longest",
    ),
}
TS_COLUMNS: dict[str, tuple[int, ...]] = {
    "users": (9, 10),
    "courses": (6,),
    "enrollments": (3,),
    "user_progress": (7, 8, 9),
    "user_achievements": (2,),
    "buddy_groups": (2,),
    "buddy_group_members": (2,),
    "seed_users": (1, 4, 10),
}
SPOOLED = (
    "users",
    "enrollments",
    "user_progress",
    "user_achievements",
    "streaks",
    "buddy_groups",
    "buddy_group_members",
    "seed_users",
)


@dataclass
class LoadResult:
    mode: str
    spec: Spec
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def progress_tuple(p: Progress) -> tuple[object, ...]:
    return (
        p.id,
        p.user_id,
        p.lesson_id,
        p.course_id,
        p.status,
        round(p.progress_pct, 2),
        p.time_spent_seconds,
        p.started_at,
        p.completed_at,
        p.updated_at,
    )


def seed_user_tuple(up: UserParams, sk: StreakState) -> tuple[object, ...]:
    last = EPOCH.fromordinal(EPOCH.toordinal() + sk.last_day) if sk.last_day is not None else None
    return (
        up.user_id,
        up.signup_us,
        up.persona,
        up.engagement,
        up.active_until_us,
        up.p_active,
        up.learner,
        up.max_courses,
        up.device,
        up.group_id,
        up.joined_us,
        last,
        sk.run,
        sk.longest,
    )


def chunk_tables(chunk: ChunkRows) -> dict[str, list[tuple[object, ...]]]:
    return {
        "users": chunk.users,
        "enrollments": chunk.enrollments,
        "user_progress": [progress_tuple(p) for p in chunk.progress_new],
        "user_achievements": chunk.achievements,  # type: ignore[dict-item]
        "streaks": chunk.streaks,  # type: ignore[dict-item]
        "buddy_groups": chunk.groups,  # type: ignore[dict-item]
        "buddy_group_members": chunk.members,  # type: ignore[dict-item]
        "seed_users": [seed_user_tuple(up, sk) for up, sk in chunk.params],
    }


def reference_tables(cat: Catalog) -> dict[str, list[tuple[object, ...]]]:
    return {
        "courses": [
            (c.id, c.slug, c.title, c.category, c.level, None, cat.published_us[c.id])
            for c in cat.courses
        ],
        "lessons": [
            (
                lsn.id,
                lsn.course_id,
                lsn.position,
                lsn.title,
                lsn.content_type,
                lsn.duration_minutes,
                lsn.points,
            )
            for c in cat.courses
            for lsn in c.lessons
        ],
        "achievements": [(a.id, a.code, a.name, a.description, a.points) for a in cat.achievements],
    }


def qualified(table: str) -> str:
    return f"vedfin_meta.{table}" if table == "seed_users" else f"app.{table}"


def encode_rows(table: str, rows: list[tuple[object, ...]]) -> bytes:
    """Rows of ``table`` in COPY text format (timestamps from epoch microseconds, UTC)."""
    return text_table(rows, TS_COLUMNS.get(table, ()))


@dataclass
class EncodedChunk:
    """One chunk of generated rows, encoded for COPY (events binary, the other tables text)."""

    events: bytes
    n_events: int
    users: int
    tables: dict[str, bytes]
    rows: dict[str, int]


def encode_chunk(chunk: ChunkRows, *, changed: bool = False) -> EncodedChunk:
    tables = chunk_tables(chunk)
    if changed:
        tables["progress_changed"] = [progress_tuple(p) for p in chunk.progress_changed]
    return EncodedChunk(
        encode_events(chunk.events, ALL_EVENT_NAMES, PROPS, people().devices.values),
        chunk.n_events,
        len(chunk.params),
        {t: encode_rows(_shape(t), rows) for t, rows in tables.items()},
        {t: len(rows) for t, rows in tables.items()},
    )


def _shape(table: str) -> str:
    """The table whose columns a spool holds (changed progress rows are user_progress rows)."""
    return "user_progress" if table == "progress_changed" else table


def copy_text(
    cur: psycopg.Cursor,
    target: str,
    columns: tuple[str, ...],
    blocks: Iterable[bytes],
    freeze: bool,
) -> None:
    """COPY text-format rows (in blocks of any size) into ``target``."""
    opts = " with (freeze)" if freeze else ""
    with cur.copy(f"copy {target} ({', '.join(columns)}) from stdin{opts}") as cp:
        for block in blocks:
            cp.write(block)


def spooled(spool: IO[bytes]) -> Iterator[bytes]:
    """A spool file's content from the start, in 1 MiB blocks."""
    spool.seek(0)
    yield from iter(lambda: spool.read(1 << 20), b"")


def copy_chunks(
    cur: psycopg.Cursor,
    chunks: Iterable[EncodedChunk],
    spools: Mapping[str, IO[bytes]],
    counts: dict[str, int],
    on_progress: ProgressFn | None,
    *,
    freeze: bool,
) -> None:
    """Stream the chunks' events into app.behavior_logs (one binary COPY, written by a
    background thread while the next chunk is generated) and spool their other rows."""
    cols = ", ".join(EVENT_COLUMNS)
    opts = "format binary, freeze" if freeze else "format binary"
    users_done = 0
    with cur.copy(
        f"copy app.behavior_logs ({cols}) from stdin with ({opts})",
        writer=QueuedLibpqWriter(cur),
    ) as cp:
        cp.write(HEADER)
        for enc in chunks:
            cp.write(enc.events)
            counts["behavior_logs"] += enc.n_events
            for table, data in enc.tables.items():
                spools[table].write(data)
                counts[table] += enc.rows[table]
            users_done += enc.users
            if on_progress:
                on_progress(users_done, counts["behavior_logs"])
        cp.write(TRAILER)


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


def drop_structures(conn: psycopg.Connection) -> list[tuple[int, str]]:
    """Drop keys, foreign keys and indexes of ``app``; return how to recreate them."""
    saved: list[tuple[int, str]] = []
    rows = conn.execute(
        """
        select c.contype, t.relname, c.conname, pg_get_constraintdef(c.oid)
        from pg_constraint c join pg_class t on t.oid = c.conrelid
        join pg_namespace n on n.oid = t.relnamespace
        where n.nspname = 'app' and c.contype in ('f', 'p', 'u')
        order by case c.contype when 'f' then 0 else 1 end, t.relname, c.conname
        """
    ).fetchall()
    indexes = conn.execute(
        """
        select i.indexname, i.indexdef from pg_indexes i
        where i.schemaname = 'app' and not exists (
            select 1 from pg_constraint c
            join pg_namespace n on n.oid = c.connamespace
            where n.nspname = 'app' and c.conname = i.indexname)
        """
    ).fetchall()
    for name, definition in indexes:
        conn.execute(f'drop index app."{name}"')
        saved.append((1, definition))
    for contype, table, name, definition in rows:
        conn.execute(f'alter table app."{table}" drop constraint "{name}"')
        order = {"p": 0, "u": 0, "f": 2}[contype]
        saved.append((order, f'alter table app."{table}" add constraint "{name}" {definition}'))
    return saved


_STRUCTURE_NAME = re.compile(r'add constraint "([^"]+)"|CREATE (?:UNIQUE )?INDEX (\S+) ON')


def restore_structures(
    conn: psycopg.Connection, saved: list[tuple[int, str]], on_phase: PhaseFn | None = None
) -> None:
    ordered = sorted(saved, key=lambda s: s[0])
    for i, (_order, statement) in enumerate(ordered, 1):
        if on_phase:
            found = _STRUCTURE_NAME.search(statement)
            name = next(g for g in found.groups() if g) if found else "?"
            on_phase(f"keys and indexes {i}/{len(ordered)}: {name}")
        conn.execute(statement)


def reset_sequences(conn: psycopg.Connection) -> None:
    for table in (
        "users",
        "courses",
        "lessons",
        "enrollments",
        "user_progress",
        "behavior_logs",
        "achievements",
        "buddy_groups",
    ):
        conn.execute(
            f"select setval(pg_get_serial_sequence('app.{table}', 'id'), "
            f"coalesce((select max(id) from app.{table}), 0) + 1, false)"
        )


ProgressFn = Callable[[int, int], None]  # (users done, events written)
PhaseFn = Callable[[str], None]  # what the load is doing now, after the generation


def load_fresh(
    url: str,
    spec: Spec,
    *,
    target: str = "dev",
    reset: bool = False,
    force: bool = False,
    on_progress: ProgressFn | None = None,
    on_phase: PhaseFn | None = None,
    checked: bool = False,
) -> LoadResult:
    """Generate ``spec`` and load it in one transaction; the old data survives any failure.

    ``on_progress`` follows the generation chunk by chunk; ``on_phase`` names each step
    after it (the other tables, every key and index, ANALYZE), which can take seconds.
    ``checked``: the caller ran ``preflight`` for this load (migrations, safety checks).
    """
    if not checked:
        init_db(url)
    started = time.perf_counter()
    result = LoadResult("fresh", spec)
    cat = Catalog(spec.courses, spec.window)
    with connect(url) as conn, ExitStack() as stack:
        conn.execute("set synchronous_commit = off")
        if not checked:
            check_safe(url, target, reset=reset, force=force, conn=conn)
        conn.execute("set timezone = 'UTC'")
        conn.execute("set maintenance_work_mem = '1GB'")
        spools = {t: stack.enter_context(tempfile.TemporaryFile("w+b")) for t in SPOOLED}
        counts = dict.fromkeys([*APP_TABLES, "seed_users"], 0)
        with conn.transaction():
            conn.execute("lock table app.users in access exclusive mode")
            conn.execute(
                "truncate " + ", ".join(f"app.{t}" for t in APP_TABLES) + ", vedfin_meta.seed_users"
            )
            saved = drop_structures(conn)
            cur = conn.cursor()
            for table, rows in reference_tables(cat).items():
                copy_text(cur, qualified(table), COLUMNS[table], [encode_rows(table, rows)], True)
                counts[table] = len(rows)
            copy_chunks(
                cur, map(encode_chunk, fresh_chunks(spec)), spools, counts, on_progress, freeze=True
            )
            mark = time.perf_counter()
            result.phases["generate + copy events"] = mark - started
            if on_phase:
                on_phase("copying the other tables")
            for table in SPOOLED:
                copy_text(cur, qualified(table), COLUMNS[table], spooled(spools[table]), True)
            result.phases["copy other tables"] = time.perf_counter() - mark
            mark = time.perf_counter()
            restore_structures(conn, saved, on_phase)
            reset_sequences(conn)
            result.phases["keys and indexes"] = time.perf_counter() - mark
            result.seconds = time.perf_counter() - started
            result.rows = {t: counts[t] for t in APP_TABLES}
            record_run(conn, "fresh", spec, result)
        mark = time.perf_counter()
        if on_phase:
            on_phase("ANALYZE and commit")
        for table in APP_TABLES:
            conn.execute(f"analyze app.{table}")
        conn.commit()
        result.phases["analyze"] = time.perf_counter() - mark
    result.seconds = time.perf_counter() - started
    return result


def record_run(conn: psycopg.Connection, mode: str, spec: Spec, result: LoadResult) -> None:
    conn.execute(
        "insert into vedfin_meta.seed_runs (mode, spec, end_date, cutoff_at, row_counts, seconds) "
        "values (%s, %s, %s, to_timestamp(%s / 1e6), %s, %s)",
        (
            mode,
            json.dumps(spec.as_json()),
            spec.end_date,
            spec.cutoff_us,
            json.dumps(result.rows),
            result.seconds,
        ),
    )


def _last_runs(conn: psycopg.Connection) -> tuple[Spec, date, int]:
    """The spec of the last fresh load, and where the data ends now."""
    base = conn.execute(
        "select spec from vedfin_meta.seed_runs where mode = 'fresh' order by run_id desc limit 1"
    ).fetchone()
    last = conn.execute(
        "select end_date, (extract(epoch from cutoff_at) * 1e6)::bigint "
        "from vedfin_meta.seed_runs order by run_id desc limit 1"
    ).fetchone()
    if base is None or last is None:
        raise VedfinError(
            "there is no generated dataset to extend: run `vedfin seed` first "
            "(append works on data that vedfin generated)"
        )
    raw = base[0]
    spec = Spec(
        raw["scenario"],
        raw["users"],
        raw["courses"],
        raw["days"],
        raw["seed"],
        date.fromisoformat(raw["end_date"]),
        raw["cutoff_us"],
        0.0,
    )
    return spec, last[0], int(last[1])


def data_end_date(url: str) -> date:
    """The last local date of the generated dataset (after any appends)."""
    with connect(url) as conn:
        return _last_runs(conn)[1]


def load_existing(conn: psycopg.Connection, cat: Catalog) -> list[ExistingUser]:
    """Every generated user's model parameters and learning state, from the database."""
    users: dict[int, ExistingUser] = {}
    for row in conn.execute(
        """select user_id, (extract(epoch from signup_at) * 1e6)::bigint, persona, engagement,
                  (extract(epoch from active_until) * 1e6)::bigint, p_active, learner,
                  max_courses, device, group_id, (extract(epoch from joined_at) * 1e6)::bigint,
                  streak_last_day - date '1970-01-01', streak_run, streak_longest
           from vedfin_meta.seed_users order by user_id"""
    ):
        up = UserParams(
            row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10]
        )
        users[row[0]] = ExistingUser(up, LearnState(), StreakState(row[11], row[12], row[13]))
    for uid, cid, t in conn.execute(
        "select user_id, course_id, (extract(epoch from enrolled_at) * 1e6)::bigint "
        "from app.enrollments order by id"
    ):
        if uid in users:
            users[uid].state.enrolled[cid] = t
            users[uid].state.last_course = cid
    for r in conn.execute(
        """select id, user_id, lesson_id, course_id, status, progress_pct::float8,
                  time_spent_seconds, (extract(epoch from started_at) * 1e6)::bigint,
                  (extract(epoch from completed_at) * 1e6)::bigint,
                  (extract(epoch from updated_at) * 1e6)::bigint
           from app.user_progress order by id"""
    ):
        if r[1] not in users:
            continue
        st = users[r[1]].state
        st.progress[r[2]] = Progress(
            r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], id=r[0], dirty=False
        )
        if r[4] == "COMPLETED":
            st.prior_completions += 1
    codes = {a.id: a.code for a in cat.achievements}
    for uid, aid in conn.execute("select user_id, achievement_id from app.user_achievements"):
        if uid in users:
            users[uid].state.achievements.add(codes.get(aid, str(aid)))
    for eu in users.values():
        st = eu.state
        for cid in st.enrolled:
            course = cat.by_id.get(cid)
            if course and all(
                (p := st.progress.get(lsn.id)) is not None and p.status == "COMPLETED"
                for lsn in course.lessons
            ):
                st.completed_courses[cid] = max(
                    st.progress[lsn.id].completed_at or 0 for lsn in course.lessons
                )
                st.prior_courses += 1
    return list(users.values())


def _next_ids(conn: psycopg.Connection) -> tuple[Counters, int]:
    row = conn.execute(
        """select (select coalesce(max(id), 0) from app.behavior_logs),
                  (select coalesce(max(session_id), 0) from app.behavior_logs),
                  (select coalesce(max(id), 0) from app.enrollments),
                  (select coalesce(max(id), 0) from app.user_progress),
                  (select coalesce(max(id), 0) from app.buddy_groups),
                  (select coalesce(max(id), 0) from app.users)"""
    ).fetchone()
    assert row is not None
    return Counters(row[0] + 1, row[1] + 1, row[2] + 1, row[3] + 1, row[4] + 1), row[5] + 1


def load_append(
    url: str,
    days: int,
    *,
    target: str = "dev",
    force: bool = False,
    bad_events_rate: float = 0.0,
    on_progress: ProgressFn | None = None,
    checked: bool = False,
) -> LoadResult:
    """Extend the generated dataset by ``days`` more days, in one transaction.

    ``checked``: the caller ran ``preflight`` for this load (migrations, safety checks)."""
    if days < 1:
        raise VedfinError("--append-days must be at least 1")
    if not checked:
        init_db(url)
    started = time.perf_counter()
    with connect(url) as conn, ExitStack() as stack:
        conn.execute("set synchronous_commit = off")
        conn.execute("set timezone = 'UTC'")
        if not checked:
            check_safe(url, target, reset=False, force=force, conn=conn, append=True)
        base, last_end, _last_cutoff = _last_runs(conn)
        new_end = last_end + timedelta(days=days)
        window = Window(
            last_end + timedelta(days=1),
            new_end,
            local_midnight_us(new_end + timedelta(days=1)) - 1,
        )
        spec = Spec(
            base.scenario,
            base.users,
            base.courses,
            days,
            base.seed,
            new_end,
            window.cutoff_us,
            bad_events_rate,
        )
        result = LoadResult("append", spec)
        cat = Catalog(base.courses, base.window)
        spools = {
            t: stack.enter_context(tempfile.TemporaryFile("w+b"))
            for t in (*SPOOLED, "progress_changed")
        }
        counts = dict.fromkeys([*APP_TABLES, "seed_users", "progress_changed"], 0)
        with conn.transaction():
            conn.execute("lock table app.users, vedfin_meta.seed_users in exclusive mode")
            existing = load_existing(conn, cat)
            counters, first_new_id = _next_ids(conn)
            cur = conn.cursor()
            chunks = append_chunks(base, window, existing, first_new_id, counters, bad_events_rate)
            encoded = (encode_chunk(chunk, changed=True) for chunk in chunks)
            copy_chunks(cur, encoded, spools, counts, on_progress, freeze=False)
            for table in (
                "users",
                "enrollments",
                "user_progress",
                "user_achievements",
                "buddy_groups",
                "buddy_group_members",
            ):
                copy_text(cur, qualified(table), COLUMNS[table], spooled(spools[table]), False)
            _upsert(cur, "user_progress", spools["progress_changed"], ("id",))
            _upsert(cur, "streaks", spools["streaks"], ("user_id",))
            _upsert(cur, "seed_users", spools["seed_users"], ("user_id",))
            reset_sequences(conn)
            result.rows = {t: counts[t] for t in APP_TABLES}
            result.rows["user_progress"] += counts["progress_changed"]
            result.seconds = time.perf_counter() - started
            record_run(conn, "append", spec, result)
        conn.commit()
    result.seconds = time.perf_counter() - started
    return result


def _upsert(cur: psycopg.Cursor, table: str, spool: IO[bytes], key: tuple[str, ...]) -> None:
    """COPY into a temporary table, then insert-or-update on the key."""
    cols = COLUMNS[table]
    target = qualified(table)
    cur.execute(f"create temp table _up (like {target} including defaults) on commit drop")
    copy_text(cur, "_up", cols, spooled(spool), False)
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in key)
    cur.execute(
        f"insert into {target} ({', '.join(cols)}) select {', '.join(cols)} from _up "
        f"on conflict ({', '.join(key)}) do update set {updates}"
    )
    cur.execute("drop table _up")
