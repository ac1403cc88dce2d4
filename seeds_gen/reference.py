"""The versioned reference files: course catalogue, achievements, people pools."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

REFERENCE_DIR = Path(__file__).parent / "reference"

EVENT_TYPES = (
    "signup",
    "login",
    "page_view",
    "course_view",
    "enroll",
    "lesson_start",
    "lesson_complete",
    "quiz_submit",
    "video_play",
    "achievement_unlocked",
    "buddy_message",
    "logout",
)
EV = {name: code for code, name in enumerate(EVENT_TYPES)}


@dataclass(frozen=True)
class Lesson:
    id: int
    course_id: int
    position: int
    title: str
    content_type: str
    duration_minutes: int
    points: int


@dataclass(frozen=True)
class Course:
    id: int
    slug: str
    title: str
    category: str
    level: str
    lessons: tuple[Lesson, ...]


@dataclass(frozen=True)
class Achievement:
    id: int
    code: str
    name: str
    description: str
    points: int


def _load(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((REFERENCE_DIR / name).read_text(encoding="utf-8"))


@cache
def catalog() -> tuple[tuple[Course, ...], tuple[Achievement, ...], str]:
    raw = _load("catalog.json")
    courses = []
    lesson_id = 0
    for cid, c in enumerate(raw["courses"], start=1):
        lessons = []
        for pos, (title, ctype, minutes, points) in enumerate(c["lessons"], start=1):
            lesson_id += 1
            lessons.append(Lesson(lesson_id, cid, pos, title, ctype, minutes, points))
        courses.append(
            Course(cid, c["slug"], c["title"], c["category"], c["level"], tuple(lessons))
        )
    achievements = tuple(
        Achievement(i, a["code"], a["name"], a["description"], a["points"])
        for i, a in enumerate(raw["achievements"], start=1)
    )
    return tuple(courses), achievements, str(raw["version"])


@dataclass(frozen=True)
class Weighted:
    values: tuple[str, ...]
    p: np.ndarray

    @classmethod
    def of(cls, pairs: list[list]) -> Weighted:  # type: ignore[type-arg]
        values = tuple(str(v) for v, _ in pairs)
        w = np.array([float(x) for _, x in pairs])
        return cls(values, w / w.sum())


@dataclass(frozen=True)
class Persona:
    code: str
    weight: float
    birth_years: tuple[int, int]
    engagement: float
    categories: dict[str, float]


@dataclass(frozen=True)
class People:
    family: Weighted
    middle: dict[str, Weighted]
    given: dict[str, tuple[str, ...]]
    provinces: Weighted
    mobile_prefixes: tuple[str, ...]
    email_domains: Weighted
    personas: tuple[Persona, ...]
    channels: Weighted
    devices: Weighted
    group_names: tuple[str, ...]


@cache
def people() -> People:
    raw = _load("people.json")
    return People(
        family=Weighted.of(raw["family_names"]),
        middle={g: Weighted.of(v) for g, v in raw["middle_names"].items()},
        given={g: tuple(v) for g, v in raw["given_names"].items()},
        provinces=Weighted.of(raw["provinces"]),
        mobile_prefixes=tuple(raw["mobile_prefixes"]),
        email_domains=Weighted.of(raw["email_domains"]),
        personas=tuple(
            Persona(
                p["code"],
                float(p["weight"]),
                tuple(p["birth_years"]),
                float(p["engagement"]),
                {k: float(v) for k, v in p["categories"].items()},
            )  # type: ignore[arg-type]
            for p in raw["personas"]
        ),
        channels=Weighted.of(raw["signup_channels"]),
        devices=Weighted.of(raw["devices"]),
        group_names=tuple(raw["buddy_group_names"]),
    )
