"""Paper broker: fills approved orders against the latest book, never at a price not offered.

Fill model (pure; time is passed in as int ns):

* ``submit`` with ``latency_ns == 0`` executes at once against the latest book of the
  instrument; otherwise the order is in flight until ``now + latency_ns`` and executes
  against the book that is current at its arrival (``advance`` / ``on_book_top``).
* MARKET orders walk the opposite side level by level. When depth runs out the remainder
  is **EXPIRED** (IOC semantics, as Binance reports for a market order it cannot fill);
  a market order on an instrument without a book is REJECTED.
* LIMIT orders fill immediately at the book's prices up to the limit. GTC remainders rest;
  IOC remainders expire; FOK expires with no fill unless the whole size is available.
* A resting order fills when a later book crosses it (buy: best ask <= limit) at the
  book's level prices (its limit or better), or when a trade prints strictly through its
  limit (buy: trade price < limit), at the limit price, for at most the trade's size.
* Liquidity the broker has taken is remembered per price level, so a second order (or a
  repeated identical book) cannot take the same displayed quantity twice. The memory of a
  level is dropped when a book no longer shows that price.
* Fees = ``fee_rate * price * qty`` per fill. A client order id is executed only once.
* A ``post_only`` LIMIT order that would take liquidity on arrival is REJECTED (as
  Binance's LIMIT_MAKER), never filled as a taker.
* Stop and take-profit orders are ACCEPTED and held, untriggered, until the market
  reaches ``stop_price`` (the last trade price, or the book's mid when a top arrives);
  then TRIGGERED, and they work as MARKET (``*_MARKET``) or LIMIT (``*_LIMIT``) orders.
  One that would trigger at once is REJECTED, as Binance does.

>>> from decimal import Decimal as D
>>> from algostream.model import BookTop, OrderRequest, OrderType, Side
>>> b = PaperBroker(fee_rate=D("0.001"))
>>> _ = b.on_book_top(BookTop(instrument="BINANCE:BTCUSDT", ts_event=1, ts_init=1,
...     record_id="t", lineage_id="u", bids=(("99", "1"),), asks=(("101", "1"),), update_id=1))
>>> req = OrderRequest(instrument="BINANCE:BTCUSDT", ts_event=2, ts_init=2, record_id="a",
...     lineage_id="p", account="paper", client_order_id="c1", strategy="s",
...     side=Side.BUY, order_type=OrderType.MARKET, quantity="1")
>>> [(e.status.value, e.fill_price, e.fee) for e in b.submit(req, now_ns=3)]
[('ACCEPTED', None, Decimal('0')), ('FILLED', Decimal('101'), Decimal('0.101'))]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from algostream.execution.errors import OrderStateError, UnknownOrderError
from algostream.execution.orders import ManagedOrder
from algostream.execution.slippage import BookSide, walk_levels
from algostream.model.enums import OrderType, Side, TimeInForce
from algostream.model.records import BookTop, OrderEvent, OrderRequest, TradeTick

_ZERO = Decimal(0)


@dataclass
class _Book:
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    taken_bids: dict[Decimal, Decimal]
    taken_asks: dict[Decimal, Decimal]

    def available(self, side: Side) -> list[tuple[Decimal, Decimal]]:
        """Levels a ``side`` order can trade against, minus what we already took."""
        levels, taken = (
            (self.asks, self.taken_asks) if side is Side.BUY else (self.bids, self.taken_bids)
        )
        out = [(p, q - taken.get(p, _ZERO)) for p, q in levels]
        return [(p, q) for p, q in out if q > _ZERO]

    def take(self, side: Side, price: Decimal, qty: Decimal) -> None:
        taken = self.taken_asks if side is Side.BUY else self.taken_bids
        taken[price] = taken.get(price, _ZERO) + qty


def _refresh_taken(taken: dict[Decimal, Decimal], levels: BookSide) -> dict[Decimal, Decimal]:
    if not taken:  # (most tops: nothing taken since the side last changed)
        return {}
    shown = dict(levels)
    return {p: min(q, shown[p]) for p, q in taken.items() if p in shown}


class PaperBroker:
    """Simulated venue for paper trading and backtests (see module docs)."""

    def __init__(
        self,
        fee_rate: Decimal,
        latency_ns: int = 0,
        *,
        venue: str = "PAPER",
        fee_currency: str = "",
        max_closed: int = 10_000,
    ) -> None:
        if fee_rate < _ZERO:
            raise OrderStateError(f"fee_rate {fee_rate}: must be >= 0")
        if latency_ns < 0:
            raise OrderStateError(f"latency_ns {latency_ns}: must be >= 0")
        self.fee_rate = fee_rate
        self.latency_ns = latency_ns
        self.venue = venue
        self.fee_currency = fee_currency
        self._max_closed = max_closed
        self._books: dict[str, _Book] = {}
        self._resting: dict[str, ManagedOrder] = {}
        self._pending: dict[str, tuple[ManagedOrder, int]] = {}
        self._closed: dict[str, ManagedOrder] = {}
        self._held: dict[str, ManagedOrder] = {}  # stop / take-profit, not triggered yet
        self._last_price: dict[str, Decimal] = {}

    # ------------------------------------------------------------------ market data

    def on_book_top(self, top: BookTop) -> list[OrderEvent]:
        """Keep ``top`` as the instrument's book; run arrivals, then fill crossed resting orders."""
        book = self._books.get(top.instrument)
        if not (
            book is None
            or self._pending
            or self._held
            or self._resting
            or book.taken_bids
            or book.taken_asks
        ):  # (most tops: nothing in flight, held or resting: the book is all that changes)
            book.bids, book.asks = tuple(top.bids), tuple(top.asks)
            return []
        events = self._run_pending(top.ts_event, instrument=top.instrument) if self._pending else []
        if book is None:
            self._books[top.instrument] = _Book(tuple(top.bids), tuple(top.asks), {}, {})
        else:  # (the instrument's book, updated in place: no object per top)
            book.bids, book.asks = tuple(top.bids), tuple(top.asks)
            if book.taken_bids:
                book.taken_bids = _refresh_taken(book.taken_bids, top.bids)
            if book.taken_asks:
                book.taken_asks = _refresh_taken(book.taken_asks, top.asks)
        if self._held:
            bids, asks = top.bids, top.asks
            if bids and asks:
                events += self._trigger(top.instrument, (bids[0][0] + asks[0][0]) / 2, top.ts_event)
        if self._resting:  # (most tops: nothing rests, nothing to sweep)
            for order in self._resting_for(top.instrument):
                events += self._fill_from_book(order, top.ts_event)
            self._sweep()
        return events

    def on_trade(self, trade: TradeTick) -> list[OrderEvent]:
        """Fill resting orders the trade printed strictly through, at their limit price."""
        events = (
            self._run_pending(trade.ts_event, instrument=trade.instrument) if self._pending else []
        )
        self._last_price[trade.instrument] = trade.price
        if self._held:
            events += self._trigger(trade.instrument, trade.price, trade.ts_event)
        if not self._resting and len(self._closed) <= self._max_closed:
            return events  # (most trades: nothing rests, nothing to sweep)
        left = trade.size
        for order in self._resting_for(trade.instrument):
            limit = order.request.limit_price
            if left <= _ZERO or limit is None:
                continue
            if (limit - trade.price) * order.request.side.sign > 0:
                qty = min(left, order.remaining)
                left -= qty
                events.append(self._fill(order, limit, qty, trade.ts_event))
        self._sweep()
        return events

    # ------------------------------------------------------------------ orders

    def submit(self, order: OrderRequest, now_ns: int) -> list[OrderEvent]:
        """Submit an approved order; returns its events (none yet while in flight)."""
        coid = order.client_order_id
        if (
            coid in self._resting
            or coid in self._pending
            or coid in self._closed
            or (coid in self._held)
        ):
            return []  # already executed: a replayed approval must not trade twice
        managed = ManagedOrder(order, venue=self.venue)
        if self.latency_ns:
            self._pending[coid] = (managed, now_ns + self.latency_ns)
            return []
        events = self._execute(managed, now_ns)
        self._sweep()
        return events

    def refuse(self, order: OrderRequest, reason: str, now_ns: int) -> list[OrderEvent]:
        """REJECTED without executing (a cancel-replace that cannot be done), remembered
        so that a replayed request is not answered twice; ``[]`` for an id known."""
        if self.get(order.client_order_id) is not None:
            return []
        managed = ManagedOrder(order, venue=self.venue)
        self._closed[order.client_order_id] = managed
        return [managed.reject(reason, now_ns)]

    def advance(self, now_ns: int) -> list[OrderEvent]:
        """Execute in-flight orders that have arrived by ``now_ns``."""
        events = self._run_pending(now_ns)
        self._sweep()
        return events

    def cancel(
        self, client_order_id: str, now_ns: int, reason: str = "cancelled by request"
    ) -> list[OrderEvent]:
        """Cancel an order. An in-flight order executes first (the cancel follows it)."""
        if client_order_id in self._pending:
            managed, arrival = self._pending.pop(client_order_id)
            events = self._execute(managed, arrival)
        else:
            events = []
        order = self._resting.get(client_order_id) or self._held.pop(client_order_id, None)
        if order is None:
            if client_order_id in self._closed:
                self._sweep()
                return events
            raise UnknownOrderError(client_order_id)
        events.append(order.cancel(reason, ts_event=now_ns + self.latency_ns))
        self._sweep()
        return events

    def get(self, client_order_id: str) -> ManagedOrder | None:
        """The order with this id (open, in flight or recently closed), if known."""
        pending = self._pending.get(client_order_id)
        if pending:
            return pending[0]
        return (
            self._resting.get(client_order_id)
            or self._held.get(client_order_id)
            or self._closed.get(client_order_id)
        )

    def open_orders(self, instrument: str | None = None) -> list[ManagedOrder]:
        """Resting and held (untriggered) orders, optionally of one instrument."""
        return [
            o
            for o in [*self._resting.values(), *self._held.values()]
            if instrument is None or o.request.instrument == instrument
        ]

    def all_orders(self) -> list[ManagedOrder]:
        """Every order known: in flight, resting, held and recently closed."""
        return [
            *(o for o, _ in self._pending.values()),
            *self._resting.values(),
            *self._held.values(),
            *self._closed.values(),
        ]

    # ------------------------------------------------------------------ execution

    def _run_pending(self, upto_ns: int, instrument: str | None = None) -> list[OrderEvent]:
        due = sorted(
            (
                (arr, coid)
                for coid, (o, arr) in self._pending.items()
                if arr <= upto_ns and (instrument is None or o.request.instrument == instrument)
            ),
        )
        events: list[OrderEvent] = []
        for arrival, coid in due:
            managed, _ = self._pending.pop(coid)
            events += self._execute(managed, arrival)
        return events

    def _execute(self, order: ManagedOrder, ts: int) -> list[OrderEvent]:
        req = order.request
        reason = self._invalid_reason(req)
        if reason:
            self._closed[req.client_order_id] = order
            return [order.reject(reason, ts_event=ts)]
        events = [order.accept(ts_event=ts, venue_order_id=f"paper-{req.client_order_id}")]
        if req.order_type.is_conditional:
            self._held[req.client_order_id] = order
            return events
        return events + self._work(order, ts)

    def _work(self, order: ManagedOrder, ts: int) -> list[OrderEvent]:
        """An accepted (or triggered) order trades: fills now, then rests or expires."""
        req = order.request
        events: list[OrderEvent] = []
        self._resting[req.client_order_id] = order
        book = self._books.get(req.instrument)
        if req.time_in_force is TimeInForce.FOK and req.order_type.has_limit_price:
            available = walk_levels(
                book.available(req.side) if book else [], req.side, req.quantity, req.limit_price
            )
            if sum((q for _, q in available), _ZERO) < req.quantity:
                events.append(order.expire("FOK: not enough liquidity within limit", ts))
                return events
        events += self._fill_from_book(order, ts)
        market = not req.order_type.has_limit_price
        if order.is_open and (market or req.time_in_force is not TimeInForce.GTC):
            what = "book depth exhausted" if market else "IOC"
            events.append(order.expire(f"remainder {order.remaining} expired: {what}", ts))
        return events

    def _trigger(self, instrument: str, price: Decimal, ts: int) -> list[OrderEvent]:
        """Held orders of ``instrument`` whose stop ``price`` reached: TRIGGERED, then work."""
        events: list[OrderEvent] = []
        for coid, order in list(self._held.items()):
            if order.request.instrument == instrument and _reached(order.request, price):
                del self._held[coid]
                stop = order.request.stop_price
                events.append(order.trigger(f"stop_price {stop} reached at {price}", ts))
                events += self._work(order, ts)
        self._sweep()
        return events

    def _invalid_reason(self, req: OrderRequest) -> str:
        kind = req.order_type
        if req.quantity <= _ZERO:
            return f"quantity {req.quantity}: must be > 0"
        if kind.has_limit_price and req.limit_price is None:
            return f"limit_price: required for a {kind.value} order"
        if kind is OrderType.MARKET and req.instrument not in self._books:
            return f"instrument {req.instrument}: no book yet, cannot fill a MARKET order"
        book = self._books.get(req.instrument)
        if req.post_only and book is not None and req.limit_price is not None:
            best = book.available(req.side)[:1]
            if best and (req.limit_price - best[0][0]) * req.side.sign >= 0:
                return (
                    f"post_only: {req.side.value} LIMIT at {req.limit_price} would take "
                    f"liquidity at {best[0][0]}"
                )
        if kind.is_conditional and req.stop_price is not None:
            ref = self._reference(req.instrument)
            if ref is not None and _reached(req, ref):
                return (
                    f"stop_price {req.stop_price}: a {kind.value} {req.side.value} would "
                    f"trigger at once (market at {ref})"
                )
        return ""

    def _reference(self, instrument: str) -> Decimal | None:
        last = self._last_price.get(instrument)
        if last is not None:
            return last
        book = self._books.get(instrument)
        if book is None or not book.bids or not book.asks:
            return None
        return (book.bids[0][0] + book.asks[0][0]) / 2

    def _fill_from_book(self, order: ManagedOrder, ts: int) -> list[OrderEvent]:
        book = self._books.get(order.request.instrument)
        if book is None or not order.is_open:
            return []
        side = order.request.side
        fills = walk_levels(book.available(side), side, order.remaining, order.request.limit_price)
        events = []
        for price, qty in fills:
            book.take(side, price, qty)
            events.append(self._fill(order, price, qty, ts))
        return events

    def _fill(self, order: ManagedOrder, price: Decimal, qty: Decimal, ts: int) -> OrderEvent:
        fee = self.fee_rate * price * qty
        return order.fill(price, qty, fee, ts_event=ts, fee_currency=self.fee_currency)

    def _resting_for(self, instrument: str) -> list[ManagedOrder]:
        return [
            o for o in self._resting.values() if o.request.instrument == instrument and o.is_open
        ]

    def _sweep(self) -> None:
        for coid in [c for c, o in self._resting.items() if not o.is_open]:
            self._closed[coid] = self._resting.pop(coid)
        while len(self._closed) > self._max_closed:
            del self._closed[next(iter(self._closed))]

    # ------------------------------------------------------------------ persistence

    def to_state(self) -> dict[str, Any]:
        """JSON-ready state of open, in-flight and recently closed orders (for a table).

        Books are not saved: they are rebuilt from the next ``book.top`` record.
        """
        return {
            "resting": [o.to_state() for o in self._resting.values()],
            "held": [o.to_state() for o in self._held.values()],
            "pending": [
                {"order": o.to_state(), "arrival_ns": a} for o, a in self._pending.values()
            ],
            "closed": [o.to_state() for o in self._closed.values()],
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Replace the order state with a :meth:`to_state` snapshot."""
        self._resting = _by_id(ManagedOrder.from_state(s) for s in state.get("resting", []))
        self._closed = _by_id(ManagedOrder.from_state(s) for s in state.get("closed", []))
        self._held = _by_id(ManagedOrder.from_state(s) for s in state.get("held", []))
        self._pending = {}
        for item in state.get("pending", []):
            order = ManagedOrder.from_state(item["order"])
            self._pending[order.client_order_id] = (order, int(item["arrival_ns"]))


def _reached(req: OrderRequest, price: Decimal) -> bool:
    """Whether ``price`` reaches the stop of a stop / take-profit request."""
    stop = req.stop_price
    if stop is None:
        return False
    return price >= stop if req.order_type.triggers_on_rise(req.side) else price <= stop


def _by_id(orders: Iterable[ManagedOrder]) -> dict[str, ManagedOrder]:
    return {o.client_order_id: o for o in orders}
