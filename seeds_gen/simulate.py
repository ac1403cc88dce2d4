"""The behaviour model: who signs up when, their sessions, what they learn.

Time is int64 microseconds since the Unix epoch (UTC). Local time is the reporting zone
(``vedfin.calendar.ZONE``, Asia/Ho_Chi_Minh, UTC+7 with no DST since 1975), so a local
date is ``(ts + LOCAL_OFFSET_US) // 1 day``.

Work is done in chunks of users so memory stays flat as ``--users`` grows.
Sessions and the "ambient" events inside them (logins, page and course views,
video plays, buddy messages) are drawn with numpy for a whole chunk at once;
the learning path (enrollments, lesson starts and completions, quizzes) is a
small per-user loop so that events, ``enrollments`` and ``user_progress`` tell
the same story. Achievements and streaks are derived from that activity.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import NamedTuple

import numpy as np

from seeds_gen.people import make_people
from seeds_gen.reference import EV, EVENT_TYPES, Achievement, Course, Lesson, catalog, people
from vedfin.calendar import ZONE

US = 1_000_000
MIN_US = 60 * US
HOUR_US = 3600 * US
DAY_US = 86400 * US
LOCAL_OFFSET_US = int(ZONE.utcoffset(datetime(2000, 1, 1)).total_seconds()) * US  # type: ignore[union-attr]
"""The reporting zone's offset (vedfin.calendar.ZONE, UTC+7, no DST since 1975): local dates
in integer arithmetic, the generator's hot path."""
EPOCH = date(1970, 1, 1)

# Share of sessions starting in each local hour: morning commute, a lunch peak,
# the evening peak, and some late-night study.
HOUR_WEIGHTS = np.array(
    [
        1.4,
        0.7,
        0.35,
        0.15,
        0.1,
        0.3,
        1.0,
        2.2,
        2.5,
        2.2,
        2.0,
        3.4,
        4.6,
        3.2,
        2.0,
        1.9,
        2.0,
        2.4,
        2.9,
        4.2,
        5.4,
        5.8,
        4.4,
        2.6,
    ]
)
HOUR_CDF = np.cumsum(HOUR_WEIGHTS) / HOUR_WEIGHTS.sum()
# Monday..Sunday: weekdays are study days.
DOW_ACCEPT = np.array([1.0, 0.97, 0.95, 0.93, 0.86, 0.72, 0.8])
SIGNUP_DOW = np.array([1.1, 1.05, 1.0, 1.0, 0.95, 0.85, 0.95])
SIGNUP_GROWTH = 1.2  # signups per day grow by e^1.2 over the default window

LEVEL_COMPLETE = {"BEGINNER": 0.93, "INTERMEDIATE": 0.84, "EXPERT": 0.70}
LEVEL_DROPOFF = {"BEGINNER": 0.05, "INTERMEDIATE": 0.09, "EXPERT": 0.15}
LEVEL_TIME = {"BEGINNER": 1.0, "INTERMEDIATE": 1.15, "EXPERT": 1.35}

# Properties (jsonb) come from small catalogues so the loader can encode them fast.
PROPS: list[str] = []
_PROP_INDEX: dict[str, int] = {}


def prop(value: dict[str, object]) -> int:
    return _prop_text(json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True))


def _prop_text(text: str) -> int:
    if text not in _PROP_INDEX:
        _PROP_INDEX[text] = len(PROPS)
        PROPS.append(text)
    return _PROP_INDEX[text]


def prop_codes(texts: list[str]) -> np.ndarray:
    """For the ``PROPS`` of another process: each of its codes' code here."""
    return np.array([_prop_text(t) for t in texts], dtype=np.int16)


PAGES = [
    prop({"page": p})
    for p in ("home", "courses", "profile", "leaderboard", "community", "article", "search")
]
COURSE_SOURCES = [prop({"source": s}) for s in ("home", "search", "recommendation", "buddy")]
LOGIN_METHODS = [prop({"method": m}) for m in ("password", "google", "zalo", "facebook")]
QUALITIES = [prop({"quality": q}) for q in ("480p", "720p", "1080p")]
QUIZ_SCORES = {s: prop({"score": s}) for s in range(0, 101, 10)}


def local_midnight_us(d: date) -> int:
    return (d - EPOCH).days * DAY_US - LOCAL_OFFSET_US


def local_day(ts: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of the local date of each instant in ``ts``."""
    return (ts + LOCAL_OFFSET_US) // DAY_US


def local_hour(ts: int) -> int:
    return int(((ts + LOCAL_OFFSET_US) % DAY_US) // HOUR_US)


@dataclass(frozen=True)
class Window:
    start_date: date  # first local date with signups
    end_date: date  # last local date
    cutoff_us: int  # nothing happens after this instant (end of end_date, or "now")

    @property
    def start_us(self) -> int:
        return local_midnight_us(self.start_date)

    @property
    def days(self) -> int:
        return (self.end_date - self.start_date).days + 1


EVENT_KEYS = (
    ("user", np.int64),
    ("sid", np.int64),
    ("etype", np.int8),
    ("course", np.int64),
    ("lesson", np.int64),
    ("ts", np.int64),
    ("dur", np.int32),
    ("prop", np.int16),
)
"""The generated event fields and their types, in the order ``EventLists.add`` keeps them
(not the table's columns: those are ``seeds_gen.pgcopy.EVENT_COLUMNS``)."""


class EventLists:
    """The events of the per-user loop, one tuple each (one append per event: this is the
    generator's hot path), turned into columns once at the end (``columns``)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, int, int, int, int, int, int]] = []

    def add(
        self,
        user: int,
        sid: int,
        etype: int,
        ts: int,
        course: int = -1,
        lesson: int = -1,
        dur: int = -1,
        prop_code: int = -1,
    ) -> None:
        self.rows.append((user, sid, etype, course, lesson, ts, dur, prop_code))

    def columns(self) -> dict[str, np.ndarray]:
        """Each of ``EVENT_KEYS`` as an array of its type."""
        table = np.array(self.rows, dtype=np.int64).reshape(len(self.rows), len(EVENT_KEYS))
        return {k: table[:, j].astype(dtype) for j, (k, dtype) in enumerate(EVENT_KEYS)}


@dataclass
class Progress:
    user_id: int
    lesson_id: int
    course_id: int
    status: str
    progress_pct: float
    time_spent_seconds: int
    started_at: int
    completed_at: int | None
    updated_at: int
    id: int | None = None
    dirty: bool = True


@dataclass
class LearnState:
    """A user's learning so far (empty for a new user; loaded from the database on append)."""

    enrolled: dict[int, int] = field(default_factory=dict)  # course_id -> enrolled_at
    progress: dict[int, Progress] = field(default_factory=dict)  # lesson_id -> row
    abandoned: set[int] = field(default_factory=set)
    completed_courses: dict[int, int] = field(default_factory=dict)  # course_id -> completed at
    achievements: set[str] = field(default_factory=set)
    new_enrollments: list[tuple[int, int]] = field(default_factory=list)
    lessons_completed: int = 0
    last_course: int | None = None
    quiz_ace: tuple[int, int] | None = None  # (ts, sid)
    night_owl: tuple[int, int] | None = None
    completions: list[tuple[int, int]] = field(default_factory=list)  # (ts, sid) in order
    course_completions: list[tuple[int, int]] = field(default_factory=list)
    prior_completions: int = 0  # completed before this run (append mode)
    prior_courses: int = 0


@dataclass
class UserParams:
    """What the model draws once per user; kept so an append can continue the story."""

    user_id: int
    signup_us: int
    persona: int
    engagement: float
    active_until_us: int
    p_active: float
    learner: bool
    max_courses: int
    device: int
    group_id: int | None = None
    joined_us: int | None = None


class Catalog:
    """The courses of a scenario with lookup tables for the simulation."""

    def __init__(self, n_courses: int, window: Window) -> None:
        courses, achievements, version = catalog()
        chosen = courses[:n_courses]
        # Most courses exist before the window; the newest few are released during it.
        published_us: dict[int, int] = {}
        n = len(chosen)
        for i, c in enumerate(chosen):
            if n > 5 and i >= n - 2:
                frac = 0.35 if i == n - 2 else 0.6
                day = window.start_date + timedelta(days=int(window.days * frac))
            else:
                day = window.start_date - timedelta(days=30 + 7 * (n - i))
            published_us[c.id] = local_midnight_us(day) + 9 * HOUR_US
        self._index(chosen, published_us, achievements, version)

    @classmethod
    def of(
        cls,
        courses: Sequence[Course],
        published_us: dict[int, int],
        achievements: tuple[Achievement, ...],
        version: str,
    ) -> Catalog:
        """A catalogue of the given courses (those of a database, say), not the reference
        files', with the same lookup tables."""
        cat = cls.__new__(cls)
        cat._index(courses, published_us, achievements, version)
        return cat

    def _index(
        self,
        courses: Sequence[Course],
        published_us: dict[int, int],
        achievements: tuple[Achievement, ...],
        version: str,
    ) -> None:
        self.version = version
        self.courses: tuple[Course, ...] = tuple(courses)
        self.achievements = achievements
        self.by_id = {c.id: c for c in self.courses}
        self.lesson_by_id: dict[int, Lesson] = {
            lesson.id: lesson for c in self.courses for lesson in c.lessons
        }
        self.published_us = dict(published_us)
        self.course_ids = np.array([c.id for c in self.courses], dtype=np.int64)
        self.course_pub = np.array([self.published_us[c.id] for c in self.courses], dtype=np.int64)
        pools = people()
        self.persona_course_cdf = []
        for persona in pools.personas:
            w = np.array([persona.categories.get(c.category, 0.3) for c in self.courses])
            self.persona_course_cdf.append(np.cumsum(w) / w.sum())
        self.preview_lesson = np.array(
            [
                next((lsn.id for lsn in c.lessons if lsn.content_type == "video"), c.lessons[0].id)
                for c in self.courses
            ],
            dtype=np.int64,
        )
        self.achievement_by_code = {a.code: a for a in achievements}
        #: (persona, completed a beginner course?, an intermediate one?) -> course weights
        self.weights: dict[tuple[int, bool, bool], list[tuple[Course, float]]] = {}


# ---------------------------------------------------------------------------- users


def signup_times(
    rng: np.random.Generator,
    n: int,
    window: Window,
    first_day: int = 0,
    total_days: int | None = None,
) -> np.ndarray:
    """``n`` signup instants over the window: growing, weekly and daily rhythm."""
    days = window.days
    total = total_days or days
    d = np.arange(days)
    dows = np.array([(window.start_date + timedelta(days=int(i))).weekday() for i in d])
    w = np.exp(SIGNUP_GROWTH * (d + first_day) / total) * SIGNUP_DOW[dows]
    day = rng.choice(days, size=n, p=w / w.sum())
    hour = np.searchsorted(HOUR_CDF, rng.random(n))
    ts = (
        window.start_us + day * DAY_US + hour * HOUR_US + rng.integers(0, HOUR_US, size=n)
    ).astype(np.int64)
    late = ts >= window.cutoff_us
    if late.any():
        span = window.cutoff_us - window.start_us
        ts[late] = window.start_us + rng.integers(0, span, size=int(late.sum()))
    ts.sort()
    return ts


class UserRow(NamedTuple):
    """A generated ``app.users`` row (timestamps in epoch microseconds, UTC)."""

    id: int
    email: str
    full_name: str
    phone: str
    gender: str
    province: str
    birth_year: int
    persona: str
    signup_channel: str
    created_at: int
    deleted_at: int | None


def new_user_rows(
    rng: np.random.Generator, ids: np.ndarray, signup: np.ndarray, window: Window
) -> tuple[list[UserRow], list[UserParams]]:
    pools = people()
    n = len(ids)
    gender = (rng.random(n) < 0.52).astype(np.int8)  # slightly more women learn finance online
    pw = np.array([p.weight for p in pools.personas])
    persona = rng.choice(len(pools.personas), size=n, p=pw / pw.sum())
    province = rng.choice(len(pools.provinces.values), size=n, p=pools.provinces.p)
    channel = rng.choice(len(pools.channels.values), size=n, p=pools.channels.p)
    device = rng.choice(len(pools.devices.values), size=n, p=pools.devices.p)
    u_birth = rng.random(n)
    engagement = np.array([pools.personas[p].engagement for p in persona]) * rng.lognormal(
        0, 0.55, n
    )
    # Churn: a third leave within days, most within weeks, a loyal quarter stays for months.
    kind = rng.choice(3, size=n, p=[0.34, 0.41, 0.25])
    mean_days = np.array([2.0, 28.0, 200.0])[kind]
    lifetime = rng.exponential(mean_days) * DAY_US
    active_until = (signup + lifetime).astype(np.int64)
    p_active = np.clip(0.22 * engagement * np.array([1.0, 1.1, 1.6])[kind], 0.02, 0.9)
    learner = rng.random(n) < np.clip(0.55 + 0.2 * engagement, 0, 0.95)
    max_courses = 1 + rng.poisson(np.clip(engagement, 0.2, 3.0))
    deleted = rng.random(n) < 0.02
    deleted_at = signup + (rng.random(n) * np.maximum(window.cutoff_us - signup, 0)).astype(
        np.int64
    )
    names = make_people(rng, ids, gender)
    rows: list[UserRow] = []
    params: list[UserParams] = []
    personas, provinces, channels = pools.personas, pools.provinces.values, pools.channels.values
    for (uid, pi, prov, ch, dev, ub, eng, until, pa, lrn, mc, su, dl, dat), nm in zip(
        zip(
            ids.tolist(),
            persona.tolist(),
            province.tolist(),
            channel.tolist(),
            device.tolist(),
            u_birth.tolist(),
            engagement.tolist(),
            active_until.tolist(),
            p_active.tolist(),
            learner.tolist(),
            max_courses.tolist(),
            signup.tolist(),
            deleted.tolist(),
            deleted_at.tolist(),
            strict=True,
        ),
        names,
        strict=True,
    ):
        p = personas[pi]
        lo, hi = p.birth_years
        rows.append(
            UserRow(
                uid,
                nm["email"],
                nm["full_name"],
                nm["phone"],
                nm["gender"],
                provinces[prov],
                int(lo + ub * (hi - lo + 1)),
                p.code,
                channels[ch],
                su,
                dat if dl else None,
            )
        )
        params.append(
            UserParams(
                user_id=uid,
                signup_us=su,
                persona=pi,
                engagement=eng,
                active_until_us=until,
                p_active=pa,
                learner=lrn,
                max_courses=mc,
                device=dev,
            )
        )
    return rows, params


# ---------------------------------------------------------------------------- sessions


@dataclass
class Sessions:
    user_idx: np.ndarray  # index into the chunk's params
    start: np.ndarray
    sid: np.ndarray
    device: np.ndarray
    is_signup: np.ndarray


def draw_sessions(
    rng: np.random.Generator,
    params: list[UserParams],
    from_us: np.ndarray,
    window: Window,
    first_sid: int,
    with_signup: np.ndarray,
) -> Sessions:
    """Sessions of each user in [from_us, min(active_until, cutoff)]."""
    n = len(params)
    p_active = np.array([p.p_active for p in params])
    until = np.minimum(np.array([p.active_until_us for p in params]), window.cutoff_us)
    signup = np.array([p.signup_us for p in params], dtype=np.int64)
    span_days = np.maximum(until - from_us, 0) / DAY_US
    count = rng.poisson(p_active * span_days * 1.4)
    idx = np.repeat(np.arange(n), count)
    offset = (rng.random(len(idx)) * (span_days[idx] * DAY_US)).astype(np.int64)
    day = local_day(from_us[idx] + offset)
    hour = np.searchsorted(HOUR_CDF, rng.random(len(idx)))
    start = (
        day * DAY_US - LOCAL_OFFSET_US + hour * HOUR_US + rng.integers(0, HOUR_US, size=len(idx))
    ).astype(np.int64)
    age_days = (start - signup[idx]) / DAY_US
    dow = (day + 3) % 7  # 1970-01-01 was a Thursday
    keep = (
        (rng.random(len(idx)) < DOW_ACCEPT[dow] * (0.35 + 0.65 * np.exp(-age_days / 45)))
        & (start > from_us[idx])
        & (start <= until[idx])
        & (start > signup[idx] + 30 * MIN_US)
    )
    idx, start = idx[keep], start[keep]
    # the signup session, at created_at exactly
    sig_users = np.nonzero(with_signup)[0]
    idx = np.concatenate([sig_users, idx])
    start = np.concatenate([signup[sig_users], start])
    is_signup = np.zeros(len(idx), dtype=bool)
    is_signup[: len(sig_users)] = True
    order = np.lexsort((start, idx))
    idx, start, is_signup = idx[order], start[order], is_signup[order]
    # one session at a time: drop starts within 45 minutes of the previous one
    same = np.r_[False, idx[1:] == idx[:-1]]
    close = same & (np.r_[np.int64(0), np.diff(start)] < 45 * MIN_US)
    keep2 = ~close | is_signup
    idx, start, is_signup = idx[keep2], start[keep2], is_signup[keep2]
    pref = np.array([p.device for p in params], dtype=np.int8)
    device = np.where(
        rng.random(len(idx)) < 0.85, pref[idx], rng.integers(0, 3, size=len(idx))
    ).astype(np.int8)
    sid = np.arange(first_sid, first_sid + len(idx), dtype=np.int64)
    return Sessions(idx, start, sid, device, is_signup)


# ---------------------------------------------------------------------------- learning


def _course_weights(
    cat: Catalog, persona_idx: int, done_beginner: bool, done_intermediate: bool
) -> list[tuple[Course, float]]:
    """Each course with its weight for a persona that has or has not completed a beginner
    and an intermediate course (computed once per such case, in ``cat.weights``)."""
    key = (persona_idx, done_beginner, done_intermediate)
    table = cat.weights.get(key)
    if table is not None:
        return table
    pers = people().personas[persona_idx]
    table = []
    for c in cat.courses:
        w = pers.categories.get(c.category, 0.3)
        if c.level == "INTERMEDIATE":
            w *= 1.2 if done_beginner else 0.5
        elif c.level == "EXPERT":
            w *= 1.5 if done_intermediate else (0.35 if pers.code == "aspiring_investor" else 0.15)
        table.append((c, w))
    cat.weights[key] = table
    return table


def _pick_course(
    r: random.Random, cat: Catalog, persona_idx: int, st: LearnState, t: int
) -> Course | None:
    done_levels = {cat.by_id[c].level for c in st.completed_courses}
    weights = []
    options = []
    published = cat.published_us
    for c, w in _course_weights(
        cat, persona_idx, "BEGINNER" in done_levels, "INTERMEDIATE" in done_levels
    ):
        if c.id in st.enrolled or published[c.id] > t:
            continue
        options.append(c)
        weights.append(w)
    if not options:
        return None
    return r.choices(options, weights)[0]


def _next_lesson(course: Course, st: LearnState) -> Lesson | None:
    for lesson in course.lessons:
        row = st.progress.get(lesson.id)
        if row is None or row.status != "COMPLETED":
            return lesson
    return None


def learn(
    r: random.Random,
    cat: Catalog,
    up: UserParams,
    sessions: list[tuple[int, int, bool]],
    st: LearnState,
    ev: EventLists,
    cutoff: int,
) -> None:
    """Walk one user's sessions: in each, maybe enroll in a course, then maybe study one of
    the open courses for a lesson or a few (``study_lesson``), emitting their events."""
    rand = r.random
    if not up.learner and not st.enrolled:
        # never enrolls, nothing to study: each session only draws its start offset
        for _ in sessions:
            rand()
        return
    p_study = min(0.25 + 0.3 * up.engagement, 0.92)
    for sid, t0, is_signup in sessions:
        t = t0 + int((15 + 75 * rand()) * US)  # r.uniform(15, 90), inlined (the same draw)
        if t + 10 * MIN_US > cutoff:  # nothing is learned in the last minutes before the cutoff
            continue
        open_courses = [
            c for c in st.enrolled if c not in st.abandoned and c not in st.completed_courses
        ]
        if (
            up.learner
            and len(st.enrolled) < up.max_courses
            and len(open_courses) < 2
            and r.random() < (0.6 if is_signup else 0.14)
        ):
            t = _enroll(r, cat, up, st, ev, sid, t, open_courses)
        if not open_courses or r.random() > (0.85 if is_signup else p_study):
            continue
        cid = (
            st.last_course
            if st.last_course in open_courses and r.random() < 0.75
            else r.choice(open_courses)
        )
        assert cid is not None
        st.last_course = cid
        _study(r, cat.by_id[cid], up, st, ev, sid, t, cutoff)


def _enroll(
    r: random.Random,
    cat: Catalog,
    up: UserParams,
    st: LearnState,
    ev: EventLists,
    sid: int,
    t: int,
    open_courses: list[int],
) -> int:
    """View a course and enroll in it (a few enroll "for later" and never come back);
    the time after it."""
    course = _pick_course(r, cat, up.persona, st, t)
    if course is None:
        return t
    uid = up.user_id
    ev.add(uid, sid, EV["course_view"], t, course=course.id, prop_code=r.choice(COURSE_SOURCES))
    t += int(r.uniform(10, 120) * US)
    ev.add(uid, sid, EV["enroll"], t, course=course.id)
    st.enrolled[course.id] = t
    st.new_enrollments.append((course.id, t))
    if r.random() < 0.18:  # enrolled "for later" and never came back to it
        st.abandoned.add(course.id)
    else:
        st.last_course = course.id
        open_courses.append(course.id)
    return t + int(r.uniform(5, 60) * US)


def _study(
    r: random.Random,
    course: Course,
    up: UserParams,
    st: LearnState,
    ev: EventLists,
    sid: int,
    t: int,
    cutoff: int,
) -> None:
    """One to three lessons of ``course`` in a row, until one is left unfinished or the
    learner drops the course."""
    for _ in range(1 + (r.random() < 0.4) + (r.random() < 0.15)):
        lesson = _next_lesson(course, st)
        if lesson is None or t + 5 * MIN_US > cutoff:
            break
        end, complete = study_lesson(r, course, lesson, up, st, ev, sid, t, cutoff)
        if not complete:
            break
        t = end + int(r.uniform(20, 150) * US)
        if r.random() < LEVEL_DROPOFF[course.level]:
            st.abandoned.add(course.id)
            break


def study_lesson(
    r: random.Random,
    course: Course,
    lesson: Lesson,
    up: UserParams,
    st: LearnState,
    ev: EventLists,
    sid: int,
    t: int,
    cutoff: int,
) -> tuple[int, bool]:
    """Start (or resume) a lesson at ``t``, spend time in it with heartbeat events, submit
    its quiz, and complete it or stop part-way; (the time it ends, completed?)."""
    uid, cid = up.user_id, course.id
    row = st.progress.get(lesson.id)
    if row is None:
        ev.add(uid, sid, EV["lesson_start"], t, course=cid, lesson=lesson.id)
        row = Progress(uid, lesson.id, cid, "IN_PROGRESS", 0.0, 0, t, None, t)
        st.progress[lesson.id] = row
    else:
        ev.add(uid, sid, EV["page_view"], t, course=cid, lesson=lesson.id, prop_code=PAGES[5])
    spent = int(
        lesson.duration_minutes
        * 60
        * LEVEL_TIME[course.level]
        * r.lognormvariate(0, 0.3)
        * (1 - row.progress_pct / 100)
    )
    spent = max(spent, 45)
    complete = r.random() < LEVEL_COMPLETE[course.level] * (0.9 + 0.05 * min(up.engagement, 2.0))
    stop_at = spent if complete else int(spent * r.uniform(0.2, 0.8))
    if t + stop_at * US + 2 * MIN_US > cutoff:  # would run past the end of the data
        complete = False
        stop_at = max(int((cutoff - t) / US) - 120, 0)
    end = t + stop_at * US
    _heartbeats(r, lesson, uid, cid, ev, sid, t, end)
    if lesson.content_type == "quiz":
        score = r.choice((60, 70, 80, 90, 100, 100)) if complete else r.choice((20, 30, 40))
        ev.add(
            uid,
            sid,
            EV["quiz_submit"],
            end - 2 * US,
            course=cid,
            lesson=lesson.id,
            dur=stop_at,
            prop_code=QUIZ_SCORES[score],
        )
        if score == 100 and st.quiz_ace is None:
            st.quiz_ace = (end - 2 * US, sid)
    row.time_spent_seconds += stop_at
    row.updated_at = end
    row.dirty = True
    if not complete:
        row.progress_pct = round(max(row.progress_pct, r.uniform(10, 90)), 2)
        return end, False
    row.status, row.progress_pct, row.completed_at = "COMPLETED", 100.0, end
    ev.add(
        uid,
        sid,
        EV["lesson_complete"],
        end,
        course=cid,
        lesson=lesson.id,
        dur=row.time_spent_seconds,
    )
    st.lessons_completed += 1
    st.completions.append((end, sid))
    if st.night_owl is None and local_hour(end) < 5:
        st.night_owl = (end, sid)
    if _next_lesson(course, st) is None:
        st.completed_courses[cid] = end
        st.course_completions.append((end, sid))
    return end, True


def _heartbeats(
    r: random.Random,
    lesson: Lesson,
    uid: int,
    cid: int,
    ev: EventLists,
    sid: int,
    t: int,
    end: int,
) -> None:
    """Keep the session alive: something is logged at least every ~12 minutes."""
    beat = t
    heartbeat = EV["video_play"] if lesson.content_type == "video" else EV["page_view"]
    while beat + 12 * MIN_US < end:
        beat += int(r.uniform(4, 12) * MIN_US)
        ev.add(
            uid,
            sid,
            heartbeat,
            beat,
            course=cid,
            lesson=lesson.id,
            dur=int((beat - t) / US),
            prop_code=r.choice(QUALITIES) if heartbeat == EV["video_play"] else PAGES[5],
        )


# ---------------------------------------------------------------------------- ambient


def ambient_events(
    rng: np.random.Generator, cat: Catalog, params: list[UserParams], s: Sessions
) -> dict[str, np.ndarray]:
    """Logins, signups, page and course views, video plays and buddy messages."""
    n_s = len(s.start)
    eng = np.array([p.engagement for p in params])[s.user_idx]
    persona = np.array([p.persona for p in params])[s.user_idx]
    m = np.clip(1 + rng.poisson(4.0 + 5.0 * np.minimum(eng, 3.0)), 1, 40)
    sess = np.repeat(np.arange(n_s), m)
    first = np.r_[True, sess[1:] != sess[:-1]]
    gaps = np.clip(rng.exponential(75 * US, len(sess)), 3 * US, 15 * MIN_US).astype(np.int64)
    gaps[first] = 0
    cum = np.cumsum(gaps)
    base = np.repeat(cum[first], m)
    ts = s.start[sess] + (cum - base)
    u = rng.random(len(sess))
    etype = np.where(
        u < 0.47,
        EV["page_view"],
        np.where(
            u < 0.78, EV["course_view"], np.where(u < 0.93, EV["video_play"], EV["buddy_message"])
        ),
    ).astype(np.int8)
    joined = np.array(
        [p.joined_us if p.joined_us is not None else np.iinfo(np.int64).max for p in params],
        dtype=np.int64,
    )[s.user_idx][sess]
    etype[(etype == EV["buddy_message"]) & (ts < joined)] = EV["page_view"]
    etype[first] = np.where(s.is_signup[sess[first]], EV["signup"], EV["login"])
    # course for views and plays, by the user's persona interests, once published
    course_pos = np.zeros(len(sess), dtype=np.int64)
    cu = rng.random(len(sess))
    for pidx, cdf in enumerate(cat.persona_course_cdf):
        mask = persona[sess] == pidx
        course_pos[mask] = np.minimum(np.searchsorted(cdf, cu[mask]), len(cdf) - 1)
    unpublished = ts < cat.course_pub[course_pos]
    course_pos[unpublished] = 0
    has_course = (etype == EV["course_view"]) | (etype == EV["video_play"])
    course = np.where(has_course, cat.course_ids[course_pos], -1)
    lesson = np.where(etype == EV["video_play"], cat.preview_lesson[course_pos], -1)
    dur = np.full(len(sess), -1, dtype=np.int32)
    dur[etype == EV["page_view"]] = np.clip(
        rng.exponential(60, int((etype == EV["page_view"]).sum())), 2, 900
    )
    dur[etype == EV["video_play"]] = np.clip(
        rng.exponential(180, int((etype == EV["video_play"]).sum())), 5, 1800
    )
    pu = rng.integers(0, 1 << 30, size=len(sess))
    props = np.full(len(sess), -1, dtype=np.int16)
    props[etype == EV["page_view"]] = np.array(PAGES)[pu[etype == EV["page_view"]] % len(PAGES)]
    props[etype == EV["course_view"]] = np.array(COURSE_SOURCES)[
        pu[etype == EV["course_view"]] % len(COURSE_SOURCES)
    ]
    props[etype == EV["login"]] = np.array(LOGIN_METHODS)[
        pu[etype == EV["login"]] % len(LOGIN_METHODS)
    ]
    props[etype == EV["video_play"]] = np.array(QUALITIES)[
        pu[etype == EV["video_play"]] % len(QUALITIES)
    ]
    return {
        "sess": sess,
        "etype": etype,
        "course": course,
        "lesson": lesson,
        "ts": ts,
        "dur": dur,
        "prop": props,
    }


__all__ = [
    "EVENT_TYPES",
    "Catalog",
    "EventLists",
    "LearnState",
    "Progress",
    "Sessions",
    "UserParams",
    "Window",
    "ambient_events",
    "draw_sessions",
    "learn",
    "new_user_rows",
    "signup_times",
    "local_day",
    "local_midnight_us",
    "PROPS",
    "prop_codes",
]
