"""Record builders shared by the trading worker tests."""

from __future__ import annotations

import time

from algostream.model import BookTop, OrderRequest, OrderType, Side

INSTRUMENT = "BINANCE:BTCUSDT"


def book_top(n: int, depth: str = "2") -> BookTop:
    """A 100.00 / 101.00 book with ``depth`` on each side."""
    now = time.time_ns()
    return BookTop(
        instrument=INSTRUMENT,
        ts_event=now,
        ts_init=now,
        record_id=f"top-{n}",
        lineage_id=f"md-{n}",
        bids=(("100.00", depth),),
        asks=(("101.00", depth),),
        best_bid="100.00",
        best_ask="101.00",
        mid="100.50",
        update_id=n,
    )


def proposal(
    n: int, *, side: Side = Side.BUY, quantity: str = "0.5", prefix: str = "coid"
) -> OrderRequest:
    """A MARKET proposal for the paper account with client order id ``<prefix>-<n>``."""
    now = time.time_ns()
    return OrderRequest(
        instrument=INSTRUMENT,
        ts_event=now,
        ts_init=now,
        record_id=f"prop-{n}",
        lineage_id=f"sig-{n}",
        account="paper",
        client_order_id=f"{prefix}-{n}",
        strategy="test",
        side=side,
        order_type=OrderType.MARKET,
        quantity=quantity,
    )
