"""The fault suite: real failures injected into real servers.

- bad input at volume: 30% bad events, each rejected for the contract's reason, and the
  marts equal those built from the clean rows alone;
- PostgreSQL dies mid-build (the dbt connections terminated; separately, the server
  stopped): the build fails saying so, every mart stays whole (the version before the
  build, or the one the build had finished; none half-built, none missing), and the
  next build succeeds and equals a clean build;
- Redis dies during a publish and comes back empty: no reader gets a partial leaderboard;
- 32 BI readers as bi_reader during a full build and a five-minute run: no errors, no
  partial table, p95 latency written to tests/artifacts/faults_load.json;
- idempotency: the same build twice gives the same marts; daily_refresh twice changes
  nothing the second time;
- no password in any line the project prints or logs during a run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from seeds_gen.reference import EVENT_TYPES
from tests.conftest import ROOT, _recreate_database, pg15_bindir_or_skip, run_cli
from tests.pg_servers import Server, start_throwaway_cluster
from tests.redis_server import RedisServer
from tests.test_seeds_gen import REASONS_SQL
from vedfin.config import Settings, with_database
from vedfin.dbt import mart_names

END = date(2026, 11, 20)
ARTIFACTS = ROOT / "tests" / "artifacts"


def _marts() -> tuple[str, ...]:
    manifest = json.loads((ROOT / "dbt_project" / "target" / "manifest.json").read_text())
    return mart_names(manifest)


def _fresh(admin_url: str, name: str) -> str:
    _recreate_database(admin_url, name)
    return with_database(admin_url, name)


def _cli(url: str, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return run_cli(
        *args, env={"DATABASE_URL": url, "DBT_TARGET": "test", **kw.pop("env", {})}, **kw
    )


def _ok(url: str, *args: str) -> str:
    done = _cli(url, *args)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout + done.stderr


def mart_checksums(url: str) -> dict[str, str]:
    """md5 of every mart's rows in a fixed order (text form, UTC)."""
    out = {}
    with psycopg.connect(url) as conn:
        conn.execute("set timezone = 'UTC'")
        for mart in _marts():
            row = conn.execute(
                sql.SQL("select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), '')) "
                        "from marts.{} as t").format(sql.Identifier(mart))
            ).fetchone()  # fmt: skip
            assert row is not None
            out[mart] = f"{row[0]}:{row[1]}"
    return out


# ------------------------------------------------------------------ bad input at volume

PER_EVENT_SQL = REASONS_SQL.replace("count(*)\nfrom e group by 1", "e.id\nfrom e")
"""The contract's first-matching reason of every raw event (the tests' own definition)."""
assert PER_EVENT_SQL != REASONS_SQL


def test_thirty_percent_bad_events_are_rejected_for_their_reason_and_count_nowhere(
    settings: Settings,
) -> None:
    dirty = _fresh(settings.database_url, "vedfin_fault_dirty")
    clean = _fresh(settings.database_url, "vedfin_fault_clean")
    seed = ("seed", "--scenario", "demo", "--end-date", END.isoformat(), "-q")
    _ok(dirty, *seed, "--bad-events", "0.3")
    _ok(dirty, "build", "--as-of", END.isoformat())
    with psycopg.connect(dirty) as conn:
        raw = conn.execute("select count(*) from app.behavior_logs").fetchone()
        valid = conn.execute("select count(*) from intermediate.int_events_valid").fetchone()
        rejected = dict(conn.execute(
            "select id, reason from audit.rejected_behavior_logs").fetchall())  # fmt: skip
        expected = dict(conn.execute(
            f"select id, reason from ({PER_EVENT_SQL}) r where reason <> 'valid'",
            {"types": list(EVENT_TYPES), "as_of": END},
        ).fetchall())  # fmt: skip
    assert raw is not None and valid is not None
    assert raw[0] == valid[0] + len(rejected)
    assert len(rejected) / raw[0] > 0.2, "the scenario has its bad events"
    assert rejected == expected  # every bad row, with the first reason it breaks
    # the same data without the bad rows, built on its own
    _ok(clean, *seed, "--bad-events", "0.3")
    with psycopg.connect(clean) as conn:
        conn.execute("create temp table bad (id bigint primary key)")
        with conn.cursor().copy("copy bad (id) from stdin") as cp:
            for i in rejected:
                cp.write_row((i,))
        conn.execute("delete from app.behavior_logs b using bad where bad.id = b.id")
    _ok(clean, "build", "--as-of", END.isoformat(), "--full-refresh")
    with psycopg.connect(clean) as conn:
        assert conn.execute("select count(*) from audit.rejected_behavior_logs").fetchone() == (0,)
    assert mart_checksums(dirty) == mart_checksums(clean)


# ------------------------------------------------------------ PostgreSQL dies mid-build


def _start_build(url: str, as_of: date) -> tuple[subprocess.Popen[str], Path]:
    log = ARTIFACTS / f"fault_build_{os.getpid()}_{time.monotonic_ns()}.log"
    ARTIFACTS.mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vedfin_cli", "build", "--as-of", as_of.isoformat()],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "DBT_TARGET": "test"},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, log


@contextmanager
def _mart_held(url: str, mart: str = "fct_leaderboard") -> Iterator[psycopg.Connection]:
    """A session holding ``mart`` locked: the build's swap of it waits there, so the fault
    strikes while the build is surely in the middle (the other marts go on around it)."""
    conn = psycopg.connect(url)
    conn.execute(
        sql.SQL("lock table marts.{} in access exclusive mode").format(sql.Identifier(mart))
    )
    try:
        yield conn
    finally:
        with suppress(psycopg.Error):
            conn.close()


def _wait_until_blocked(url: str, proc: subprocess.Popen[str], timeout: float = 180) -> None:
    """Until a dbt session of this database waits for the held mart's lock."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            waiting = conn.execute(
                """select count(*) from pg_stat_activity
                   where datname = current_database() and application_name = 'dbt'
                     and wait_event_type = 'Lock'"""
            ).fetchone()
            if waiting and waiting[0]:
                return
            assert proc.poll() is None, "the build ended without waiting for the held mart"
            assert time.monotonic() < deadline, "the build never reached the held mart"
            time.sleep(0.05)


def _prepare_pair(admin_url: str, prefix: str) -> tuple[str, str]:
    """``prefix``: built at END, then one more day appended (not built yet).
    ``prefix_ref``: the same data built in full at END + 1 (what the next build must equal)."""
    live = _fresh(admin_url, prefix)
    ref = _fresh(admin_url, f"{prefix}_ref")
    for url in (live, ref):
        _ok(url, "seed", "--scenario", "dev", "--end-date", END.isoformat(), "-q")
    _ok(live, "build", "--as-of", END.isoformat())
    for url in (live, ref):
        _ok(url, "seed", "--append-days", "1", "-q")
    _ok(ref, "build", "--as-of", (END + timedelta(days=1)).isoformat(), "--full-refresh")
    return live, ref


def _assert_whole(url: str, old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Every mart is there and is one whole version: old or new; the names still old."""
    now = mart_checksums(url)
    assert set(now) == set(old), "a mart is missing"
    stale = []
    for mart, value in now.items():
        assert value in (old[mart], new[mart]), f"{mart} is neither the old nor the new version"
        if value == old[mart] != new[mart]:
            stale.append(mart)
    return stale


def test_dbt_connections_terminated_mid_build(settings: Settings) -> None:
    live, ref = _prepare_pair(settings.database_url, "vedfin_fault_kill")
    old, new = mart_checksums(live), mart_checksums(ref)
    assert old != new
    with _mart_held(live):
        proc, log = _start_build(live, END + timedelta(days=1))
        _wait_until_blocked(live, proc)
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            killed = conn.execute(
                "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity "
                "where datname = %s and application_name = 'dbt') k",
                (conninfo_dbname(live),),
            ).fetchone()
        assert killed and killed[0] >= 1
    assert proc.wait(timeout=300) != 0
    out = log.read_text()
    assert "the build's connections to" in out and "were terminated" in out, out[-3000:]
    assert "every mart is whole" in out
    stale = _assert_whole(live, old, new)
    assert stale, "the build was stopped before every mart was rebuilt"
    _ok(live, "build", "--as-of", (END + timedelta(days=1)).isoformat())
    assert mart_checksums(live) == new


def conninfo_dbname(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(url)["dbname"])


@pytest.fixture()
def stoppable_server() -> Iterator[Server]:
    server = start_throwaway_cluster(pg15_bindir_or_skip())
    try:
        yield server
    finally:
        assert server.stop is not None
        server.stop()


def test_server_stopped_mid_build(stoppable_server: Server) -> None:
    assert stoppable_server.halt is not None and stoppable_server.restart is not None
    live, ref = _prepare_pair(stoppable_server.admin_url, "vedfin_fault_stop")
    old, new = mart_checksums(live), mart_checksums(ref)
    with _mart_held(live):
        proc, log = _start_build(live, END + timedelta(days=1))
        _wait_until_blocked(live, proc)
        stoppable_server.halt()
    assert proc.wait(timeout=300) != 0
    out = log.read_text()
    assert "went away during the build" in out and "run the build again" in out, out[-3000:]
    stoppable_server.restart()
    _assert_whole(live, old, new)
    _ok(live, "build", "--as-of", (END + timedelta(days=1)).isoformat())
    assert mart_checksums(live) == new


# ------------------------------------------------------- Redis dies during a publish


def test_redis_dies_during_a_publish_and_no_reader_sees_a_partial_leaderboard(
    settings: Settings,
) -> None:
    """A big snapshot is being published when Redis is killed; it comes back empty. The
    readers, looping all along, always get a whole top 100: from the snapshot, or from
    the mart while there is none. (That the sensor then republishes within one interval
    is tests/test_orchestration.py::test_redis_restart_leads_to_republish.)"""
    from benchmarks.leaderboard import fill_mart
    from vedfin.leaderboard import LeaderboardReader, LeaderboardSettings, publish

    url = _fresh(settings.database_url, "vedfin_fault_redis")
    fill_mart(url, 300_000)
    with psycopg.connect(url) as conn:
        expected = conn.execute(
            "select user_id, total_points, rank from marts.fct_leaderboard "
            "order by rank, user_id limit 100"
        ).fetchall()
    server = RedisServer().start()
    lb = LeaderboardSettings.from_env(server.url, "test", "fault:")
    try:
        publish(url, lb)  # a snapshot to begin with
        stop = threading.Event()
        seen: list[tuple[str, bool]] = []
        errors: list[str] = []

        def read() -> None:
            reader = LeaderboardReader(lb, url)
            while not stop.is_set():
                try:
                    got = reader.top(100)
                except Exception as exc:  # every failure of a read is a finding
                    errors.append(repr(exc))
                    continue
                whole = [(e.user_id, e.points, e.rank) for e in got.entries] == expected
                seen.append((got.source, whole))

        readers = [threading.Thread(target=read) for _ in range(4)]
        for t in readers:
            t.start()
        outcome: list[BaseException | None] = []

        def republish() -> None:
            try:
                publish(url, lb, full=True)  # a whole snapshot: long enough to cut
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001  (the failure is what we look at)
                outcome.append(exc)

        publisher = threading.Thread(target=republish)
        publisher.start()
        time.sleep(0.3)  # the publish is writing its temporary keys
        server.stop()
        publisher.join(timeout=120)
        time.sleep(1.0)  # readers while Redis is down
        server.start()  # empty
        time.sleep(1.0)  # readers while the snapshot is missing
        publish(url, lb)
        time.sleep(0.5)
        stop.set()
        for t in readers:
            t.join(timeout=30)
    finally:
        server.stop()
    assert outcome and outcome[0] is not None, "Redis was stopped during the publish"
    assert not errors, errors[:5]
    assert seen and all(whole for _, whole in seen), "a reader got a partial leaderboard"
    sources = [s for s, _ in seen]
    assert "redis" in sources and "postgres" in sources
    assert sources[-1] == "redis"  # republished


# ------------------------------------------------------------------------------- load

FINGERPRINTS = {
    "fct_daily_active_users": "count(*), sum(dau), sum(mau)",
    "fct_cohort_retention": "count(*), sum(retained_users)",
    "fct_learning_funnel": "count(*), sum(signed_up), sum(completed_course)",
    "fct_course_funnel": "count(*), sum(enrolled_users)",
    "fct_student_behavior_patterns": "count(*), sum(total_events)",
    "fct_leaderboard": "count(*), sum(total_points)",
    "dim_users": "count(*), count(*) filter (where is_deleted)",
    "dim_courses": "count(*), sum(lessons)",
}


def test_32_bi_readers_during_a_full_build_and_a_five_minute_run(settings: Settings) -> None:
    url = _fresh(settings.database_url, "vedfin_fault_load")
    _ok(url, "seed", "--scenario", "demo", "--end-date", END.isoformat(), "-q")
    _ok(url, "build", "--as-of", END.isoformat())
    _ok(url, "db", "roles", "--env", "dev")  # bi_reader may log in
    queries = {m: f"select {f} from marts.{m}" for m, f in FINGERPRINTS.items()}
    with psycopg.connect(url) as conn:
        expected = {m: conn.execute(q).fetchone() for m, q in queries.items()}
    from vedfin.analytics import bi_reader_url

    reader_url = bi_reader_url(url, None)
    stop = threading.Event()
    latencies: list[float] = []
    errors: list[str] = []
    partial: list[str] = []
    lock = threading.Lock()

    def reader(i: int) -> None:
        names = list(queries)
        mine: list[float] = []
        with psycopg.connect(reader_url, autocommit=True) as conn:
            n = i
            while not stop.is_set():
                mart = names[n % len(names)]
                n += 1
                started = time.perf_counter()
                try:
                    row = conn.execute(queries[mart]).fetchone()
                except psycopg.Error as exc:
                    with lock:
                        errors.append(f"{mart}: {exc}")
                    continue
                mine.append((time.perf_counter() - started) * 1000)
                if row != expected[mart]:
                    with lock:
                        partial.append(f"{mart}: {row} != {expected[mart]}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    try:
        full = _cli(url, "build", "--as-of", END.isoformat(), "--full-refresh")
        five = _cli(url, "build", "--as-of", END.isoformat(), "--select", "+fct_leaderboard")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert full.returncode == 0, (full.stdout + full.stderr)[-2000:]
    assert five.returncode == 0, (five.stdout + five.stderr)[-2000:]
    from benchmarks.stats import percentile

    report = {
        "readers": 32,
        "reads": len(latencies),
        "errors": len(errors),
        "partial_reads": len(partial),
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p95_ms": round(percentile(latencies, 0.95), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "faults_load.json").write_text(json.dumps(report, indent=2))
    print(f"32 BI readers during a full build and a five-minute run: {report}")
    assert not errors, errors[:5]
    assert not partial, partial[:5]
    assert len(latencies) > 1000


# ------------------------------------------------------------------------ idempotency


def test_full_pipeline_twice_is_identical_and_daily_refresh_twice_changes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    from tests.conftest import isolated_platform
    from tests.dagster_env import dagster_job, run
    from vedfin.config import env_exports

    server = RedisServer().start()
    try:
        (tmp_path / "home").mkdir()
        scoped = isolated_platform(settings, "vedfin_fault_idem", server.url, tmp_path / "home")
        env = {**env_exports(scoped), "LEADERBOARD_PREFIX": "idem:"}
        config = ROOT / "orchestration" / "run_config" / "test.yaml"
        daily = tmp_path / "daily.yaml"
        daily.write_text(f'ops:\n  dbt_models:\n    config:\n      as_of: "{END.isoformat()}"\n')

        def job(name: str, cfg: Path) -> dict[str, str]:
            done = run(dagster_job(name, cfg), env)
            assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
            return mart_checksums(scoped.database_url)

        first = job("full_pipeline", config)
        second = job("full_pipeline", config)
        assert first == second
        app_before = _app_checksum(scoped.database_url)
        refreshed = job("daily_refresh", daily)
        again = job("daily_refresh", daily)
        assert refreshed == again == first
        assert _app_checksum(scoped.database_url) == app_before
    finally:
        server.stop()


def _app_checksum(url: str) -> str:
    from tests.test_seeds_gen import checksum

    return checksum(url)


# --------------------------------------------------------------- no password in the logs


def test_no_password_in_what_a_run_prints_or_logs(settings: Settings, tmp_path: Path) -> None:
    """A DATABASE_URL with a password (the servers here trust local connections, so any
    password works): the commands of a run and a Dagster job never print or log it."""
    import secrets

    from psycopg.conninfo import conninfo_to_dict

    from tests.conftest import isolated_platform
    from tests.dagster_env import dagster_job, run
    from vedfin.config import conninfo_to_url, env_exports, sqlalchemy_psycopg2_url

    password = "Pw-" + secrets.token_hex(8)

    def with_password(url: str) -> str:
        params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
        params["password"] = password
        from psycopg.conninfo import make_conninfo

        return conninfo_to_url(make_conninfo(**params))

    server = RedisServer().start()
    started = time.time()
    try:
        (tmp_path / "home").mkdir()
        scoped = isolated_platform(settings, "vedfin_fault_pw", server.url, tmp_path / "home")
        url = with_password(scoped.database_url)
        env = {
            **env_exports(scoped),
            "DATABASE_URL": url,
            "DAGSTER_PG_URL": sqlalchemy_psycopg2_url(with_password(scoped.dagster_pg_url.replace("postgresql+psycopg2://", "postgresql://"))),
            "LEADERBOARD_PREFIX": "pw:",
        }  # fmt: skip
        env.pop("PGPASSWORD", None)
        printed = []
        for args in (
            ("status",),
            ("db", "init"),
            ("seed", "--scenario", "test", "--end-date", END.isoformat(), "-q"),
            ("build", "--as-of", END.isoformat()),
            ("leaderboard", "publish"),
            ("leaderboard", "status"),
        ):
            done = run_cli(*args, env=env)
            assert done.returncode == 0, (args, done.stdout + done.stderr)
            printed.append(done.stdout + done.stderr)
        daily = tmp_path / "daily.yaml"
        daily.write_text(f'ops:\n  dbt_models:\n    config:\n      as_of: "{END.isoformat()}"\n')
        done = run(dagster_job("daily_refresh", daily), env)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        printed.append(done.stdout + done.stderr)
    finally:
        server.stop()
    assert any("127.0.0.1" in p for p in printed)  # the target is named, the secret is not
    for text in printed:
        assert password not in text
    written = [p for p in (ROOT / "dbt_project").rglob("*") if p.is_file()]
    written += [p for p in (tmp_path / "home").rglob("*") if p.is_file()]
    scanned = 0
    for path in written:
        if path.stat().st_mtime < started or path.suffix in {".msgpack", ".gpickle"}:
            continue
        scanned += 1
        assert password.encode() not in path.read_bytes(), path
    assert scanned > 5
