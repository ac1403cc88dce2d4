"""Streaming encoded rows into PostgreSQL with COPY."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO

import psycopg
from psycopg.copy import QueuedLibpqWriter

from seeds_gen.pgcopy import EVENT_COLUMNS, HEADER, TRAILER
from seeds_gen.rows import EncodedChunk, Layout

ProgressFn = Callable[[int, int], None]  # (users done, events written)


def copy_text(
    cur: psycopg.Cursor,
    target: str,
    columns: tuple[str, ...],
    blocks: Iterable[bytes],
    *,
    freeze: bool,
) -> None:
    """COPY text-format rows (in blocks of any size) into ``target``."""
    opts = " with (freeze)" if freeze else ""
    with cur.copy(f"copy {target} ({', '.join(columns)}) from stdin{opts}") as cp:
        for block in blocks:
            cp.write(block)


def copy_table(
    cur: psycopg.Cursor, layout: Layout, blocks: Iterable[bytes], *, freeze: bool
) -> None:
    copy_text(cur, layout.table, layout.columns, blocks, freeze=freeze)


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


def upsert(cur: psycopg.Cursor, layout: Layout, spool: IO[bytes], key: tuple[str, ...]) -> None:
    """COPY into a temporary table, then insert-or-update on the key."""
    cols = layout.columns
    cur.execute(f"create temp table _up (like {layout.table} including defaults) on commit drop")
    copy_text(cur, "_up", cols, spooled(spool), freeze=False)
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in key)
    cur.execute(
        f"insert into {layout.table} ({', '.join(cols)}) select {', '.join(cols)} from _up "
        f"on conflict ({', '.join(key)}) do update set {updates}"
    )
    cur.execute("drop table _up")
