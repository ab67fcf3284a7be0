"""Binance USDⓈ-M perpetual futures market data from the simulated market.

The real venue serves futures from other hosts (``wss://fstream.binance.com``,
``https://fapi.binance.com``); the simulator serves them on its one port:

* WebSocket ``/fstream/stream?streams=btcusdt@depth@100ms/btcusdt@aggTrade/btcusdt@markPrice``
  (combined) and ``/fstream/ws[/<streams>]`` (raw), with the spot hub's live methods;
* REST ``/fapi/v1/depth``, ``/fapi/v1/exchangeInfo``, ``/fapi/v1/premiumIndex``,
  ``/fapi/v1/time`` and ``/fapi/v1/ping``, weight-limited like ``/api/v3``
  (both in :mod:`.binance_usdm_rest`).

The book is the simulated market's (the perpetual trades the same book as the spot pair
here). Futures ``depthUpdate`` frames carry ``T`` (transaction time) and ``pu`` (the
previous message's ``u``) and their update ids are **not contiguous**, as on the real
venue: market event ``n`` is futures id ``n * ID_SCALE``, so a message's ``U`` is
``ID_SCALE`` above the previous ``u``. The spot rule (``U <= prev u + 1``) reports a GAP on
every such message; the futures rule (``pu == prev u``) does not. A dropped message
(the ``drop_depth`` fault) leaves the next one's ``pu`` pointing at it: a real gap.
``markPriceUpdate`` is sent every 3 s on ``@markPrice`` and every second on
``@markPrice@1s``: mark = mid of the book, index a little below it, funding rate from
their premium (clamped to ±0.75 %), next funding at the next 00/08/16 UTC.
``forceOrder`` (a liquidation on the market) is sent on ``@forceOrder`` by the fault
``/sim/fault {"kind": "liquidation", "symbol": "BTCUSDT", "side": "SELL", "qty": "0.5"}``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from algostream.sim.binance import BinanceHub, PendingDepth
from algostream.sim.errors import SimConfigError
from algostream.sim.market import BookProvider, MarketEvent
from algostream.sim.spec import SymbolSpec

#: futures update id of market event ``n``: ``n * ID_SCALE`` (ids are not contiguous)
ID_SCALE = 10
FUNDING_INTERVAL_MS = 8 * 3600 * 1000
INTEREST_RATE = Decimal("0.0001")  # Binance's 0.01 % per 8 h interest component
_CAP = Decimal("0.0075")
_BASIS_CAP = Decimal("0.0005")
_P8 = Decimal("0.00000001")


def usdm_id(market_id: int) -> int:
    """The futures update id of a market event id."""
    return market_id * ID_SCALE


def encode_usdm_depth(
    symbol: str, first_id: int, last_id: int, time_ms: int, bids: Any, asks: Any, spec: SymbolSpec
) -> bytes:
    """A futures ``depthUpdate`` spanning market events ``first_id..last_id``."""
    return orjson.dumps(
        {
            "e": "depthUpdate",
            "E": time_ms,
            "T": time_ms,
            "s": symbol,
            "U": usdm_id(first_id),
            "u": usdm_id(last_id),
            "pu": usdm_id(first_id - 1),
            "b": [[spec.price_str(p), spec.qty_str(q)] for p, q in bids],
            "a": [[spec.price_str(p), spec.qty_str(q)] for p, q in asks],
        }
    )


class UsdmPendingDepth(PendingDepth):
    """A batched futures depth stream (``pu`` and scaled ids)."""

    def encode(self) -> bytes:
        return encode_usdm_depth(
            self.symbol,
            self.first_id,
            self.last_id,
            self.time_ms,
            self.bids.items(),
            self.asks.items(),
            self.spec,
        )


class UsdmHub(BinanceHub):
    """The futures connections: spot's fan-out with futures depth frames and mark prices."""

    pending_type = UsdmPendingDepth
    #: time between funding times (8 h on the venue; ``sim.funding_interval_s``)
    funding_interval_ms = FUNDING_INTERVAL_MS

    def encode_one(self, ev: MarketEvent, spec: SymbolSpec) -> bytes:
        return encode_usdm_depth(
            ev.symbol, ev.first_id, ev.last_id, ev.time_ms, ev.bids, ev.asks, spec
        )

    def publish_marks(self, market: BookProvider, now_ms: int, every_s: int) -> int:
        """Send ``markPriceUpdate`` on every subscribed ``@markPrice`` (``every_s`` 3) or
        ``@markPrice@1s`` (1) stream; returns how many were sent."""
        suffix = "@markPrice" if every_s == 3 else "@markPrice@1s"
        sent = 0
        for symbol in market.symbols:
            name = symbol.lower() + suffix
            if self.wants(name):
                event = mark_price_event(market, symbol, now_ms, self.funding_interval_ms)
                self.send(name, orjson.dumps(event))
                sent += 1
        return sent

    def publish_force_order(
        self, market: BookProvider, symbol: str, side: str, qty: Decimal, now_ms: int
    ) -> dict[str, Any]:
        """A ``forceOrder`` (a liquidation order: SELL closes a long) on ``<s>@forceOrder``,
        filled at the best price on the other side; returns the event."""
        if side not in ("BUY", "SELL"):
            raise SimConfigError(f"side={side!r}: expected BUY or SELL")
        if not qty.is_finite() or qty <= 0:
            raise SimConfigError(f"qty={qty}: expected > 0")
        bids, asks = market.book(symbol)
        levels_ = bids if side == "SELL" else asks
        price = levels_[0][0] if levels_ else market.spec(symbol).start_price
        event = force_order_event(symbol, side, qty, price, now_ms)
        self.send(symbol.lower() + "@forceOrder", orjson.dumps(event))
        return event


def force_order_event(
    symbol: str, side: str, qty: Decimal, price: Decimal, now_ms: int
) -> dict[str, Any]:
    """A filled ``forceOrder`` payload, as Binance documents it."""
    return {
        "e": "forceOrder",
        "E": now_ms,
        "o": {
            "s": symbol,
            "S": side,
            "o": "LIMIT",
            "f": "IOC",
            "q": f"{qty:f}",
            "p": f"{price:f}",
            "ap": f"{price:f}",
            "X": "FILLED",
            "l": f"{qty:f}",
            "z": f"{qty:f}",
            "T": now_ms,
        },
    }


def next_funding_ms(now_ms: int, interval_ms: int = FUNDING_INTERVAL_MS) -> int:
    """The next funding time (00:00, 08:00, 16:00 UTC) after ``now_ms``."""
    return (now_ms // interval_ms + 1) * interval_ms


def mark_and_index(market: BookProvider, symbol: str) -> tuple[Decimal, Decimal, Decimal]:
    """``(mark, index, funding rate)``: mark = mid (last trade on a one-sided book), index
    2 bp below, rate = premium + clamp(interest - premium, ±0.05 %), clamped to ±0.75 %
    (Binance's formula)."""
    bids, asks = market.book(symbol)
    if bids and asks:
        mark = (bids[0][0] + asks[0][0]) / 2
    else:
        mark = market.last_trade_price(symbol) or market.spec(symbol).start_price
    index = (mark * Decimal("0.9998")).quantize(_P8)
    premium = (mark - index) / index
    basis = max(-_BASIS_CAP, min(_BASIS_CAP, INTEREST_RATE - premium))
    rate = max(-_CAP, min(_CAP, premium + basis)).quantize(_P8)
    return mark.quantize(_P8), index, rate


def mark_price_event(
    market: BookProvider, symbol: str, now_ms: int, interval_ms: int = FUNDING_INTERVAL_MS
) -> dict[str, Any]:
    """The ``markPriceUpdate`` payload of ``symbol`` now."""
    mark, index, rate = mark_and_index(market, symbol)
    return {
        "e": "markPriceUpdate",
        "E": now_ms,
        "s": symbol,
        "p": f"{mark:.8f}",
        "i": f"{index:.8f}",
        "P": f"{index:.8f}",
        "r": f"{rate:.8f}",
        "T": next_funding_ms(now_ms, interval_ms),
    }
