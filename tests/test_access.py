"""Access for people and programs: the roles of each environment, as `vedfin db roles`
creates them, each connecting for real and trying what it may and may not do."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.conftest import _must_not_skip, built_database, run_cli
from vedfin.config import Settings
from vedfin.roles import ADMIN_BROWSER, BI_LOGIN, BI_READER

END = "2026-11-20"
PASSWORDS = {"BI_READER_PASSWORD": "bi-test-pw", "ADMIN_BROWSER_PASSWORD": "admin-test-pw"}


@pytest.fixture(scope="module")
def access_db(settings: Settings) -> str:
    return built_database(settings, "vedfin_access", end_date=END)


def _roles(url: str, env: str) -> str:
    done = run_cli("db", "roles", "--env", env, env={"DATABASE_URL": url, **PASSWORDS})
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _as(url: str, role: str) -> str:
    params = conninfo_to_dict(url)
    params["user"] = role
    params["password"] = PASSWORDS[
        "BI_READER_PASSWORD" if role == BI_LOGIN else "ADMIN_BROWSER_PASSWORD"
    ]
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def _allowed(url: str, role: str, statement: str) -> bool:
    """Run ``statement`` as ``role`` in a transaction that is rolled back: was it allowed?"""
    with psycopg.connect(_as(url, role)) as conn:
        try:
            conn.execute(statement)
            return True
        except psycopg.errors.InsufficientPrivilege:
            return False
        finally:
            conn.rollback()


READS = {
    "marts": "select * from marts.fct_daily_active_users limit 1",
    "audit": "select * from audit.rejected_behavior_logs limit 1",
    "app": "select * from app.lessons limit 1",
    "app.users (no PII)": "select id, province, persona, created_at from app.users limit 1",
}
PII = {c: f"select {c} from app.users limit 1" for c in ("email", "full_name", "phone")}
WRITES = {
    "insert": "insert into app.buddy_groups (name, created_at) values ('x', now())",
    "update": "update app.lessons set points = points where id = 1",
    "delete": "delete from app.user_achievements",
    "insert mart": "insert into marts.dim_courses select * from marts.dim_courses limit 0",
    "ddl": "create table app.scratch_by_role (id int)",
    "ddl mart": "alter table marts.fct_leaderboard add column x int",
}


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_admin_browser_can_do_exactly_what_its_environment_allows(access_db: str, env: str) -> None:
    said = _roles(access_db, env)
    reads = {name: _allowed(access_db, ADMIN_BROWSER, q) for name, q in READS.items()}
    pii = {name: _allowed(access_db, ADMIN_BROWSER, q) for name, q in PII.items()}
    writes = {name: _allowed(access_db, ADMIN_BROWSER, q) for name, q in WRITES.items()}
    assert all(reads.values()), reads
    if env == "dev":  # every privilege on the data and to create; the tables stay dbt's own
        assert all(pii.values()), pii
        assert writes == {**dict.fromkeys(WRITES, True), "ddl mart": False}, writes
    else:
        assert not any(pii.values()), pii
        assert not any(writes.values()), writes
    with psycopg.connect(_as(access_db, ADMIN_BROWSER)) as conn:
        log_statement = conn.execute("show log_statement").fetchone()
        slow = conn.execute("show log_min_duration_statement").fetchone()
    expected_slow = {"dev": "-1", "staging": "500ms", "prod": "200ms"}[env]
    assert slow == (expected_slow,)
    if env == "prod":  # the audit setting is in force for the role's sessions
        assert "audit: log_statement = 'all'" in said or "audit: pgaudit.log" in said
        if "audit: log_statement" in said:
            assert log_statement == ("all",)
    else:
        assert log_statement != ("all",)


def test_bi_reader_reads_the_marts_and_nothing_else(access_db: str) -> None:
    _roles(access_db, "prod")
    assert _allowed(access_db, BI_LOGIN, READS["marts"])
    for name in ("audit", "app", "app.users (no PII)"):
        assert not _allowed(access_db, BI_LOGIN, READS[name]), name
    for name, q in WRITES.items():
        assert not _allowed(access_db, BI_LOGIN, q), name
    with psycopg.connect(access_db) as conn:
        roles = dict(conn.execute(
            "select rolname, rolcanlogin from pg_roles where rolname = any(%s)",
            ([BI_READER, BI_LOGIN],),
        ).fetchall())  # fmt: skip
        member = conn.execute("select pg_has_role(%s, %s, 'member')", (BI_LOGIN, BI_READER))
        assert member.fetchone() == (True,)
    assert roles == {BI_READER: False, BI_LOGIN: True}  # bi_reader itself never logs in


def test_grants_survive_the_next_build_and_prod_needs_passwords(access_db: str) -> None:
    _roles(access_db, "staging")
    done = run_cli("build", "--as-of", END, "--full-refresh",
                   env={"DATABASE_URL": access_db, "DBT_TARGET": "test"})  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert _allowed(access_db, ADMIN_BROWSER, READS["marts"])  # the rebuilt tables
    assert not _allowed(access_db, ADMIN_BROWSER, WRITES["insert mart"])
    refused = run_cli(
        "db", "roles", "--env", "prod", env={"DATABASE_URL": access_db}, unset=tuple(PASSWORDS)
    )
    assert refused.returncode != 0
    assert "BI_READER_PASSWORD is not set" in refused.stdout + refused.stderr


def test_db_slow_lists_the_slowest_mart_reads(access_db: str) -> None:
    with psycopg.connect(access_db) as conn:
        preload = conn.execute("show shared_preload_libraries").fetchone()
    if not preload or "pg_stat_statements" not in preload[0]:
        reason = "the server does not load pg_stat_statements (the embedded one does)"
        if _must_not_skip():
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    _roles(access_db, "staging")  # creates the extension in this database
    with psycopg.connect(_as(access_db, BI_LOGIN)) as conn:
        for _ in range(5):
            conn.execute(
                "select cohort_week, week_number, retention_rate from marts.fct_cohort_retention "
                "order by 1, 2"
            ).fetchall()
    done = run_cli("db", "slow", "-n", "50", env={"DATABASE_URL": access_db})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fct_cohort_retention" in done.stdout
    assert "create table" not in done.stdout.lower()  # dbt's own statements are left out
