"""Connections with clear errors, and the versioned migrations of the raw schema ``app``.

Migrations live in ``vedfin/migrations/V<nnn>__<name>.sql`` and are applied in
order, each in its own transaction, recorded in ``vedfin_meta.schema_migrations``
with a checksum. After applying, the structure of ``app`` (columns, constraints,
indexes) is recorded; a later ``db init`` that finds ``app`` different from that
record refuses, rather than building on a schema it does not understand.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from vedfin.errors import ConnectionFailed, SchemaMismatch, UnsupportedServer

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
META_SCHEMA = "vedfin_meta"
_NAME = re.compile(r"^V(\d{3})__([a-z0-9_]+)\.sql$")
SUPPORTED_MAJORS = (15, 16, 17, 18)
"""PostgreSQL major versions the project supports (make test runs the dbt suite on 15 and
18); older ones are refused by `connect`, newer ones are accepted, untested."""


def describe_target(url: str) -> str:
    p = conninfo_to_dict(url)
    return f"{p.get('host', 'localhost')}:{p.get('port', 5432)}/{p.get('dbname', '')}"


def server_version_text(num: int) -> str:
    """150020 -> '15.20' (PostgreSQL 10 and later number versions major * 10000 + minor)."""
    if num >= 100000:
        return f"{num // 10000}.{num % 10000}"
    return f"{num // 10000}.{num // 100 % 100}"


def check_server_version(conn: psycopg.Connection, url: str) -> None:
    """Refuse a server older than the oldest supported version, in one line (exit code 2)."""
    require_supported_version(conn.info.server_version, url)


def require_supported_version(num: int, url: str) -> None:
    if num // 10000 < SUPPORTED_MAJORS[0]:
        supported = ", ".join(str(v) for v in SUPPORTED_MAJORS)
        raise UnsupportedServer(
            f"PostgreSQL {server_version_text(num)} at {describe_target(url)} is not supported: "
            f"vedfin needs PostgreSQL {supported} (upgrade the server, or unset DATABASE_URL "
            "to use the embedded PostgreSQL 18)"
        )


def connect(url: str, *, autocommit: bool = False, connect_timeout: int = 5) -> psycopg.Connection:
    """A psycopg connection to a supported server, or a one-line error naming the host."""
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=connect_timeout)
    except psycopg.OperationalError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        lines = [ln for ln in lines if ln.rstrip(":") != "connection failed"] or [
            type(exc).__name__
        ]
        reason = " ".join(lines).removeprefix("connection failed: ").rstrip(".")
        raise ConnectionFailed(
            f"cannot connect to PostgreSQL at {describe_target(url)} ({reason}); "
            "check DATABASE_URL (host, port, user, password, database) and that the server "
            "is running and reachable; unset DATABASE_URL to use the embedded server."
        ) from None
    try:
        check_server_version(conn, url)
    except UnsupportedServer:
        conn.close()
        raise
    return conn


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _NAME.match(path.name)
        if match:
            found.append(Migration(match.group(1), match.group(2), path))
    return found


FINGERPRINT_SQL = """
select 'column ' || c.table_name || '.' || c.column_name || ' ' || c.data_type
       || case when c.is_nullable = 'NO' then ' not null' else '' end
from information_schema.columns c
where c.table_schema = 'app'
union all
select 'constraint ' || t.relname || '.' || con.conname || ' ' || pg_get_constraintdef(con.oid)
from pg_constraint con
join pg_class t on t.oid = con.conrelid
join pg_namespace n on n.oid = t.relnamespace
where n.nspname = 'app'
union all
select 'index ' || indexdef
from pg_indexes
where schemaname = 'app'
"""


def schema_fingerprint(conn: psycopg.Connection) -> list[str]:
    """What defines the structure of ``app``, one sorted line per element."""
    return sorted(row[0] for row in conn.execute(FINGERPRINT_SQL).fetchall())


APP_MIGRATION = "001"
"""The migration that creates the platform's tables; every later one is vedfin's own
bookkeeping (schema vedfin_meta)."""
PLATFORM_CHECKSUM = "platform"
"""Recorded for the app migration when the schema app was there before vedfin: the
platform owns it, vedfin only reads it (and checks it against the contract)."""

CONTRACT_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": (
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
    ),
    "courses": ("id", "slug", "title", "category", "level", "published_at"),
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
    "behavior_logs": (
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
    ),
    "achievements": ("id", "code", "name", "points"),
    "user_achievements": ("user_id", "achievement_id", "unlocked_at"),
    "streaks": ("user_id", "current_days", "longest_days", "last_active_date"),
    "buddy_groups": ("id", "name", "created_at"),
    "buddy_group_members": ("group_id", "user_id", "joined_at"),
}
"""The raw tables and columns the contract (../shared/CONTRACT.md) fixes."""
RAW_TABLES = tuple(CONTRACT_COLUMNS)
"""The raw tables, parents before the tables that reference them."""


def contract_gaps(conn: psycopg.Connection) -> list[str]:
    """What the schema app lacks of the contract's tables and columns (empty: it follows it)."""
    present = {
        (t, c)
        for t, c in conn.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_schema = 'app'"
        ).fetchall()
    }
    tables = {t for t, _ in present}
    gaps = []
    for table, columns in CONTRACT_COLUMNS.items():
        if table not in tables:
            gaps.append(f"table app.{table}")
            continue
        gaps += [f"column app.{table}.{c}" for c in columns if (table, c) not in present]
    return gaps


INGESTED_AT_INDEX = (
    "create index concurrently behavior_logs_ingested_at on app.behavior_logs (ingested_at)"
)
"""The index on ``app.behavior_logs (ingested_at)`` suggested to a platform that has none."""


def arrival_index_advice(conn: psycopg.Connection) -> str | None:
    """What to tell the platform when ``app.behavior_logs`` has no index led by
    ``ingested_at`` (the contract fixes none): without one, every incremental build and
    every five-minute run finds the events that arrived since the last run by reading the
    whole log. None when such an index exists or there is no log."""
    row = conn.execute(
        """select pg_size_pretty(pg_relation_size(c.oid)),
                  exists (select 1 from pg_index as i
                          join pg_attribute as a on a.attrelid = i.indrelid
                                                and a.attnum = i.indkey[0]
                          where i.indrelid = c.oid and i.indisvalid and i.indpred is null
                            and a.attname = 'ingested_at')
           from pg_class as c
           where c.oid = to_regclass('app.behavior_logs')"""
    ).fetchone()
    if row is None or row[1]:
        return None
    return (
        f"app.behavior_logs ({row[0]}) has no index on ingested_at, so every incremental "
        "build and five-minute run reads the whole log to find the events that arrived "
        f"since the last one. An index the platform can add without blocking its writes: "
        f"{INGESTED_AT_INDEX}"
    )


def app_is_platforms(conn: psycopg.Connection) -> bool:
    """True when the schema app belongs to the platform (it was there before vedfin)."""
    row = conn.execute(
        f"select checksum from {META_SCHEMA}.schema_migrations where version = %s",
        (APP_MIGRATION,),
    ).fetchone()
    return row is not None and row[0] == PLATFORM_CHECKSUM


@dataclass
class InitResult:
    applied: list[str]
    already: list[str]
    platform_app: bool = False


def _app_tables(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "select table_name from information_schema.tables where table_schema = 'app' order by 1"
    ).fetchall()
    return [r[0] for r in rows]


def _drift(expected: list[str], actual: list[str]) -> tuple[list[str], list[str]]:
    """What the migrations created that is gone or changed, and what is there that they did
    not create. A plain (non-unique) index added since is not drift: it changes no row any
    writer may write, and it is what ``vedfin db init`` suggests on ``ingested_at``."""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(
        e for e in set(actual) - set(expected) if not e.startswith("index CREATE INDEX ")
    )
    return missing, extra


def _diff(expected: list[str], actual: list[str], limit: int = 8) -> str:
    missing, extra = _drift(expected, actual)
    lines = [f"  missing: {m}" for m in missing[:limit]] + [
        f"  unexpected: {e}" for e in extra[:limit]
    ]
    more = len(missing) + len(extra) - len(lines)
    if more > 0:
        lines.append(f"  ... and {more} more")
    return "\n".join(lines)


def init_db(url: str) -> InitResult:
    """Apply pending migrations idempotently; refuse on a schema that drifted."""
    with connect(url) as conn:
        conn.execute("select pg_advisory_xact_lock(hashtext('vedfin_migrations'))")
        conn.execute(f"create schema if not exists {META_SCHEMA}")
        conn.execute(
            f"""create table if not exists {META_SCHEMA}.schema_migrations (
                version text primary key,
                name text not null,
                checksum text not null,
                applied_at timestamptz not null default now()
            )"""
        )
        conn.execute(
            f"""create table if not exists {META_SCHEMA}.schema_state (
                id boolean primary key default true check (id),
                fingerprint jsonb not null,
                recorded_at timestamptz not null default now()
            )"""
        )
        applied = {
            v: c
            for v, c in conn.execute(
                f"select version, checksum from {META_SCHEMA}.schema_migrations"
            ).fetchall()
        }
        recorded = conn.execute(f"select fingerprint from {META_SCHEMA}.schema_state").fetchone()

        if not applied and _app_tables(conn):
            _adopt_platform_schema(conn, url)
            applied[APP_MIGRATION] = PLATFORM_CHECKSUM
        platform_app = applied.get(APP_MIGRATION) == PLATFORM_CHECKSUM
        if platform_app:
            _require_contract(conn, url)
        for m in migrations():
            allowed = {m.checksum, PLATFORM_CHECKSUM if m.version == APP_MIGRATION else ""}
            if applied.get(m.version, m.checksum) not in allowed:
                raise SchemaMismatch(
                    f"migration V{m.version}__{m.name} was applied with a different checksum; "
                    "migrations are immutable: add a new one instead of editing an old one"
                )
        if recorded is not None:
            actual = schema_fingerprint(conn)
            if any(_drift(recorded[0], actual)):
                raise SchemaMismatch(
                    f"schema app at {describe_target(url)} differs from what the migrations "
                    f"created:\n{_diff(recorded[0], actual)}\n"
                    "Refusing to continue; restore the schema or recreate the database."
                )

        result = InitResult(applied=[], already=[], platform_app=platform_app)
        for m in migrations():
            if m.version in applied:
                result.already.append(m.path.name)
                continue
            conn.execute(m.sql)
            conn.execute(
                f"insert into {META_SCHEMA}.schema_migrations (version, name, checksum) "
                "values (%s, %s, %s)",
                (m.version, m.name, m.checksum),
            )
            result.applied.append(m.path.name)
        if not platform_app and (result.applied or recorded is None):
            conn.execute(
                f"""insert into {META_SCHEMA}.schema_state (id, fingerprint) values (true, %s)
                    on conflict (id) do update set fingerprint = excluded.fingerprint,
                    recorded_at = now()""",
                (json.dumps(schema_fingerprint(conn)),),
            )
        conn.commit()
    return result


def _adopt_platform_schema(conn: psycopg.Connection, url: str) -> None:
    """The schema app was there before vedfin: the platform's. Check it against the contract
    and record that vedfin only reads it (no app migration, no drift fingerprint)."""
    _require_contract(conn, url)
    conn.execute(
        f"insert into {META_SCHEMA}.schema_migrations (version, name, checksum) "
        "values (%s, 'app_schema owned by the platform', %s)",
        (APP_MIGRATION, PLATFORM_CHECKSUM),
    )


def _require_contract(conn: psycopg.Connection, url: str) -> None:
    gaps = contract_gaps(conn)
    if gaps:
        tables = [g.removeprefix("table ") for g in gaps if g.startswith("table ")]
        columns = [g.removeprefix("column ") for g in gaps if g.startswith("column ")]
        parts = [f"tables {', '.join(tables)}"] if tables else []
        if columns:
            more = f" and {len(columns) - 8} more" if len(columns) > 8 else ""
            parts.append(f"columns {', '.join(columns[:8])}{more}")
        raise SchemaMismatch(
            f"schema app at {describe_target(url)} does not follow the data contract: "
            f"missing {'; '.join(parts)}. vedfin reads the platform's tables as CONTRACT.md "
            "fixes them."
        )


def check_schema(url: str) -> None:
    """Raise unless ``app`` exists, is migrated to the latest version and has not drifted."""
    with connect(url) as conn:
        try:
            rows = conn.execute(f"select version from {META_SCHEMA}.schema_migrations").fetchall()
            recorded = conn.execute(
                f"select fingerprint from {META_SCHEMA}.schema_state"
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            raise SchemaMismatch(
                f"the database {describe_target(url)} has no app schema yet: run `vedfin db init`"
            ) from None
        pending = {m.version for m in migrations()} - {r[0] for r in rows}
        if pending:
            raise SchemaMismatch(f"migrations pending ({sorted(pending)}): run `vedfin db init`")
        if app_is_platforms(conn):
            _require_contract(conn, url)
        elif recorded is not None and any(_drift(recorded[0], schema_fingerprint(conn))):
            raise SchemaMismatch("schema app differs from its migrations: run `vedfin db init`")
