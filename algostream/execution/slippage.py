"""Slippage estimator: walk book levels to price an order of a given size, exactly.

Books are sequences of ``(price, qty)`` best first (e.g. ``BookTop.bids`` / ``.asks``).
A BUY walks the asks, a SELL the bids. ``slippage`` is the per-unit adverse difference
between the average fill price and the mid (buy: avg - mid, sell: mid - avg), so a
positive number is a cost; ``slippage_bps`` is that over the mid, in basis points.
``notional`` and the per-level fills are exact; the average is a Decimal division at
40 significant digits.

>>> from decimal import Decimal as D
>>> from algostream.model import Side
>>> est = estimate_fill(bids=[(D("99"), D("1"))], asks=[(D("101"), D("1")), (D("102"), D("3"))],
...                     side=Side.BUY, quantity=D("2"))
>>> (est.avg_price, est.worst_price, est.filled_qty, est.slippage, est.slippage_bps)
(Decimal('101.5'), Decimal('102'), Decimal('2'), Decimal('1.5'), Decimal('150.0'))
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from algostream.execution.errors import BookError
from algostream.model.enums import Side

BookSide = Sequence[tuple[Decimal, Decimal]]
_ZERO = Decimal(0)
_BPS = Decimal(10_000)
_CTX = decimal.Context(prec=40)


@dataclass(frozen=True)
class FillEstimate:
    """What walking the book would give. ``fills`` are the (price, qty) taken per level."""

    side: Side
    requested_qty: Decimal
    filled_qty: Decimal
    notional: Decimal
    avg_price: Decimal | None
    worst_price: Decimal | None
    mid: Decimal | None
    slippage: Decimal | None
    slippage_bps: Decimal | None
    fills: tuple[tuple[Decimal, Decimal], ...]

    @property
    def complete(self) -> bool:
        """True when the book had enough depth (within the limit) for the whole size."""
        return self.filled_qty == self.requested_qty


def mid_price(bids: BookSide, asks: BookSide) -> Decimal | None:
    """(best bid + best ask) / 2, or ``None`` when a side is empty."""
    if not bids or not asks:
        return None
    return (bids[0][0] + asks[0][0]) / 2


def check_book_side(levels: BookSide, ascending: bool, name: str) -> None:
    """Raise :class:`BookError` unless prices are > 0, qty >= 0, strictly sorted best first."""
    prev: Decimal | None = None
    for i, (price, qty) in enumerate(levels):
        if price <= _ZERO or qty < _ZERO:
            raise BookError(f"{name}[{i}] = ({price}, {qty}): price must be > 0 and qty >= 0")
        if prev is not None and (price <= prev if ascending else price >= prev):
            order = "ascending" if ascending else "descending"
            raise BookError(f"{name}[{i}] price {price} after {prev}: {name} must be {order}")
        prev = price


def walk_levels(
    levels: BookSide, side: Side, quantity: Decimal, limit_price: Decimal | None = None
) -> list[tuple[Decimal, Decimal]]:
    """Take up to ``quantity`` from ``levels`` (the side a ``side`` order trades against).

    Stops at the first level worse than ``limit_price``. Returns the (price, qty) taken.
    """
    taken: list[tuple[Decimal, Decimal]] = []
    left = quantity
    for price, qty in levels:
        if left <= _ZERO:
            break
        if limit_price is not None and (price - limit_price) * side.sign > 0:
            break
        take = min(left, qty)
        if take > _ZERO:
            taken.append((price, take))
            left -= take
    return taken


def estimate_fill(
    bids: BookSide,
    asks: BookSide,
    side: Side,
    quantity: Decimal,
    limit_price: Decimal | None = None,
) -> FillEstimate:
    """Price an order of ``quantity`` on ``side`` against the book (see module docs)."""
    if quantity <= _ZERO:
        raise BookError(f"quantity {quantity}: must be > 0")
    check_book_side(bids, ascending=False, name="bids")
    check_book_side(asks, ascending=True, name="asks")
    levels = asks if side is Side.BUY else bids
    fills = walk_levels(levels, side, quantity, limit_price)
    filled = sum((q for _, q in fills), _ZERO)
    notional = sum((p * q for p, q in fills), _ZERO)
    mid = mid_price(bids, asks)
    avg = _CTX.divide(notional, filled) if filled else None
    slip = (avg - mid) * side.sign if avg is not None and mid is not None else None
    bps = _CTX.divide(slip * _BPS, mid) if slip is not None and mid else None
    return FillEstimate(
        side=side,
        requested_qty=quantity,
        filled_qty=filled,
        notional=notional,
        avg_price=avg,
        worst_price=fills[-1][0] if fills else None,
        mid=mid,
        slippage=slip,
        slippage_bps=bps,
        fills=tuple(fills),
    )
