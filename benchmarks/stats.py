"""Percentiles for the benchmarks' figures, from the standard library."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Protocol

from rich.console import Console
from rich.table import Table

from vedfin.memory import own_peak_rss_mib as peak_rss_mib

__all__ = ["peak_rss_mib", "percentile", "print_table"]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 < q <= 1) by linear interpolation between the closest ranks
    (`statistics.quantiles`, inclusive method); NaN for no values."""
    if not values:
        return float("nan")
    if len(values) == 1 or q >= 1:
        return float(max(values))
    cuts = statistics.quantiles(values, n=1000, method="inclusive")
    return cuts[max(0, min(len(cuts) - 1, round(q * 1000) - 1))]


class Measured(Protocol):
    name: str
    value: str
    target: str
    ok: bool | None


def print_table(title: str, figures: Sequence[Measured], *, width: int = 180) -> None:
    """A benchmark's figures as one table: measure, figure, target, and ok / missed."""
    table = Table(title=title)
    for col in ("measure", "figure", "target", ""):
        table.add_column(col)
    for f in figures:
        mark = "" if f.ok is None else ("[green]ok" if f.ok else "[red]missed")
        table.add_row(f.name, f.value, f.target, mark)
    Console(width=width).print(table)
