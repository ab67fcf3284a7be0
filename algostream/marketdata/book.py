"""An L2 order book per instrument: exact Decimal prices in sorted dicts.

>>> from algostream.model import BookUpdate, BookUpdateKind
>>> book = OrderBook("BINANCE:BTCUSDT")
>>> book.apply(BookUpdate(instrument="BINANCE:BTCUSDT", ts_event=1, ts_init=1,
...     record_id="s", lineage_id="r", kind=BookUpdateKind.SNAPSHOT,
...     bids=(("99", "2"), ("98", "1")), asks=(("101", "1"),),
...     first_update_id=7, final_update_id=7))
>>> book.best_bid(), book.mid(), book.spread()
((Decimal('99'), Decimal('2')), Decimal('100'), Decimal('2'))
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from itertools import islice
from operator import neg
from typing import Any

from sortedcontainers import SortedDict

from algostream.marketdata.errors import BookStateError, short_repr
from algostream.model.enums import BookUpdateKind
from algostream.model.records import BookUpdate

Level = tuple[Decimal, Decimal]
_ZERO = Decimal(0)
_TWO = Decimal(2)


class OrderBook:
    """Price levels of one instrument. Quantities are absolute; zero removes a level.

    Bids iterate from the highest price, asks from the lowest. ``last_update_id`` is the
    final update id of the last applied update (Binance ``u``, Coinbase ``sequence_num``).
    """

    __slots__ = (
        "_ask_qty",
        "_ask_top",
        "_asks",
        "_bid_qty",
        "_bid_top",
        "_bids",
        "_top_n",
        "instrument",
        "last_update_id",
        "ts_event",
    )

    def __init__(self, instrument: str) -> None:
        self.instrument = instrument
        self._bids: SortedDict = SortedDict(neg)
        self._asks: SortedDict = SortedDict()
        self.last_update_id: int | None = None
        self.ts_event = 0
        #: the last :meth:`top` per side, until an update reaches into it (``None``: stale)
        self._top_n = 0
        self._bid_top: tuple[Level, ...] | None = None
        self._ask_top: tuple[Level, ...] | None = None
        #: each kept side's total quantity (``None``: not summed since the side was read)
        self._bid_qty: Decimal | None = None
        self._ask_qty: Decimal | None = None

    # ------------------------------------------------------------------ updates
    def apply(self, update: BookUpdate) -> None:
        """Apply a snapshot (replaces everything) or a delta (sets levels; 0 removes)."""
        if update.instrument != self.instrument:
            raise ValueError(
                f"update.instrument={update.instrument!r}: this book is {self.instrument!r}"
            )
        if update.kind is BookUpdateKind.SNAPSHOT:
            self._bids.clear()
            self._asks.clear()
            self._bid_top = self._ask_top = None
        if update.bids:
            _set_levels(self._bids, update.bids)
            if _reaches(self._bid_top, self._top_n, update.bids, bids=True):
                self._bid_top = None
        if update.asks:
            _set_levels(self._asks, update.asks)
            if _reaches(self._ask_top, self._top_n, update.asks, bids=False):
                self._ask_top = None
        self.last_update_id = update.final_update_id
        self.ts_event = update.ts_event

    def clear(self) -> None:
        """Forget every level (the book is out of sync)."""
        self._bids.clear()
        self._asks.clear()
        self._bid_top = self._ask_top = None
        self.last_update_id = None

    # ------------------------------------------------------------------ queries
    def best_bid(self) -> Level | None:
        """Highest bid ``(price, qty)`` or ``None``."""
        return self._bids.peekitem(0) if self._bids else None

    def best_ask(self) -> Level | None:
        """Lowest ask ``(price, qty)`` or ``None``."""
        return self._asks.peekitem(0) if self._asks else None

    def mid(self) -> Decimal | None:
        """``(best bid + best ask) / 2`` (exact), ``None`` if a side is empty."""
        return mid(self.best_bid(), self.best_ask())

    def spread(self) -> Decimal | None:
        """``best ask - best bid``, ``None`` if a side is empty (negative when crossed)."""
        return spread(self.best_bid(), self.best_ask())

    def top(self, n: int) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        """The best ``n`` levels per side: ``(bids best first, asks best first)``.

        Kept between calls: an update changes a side's top only when it sets or removes a
        level at or better than the ``n``-th (or the side has fewer than ``n``), so a side an
        update does not reach into is not read again (the book stage asks once per update).
        """
        if n != self._top_n:
            self._top_n, self._bid_top, self._ask_top = n, None, None
        bids, asks = self._bid_top, self._ask_top
        if bids is None:
            bids = self._bid_top = _first(self._bids, n)
            self._bid_qty = None
        if asks is None:
            asks = self._ask_top = _first(self._asks, n)
            self._ask_qty = None
        return bids, asks

    def top_quantities(self, n: int) -> tuple[Decimal, Decimal]:
        """The total quantity of each side's best ``n`` levels (:meth:`top`), summed again
        only for a side whose top changed."""
        bids, asks = self.top(n)
        if self._bid_qty is None:
            self._bid_qty = quantity(bids)
        if self._ask_qty is None:
            self._ask_qty = quantity(asks)
        return self._bid_qty, self._ask_qty

    def imbalance(self, n: int = 1) -> float | None:
        """``(bid qty - ask qty) / (bid qty + ask qty)`` over the best ``n`` levels, in
        [-1, 1]; ``None`` when both sides are empty."""
        return imbalance(*self.top(n))

    def microprice(self) -> Decimal | None:
        """Size-weighted mid: ``(bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty)``."""
        return microprice(self.best_bid(), self.best_ask())

    def is_crossed(self) -> bool:
        """True when the best bid is at or above the best ask (crossed or locked)."""
        return crossed(self.best_bid(), self.best_ask())

    def bids(self) -> list[Level]:
        """Every bid level, best first."""
        return list(self._bids.items())

    def asks(self) -> list[Level]:
        """Every ask level, best first."""
        return list(self._asks.items())

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)

    def level(self, side: str, price: Decimal) -> Decimal | None:
        """The quantity at ``price`` on ``side`` (``"b"`` bids, ``"a"`` asks), or ``None``."""
        got: Decimal | None = (self._bids if side == "b" else self._asks).get(price)
        return got

    def prices(self, side: str) -> list[Decimal]:
        """Every price on ``side`` (``"b"`` or ``"a"``), in no promised order."""
        return list((self._bids if side == "b" else self._asks).keys())

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """A JSON-able dict (decimal strings, exact) for a Faust table."""
        return {
            "instrument": self.instrument,
            "last_update_id": self.last_update_id,
            "ts_event": self.ts_event,
            "bids": [[str(p), str(q)] for p, q in self._bids.items()],
            "asks": [[str(p), str(q)] for p, q in self._asks.items()],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> OrderBook:
        """Rebuild a book from :meth:`to_state` output; :class:`BookStateError` if invalid."""
        try:
            book = cls(str(state["instrument"]))
            last = state["last_update_id"]
            if last is not None and (type(last) is not int or last < 0):
                raise BookStateError(
                    f"state 'last_update_id' = {short_repr(last)}: expected "
                    "a non-negative integer or null"
                )
            book.last_update_id = last
            book.ts_event = int(state["ts_event"])
            for key, side in (("bids", book._bids), ("asks", book._asks)):
                for price, qty in state[key]:
                    side[_state_decimal(price, key)] = _state_decimal(qty, key)
        except KeyError as exc:
            raise BookStateError(f"book state: key {exc} is missing") from None
        except (TypeError, ValueError) as exc:
            raise BookStateError(f"book state is malformed: {exc}") from None
        return book


def imbalance(bids: tuple[Level, ...], asks: tuple[Level, ...]) -> float | None:
    """``(bid qty - ask qty) / (bid qty + ask qty)`` over the levels given (a book's top:
    :meth:`OrderBook.imbalance`); ``None`` when both are empty."""
    return imbalance_of(quantity(bids), quantity(asks))


def quantity(levels: tuple[Level, ...]) -> Decimal:
    """The total quantity of ``levels``."""
    return sum([q for _, q in levels], _ZERO)


def imbalance_of(bid_qty: Decimal, ask_qty: Decimal) -> float | None:
    """:func:`imbalance` of the sides' total quantities."""
    total = bid_qty + ask_qty
    return None if total == 0 else float((bid_qty - ask_qty) / total)


def mid(bid: Level | None, ask: Level | None) -> Decimal | None:
    """``(bid + ask) / 2`` of a best bid and ask (:meth:`OrderBook.mid`)."""
    return None if bid is None or ask is None else (bid[0] + ask[0]) / _TWO


def spread(bid: Level | None, ask: Level | None) -> Decimal | None:
    """``ask - bid`` of a best bid and ask (:meth:`OrderBook.spread`)."""
    return None if bid is None or ask is None else ask[0] - bid[0]


def crossed(bid: Level | None, ask: Level | None) -> bool:
    """Whether a best bid is at or above a best ask (:meth:`OrderBook.is_crossed`)."""
    return bid is not None and ask is not None and bid[0] >= ask[0]


def microprice(bid: Level | None, ask: Level | None) -> Decimal | None:
    """Size-weighted mid of a best bid and ask (:meth:`OrderBook.microprice`)."""
    if bid is None or ask is None:
        return None
    return (bid[0] * ask[1] + ask[0] * bid[1]) / (bid[1] + ask[1])


def _reaches(
    top: tuple[Level, ...] | None,
    n: int,
    levels: tuple[Level, ...],
    *,
    bids: bool,
) -> bool:
    """Whether ``levels`` (just applied) can change a side's kept ``top`` of ``n`` levels:
    one sets or removes a price at or better than the last one kept (at or above it for
    ``bids``, at or below for asks), or the side had fewer than ``n`` (any new level joins
    the top). A plain loop per side: the hot path of every update."""
    if top is None:
        return False
    if len(top) < n:
        return True
    if not top:
        return False
    last = top[-1][0]
    if bids:
        for price, _ in levels:
            if price >= last:
                return True
    else:
        for price, _ in levels:
            if price <= last:
                return True
    return False


def _first(side: SortedDict, n: int) -> tuple[Level, ...]:
    """The first ``n`` levels of ``side`` in its order (``tuple(side.items()[:n])`` builds
    an index slice of the sorted list first: 1.5 against 1.0 µs for 10 levels)."""
    prices = list(islice(side, n))
    return tuple(zip(prices, map(side.__getitem__, prices), strict=True))


def _set_levels(side: SortedDict, levels: tuple[Level, ...]) -> None:
    for price, qty in levels:
        if qty:
            side[price] = qty
        else:
            side.pop(price, None)


def _state_decimal(text: Any, key: str) -> Decimal:
    try:
        value = Decimal(text) if type(text) is str else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value <= 0:
        raise BookStateError(
            f"book state '{key}' level value {short_repr(text)}: expected a positive decimal string"
        )
    return value
