"""Chunks of generated rows for a fresh dataset, and bad events on request."""

from __future__ import annotations

import functools
import itertools
import math
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from seeds_gen.chunks import ChunkRows, Cohort, Counters, StreakState, build_chunk
from seeds_gen.reference import EV, EVENT_TYPES
from seeds_gen.scenarios import CHUNK_USERS, Spec
from seeds_gen.simulate import (
    DAY_US,
    EPOCH,
    HOUR_US,
    PROPS,
    SIGNUP_GROWTH,
    Catalog,
    LearnState,
    UserParams,
    Window,
    local_midnight_us,
    new_user_rows,
    prop_codes,
    signup_times,
)
from vedfin.memory import own_peak_rss_mib

# event types the platform does not know, written only by --bad-events
BAD_EVENT_TYPES = ("lesson_finish", "click", "purchase_premium")
ALL_EVENT_NAMES = EVENT_TYPES + BAD_EVENT_TYPES
BAD_CLASSES = (
    "unknown_user",
    "unknown_event_type",
    "future_timestamp",
    "before_signup",
    "duplicate",
)


def fresh_chunks(
    spec: Spec,
    counters: Counters | None = None,
    *,
    workers: int = 0,
    worker_peaks: dict[int, float] | None = None,
) -> Iterator[ChunkRows]:
    """The chunks of a fresh dataset, in order.

    ``workers`` > 1: the chunks are simulated in that many processes while this one
    encodes and writes; each chunk is numbered from zero there and shifted here onto the
    ids before it, so the rows are exactly those of the sequential run. ``worker_peaks``
    collects each worker's peak RSS in MiB (by process id)."""
    counters = counters or Counters()
    signups = signup_times(np.random.default_rng([spec.seed, 0]), spec.users, spec.window)
    bounds = [
        (k, lo, min(lo + CHUNK_USERS, spec.users))
        for k, lo in enumerate(range(0, spec.users, CHUNK_USERS))
    ]
    if workers <= 1 or len(bounds) < 2:
        cat = Catalog(spec.courses, spec.window)
        for k, lo, hi in bounds:
            yield _fresh_chunk(spec, cat, k, lo, signups[lo:hi], counters)
        return
    yield from _fresh_chunks_parallel(spec, bounds, signups, counters, workers, worker_peaks)


def _fresh_chunk(
    spec: Spec, cat: Catalog, k: int, lo: int, signups: np.ndarray, counters: Counters
) -> ChunkRows:
    """Chunk ``k``: the users ``lo + 1`` on, who sign up at ``signups``."""
    ids = np.arange(lo + 1, lo + 1 + len(signups), dtype=np.int64)
    window = spec.window
    rows, params = new_user_rows(np.random.default_rng([spec.seed, 1, k]), ids, signups, window)
    cohort = Cohort.signing_up(params, signups)
    chunk = build_chunk([spec.seed, 2, k], cat, window, cohort, counters)
    chunk.users = rows
    if spec.bad_events_rate > 0:
        rng = np.random.default_rng([spec.seed, 3, k])
        add_bad_events(chunk, spec, counters, rng, signups, ids)
    return chunk


@functools.cache
def _catalog(courses: int, window: Window) -> Catalog:
    return Catalog(courses, window)


def _fresh_chunk_job(
    spec: Spec, k: int, lo: int, signups: np.ndarray
) -> tuple[ChunkRows, Counters, list[str], int, float]:
    """In a worker: chunk ``k`` numbered from the first id of each table, with what it
    used of each counter, the property texts its codes refer to, and the worker's peak RSS."""
    counters = Counters()
    chunk = _fresh_chunk(spec, _catalog(spec.courses, spec.window), k, lo, signups, counters)
    return chunk, counters, list(PROPS), os.getpid(), own_peak_rss_mib()


def _fresh_chunks_parallel(
    spec: Spec,
    bounds: list[tuple[int, int, int]],
    signups: np.ndarray,
    counters: Counters,
    workers: int,
    worker_peaks: dict[int, float] | None,
) -> Iterator[ChunkRows]:
    # spawn, not fork: the caller may be running a COPY writer thread when this starts
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    pending: deque[Future[tuple[ChunkRows, Counters, list[str], int, float]]] = deque()
    todo = iter(bounds)
    try:
        for k, lo, hi in itertools.islice(todo, workers + 1):
            pending.append(pool.submit(_fresh_chunk_job, spec, k, lo, signups[lo:hi]))
        while pending:
            chunk, used, props, pid, peak = pending.popleft().result()
            for k, lo, hi in itertools.islice(todo, 1):  # at most workers + 1 chunks in flight
                pending.append(pool.submit(_fresh_chunk_job, spec, k, lo, signups[lo:hi]))
            if worker_peaks is not None:
                worker_peaks[pid] = max(worker_peaks.get(pid, 0.0), peak)
            chunk.renumber(counters, used, prop_codes(props))
            yield chunk
    finally:  # a failed or abandoned load does not wait for the chunks still in flight
        pool.shutdown(wait=True, cancel_futures=True)


def add_bad_events(
    chunk: ChunkRows,
    spec: Spec,
    counters: Counters,
    rng: np.random.Generator,
    signups: np.ndarray,
    ids: np.ndarray,
) -> None:
    """Events that break each rule of the contract's "Which events count", in equal shares."""
    ev = chunk.events
    n_good = len(ev["id"])
    per_class = max(1, int(round(n_good * spec.bad_events_rate / len(BAD_CLASSES))))
    if n_good == 0:
        return
    pick = rng.integers(0, n_good, size=per_class * len(BAD_CLASSES))
    bad = {k: v[pick].copy() for k, v in ev.items()}
    cls = np.repeat(np.arange(len(BAD_CLASSES)), per_class)
    # 1. unknown_user: NULL or an id no user has
    m = cls == 0
    unknown = np.where(
        rng.random(int(m.sum())) < 0.5, -1, 10**12 + rng.integers(0, 10**6, int(m.sum()))
    )
    bad["user"][m] = unknown
    # 2. unknown_event_type
    m = cls == 1
    bad["etype"][m] = len(EVENT_TYPES) + rng.integers(0, len(BAD_EVENT_TYPES), int(m.sum()))
    bad["prop"][m] = -1
    # 3. future_timestamp: a local date after the end date
    m = cls == 2
    after = local_midnight_us(spec.end_date) + DAY_US
    bad["ts"][m] = after + rng.integers(0, 3 * DAY_US, int(m.sum()))
    # (a device clock ahead: the platform receives it when the picked event arrived, so
    # ingested stays that event's; the same for the events dated before signup below)
    # 4. before_signup: a page view before the user existed
    m = cls == 3
    pos = np.searchsorted(ids, bad["user"][m])
    bad["ts"][m] = signups[pos] - rng.integers(HOUR_US, 10 * DAY_US, int(m.sum()))
    bad["etype"][m] = EV["page_view"]
    bad["course"][m] = -1
    bad["lesson"][m] = -1
    bad["prop"][m] = -1
    # 5. duplicate: the very same event logged twice (kept as picked)
    n_bad = len(cls)
    bad["id"] = np.arange(counters.event, counters.event + n_bad, dtype=np.int64)
    counters.event += n_bad
    for key in ev:
        ev[key] = np.concatenate([ev[key], bad[key]])


@dataclass
class ExistingUser:
    params: UserParams
    state: LearnState
    streak: StreakState


def expected_new_users(users: int, days: int, append_days: int) -> float:
    """Signups over ``append_days`` more days if the original growth curve continues."""
    g = SIGNUP_GROWTH
    rate_at_end = users * math.exp(g) * (g / days) / math.expm1(g)
    return sum(rate_at_end * math.exp(g * j / days) for j in range(1, append_days + 1))


def append_chunks(
    base: Spec,
    window: Window,
    existing: list[ExistingUser],
    first_new_id: int,
    counters: Counters,
    bad_rate: float = 0.0,
) -> Iterator[ChunkRows]:
    """Continue existing users into ``window`` and add the users who sign up in it."""
    cat = Catalog(base.courses, base.window)
    tag = (window.start_date - EPOCH).days
    for k, lo in enumerate(range(0, len(existing), CHUNK_USERS)):
        part = existing[lo : lo + CHUNK_USERS]
        params = [e.params for e in part]
        cohort = Cohort.continuing(
            params, [e.state for e in part], [e.streak for e in part], window.start_us - 1
        )
        chunk = build_chunk([base.seed, 7, tag, k], cat, window, cohort, counters)
        if bad_rate > 0:
            ids = np.array([p.user_id for p in params], dtype=np.int64)
            add_bad_events(
                chunk,
                _with_window(base, window, bad_rate),
                counters,
                np.random.default_rng([base.seed, 12, tag, k]),
                np.array([p.signup_us for p in params], dtype=np.int64),
                ids,
            )
        yield chunk
    rng = np.random.default_rng([base.seed, 8, tag])
    n_new = int(rng.poisson(expected_new_users(base.users, base.days, window.days)))
    signups = signup_times(rng, n_new, window, first_day=base.days, total_days=base.days)
    for k, lo in enumerate(range(0, n_new, CHUNK_USERS)):
        hi = min(lo + CHUNK_USERS, n_new)
        ids = np.arange(first_new_id + lo, first_new_id + hi, dtype=np.int64)
        rows, params = new_user_rows(
            np.random.default_rng([base.seed, 9, tag, k]), ids, signups[lo:hi], window
        )
        cohort = Cohort.signing_up(params, signups[lo:hi])
        chunk = build_chunk([base.seed, 10, tag, k], cat, window, cohort, counters)
        chunk.users = rows
        if bad_rate > 0:
            add_bad_events(
                chunk,
                _with_window(base, window, bad_rate),
                counters,
                np.random.default_rng([base.seed, 11, tag, k]),
                signups[lo:hi],
                ids,
            )
        yield chunk


def _with_window(base: Spec, window: Window, bad_rate: float) -> Spec:
    return Spec(
        base.scenario,
        base.users,
        base.courses,
        base.days,
        base.seed,
        window.end_date,
        window.cutoff_us,
        bad_rate,
    )
