"""Errors raised by :mod:`algostream.marketdata`. One root: :class:`MarketDataError`."""

from __future__ import annotations

from typing import Any


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class MarketDataError(Exception):
    """Root of every error raised by :mod:`algostream.marketdata`."""


class FrameError(MarketDataError):
    """An exchange frame or REST body is malformed.

    ``field`` is the dotted path of the offending field (``"<frame>"`` for the whole
    frame), ``value`` a short repr of what was found there (``"<missing>"`` when absent)
    and ``reason`` what was expected. The frame should go to the DLQ; the feed goes on.
    """

    def __init__(self, field: str, value: str, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"malformed frame: field '{field}' = {value}: {reason}")


class BookStateError(MarketDataError):
    """A saved order book / processor / bar state cannot be restored (names the key)."""
