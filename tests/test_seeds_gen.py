"""The synthetic data generator, against a real PostgreSQL."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from seeds_gen import load as load_mod
from seeds_gen.generate import BAD_CLASSES
from seeds_gen.load import load_append, load_fresh
from seeds_gen.people import ascii_fold
from seeds_gen.reference import EVENT_TYPES, people
from seeds_gen.scenarios import make_spec
from tests.conftest import run_cli
from vedfin.errors import UnsafeOperation

END = date(2026, 11, 20)

# The contract's "Which events count", first matching reason wins.
REASONS_SQL = """
with e as (
    select b.*, u.created_at,
           row_number() over (
               partition by b.user_id, b.event_type, b.occurred_at, b.session_id,
                            b.course_id, b.lesson_id
               order by b.id) as copy_no
    from app.behavior_logs b left join app.users u on u.id = b.user_id
)
select case
    when created_at is null then 'unknown_user'
    when event_type <> all(%(types)s) then 'unknown_event_type'
    when (occurred_at at time zone 'Asia/Ho_Chi_Minh')::date > %(as_of)s then 'future_timestamp'
    when occurred_at < created_at then 'before_signup'
    when copy_no > 1 then 'duplicate'
    else 'valid' end as reason,
    count(*)
from e group by 1
"""


def reasons(url: str, as_of: date) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(REASONS_SQL, {"types": list(EVENT_TYPES), "as_of": as_of}).fetchall()
    return dict(rows)  # type: ignore[arg-type]


CHECKSUM_SQL = """
select md5(string_agg(t, '|' order by t)) from (
    select 'u' || string_agg(u::text, ',' order by id) t from app.users u
    union all select 'c' || string_agg(c::text, ',' order by id) from app.courses c
    union all select 'l' || string_agg(l::text, ',' order by id) from app.lessons l
    union all select 'e' || string_agg(e::text, ',' order by id) from app.enrollments e
    union all select 'p' || string_agg(p::text, ',' order by id) from app.user_progress p
    union all select 'b' || string_agg(b::text, ',' order by id) from app.behavior_logs b
    union all select 'a' || string_agg(a::text, ',' order by user_id, achievement_id)
        from app.user_achievements a
    union all select 's' || string_agg(s::text, ',' order by user_id) from app.streaks s
    union all select 'g' || string_agg(g::text, ',' order by id) from app.buddy_groups g
    union all select 'm' || string_agg(m::text, ',' order by group_id, user_id)
        from app.buddy_group_members m
) x
"""


def checksum(url: str) -> str:
    with psycopg.connect(url) as conn:
        conn.execute("set timezone = 'UTC'")
        row = conn.execute(CHECKSUM_SQL).fetchone()
    assert row and row[0]
    return str(row[0])


@pytest.fixture(scope="module")
def demo_db(settings, tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    """The demo scenario (about 1,000 users), loaded once for the realism checks."""
    from tests.conftest import _recreate_database
    from vedfin.config import with_database

    name = f"{settings.pg_params.get('dbname', 'vedfin')}_seed_demo"
    _recreate_database(settings.database_url, name)
    url = with_database(settings.database_url, name)
    load_fresh(url, make_spec("demo", end_date=END))
    return url


def test_same_seed_and_end_date_give_identical_data(fresh_db: str) -> None:
    spec = make_spec("test", end_date=END, seed=7)
    load_fresh(fresh_db, spec)
    first = checksum(fresh_db)
    load_fresh(fresh_db, spec, reset=True)
    assert checksum(fresh_db) == first
    load_fresh(fresh_db, make_spec("test", end_date=END, seed=8), reset=True)
    assert checksum(fresh_db) != first


PINNED = {
    "seed 7": "ae361c335a9e8835ea4cf8ca87d16049",
    "seed 8": "1ac5603cffd495f3ab5b65910b75efe3",
    "end 2026-10-03": "4ef4ca3cbc987b8780c8664ad16aefbe",
    "bad events 0.3": "dc53dc588ef1d9e84c9e148eb0c33b67",
    "dev + 3 days": "a79c58ee94d10b80b45155dd54607cbc",
    "dev + 3 days + 2 days with bad events 0.2": "1751186ea3175b98526518dea4a86694",
}
"""Checksums of every app table (CHECKSUM_SQL) for the determinism cases, as the generator
wrote them before its modules were split into stages: a refactoring must not change them.
A deliberate change to the generated data updates them here, in the same commit."""


def test_generated_data_is_pinned(fresh_db: str) -> None:
    got = {}
    for name, kw in (
        ("seed 7", {"seed": 7}),
        ("seed 8", {"seed": 8}),
        ("end 2026-10-03", {"end_date": date(2026, 10, 3)}),
        ("bad events 0.3", {"bad_events_rate": 0.3}),
    ):
        load_fresh(fresh_db, make_spec("test", **{"end_date": END, **kw}), reset=True)
        got[name] = checksum(fresh_db)
    load_fresh(fresh_db, make_spec("dev", end_date=END), reset=True)
    load_append(fresh_db, 3)
    got["dev + 3 days"] = checksum(fresh_db)
    load_append(fresh_db, 2, bad_events_rate=0.2)
    got["dev + 3 days + 2 days with bad events 0.2"] = checksum(fresh_db)
    assert got == PINNED


def test_worker_processes_write_the_same_rows(fresh_db: str) -> None:
    """Chunks simulated in worker processes and renumbered here equal the sequential run's,
    every table (ids, session ids, buddy groups and their names, property codes)."""
    spec = make_spec("benchmark", users=4_500, days=20, end_date=END, bad_events_rate=0.1)
    alone = load_fresh(fresh_db, spec, reset=True, workers=0)
    sequential = checksum(fresh_db)
    assert alone.worker_peak_mib == {}
    parallel = load_fresh(fresh_db, spec, reset=True, workers=2)
    assert len(parallel.worker_peak_mib) == 2  # three chunks went to two processes
    assert parallel.rows == alone.rows
    assert checksum(fresh_db) == sequential


def test_names_are_vietnamese_in_family_middle_given_order(demo_db: str) -> None:
    pools = people()
    with psycopg.connect(demo_db) as conn:
        rows = conn.execute("select full_name, gender, email from app.users").fetchall()
    assert len(rows) == 1000
    for full_name, gender, email in rows:
        parts = full_name.split()
        assert len(parts) == 3, full_name
        family, middle, given = parts
        assert family in pools.family.values, full_name
        assert middle in pools.middle[gender].values, full_name
        assert given in pools.given[gender], full_name
        assert ascii_fold(given) in email
        assert "John" not in full_name and "Jane" not in full_name
    families = [r[0].split()[0] for r in rows]
    share_nguyen = families.count("Nguyễn") / len(families)
    assert 0.3 < share_nguyen < 0.46  # about 38% of Vietnamese people


def test_emails_phones_and_signup_events(demo_db: str) -> None:
    with psycopg.connect(demo_db) as conn:
        dup = conn.execute("select count(*) - count(distinct email) from app.users").fetchone()
        assert dup == (0,)
        bad_phone = conn.execute(
            r"select count(*) from app.users where phone !~ '^0[35789][0-9]{8}$'"
        ).fetchone()
        assert bad_phone == (0,)
        signup = conn.execute(
            """select count(*) filter (where n = 1 and first_at = created_at), count(*)
               from app.users u left join lateral (
                   select count(*) n, min(occurred_at) first_at from app.behavior_logs b
                   where b.user_id = u.id and b.event_type = 'signup') s on true"""
        ).fetchone()
        assert signup is not None and signup[0] == signup[1] == 1000


def test_local_time_has_the_daily_rhythm(demo_db: str) -> None:
    with psycopg.connect(demo_db) as conn:
        hours = dict(
            conn.execute(
                """select extract(hour from occurred_at at time zone 'Asia/Ho_Chi_Minh')::int, count(*)
               from app.behavior_logs group by 1"""
            ).fetchall()
        )
    total = sum(hours.values())
    share = {h: hours.get(h, 0) / total for h in range(24)}
    evening = share[20] + share[21]
    night = share[3] + share[4]
    lunch = share[12]
    afternoon = share[15]
    assert evening > 8 * night, share
    assert lunch > 1.5 * afternoon, share
    assert share[0] + share[1] > night  # some late-night study


def test_funnel_counts_decrease_and_harder_courses_complete_less(demo_db: str) -> None:
    with psycopg.connect(demo_db) as conn:
        signed, enrolled, started, completed = conn.execute(
            """with lessons as (select course_id, count(*) n from app.lessons group by 1),
                    done as (select p.user_id, p.course_id from app.user_progress p
                             where p.status = 'COMPLETED' group by 1, 2
                             having count(*) = (select n from lessons l where l.course_id = p.course_id))
               select (select count(*) from app.users),
                      (select count(distinct user_id) from app.enrollments),
                      (select count(distinct user_id) from app.user_progress),
                      (select count(distinct user_id) from done)"""
        ).fetchone()  # type: ignore[misc]
        assert signed > enrolled > started > completed > 0
        by_level = dict(
            conn.execute(
                """select c.level, avg((p.status = 'COMPLETED')::int)
               from app.user_progress p join app.courses c on c.id = p.course_id group by 1"""
            ).fetchall()
        )
        assert by_level["BEGINNER"] > by_level["INTERMEDIATE"] > by_level["EXPERT"]
        # retention decays: fewer users are active in their 4th week than in their 1st
        w1, w4 = conn.execute(
            """select count(distinct b.user_id) filter (where b.occurred_at < u.created_at + interval '7 days'),
                      count(distinct b.user_id) filter (where b.occurred_at >= u.created_at + interval '21 days'
                                                       and b.occurred_at < u.created_at + interval '28 days')
               from app.behavior_logs b join app.users u on u.id = b.user_id"""
        ).fetchone()  # type: ignore[misc]
        assert w1 > 2 * w4 > 0


def test_events_progress_achievements_and_streaks_agree(demo_db: str) -> None:
    assert reasons(demo_db, END) == {"valid": reasons(demo_db, END)["valid"]}
    with psycopg.connect(demo_db) as conn:
        mismatched = conn.execute(
            """select count(*) from app.user_progress p where not exists (
                 select 1 from app.behavior_logs b where b.user_id = p.user_id
                 and b.event_type = 'lesson_start' and b.lesson_id = p.lesson_id
                 and b.occurred_at = p.started_at)"""
        ).fetchone()
        assert mismatched == (0,)
        no_enroll = conn.execute(
            """select count(*) from app.user_progress p where not exists (
                 select 1 from app.enrollments e where e.user_id = p.user_id
                 and e.course_id = p.course_id and e.enrolled_at <= p.started_at)"""
        ).fetchone()
        assert no_enroll == (0,)
        unlock_events = conn.execute(
            """select count(*) from app.user_achievements a where not exists (
                 select 1 from app.behavior_logs b where b.user_id = a.user_id
                 and b.event_type = 'achievement_unlocked' and b.occurred_at = a.unlocked_at)"""
        ).fetchone()
        assert unlock_events == (0,)
        # the streak table matches the activity: last active date and longest run
        wrong = conn.execute(
            """with days as (select distinct user_id,
                         (occurred_at at time zone 'Asia/Ho_Chi_Minh')::date d
                         from app.behavior_logs),
                    runs as (select user_id, d, d - (row_number() over (partition by user_id order by d))::int g
                             from days),
                    agg as (select user_id, max(d) last_d, max(n) longest from (
                              select user_id, g, max(d) d, count(*) n from runs group by 1, 2) x group by 1)
               select count(*) from app.streaks s join agg using (user_id)
               where s.last_active_date <> agg.last_d or s.longest_days <> agg.longest"""
        ).fetchone()
        assert wrong == (0,)


def test_bad_events_mode_writes_every_class(fresh_db: str) -> None:
    load_fresh(fresh_db, make_spec("dev", end_date=END, bad_events_rate=0.05))
    found = reasons(fresh_db, END)
    for reason in BAD_CLASSES:
        assert found.get(reason, 0) > 0, (reason, found)
    bad = sum(v for k, v in found.items() if k != "valid")
    assert 0.03 < bad / sum(found.values()) < 0.07


def test_refusals_leave_the_data_alone(fresh_db: str) -> None:
    spec = make_spec("test", end_date=END)
    load_fresh(fresh_db, spec)
    before = checksum(fresh_db)
    with pytest.raises(UnsafeOperation, match="--reset"):
        load_fresh(fresh_db, make_spec("dev", end_date=END))
    with pytest.raises(UnsafeOperation, match="prod"):
        load_fresh(fresh_db, spec, target="prod", reset=True)
    result = run_cli(
        "seed",
        "--scenario",
        "test",
        "--reset",
        "-q",
        env={"DATABASE_URL": fresh_db, "DBT_TARGET": "prod"},
    )
    assert result.returncode == 3 and "prod" in result.stderr
    result = run_cli("seed", "--scenario", "dev", "-q", env={"DATABASE_URL": fresh_db})
    assert result.returncode == 3 and "not empty" in result.stderr
    assert checksum(fresh_db) == before


def test_a_failed_load_keeps_the_previous_data(
    fresh_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_fresh(fresh_db, make_spec("test", end_date=END))
    before = checksum(fresh_db)
    real = load_mod.fresh_chunks

    def failing(spec, counters=None, **kw):  # type: ignore[no-untyped-def]
        for i, chunk in enumerate(real(spec, counters, **kw)):
            if i == 1:
                raise RuntimeError("disk full (simulated)")
            yield chunk

    monkeypatch.setattr(load_mod, "fresh_chunks", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        load_fresh(fresh_db, make_spec("test", users=5000, end_date=END), reset=True)
    assert checksum(fresh_db) == before


def test_append_days_extends_the_same_story(fresh_db: str) -> None:
    load_fresh(fresh_db, make_spec("dev", end_date=END))
    with psycopg.connect(fresh_db) as conn:
        max_event, n_users, n_events = conn.execute(
            "select max(id), (select count(*) from app.users), count(*) from app.behavior_logs"
        ).fetchone()  # type: ignore[misc]
    result = run_cli("seed", "--append-days", "5", "-q", env={"DATABASE_URL": fresh_db})
    assert result.returncode == 0, result.stderr
    new_end = date(2026, 11, 25)
    found = reasons(fresh_db, new_end)
    assert set(found) == {"valid"}
    with psycopg.connect(fresh_db) as conn:
        users2, events2, new_min, new_max = conn.execute(
            """select (select count(*) from app.users), count(*),
                      min((occurred_at at time zone 'Asia/Ho_Chi_Minh')::date) filter (where id > %s),
                      max((occurred_at at time zone 'Asia/Ho_Chi_Minh')::date)
               from app.behavior_logs""",
            (max_event,),
        ).fetchone()  # type: ignore[misc]
        assert events2 > n_events and users2 >= n_users
        assert new_min > END and new_max <= new_end
        returning = conn.execute(
            "select count(distinct b.user_id) from app.behavior_logs b where b.id > %s "
            "and b.user_id <= %s",
            (max_event, n_users),
        ).fetchone()
        assert returning is not None and returning[0] > 0  # existing users keep learning
        last = conn.execute(
            "select end_date, mode from vedfin_meta.seed_runs order by run_id desc limit 1"
        ).fetchone()
        assert last == (new_end, "append")
    # a second append continues from where the first ended
    load_append(fresh_db, 2)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute(
            "select max((occurred_at at time zone 'Asia/Ho_Chi_Minh')::date) from app.behavior_logs"
        ).fetchone() == (date(2026, 11, 27),)


def test_copy_text_encoding_round_trips_through_postgres(fresh_db: str) -> None:
    """The text COPY encoder of the non-event tables: escapes, NULLs, booleans, timestamps."""
    from seeds_gen.pgcopy import text_table

    rows = [
        (1, "Nguyễn\tVăn\\An\nB\r", None, True, 12.5, 1_763_640_000_123_456),
        (2, "Trần Thị Bình", 3, False, None, None),
    ]
    data = text_table(rows, ts_columns=(5,))
    assert data.count(b"\n") == 2 and b"\\N" in data
    with psycopg.connect(fresh_db) as conn:
        conn.execute("set timezone = 'UTC'")
        conn.execute(
            "create temp table t (id bigint, name text, n int, ok boolean, pct numeric(5, 2), "
            "at timestamptz)"
        )
        with conn.cursor().copy("copy t from stdin") as cp:
            cp.write(data)
        got = conn.execute(
            "select id, name, n, ok, pct::float8, "
            "(extract(epoch from at) * 1e6)::bigint from t order by id"
        ).fetchall()
    assert got == rows


def test_bench_postgres_alone_reloads_the_same_events_and_cleans_up(fresh_db: str) -> None:
    """The benchmark's ceiling: PostgreSQL re-loading the very events (with their indexes)."""
    from benchmarks.seed import postgres_alone

    load_fresh(fresh_db, make_spec("test", end_date=END))
    seconds, rows = postgres_alone(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        events = conn.execute("select count(*) from app.behavior_logs").fetchone()
        leftover = conn.execute(
            "select count(*) from pg_namespace where nspname = 'bench_alone'"
        ).fetchone()
    assert events is not None and rows == events[0] > 0
    assert seconds > 0 and leftover == (0,)


def test_a_fresh_load_names_each_step_after_the_generation(fresh_db: str) -> None:
    """The steps after the progress bar (other tables, each key and index, ANALYZE) are named."""
    steps: list[str] = []
    load_fresh(fresh_db, make_spec("test", end_date=END), on_phase=steps.append)
    assert steps[0] == "copying the other tables" and steps[-1] == "ANALYZE and commit"
    keys = [s for s in steps if s.startswith("keys and indexes ")]
    with psycopg.connect(fresh_db) as conn:
        n_indexes = conn.execute(
            "select count(*) from pg_indexes where schemaname = 'app'"
        ).fetchone()
        n_fkeys = conn.execute(
            "select count(*) from pg_constraint c join pg_namespace n on n.oid = c.connamespace "
            "where n.nspname = 'app' and c.contype = 'f'"
        ).fetchone()
    assert n_indexes is not None and n_fkeys is not None
    assert len(keys) == n_indexes[0] + n_fkeys[0]
    assert keys[0].startswith(f"keys and indexes 1/{len(keys)}: ")
    assert any(s.endswith(": behavior_logs_event_type_user_idx") for s in keys)
