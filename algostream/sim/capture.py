"""Recorded captures (cryptofeed's raw format) and their playback as a book source.

A WebSocket capture (``BINANCE_US.ws.1.0``) is a header line ``<url> <-> <time>`` followed
by ``<receive time>: <frame JSON>`` lines; an HTTP capture (``BINANCE_US.http.0.0``) holds
``<url> -> <time>: <body JSON>`` lines, here depth snapshots. :class:`PlaybackSource` starts
from each symbol's captured snapshot and applies the played ``depthUpdate`` frames with
``u > lastUpdateId``, so ``/api/v3/depth`` and ``/sim/book`` show the book as of the
playback position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from sortedcontainers import SortedDict

from algostream.sim.errors import CaptureFormatError, SimConfigError, UnknownSymbolError
from algostream.sim.market import Level
from algostream.sim.spec import SymbolSpec, split_symbol


@dataclass(frozen=True)
class CaptureFrame:
    """One recorded frame: receive time (s), stream name, exact text, parsed payload."""

    ts: float
    stream: str
    raw: bytes
    data: dict[str, Any]


@dataclass(frozen=True)
class CaptureSnapshot:
    """One recorded REST depth snapshot."""

    symbol: str
    ts: float
    last_update_id: int
    bids: list[list[str]]
    asks: list[list[str]]


def _split_ts(line: str, sep: str, where: str) -> tuple[float, str]:
    stamp, found, body = line.partition(sep)
    try:
        if not found:
            raise ValueError("no separator")
        return float(stamp), body
    except ValueError:
        raise CaptureFormatError(
            f"{where}: expected '<time>{sep}<json>', got {line[:60]!r}"
        ) from None


def read_ws_capture(path: str | Path) -> list[CaptureFrame]:
    """Parse a WebSocket capture file into frames (header lines are skipped)."""
    frames: list[CaptureFrame] = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or " <-> " in line:
            continue
        where = f"{path}:{n}"
        ts, body = _split_ts(line, ": ", where)
        try:
            msg = orjson.loads(body)
            frames.append(CaptureFrame(ts, str(msg["stream"]), body.encode(), msg["data"]))
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise CaptureFormatError(f"{where}: not a combined-stream frame ({exc})") from None
    return frames


def read_http_capture(path: str | Path) -> dict[str, CaptureSnapshot]:
    """Parse an HTTP capture; returns the first depth snapshot of each symbol."""
    out: dict[str, CaptureSnapshot] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        url, found, rest = line.partition(" -> ")
        if not found:
            raise CaptureFormatError(f"{where}: expected '<url> -> <time>: <json>'")
        ts, body = _split_ts(rest, ": ", where)
        symbols = parse_qs(urlsplit(url).query).get("symbol")
        if not urlsplit(url).path.endswith("/depth") or not symbols:
            continue
        try:
            snap = orjson.loads(body)
            item = CaptureSnapshot(
                symbols[0].upper(), ts, int(snap["lastUpdateId"]), snap["bids"], snap["asks"]
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CaptureFormatError(f"{where}: not a depth snapshot ({exc})") from None
        out.setdefault(item.symbol, item)
    return out


def _exponent_size(values: list[str]) -> Decimal:
    places = 0
    for v in values:
        exp = Decimal(v).normalize().as_tuple().exponent
        assert isinstance(exp, int)
        places = max(places, -exp)
    return Decimal(1).scaleb(-min(places, 8))


@dataclass
class _PlayBook:
    snapshot: CaptureSnapshot
    bids: SortedDict = field(default_factory=SortedDict)
    asks: SortedDict = field(default_factory=SortedDict)
    last_update_id: int = 0
    last_trade: Decimal | None = None
    gaps: int = 0


class PlaybackSource:
    """A :class:`~algostream.sim.market.BookProvider` fed by a capture's frames."""

    def __init__(self, frames: list[CaptureFrame], snapshots: dict[str, CaptureSnapshot]) -> None:
        if not frames:
            raise SimConfigError("capture has no frames to play back")
        self.frames = frames
        self._books = {s: self._fresh(snap) for s, snap in snapshots.items()}
        self._specs = {s: self._derive_spec(snap) for s, snap in snapshots.items()}
        self.position = 0

    @classmethod
    def from_files(cls, ws_path: str | Path, http_path: str | Path | None = None) -> PlaybackSource:
        """Load a WebSocket capture and (optionally) its HTTP snapshot capture."""
        snaps = read_http_capture(http_path) if http_path else {}
        return cls(read_ws_capture(ws_path), snaps)

    @staticmethod
    def _fresh(snap: CaptureSnapshot) -> _PlayBook:
        book = _PlayBook(snap, last_update_id=snap.last_update_id)
        book.bids.update((Decimal(p), Decimal(q)) for p, q in snap.bids)
        book.asks.update((Decimal(p), Decimal(q)) for p, q in snap.asks)
        return book

    @staticmethod
    def _derive_spec(snap: CaptureSnapshot) -> SymbolSpec:
        levels = snap.bids + snap.asks
        tick = _exponent_size([p for p, _ in levels])
        step = _exponent_size([q for _, q in levels])
        base, quote = split_symbol(snap.symbol)
        start = Decimal(snap.bids[0][0]) if snap.bids else tick * 1000
        return SymbolSpec(snap.symbol, max(start, tick * 200), tick, step, step, base, quote)

    def rewind(self) -> None:
        """Back to the start: snapshots restored, position 0."""
        self._books = {s: self._fresh(b.snapshot) for s, b in self._books.items()}
        self.position = 0

    def apply(self, frame: CaptureFrame) -> None:
        """Advance the books by one played frame."""
        self.position += 1
        data = frame.data
        book = self._books.get(str(data.get("s", "")))
        if book is None:
            return
        if data.get("e") == "depthUpdate":
            self._apply_depth(book, data)
        elif data.get("e") in ("trade", "aggTrade"):
            book.last_trade = Decimal(data["p"])

    @staticmethod
    def _apply_depth(book: _PlayBook, data: dict[str, Any]) -> None:
        first, last = int(data["U"]), int(data["u"])
        if last <= book.last_update_id:
            return
        if first > book.last_update_id + 1:
            book.gaps += 1
        for side, levels in ((book.bids, data["b"]), (book.asks, data["a"])):
            for p, q in levels:
                price, qty = Decimal(p), Decimal(q)
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
        book.last_update_id = last

    # -- BookProvider ------------------------------------------------------------------
    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols with a captured snapshot."""
        return tuple(self._books)

    def _book(self, symbol: str) -> _PlayBook:
        try:
            return self._books[symbol.upper()]
        except KeyError:
            raise UnknownSymbolError(symbol, self.symbols) from None

    def spec(self, symbol: str) -> SymbolSpec:
        """A spec derived from the snapshot's price and quantity decimals."""
        self._book(symbol)
        return self._specs[symbol.upper()]

    def book(self, symbol: str) -> tuple[list[Level], list[Level]]:
        """The book at the playback position, best first."""
        b = self._book(symbol)
        return list(reversed(b.bids.items())), list(b.asks.items())

    def last_update_id(self, symbol: str) -> int:
        """The ``u`` of the last applied diff (or the snapshot's ``lastUpdateId``)."""
        return self._book(symbol).last_update_id

    def last_trade_price(self, symbol: str) -> Decimal | None:
        """The last played trade price."""
        return self._book(symbol).last_trade
