"""The synthetic market: a deterministic, seeded random walk with a many-level book.

:class:`SimMarket` is pure logic: no clock, no I/O. Each :meth:`SimMarket.step` draws from a
buffered :class:`numpy.random.Generator` stream and returns one :class:`MarketEvent` (a level
update, or a trade that consumes liquidity on the hit side), so the same seed always gives
the same sequence of events, however the caller batches the steps.

>>> m = SimMarket.create(["BTCUSDT"], seed=7, levels=10)
>>> e = m.step(now_ms=1_700_000_000_000)
>>> e.first_id == 1001 and e.last_id >= e.first_id
True
>>> bids, asks = m.book("BTCUSDT")
>>> bids[0][0] < asks[0][0]
True
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

import numpy as np
from sortedcontainers import SortedDict

from algostream.sim.errors import SimConfigError, UnknownSymbolError
from algostream.sim.spec import SymbolSpec, default_spec

Level = tuple[Decimal, Decimal]
#: (price ticks, quantity lots); quantity 0 removes the level.
LevelChange = tuple[int, int]
FIRST_UPDATE_ID = 1001
MIN_LEVELS = 5


class BookProvider(Protocol):
    """What the REST/WS servers (and trading routes) read from a market source."""

    @property
    def symbols(self) -> tuple[str, ...]:
        """The served symbols, upper case."""
        ...

    def spec(self, symbol: str) -> SymbolSpec:
        """The instrument spec (filters) of ``symbol``."""
        ...

    def book(self, symbol: str) -> tuple[list[Level], list[Level]]:
        """``(bids, asks)`` as (price, qty) Decimals, best first."""
        ...

    def last_update_id(self, symbol: str) -> int:
        """The id of the last book change applied (Binance ``lastUpdateId``)."""
        ...

    def last_trade_price(self, symbol: str) -> Decimal | None:
        """The price of the last trade, or None before the first trade."""
        ...


@dataclass(frozen=True, slots=True)
class TradeFill:
    """One fill against one resting level. ``buyer_is_maker`` is Binance's ``m``."""

    trade_id: int
    price: int
    qty: int
    buyer_is_maker: bool
    time_ms: int


@dataclass(slots=True)
class MarketEvent:
    """One book change (update ids ``first_id..last_id``), with the trades that caused it."""

    symbol: str
    first_id: int
    last_id: int
    time_ms: int
    bids: list[LevelChange]
    asks: list[LevelChange]
    trades: list[TradeFill] = field(default_factory=list)
    #: (bid px, bid qty, ask px, ask qty) when the top of book changed, else None.
    top: tuple[int, int, int, int] | None = None


class UniformStream:
    """Uniform [0, 1) floats drawn from a Generator in fixed-size chunks.

    Chunking is independent of how callers batch their steps, so the sequence is fixed
    by the seed alone.
    """

    def __init__(self, seed: int, chunk: int = 8192) -> None:
        self._rng = np.random.default_rng(seed)
        self._chunk = chunk
        self._buf: list[float] = []
        self._pos = 0

    def next(self) -> float:
        """The next uniform draw."""
        if self._pos >= len(self._buf):
            self._buf = self._rng.random(self._chunk).tolist()
            self._pos = 0
        value = self._buf[self._pos]
        self._pos += 1
        return value


@dataclass
class _SymbolState:
    spec: SymbolSpec
    bids: SortedDict  # price ticks -> qty lots, ascending; best bid is last
    asks: SortedDict  # ascending; best ask is first
    mid: float
    last_update_id: int = FIRST_UPDATE_ID - 1
    next_trade_id: int = 1
    last_trade: int | None = None
    top: tuple[int, int, int, int] = (0, 0, 0, 0)
    recent: deque[TradeFill] = field(default_factory=lambda: deque(maxlen=50))
    heal: list[tuple[bool, int]] = field(default_factory=list)


class SimMarket:
    """A seeded multi-symbol market. See the module docstring for an example."""

    def __init__(
        self,
        specs: Sequence[SymbolSpec],
        seed: int,
        *,
        levels: int = 50,
        trade_probability: float = 0.1,
        walk_ticks: float = 0.5,
    ) -> None:
        if not specs:
            raise SimConfigError("specs=[]: simulate at least one symbol")
        if levels < MIN_LEVELS * 2:
            raise SimConfigError(f"levels={levels} must be >= {MIN_LEVELS * 2}")
        if not 0.0 <= trade_probability <= 1.0:
            raise SimConfigError(f"trade_probability={trade_probability} must be in [0, 1]")
        self.seed = seed
        self.levels = levels
        self.trade_probability = trade_probability
        self.walk_ticks = walk_ticks
        self._u = UniformStream(seed).next
        self._states = {s.symbol: self._initial_state(s) for s in specs}
        self._order = tuple(self._states)
        self.events_generated = 0

    @classmethod
    def create(
        cls,
        symbols: Iterable[str],
        seed: int,
        *,
        start_prices: dict[str, Decimal | str] | None = None,
        levels: int = 50,
        trade_probability: float = 0.1,
        walk_ticks: float = 0.5,
    ) -> SimMarket:
        """A market of default specs for ``symbols`` (optionally overriding start prices)."""
        prices = {k.upper(): v for k, v in (start_prices or {}).items()}
        specs = [default_spec(s, prices.get(s.upper())) for s in symbols]
        return cls(
            specs, seed, levels=levels, trade_probability=trade_probability, walk_ticks=walk_ticks
        )

    # -- read side -------------------------------------------------------------------
    @property
    def symbols(self) -> tuple[str, ...]:
        """The simulated symbols, in configuration order."""
        return self._order

    def spec(self, symbol: str) -> SymbolSpec:
        """The spec of ``symbol``."""
        return self._state(symbol).spec

    def book(self, symbol: str) -> tuple[list[Level], list[Level]]:
        """The true book: ``(bids, asks)`` as exact Decimals, best first."""
        st = self._state(symbol)
        spec = st.spec
        bids = [(spec.price(p), spec.qty(q)) for p, q in reversed(st.bids.items())]
        asks = [(spec.price(p), spec.qty(q)) for p, q in st.asks.items()]
        return bids, asks

    def book_ticks(self, symbol: str) -> tuple[list[LevelChange], list[LevelChange]]:
        """The true book in (ticks, lots), best first (cheap; for encoders)."""
        st = self._state(symbol)
        return list(reversed(st.bids.items())), list(st.asks.items())

    def last_update_id(self, symbol: str) -> int:
        """Binance ``lastUpdateId``: the id of the last book change of ``symbol``."""
        return self._state(symbol).last_update_id

    def last_trade_price(self, symbol: str) -> Decimal | None:
        """The last trade price of ``symbol`` (None before its first trade)."""
        st = self._state(symbol)
        return None if st.last_trade is None else st.spec.price(st.last_trade)

    def recent_trades(self, symbol: str) -> list[TradeFill]:
        """Up to the last 50 fills of ``symbol``, oldest first."""
        return list(self._state(symbol).recent)

    # -- write side ------------------------------------------------------------------
    def step(self, now_ms: int) -> MarketEvent:
        """Advance the market by one event stamped ``now_ms``."""
        self.events_generated += 1
        for st in self._states.values():
            if st.heal:
                return self._heal(st, now_ms)
        u = self._u
        st = self._states[self._order[int(u() * len(self._order))]]
        st.mid = max(st.mid + (u() - 0.5) * 2.0 * self.walk_ticks, float(self.levels * 4))
        if u() < self.trade_probability:
            event = self._trade(st, now_ms)
            if event is not None:
                return event
        return self._level_update(st, now_ms)

    def steps(self, count: int, now_ms: int) -> list[MarketEvent]:
        """``count`` consecutive events, all stamped ``now_ms``."""
        return [self.step(now_ms) for _ in range(count)]

    def inject_crossed(self, symbol: str, now_ms: int) -> MarketEvent:
        """Add a bid one tick above the best ask (a crossed book); the next step heals it."""
        st = self._state(symbol)
        price = st.asks.peekitem(0)[0] + 1
        qty = st.spec.mean_lots
        st.bids[price] = qty
        st.heal.append((True, price))
        return self._event(st, now_ms, [(price, qty)], [], [])

    # -- internals -------------------------------------------------------------------
    def _state(self, symbol: str) -> _SymbolState:
        try:
            return self._states[symbol.upper()]
        except KeyError:
            raise UnknownSymbolError(symbol, self._order) from None

    def _initial_state(self, spec: SymbolSpec) -> _SymbolState:
        u = np.random.default_rng([self.seed, *spec.symbol.encode()]).random
        mid = spec.start_ticks
        bids: SortedDict = SortedDict()
        asks: SortedDict = SortedDict()
        bid, ask = mid - 1, mid + 1
        for _ in range(self.levels):
            bids[bid] = self._draw_qty(spec, float(u()))
            asks[ask] = self._draw_qty(spec, float(u()))
            bid -= 1 + int(u() * 3)
            ask += 1 + int(u() * 3)
        st = _SymbolState(spec=spec, bids=bids, asks=asks, mid=float(mid))
        st.top = self._top(st)
        return st

    @staticmethod
    def _draw_qty(spec: SymbolSpec, u: float) -> int:
        return 1 + int(-math.log(1.0 - u) * spec.mean_lots)

    @staticmethod
    def _top(st: _SymbolState) -> tuple[int, int, int, int]:
        bp, bq = st.bids.peekitem(-1) if st.bids else (0, 0)
        ap, aq = st.asks.peekitem(0) if st.asks else (0, 0)
        return bp, bq, ap, aq

    def _event(
        self,
        st: _SymbolState,
        now_ms: int,
        bids: list[LevelChange],
        asks: list[LevelChange],
        trades: list[TradeFill],
    ) -> MarketEvent:
        first = st.last_update_id + 1
        st.last_update_id += len(bids) + len(asks)
        top = self._top(st)
        changed = top if top != st.top else None
        st.top = top
        return MarketEvent(
            st.spec.symbol, first, st.last_update_id, now_ms, bids, asks, trades, changed
        )

    def _heal(self, st: _SymbolState, now_ms: int) -> MarketEvent:
        bids: list[LevelChange] = []
        asks: list[LevelChange] = []
        for is_bid, price in st.heal:
            side, out = (st.bids, bids) if is_bid else (st.asks, asks)
            if side.pop(price, None) is not None:
                out.append((price, 0))
        st.heal.clear()
        if not bids and not asks:  # already gone (traded): re-state the best bid
            price, qty = st.bids.peekitem(-1)
            bids.append((price, qty))
        return self._event(st, now_ms, bids, asks, [])

    def _trade(self, st: _SymbolState, now_ms: int) -> MarketEvent | None:
        u = self._u
        best_bid, best_ask = st.bids.peekitem(-1)[0], st.asks.peekitem(0)[0]
        lean = max(-0.4, min(0.4, (st.mid - (best_bid + best_ask) / 2.0) * 0.1))
        is_buy = u() < 0.5 + lean
        side = st.asks if is_buy else st.bids
        remaining = self._draw_qty(st.spec, u())
        changes: list[LevelChange] = []
        fills: list[TradeFill] = []
        while remaining > 0 and len(side) > MIN_LEVELS:
            price, qty = side.peekitem(0 if is_buy else -1)
            take = min(qty, remaining)
            remaining -= take
            if take == qty:
                del side[price]
            else:
                side[price] = qty - take
            changes.append((price, qty - take))
            fill = TradeFill(st.next_trade_id, price, take, not is_buy, now_ms)
            st.next_trade_id += 1
            fills.append(fill)
            st.recent.append(fill)
        if not fills:
            return None
        st.last_trade = fills[-1].price
        if is_buy:
            return self._event(st, now_ms, [], changes, fills)
        return self._event(st, now_ms, changes, [], fills)

    def _level_update(self, st: _SymbolState, now_ms: int) -> MarketEvent:
        u = self._u
        is_bid = u() < 0.5
        side = st.bids if is_bid else st.asks
        best_bid, best_ask = st.bids.peekitem(-1)[0], st.asks.peekitem(0)[0]
        changes: list[LevelChange] = []
        roomy = len(side) > MIN_LEVELS
        if roomy and is_bid and best_bid > st.mid + 1:  # the mid fell through: cancel
            changes.append((best_bid, 0))
        elif roomy and not is_bid and best_ask < st.mid - 1:
            changes.append((best_ask, 0))
        else:
            depth = int(u() * u() * self.levels * 2)
            if is_bid:
                price = min(math.floor(st.mid) - 1, best_ask - 1) - depth
            else:
                price = max(math.ceil(st.mid) + 1, best_bid + 1) + depth
            remove = roomy and price in side and u() < 0.25 * len(side) / self.levels
            changes.append((price, 0 if remove else self._draw_qty(st.spec, u())))
        for price, qty in changes:
            if qty:
                side[price] = qty
            else:
                side.pop(price, None)
        while len(side) > self.levels + self.levels // 5:
            worst = side.peekitem(0 if is_bid else -1)[0]
            del side[worst]
            changes.append((worst, 0))
        return self._event(st, now_ms, changes if is_bid else [], [] if is_bid else changes, [])
