"""The simulated trades of each symbol, kept for the REST market data built from them:
``trades``, ``aggTrades``, ``klines``, ``avgPrice`` and the 24 h ``ticker``.

>>> from algostream.sim.market import TradeFill
>>> from algostream.sim.spec import default_spec
>>> tape = TradeTape()
>>> spec = default_spec("BTCUSDT")
>>> tape.record("BTCUSDT", spec, [TradeFill(1, 3_000_000, 100, False, 60_000)])
>>> tape.record("BTCUSDT", spec, [TradeFill(2, 3_000_100, 50, True, 61_000)])
>>> k = tape.klines("BTCUSDT", 60_000, None, None, 10)[0]
>>> k[1:6], k[8]
(['30000.00000000', '30001.00000000', '30000.00000000', '30001.00000000', '0.00150000'], 2)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from algostream.sim.market import TradeFill
from algostream.sim.spec import SymbolSpec

MAX_TRADES = 100_000
DAY_MS = 86_400_000
INTERVALS_MS = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": DAY_MS,
}


def p8(value: Decimal) -> str:
    """Binance's 8-decimal wire format."""
    return f"{value:.8f}"


@dataclass(frozen=True, slots=True)
class TapeTrade:
    """One public trade: exact price and quantity."""

    trade_id: int
    price: Decimal
    qty: Decimal
    time_ms: int
    buyer_is_maker: bool

    def as_trade(self) -> dict[str, object]:
        """``GET /api/v3/trades`` row."""
        return {
            "id": self.trade_id,
            "price": p8(self.price),
            "qty": p8(self.qty),
            "quoteQty": p8(self.price * self.qty),
            "time": self.time_ms,
            "isBuyerMaker": self.buyer_is_maker,
            "isBestMatch": True,
        }

    def as_agg(self) -> dict[str, object]:
        """``GET /api/v3/aggTrades`` row (one fill per price level: ``f == l``)."""
        return {
            "a": self.trade_id,
            "p": p8(self.price),
            "q": p8(self.qty),
            "f": self.trade_id,
            "l": self.trade_id,
            "T": self.time_ms,
            "m": self.buyer_is_maker,
            "M": True,
        }


class TradeTape:
    """The last :data:`MAX_TRADES` trades of every symbol, oldest first."""

    def __init__(self) -> None:
        # raw fills (ticks, lots): converting to Decimal only when read keeps the hot path cheap
        self._fills: dict[str, deque[TradeFill]] = {}
        self._specs: dict[str, SymbolSpec] = {}

    def record(self, symbol: str, spec: SymbolSpec, fills: Iterable[TradeFill]) -> None:
        """Add the fills of one market event."""
        tape = self._fills.get(symbol)
        if tape is None:
            tape = self._fills[symbol] = deque(maxlen=MAX_TRADES)
            self._specs[symbol] = spec
        tape.extend(fills)

    def trades(self, symbol: str) -> list[TapeTrade]:
        """Every kept trade of ``symbol``, oldest first."""
        return self.since(symbol, 0)

    def since(self, symbol: str, start_ms: int) -> list[TapeTrade]:
        """Trades at or after ``start_ms``."""
        spec = self._specs.get(symbol)
        if spec is None:
            return []
        return [
            TapeTrade(f.trade_id, spec.price(f.price), spec.qty(f.qty), f.time_ms, f.buyer_is_maker)
            for f in self._fills[symbol]
            if f.time_ms >= start_ms
        ]

    def klines(
        self, symbol: str, interval_ms: int, start: int | None, end: int | None, limit: int
    ) -> list[list[object]]:
        """Binance kline rows built from the trades (intervals without trades are left out)."""
        buckets: dict[int, list[TapeTrade]] = {}
        for t in self.trades(symbol):
            if (start is None or t.time_ms >= start) and (end is None or t.time_ms <= end):
                buckets.setdefault(t.time_ms - t.time_ms % interval_ms, []).append(t)
        rows = [_kline(open_ms, interval_ms, ts) for open_ms, ts in sorted(buckets.items())]
        return rows[:limit] if start is not None else rows[-limit:]


def _kline(open_ms: int, interval_ms: int, trades: list[TapeTrade]) -> list[object]:
    prices = [t.price for t in trades]
    volume = sum((t.qty for t in trades), Decimal(0))
    quote = sum((t.qty * t.price for t in trades), Decimal(0))
    taker = [t for t in trades if not t.buyer_is_maker]
    return [
        open_ms,
        p8(prices[0]),
        p8(max(prices)),
        p8(min(prices)),
        p8(prices[-1]),
        p8(volume),
        open_ms + interval_ms - 1,
        p8(quote),
        len(trades),
        p8(sum((t.qty for t in taker), Decimal(0))),
        p8(sum((t.qty * t.price for t in taker), Decimal(0))),
        "0",
    ]


def kline_event(
    symbol: str, interval: str, open_ms: int, trades: list[TapeTrade], now_ms: int
) -> dict[str, object]:
    """The ``<symbol>@kline_<interval>`` payload of the current (still open) kline."""
    interval_ms = INTERVALS_MS[interval]
    if trades:
        row = _kline(open_ms, interval_ms, trades)
        first, last = trades[0].trade_id, trades[-1].trade_id
    else:  # no trade yet in this interval: Binance sends zeros and ids of -1
        row = [open_ms, *(["0.00000000"] * 5), open_ms + interval_ms - 1, "0.00000000", 0]
        row += ["0.00000000", "0.00000000", "0"]
        first = last = -1
    return {
        "e": "kline",
        "E": now_ms,
        "s": symbol,
        "k": {
            "t": open_ms,
            "T": open_ms + interval_ms - 1,
            "s": symbol,
            "i": interval,
            "f": first,
            "L": last,
            "o": row[1],
            "c": row[4],
            "h": row[2],
            "l": row[3],
            "v": row[5],
            "n": row[8],
            "x": False,
            "q": row[7],
            "V": row[9],
            "Q": row[10],
            "B": "0",
        },
    }
