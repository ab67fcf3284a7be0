"""OCO and bracket lists on live venues: what to place and what to cancel, from the events.

Pure (no I/O): :class:`ListEmulator` says which orders the execution stage must place or
cancel so that a list behaves as one; :class:`~algostream.execution.router.ExecutionRouter`
carries its actions out on the venue and feeds it the events that follow.

* **OCO**: on a venue with a native OCO (Binance spot, ``POST /api/v3/orderList/oco``)
  the pair is placed as one and the venue expires one leg when the other is activated;
  elsewhere (USD-M futures, Coinbase) both legs are placed as orders of their own, the
  stop-loss first, and as soon as one fills (even partly) or is refused, the other is
  cancelled here (or, not placed yet, never placed).
* **Bracket**: the entry is placed; when it has ended with something filled, its two
  exits (take-profit LIMIT, stop-loss STOP_MARKET, reduce-only, for the filled quantity)
  are placed as an OCO (native or emulated, as above). An entry that ends with nothing
  filled drops them.

Legs are ``<list>-tp`` / ``<list>-sl`` with ``list_id`` = the list's client order id,
so after a restart :meth:`ListEmulator.recover` rebuilds every list from the orders the
topics and the venue describe (:func:`~algostream.execution.reconcile.rebuild_local`
adds the legs), and names what was left half done: a filled entry without exits (place
them), an emulated OCO with one leg filled and the other open (cancel it).

>>> emu = ListEmulator(native_oco=False)
>>> emu.open_lists()
[]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from algostream.execution.order_lists import exits
from algostream.execution.orders import ManagedOrder
from algostream.model.enums import OrderStatus
from algostream.model.records import OrderEvent, OrderRequest

_ZERO = Decimal(0)


@dataclass(frozen=True)
class Place:
    """Place ``request``; ``oco`` = its exits as one native OCO (``request`` is the list
    request whose ``take_profit`` / ``stop_loss`` and side they come from)."""

    request: OrderRequest
    oco: tuple[OrderRequest, OrderRequest] | None = None


@dataclass(frozen=True)
class Cancel:
    """Cancel the open order ``client_order_id``."""

    client_order_id: str
    reason: str


Action = Place | Cancel


@dataclass
class LiveList:
    list_id: str
    entry: str | None = None
    staged: tuple[OrderRequest, OrderRequest] | None = None
    legs: list[str] = field(default_factory=list)
    native: bool = False
    done: bool = False


class ListEmulator:
    """See the module docstring. ``native_oco``: the venue places an OCO as one."""

    def __init__(self, *, native_oco: bool) -> None:
        self.native_oco = native_oco
        self._lists: dict[str, LiveList] = {}
        self._by_order: dict[str, str] = {}

    def open_lists(self) -> list[LiveList]:
        return [x for x in self._lists.values() if not x.done]

    def knows(self, list_id: str) -> bool:
        return list_id in self._lists

    # ------------------------------------------------------------------ new lists

    def on_submit(self, order: OrderRequest) -> list[Action]:
        """What to place for an approved list request (none for a list seen before)."""
        coid = order.client_order_id
        if order.order_list is None or coid in self._lists:
            return []
        olist = self._lists[coid] = LiveList(coid)
        if order.order_list == "BRACKET":
            olist.entry, olist.staged = coid, exits(order, order.side.opposite())
            self._by_order[coid] = coid
            return [Place(order)]
        return self._place_exits(olist, order, exits(order, order.side))

    def _place_exits(
        self, olist: LiveList, owner: OrderRequest, legs: tuple[OrderRequest, OrderRequest]
    ) -> list[Action]:
        olist.legs = [leg.client_order_id for leg in legs]
        olist.native = self.native_oco
        for coid in olist.legs:
            self._by_order[coid] = olist.list_id
        if self.native_oco:
            return [Place(owner, oco=legs)]
        # the stop-loss first: it protects at once, and a take-profit that fills as soon
        # as it is placed then cancels it (placed the other way round, the stop would be
        # sent for a position already closed)
        return [Place(legs[1]), Place(legs[0])]

    def still_wanted(self, action: Action) -> bool:
        """False for a leg whose list has ended meanwhile (the other leg filled)."""
        if isinstance(action, Cancel) or action.oco is not None:
            return True
        list_id = self._by_order.get(action.request.client_order_id)
        olist = self._lists.get(list_id) if list_id else None
        return not (olist is not None and olist.done and action.request.list_id is not None)

    # ------------------------------------------------------------------ reactions

    def on_events(
        self, events: Iterable[OrderEvent], lookup: Callable[[str], ManagedOrder | None]
    ) -> list[Action]:
        """The actions that follow from ``events`` (``lookup``: an order by its id)."""
        out: list[Action] = []
        for ev in events:
            list_id = self._by_order.get(ev.client_order_id)
            olist = self._lists.get(list_id) if list_id else None
            if olist is None or olist.done:
                continue
            if ev.client_order_id == olist.entry and olist.staged is not None:
                out += self._entry_moved(olist, ev)
            elif ev.client_order_id in olist.legs:
                out += self._leg_moved(olist, ev.client_order_id, ev.fill_qty, ev.status, lookup)
        return out

    def _entry_moved(self, olist: LiveList, ev: OrderEvent) -> list[Action]:
        if not ev.status.is_terminal or olist.staged is None:
            return []
        tp, sl = olist.staged
        olist.staged = None
        if ev.cum_qty <= _ZERO:  # nothing filled: nothing to protect
            olist.done = True
            return []
        qty = {"quantity": ev.cum_qty, "ts_init": ev.ts_init}
        legs = (tp.model_copy(update=qty), sl.model_copy(update=qty))
        owner = legs[0].model_copy(
            update={"client_order_id": olist.list_id, "side": legs[0].side}
        )  # the native OCO's list id: the entry's (its legs keep theirs)
        return self._place_exits(olist, owner, legs)

    def _leg_moved(
        self,
        olist: LiveList,
        coid: str,
        fill_qty: Decimal,
        status: OrderStatus,
        lookup: Callable[[str], ManagedOrder | None],
    ) -> list[Action]:
        ended = fill_qty > _ZERO or status in (OrderStatus.REJECTED, OrderStatus.EXPIRED)
        if not ended and not status.is_terminal:
            return []
        olist.done = True
        if olist.native:  # the venue cancels the other leg itself
            return []
        why = "filled" if fill_qty > _ZERO else status.value.lower()
        out: list[Action] = []
        for other in olist.legs:
            order = lookup(other)
            if other != coid and order is not None and order.is_open:
                out.append(Cancel(other, f"OCO: {coid} {why}"))
        return out

    # ------------------------------------------------------------------ restart

    def recover(self, orders: Mapping[str, ManagedOrder]) -> list[Action]:
        """Rebuild the lists from ``orders`` (every tracked order, legs included); the
        actions that finish what a restart interrupted."""
        self._lists.clear()
        self._by_order.clear()
        for coid, order in orders.items():
            req = order.request
            if req.order_list == "BRACKET":
                olist = self._lists.setdefault(coid, LiveList(coid))
                olist.entry = coid
                self._by_order[coid] = coid
                olist.staged = exits(req, req.side.opposite())
            elif req.list_id is not None:
                olist = self._lists.setdefault(req.list_id, LiveList(req.list_id))
                olist.legs.append(coid)
                olist.native = self.native_oco
                self._by_order[coid] = req.list_id
        out: list[Action] = []
        for olist in self._lists.values():
            entry = orders.get(olist.entry) if olist.entry else None
            if olist.legs:
                olist.staged = None
            elif entry is not None and not entry.is_open:  # ended; exits never placed
                olist.staged, staged = None, olist.staged
                if entry.cum_qty > _ZERO and staged is not None:
                    qty = {"quantity": entry.cum_qty}
                    legs = (staged[0].model_copy(update=qty), staged[1].model_copy(update=qty))
                    owner = legs[0].model_copy(update={"client_order_id": olist.list_id})
                    out += self._place_exits(olist, owner, legs)
                    continue
                olist.done = True
                continue
            if olist.staged is not None:
                continue  # the entry is still working
            legs = [orders[c] for c in olist.legs if c in orders]
            filled = [o for o in legs if o.cum_qty > _ZERO or o.status is OrderStatus.REJECTED]
            if filled or all(not o.is_open for o in legs):
                olist.done = True
                if not olist.native:
                    out += [
                        Cancel(o.client_order_id, f"OCO: {filled[0].client_order_id} filled")
                        for o in legs
                        if o.is_open and filled
                    ]
        return out
