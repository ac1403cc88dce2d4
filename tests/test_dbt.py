"""The dbt project on real data: builds green, grants hold, incremental equals full refresh.

Every test here runs once per server of the matrix (``pg_server`` in conftest.py): the
resolved server (the embedded PostgreSQL 18 by default) and a throwaway PostgreSQL 15.
"""

from __future__ import annotations

import re
import time
from datetime import date
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.conftest import ROOT, _recreate_database, run_cli
from tests.pg_servers import Server
from tests.test_seeds_gen import REASONS_SQL
from vedfin.config import Settings, with_database

END = date(2026, 11, 20)
INCREMENTAL = ("int_behavior_logs_classified", "int_user_days", "int_sessions")


def _db(server: Server, name: str) -> str:
    _recreate_database(server.admin_url, name)
    return with_database(server.admin_url, name)


def _cli_ok(*args: str, url: str, env: dict[str, str] | None = None) -> str:
    result = run_cli(*args, env={"DATABASE_URL": url, "DBT_TARGET": "test", **(env or {})})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def built_db(pg_server: Server) -> str:
    """The test scenario, seeded and built through `vedfin build` with the test target."""
    url = _db(pg_server, "vedfin_dbt_built")
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
    out = _cli_ok("build", "--as-of", END.isoformat(), "--unit-tests", url=url)
    assert "Completed successfully" in out
    BUILD_OUTPUT[url] = out
    return url


BUILD_OUTPUT: dict[str, str] = {}
"""What `vedfin build` printed for each built database (the fixture's build)."""


def _artifacts(build_output: str) -> Path:
    """The target path of a `vedfin build`, from what it printed: one of its own."""
    from vedfin.dbt import ARTIFACTS_NOTE

    said = [ln for ln in build_output.splitlines() if ARTIFACTS_NOTE in ln]
    assert said, "vedfin build says where its artifacts are"
    artifacts = Path(said[-1].split(ARTIFACTS_NOTE, 1)[1].strip())
    assert artifacts.parent == ROOT / "dbt_project" / "target" / "runs"
    return artifacts


def test_unit_tests_ran_in_the_build(built_db: str) -> None:
    """`vedfin build --unit-tests` ran every unit test of the project on this server."""
    import json

    artifacts = _artifacts(BUILD_OUTPUT[built_db])
    results = json.loads((artifacts / "run_results.json").read_text())
    unit = [r for r in results["results"] if r["unique_id"].startswith("unit_test.")]
    manifest = json.loads((artifacts / "manifest.json").read_text())
    assert len(unit) == len(manifest["unit_tests"]) >= 13
    assert all(r["status"] == "pass" for r in unit)


def test_build_creates_every_mart_with_rows_and_unique_indexes(
    built_db: str, marts: tuple[str, ...]
) -> None:
    with psycopg.connect(built_db) as conn:
        for mart in marts:
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


def test_bi_reader_reads_marts_and_nothing_else(built_db: str, marts: tuple[str, ...]) -> None:
    with psycopg.connect(built_db, autocommit=True) as admin:
        admin.execute("drop role if exists vedfin_bi_login")
        admin.execute("create role vedfin_bi_login login password 'bi-test-only' in role bi_reader")
        login = admin.execute(
            "select rolcanlogin from pg_roles where rolname = 'bi_reader'"
        ).fetchone()
        assert login == (False,)  # bi_reader itself cannot log in
    params = psycopg.conninfo.conninfo_to_dict(built_db)
    try:
        with psycopg.connect(
            host=params.get("host"),
            port=params.get("port"),
            dbname=params["dbname"],
            user="vedfin_bi_login",
            password="bi-test-only",
            autocommit=True,
        ) as bi:
            for mart in marts:
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
        shown = conn.execute(
            """select l.display_name, u.full_name
               from marts.fct_leaderboard l join app.users u on u.id = l.user_id"""
        ).fetchall()
    assert shown and all(name == _masked(full) for name, full in shown)


def _masked(full_name: str) -> str:
    """'Nguyễn Văn An' -> 'Nguyễn V. A.': the family name, then each other name's initial."""
    family, *others = full_name.split()
    return " ".join([family, *(p[0] + "." for p in others)])


@pytest.mark.parametrize(
    ("append_days", "new_as_of"),
    [
        (2, "2026-11-22"),  # the next daily run, within the lookback window
        (6, "2026-11-26"),  # runs missed for longer than lookback_days (3): no date skipped
    ],
    ids=["next-run", "missed-runs"],
)
def test_incremental_equals_full_refresh_after_append(
    pg_server: Server, append_days: int, new_as_of: str, marts: tuple[str, ...]
) -> None:
    url = _db(pg_server, f"vedfin_dbt_incremental_{append_days}")
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
    _assert_incremental_equals_full_refresh(url, new_as_of, marts)


def _assert_incremental_equals_full_refresh(url: str, as_of: str, marts: tuple[str, ...]) -> None:
    """Snapshot the incremental result, rebuild in full at the same as-of, compare."""
    tables = [("marts", m) for m in marts] + [("intermediate", t) for t in INCREMENTAL]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("drop schema if exists snap cascade")
        conn.execute("create schema snap")
        for schema, table in tables:
            conn.execute(
                sql.SQL("create table snap.{} as select * from {}.{}").format(
                    sql.Identifier(table), sql.Identifier(schema), sql.Identifier(table)
                )
            )
    _cli_ok("build", "--as-of", as_of, "--full-refresh", url=url)
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


def test_an_earlier_as_of_date_rebuilds_in_full(pg_server: Server) -> None:
    """Incremental models only move forward: a build for an earlier as-of is a full refresh."""
    url = _db(pg_server, "vedfin_dbt_as_of_back")
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


def test_a_cohort_retention_table_from_before_it_was_incremental_upgrades_itself(
    pg_server: Server,
) -> None:
    """fct_cohort_retention was a table without last_ingested_at before it became
    incremental. The first incremental build on such a table computes it whole and adds
    the column (no --full-refresh, no failed daily build after an upgrade), equal to a
    full refresh."""
    url = _db(pg_server, "vedfin_dbt_cohort_upgrade")
    _cli_ok("seed", "--scenario", "test", "--end-date", END.isoformat(), "-q", url=url)
    _cli_ok("build", "--as-of", END.isoformat(), url=url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("alter table marts.fct_cohort_retention drop column last_ingested_at")
    _cli_ok("seed", "--append-days", "1", "-q", url=url)
    out = _cli_ok("build", "--as-of", "2026-11-21", url=url)
    assert "full refresh" not in out
    with psycopg.connect(url) as conn:
        filled = conn.execute(
            "select count(last_ingested_at) from marts.fct_cohort_retention"
        ).fetchone()
    assert filled is not None and filled[0] > 0
    _assert_incremental_equals_full_refresh(url, "2026-11-21", ("fct_cohort_retention",))


def _insert_events(url: str, rows: list[dict[str, object]]) -> None:
    """Plain INSERTs into app.behavior_logs, as the platform's application writes them."""
    with psycopg.connect(url) as conn:
        for r in rows:
            conn.execute(
                """insert into app.behavior_logs (id, user_id, session_id, event_type, course_id,
                       lesson_id, occurred_at, duration_seconds, device, ingested_at)
                   values (%(id)s, %(user_id)s, %(session_id)s, %(event_type)s, %(course_id)s,
                       %(lesson_id)s, %(occurred_at)s, %(duration_seconds)s, %(device)s,
                       %(ingested_at)s)""",
                {"course_id": None, "lesson_id": None, "duration_seconds": None, **r},
            )
        conn.commit()


def _idle_user(url: str, local_day: str, exclude: tuple[int, ...] = ()) -> int:
    """A user who signed up before 2026-11-10 and has no event on ``local_day``."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            """select u.id from app.users u
               where u.created_at < '2026-11-10' and u.id <> all(%s)
                 and not exists (select 1 from app.behavior_logs b where b.user_id = u.id
                     and (b.occurred_at at time zone 'Asia/Ho_Chi_Minh')::date = %s)
               order by u.id limit 1""",
            (list(exclude), local_day),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_incremental_counts_events_that_arrive_late(
    pg_server: Server, marts: tuple[str, ...]
) -> None:
    """Valid events for dates already built, arriving 1, 3 and 5 days late (inside and beyond
    lookback_days = 3), a late copy of an old event, and ids out of order (a transaction that
    took its ids first commits after one that took later ids): the incremental build counts
    them exactly as a full refresh does."""
    url = _db(pg_server, "vedfin_dbt_late")
    _cli_ok("seed", "--scenario", "dev", "--end-date", END.isoformat(), "-q", url=url)
    _cli_ok("build", "--as-of", END.isoformat(), url=url)
    _cli_ok("seed", "--append-days", "2", "-q", url=url)  # data through 2026-11-22
    with psycopg.connect(url) as conn:
        max_id = conn.execute("select max(id) from app.behavior_logs").fetchone()[0]  # type: ignore[index]
        old = conn.execute(
            """select user_id, session_id, event_type, course_id, lesson_id, occurred_at, device
               from app.behavior_logs b
               where (occurred_at at time zone 'Asia/Ho_Chi_Minh')::date = '2026-11-05'
                 and event_type = 'login'
                 and exists (select 1 from app.users u where u.id = b.user_id
                             and u.created_at <= b.occurred_at)
               order by id limit 1"""
        ).fetchone()
    assert old is not None
    a = _idle_user(url, "2026-11-21")
    # The later transaction (ids max+100) commits first: 1 day late for as-of 2026-11-22.
    _insert_events(
        url,
        [
            {
                "id": max_id + 100,
                "user_id": a,
                "session_id": 990000001,
                "event_type": "login",
                "occurred_at": "2026-11-21 20:00:00+07",
                "device": "web",
                "ingested_at": "2026-11-23 00:05:00+07",
            }
        ],
    )
    out = _cli_ok("build", "--as-of", "2026-11-22", url=url)
    assert "full refresh" not in out and "not counted yet" not in out
    b = _idle_user(url, "2026-11-20", exclude=(a,))
    c = _idle_user(url, "2026-11-18", exclude=(a, b))
    # The earlier transaction (lower ids) commits after that build, stamped 35 minutes
    # before the latest ingested_at the build saw: 3 and 5 days late for as-of 2026-11-23.
    stamp = "2026-11-22 23:30:00+07"
    late = [
        {"id": max_id + 1, "user_id": b, "session_id": 990000002, "event_type": "login",
         "occurred_at": "2026-11-20 21:00:00+07", "device": "ios", "ingested_at": stamp},
        {"id": max_id + 2, "user_id": b, "session_id": 990000002, "event_type": "page_view",
         "occurred_at": "2026-11-20 21:10:00+07", "device": "ios", "ingested_at": stamp},
        {"id": max_id + 3, "user_id": c, "session_id": 990000003, "event_type": "login",
         "occurred_at": "2026-11-18 07:00:00+07", "device": "android", "ingested_at": stamp},
        {"id": max_id + 4, "user_id": old[0], "session_id": old[1], "event_type": old[2],
         "course_id": old[3], "lesson_id": old[4], "occurred_at": old[5], "device": old[6],
         "ingested_at": stamp},  # a late copy of an old event: a duplicate
    ]  # fmt: skip
    _insert_events(url, late)
    out = _cli_ok("build", "--as-of", "2026-11-23", url=url)
    assert "full refresh" not in out and "not counted yet" not in out
    with psycopg.connect(url) as conn:
        reasons = dict(
            conn.execute(
                "select event_id, reason from intermediate.int_behavior_logs_classified "
                "where event_id > %s",
                (max_id,),
            ).fetchall()
        )
        active = conn.execute(
            """select count(*) from intermediate.int_user_days
               where (user_id, activity_date) in ((%s, '2026-11-21'), (%s, '2026-11-20'),
                                                  (%s, '2026-11-18'))""",
            (a, b, c),
        ).fetchone()
    assert reasons == {
        max_id + 1: "valid",
        max_id + 2: "valid",
        max_id + 3: "valid",
        max_id + 4: "duplicate",
        max_id + 100: "valid",
    }
    assert active == (3,)
    _assert_incremental_equals_full_refresh(url, "2026-11-23", marts)


def test_a_full_refresh_vacuums_and_analyzes_the_tables_it_wrote(built_db: str) -> None:
    """The fixture's first build after the seed was a full refresh: before it returned it
    vacuumed and analyzed every table it wrote (a manual VACUUM sets last_vacuum, which
    autovacuum never does), so the incremental runs after it do not compete with
    autovacuum for those tables, and the planner has their statistics."""
    out = BUILD_OUTPUT[built_db]
    assert "full refresh" in out and "vacuumed and analyzed the" in out
    with psycopg.connect(built_db) as conn:
        rows = conn.execute(
            """select s.relname, s.last_vacuum is not null, s.last_analyze is not null,
                      exists (select 1 from pg_stats p
                              where p.schemaname = s.schemaname and p.tablename = s.relname)
               from pg_stat_user_tables s
               where s.schemaname = 'intermediate' and s.relname = any(%s)""",
            (list(INCREMENTAL),),
        ).fetchall()
    assert sorted(rows) == sorted((t, True, True, True) for t in INCREMENTAL)


def test_an_incremental_build_never_waits_for_a_vacuum(built_db: str) -> None:
    """(Auto)vacuum holds SHARE UPDATE EXCLUSIVE on the table it cleans, and PostgreSQL
    cancels an autovacuum that a stronger lock waits for: a five-minute run that asked for
    ACCESS EXCLUSIVE on an incremental table (ALTER TABLE, even one that changes nothing)
    would cancel every vacuum of it. Holding that lock on every incremental table, a whole
    incremental build passes within a lock timeout."""
    with psycopg.connect(built_db) as holder:
        for table in INCREMENTAL:
            holder.execute(f"lock table intermediate.{table} in share update exclusive mode")
        out = _cli_ok(
            "build",
            "--as-of",
            END.isoformat(),
            url=built_db,
            env={"PGOPTIONS": "-c lock_timeout=10s"},
        )
        assert "full refresh" not in out
        holder.rollback()


def test_the_daily_move_of_days_since_last_active_is_updated_in_place(pg_server: Server) -> None:
    """A new as-of date changes days_since_last_active on every row of
    fct_student_behavior_patterns (its post-hook). The table keeps half of each page free
    (fillfactor 50, set and the rows rewritten once after each full build, or on the first
    build of a table made before), so PostgreSQL updates each row inside its page (a HOT
    update) instead of writing a new entry in the index for every user every day."""
    url = _db(pg_server, "vedfin_dbt_fillfactor")
    _cli_ok("seed", "--scenario", "test", "--end-date", END.isoformat(), "-q", url=url)
    _cli_ok("build", "--as-of", END.isoformat(), url=url)
    table = "marts.fct_student_behavior_patterns"

    def options() -> list[str]:
        with psycopg.connect(url) as conn:
            row = conn.execute("select reloptions from pg_class where oid = %s::regclass", (table,))
            return list((row.fetchone() or [None])[0] or [])

    def updates() -> tuple[int, int]:
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "select n_tup_upd, n_tup_hot_upd from pg_stat_user_tables where relid = %s::regclass",
                (table,),
            ).fetchone()
            assert row is not None
            return int(row[0]), int(row[1])

    assert options() == ["fillfactor=50"]
    with psycopg.connect(url) as conn:  # the full build's rows were rewritten with that room
        clustered = conn.execute(
            "select bool_or(indisclustered) from pg_index where indrelid = %s::regclass", (table,)
        ).fetchone()
    assert clustered == (True,)
    with psycopg.connect(url, autocommit=True) as conn:  # as a table built before this change
        conn.execute(f"alter table {table} reset (fillfactor)")
        rows = conn.execute(f"select count(*) from {table}").fetchone()
    assert rows is not None and rows[0] > 0
    before = updates()
    # the first build puts the room back, then each moves every row to its as-of date
    for as_of in ("2026-11-21", "2026-11-22"):
        out = _cli_ok("build", "--as-of", as_of, url=url)
        assert "full refresh" not in out
        assert options() == ["fillfactor=50"]
    deadline = time.monotonic() + 10  # a backend's counts reach the statistics when it ends
    # each run updates every row but those of the users it recomputed (events that were in
    # the future become valid as the as-of date moves)
    while updates()[0] - before[0] < rows[0] and time.monotonic() < deadline:
        time.sleep(0.2)
    updated, hot = (now - then for now, then in zip(updates(), before, strict=True))
    assert updated >= rows[0], (updated, rows[0])
    assert hot == updated, (hot, updated)


def test_a_backfilled_event_is_reported_until_a_full_refresh(pg_server: Server) -> None:
    """A row written with an old ingested_at and an old date is beyond what an incremental
    run looks at: `vedfin build` says how many such events it left out; a full refresh
    counts them."""
    url = _db(pg_server, "vedfin_dbt_backfill")
    _cli_ok("seed", "--scenario", "test", "--end-date", END.isoformat(), "-q", url=url)
    _cli_ok("build", "--as-of", END.isoformat(), url=url)
    user = _idle_user(url, "2026-11-12")
    with psycopg.connect(url) as conn:
        max_id = conn.execute("select max(id) from app.behavior_logs").fetchone()[0]  # type: ignore[index]
    _insert_events(
        url,
        [
            {
                "id": max_id + 1,
                "user_id": user,
                "session_id": 990000004,
                "event_type": "login",
                "occurred_at": "2026-11-12 09:00:00+07",
                "device": "web",
                "ingested_at": "2026-11-12 09:00:05+07",
            }
        ],
    )
    # the five-minute run's selection leaves the count of the whole log to whole builds
    out = _cli_ok("build", "--as-of", END.isoformat(), "--select", "+fct_leaderboard", url=url)
    assert "not counted yet" not in out
    out = _cli_ok("build", "--as-of", END.isoformat(), url=url)
    assert "1 raw events are not counted yet" in out
    out = _cli_ok("build", "--as-of", END.isoformat(), "--full-refresh", url=url)
    assert "not counted yet" not in out
    with psycopg.connect(url) as conn:
        counted = conn.execute(
            "select count(*) from intermediate.int_user_days "
            "where user_id = %s and activity_date = '2026-11-12'",
            (user,),
        ).fetchone()
    assert counted == (1,)


def _subplans(node: dict[str, object]) -> list[str]:
    """Plan nodes run once per outer row (SubPlan), as opposed to once (InitPlan)."""
    found = []
    if node.get("Parent Relationship") == "SubPlan":
        found.append(f"{node.get('Node Type')} {node.get('Subplan Name', '')}")
    for child in node.get("Plans", []) or []:  # type: ignore[union-attr]
        found += _subplans(child)  # type: ignore[arg-type]
    return found


def test_incremental_plans_run_no_subquery_per_row(pg_server: Server) -> None:
    """EXPLAIN of every incremental model's incremental SQL on this server: no SubPlan (a
    subquery evaluated per outer row, the quadratic plan PostgreSQL 15 chose for an
    `IN (subquery)` inside an `OR`); only InitPlans (evaluated once) and joins."""
    url = _db(pg_server, "vedfin_dbt_plans")
    _cli_ok("seed", "--scenario", "test", "--end-date", END.isoformat(), "-q", url=url)
    _cli_ok("build", "--as-of", END.isoformat(), url=url)
    _cli_ok("seed", "--append-days", "1", "-q", url=url)
    out = _cli_ok("build", "--as-of", "2026-11-21", url=url)
    assert "full refresh" not in out
    compiled = _artifacts(out) / "compiled" / "vedfin" / "models"
    models = {
        "int_behavior_logs_classified": compiled / "intermediate/events",
        "int_user_days": compiled / "intermediate/events",
        "int_sessions": compiled / "intermediate/events",
        "fct_daily_active_users": compiled / "marts/engagement",
        "fct_student_behavior_patterns": compiled / "marts/engagement",
        "fct_cohort_retention": compiled / "marts/engagement",
    }
    with psycopg.connect(url) as conn:
        for model, folder in models.items():
            query = (folder / f"{model}.sql").read_text()
            assert "is_incremental" not in query
            plan = conn.execute(f"explain (format json) {query}").fetchone()[0]  # type: ignore[index]
            assert _subplans(plan[0]["Plan"]) == [], model


def test_the_server_is_a_supported_version(pg_server: Server) -> None:
    from vedfin.db import SUPPORTED_MAJORS

    assert pg_server.major() in SUPPORTED_MAJORS, pg_server.version()


def test_an_older_server_is_refused_in_one_line() -> None:
    from vedfin.db import require_supported_version
    from vedfin.errors import UnsupportedServer

    with pytest.raises(UnsupportedServer) as info:
        require_supported_version(140011, "postgresql://u@db.example.com:5432/vedfin")
    assert info.value.exit_code == 2
    assert str(info.value).startswith(
        "PostgreSQL 14.11 at db.example.com:5432/vedfin is not supported: "
        "vedfin needs PostgreSQL 15, 16, 17, 18"
    )
    require_supported_version(150020, "postgresql://u@db.example.com:5432/vedfin")


def test_unique_not_null_and_relationships_tests_skip_only_what_the_catalog_proves(
    pg_server: Server, settings: Settings
) -> None:
    """The project's unique / not_null / relationships tests (macros/tests_enforced.sql)
    return no rows without scanning when a unique index / NOT NULL constraint / validated
    foreign key enforces the rule, and still find every violation on a table without them
    (a foreign database)."""
    from dataclasses import replace

    from vedfin.dbt import compile_inline

    url = _db(pg_server, "vedfin_dbt_catalog_tests")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("create schema scratch")
        conn.execute("create table scratch.loose (id bigint, ts timestamptz)")
        conn.execute(
            "insert into scratch.loose values (1, now()), (1, now()), (2, null), (null, now())"
        )
        conn.execute("create table scratch.strict (id bigint primary key, ts timestamptz not null)")
        conn.execute("insert into scratch.strict values (1, now()), (2, now())")
        conn.execute("create table scratch.child_fk (id bigint references scratch.strict (id))")
        conn.execute("insert into scratch.child_fk values (1), (2), (null)")
        conn.execute("create table scratch.child_loose (id bigint)")
        conn.execute("insert into scratch.child_loose values (1), (3), (null)")
    on_server = replace(settings, database_url=url)

    def rel(table: str) -> str:
        return (
            f"api.Relation.create(database=target.database, schema='scratch', identifier='{table}')"
        )

    def compiled(macro: str, table: str, column: str, *parent: str) -> str:
        extra = f", {rel(parent[0])}, '{parent[1]}'" if parent else ""
        return compile_inline(
            on_server, f"{{{{ {macro}({rel(table)}, '{column}'{extra}) }}}}", target="test"
        )

    with psycopg.connect(url) as conn:
        loose_dupes = conn.execute(compiled("postgres__test_unique", "loose", "id")).fetchall()
        loose_nulls = conn.execute(compiled("postgres__test_not_null", "loose", "ts")).fetchall()
        strict_unique = compiled("postgres__test_unique", "strict", "id")
        strict_not_null = compiled("postgres__test_not_null", "strict", "ts")
        assert conn.execute(strict_unique).fetchall() == []
        assert conn.execute(strict_not_null).fetchall() == []
        plan = "\n".join(r[0] for r in conn.execute(f"explain analyze {strict_unique}").fetchall())
        orphans = conn.execute(
            compiled("postgres__test_relationships", "child_loose", "id", "strict", "id")
        ).fetchall()
        by_fk = compiled("postgres__test_relationships", "child_fk", "id", "strict", "id")
        assert conn.execute(by_fk).fetchall() == []
        fk_plan = "\n".join(r[0] for r in conn.execute(f"explain analyze {by_fk}").fetchall())
    assert orphans == [(3,)]
    assert "never executed" in fk_plan  # neither table was scanned
    assert loose_dupes == [(1, 2)]
    assert len(loose_nulls) == 1
    assert "never executed" in plan  # the scan of scratch.strict did not run


ERD_TABLES = {
    "erd-learning": {
        "APP.COURSES", "APP.LESSONS", "APP.ENROLLMENTS", "APP.USER_PROGRESS", "APP.USERS",
        "MARTS.DIM_COURSES", "MARTS.DIM_USERS", "MARTS.FCT_COURSE_FUNNEL",
    },
    "erd-gamification": {
        "APP.ACHIEVEMENTS", "APP.USER_ACHIEVEMENTS", "APP.STREAKS", "APP.BUDDY_GROUPS",
        "APP.BUDDY_GROUP_MEMBERS", "APP.USERS", "MARTS.FCT_LEADERBOARD", "MARTS.DIM_USERS",
    },
}  # fmt: skip


def _entities(page: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r'^  "([A-Z_.]+)" \{$', page, re.M)}


def test_erd_regenerates_identically_from_a_clean_build(
    built_db: str, tmp_path: Path, marts: tuple[str, ...]
) -> None:
    """`vedfin erd` on this freshly built database writes exactly the committed diagrams
    (docs/erd/), and each domain view holds its tables with their relations."""
    out = _cli_ok("erd", "--as-of", END.isoformat(), "--output", str(tmp_path), url=built_db)
    committed = ROOT / "docs" / "erd"
    names = sorted(p.name for p in committed.glob("*.md"))
    assert names == ["erd-analytics.md", "erd-gamification.md", "erd-learning.md", "erd-project.md"]
    for name in names:
        assert (tmp_path / name).read_text() == (committed / name).read_text(), (
            f"docs/erd/{name} is out of date: run `make erd` and commit it\n{out[-2000:]}"
        )
    pages = {p.stem: p.read_text() for p in committed.glob("*.md")}
    for view, tables in ERD_TABLES.items():
        assert _entities(pages[view]) == tables, view
    every_mart = {f"MARTS.{m.upper()}" for m in marts}
    assert every_mart <= _entities(pages["erd-analytics"])
    assert {"APP.BEHAVIOR_LOGS", "APP.USERS"} <= _entities(pages["erd-analytics"])
    assert _entities(pages["erd-project"]) >= every_mart | _entities(pages["erd-learning"])
    assert '"APP.USER_PROGRESS" }|--|| "APP.LESSONS": id--lesson_id' in pages["erd-learning"]
    assert '"MARTS.FCT_LEADERBOARD" }|--|| "APP.USERS": id--user_id' in pages["erd-gamification"]
    assert all(p.count("```mermaid") == 1 for p in pages.values())


def test_a_build_of_some_models_runs_their_tests_and_those_of_what_they_read_only(
    settings: Settings,
) -> None:
    """indirect_selection buildable (dbt_project.yml): the five-minute run's selection
    `+fct_leaderboard` takes the tests of fct_leaderboard and of the sources it reads, not
    the tests of marts it does not build that happen to reference a source it reads (dbt's
    default, eager, took dim_users' and fct_student_behavior_patterns' tests into it)."""
    from vedfin.dbt import run_dbt

    def tests(*select: str) -> set[str]:
        args = [a for s in select for a in ("--select", s)]
        done = run_dbt(settings, "ls", *args, "--resource-type", "test", capture=True)
        assert done.returncode == 0, done.stdout
        return {str(name).rsplit(".", 1)[-1] for name in done.result or []}

    five_minute = tests("+fct_leaderboard")
    assert "unique_fct_leaderboard_user_id" in five_minute
    assert "relationships_fct_leaderboard_user_id__id__source_app_users_" in five_minute
    assert "source_unique_app_user_progress_id" in five_minute  # a source it reads
    assert not {t for t in five_minute if "dim_users" in t or "behavior_patterns" in t}
    everything = tests("fqn:*")
    assert "relationships_dim_users_user_id__id__source_app_users_" in everything
    assert five_minute < everything


def test_staging_views_leave_their_key_tests_to_the_source_they_rename() -> None:
    """A staging view with no tests on its key renames its source's `id` and filters
    nothing (no where, join, distinct or union), and that `id` carries unique and not_null
    on the source: the view's own tests would read the same rows again."""
    import yaml

    staging = ROOT / "dbt_project" / "models" / "staging" / "app"
    models = yaml.safe_load((staging / "_app__models.yml").read_text())["models"]
    sources = yaml.safe_load((staging / "_app__sources.yml").read_text())["sources"][0]["tables"]
    source_tests = {
        t["name"]: {
            c["name"]: {d if isinstance(d, str) else next(iter(d)) for d in c.get("data_tests", [])}
            for c in t.get("columns", [])
        }
        for t in sources
    }
    checked = 0
    for model in models:
        sql_text = (staging / f"{model['name']}.sql").read_text()
        table = re.search(r"source\('app', '(\w+)'\)", sql_text)
        assert table, model["name"]
        key = next(iter(model.get("columns", [])), None)
        if key is None or key.get("data_tests"):
            continue
        assert re.search(rf"\bid as {key['name']}\b", sql_text), model["name"]
        assert not re.search(r"\b(where|join|distinct|union)\b", sql_text, re.I), model["name"]
        assert {"unique", "not_null"} <= source_tests[table.group(1)]["id"], model["name"]
        checked += 1
    assert checked >= 6
