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
  never placed beside it (Binance's ``STOP_ON_FAILURE``). A strategy's REPLACE request
  (``action``) is one: on ``orders.events`` the old order is CANCELLED (reason
  ``replaced by <new id>``) and the new one ACCEPTED under the request's client order id;
  a CANCEL request cancels its target (reason ``cancelled by request <id>``). A request
  whose target is no longer open is REJECTED naming it.

Every leg has its own lifecycle on ``orders.events`` with the list's id (``list_id``);
legs' client order ids are derived from it (``<list>-tp``, ``<list>-sl``). An approved
:class:`~algostream.model.records.OrderRequest` with ``order_list`` set is a list
(:meth:`OrderLists.submit`); the lists' state is rebuilt from the broker's orders (its
saved state), so a restarted worker carries on with the lists it had.

>>> from decimal import Decimal as D
>>> from algostream.execution.paper import PaperBroker
>>> lists = OrderLists(PaperBroker(fee_rate=D(0)))
>>> lists.open_lists()
[]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from algostream.execution.errors import ExecutionError, UnknownOrderError
from algostream.execution.paper import PaperBroker
from algostream.model.enums import OrderAction, OrderStatus, OrderType, Side
from algostream.model.records import BookTop, OrderEvent, OrderRequest, TradeTick

_ZERO = Decimal(0)


class Venue(Protocol):
    """What places the legs: the paper broker, or a futures paper broker over it (its
    account checks every leg: a reduce-only leg that would increase is REJECTED)."""

    def submit(self, order: OrderRequest, now_ns: int) -> list[OrderEvent]: ...
    def on_book_top(self, top: BookTop) -> list[OrderEvent]: ...
    def on_trade(self, trade: TradeTick) -> list[OrderEvent]: ...
    def advance(self, now_ns: int) -> list[OrderEvent]: ...


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
    lineage; reduce-only; ``list_id`` = the entry's client order id)."""
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
        "time_in_force": "GTC",
        "post_only": False,
        "reduce_only": True,  # an exit only closes what the entry opened
        "order_list": None,
        "take_profit": None,
        "stop_loss": None,
        "list_id": entry.client_order_id,
    }
    return OrderRequest.model_validate(data | fields)


def exits(order: OrderRequest, side: Side) -> tuple[OrderRequest, OrderRequest]:
    """The take-profit LIMIT and stop-loss STOP_MARKET legs of a list request."""
    if order.take_profit is None or order.stop_loss is None:
        raise ExecutionError(f"{order.client_order_id}: not an order list (no exits)")
    tp = leg(order, "tp", OrderType.LIMIT, side, limit_price=order.take_profit)
    sl = leg(order, "sl", OrderType.STOP_MARKET, side, stop_price=order.stop_loss)
    return tp, sl


class OrderLists:
    """OCO / bracket / cancel-replace over a :class:`PaperBroker` (see the module docs).

    Use it in place of the broker (:meth:`submit`, :meth:`on_book_top`,
    :meth:`on_trade`, :meth:`advance`), so the lists see every fill as it happens.
    ``venue``: what the legs are submitted to (default: the broker)."""

    def __init__(self, broker: PaperBroker, venue: Venue | None = None) -> None:
        self.broker = broker
        self.venue: Venue = broker if venue is None else venue
        self._lists: dict[str, OrderList] = {}
        self._by_order: dict[str, str] = {}
        self.recover()

    def open_lists(self) -> list[OrderList]:
        """The lists not finished yet."""
        return [x for x in self._lists.values() if not x.done]

    def recover(self) -> None:
        """Rebuild the lists from the broker's orders (after its state was loaded)."""
        self._lists.clear()
        self._by_order.clear()
        orders = {o.client_order_id: o for o in self.broker.all_orders()}
        for coid, order in orders.items():
            req = order.request
            if req.order_list == "BRACKET":
                olist = self._lists.setdefault(coid, OrderList(coid, "BRACKET"))
                olist.kind, olist.entry = "BRACKET", coid
                self._by_order[coid] = coid
                if order.is_open:
                    olist.staged = exits(req, req.side.opposite())
            elif req.list_id is not None:
                olist = self._lists.setdefault(req.list_id, OrderList(req.list_id, "OCO"))
                olist.legs.append(coid)
                self._by_order[coid] = req.list_id
        for olist in self._lists.values():
            legs = [orders[c] for c in olist.legs]
            olist.done = olist.staged is None and (
                not legs or any(o.cum_qty > _ZERO for o in legs) or all(not o.is_open for o in legs)
            )

    # ------------------------------------------------------------------ submit

    def submit(self, order: OrderRequest, now_ns: int) -> list[OrderEvent]:
        """An approved order: a list when ``order_list`` is set, else a plain order; a
        CANCEL / REPLACE request (``action``) cancels / cancel-replaces its target."""
        if order.action is not OrderAction.NEW:
            return self._amend(order, now_ns)
        if order.order_list is not None and order.client_order_id in self._lists:
            return []  # a replayed approval must not place the list twice
        if order.order_list == "BRACKET":
            assert order.take_profit is not None and order.stop_loss is not None
            return self.submit_bracket(order, order.take_profit, order.stop_loss, now_ns)
        if order.order_list == "OCO":
            tp, sl = exits(order, order.side)
            return self.submit_oco(order.client_order_id, tp, sl, now_ns)
        events = self.venue.submit(order, now_ns)
        return events + self._follow(events, now_ns)

    def _amend(self, order: OrderRequest, now_ns: int) -> list[OrderEvent]:
        """A CANCEL: the target CANCELLED (nothing when it is already); a REPLACE:
        :meth:`cancel_replace`, the replacement under the request's client order id. A
        request seen before changes nothing."""
        target, coid = order.target_id, order.client_order_id
        assert target is not None
        if self.broker.get(coid) is not None:
            return []  # a replayed REPLACE (or a refused CANCEL)
        if order.action is OrderAction.REPLACE:
            return self.cancel_replace(target, order, now_ns)
        olist = self._lists.get(target)
        if olist is not None:  # an OCO or a bracket: every open order of it
            return [] if olist.done else self.cancel_list(target, now_ns, f"cancelled by {coid}")
        old = self.broker.get(target)
        if old is not None and old.status is OrderStatus.CANCELLED:
            return []  # cancelled already (a replayed CANCEL)
        if old is None or not old.is_open:
            state = "unknown" if old is None else old.status.value
            return self.broker.refuse(order, f"CANCEL of {target!r}: the order is {state}", now_ns)
        events = self.broker.cancel(target, now_ns, f"cancelled by request {coid}")
        return events + self._follow(events, now_ns)

    def submit_oco(
        self, list_id: str, a: OrderRequest, b: OrderRequest, now_ns: int
    ) -> list[OrderEvent]:
        """Two orders of which the first to fill cancels the other."""
        if a.instrument != b.instrument or a.side is not b.side:
            raise ExecutionError(
                f"OCO {list_id!r}: legs must share instrument and side "
                f"({a.instrument} {a.side.value} vs {b.instrument} {b.side.value})"
            )
        self._new(list_id, "OCO")
        olist = self._lists[list_id]
        olist.legs = [a.client_order_id, b.client_order_id]
        for coid in olist.legs:
            self._by_order[coid] = list_id
        events = self.venue.submit(a, now_ns)
        events += self._follow(events, now_ns)
        if not olist.done:
            more = self.venue.submit(b, now_ns)
            events += more + self._follow(more, now_ns)
        return events

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
        if entry.order_list != "BRACKET":  # given as arguments: carried by the entry too
            entry = entry.model_copy(
                update={"order_list": "BRACKET", "take_profit": take_profit, "stop_loss": stop_loss}
            )
        olist = self._lists[list_id]
        olist.entry, olist.staged = list_id, exits(entry, entry.side.opposite())
        self._by_order[list_id] = list_id
        events = self.venue.submit(entry, now_ns)
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
            why = f"cancel-replace: {client_order_id!r} is {state}, not replaced"
            return self.broker.refuse(replacement, why, now_ns)
        events = self.broker.cancel(
            client_order_id, now_ns, f"replaced by {replacement.client_order_id}"
        )
        if old.status is not OrderStatus.CANCELLED:  # an in-flight order filled first
            why = f"cancel-replace: {client_order_id!r} became {old.status.value} first"
            return [*events, *self.broker.refuse(replacement, why, now_ns)]
        new = self.venue.submit(replacement, now_ns)
        return events + new + self._follow(new, now_ns)

    # ------------------------------------------------------------------ market data

    def on_book_top(self, top: BookTop) -> list[OrderEvent]:
        """The venue's ``on_book_top``, then the lists' reactions."""
        events = self.venue.on_book_top(top)
        return self.follow(events, top.ts_event) if events else events

    def follow(self, events: list[OrderEvent], now_ns: int) -> list[OrderEvent]:
        """``events`` of the venue, then the lists' reactions to them (for a caller that
        called the venue itself: the backtest engine, on every book top)."""
        return events + self._follow(events, now_ns)

    def on_trade(self, trade: TradeTick) -> list[OrderEvent]:
        """The venue's ``on_trade``, then the lists' reactions."""
        events = self.venue.on_trade(trade)
        return events + self._follow(events, trade.ts_event)

    def advance(self, now_ns: int) -> list[OrderEvent]:
        """The venue's ``advance`` (in-flight orders arrive), then the lists' reactions."""
        events = self.venue.advance(now_ns)
        return events + self._follow(events, now_ns)

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
        if ev.client_order_id in olist.legs and (
            ev.fill_qty > _ZERO or ev.status in (OrderStatus.REJECTED, OrderStatus.EXPIRED)
        ):
            # a fill cancels the other leg; so does a refused leg (an OCO is both or none)
            olist.done = True
            events: list[OrderEvent] = []
            for other in olist.legs:
                order = self.broker.get(other)
                if other != ev.client_order_id and order is not None and order.is_open:
                    why = "filled" if ev.fill_qty > _ZERO else ev.status.value.lower()
                    events += self.broker.cancel(other, now_ns, f"OCO: {ev.client_order_id} {why}")
            return events
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
        qty = {"quantity": ev.cum_qty, "ts_init": now_ns}
        tp, sl = tp.model_copy(update=qty), sl.model_copy(update=qty)
        olist.legs = [tp.client_order_id, sl.client_order_id]
        for coid in olist.legs:
            self._by_order[coid] = olist.list_id
        events = self.venue.submit(tp, now_ns)
        return events + self.venue.submit(sl, now_ns)
