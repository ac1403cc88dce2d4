"""The generated rows of each table, encoded as COPY input.

Which columns a table has, and in which order, is read from the database the rows go to
(:func:`read_layouts`): vedfin's migrations are the one definition of the raw schema, and a
generator row that does not match its table's columns is refused before anything is
written. Timestamps are held as epoch microseconds (UTC) and written as ``timestamptz``
text; the layout says which positions those are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import psycopg

from seeds_gen.chunks import ChunkRows, StreakState
from seeds_gen.generate import ALL_EVENT_NAMES
from seeds_gen.pgcopy import encode_events, text_table
from seeds_gen.reference import people
from seeds_gen.simulate import EPOCH, PROPS, Catalog, Progress, UserParams
from vedfin.db import RAW_TABLES
from vedfin.errors import VedfinError

Row = Sequence[object]

CHUNK_TABLES = (
    "users",
    "enrollments",
    "user_progress",
    "user_achievements",
    "streaks",
    "buddy_groups",
    "buddy_group_members",
    "seed_users",
)
"""The tables a chunk of users fills besides the event log (spooled, then copied)."""
REFERENCE_TABLES = ("courses", "lessons", "achievements")
"""The tables the catalogue fills, once per fresh load."""


@dataclass(frozen=True)
class Layout:
    """One table as the database defines it: its name, its columns in order, and the
    positions of its ``timestamptz`` columns."""

    table: str
    columns: tuple[str, ...]
    timestamps: tuple[int, ...]


def qualified(table: str) -> str:
    return f"vedfin_meta.{table}" if table == "seed_users" else f"app.{table}"


def read_layouts(conn: psycopg.Connection) -> dict[str, Layout]:
    """The layout of every table the generator writes, from ``information_schema``."""
    wanted = [*RAW_TABLES, "seed_users"]
    found: dict[str, list[tuple[str, str]]] = {t: [] for t in wanted}
    for table, column, data_type in conn.execute(
        """select table_name, column_name, data_type from information_schema.columns
           where (table_schema = 'app' and table_name = any(%s))
              or (table_schema = 'vedfin_meta' and table_name = 'seed_users')
           order by table_schema, table_name, ordinal_position""",
        (list(RAW_TABLES),),
    ):
        found[table].append((column, data_type))
    layouts = {}
    for table, cols in found.items():
        if not cols:
            raise VedfinError(f"{qualified(table)} does not exist: run `vedfin db init`")
        layouts[table] = Layout(
            qualified(table),
            tuple(c for c, _ in cols),
            tuple(i for i, (_, t) in enumerate(cols) if t == "timestamp with time zone"),
        )
    return layouts


def progress_row(p: Progress) -> Row:
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


def seed_user_row(up: UserParams, sk: StreakState) -> Row:
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


def chunk_tables(chunk: ChunkRows) -> dict[str, list[Row]]:
    """A chunk's rows per table, in :data:`CHUNK_TABLES` order."""
    tables: dict[str, list[Row]] = {
        "users": list(chunk.users),
        "enrollments": list(chunk.enrollments),
        "user_progress": [progress_row(p) for p in chunk.progress_new],
        "user_achievements": list(chunk.achievements),
        "streaks": list(chunk.streaks),
        "buddy_groups": list(chunk.groups),
        "buddy_group_members": list(chunk.members),
        "seed_users": [seed_user_row(up, sk) for up, sk in chunk.params],
    }
    assert tuple(tables) == CHUNK_TABLES
    return tables


def reference_tables(cat: Catalog) -> dict[str, list[Row]]:
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


def encode_rows(layout: Layout, rows: list[Row]) -> bytes:
    """Rows of one table in COPY text format; refused when they do not fit its columns."""
    if rows:
        names = getattr(rows[0], "_fields", None)
        if len(rows[0]) != len(layout.columns) or (names and tuple(names) != layout.columns):
            raise VedfinError(
                f"the generator's rows for {layout.table} have {len(rows[0])} values, the "
                f"table has the columns ({', '.join(layout.columns)}): the migrations changed "
                "the table without the generator"
            )
    return text_table(rows, layout.timestamps)


@dataclass
class EncodedChunk:
    """One chunk of generated rows, encoded for COPY (events binary, the other tables text)."""

    events: memoryview
    n_events: int
    users: int
    tables: dict[str, bytes]
    rows: dict[str, int]


def encode_chunk(
    layouts: dict[str, Layout], chunk: ChunkRows, *, changed: bool = False
) -> EncodedChunk:
    """``changed``: also the progress rows the chunk updated (spooled as
    ``progress_changed``, user_progress rows to upsert)."""
    tables = chunk_tables(chunk)
    if changed:
        tables["progress_changed"] = [progress_row(p) for p in chunk.progress_changed]
    return EncodedChunk(
        encode_events(chunk.events, ALL_EVENT_NAMES, PROPS, people().devices.values),
        chunk.n_events,
        len(chunk.params),
        {t: encode_rows(layouts[_shape(t)], rows) for t, rows in tables.items()},
        {t: len(rows) for t, rows in tables.items()},
    )


def encoder(
    layouts: dict[str, Layout], *, changed: bool = False
) -> Callable[[ChunkRows], EncodedChunk]:
    return partial(encode_chunk, layouts, changed=changed)


def _shape(table: str) -> str:
    """The table whose columns a spool holds (changed progress rows are user_progress rows)."""
    return "user_progress" if table == "progress_changed" else table
