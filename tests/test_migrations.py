"""The raw schema `app`: what the contract fixes, applied idempotently, drift refused."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import ROOT, run_cli
from vedfin.db import INGESTED_AT_INDEX, check_schema, init_db, schema_fingerprint
from vedfin.errors import SchemaMismatch

CONTRACT_COLUMNS = {
    "users": {
        "id",
        "email",
        "full_name",
        "phone",
        "province",
        "birth_year",
        "persona",
        "signup_channel",
        "created_at",
        "deleted_at",
    },
    "courses": {"id", "slug", "title", "category", "level", "published_at"},
    "lessons": {
        "id",
        "course_id",
        "position",
        "title",
        "content_type",
        "duration_minutes",
        "points",
    },
    "enrollments": {"id", "user_id", "course_id", "enrolled_at"},
    "user_progress": {
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
    },
    "behavior_logs": {
        "id",
        "user_id",
        "session_id",
        "event_type",
        "course_id",
        "lesson_id",
        "occurred_at",
        "duration_seconds",
        "properties",
        "device",
        "ingested_at",
    },
    "achievements": {"id", "code", "name", "points"},
    "user_achievements": {"user_id", "achievement_id", "unlocked_at"},
    "streaks": {"user_id", "current_days", "longest_days", "last_active_date"},
    "buddy_groups": {"id", "name", "created_at"},
    "buddy_group_members": {"group_id", "user_id", "joined_at"},
}
PRIMARY_KEYS = {
    "users": ["id"],
    "courses": ["id"],
    "lessons": ["id"],
    "enrollments": ["id"],
    "user_progress": ["id"],
    "behavior_logs": ["id"],
    "achievements": ["id"],
    "user_achievements": ["user_id", "achievement_id"],
    "streaks": ["user_id"],
    "buddy_groups": ["id"],
    "buddy_group_members": ["group_id", "user_id"],
}
UNIQUES = {
    ("users", ("email",)),
    ("courses", ("slug",)),
    ("lessons", ("course_id", "position")),
    ("enrollments", ("user_id", "course_id")),
    ("user_progress", ("user_id", "lesson_id")),
    ("achievements", ("code",)),
}
ROADMAP_INDEXES = {
    ("behavior_logs", ("user_id", "occurred_at")),
    ("behavior_logs", ("event_type", "user_id")),
    ("user_progress", ("course_id", "user_id")),
    ("user_progress", ("user_id", "updated_at")),
    ("enrollments", ("course_id", "user_id")),
}


def _index_columns(conn: psycopg.Connection) -> set[tuple[str, tuple[str, ...], bool, bool]]:
    rows = conn.execute(
        """
        select t.relname, array_agg(a.attname order by k.ord), ix.indisunique, ix.indisprimary
        from pg_index ix
        join pg_class t on t.oid = ix.indrelid
        join pg_namespace n on n.oid = t.relnamespace
        cross join lateral unnest(ix.indkey) with ordinality k(attnum, ord)
        join pg_attribute a on a.attrelid = t.oid and a.attnum = k.attnum
        where n.nspname = 'app'
        group by t.relname, ix.indexrelid, ix.indisunique, ix.indisprimary
        """
    ).fetchall()
    return {(r[0], tuple(r[1]), r[2], r[3]) for r in rows}


def test_schema_matches_contract(migrated_db: str) -> None:
    with psycopg.connect(migrated_db) as conn:
        cols: dict[str, set[str]] = {}
        types: dict[tuple[str, str], str] = {}
        for table, column, dtype in conn.execute(
            "select table_name, column_name, data_type from information_schema.columns "
            "where table_schema = 'app'"
        ):
            cols.setdefault(table, set()).add(column)
            types[(table, column)] = dtype
        assert set(cols) == set(CONTRACT_COLUMNS)
        for table, expected in CONTRACT_COLUMNS.items():
            assert expected <= cols[table], (table, expected - cols[table])
        # ids are bigint, timestamps timestamptz
        for (table, column), dtype in types.items():
            if column == "id" or column.endswith("_id"):
                assert dtype == "bigint", (table, column, dtype)
            if column.endswith("_at"):
                assert dtype == "timestamp with time zone", (table, column, dtype)
        assert types[("behavior_logs", "properties")] == "jsonb"
        assert types[("behavior_logs", "event_type")] == "text"

        indexes = _index_columns(conn)
        pks = {(t, c) for t, c, _u, p in indexes if p}
        assert pks == {(t, tuple(c)) for t, c in PRIMARY_KEYS.items()}
        uniques = {(t, c) for t, c, u, p in indexes if u and not p}
        assert uniques >= UNIQUES
        plain = {(t, c) for t, c, _u, _p in indexes}
        assert plain >= ROADMAP_INDEXES

        fks = conn.execute(
            """select t.relname from pg_constraint c join pg_class t on t.oid = c.conrelid
               join pg_namespace n on n.oid = t.relnamespace
               where n.nspname = 'app' and c.contype = 'f'"""
        ).fetchall()
        fk_tables = {r[0] for r in fks}
        assert "behavior_logs" not in fk_tables
        assert {"lessons", "enrollments", "user_progress", "user_achievements"} <= fk_tables

        levels = conn.execute(
            "select pg_get_constraintdef(oid) from pg_constraint "
            "where conname = 'courses_level_check'"
        ).fetchone()
        assert levels and all(x in levels[0] for x in ("BEGINNER", "INTERMEDIATE", "EXPERT"))


def test_init_twice_changes_nothing(fresh_db: str) -> None:
    first = init_db(fresh_db)
    shipped = sorted(p.name for p in (ROOT / "vedfin" / "migrations").glob("V*.sql"))
    assert first.applied == shipped and shipped[0] == "V001__app_schema.sql"
    with psycopg.connect(fresh_db) as conn:
        before = schema_fingerprint(conn)
        applied_at = conn.execute("select applied_at from vedfin_meta.schema_migrations").fetchall()
    second = init_db(fresh_db)
    assert second.applied == [] and second.already == first.applied
    with psycopg.connect(fresh_db) as conn:
        assert schema_fingerprint(conn) == before
        assert (
            conn.execute("select applied_at from vedfin_meta.schema_migrations").fetchall()
            == applied_at
        )
    check_schema(fresh_db)
    result = run_cli("db", "init", env={"DATABASE_URL": fresh_db})
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stderr


def test_drifted_schema_is_refused(fresh_db: str) -> None:
    init_db(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("alter table app.users add column nickname text")
        conn.execute("drop index app.behavior_logs_event_type_user_idx")
    with pytest.raises(SchemaMismatch) as info:
        init_db(fresh_db)
    message = str(info.value)
    assert "nickname" in message and "behavior_logs_event_type_user_idx" in message
    result = run_cli("db", "init", env={"DATABASE_URL": fresh_db})
    assert result.returncode == 4
    assert "differs from what the migrations created" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(SchemaMismatch):
        check_schema(fresh_db)


def test_an_added_plain_index_is_not_drift(fresh_db: str) -> None:
    """The index `vedfin db init` suggests on ingested_at may be added to a schema vedfin
    created; a unique one (it would refuse rows the contract allows) is still drift."""
    init_db(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(INGESTED_AT_INDEX)
    init_db(fresh_db)
    check_schema(fresh_db)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("create unique index users_phone_key on app.users (phone)")
    with pytest.raises(SchemaMismatch, match="users_phone_key"):
        init_db(fresh_db)
    with pytest.raises(SchemaMismatch):
        check_schema(fresh_db)


def test_foreign_app_schema_that_breaks_the_contract_is_refused(fresh_db: str) -> None:
    """A schema app vedfin did not create is the platform's: adopted when it follows the
    contract (tests/test_live_operation.py), refused, naming what is missing, when not."""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("create schema app; create table app.users (id int primary key, name text)")
    with pytest.raises(SchemaMismatch, match="does not follow the data contract: missing") as exc:
        init_db(fresh_db)
    assert "app.users.email" in str(exc.value) and "app.behavior_logs" in str(exc.value)
    with psycopg.connect(fresh_db) as conn:  # nothing recorded
        recorded = conn.execute("select to_regclass('vedfin_meta.schema_migrations')").fetchone()
    assert recorded == (None,)
    with psycopg.connect(fresh_db) as conn:  # nothing was lost
        cols = conn.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'app' and table_name = 'users' order by 1"
        ).fetchall()
    assert cols == [("id",), ("name",)]
