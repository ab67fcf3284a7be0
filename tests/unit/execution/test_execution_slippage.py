"""Slippage estimator: hand-worked examples."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from execution_helpers import levels

from algostream.execution.errors import BookError
from algostream.execution.slippage import estimate_fill, mid_price
from algostream.model import Side

BIDS = levels(("99", "1"), ("98", "2"), ("95", "10"))
ASKS = levels(("101", "1"), ("102", "2"), ("105", "10"))


def test_buy_walks_asks() -> None:
    # 1 @ 101 + 2 @ 102 + 1 @ 105 = 410 for 4 -> avg 102.5; mid 100 -> 2.5 = 250 bps
    est = estimate_fill(BIDS, ASKS, Side.BUY, D("4"))
    assert est.fills == ((D(101), D(1)), (D(102), D(2)), (D(105), D(1)))
    assert (est.notional, est.avg_price, est.worst_price) == (D(410), D("102.5"), D(105))
    assert (est.mid, est.slippage, est.slippage_bps) == (D(100), D("2.5"), D(250))
    assert est.complete


def test_sell_walks_bids_and_slippage_is_positive_cost() -> None:
    # 1 @ 99 + 0.5 @ 98 = 148 for 1.5 -> avg 98.666..., cost vs mid 100 = 1.333...
    est = estimate_fill(BIDS, ASKS, Side.SELL, D("1.5"))
    assert est.notional == D(148) and est.worst_price == D(98)
    assert est.avg_price is not None and est.slippage is not None
    assert abs(est.avg_price - D(148) / D("1.5")) < D("1e-24")
    assert abs(est.slippage - (D(100) - D(148) / D("1.5"))) < D("1e-24")
    assert est.slippage > 0


def test_short_depth_fills_what_is_there() -> None:
    est = estimate_fill(BIDS, ASKS, Side.BUY, D(20))
    assert est.filled_qty == D(13) and not est.complete
    assert est.notional == D(101) + D(204) + D(1050)


def test_limit_stops_the_walk() -> None:
    est = estimate_fill(BIDS, ASKS, Side.BUY, D(5), limit_price=D("102"))
    assert est.filled_qty == D(3) and est.worst_price == D(102)
    sell = estimate_fill(BIDS, ASKS, Side.SELL, D(5), limit_price=D("99.5"))
    assert sell.filled_qty == D(0) and sell.avg_price is None and sell.slippage is None


def test_one_unit_at_best_ask_costs_half_the_spread() -> None:
    est = estimate_fill(BIDS, ASKS, Side.BUY, D(1))
    assert est.slippage == D(1) and est.slippage_bps == D(100)


def test_empty_side_has_no_mid() -> None:
    assert mid_price([], ASKS) is None
    est = estimate_fill([], ASKS, Side.BUY, D(1))
    assert est.avg_price == D(101) and est.mid is None and est.slippage_bps is None


@pytest.mark.parametrize(
    ("bids", "asks", "message"),
    [
        (levels(("98", "1"), ("99", "1")), ASKS, r"bids\[1\] price 99 after 98"),
        (BIDS, levels(("102", "1"), ("101", "1")), r"asks\[1\] price 101 after 102"),
        (
            BIDS,
            levels(
                ("0", "1"),
            ),
            r"asks\[0\] = \(0, 1\)",
        ),
    ],
)
def test_malformed_book_is_refused(bids: list, asks: list, message: str) -> None:
    with pytest.raises(BookError, match=message):
        estimate_fill(bids, asks, Side.BUY, D(1))


def test_non_positive_size_is_refused() -> None:
    with pytest.raises(BookError, match="quantity 0"):
        estimate_fill(BIDS, ASKS, Side.BUY, D(0))
