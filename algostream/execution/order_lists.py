"""OCO and bracket orders, and cancel-replace, emulated over the paper broker.

The paper broker (and so backtests) knows single orders; these are built from them:

* **OCO** (one cancels the other): two orders; as soon as one of them fills, even
  partially, the other is cancelled (Binance's rule for its OCO lists), with a reason
  naming the leg that filled.
* **Bracket**: an entry order and two exits staged behind it, a take-profit LIMIT and a
  stop-loss STOP_MARKET on the opposite side. When the entry has filled, the exits are
  submitted for the filled quantity as an OCO; if the entry ends with nothing filled
  (cancelled, expired, rejected) the exits are dropped. Cancelling the list cancels
  whatever of it is open.
* **Cancel-replace**: cancel an open order, then submit its replacement; when the old one
  can no longer be cancelled (filled, or gone) the replacement is REJECTED naming why,
  never placed beside it (Binance's ``STOP_ON_FAILURE``).

Every leg has its own lifecycle on ``orders.events``; legs' client order ids are derived
from the list id (``<list>-e``, ``<list>-tp``, ``<list>-sl``).

>>> from decimal import Decimal as D
>>> from algostream.execution.paper import PaperBroker
>>> lists = OrderLists(PaperBroker(fee_rate=D(0)))
>>> lists.open_lists()
[]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from algostream.execution.errors import ExecutionError, UnknownOrderError
from algostream.execution.orders import ManagedOrder
from algostream.execution.paper import PaperBroker
from algostream.model.enums import OrderStatus, OrderType, Side
from algostream.model.records import BookTop, OrderEvent, OrderRequest, TradeTick

_ZERO = Decimal(0)


@dataclass
class OrderList:
    """One OCO or bracket: its legs' client order ids and what is staged."""

    list_id: str
    kind: str  # "OCO" or "BRACKET"
    legs: list[str] = field(default_factory=list)  # the OCO pair once working
    entry: str | None = None
    staged: tuple[OrderRequest, OrderRequest] | None = None  # bracket exits, pre-entry
    done: bool = False


def leg(
    entry: OrderRequest, suffix: str, order_type: OrderType, side: Side, **fields: object
) -> OrderRequest:
    """An exit leg derived from ``entry`` (same instrument, account, strategy and
    lineage; reduce-only)."""
    coid = f"{entry.client_order_id}-{suffix}"
    if len(coid) > 36:
        raise ExecutionError(f"client_order_id {coid!r}: over 36 characters; use a shorter id")
    data = entry.model_dump() | {
        "client_order_id": coid,
        "record_id": f"{entry.record_id}-{suffix}",
        "order_type": order_type,
        "side": side,
        "limit_price": None,
        "stop_price": None,
        "post_only": False,
        "reduce_only": True,  # an exit only closes what the entry opened
    }
    return OrderRequest.model_validate(data | fields)


class OrderLists:
    """OCO / bracket / cancel-replace over a :class:`PaperBroker` (see the module docs).

    Use it in place of the broker for market data (:meth:`on_book_top`,
    :meth:`on_trade`), so the lists see every fill as it happens."""

    def __init__(self, broker: PaperBroker) -> None:
        self.broker = broker
        self._lists: dict[str, OrderList] = {}
        self._by_order: dict[str, str] = {}

    def open_lists(self) -> list[OrderList]:
        """The lists not finished yet."""
        return [x for x in self._lists.values() if not x.done]

    # ------------------------------------------------------------------ submit

    def submit_oco(
        self, list_id: str, a: OrderRequest, b: OrderRequest, now_ns: int
    ) -> list[OrderEvent]:
        """Two orders of which the first to fill cancels the other."""
        self._new(list_id, "OCO")
        if a.instrument != b.instrument or a.side is not b.side:
            raise ExecutionError(
                f"OCO {list_id!r}: legs must share instrument and side "
                f"({a.instrument} {a.side.value} vs {b.instrument} {b.side.value})"
            )
        olist = self._lists[list_id]
        olist.legs = [a.client_order_id, b.client_order_id]
        for coid in olist.legs:
            self._by_order[coid] = list_id
        events = self.broker.submit(a, now_ns) + self.broker.submit(b, now_ns)
        return events + self._follow(events, now_ns)

    def submit_bracket(
        self,
        entry: OrderRequest,
        take_profit: Decimal,
        stop_loss: Decimal,
        now_ns: int,
    ) -> list[OrderEvent]:
        """An entry with a take-profit LIMIT and a stop-loss STOP_MARKET staged behind it
        (list id = the entry's client order id). Prices must bracket the entry's side:
        a long's take-profit above its stop-loss, a short's below."""
        list_id = entry.client_order_id
        if (take_profit - stop_loss) * entry.side.sign <= 0:
            raise ExecutionError(
                f"bracket {list_id!r}: take_profit={take_profit} and stop_loss={stop_loss} "
                f"do not bracket a {entry.side.value} entry"
            )
        self._new(list_id, "BRACKET")
        exit_side = entry.side.opposite()
        tp = leg(entry, "tp", OrderType.LIMIT, exit_side, limit_price=take_profit)
        sl = leg(entry, "sl", OrderType.STOP_MARKET, exit_side, stop_price=stop_loss)
        olist = self._lists[list_id]
        olist.entry, olist.staged = list_id, (tp, sl)
        self._by_order[list_id] = list_id
        events = self.broker.submit(entry, now_ns)
        return events + self._follow(events, now_ns)

    def cancel_list(
        self, list_id: str, now_ns: int, reason: str = "list cancelled"
    ) -> list[OrderEvent]:
        """Cancel every open order of a list; staged exits are dropped."""
        olist = self._lists.get(list_id)
        if olist is None:
            raise UnknownOrderError(list_id)
        olist.staged, olist.done = None, True
        events: list[OrderEvent] = []
        for coid in [olist.entry, *olist.legs]:
            order = self.broker.get(coid) if coid else None
            if order is not None and order.is_open:
                events += self.broker.cancel(coid, now_ns, reason)  # type: ignore[arg-type]
        return events

    def cancel_replace(
        self, client_order_id: str, replacement: OrderRequest, now_ns: int
    ) -> list[OrderEvent]:
        """Cancel an open order, then submit ``replacement``; if the old one cannot be
        cancelled the replacement is REJECTED naming why (never placed beside it)."""
        old = self.broker.get(client_order_id)
        if old is None or not old.is_open:
            state = "unknown" if old is None else old.status.value
            refused = ManagedOrder(replacement, venue=self.broker.venue)
            why = f"cancel-replace: {client_order_id!r} is {state}, not replaced"
            return [refused.reject(why, now_ns)]
        events = self.broker.cancel(
            client_order_id, now_ns, f"replaced by {replacement.client_order_id}"
        )
        if old.status is not OrderStatus.CANCELLED:  # an in-flight order filled first
            refused = ManagedOrder(replacement, venue=self.broker.venue)
            why = f"cancel-replace: {client_order_id!r} became {old.status.value} first"
            return [*events, refused.reject(why, now_ns)]
        new = self.broker.submit(replacement, now_ns)
        return events + new + self._follow(new, now_ns)

    # ------------------------------------------------------------------ market data

    def on_book_top(self, top: BookTop) -> list[OrderEvent]:
        """The broker's :meth:`~PaperBroker.on_book_top`, then the lists' reactions."""
        events = self.broker.on_book_top(top)
        return events + self._follow(events, top.ts_event)

    def on_trade(self, trade: TradeTick) -> list[OrderEvent]:
        """The broker's :meth:`~PaperBroker.on_trade`, then the lists' reactions."""
        events = self.broker.on_trade(trade)
        return events + self._follow(events, trade.ts_event)

    # ------------------------------------------------------------------ reactions

    def _new(self, list_id: str, kind: str) -> None:
        if list_id in self._lists:
            raise ExecutionError(f"order list {list_id!r}: exists already")
        self._lists[list_id] = OrderList(list_id, kind)

    def _follow(self, events: list[OrderEvent], now_ns: int) -> list[OrderEvent]:
        """Cancel OCO partners of filled legs; release bracket exits after the entry."""
        out: list[OrderEvent] = []
        pending = list(events)
        while pending:
            ev = pending.pop(0)
            list_id = self._by_order.get(ev.client_order_id)
            olist = self._lists.get(list_id) if list_id else None
            if olist is None or olist.done:
                continue
            more = self._react(olist, ev, now_ns)
            out += more
            pending += more
        return out

    def _react(self, olist: OrderList, ev: OrderEvent, now_ns: int) -> list[OrderEvent]:
        if ev.client_order_id == olist.entry and olist.staged is not None:
            return self._entry_moved(olist, ev, now_ns)
        if ev.client_order_id in olist.legs and ev.fill_qty > _ZERO:
            other = next(c for c in olist.legs if c != ev.client_order_id)
            olist.done = True
            order = self.broker.get(other)
            if order is not None and order.is_open:
                reason = f"OCO: {ev.client_order_id} filled"
                return self.broker.cancel(other, now_ns, reason)
        return []

    def _entry_moved(self, olist: OrderList, ev: OrderEvent, now_ns: int) -> list[OrderEvent]:
        if not ev.status.is_terminal:
            return []
        assert olist.staged is not None
        tp, sl = olist.staged
        olist.staged = None
        if ev.cum_qty <= _ZERO:  # nothing bought or sold: nothing to protect
            olist.done = True
            return []
        qty = {"quantity": ev.cum_qty}
        tp, sl = tp.model_copy(update=qty), sl.model_copy(update=qty)
        olist.legs = [tp.client_order_id, sl.client_order_id]
        for coid in olist.legs:
            self._by_order[coid] = olist.list_id
        return self.broker.submit(tp, now_ns) + self.broker.submit(sl, now_ns)
