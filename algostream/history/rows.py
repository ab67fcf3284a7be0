"""What every history reader shares: opening a file, the row driver, cell parsers, stats.

A reader turns ``(line, cells)`` rows into records; :func:`drive` counts them, enforces
time order and applies the error policy: by default the first bad row raises
:class:`~algostream.history.errors.HistoryFormatError` (file, line, column); with
``ReadStats(keep_going=True)`` each bad row is recorded in ``stats.errors`` and counted as
rejected, and reading goes on. Nothing is skipped without a record of it.
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, TypeVar, get_args

from algostream.history.errors import HistoryFormatError, HistoryUsageError
from algostream.model.records import Bar, Record

R = TypeVar("R", bound=Record)
Row = tuple[int, list[str]]

_UNIT_NS = {
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}


def _known_intervals() -> dict[str, int]:
    """The intervals a :class:`Bar` may have (its ``interval`` Literal), with their lengths:
    whatever the record type allows, this reader reads."""

    def names(annotation: object) -> list[str]:  # a Literal, or a union of Literals
        args = get_args(annotation)
        return [a for a in args if isinstance(a, str)] + [
            n for a in args if not isinstance(a, str) for n in names(a)
        ]

    found = names(Bar.model_fields["interval"].annotation)
    return {name: int(name[:-1]) * _UNIT_NS[name[-1]] for name in found}


#: bar intervals the records know, by name (Binance's names) and length in ns
INTERVAL_NS: dict[str, int] = _known_intervals()


@dataclass
class ReadStats:
    """Counts of one read: rows read, rejected (with their errors), first/last event time."""

    keep_going: bool = False
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    bytes_read: int = 0
    errors: list[HistoryFormatError] = field(default_factory=list)

    def reject(self, error: HistoryFormatError) -> None:
        if not self.keep_going:
            raise error
        self.rejected += 1
        self.errors.append(error)

    def accept(self, ts_ns: int) -> None:
        self.accepted += 1
        if self.first_ns is None:
            self.first_ns = ts_ns
        self.last_ns = ts_ns


def drive(
    path: str,
    rows: Iterator[Row],
    parse: Callable[[int, list[str]], R],
    stats: ReadStats,
    order: Callable[[R], int],
    order_column: str,
    strict: bool,
) -> Iterator[R]:
    """Parse ``rows``; ``order(record)`` must not step back (``strict``: must increase)."""
    last: int | None = None
    for line, cells in rows:
        stats.rows += 1
        try:
            record = parse(line, cells)
            key = order(record)
            if last is not None and (key < last or (strict and key == last)):
                raise HistoryFormatError(
                    path,
                    line,
                    order_column,
                    f"{key} is {'not after' if strict else 'before'} the previous row's {last}: "
                    "rows must be in time order",
                )
        except HistoryFormatError as exc:
            stats.reject(exc)
            continue
        last = key
        stats.accept(record.ts_event)
        yield record


# --------------------------------------------------------------------------- files


def file_size(path: Path) -> int | None:
    """Bytes of text the reader will go through (a zip's member), ``None`` when unknown."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return sum(i.file_size for i in archive.infolist() if not i.is_dir())
    if path.suffix == ".gz":
        return None
    return path.stat().st_size


@contextmanager
def open_text(path: Path) -> Iterator[IO[str]]:
    """A text file, a ``.gz`` or a Binance ``.zip`` holding one CSV, opened as text."""
    if not path.is_file():
        raise HistoryFormatError(str(path), None, None, "no such file")
    if path.suffix == ".zip":
        try:
            archive = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise HistoryFormatError(str(path), None, None, f"not a zip file: {exc}") from None
        with archive:
            members = [i for i in archive.infolist() if not i.is_dir()]
            if len(members) != 1:
                names = [m.filename for m in members]
                raise HistoryFormatError(
                    str(path), None, None, f"expected one CSV in the zip, found {names}"
                )
            with archive.open(members[0]) as raw:
                yield io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        return
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8-sig", newline="") as gz:
            yield gz
        return
    with path.open(encoding="utf-8-sig", newline="") as text:
        yield text


def csv_rows(where: str, text: IO[str], stats: ReadStats) -> Iterator[Row]:
    """``(line, cells)`` of every non-empty line; a blank line is a rejected row."""
    reader = csv.reader(text)
    try:
        for cells in reader:
            stats.bytes_read += sum(map(len, cells)) + len(cells)  # the line, near enough
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                stats.rows += 1
                stats.reject(HistoryFormatError(where, reader.line_num, None, "empty line"))
                continue
            yield reader.line_num, cells
    except UnicodeDecodeError as exc:
        raise HistoryFormatError(where, None, None, f"not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise HistoryFormatError(where, reader.line_num, None, f"not CSV: {exc}") from None
    except (OSError, EOFError) as exc:  # a truncated gzip or zip member
        raise HistoryFormatError(where, None, None, f"unreadable: {exc}") from None


# --------------------------------------------------------------------------- cells


def decimal_cell(where: str, line: int, column: str, text: str, *, positive: bool) -> Decimal:
    """A finite Decimal (``positive``: > 0, else >= 0) or an error naming the cell."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise HistoryFormatError(where, line, column, f"{text!r} is not a decimal number") from None
    if not value.is_finite():
        raise HistoryFormatError(where, line, column, f"{text!r} is not a finite number")
    if positive and value <= 0:
        raise HistoryFormatError(where, line, column, f"{text!r} must be > 0")
    if value < 0:
        raise HistoryFormatError(where, line, column, f"{text!r} must be >= 0")
    return value


def int_cell(where: str, line: int, column: str, text: str) -> int:
    """A non-negative integer or an error naming the cell."""
    stripped = text.strip()
    if not stripped.isdigit():
        raise HistoryFormatError(where, line, column, f"{text!r} is not a non-negative integer")
    return int(stripped)


#: ms timestamps from 1973 to 5138; µs from 1973 to 5138 (Binance's two units)
_MS_MIN, _US_MIN, _US_MAX = 10**11, 10**14, 10**17


def epoch_ns(where: str, line: int, column: str, text: str) -> tuple[int, int]:
    """``(ns, unit_ns)`` of a millisecond or microsecond epoch timestamp (told by size)."""
    value = int_cell(where, line, column, text)
    if _MS_MIN <= value < _US_MIN:
        return value * 1_000_000, 1_000_000
    if _US_MIN <= value < _US_MAX:
        return value * 1_000, 1_000
    raise HistoryFormatError(
        where, line, column, f"{text!r} is not a millisecond or microsecond epoch timestamp"
    )


def bool_cell(where: str, line: int, column: str, text: str) -> bool:
    """``true``/``false`` in any case (Binance writes ``True`` in spot, ``true`` in futures)."""
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise HistoryFormatError(where, line, column, f"{text!r} is not true or false")


def interval_of(where: str, line: int | None, column: str | None, length_ns: int) -> str:
    """The interval name of a bar length, or an error naming the length and the known ones."""
    for name, ns in INTERVAL_NS.items():
        if ns == length_ns:
            return name
    raise HistoryFormatError(
        where,
        line,
        column,
        f"bar length {length_ns / 1e9:g}s is not an interval the engine knows "
        f"({', '.join(INTERVAL_NS)})",
    )


def check_interval(name: str) -> str:
    """``name`` if it is a known interval; :class:`HistoryUsageError` naming it otherwise."""
    if name not in INTERVAL_NS:
        raise HistoryUsageError(
            f"interval {name!r} is not one the engine knows ({', '.join(INTERVAL_NS)})"
        )
    return name
