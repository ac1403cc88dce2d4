"""Vietnamese people: names in Vietnamese order, unique emails, mobile numbers.

Names are family + middle + given, drawn from the project's own weighted pools
(``reference/people.json``); Faker's ``vi_VN`` names are not used (its
``first_name()`` answers "John"/"Jane" and ``name()`` puts the given name first).
Emails are unique by construction: the ASCII-folded name plus the user id.
"""

from __future__ import annotations

import unicodedata

import numpy as np

from seeds_gen.reference import people


def ascii_fold(text: str) -> str:
    """'Nguyễn Đức' -> 'nguyen duc'."""
    text = text.replace("Đ", "D").replace("đ", "d")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def make_people(
    rng: np.random.Generator, ids: np.ndarray, genders: np.ndarray
) -> list[dict[str, str]]:
    """Name, email and phone for each user id (genders: 0 male, 1 female)."""
    pools = people()
    n = len(ids)
    fam = rng.choice(len(pools.family.values), size=n, p=pools.family.p)
    u_mid = rng.random(n)
    u_given = rng.random(n)
    dom = rng.choice(len(pools.email_domains.values), size=n, p=pools.email_domains.p)
    prefix = rng.integers(0, len(pools.mobile_prefixes), size=n)
    subscriber = rng.integers(0, 10_000_000, size=n)
    style = rng.integers(0, 3, size=n)
    out = []
    cum = {g: np.cumsum(pools.middle[g].p) for g in ("male", "female")}
    for i in range(n):
        g = "female" if genders[i] else "male"
        middle_pool = pools.middle[g]
        middle = middle_pool.values[
            min(int(np.searchsorted(cum[g], u_mid[i])), len(middle_pool.values) - 1)
        ]
        given_pool = pools.given[g]
        given = given_pool[int(u_given[i] * len(given_pool))]
        family = pools.family.values[fam[i]]
        full_name = f"{family} {middle} {given}"
        f_given, f_family, f_middle = ascii_fold(given), ascii_fold(family), ascii_fold(middle)
        local = (
            f"{f_given}.{f_family}",
            f"{f_given}{f_middle[0]}{f_family[0]}",
            f"{f_family}.{f_middle}.{f_given}",
        )[style[i]].replace(" ", "")
        email = f"{local}.{int(ids[i])}@{pools.email_domains.values[dom[i]]}"
        phone = f"{pools.mobile_prefixes[prefix[i]]}{int(subscriber[i]):07d}"
        out.append(
            {
                "full_name": full_name,
                "email": email,
                "phone": phone,
                "gender": "female" if genders[i] else "male",
            }
        )
    return out
