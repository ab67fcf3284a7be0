"""``algostream backtest --sweep ... [--walk-forward TRAIN/TEST]``: the grid with a
progress bar, the ranked table, the heatmap, the walk-forward folds."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from algostream.backtest.engine import EngineInput
from algostream.backtest.errors import SweepError
from algostream.backtest.sweep import (
    METRICS,
    PERCENT_METRICS,
    PointResult,
    Runner,
    engine_run,
    grid,
    out_of_sample_return,
    parse_walk_forward,
    rank,
    run_grid,
    table_rows,
    walk_forward,
    write_heatmap,
    write_table,
    write_walk_forward,
)
from algostream.backtest.tearsheet import money
from algostream.config import Settings
from algostream.marketdata.bars import INTERVAL_NS


def sweep_command(
    settings: Settings,
    inputs: Sequence[EngineInput],
    specs: Sequence[str],
    metric: str,
    jobs: int,
    walk: str | None,
    out: Path,
    console: Console | None = None,
    runner: Runner = engine_run,
) -> int:
    """Run the sweep; the exit code (2 for a bad request, named on the console).
    ``runner`` is the backtest of one point (:data:`~algostream.backtest.sweep.Runner`)."""
    show = console or Console()
    try:
        if metric not in METRICS:
            raise SweepError(f"--metric {metric!r} is not one of {', '.join(METRICS)}")
        points = grid(settings, specs)
        windows = parse_walk_forward(walk) if walk else None
    except SweepError as exc:
        show.print(f"[red]error:[/red] {exc}")
        return 2
    columns = (TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    progress = Progress(*columns, console=show, transient=True)
    task = progress.add_task("grid", total=len(points))

    def done(_r: PointResult) -> None:
        if not progress.live.is_started:  # started after the workers are forked: a fork
            progress.start()  # never copies the bar's refresh thread mid-lock
        progress.advance(task)

    try:
        results = run_grid(settings, inputs, points, jobs, done, runner)
    finally:
        progress.stop()
    ranked = rank(results, metric)
    csv_path, json_path = write_table(out, ranked, metric)
    heatmap = write_heatmap(out, results, metric)
    show.print(_table(ranked, metric))
    show.print(f"ranked by {metric}: {csv_path}, {json_path}" + (f", {heatmap}" if heatmap else ""))
    if windows is not None:
        reported = [r.report.period_ns for r in results if r.report is not None]
        period = reported[0] if reported else INTERVAL_NS[settings.signal.bar_interval]
        try:
            folds = walk_forward(results, *windows, metric, period)
        except SweepError as exc:
            show.print(f"[red]error:[/red] {exc}")
            return 2
        path = write_walk_forward(out, folds, metric)
        show.print(
            f"walk-forward: {len(folds)} folds, out-of-sample return "
            f"{out_of_sample_return(folds) * 100:.4f} %: {path}"
        )
    return 0


def _table(ranked: Sequence[PointResult], metric: str, limit: int = 20) -> Table:
    rows = table_rows(ranked)[:limit]
    names = list(rows[0]) if rows else []
    table = Table(*names, title=f"sweep ranked by {metric}")
    for row in rows:
        table.add_row(*(_fmt(k, v) for k, v in row.items()))
    return table


def _fmt(name: str, value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and name in PERCENT_METRICS:
        return f"{value * 100:.4f} %"
    if isinstance(value, float):
        return f"{value:.4g}"
    if name in ("pnl", "total_fees"):
        return money(Decimal(str(value)))
    return str(value)
