"""Errors raised by :mod:`algostream.history`. One root: :class:`HistoryError`."""

from __future__ import annotations


class HistoryError(Exception):
    """Root of every error raised by :mod:`algostream.history`."""


class HistoryFormatError(HistoryError):
    """A row of a history file is not what its format says.

    ``path`` is the file, ``line`` the 1-based line (a Parquet file: the 1-based row;
    ``None`` when the file as a whole is wrong), ``column`` the column's name (``None`` when
    the row as a whole is wrong) and ``reason`` what was wrong, with the offending value.

    >>> str(HistoryFormatError("k.csv", 3, "high", "'x' is not a decimal number"))
    "k.csv:3: column high: 'x' is not a decimal number"
    """

    def __init__(self, path: str, line: int | None, column: str | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.reason = reason
        where = f"{path}:{line}" if line is not None else path
        what = f"column {column}: " if column is not None else ""
        super().__init__(f"{where}: {what}{reason}")


class HistoryTopicsError(HistoryError):
    """History cannot be written to the topics as asked (e.g. the broker would delete it)."""


class HistoryUsageError(HistoryError, ValueError):
    """A read was asked for something unknown: a format, an interval. The message names it
    and lists what is known."""
