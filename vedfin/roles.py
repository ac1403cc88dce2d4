"""The database roles of each environment, as code (`vedfin db roles --env ...`).

- ``bi_reader``: ``SELECT`` on ``marts`` in every environment, nothing in ``app`` or
  ``audit``; a group role without login. BI tools and the analytics API log in as
  ``bi_reader_login``, a member of it and nothing else.
- ``vedfin_admin_browser`` (the role NocoDB connects as): everything on ``app``, ``marts``
  and ``audit`` in dev; ``SELECT`` only in staging and prod, without the PII columns of
  ``app.users`` (email, full_name, phone); in prod every statement it runs is audit-logged.

Query logging per environment: ``log_min_duration_statement`` (dev off, staging 500 ms,
prod 200 ms) on the database, and ``pg_stat_statements`` where the server has it. In prod
the admin browser's statements are all logged: through pgaudit when the server loads it,
otherwise ``log_statement = 'all'`` on the role. Both need a superuser; on a managed
service without one, the same settings go in its parameter group (the README says how).

Idempotent: every run brings the roles to exactly these grants (revoking what an earlier
run for another environment granted). Passwords come from the environment
(``BI_READER_PASSWORD``, ``ADMIN_BROWSER_PASSWORD``), never from the repository; prod
refuses a role without one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from vedfin.db import connect, describe_target
from vedfin.errors import VedfinError

ENVIRONMENTS = ("dev", "staging", "prod")
BI_READER = "bi_reader"
"""The group role the marts are granted to (dbt's grants); it does not log in itself."""
BI_LOGIN = "bi_reader_login"
"""The login role BI tools and the analytics API connect as: a member of bi_reader only."""
ADMIN_BROWSER = "vedfin_admin_browser"
PII_COLUMNS = ("email", "full_name", "phone")
SCHEMAS = ("app", "marts", "audit")
PASSWORD_ENV = {BI_LOGIN: "BI_READER_PASSWORD", ADMIN_BROWSER: "ADMIN_BROWSER_PASSWORD"}
SLOW_QUERY_MS = {"dev": -1, "staging": 500, "prod": 200}
"""log_min_duration_statement per environment (-1: off)."""


@dataclass
class RolesReport:
    env: str
    target: str
    lines: list[str] = field(default_factory=list)
    audit: str = "none"  # "pgaudit", "log_statement", or "none"
    pg_stat_statements: str = "unavailable"  # "collecting", "installed, not loaded", ...

    def say(self, line: str) -> None:
        self.lines.append(line)


def _superuser(conn: psycopg.Connection) -> bool:
    row = conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone()
    return bool(row and row[0])


def _loaded(conn: psycopg.Connection, library: str) -> bool:
    row = conn.execute("select current_setting('shared_preload_libraries')").fetchone()
    return library in [p.strip() for p in (row[0] if row else "").split(",")]


def _available(conn: psycopg.Connection, extension: str) -> bool:
    row = conn.execute(
        "select 1 from pg_available_extensions where name = %s", (extension,)
    ).fetchone()
    return row is not None


def _ensure_role(conn: psycopg.Connection, role: str, env: str, report: RolesReport) -> None:
    password = os.environ.get(PASSWORD_ENV[role]) or None
    if env == "prod" and password is None:
        raise VedfinError(
            f"{PASSWORD_ENV[role]} is not set: prod roles log in with a password from the "
            "environment"
        )
    exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
    verb = "alter" if exists else "create"
    conn.execute(
        sql.SQL("{} role {} login password {}").format(
            sql.SQL(verb), sql.Identifier(role), sql.Literal(password)
        )
    )
    conn.execute(
        sql.SQL("comment on role {} is {}").format(
            sql.Identifier(role), sql.Literal(f"vedfin environment: {env}")
        )
    )
    how = f"password from ${PASSWORD_ENV[role]}" if password else "no password (trust auth only)"
    report.say(f"role {role}: {'updated' if exists else 'created'}, login, {how}")


def _ensure_group(conn: psycopg.Connection, role: str, report: RolesReport) -> None:
    exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
    verb = "alter" if exists else "create"
    conn.execute(sql.SQL("{} role {} nologin").format(sql.SQL(verb), sql.Identifier(role)))
    report.say(f"role {role}: {'updated' if exists else 'created'}, no login (a group role)")


def _schemas(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "select nspname from pg_namespace where nspname = any(%s) order by 1", (list(SCHEMAS),)
    ).fetchall()
    return [r[0] for r in rows]


def _revoke_everything(conn: psycopg.Connection, role: str, schemas: list[str]) -> None:
    r = sql.Identifier(role)
    for schema in schemas:
        s = sql.Identifier(schema)
        conn.execute(sql.SQL("revoke all on all tables in schema {} from {}").format(s, r))
        conn.execute(sql.SQL("revoke all on all sequences in schema {} from {}").format(s, r))
        conn.execute(sql.SQL("revoke all on schema {} from {}").format(s, r))
        conn.execute(
            sql.SQL("alter default privileges in schema {} revoke all on tables from {}").format(
                s, r
            )
        )
    # column grants are not covered by "all tables": take back any on app.users
    if "app" in schemas and conn.execute("select to_regclass('app.users')").fetchone() != (None,):
        cols = [c for (c,) in conn.execute(_USERS_COLUMNS)]
        if cols:
            conn.execute(
                sql.SQL("revoke all ({}) on app.users from {}").format(
                    sql.SQL(", ").join(map(sql.Identifier, cols)), r
                )
            )


_USERS_COLUMNS = """select column_name from information_schema.columns
                    where table_schema = 'app' and table_name = 'users' order by ordinal_position"""


def _grant_admin(conn: psycopg.Connection, env: str, schemas: list[str]) -> list[str]:
    r = sql.Identifier(ADMIN_BROWSER)
    said = []
    for schema in schemas:
        s = sql.Identifier(schema)
        conn.execute(sql.SQL("grant usage on schema {} to {}").format(s, r))
        if env == "dev":
            conn.execute(sql.SQL("grant all on all tables in schema {} to {}").format(s, r))
            conn.execute(sql.SQL("grant all on all sequences in schema {} to {}").format(s, r))
            conn.execute(sql.SQL("grant create on schema {} to {}").format(s, r))
            said.append(f"all on {schema}")
            continue
        tables = [
            t
            for (t,) in conn.execute(
                "select tablename from pg_tables where schemaname = %s order by 1", (schema,)
            )
        ] + [
            v
            for (v,) in conn.execute(
                "select viewname from pg_views where schemaname = %s order by 1", (schema,)
            )
        ]
        for table in tables:
            rel = sql.Identifier(schema, table)
            if (schema, table) == ("app", "users"):
                cols = [c for (c,) in conn.execute(_USERS_COLUMNS) if c not in PII_COLUMNS]
                conn.execute(
                    sql.SQL("grant select ({}) on {} to {}").format(
                        sql.SQL(", ").join(map(sql.Identifier, cols)), rel, r
                    )
                )
            else:
                conn.execute(sql.SQL("grant select on {} to {}").format(rel, r))
        said.append(f"select on {schema}" + (" (app.users without PII)" if schema == "app" else ""))
    return said


def _audit(conn: psycopg.Connection, env: str, report: RolesReport) -> None:
    r = sql.Identifier(ADMIN_BROWSER)
    row = conn.execute(
        "select coalesce(rolconfig, '{}') from pg_roles where rolname = %s", (ADMIN_BROWSER,)
    ).fetchone()
    for entry in row[0] if row else []:
        name = entry.split("=", 1)[0]
        if name in ("pgaudit.log", "log_statement"):
            conn.execute(sql.SQL("alter role {} reset {}").format(r, sql.SQL(name)))
    if env != "prod":
        report.audit = "none"
        return
    if _loaded(conn, "pgaudit"):
        conn.execute("create extension if not exists pgaudit")
        conn.execute(sql.SQL("alter role {} set pgaudit.log = 'all'").format(r))
        report.audit = "pgaudit"
        report.say(f"audit: pgaudit.log = 'all' on {ADMIN_BROWSER}")
    else:
        conn.execute(sql.SQL("alter role {} set log_statement = 'all'").format(r))
        report.audit = "log_statement"
        report.say(
            f"audit: log_statement = 'all' on {ADMIN_BROWSER} (pgaudit is not loaded on this "
            "server: every statement of the role goes to the server log)"
        )


def _query_logging(conn: psycopg.Connection, env: str, report: RolesReport) -> None:
    ms = SLOW_QUERY_MS[env]
    db = conn.execute("select current_database()").fetchone()
    assert db is not None
    conn.execute(
        sql.SQL("alter database {} set log_min_duration_statement = {}").format(
            sql.Identifier(db[0]), sql.Literal(ms)
        )
    )
    report.say(
        "query logging: log_min_duration_statement = "
        + ("-1 (off)" if ms < 0 else f"{ms} ms")
        + f" on database {db[0]} (new sessions)"
    )
    if not _available(conn, "pg_stat_statements"):
        report.pg_stat_statements = "unavailable"
        report.say("pg_stat_statements: not available on this server")
        return
    conn.execute("create extension if not exists pg_stat_statements")
    if _loaded(conn, "pg_stat_statements"):
        report.pg_stat_statements = "collecting"
        report.say("pg_stat_statements: installed and collecting (`vedfin db slow`)")
    else:
        report.pg_stat_statements = "installed, not loaded"
        report.say(
            "pg_stat_statements: installed, but the server does not load it: add it to "
            "shared_preload_libraries and restart to collect"
        )


def ensure_browser_database(url: str, name: str, report: RolesReport) -> None:
    """A database ``name`` owned by the admin-browser role (NocoDB keeps its metadata there,
    apart from the data it browses)."""
    with connect(url, autocommit=True) as conn:
        found = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if not found:
            conn.execute(
                sql.SQL("create database {} owner {}").format(
                    sql.Identifier(name), sql.Identifier(ADMIN_BROWSER)
                )
            )
        report.say(f"database {name}: {'exists' if found else 'created'}, owned by {ADMIN_BROWSER}")


def apply_roles(url: str, env: str, browser_database: str | None = None) -> RolesReport:
    """Create or update the roles, grants and logging of ``env`` on the database at ``url``."""
    if env not in ENVIRONMENTS:
        raise VedfinError(f"--env must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")
    report = RolesReport(env, describe_target(url))
    with connect(url) as conn:
        if not _superuser(conn):
            raise VedfinError(
                f"vedfin db roles needs a superuser on {report.target} (roles, audit and logging "
                "settings); on a managed service, apply the README's settings by hand"
            )
        with conn.transaction():
            _ensure_group(conn, BI_READER, report)
            for role in (BI_LOGIN, ADMIN_BROWSER):
                _ensure_role(conn, role, env, report)
            group, member = sql.Identifier(BI_READER), sql.Identifier(BI_LOGIN)
            conn.execute(sql.SQL("grant {} to {}").format(group, member))
            schemas = _schemas(conn)
            _revoke_everything(conn, ADMIN_BROWSER, schemas)
            said = _grant_admin(conn, env, schemas)
            report.say(f"{ADMIN_BROWSER}: " + ("; ".join(said) or "no schema to grant yet"))
            if "marts" in schemas:
                conn.execute(
                    sql.SQL("grant usage on schema marts to {}").format(sql.Identifier(BI_READER))
                )
                conn.execute(
                    sql.SQL("grant select on all tables in schema marts to {}").format(
                        sql.Identifier(BI_READER)
                    )
                )
            report.say(
                f"{BI_READER}: select on marts (nothing in app or audit), no login; "
                f"{BI_LOGIN} logs in as its member"
            )
            _audit(conn, env, report)
            _query_logging(conn, env, report)
    if browser_database:
        ensure_browser_database(url, browser_database, report)
    return report


@dataclass(frozen=True)
class SlowQuery:
    calls: int
    mean_ms: float
    max_ms: float
    total_ms: float
    rows: int
    query: str


NOT_READS = r"^\s*(create|drop|alter|grant|revoke|comment|insert|delete|truncate|analyze|do)\M"
"""Statements that build or maintain the marts (dbt's), left out of the slow reads."""


def slow_mart_queries(url: str, limit: int = 10) -> list[SlowQuery]:
    """The slowest statements that read the marts, by mean time, from pg_stat_statements."""
    with connect(url) as conn:
        if not _available(conn, "pg_stat_statements"):
            raise VedfinError(f"pg_stat_statements is not available on {describe_target(url)}")
        installed = conn.execute(
            "select 1 from pg_extension where extname = 'pg_stat_statements'"
        ).fetchone()
        if not installed:
            raise VedfinError(
                "pg_stat_statements is not installed in this database: run `vedfin db roles`"
            )
        if not _loaded(conn, "pg_stat_statements"):
            raise VedfinError(
                f"{describe_target(url)} does not load pg_stat_statements: add it to "
                "shared_preload_libraries and restart the server (the embedded one does: "
                "`vedfin down && vedfin up`)"
            )
        rows = conn.execute(
            """select s.calls, s.mean_exec_time, s.max_exec_time, s.total_exec_time, s.rows,
                      s.query
               from pg_stat_statements as s
               where s.dbid = (select oid from pg_database where datname = current_database())
                 and s.query ~* '\\mmarts\\.'
                 and s.query !~* %s
               order by s.mean_exec_time desc
               limit %s""",
            (NOT_READS, limit),
        ).fetchall()
    return [
        SlowQuery(int(c), float(m), float(x), float(t), int(r), str(q)) for c, m, x, t, r, q in rows
    ]
