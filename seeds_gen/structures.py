"""The keys, foreign keys and indexes of ``app``, dropped for a fresh load and put back.

Loading into bare tables and building each index once afterwards is several times faster
than maintaining them row by row; the definitions come from the catalog, so what is put
back is exactly what was there."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class Structure:
    name: str
    table: str
    phase: int  # restore order: keys first, then plain indexes, then foreign keys
    create: sql.Composed | sql.SQL
    drop: sql.Composed


def app_structures(conn: psycopg.Connection) -> list[Structure]:
    """Every primary key, unique key, foreign key and other index of ``app``."""
    out: list[Structure] = []
    for contype, table, name, definition in conn.execute(
        """select c.contype, t.relname, c.conname, pg_get_constraintdef(c.oid)
           from pg_constraint c join pg_class t on t.oid = c.conrelid
           join pg_namespace n on n.oid = t.relnamespace
           where n.nspname = 'app' and c.contype in ('f', 'p', 'u')
           order by t.relname, c.conname"""
    ):
        rel = sql.Identifier("app", table)
        out.append(
            Structure(
                name,
                table,
                2 if contype == "f" else 0,
                sql.SQL("alter table {} add constraint {} {}").format(
                    rel, sql.Identifier(name), sql.SQL(definition)
                ),
                sql.SQL("alter table {} drop constraint {}").format(rel, sql.Identifier(name)),
            )
        )
    for table, name, definition in conn.execute(
        """select i.tablename, i.indexname, i.indexdef from pg_indexes i
           where i.schemaname = 'app' and not exists (
               select 1 from pg_constraint c join pg_namespace n on n.oid = c.connamespace
               where n.nspname = 'app' and c.conname = i.indexname)
           order by i.tablename, i.indexname"""
    ):
        out.append(
            Structure(
                name,
                table,
                1,
                sql.SQL(definition),
                sql.SQL("drop index {}").format(sql.Identifier("app", name)),
            )
        )
    return out


def drop_structures(conn: psycopg.Connection) -> list[Structure]:
    """Drop them (foreign keys first, which depend on the keys); return what was dropped."""
    found = app_structures(conn)
    for s in sorted(found, key=lambda s: -s.phase):
        conn.execute(s.drop)
    return found


def restore_structures(
    conn: psycopg.Connection, saved: list[Structure], on_phase: Callable[[str], None] | None
) -> None:
    ordered = sorted(saved, key=lambda s: s.phase)
    for i, s in enumerate(ordered, 1):
        if on_phase:
            on_phase(f"keys and indexes {i}/{len(ordered)}: {s.name}")
        conn.execute(s.create)
