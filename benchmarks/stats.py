"""Percentiles for the benchmarks' figures, from the standard library."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 < q <= 1) by linear interpolation between the closest ranks
    (`statistics.quantiles`, inclusive method); NaN for no values."""
    if not values:
        return float("nan")
    if len(values) == 1 or q >= 1:
        return float(max(values))
    cuts = statistics.quantiles(values, n=1000, method="inclusive")
    return cuts[max(0, min(len(cuts) - 1, round(q * 1000) - 1))]
