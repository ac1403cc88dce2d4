"""What `vedfin seed` shows: a progress bar with rows/s and a summary table."""

from __future__ import annotations

from datetime import date

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from seeds_gen.generate import expected_new_users
from seeds_gen.load import LoadResult, load_append, load_fresh, preflight
from seeds_gen.scenarios import make_spec
from vedfin.db import describe_target
from vedfin.errors import VedfinError

console = Console(stderr=True)


def run_seed(
    url: str,
    target: str,
    *,
    scenario: str | None,
    users: int | None,
    days: int | None,
    courses: int | None,
    seed: int | None,
    end_date: date | None,
    append_days: int | None,
    bad_events: float,
    reset: bool,
    force: bool,
    quiet: bool,
    workers: int | None = None,
) -> LoadResult:
    if append_days is not None and (scenario or users or days or courses or end_date or reset):
        raise VedfinError(
            "--append-days continues the existing dataset: it takes no scenario, "
            "size, end date or --reset"
        )
    if append_days is not None and workers:
        raise VedfinError("--workers is for a fresh load; --append-days runs in this process")
    try:
        spec = make_spec(
            scenario,
            users=users,
            days=days,
            courses=courses,
            seed=seed,
            end_date=end_date,
            bad_events_rate=bad_events,
        )
    except ValueError as exc:
        raise VedfinError(str(exc)) from None
    preflight(url, target, reset=reset, force=force, append=append_days is not None)
    total = spec.users if append_days is None else None
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("users  {task.fields[events]:>12,} events  {task.fields[rate]:>9,.0f} rows/s"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=False,
    )
    with progress:
        task = progress.add_task("generating + loading", total=total, events=0, rate=0.0)

        def update(done: int, events: int) -> None:
            elapsed = progress.tasks[task].elapsed or 1e-9
            progress.update(task, completed=done, events=events, rate=events / elapsed)

        def phase(name: str) -> None:
            progress.update(task, description=name)

        if append_days is None:
            result = load_fresh(
                url,
                spec,
                target=target,
                reset=reset,
                force=force,
                on_progress=update,
                on_phase=phase,
                checked=True,
                workers=workers,
            )
        else:
            result = load_append(
                url,
                append_days,
                target=target,
                force=force,
                bad_events_rate=bad_events,
                on_progress=update,
                checked=True,
            )
    print_summary(result, url)
    return result


def print_summary(result: LoadResult, url: str) -> None:
    spec = result.spec
    title = (
        f"{result.mode} load into {describe_target(url)}: scenario {spec.scenario}, "
        f"seed {spec.seed}, data through {spec.end_date}"
    )
    table = Table(title=title)
    table.add_column("table")
    table.add_column(
        "rows " + ("written" if result.mode == "fresh" else "added/updated"), justify="right"
    )
    for name, count in result.rows.items():
        table.add_row(f"app.{name}", f"{count:,}")
    table.add_row("[bold]total", f"[bold]{result.total_rows:,}")
    console.print(table)
    phases = ", ".join(f"{k} {v:.2f}s" for k, v in result.phases.items())
    console.print(
        f"{result.seconds:.2f}s, {result.total_rows / max(result.seconds, 1e-9):,.0f} "
        f"rows/s" + (f" ({phases})" if phases else "")
    )


__all__ = ["run_seed", "expected_new_users"]
