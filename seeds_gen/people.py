"""Vietnamese people: names in Vietnamese order, unique emails, mobile numbers.

Names are family + middle + given, drawn from the project's own weighted pools
(``reference/people.json``); Faker's ``vi_VN`` names are not used (its
``first_name()`` answers "John"/"Jane" and ``name()`` puts the given name first).
Emails are unique by construction: the ASCII-folded name plus the user id.
"""

from __future__ import annotations

import functools
import unicodedata

import numpy as np

from seeds_gen.reference import people


@functools.cache
def ascii_fold(text: str) -> str:
    """'Nguyễn Đức' -> 'nguyen duc' (cached: names come from small pools)."""
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
    # each user's middle name by the cumulative weights of their gender's pool, for the
    # whole chunk at once (the same index np.searchsorted gave one user at a time)
    middle_idx = {
        g: np.minimum(
            np.searchsorted(np.cumsum(pools.middle[g].p), u_mid), len(pools.middle[g].values) - 1
        ).tolist()
        for g in ("male", "female")
    }
    family_values, domains = pools.family.values, pools.email_domains.values
    for i, (female, f, ug, d, pre, sub, st, uid) in enumerate(
        zip(
            genders.tolist(),
            fam.tolist(),
            u_given.tolist(),
            dom.tolist(),
            prefix.tolist(),
            subscriber.tolist(),
            style.tolist(),
            ids.tolist(),
            strict=True,
        )
    ):
        g = "female" if female else "male"
        middle = pools.middle[g].values[middle_idx[g][i]]
        given_pool = pools.given[g]
        given = given_pool[int(ug * len(given_pool))]
        family = family_values[f]
        full_name = f"{family} {middle} {given}"
        f_given, f_family, f_middle = ascii_fold(given), ascii_fold(family), ascii_fold(middle)
        local = (
            f"{f_given}.{f_family}",
            f"{f_given}{f_middle[0]}{f_family[0]}",
            f"{f_family}.{f_middle}.{f_given}",
        )[st].replace(" ", "")
        email = f"{local}.{uid}@{domains[d]}"
        phone = f"{pools.mobile_prefixes[pre]}{sub:07d}"
        out.append({"full_name": full_name, "email": email, "phone": phone, "gender": g})
    return out
