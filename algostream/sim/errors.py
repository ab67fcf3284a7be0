"""Errors raised by the exchange simulator. One root: :class:`SimError`."""

from __future__ import annotations


class SimError(Exception):
    """Root of every error raised by :mod:`algostream.sim`."""


class SimConfigError(SimError):
    """A simulator setting is invalid; the message names the setting and the value."""


class CaptureFormatError(SimError):
    """A capture file line could not be parsed; the message names the file and line."""


class UnknownSymbolError(SimError):
    """A symbol or product id is not served by this simulator."""

    def __init__(self, symbol: str, known: tuple[str, ...]) -> None:
        self.symbol = symbol
        super().__init__(f"symbol {symbol!r} is not simulated; known symbols: {', '.join(known)}")
