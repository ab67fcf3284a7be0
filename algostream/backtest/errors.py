"""Errors raised by the backtest package. One root: :class:`BacktestError`."""

from __future__ import annotations


class BacktestError(Exception):
    """Root of every error raised by :mod:`algostream.backtest`."""


class CaptureFormatError(BacktestError):
    """A capture file is not in the expected format.

    ``path`` is the file, ``line`` the 1-based line number (``None`` when the problem is
    the file as a whole, e.g. an empty or non-gzip file) and ``reason`` what was wrong.
    """

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


class ReportInputError(BacktestError):
    """The inputs of a backtest report are invalid; the message names the field and value."""


class SweepError(BacktestError):
    """A parameter sweep or walk-forward cannot run as asked (unknown parameter, bad value,
    bad window); the message names it."""


class BarInputError(BacktestError):
    """Bars given to the bar backtest are unusable (out of order, another instrument, a
    file that is not OHLCV); the message names the bar or the file, line and column."""
