"""Generated data into PostgreSQL: a fresh load or an append, each in one transaction.

A fresh load truncates, drops the secondary structures (``structures.py``), streams every
table in with COPY (``FREEZE``: the rows are born visible to everyone; ``copying.py``), puts
the structures back exactly as they were, and commits. An append continues the same story
from the per-user state kept in ``vedfin_meta``. If anything fails, the transaction rolls
back and the previous data is untouched. The safety checks are in ``safety.py``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta

import psycopg
from psycopg import sql

from seeds_gen.chunks import Counters, StreakState
from seeds_gen.copying import ProgressFn, copy_chunks, copy_table, spooled, upsert
from seeds_gen.generate import ExistingUser, append_chunks, fresh_chunks
from seeds_gen.rows import CHUNK_TABLES, encode_rows, encoder, read_layouts, reference_tables
from seeds_gen.safety import check_safe, preflight
from seeds_gen.scenarios import Spec
from seeds_gen.simulate import Catalog, LearnState, Progress, UserParams, Window, local_midnight_us
from seeds_gen.structures import Structure, drop_structures, restore_structures
from vedfin.db import CONTRACT_COLUMNS, RAW_TABLES, connect, init_db
from vedfin.errors import VedfinError

__all__ = [
    "FRESH_TABLES",
    "LoadResult",
    "analyze_app",
    "data_end_date",
    "empty_app",
    "load_append",
    "load_fresh",
    "preflight",
    "restore_app",
]

PhaseFn = Callable[[str], None]  # what the load is doing now, after the generation


@dataclass
class LoadResult:
    mode: str
    spec: Spec
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    worker_peak_mib: dict[int, float] = field(default_factory=dict)  # by process id

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def default_workers() -> int:
    """Simulating processes for a fresh load: the cores beyond two (this process, which
    encodes and writes, and the PostgreSQL backend taking the COPY); none on two cores,
    where they were measured to gain nothing (the two processes already fill both)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    extra = (cores or 1) - 2
    return extra if extra >= 2 else 0


FRESH_TABLES = (*(f"app.{t}" for t in RAW_TABLES), "vedfin_meta.seed_users")
"""Every table a fresh load replaces."""


def empty_app(conn: psycopg.Connection) -> list[Structure]:
    """The start of a fresh load, in the caller's transaction: ``app.users`` locked, every
    table of :data:`FRESH_TABLES` emptied, the keys and indexes dropped (returned, for
    :func:`restore_app`)."""
    conn.execute("lock table app.users in access exclusive mode")
    conn.execute("truncate " + ", ".join(FRESH_TABLES))
    return drop_structures(conn)


def restore_app(
    conn: psycopg.Connection, saved: list[Structure], on_phase: PhaseFn | None = None
) -> None:
    """The end of a fresh load's transaction: keys and indexes back, sequences reset."""
    restore_structures(conn, saved, on_phase)
    reset_sequences(conn)


def analyze_app(conn: psycopg.Connection) -> None:
    for table in FRESH_TABLES:
        conn.execute(f"analyze {table}")


def reset_sequences(conn: psycopg.Connection) -> None:
    """Each identity column continues after the highest id loaded."""
    for table in (t for t in RAW_TABLES if "id" in CONTRACT_COLUMNS[t]):
        conn.execute(
            sql.SQL(
                "select setval(pg_get_serial_sequence({name}, 'id'), "
                "coalesce((select max(id) from {rel}), 0) + 1, false)"
            ).format(name=sql.Literal(f"app.{table}"), rel=sql.Identifier("app", table))
        )


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
    workers: int | None = None,
) -> LoadResult:
    """Generate ``spec`` and load it in one transaction; the old data survives any failure.

    ``on_progress`` follows the generation chunk by chunk; ``on_phase`` names each step
    after it (the other tables, every key and index, ANALYZE), which can take seconds.
    ``checked``: the caller ran ``preflight`` for this load (migrations, safety checks).
    ``workers``: processes that simulate the users while this one encodes and writes
    (default: ``default_workers()``; 0 or 1: all here). The rows are the same either way.
    """
    if not checked:
        init_db(url)
    started = time.perf_counter()
    result = LoadResult("fresh", spec)
    workers = default_workers() if workers is None else workers
    cat = Catalog(spec.courses, spec.window)
    with connect(url) as conn, ExitStack() as stack:
        conn.execute("set synchronous_commit = off")
        if not checked:
            check_safe(url, target, reset=reset, force=force, conn=conn)
        conn.execute("set timezone = 'UTC'")
        conn.execute("set maintenance_work_mem = '1GB'")
        layouts = read_layouts(conn)
        spools = {t: stack.enter_context(tempfile.TemporaryFile("w+b")) for t in CHUNK_TABLES}
        counts = dict.fromkeys([*RAW_TABLES, "seed_users"], 0)
        with conn.transaction():
            saved = empty_app(conn)
            cur = conn.cursor()
            for table, rows in reference_tables(cat).items():
                block = encode_rows(layouts[table], rows)
                copy_table(cur, layouts[table], [block], freeze=True)
                counts[table] = len(rows)
            chunks = fresh_chunks(spec, workers=workers, worker_peaks=result.worker_peak_mib)
            encoded = map(encoder(layouts), chunks)
            copy_chunks(cur, encoded, spools, counts, on_progress, freeze=True)
            mark = time.perf_counter()
            result.phases["generate + copy events"] = mark - started
            if on_phase:
                on_phase("copying the other tables")
            for table in CHUNK_TABLES:
                copy_table(cur, layouts[table], spooled(spools[table]), freeze=True)
            result.phases["copy other tables"] = time.perf_counter() - mark
            mark = time.perf_counter()
            restore_app(conn, saved, on_phase)
            result.phases["keys and indexes"] = time.perf_counter() - mark
            result.seconds = time.perf_counter() - started
            result.rows = {t: counts[t] for t in RAW_TABLES}
            record_run(conn, "fresh", spec, result)
        mark = time.perf_counter()
        if on_phase:
            on_phase("ANALYZE and commit")
        analyze_app(conn)
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
            for t in (*CHUNK_TABLES, "progress_changed")
        }
        counts = dict.fromkeys([*RAW_TABLES, "seed_users", "progress_changed"], 0)
        with conn.transaction():
            conn.execute("lock table app.users, vedfin_meta.seed_users in exclusive mode")
            existing = load_existing(conn, cat)
            counters, first_new_id = _next_ids(conn)
            cur = conn.cursor()
            chunks = append_chunks(base, window, existing, first_new_id, counters, bad_events_rate)
            layouts = read_layouts(conn)
            encoded = map(encoder(layouts, changed=True), chunks)
            copy_chunks(cur, encoded, spools, counts, on_progress, freeze=False)
            updated = {"streaks": ("user_id",), "seed_users": ("user_id",)}  # a row per user
            for table in CHUNK_TABLES:
                if table not in updated:
                    copy_table(cur, layouts[table], spooled(spools[table]), freeze=False)
            upsert(cur, layouts["user_progress"], spools["progress_changed"], ("id",))
            for table, key in updated.items():
                upsert(cur, layouts[table], spools[table], key)
            reset_sequences(conn)
            result.rows = {t: counts[t] for t in RAW_TABLES}
            result.rows["user_progress"] += counts["progress_changed"]
            result.seconds = time.perf_counter() - started
            record_run(conn, "append", spec, result)
        conn.commit()
    result.seconds = time.perf_counter() - started
    return result
