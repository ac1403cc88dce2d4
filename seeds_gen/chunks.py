"""One chunk of users in, every row they produce out (for all tables)."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field, fields
from datetime import date
from typing import cast

import numpy as np

from seeds_gen.reference import EV, people
from seeds_gen.simulate import (
    DAY_US,
    EPOCH,
    US,
    Catalog,
    EventLists,
    LearnState,
    Progress,
    Sessions,
    UserParams,
    UserRow,
    Window,
    ambient_events,
    draw_sessions,
    learn,
    local_day,
    prop,
)

STREAK_GOALS = (3, 7, 30)


@dataclass
class Counters:
    """The next id of each generated table; carried from chunk to chunk."""

    event: int = 1
    session: int = 1
    enrollment: int = 1
    progress: int = 1
    group: int = 1


COUNTER_FIELDS = tuple(f.name for f in fields(Counters))


@dataclass
class StreakState:
    last_day: int | None = None  # local day number
    run: int = 0
    longest: int = 0


@dataclass
class ChunkRows:
    users: list[UserRow] = field(default_factory=list)
    enrollments: list[tuple[object, ...]] = field(default_factory=list)
    progress_new: list[Progress] = field(default_factory=list)
    progress_changed: list[Progress] = field(default_factory=list)
    achievements: list[tuple[int, int, int]] = field(default_factory=list)
    streaks: list[tuple[int, int, int, date | None]] = field(default_factory=list)
    groups: list[tuple[int, str, int]] = field(default_factory=list)
    members: list[tuple[int, int, int]] = field(default_factory=list)
    params: list[tuple[UserParams, StreakState]] = field(default_factory=list)
    events: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        return len(self.events.get("id", ()))

    def renumber(self, counters: Counters, used: Counters, props: np.ndarray) -> None:
        """Move a chunk of new users generated from ``Counters()`` in another process onto
        the ids ``counters`` gives next (and advance them by what it ``used``); ``props``
        maps that process's property codes to this one's. Every id the chunk holds is its
        own (users signing up), so each moves by the same amount and nothing else changes."""
        off = Counters(*(getattr(counters, f) - 1 for f in COUNTER_FIELDS))
        ev = self.events
        if len(ev.get("id", ())):
            ev["id"] = ev["id"] + off.event
            ev["sid"] = ev["sid"] + off.session
            ev["prop"] = np.where(ev["prop"] >= 0, props[np.maximum(ev["prop"], 0)], -1).astype(
                ev["prop"].dtype
            )
        self.enrollments = [
            (cast(int, row[0]) + off.enrollment, *row[1:]) for row in self.enrollments
        ]
        for row in self.progress_new:
            assert row.id is not None
            row.id += off.progress
        if off.group:
            self.groups = [
                (g + off.group, f"{name.rsplit(' #', 1)[0]} #{g + off.group}", created)
                for g, name, created in self.groups
            ]
            self.members = [(g + off.group, u, joined) for g, u, joined in self.members]
            for up, _ in self.params:
                if up.group_id is not None:
                    up.group_id += off.group
        for f in COUNTER_FIELDS:
            setattr(counters, f, getattr(counters, f) + getattr(used, f) - 1)


def _assign_buddies(
    r: random.Random,
    params: list[UserParams],
    starts: UserSessions,
    counters: Counters,
) -> tuple[list[tuple[int, str, int]], list[tuple[int, int, int]], dict[int, int]]:
    """About a third of users who come back join a study group of 3-6 people."""
    names = people().group_names
    candidates = [
        i
        for i, p in enumerate(params)
        if p.group_id is None and starts.count(i) >= 2 and r.random() < 0.33
    ]
    groups: list[tuple[int, str, int]] = []
    members: list[tuple[int, int, int]] = []
    join_sid: dict[int, int] = {}
    pos = 0
    while len(candidates) - pos >= 3:
        size = min(r.randint(3, 6), len(candidates) - pos)
        gid = counters.group
        counters.group += 1
        joined = []
        for i in candidates[pos : pos + size]:
            sid, start = starts.nth(i, 1)
            params[i].group_id = gid
            params[i].joined_us = start + 10 * US
            join_sid[i] = sid
            joined.append((i, start + 10 * US))
        pos += size
        created = min(j for _, j in joined) - 60 * US
        groups.append((gid, f"{r.choice(names)} #{gid}", created))
        members.extend((gid, params[i].user_id, j) for i, j in joined)
    return groups, members, join_sid


@dataclass
class Cohort:
    """The users one chunk simulates, and where each one's story continues from."""

    params: list[UserParams]
    states: list[LearnState]
    streaks: list[StreakState]
    from_us: np.ndarray  # each user's sessions start after this instant
    with_signup: np.ndarray  # whose first session is their signup

    @classmethod
    def signing_up(cls, params: list[UserParams], signups: np.ndarray) -> Cohort:
        """New users: their story starts with the signup session."""
        n = len(params)
        return cls(
            params,
            [LearnState() for _ in range(n)],
            [StreakState() for _ in range(n)],
            signups.copy(),
            np.ones(n, dtype=bool),
        )

    @classmethod
    def continuing(
        cls,
        params: list[UserParams],
        states: list[LearnState],
        streaks: list[StreakState],
        after_us: int,
    ) -> Cohort:
        """Users generated before: their story goes on after ``after_us``."""
        n = len(params)
        return cls(
            params,
            states,
            streaks,
            np.full(n, after_us, dtype=np.int64),
            np.zeros(n, dtype=bool),
        )


def build_chunk(
    seed: list[int], cat: Catalog, window: Window, cohort: Cohort, counters: Counters
) -> ChunkRows:
    """Simulate one chunk of users through ``window``: sessions, buddy groups, learning,
    ambient events, streaks and achievements, logouts; then number the events.

    Deterministic given ``seed`` and the inputs (one generator for the vectorised draws,
    one for the per-user ones, each used in the same order every time)."""
    rng = np.random.default_rng(seed)
    r = random.Random(int(rng.integers(0, 2**62)))
    out = ChunkRows()
    sess = draw_sessions(
        rng, cohort.params, cohort.from_us, window, counters.session, cohort.with_signup
    )
    counters.session += len(sess.sid)
    starts = UserSessions(sess, len(cohort.params))
    out.groups, out.members, join_sid = _assign_buddies(r, cohort.params, starts, counters)
    study = study_events(r, cat, cohort, starts, window)
    user_ids = np.array([p.user_id for p in cohort.params], dtype=np.int64)
    events = session_events(rng, cat, cohort, sess, study, user_ids, window)
    unlocks = streaks_and_achievements(cat, window, cohort, events, join_sid, out)
    learning_rows(cohort, counters, out)
    events = _concat(events, _columns(unlocks, events))
    events = with_logouts(rng, events, sess, user_ids, window)
    out.events = numbered(rng, events, sess, window, counters)
    return out


class UserSessions:
    """Each user's sessions in order, by the user's index in the chunk: the chunk's sessions
    are sorted by user, then start (``draw_sessions``), so each user's are one slice."""

    def __init__(self, sess: Sessions, n_users: int) -> None:
        bounds = np.searchsorted(sess.user_idx, np.arange(n_users + 1)).tolist()
        self.lo, self.hi = bounds[:-1], bounds[1:]
        self.sid: list[int] = sess.sid.tolist()
        self.start: list[int] = sess.start.tolist()
        self.signup: list[bool] = sess.is_signup.tolist()

    def count(self, i: int) -> int:
        return self.hi[i] - self.lo[i]

    def nth(self, i: int, k: int) -> tuple[int, int]:
        """(session id, start) of user ``i``'s ``k``-th session."""
        j = self.lo[i] + k
        return self.sid[j], self.start[j]

    def of(self, i: int) -> list[tuple[int, int, bool]]:
        """(session id, start, is the signup session) of each of user ``i``'s sessions."""
        lo, hi = self.lo[i], self.hi[i]
        return list(zip(self.sid[lo:hi], self.start[lo:hi], self.signup[lo:hi], strict=True))


def study_events(
    r: random.Random,
    cat: Catalog,
    cohort: Cohort,
    starts: UserSessions,
    window: Window,
) -> EventLists:
    """What each user does in the courses, session by session (``learn``)."""
    ev = EventLists()
    for i, up in enumerate(cohort.params):
        learn(r, cat, up, starts.of(i), cohort.states[i], ev, window.cutoff_us)
    return ev


def _columns(ev: EventLists, like: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.astype(like[k].dtype, copy=False) for k, v in ev.columns().items()}


def _concat(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def session_events(
    rng: np.random.Generator,
    cat: Catalog,
    cohort: Cohort,
    sess: Sessions,
    study: EventLists,
    user_ids: np.ndarray,
    window: Window,
) -> dict[str, np.ndarray]:
    """The ambient events of every session (logins, page and course views, buddy messages)
    and the study events, as columns."""
    amb = ambient_events(rng, cat, cohort.params, sess)
    inside = amb["ts"] <= window.cutoff_us  # a session near the cutoff is cut there
    amb = {k: v[inside] for k, v in amb.items()}
    ambient = {
        "user": user_ids[sess.user_idx[amb["sess"]]],
        "sid": sess.sid[amb["sess"]],
        **{k: amb[k] for k in ("etype", "course", "lesson", "ts", "dur", "prop")},
    }
    return _concat(ambient, study.columns())


def _first_event_of_each_day(
    events: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(user, local day, time, session) of each user's first event of each day, ordered by
    user, then day."""
    order = np.lexsort((events["ts"], events["user"]))
    u_sorted = events["user"][order]
    d_sorted = local_day(events["ts"][order])
    firsts = np.r_[True, (u_sorted[1:] != u_sorted[:-1]) | (d_sorted[1:] != d_sorted[:-1])]
    f_idx = order[firsts]
    return u_sorted[firsts], d_sorted[firsts], events["ts"][f_idx], events["sid"][f_idx]


def _advance_streaks(
    cohort: Cohort, events: dict[str, np.ndarray]
) -> dict[int, list[tuple[str, int, int]]]:
    """Advance each user's streak (``cohort.streaks``) over their active days, for the whole
    chunk at once; the streak goals each user reached, (code, time, session) in day order,
    by the user's index in the chunk.

    Day by day, a user's run grows by one on the day after their last active day, stays on
    that same day, and starts again at 1 on any other; the longest run is the most it
    reached; a goal is reached on the day the run equals it. Vectorised: each day's run is
    where its stretch of consecutive days started plus the days since."""
    users, days, ts, sids = _first_event_of_each_day(events)
    if not len(users):
        return {}
    user_ids = np.array([p.user_id for p in cohort.params], dtype=np.int64)
    sorter = np.argsort(user_ids, kind="stable")
    ui = sorter[np.searchsorted(user_ids, users, sorter=sorter)]
    had = np.array([sk.last_day is not None for sk in cohort.streaks], dtype=bool)
    last0 = np.array([sk.last_day or 0 for sk in cohort.streaks], dtype=np.int64)
    run0 = np.array([sk.run for sk in cohort.streaks], dtype=np.int64)
    n = len(users)
    first = np.r_[True, users[1:] != users[:-1]]
    prev = np.r_[np.int64(0), days[:-1]]
    # a stretch starts at each user's first day here and wherever a day is not the next one
    starts_stretch = first | (days != prev + 1)
    # its first run: 1, or for a user's first day here, the run it continues
    value = np.ones(n, dtype=np.int64)
    f = np.flatnonzero(first)
    fu = ui[f]
    value[f] = np.where(
        had[fu] & (days[f] == last0[fu] + 1),
        run0[fu] + 1,
        np.where(had[fu] & (days[f] == last0[fu]), run0[fu], 1),
    )
    pos = np.arange(n)
    stretch = np.maximum.accumulate(np.where(starts_stretch, pos, 0))
    run = value[stretch] + (pos - stretch)
    ends = np.r_[f[1:], n] - 1
    longest = np.maximum.reduceat(run, f)
    for i, last_day, last_run, most in zip(
        fu.tolist(), days[ends].tolist(), run[ends].tolist(), longest.tolist(), strict=True
    ):
        sk = cohort.streaks[i]
        sk.last_day, sk.run, sk.longest = last_day, last_run, max(sk.longest, most)
    reached: dict[int, list[tuple[str, int, int]]] = {}
    hit = np.flatnonzero(np.isin(run, STREAK_GOALS))
    for i, goal, t, sid in zip(
        ui[hit].tolist(), run[hit].tolist(), ts[hit].tolist(), sids[hit].tolist(), strict=True
    ):
        reached.setdefault(i, []).append((f"streak_{goal}", t, sid))
    return reached


@functools.cache
def _unlock_prop(code: str) -> int:
    """The property code of an ``achievement_unlocked`` event (one JSON text per code)."""
    return prop({"code": code})


def streaks_and_achievements(
    cat: Catalog,
    window: Window,
    cohort: Cohort,
    events: dict[str, np.ndarray],
    join_sid: dict[int, int],
    out: ChunkRows,
) -> EventLists:
    """Advance each user's streak over their active days, unlock the achievements they
    earned (rows in ``out`` and the ``achievement_unlocked`` events returned)."""
    extra = EventLists()
    ach_id = {a.code: a.id for a in cat.achievements}
    streak_unlocks = _advance_streaks(cohort, events)
    end_day = (window.end_date - EPOCH).days
    for i, up in enumerate(cohort.params):
        st, sk = cohort.states[i], cohort.streaks[i]
        unlocks = streak_unlocks.get(i, [])
        unlocks += _learning_unlocks(st)
        if i in join_sid and up.joined_us is not None:
            unlocks.append(("buddy_up", up.joined_us, join_sid[i]))
        used: set[int] = set()
        for code, ts, sid in unlocks:
            if code in st.achievements or code not in ach_id:
                continue
            while ts in used:  # two unlocks at one instant would look like a duplicate event
                ts += 1000
            if ts > window.cutoff_us:
                continue
            used.add(ts)
            st.achievements.add(code)
            out.achievements.append((up.user_id, ach_id[code], ts))
            extra.add(up.user_id, sid, EV["achievement_unlocked"], ts, prop_code=_unlock_prop(code))
        current = sk.run if sk.last_day is not None and sk.last_day >= end_day - 1 else 0
        last = (
            EPOCH.fromordinal(EPOCH.toordinal() + sk.last_day) if sk.last_day is not None else None
        )
        out.streaks.append((up.user_id, current, sk.longest, last))
        out.params.append((up, sk))
    return extra


def _learning_unlocks(st: LearnState) -> list[tuple[str, int, int]]:
    unlocks = []
    for goal, code, done, prior in (
        (1, "first_lesson", st.completions, st.prior_completions),
        (10, "lessons_10", st.completions, st.prior_completions),
        (1, "first_course", st.course_completions, st.prior_courses),
        (3, "courses_3", st.course_completions, st.prior_courses),
    ):
        k = goal - 1 - prior
        if 0 <= k < len(done):
            unlocks.append((code, done[k][0], done[k][1]))
    if st.quiz_ace:
        unlocks.append(("quiz_ace", st.quiz_ace[0], st.quiz_ace[1]))
    if st.night_owl:
        unlocks.append(("night_owl", st.night_owl[0], st.night_owl[1]))
    return unlocks


def learning_rows(cohort: Cohort, counters: Counters, out: ChunkRows) -> None:
    """The enrollments and lesson progress the chunk created or changed, with new ids."""
    for up, st in zip(cohort.params, cohort.states, strict=True):
        for cid, t in st.new_enrollments:
            out.enrollments.append((counters.enrollment, up.user_id, cid, t))
            counters.enrollment += 1
        st.new_enrollments.clear()
        for row in st.progress.values():
            if not row.dirty:
                continue
            if row.id is None:
                row.id = counters.progress
                counters.progress += 1
                out.progress_new.append(row)
            else:
                out.progress_changed.append(row)
            row.dirty = False


def with_logouts(
    rng: np.random.Generator,
    events: dict[str, np.ndarray],
    sess: Sessions,
    user_ids: np.ndarray,
    window: Window,
) -> dict[str, np.ndarray]:
    """A logout shortly after the last event of most sessions."""
    sid_base = int(sess.sid[0]) if len(sess.sid) else 0
    pos = events["sid"] - sid_base
    last_ts = np.zeros(len(sess.sid), dtype=np.int64)
    np.maximum.at(last_ts, pos, events["ts"])
    logs_out = rng.random(len(sess.sid)) < 0.62
    lo_ts = last_ts[logs_out] + rng.integers(5 * US, 120 * US, size=int(logs_out.sum()))
    # a logout that would fall on the next local day is not logged (keeps streaks exact)
    in_window = (lo_ts <= window.cutoff_us) & (local_day(lo_ts) == local_day(last_ts[logs_out]))
    lo_pos = np.nonzero(logs_out)[0][in_window]
    n_lo = len(lo_pos)
    logouts = {
        "user": user_ids[sess.user_idx[lo_pos]],
        "sid": sess.sid[lo_pos],
        "etype": np.full(n_lo, EV["logout"], dtype=np.int8),
        "course": np.full(n_lo, -1, dtype=np.int64),
        "lesson": np.full(n_lo, -1, dtype=np.int64),
        "ts": lo_ts[in_window],
        "dur": np.full(n_lo, -1, dtype=np.int32),
        "prop": np.full(n_lo, -1, dtype=np.int16),
    }
    return _concat(events, logouts)


def numbered(
    rng: np.random.Generator,
    events: dict[str, np.ndarray],
    sess: Sessions,
    window: Window,
    counters: Counters,
) -> dict[str, np.ndarray]:
    """Each event's device (its session's), ingestion time (a few sync hours late), and
    an id in time order."""
    sid_base = int(sess.sid[0]) if len(sess.sid) else 0
    events = dict(events)
    events["device"] = sess.device[events["sid"] - sid_base]
    n = len(events["ts"])
    lag = (rng.exponential(1.5 * US, n) + 50_000).astype(np.int64)
    late = rng.random(n) < 0.004
    lag[late] = rng.integers(3600 * US, 30 * 3600 * US, size=int(late.sum()))
    ingested = events["ts"] + lag
    events["ingested"] = np.maximum(np.minimum(ingested, max(window.cutoff_us, 0)), events["ts"])
    order = np.argsort(events["ts"], kind="stable")
    for key in list(events):
        events[key] = events[key][order]
    events["id"] = np.arange(counters.event, counters.event + n, dtype=np.int64)
    counters.event += n
    return events


__all__ = ["ChunkRows", "Cohort", "Counters", "StreakState", "build_chunk", "DAY_US"]
