"""The live platform simulator behind `vedfin simulate`.

It behaves like the platform's application on top of an existing dataset: people sign
up, log in, browse, enroll, start lessons, make progress, complete them (``user_progress``
is updated in place), unlock achievements and keep streaks, at a steady rate of behavior
events. Every action is one ordinary transaction of ``INSERT``/``UPDATE`` statements (no
COPY), stamped with the wall clock, so the pipeline sees what production would show it.

The realism is the generator's (``seeds_gen``): names, e-mails and phones from
``new_user_rows``/``make_people``, the course choice and next-lesson rules, the level
completion and drop-off rates, and the property catalogues. It needs nothing but the
contract's raw schema ``app``: the state of a user is read from ``app.*`` when their
session opens, so data written by any writer (no generator metadata) works.

Given ``seed`` the sequence of actions, users and lessons is deterministic on identical
databases; only the timestamps follow the wall clock.
"""

from __future__ import annotations

import math
import random
import secrets
import signal
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import FrameType
from typing import Any, TypeVar

import numpy as np
import psycopg
from psycopg import sql
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from seeds_gen.chunks import STREAK_GOALS
from seeds_gen.reference import EV, Achievement, Course, Lesson, people
from seeds_gen.simulate import (
    COURSE_SOURCES,
    DAY_US,
    EPOCH,
    HOUR_WEIGHTS,
    LEVEL_COMPLETE,
    LEVEL_DROPOFF,
    LEVEL_TIME,
    LOCAL_OFFSET_US,
    LOGIN_METHODS,
    PAGES,
    PROPS,
    QUALITIES,
    QUIZ_SCORES,
    Catalog,
    LearnState,
    Progress,
    UserParams,
    UserRow,
    Window,
    _next_lesson,
    _pick_course,
    local_hour,
    new_user_rows,
    prop,
)
from vedfin.db import CONTRACT_COLUMNS, connect, contract_gaps, describe_target
from vedfin.errors import UnsafeOperation, VedfinError

T = TypeVar("T")

EVENING_HOUR = 21  # local hour whose share of the day's sessions sets the default rate
MIN_DEFAULT_RATE = 1.0  # events per second, the floor of the default
SESSION_EVENT_GAP_S = 60.0  # seconds between two events of one session: sets concurrency
LOGOUT_SHARE = 0.62  # sessions that end with a logout event (as the generator logs them)
NEW_SESSION_SHARE = 0.15  # actions that open a session while below the concurrency
SIGNUP_SHARE_DEFAULT = 0.1  # new sessions that are signups, when the data cannot tell
EPOCH_DT = datetime(1970, 1, 1, tzinfo=UTC)
ARTICLE_PAGE = PAGES[5]  # {"page": "article"}: reading a lesson page


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PointsWrite:
    """A committed write that earns leaderboard points."""

    user_id: int
    points: int
    kind: str  # "lesson" (a completion) or "achievement" (an unlock)
    committed_at: float  # time.time() right after the commit


@dataclass
class SimulationSummary:
    """What a run wrote, by kind of action."""

    seed: int
    events_per_second: float
    seconds: float = 0.0
    events: int = 0  # behavior_logs rows
    signups: int = 0
    sessions: int = 0  # logins of existing users
    enrollments: int = 0
    lesson_starts: int = 0
    progress_updates: int = 0
    completions: int = 0
    quizzes: int = 0
    unlocks: int = 0
    streak_updates: int = 0
    logouts: int = 0
    points: int = 0
    conflicts: int = 0  # actions rolled back because another writer got there first

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.events:,} events · {self.signups:,} signups · "
            f"{self.lesson_starts:,} lesson starts · {self.completions:,} completions · "
            f"{self.unlocks:,} unlocks · {self.rate:.1f} ev/s"
        )

    def counts(self) -> dict[str, int]:
        return {
            "behavior events": self.events,
            "signups (users)": self.signups,
            "logins": self.sessions,
            "enrollments": self.enrollments,
            "lesson starts": self.lesson_starts,
            "progress updates": self.progress_updates,
            "lesson completions": self.completions,
            "quiz submissions": self.quizzes,
            "achievement unlocks": self.unlocks,
            "streak updates": self.streak_updates,
            "logouts": self.logouts,
            "points earned": self.points,
        }


# ---------------------------------------------------------------------------- state


@dataclass
class Streak:
    current: int = 0
    longest: int = 0
    last: date | None = None
    exists: bool = False  # a row in app.streaks


@dataclass
class LiveUser:
    params: UserParams
    state: LearnState
    streak: Streak
    in_group: bool = False


@dataclass
class Study:
    """The lesson a session is working on, and how that will end."""

    row: Progress
    lesson: Lesson
    course: Course
    complete: bool
    beats_left: int
    planned_seconds: int  # time spent on the lesson this session
    spent: int = 0


@dataclass
class Session:
    sid: int
    user: LiveUser
    device: str
    budget: int  # browsing events left
    enroll: bool
    lessons_left: int
    study: Study | None = None
    pending: list[str] = field(default_factory=list)  # achievement codes to unlock
    abandoned: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class DataProfile:
    """What the existing event log says about the platform's load."""

    next_session: int
    avg_daily_events: float
    signup_share: float

    def evening_rate(self) -> float:
        """Events per second in the evening peak hour of an average recent day."""
        share = float(HOUR_WEIGHTS[EVENING_HOUR] / HOUR_WEIGHTS.sum())
        return max(MIN_DEFAULT_RATE, self.avg_daily_events * share / 3600)


Event = tuple[int, int, str, int | None, int | None, datetime, int | None, str | None, str]


class _Conflict(Exception):
    """Another writer changed the row first: the action's transaction rolls back."""


# ---------------------------------------------------------------------------- helpers


def to_us(ts: datetime) -> int:
    return (ts - EPOCH_DT) // timedelta(microseconds=1)


def local_date(us: int) -> date:
    return EPOCH + timedelta(days=(us + LOCAL_OFFSET_US) // DAY_US)


def _persona_index(code: str | None) -> int | None:
    for i, p in enumerate(people().personas):
        if p.code == code:
            return i
    return None


def _retag_email(email: str, tag: int) -> str:
    """'an.nguyen.12@gmail.com' with tag 13 -> 'an.nguyen.13@gmail.com'."""
    local, _, domain = email.rpartition("@")
    return f"{local.rpartition('.')[0]}.{tag}@{domain}"


def catalog_from_rows(
    courses: list[Course], published_us: dict[int, int], achievements: tuple[Achievement, ...]
) -> Catalog:
    """A generator ``Catalog`` of the courses found in the database (not the reference
    files), so the generator's course-choice rules run unchanged on any dataset."""
    return Catalog.of(courses, published_us, achievements, "database")


# ---------------------------------------------------------------------------- loading

PROFILE_SQL = """
with d as (
    select (occurred_at at time zone 'Asia/Ho_Chi_Minh')::date as day,
           count(*) as n,
           count(*) filter (where event_type = 'signup') as signups,
           count(*) filter (where event_type = 'login') as logins,
           max(session_id) as max_sid
    from app.behavior_logs
    group by 1
), recent as (
    select * from d where day <= (now() at time zone 'Asia/Ho_Chi_Minh')::date
    order by day desc limit 7
)
select (select coalesce(max(max_sid), 0) from d),
       (select coalesce(avg(n), 0)::float8 from recent),
       (select coalesce(sum(signups), 0) from recent),
       (select coalesce(sum(logins), 0) from recent)
"""

USER_POOL_SQL = """
select u.id, s.last_active_date
from app.users u left join app.streaks s on s.user_id = u.id
where u.deleted_at is null and u.created_at <= now()
  and (s.last_active_date is null
       or s.last_active_date <= (now() at time zone 'Asia/Ho_Chi_Minh')::date)
order by u.id
"""

USER_SQL = {
    "user": """select (extract(epoch from created_at) * 1e6)::bigint, persona
               from app.users where id = %s and deleted_at is null""",
    "enrollments": """select course_id, (extract(epoch from enrolled_at) * 1e6)::bigint
                      from app.enrollments where user_id = %s order by id""",
    "progress": """select id, user_id, lesson_id, course_id, status, progress_pct::float8,
                          time_spent_seconds, (extract(epoch from started_at) * 1e6)::bigint,
                          (extract(epoch from completed_at) * 1e6)::bigint,
                          (extract(epoch from updated_at) * 1e6)::bigint
                   from app.user_progress where user_id = %s order by updated_at, id""",
    "achievements": """select a.code from app.user_achievements ua
                       join app.achievements a on a.id = ua.achievement_id
                       where ua.user_id = %s order by a.id""",
    "streak": """select current_days, longest_days, last_active_date
                 from app.streaks where user_id = %s""",
    "device": """select device from app.behavior_logs where user_id = %s
                 order by occurred_at desc limit 1""",
    "group": "select exists (select 1 from app.buddy_group_members where user_id = %s)",
}

EVENT_SQL = (
    "insert into app.behavior_logs (user_id, session_id, event_type, course_id, lesson_id, "
    "occurred_at, duration_seconds, properties, device) "
    "values (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)"
)
USER_ROW_COLUMNS = UserRow._fields  # the generator's user rows (new_user_rows)
IDENTITY_TABLES = ("users", "enrollments", "user_progress", "behavior_logs")


def load_catalog(conn: psycopg.Connection) -> Catalog:
    """The courses that have lessons, their lessons and the achievements, from ``app``."""
    lessons: dict[int, list[Lesson]] = {}
    for row in conn.execute(
        "select id, course_id, position, coalesce(title, ''), content_type, "
        "duration_minutes, points from app.lessons order by course_id, position"
    ):
        lessons.setdefault(row[1], []).append(Lesson(*row))
    courses: list[Course] = []
    published: dict[int, int] = {}
    for cid, slug, title, category, level, pub in conn.execute(
        "select id, slug, title, category, level, "
        "coalesce((extract(epoch from published_at) * 1e6)::bigint, 0) "
        "from app.courses order by id"
    ):
        if cid in lessons and level in LEVEL_COMPLETE:
            courses.append(Course(cid, slug, title, category, level, tuple(lessons[cid])))
            published[cid] = pub
    achievements = tuple(
        Achievement(*row)
        for row in conn.execute(
            "select id, code, name, null, points from app.achievements order by id"
        )
    )
    return catalog_from_rows(courses, published, achievements)


def load_profile(conn: psycopg.Connection) -> DataProfile:
    row = conn.execute(PROFILE_SQL).fetchone()
    assert row is not None
    max_sid, avg_daily, signups, logins = row
    share = signups / (signups + logins) if signups + logins else SIGNUP_SHARE_DEFAULT
    return DataProfile(int(max_sid) + 1, float(avg_daily), min(max(share, 0.02), 0.3))


def sync_identity_sequences(conn: psycopg.Connection) -> None:
    """Move each identity sequence past max(id) when it is behind (data loaded with COPY
    and explicit ids, by the generator or an outside writer, leaves it at the start)."""
    for table in IDENTITY_TABLES:
        seq = conn.execute("select pg_get_serial_sequence(%s, 'id')", (f"app.{table}",)).fetchone()
        if seq is None or seq[0] is None:
            raise VedfinError(
                f"app.{table}.id has no identity or sequence: the simulator inserts rows the "
                "way the platform does, letting the database number them"
            )
        last, called = conn.execute(
            sql.SQL("select last_value, is_called from {}").format(sql.SQL(seq[0]))
        ).fetchone() or (1, False)
        next_value = last + 1 if called else last
        top = conn.execute(
            sql.SQL("select max(id) from app.{}").format(sql.Identifier(table))
        ).fetchone()
        if top and top[0] is not None and next_value <= top[0]:
            conn.execute("select setval(%s, %s)", (seq[0], top[0]))


def check_target(target: str, force: bool) -> None:
    """The generator's rule (``seeds_gen.load.check_safe``): never prod without --force."""
    if target == "prod" and not force:
        raise UnsafeOperation(
            "refusing to write simulated activity to the prod target; "
            "pass --force if you really mean it"
        )


def check_contract(conn: psycopg.Connection, url: str) -> None:
    """The contract's tables and columns are there (whoever created them)."""
    gaps = contract_gaps(conn)
    if not gaps:
        return
    where = describe_target(url)
    if len(gaps) == len(CONTRACT_COLUMNS):
        raise VedfinError(
            f"the database {where} has no raw schema app: run `vedfin db init` and "
            "`vedfin seed`, or point DATABASE_URL at a database that follows the contract"
        )
    raise VedfinError(
        f"schema app at {where} does not follow the contract (missing {', '.join(gaps[:5])}"
        f"{' ...' if len(gaps) > 5 else ''}): the simulator writes only contract tables"
    )


# ---------------------------------------------------------------------------- simulator


class LiveSimulator:
    """Writes the platform's live activity into ``app`` at ``events_per_second``.

    ``prepare()`` connects and reads what it needs (called by ``run`` if not done);
    afterwards ``seed`` and ``events_per_second`` hold the values in use.
    """

    def __init__(
        self,
        url: str,
        *,
        seed: int | None = None,
        events_per_second: float | None = None,
        target: str = "dev",
        force: bool = False,
    ) -> None:
        if events_per_second is not None and not events_per_second > 0:
            raise VedfinError("events per second must be a positive number")
        self.url = url
        self.seed = seed if seed is not None else secrets.randbelow(2**31)
        self.events_per_second = events_per_second or 0.0
        self.rate_is_default = events_per_second is None
        self.target = target
        self.force = force
        self.r = random.Random(self.seed)
        self.np_rng = np.random.default_rng(self.seed)
        self._conn: psycopg.Connection | None = None
        self._params: dict[int, UserParams] = {}
        self._open: list[Session] = []
        self._online: set[int] = set()
        self._pool: list[int] = []
        self._pool_cum: list[float] = []
        self._last_ts = EPOCH_DT
        self._sticky: Session | None = None
        self.summary = SimulationSummary(self.seed, self.events_per_second)
        self._on_points: Callable[[PointsWrite], None] | None = None

    # -- set-up

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn is None:
            raise VedfinError("the simulator is not prepared: call prepare() first")
        return self._conn

    def prepare(self) -> None:
        if self._conn is not None:
            return
        check_target(self.target, self.force)
        conn = connect(self.url, autocommit=True)
        self._conn = conn
        try:
            check_contract(conn, self.url)
            self._load()
        except BaseException:
            self.close()
            raise

    def _load(self) -> None:
        where = describe_target(self.url)
        try:
            self.cat = load_catalog(self.conn)
            counts = self.conn.execute(
                "select (select count(*) from app.users), (select coalesce(max(id), 0) "
                "from app.users), (select count(*) from app.lessons)"
            ).fetchone()
            assert counts is not None
            self._require_data(where, counts[0], counts[2])
            self._next_tag = int(counts[1]) + 1
            self._load_pool()
            self._user_columns = {
                c
                for (c,) in self.conn.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = 'app' and table_name = 'users'"
                )
            }
            self.profile = load_profile(self.conn)
            sync_identity_sequences(self.conn)
        except (psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedTable) as exc:
            raise VedfinError(
                f"schema app at {where} does not follow the contract ({exc.diag.message_primary})"
            ) from None
        self.next_sid = self.profile.next_session
        self.achievements = {a.code: a for a in self.cat.achievements}
        if self.rate_is_default:
            self.events_per_second = self.profile.evening_rate()
        self.summary.events_per_second = self.events_per_second
        self.concurrency = max(
            2, min(int(self.events_per_second * SESSION_EVENT_GAP_S), len(self._pool) // 2, 10_000)
        )

    def _require_data(self, where: str, users: int, lessons: int) -> None:
        if users == 0 or lessons == 0:
            what = "no users" if users == 0 else "no lessons"
            raise VedfinError(
                f"schema app at {where} has {what}: the simulator runs on top of an existing "
                "dataset; run `vedfin seed` first or point DATABASE_URL at a populated database"
            )
        if not self.cat.courses:
            raise VedfinError(
                f"schema app at {where} has no course with lessons: nothing to learn; "
                "run `vedfin seed` or point DATABASE_URL at a populated database"
            )

    def _load_pool(self) -> None:
        """Users who may log in, weighted by how recently they were active."""
        rows = self.conn.execute(USER_POOL_SQL).fetchall()
        dates = [d for _, d in rows if d is not None]
        ref = max(dates) if dates else None
        for uid, last in rows:
            if last is None or ref is None:
                weight = 0.3
            else:
                weight = 0.05 + math.exp(-max((ref - last).days, 0) / 7)
            self._add_to_pool(uid, weight)

    def _add_to_pool(self, user_id: int, weight: float) -> None:
        self._pool.append(user_id)
        self._pool_cum.append((self._pool_cum[-1] if self._pool_cum else 0.0) + weight)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- the loop

    def run(
        self,
        duration: float | None = None,
        max_events: int | None = None,
        stop: threading.Event | None = None,
        on_points: Callable[[PointsWrite], None] | None = None,
        on_progress: Callable[[SimulationSummary], None] | None = None,
    ) -> SimulationSummary:
        """Write activity until ``stop`` is set, ``duration`` seconds pass or ``max_events``
        behavior events are written (the action that reaches it completes); then close.

        ``on_points`` is called after the commit of each point-earning write;
        ``on_progress`` after each action, with the running summary."""
        stop = stop or threading.Event()
        self._on_points = on_points
        try:
            self.prepare()
            self._loop(stop, duration, max_events, on_progress)
        except psycopg.OperationalError as exc:
            raise VedfinError(
                f"lost PostgreSQL at {describe_target(self.url)} while simulating "
                f"({str(exc).strip()}); every committed action is complete, nothing is "
                "half-written"
            ) from None
        finally:
            self.close()
        return self.summary

    def _loop(
        self,
        stop: threading.Event,
        duration: float | None,
        max_events: int | None,
        on_progress: Callable[[SimulationSummary], None] | None,
    ) -> None:
        started = time.monotonic()
        deadline = started + duration if duration is not None else math.inf
        due = started
        interval = 1.0 / self.events_per_second
        while not stop.is_set() and (max_events is None or self.summary.events < max_events):
            now = time.monotonic()
            if now >= deadline:
                break
            if due > now:
                stop.wait(min(due, deadline) - now)  # a signal or stop() wakes it at once
                continue
            written = self._step()
            self.summary.events += written
            self.summary.seconds = time.monotonic() - started
            due = max(due + written * interval, time.monotonic() - 1.0)  # no burst after a lag
            if on_progress:
                on_progress(self.summary)
        self.summary.seconds = time.monotonic() - started

    def _step(self) -> int:
        """One action (one transaction); returns the behavior events it wrote."""
        sticky, self._sticky = self._sticky, None
        if sticky is not None and sticky.pending and sticky in self._open:
            return self._advance(sticky)
        if not self._open or (
            len(self._open) < self.concurrency and self.r.random() < NEW_SESSION_SHARE
        ):
            return self._open_session()
        return self._advance(self._open[self.r.randrange(len(self._open))])

    # -- transactions and clock

    def _now(self) -> datetime:
        """The wall clock, strictly increasing (two events never share an instant)."""
        ts = datetime.now(UTC)
        if ts <= self._last_ts:
            ts = self._last_ts + timedelta(microseconds=1)
        self._last_ts = ts
        return ts

    def _tick(self) -> datetime:
        """The instant right after the last one (more events of the same action)."""
        self._last_ts += timedelta(microseconds=1)
        return self._last_ts

    def _txn(
        self, action: Callable[[psycopg.Cursor[Any], datetime], T], ts: datetime | None = None
    ) -> T | None:
        """Run ``action`` in one transaction, stamped ``ts`` (default: the wall clock
        before the transaction starts, so ``ingested_at`` (its now()) is never earlier);
        None when it rolled back on a conflict."""
        ts = ts or self._now()
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                return action(cur, ts)
        except (_Conflict, psycopg.errors.IntegrityError):
            self.summary.conflicts += 1
            return None

    def _points(self, user_id: int, points: int, kind: str) -> None:
        self.summary.points += points
        if self._on_points is not None:
            self._on_points(PointsWrite(user_id, points, kind, time.time()))

    @staticmethod
    def _events(cur: psycopg.Cursor[Any], events: list[Event]) -> int:
        cur.executemany(EVENT_SQL, events)
        return len(events)

    def _event(
        self,
        s: Session,
        etype: str,
        ts: datetime,
        course: int | None = None,
        lesson: int | None = None,
        dur: int | None = None,
        prop_code: int | None = None,
    ) -> Event:
        props = PROPS[prop_code] if prop_code is not None else None
        assert etype in EV
        return (s.user.params.user_id, s.sid, etype, course, lesson, ts, dur, props, s.device)

    def _touch_streak(
        self, cur: psycopg.Cursor[Any], user: LiveUser, ts: datetime
    ) -> Streak | None:
        """The user is active on the local date of ``ts``: move their streak in the
        caller's transaction and return it (``_after_streak`` keeps it once committed);
        None when the streak already counts that date."""
        today = local_date(to_us(ts))
        sk = user.streak
        if sk.last is not None and sk.last >= today:
            return None
        current = sk.current + 1 if sk.last == today - timedelta(days=1) else 1
        moved = Streak(current, max(sk.longest, current), today, True)
        cur.execute(
            "insert into app.streaks (user_id, current_days, longest_days, last_active_date) "
            "values (%s, %s, %s, %s) on conflict (user_id) do update set "
            "current_days = excluded.current_days, longest_days = excluded.longest_days, "
            "last_active_date = excluded.last_active_date",
            (user.params.user_id, moved.current, moved.longest, today),
        )
        return moved

    # -- sessions

    def _open_session(self) -> int:
        if self.r.random() >= self.profile.signup_share:
            uid = self._pick_user()
            if uid is not None:
                return self._login(uid)
        return self._signup()

    def _pick_user(self) -> int | None:
        """A user who is not online, by their weight (five tries)."""
        if not self._pool:
            return None
        for _ in range(5):
            x = self.r.random() * self._pool_cum[-1]
            uid = self._pool[min(bisect_right(self._pool_cum, x), len(self._pool) - 1)]
            if uid not in self._online:
                return uid
        return None

    def _new_session(self, user: LiveUser, device: str, *, signup: bool) -> Session:
        e = user.params.engagement
        st = user.state
        p_study = min(0.25 + 0.3 * e, 0.92)  # as in seeds_gen.simulate.learn
        studies = user.params.learner and self.r.random() < (0.85 if signup else p_study)
        lessons = 1 + (self.r.random() < 0.4) + (self.r.random() < 0.15) if studies else 0
        enroll = (
            user.params.learner
            and len(st.enrolled) < user.params.max_courses
            and len(self._open_courses(user, set())) < 2
            and self.r.random() < (0.6 if signup else 0.14)
        )
        budget = int(np.clip(1 + self.np_rng.poisson(4.0 + 5.0 * min(e, 3.0)), 1, 40))
        s = Session(self.next_sid, user, device, budget, enroll, lessons)
        self.next_sid += 1
        self._open.append(s)
        self._online.add(user.params.user_id)
        return s

    def _close_session(self, s: Session) -> None:
        self._open.remove(s)
        self._online.discard(s.user.params.user_id)

    def _signup(self) -> int:
        ts = self._now()
        us = to_us(ts)
        today = local_date(us)
        rows, params = new_user_rows(
            np.random.default_rng(self.r.getrandbits(63)),
            np.array([self._next_tag], dtype=np.int64),
            np.array([us], dtype=np.int64),
            Window(today, today, us),
        )
        row, up = rows[0], params[0]
        device = people().devices.values[up.device]

        def write(cur: psycopg.Cursor[Any], ts: datetime) -> int:
            tag, email = self._next_tag, row.email
            while cur.execute("select 1 from app.users where email = %s", (email,)).fetchone():
                tag += 1
                email = _retag_email(email, tag)
            values: dict[str, object] = dict(row._asdict())
            values.update(email=email, created_at=ts, deleted_at=None)
            columns = [c for c in USER_ROW_COLUMNS[1:] if c in self._user_columns]
            found = cur.execute(
                sql.SQL("insert into app.users ({}) values ({}) returning id").format(
                    sql.SQL(", ").join(map(sql.Identifier, columns)),
                    sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                ),
                [values[c] for c in columns],
            ).fetchone()
            assert found is not None
            uid = int(found[0])
            self._next_tag = max(tag, uid) + 1
            cur.execute(
                EVENT_SQL, (uid, self.next_sid, "signup", None, None, ts, None, None, device)
            )
            cur.execute(
                "insert into app.streaks (user_id, current_days, longest_days, last_active_date) "
                "values (%s, 1, 1, %s)",
                (uid, today),
            )
            return uid

        uid = self._txn(write, ts)
        if uid is None:
            return 0
        up.user_id = uid
        self._params[uid] = up
        user = LiveUser(up, LearnState(), Streak(1, 1, today, True))
        self._new_session(user, device, signup=True)
        self._add_to_pool(uid, 1.0)
        self.summary.signups += 1
        return 1

    def _login(self, uid: int) -> int:
        def write(
            cur: psycopg.Cursor[Any], ts: datetime
        ) -> tuple[LiveUser, str, Streak | None, int] | None:
            user, last_device = self._load_user(cur, uid)
            if user is None:
                return None
            device = self._session_device(user, last_device)
            method = PROPS[self.r.choice(LOGIN_METHODS)]
            login = (uid, self.next_sid, "login", None, None, ts, None, method, device)
            n = self._events(cur, [login])
            moved = self._touch_streak(cur, user, ts)
            return user, device, moved, n

        done = self._txn(write)
        if done is None:
            return 0
        user, device, moved, n = done
        s = self._new_session(user, device, signup=False)
        self.summary.sessions += 1
        self._after_streak(s, moved)
        return n

    def _session_device(self, user: LiveUser, last_device: str | None) -> str:
        devices = people().devices
        preferred = last_device or devices.values[user.params.device]
        if self.r.random() < 0.85:
            return preferred
        return devices.values[self.r.randrange(len(devices.values))]

    def _load_user(self, cur: psycopg.Cursor[Any], uid: int) -> tuple[LiveUser | None, str | None]:
        """A user's learning state, streak and last device, read from ``app`` now."""
        head = cur.execute(USER_SQL["user"], (uid,)).fetchone()
        if head is None:
            return None, None
        st = LearnState()
        for cid, t in cur.execute(USER_SQL["enrollments"], (uid,)):
            st.enrolled[cid] = t
            st.last_course = cid
        for r in cur.execute(USER_SQL["progress"], (uid,)):
            st.progress[r[2]] = Progress(
                r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], id=r[0], dirty=False
            )
            if r[3] in st.enrolled:
                st.last_course = r[3]
        st.lessons_completed = sum(p.status == "COMPLETED" for p in st.progress.values())
        for course in self.cat.courses:
            if _next_lesson(course, st) is None:
                st.completed_courses[course.id] = max(
                    st.progress[lsn.id].completed_at or 0 for lsn in course.lessons
                )
        st.achievements = {code for (code,) in cur.execute(USER_SQL["achievements"], (uid,))}
        sk = cur.execute(USER_SQL["streak"], (uid,)).fetchone()
        streak = Streak(sk[0], sk[1], sk[2], True) if sk else Streak()
        device = cur.execute(USER_SQL["device"], (uid,)).fetchone()
        group = cur.execute(USER_SQL["group"], (uid,)).fetchone()
        params = self._params.get(uid) or self._derive_params(uid, head[0], head[1], st)
        self._params[uid] = params
        user = LiveUser(params, st, streak, bool(group and group[0]))
        return user, (device[0] if device else None)

    def _derive_params(
        self, uid: int, signup_us: int, persona_code: str | None, st: LearnState
    ) -> UserParams:
        """The generator's per-user parameters for a user it did not generate."""
        pools = people()
        persona = _persona_index(persona_code)
        if persona is None:
            weights = [p.weight for p in pools.personas]
            persona = self.r.choices(range(len(pools.personas)), weights)[0]
        engagement = pools.personas[persona].engagement * self.r.lognormvariate(0, 0.55)
        learner = bool(st.enrolled) or self.r.random() < min(0.55 + 0.2 * engagement, 0.95)
        max_courses = max(len(st.enrolled) + 1, 1 + int(min(engagement, 3.0)))
        device = self.r.choices(range(len(pools.devices.values)), pools.devices.p.tolist())[0]
        return UserParams(
            uid, signup_us, persona, engagement, 2**62, 0.0, learner, max_courses, device
        )

    # -- what a session does next

    def _advance(self, s: Session) -> int:
        if s.pending:
            return self._unlock(s, s.pending.pop(0))
        if s.study is not None:
            return self._study_step(s)
        if s.enroll:
            s.enroll = False
            written = self._enroll(s)
            if written:
                return written
        if s.lessons_left > 0 and (s.budget <= 0 or self.r.random() < 0.5):
            written = self._start_lesson(s)
            if written:
                return written
            s.lessons_left = 0
        if s.budget > 0:
            s.budget -= 1
            return self._browse(s)
        return self._end_session(s)

    def _write_simple(self, s: Session, build: Callable[[datetime], list[Event]]) -> int:
        """Events of one action plus the streak move they cause, in one transaction."""

        def write(cur: psycopg.Cursor[Any], ts: datetime) -> tuple[int, Streak | None]:
            n = self._events(cur, build(ts))
            return n, self._touch_streak(cur, s.user, ts)

        done = self._txn(write)
        if done is None:
            return 0
        self._after_streak(s, done[1])
        return done[0]

    def _browse(self, s: Session) -> int:
        """A page view, course view, video play or buddy message (the generator's mix)."""
        u = self.r.random()
        params = s.user.params
        cdf = self.cat.persona_course_cdf[params.persona]
        pos = min(int(np.searchsorted(cdf, self.r.random())), len(cdf) - 1)
        if self.cat.course_pub[pos] > to_us(datetime.now(UTC)):
            pos = 0
        course = int(self.cat.course_ids[pos])
        if u < 0.47 or (u >= 0.93 and not s.user.in_group):
            dur = int(min(max(self.r.expovariate(1 / 60), 2), 900))
            page = self.r.choice(PAGES)
            return self._write_simple(
                s, lambda ts: [self._event(s, "page_view", ts, None, None, dur, page)]
            )
        if u < 0.78:
            source = self.r.choice(COURSE_SOURCES)
            return self._write_simple(
                s, lambda ts: [self._event(s, "course_view", ts, course, None, None, source)]
            )
        if u < 0.93:
            dur = int(min(max(self.r.expovariate(1 / 180), 5), 1800))
            quality = self.r.choice(QUALITIES)
            lesson = int(self.cat.preview_lesson[pos])
            return self._write_simple(
                s, lambda ts: [self._event(s, "video_play", ts, course, lesson, dur, quality)]
            )
        return self._write_simple(s, lambda ts: [self._event(s, "buddy_message", ts)])

    def _end_session(self, s: Session) -> int:
        self._close_session(s)
        if self.r.random() >= LOGOUT_SHARE:
            return 0
        written = self._write_simple(s, lambda ts: [self._event(s, "logout", ts)])
        self.summary.logouts += written
        return written

    def _open_courses(self, user: LiveUser, abandoned: set[int]) -> list[int]:
        st = user.state
        return [
            c
            for c in st.enrolled
            if c in self.cat.by_id and c not in abandoned and c not in st.completed_courses
        ]

    def _enroll(self, s: Session) -> int:
        st = s.user.state
        course = _pick_course(self.r, self.cat, s.user.params.persona, st, to_us(datetime.now(UTC)))
        if course is None:
            return 0
        source = self.r.choice(COURSE_SOURCES)

        def write(cur: psycopg.Cursor[Any], ts: datetime) -> tuple[int, int, Streak | None]:
            n = self._events(
                cur, [self._event(s, "course_view", ts, course.id, None, None, source)]
            )
            ts2 = self._tick()
            cur.execute(
                "insert into app.enrollments (user_id, course_id, enrolled_at) values (%s, %s, %s)",
                (s.user.params.user_id, course.id, ts2),
            )
            n += self._events(cur, [self._event(s, "enroll", ts2, course.id)])
            return n, to_us(ts2), self._touch_streak(cur, s.user, ts)

        done = self._txn(write)
        if done is None:
            return 0
        st.enrolled[course.id] = done[1]
        if self.r.random() < 0.18:  # enrolled "for later" (as the generator has it)
            s.abandoned.add(course.id)
        else:
            st.last_course = course.id
        self.summary.enrollments += 1
        self._after_streak(s, done[2])
        return done[0]

    def _choose_course(self, s: Session) -> Course | None:
        st = s.user.state
        open_courses = self._open_courses(s.user, s.abandoned)
        if not open_courses:
            return None
        cid = (
            st.last_course
            if st.last_course in open_courses and self.r.random() < 0.75
            else self.r.choice(open_courses)
        )
        assert cid is not None
        st.last_course = cid
        return self.cat.by_id[cid]

    def _plan(self, s: Session, course: Course, lesson: Lesson, row: Progress) -> Study:
        """How long this session spends on the lesson and whether it completes it."""
        e = s.user.params.engagement
        planned = int(
            lesson.duration_minutes
            * 60
            * LEVEL_TIME[course.level]
            * self.r.lognormvariate(0, 0.3)
            * (1 - row.progress_pct / 100)
        )
        planned = max(planned, 45)
        complete = self.r.random() < LEVEL_COMPLETE[course.level] * (0.9 + 0.05 * min(e, 2.0))
        if not complete:
            planned = int(planned * self.r.uniform(0.2, 0.8))
        beats = min(3, planned // 300)  # a heartbeat every ~5 minutes of study, at most 3
        return Study(row, lesson, course, complete, beats, planned)

    def _start_lesson(self, s: Session) -> int:
        """Start the next lesson of an open course (INSERT user_progress), or resume an
        unfinished one (its progress row is updated later)."""
        course = self._choose_course(s)
        if course is None:
            return 0
        lesson = _next_lesson(course, s.user.state)
        if lesson is None:
            return 0
        uid = s.user.params.user_id
        existing = s.user.state.progress.get(lesson.id)
        if existing is not None and existing.updated_at > to_us(datetime.now(UTC)):
            return 0  # data dated in the future: never write a row back in time

        def write(cur: psycopg.Cursor[Any], ts: datetime) -> tuple[Progress, int, Streak | None]:
            if existing is not None:
                ev = self._event(s, "page_view", ts, course.id, lesson.id, None, ARTICLE_PAGE)
                return existing, self._events(cur, [ev]), self._touch_streak(cur, s.user, ts)
            found = cur.execute(
                "insert into app.user_progress (user_id, lesson_id, course_id, status, "
                "progress_pct, time_spent_seconds, started_at, completed_at, updated_at) "
                "values (%s, %s, %s, 'IN_PROGRESS', 0, 0, %s, null, %s) returning id",
                (uid, lesson.id, course.id, ts, ts),
            ).fetchone()
            assert found is not None
            us = to_us(ts)
            row = Progress(uid, lesson.id, course.id, "IN_PROGRESS", 0.0, 0, us, None, us)
            row.id, row.dirty = int(found[0]), False
            n = self._events(cur, [self._event(s, "lesson_start", ts, course.id, lesson.id)])
            return row, n, self._touch_streak(cur, s.user, ts)

        done = self._txn(write)
        if done is None:
            return 0
        row, written, moved = done
        if existing is None:
            s.user.state.progress[lesson.id] = row
            self.summary.lesson_starts += 1
        s.study = self._plan(s, course, lesson, row)
        self._after_streak(s, moved)
        return written

    def _study_step(self, s: Session) -> int:
        study = s.study
        assert study is not None
        if study.beats_left > 0:
            study.beats_left -= 1
            share = study.planned_seconds // (study.beats_left + 2)
            return self._progress(s, study, share, final=False)
        s.study = None
        if study.complete:
            return self._complete(s, study)
        s.lessons_left = 0  # a lesson left unfinished ends the studying of this session
        return self._progress(s, study, study.planned_seconds - study.spent, final=True)

    def _progress(self, s: Session, study: Study, seconds: int, *, final: bool) -> int:
        """UPDATE the progress row in place, with the heartbeat event that reports it."""
        row, lesson = study.row, study.lesson
        spent = study.spent + seconds
        pct = min(99.0, (row.progress_pct or 0) + 100 * seconds / max(study.planned_seconds, 1))
        if final:
            pct = round(max(row.progress_pct, self.r.uniform(10, 90)), 2)
        pct = round(pct, 2)
        score = self.r.choice((20, 30, 40)) if final and lesson.content_type == "quiz" else None
        video = lesson.content_type == "video"
        quality = self.r.choice(QUALITIES) if video else ARTICLE_PAGE

        def write(cur: psycopg.Cursor[Any], ts: datetime) -> tuple[int, int, Streak | None]:
            etype = "video_play" if video else "page_view"
            events = [self._event(s, etype, ts, row.course_id, lesson.id, spent, quality)]
            if score is not None:
                events.append(
                    self._event(
                        s,
                        "quiz_submit",
                        self._tick(),
                        row.course_id,
                        lesson.id,
                        spent,
                        QUIZ_SCORES[score],
                    )
                )
            self._update_progress(cur, row, pct, row.time_spent_seconds + seconds, ts, done=False)
            return self._events(cur, events), to_us(ts), self._touch_streak(cur, s.user, ts)

        done = self._txn(write)
        if done is None:
            s.study, s.lessons_left = None, 0
            return 0
        study.spent = spent
        row.progress_pct, row.time_spent_seconds, row.updated_at = (
            pct,
            row.time_spent_seconds + seconds,
            done[1],
        )
        self.summary.progress_updates += 1
        self.summary.quizzes += score is not None
        self._after_streak(s, done[2])
        return done[0]

    @staticmethod
    def _update_progress(
        cur: psycopg.Cursor[Any], row: Progress, pct: float, spent: int, ts: datetime, *, done: bool
    ) -> None:
        cur.execute(
            "update app.user_progress set status = %s, progress_pct = %s, "
            "time_spent_seconds = %s, completed_at = %s, updated_at = %s "
            "where id = %s and status = 'IN_PROGRESS'",
            ("COMPLETED" if done else "IN_PROGRESS", pct, spent, ts if done else None, ts, row.id),
        )
        if cur.rowcount != 1:
            raise _Conflict(f"user_progress {row.id} is no longer in progress")

    def _complete(self, s: Session, study: Study) -> int:
        """Complete the lesson: UPDATE its progress row to COMPLETED, with a quiz first."""
        row, lesson = study.row, study.lesson
        seconds = max(study.planned_seconds - study.spent, 1)
        total = row.time_spent_seconds + seconds
        quiz = lesson.content_type == "quiz"
        score = self.r.choice((60, 70, 80, 90, 100, 100)) if quiz else None

        def write(cur: psycopg.Cursor[Any], ts: datetime) -> tuple[int, int, Streak | None]:
            events: list[Event] = []
            end = ts
            if score is not None:  # the quiz is submitted, then the lesson completes
                plan, code = study.planned_seconds, QUIZ_SCORES[score]
                events.append(
                    self._event(s, "quiz_submit", ts, row.course_id, lesson.id, plan, code)
                )
                end = self._tick()
            events.append(self._event(s, "lesson_complete", end, row.course_id, lesson.id, total))
            self._update_progress(cur, row, 100.0, total, end, done=True)
            return self._events(cur, events), to_us(end), self._touch_streak(cur, s.user, ts)

        done = self._txn(write)
        if done is None:
            s.lessons_left = 0
            return 0
        written, end_us, moved = done
        self._points(s.user.params.user_id, lesson.points, "lesson")
        self._record_completion(s, study, total, end_us)
        self.summary.completions += 1
        self.summary.quizzes += score is not None
        self._queue_unlocks(s, quiz_ace=score == 100, night=local_hour(end_us) < 5)
        self._after_streak(s, moved)
        return written

    def _record_completion(self, s: Session, study: Study, total: int, end_us: int) -> None:
        row, st = study.row, s.user.state
        row.status, row.progress_pct, row.completed_at = "COMPLETED", 100.0, end_us
        row.time_spent_seconds, row.updated_at = total, end_us
        st.lessons_completed += 1
        if _next_lesson(study.course, st) is None:
            st.completed_courses[study.course.id] = end_us
        s.lessons_left -= 1
        if self.r.random() < LEVEL_DROPOFF[study.course.level]:
            s.abandoned.add(study.course.id)
            s.lessons_left = 0

    # -- achievements and streaks

    def _queue_unlocks(self, s: Session, *, quiz_ace: bool = False, night: bool = False) -> None:
        """The generator's achievement rules (seeds_gen.chunks.build_chunk), applied now."""
        st, sk = s.user.state, s.user.streak
        n_lessons, n_courses = st.lessons_completed, len(st.completed_courses)
        due = [
            code
            for code, have, goal in (
                ("first_lesson", n_lessons, 1),
                ("lessons_10", n_lessons, 10),
                ("first_course", n_courses, 1),
                ("courses_3", n_courses, 3),
            )
            if have >= goal
        ]
        due += [f"streak_{goal}" for goal in STREAK_GOALS if sk.current >= goal]
        due += ["quiz_ace"] * quiz_ace + ["night_owl"] * night
        for code in due:
            if code in self.achievements and code not in st.achievements and code not in s.pending:
                s.pending.append(code)
        if s.pending:
            self._sticky = s

    def _after_streak(self, s: Session, moved: Streak | None) -> None:
        if moved is not None:
            s.user.streak = moved
            self.summary.streak_updates += 1
            self._queue_unlocks(s)

    def _unlock(self, s: Session, code: str) -> int:
        """INSERT user_achievements with its achievement_unlocked event."""
        ach = self.achievements[code]
        if code in s.user.state.achievements:
            return 0
        uid = s.user.params.user_id

        def write(cur: psycopg.Cursor[Any], ts: datetime) -> int:
            cur.execute(
                "insert into app.user_achievements (user_id, achievement_id, unlocked_at) "
                "values (%s, %s, %s)",
                (uid, ach.id, ts),
            )
            return self._events(
                cur, [self._event(s, "achievement_unlocked", ts, prop_code=prop({"code": code}))]
            )

        written = self._txn(write)
        s.user.state.achievements.add(code)  # unlocked now, or by another writer first
        if written is None:
            return 0
        self._points(uid, ach.points, "achievement")
        self.summary.unlocks += 1
        if s.pending:
            self._sticky = s
        return written


# ---------------------------------------------------------------------------- the command


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` instead of raising: the loop checks it between
    actions, so the transaction in progress always finishes (commit or rollback)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class LiveLine:
    """One updating line on a terminal; a plain line every ``every`` seconds otherwise."""

    def __init__(self, console: Console, *, quiet: bool, every: float = 5.0) -> None:
        self.console = console
        self.quiet = quiet
        self.every = every
        self.live: Live | None = None
        self._last = 0.0

    def __enter__(self) -> LiveLine:
        if not self.quiet and self.console.is_terminal:
            self.live = Live(Text(""), console=self.console, refresh_per_second=4)
            self.live.__enter__()
        self._last = time.monotonic()
        return self

    def update(self, summary: SimulationSummary) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if self.live is not None:
            if now - self._last >= 0.25:
                self.live.update(Text(summary.line()))
                self._last = now
        elif now - self._last >= self.every:
            self.console.print(summary.line(), highlight=False)
            self._last = now

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)


def print_summary(console: Console, summary: SimulationSummary, where: str) -> None:
    table = Table(title=f"{where}: {summary.seconds:.1f}s simulated, seed {summary.seed}")
    table.add_column("written")
    table.add_column("count", justify="right")
    for name, count in summary.counts().items():
        table.add_row(name, f"{count:,}")
    console.print(table)
    console.print(summary.line(), highlight=False)


def run_simulate(
    url: str,
    target: str,
    *,
    seed: int | None,
    events_per_second: float | None,
    duration: float | None,
    max_events: int | None,
    force: bool,
    quiet: bool,
) -> SimulationSummary:
    """What `vedfin simulate` does: prepare, say what it will do, run until stopped."""
    console = Console(stderr=True, soft_wrap=True)
    stop = threading.Event()
    sim = LiveSimulator(
        url, seed=seed, events_per_second=events_per_second, target=target, force=force
    )
    where = describe_target(url)
    with stop_on_signals(stop):
        sim.prepare()
        how = (
            "default: the evening peak of the data's last 7 days"
            if sim.rate_is_default
            else "--events-per-second"
        )
        console.print(
            f"simulating live activity in {where}: {sim.events_per_second:.2f} events/s "
            f"({how}), seed {sim.seed}; Ctrl-C stops cleanly",
            highlight=False,
        )
        with LiveLine(console, quiet=quiet) as line:
            summary = sim.run(duration, max_events, stop, on_progress=line.update)
    print_summary(console, summary, where)
    return summary


__all__ = [
    "LiveSimulator",
    "PointsWrite",
    "SimulationSummary",
    "catalog_from_rows",
    "run_simulate",
    "stop_on_signals",
]
