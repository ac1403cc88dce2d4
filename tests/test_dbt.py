"""The dbt project on real data: builds green, grants hold, incremental equals full refresh."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest
from psycopg import sql

from tests.conftest import _recreate_database, run_cli
from tests.test_seeds_gen import REASONS_SQL
from vedfin.bench_build import MARTS
from vedfin.config import Settings, with_database

END = date(2026, 11, 20)
INCREMENTAL = ("int_behavior_logs_classified", "int_user_days", "int_sessions")


def _db(settings: Settings, name: str) -> str:
    _recreate_database(settings.database_url, name)
    return with_database(settings.database_url, name)


def _cli_ok(*args: str, url: str) -> str:
    result = run_cli(*args, env={"DATABASE_URL": url, "DBT_TARGET": "test"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def built_db(settings: Settings) -> str:
    """The test scenario, seeded and built through `vedfin build` with the test target."""
    url = _db(settings, "vedfin_dbt_built")
    _cli_ok(
        "seed",
        "--scenario",
        "test",
        "--end-date",
        END.isoformat(),
        "--bad-events",
        "0.05",
        "-q",
        url=url,
    )
    out = _cli_ok("build", "--as-of", END.isoformat(), url=url)
    assert "Completed successfully" in out
    return url


def test_build_creates_every_mart_with_rows_and_unique_indexes(built_db: str) -> None:
    with psycopg.connect(built_db) as conn:
        for mart in MARTS:
            count = conn.execute(
                sql.SQL("select count(*) from marts.{}").format(sql.Identifier(mart))
            ).fetchone()
            assert count is not None and count[0] > 0, mart
            unique = conn.execute(
                """select count(*) from pg_indexes
                   where schemaname = 'marts' and tablename = %s and indexdef like 'CREATE UNIQUE%%'""",
                (mart,),
            ).fetchone()
            assert unique is not None and unique[0] >= 1, mart
        days = conn.execute(
            "select min(activity_date), max(activity_date), count(*) from marts.fct_daily_active_users"
        ).fetchone()
        first_signup = conn.execute(
            "select min((created_at at time zone 'Asia/Ho_Chi_Minh')::date) from app.users"
        ).fetchone()
        assert days is not None and first_signup is not None
        assert days[0] == first_signup[0] and days[1] == END
        assert days[2] == (END - first_signup[0]).days + 1  # every date present


def test_raw_equals_valid_plus_rejected_and_reasons_match(built_db: str) -> None:
    with psycopg.connect(built_db) as conn:
        raw = conn.execute("select count(*) from app.behavior_logs").fetchone()
        valid = conn.execute("select count(*) from intermediate.int_events_valid").fetchone()
        rejected = dict(
            conn.execute(
                "select reason, count(*) from audit.rejected_behavior_logs group by 1"
            ).fetchall()
        )
    assert raw is not None and valid is not None
    assert raw[0] == valid[0] + sum(rejected.values())
    independent = {k: v for k, v in _reasons(built_db).items() if k != "valid"}
    assert rejected == independent
    assert set(rejected) == {
        "unknown_user",
        "unknown_event_type",
        "future_timestamp",
        "before_signup",
        "duplicate",
    }


def _reasons(url: str) -> dict[str, int]:
    from seeds_gen.reference import EVENT_TYPES

    with psycopg.connect(url) as conn:
        return dict(
            conn.execute(REASONS_SQL, {"types": list(EVENT_TYPES), "as_of": END}).fetchall()
        )  # type: ignore[arg-type]


def test_dau_matches_an_independent_count_from_raw(built_db: str) -> None:
    with psycopg.connect(built_db) as conn:
        mismatches = conn.execute(
            """
            with valid as (
                select b.user_id, (b.occurred_at at time zone 'Asia/Ho_Chi_Minh')::date d
                from app.behavior_logs b join app.users u on u.id = b.user_id
                where b.event_type in ('signup', 'login', 'page_view', 'course_view', 'enroll',
                    'lesson_start', 'lesson_complete', 'quiz_submit', 'video_play',
                    'achievement_unlocked', 'buddy_message', 'logout')
                  and (b.occurred_at at time zone 'Asia/Ho_Chi_Minh')::date <= %(end)s
                  and b.occurred_at >= u.created_at
            )
            select count(*) from marts.fct_daily_active_users f
            where f.dau <> (select count(distinct user_id) from valid where d = f.activity_date)
               or f.mau <> (select count(distinct user_id) from valid
                            where d between f.activity_date - 29 and f.activity_date)
            """,
            {"end": END},
        ).fetchone()
    assert mismatches == (0,)


def test_bi_reader_reads_marts_and_nothing_else(built_db: str, settings: Settings) -> None:
    with psycopg.connect(built_db, autocommit=True) as admin:
        admin.execute("drop role if exists vedfin_bi_login")
        admin.execute("create role vedfin_bi_login login password 'bi-test-only' in role bi_reader")
        login = admin.execute(
            "select rolcanlogin from pg_roles where rolname = 'bi_reader'"
        ).fetchone()
        assert login == (False,)  # bi_reader itself cannot log in
    params = settings.pg_params
    try:
        with psycopg.connect(
            host=params.get("host"),
            port=params.get("port"),
            dbname=psycopg.conninfo.conninfo_to_dict(built_db)["dbname"],
            user="vedfin_bi_login",
            password="bi-test-only",
            autocommit=True,
        ) as bi:
            for mart in MARTS:
                bi.execute(sql.SQL("select * from marts.{} limit 1").format(sql.Identifier(mart)))
            for forbidden in (
                "app.users",
                "app.behavior_logs",
                "audit.rejected_behavior_logs",
                "staging.stg_app__users",
                "intermediate.int_events_valid",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    bi.execute(f"select * from {forbidden} limit 1")
    finally:
        with psycopg.connect(built_db, autocommit=True) as admin:
            admin.execute("drop role if exists vedfin_bi_login")


def test_dim_users_and_leaderboard_carry_no_pii(built_db: str) -> None:
    with psycopg.connect(built_db) as conn:
        cols = {
            r[0]
            for r in conn.execute(
                "select column_name from information_schema.columns where table_schema = 'marts'"
            )
        }
        assert not cols & {"email", "phone", "full_name"}
        leaks = conn.execute(
            """select count(*) from marts.fct_leaderboard l join app.users u on u.id = l.user_id
               where l.display_name = u.full_name or l.display_name like '%%@%%'
                  or l.display_name ~ '[0-9]{6}'"""
        ).fetchone()
        assert leaks == (0,)


@pytest.mark.parametrize(
    ("append_days", "new_as_of"),
    [
        (2, "2026-11-22"),  # the next daily run, within the lookback window
        (6, "2026-11-26"),  # runs missed for longer than lookback_days (3): no date skipped
    ],
    ids=["next-run", "missed-runs"],
)
def test_incremental_equals_full_refresh_after_append(
    settings: Settings, append_days: int, new_as_of: str
) -> None:
    url = _db(settings, f"vedfin_dbt_incremental_{append_days}")
    _cli_ok(
        "seed",
        "--scenario",
        "dev",
        "--end-date",
        END.isoformat(),
        "--bad-events",
        "0.02",
        "-q",
        url=url,
    )
    _cli_ok("build", "--as-of", END.isoformat(), url=url)
    _cli_ok("seed", "--append-days", str(append_days), "--bad-events", "0.02", "-q", url=url)
    out = _cli_ok("build", "--as-of", new_as_of, url=url)
    assert "full refresh" not in out  # this one really was incremental
    tables = [("marts", m) for m in MARTS] + [("intermediate", t) for t in INCREMENTAL]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create schema snap")
        for schema, table in tables:
            conn.execute(
                sql.SQL("create table snap.{} as select * from {}.{}").format(
                    sql.Identifier(table), sql.Identifier(schema), sql.Identifier(table)
                )
            )
    _cli_ok("build", "--as-of", new_as_of, "--full-refresh", url=url)
    with psycopg.connect(url) as conn:
        for schema, table in tables:
            diff = conn.execute(
                sql.SQL(
                    "select (select count(*) from (select * from snap.{t} except all "
                    "select * from {s}.{t}) a), (select count(*) from (select * from {s}.{t} "
                    "except all select * from snap.{t}) b), (select count(*) from {s}.{t})"
                ).format(t=sql.Identifier(table), s=sql.Identifier(schema))
            ).fetchone()
            assert diff is not None and diff[0] == 0 and diff[1] == 0, (table, diff)
            assert diff[2] > 0, table


def test_an_earlier_as_of_date_rebuilds_in_full(settings: Settings) -> None:
    """Incremental models only move forward: a build for an earlier as-of is a full refresh."""
    url = _db(settings, "vedfin_dbt_as_of_back")
    _cli_ok("seed", "--scenario", "test", "--end-date", END.isoformat(), "-q", url=url)
    _cli_ok("build", "--as-of", END.isoformat(), url=url)
    out = _cli_ok("build", "--as-of", "2026-11-15", url=url)
    assert "as-of 2026-11-15 is before the last build's (2026-11-20): full refresh" in out
    with psycopg.connect(url) as conn:
        last = conn.execute(
            "select max(activity_date) from marts.fct_daily_active_users"
        ).fetchone()
        later = conn.execute(
            "select count(*) from intermediate.int_user_days where activity_date > '2026-11-15'"
        ).fetchone()
    assert last == (date(2026, 11, 15),) and later == (0,)
    out = _cli_ok("build", "--as-of", "2026-11-16", url=url)
    assert "full refresh" not in out
