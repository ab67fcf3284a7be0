"""``algostream history import``: read a history file, check every row, summarise, and
optionally write it to the topics (``--to-topics``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from algostream.cli import ConfigOpt, app, console, settings_or_exit
from algostream.config import Settings
from algostream.history import FORMATS, HistoryError, ReadStats, file_size, read_records
from algostream.model.records import Record

history_app = typer.Typer(
    help="History in: Binance dumps, OHLCV CSV/Parquet, capture files.", no_args_is_help=True
)
app.add_typer(history_app, name="history")


def _when(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def summary_table(path: Path, fmt: str, stats: ReadStats, written: int | None) -> Table:
    """Rows read, accepted, rejected, first and last event time (and records written)."""
    table = Table(title=f"{path.name} ({fmt})", show_header=False)
    for name, value in (
        ("rows read", f"{stats.rows:,}"),
        ("records", f"{stats.accepted:,}"),
        ("rejected", f"{stats.rejected:,}"),
        ("first event (a bar: its close)", _when(stats.first_ns)),
        ("last event", _when(stats.last_ns)),
        ("written to topics", "-" if written is None else f"{written:,}"),
    ):
        table.add_row(name, value)
    return table


def _progressed(
    records: Iterator[Record], stats: ReadStats, progress: Progress
) -> Iterator[Record]:
    task = progress.tasks[0].id
    for n, record in enumerate(records):
        if n % 2000 == 0:
            progress.update(task, completed=stats.bytes_read)
        yield record
    progress.update(task, completed=stats.bytes_read)


@history_app.command("import")
def history_import(
    paths: Annotated[
        list[Path], typer.Argument(help="files (.csv, .zip, .gz, .parquet, .jsonl.gz), in order")
    ],
    fmt: Annotated[str, typer.Option("--format", help=f"one of: {', '.join(FORMATS)}")],
    symbol: Annotated[str | None, typer.Option(help="e.g. BTCUSDT (default: file name)")] = None,
    venue: Annotated[str | None, typer.Option(help="venue of the instrument id")] = None,
    interval: Annotated[str | None, typer.Option(help="bar interval (default: inferred)")] = None,
    to_topics: Annotated[bool, typer.Option("--to-topics", help="write to the topics")] = False,
    prefix: Annotated[str | None, typer.Option(help="topic prefix (default: config)")] = None,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", help="report bad rows (and dlq them), don't stop")
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Check history files row by row and summarise each; ``--to-topics`` writes them.
    Several files (a month of daily dumps) are imported one after the other; the first
    file with a bad row stops the import (exit 1) unless ``--keep-going`` (exit 3)."""
    if fmt not in FORMATS:
        console.print(f"[red]--format {fmt!r}[/red] is not one of {', '.join(FORMATS)}")
        raise typer.Exit(2)
    settings = settings_or_exit(config) if to_topics else None
    rejected = 0
    for path in paths:
        stats = ReadStats(keep_going=keep_going)
        written = _import_one(path, fmt, stats, settings, prefix, symbol, venue, interval)
        for error in stats.errors[:20]:
            console.print(f"[yellow]rejected[/yellow] {error}")
        if len(stats.errors) > 20:
            console.print(f"... and {len(stats.errors) - 20} more rejected rows")
        console.print(summary_table(path, fmt, stats, written))
        rejected += stats.rejected
    if rejected:  # done, but not all of it: say so in the exit code
        raise typer.Exit(3)


def _import_one(
    path: Path,
    fmt: str,
    stats: ReadStats,
    settings: Settings | None,
    prefix: str | None,
    symbol: str | None,
    venue: str | None,
    interval: str | None,
) -> int | None:
    """Read (and with settings, write) one file; on an error print it and exit 1."""
    written: int | None = None
    progress = Progress(
        TextColumn(path.name),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    try:
        records = read_records(
            path, fmt, symbol=symbol, venue=venue, interval=interval, stats=stats
        )
        with progress:
            progress.add_task("read", total=file_size(path) if path.is_file() else None)
            flowing = _progressed(records, stats, progress)
            if settings is None:
                for _ in flowing:
                    pass
            else:
                from algostream.history.topics import write_records

                written = asyncio.run(
                    write_records(settings, flowing, prefix, lambda: stats.errors)
                )
    except (HistoryError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        console.print(summary_table(path, fmt, stats, written))
        raise typer.Exit(1) from None
    return written
