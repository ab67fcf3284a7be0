"""Record builders and checks shared by the trading worker tests."""

from __future__ import annotations

import time
from collections import defaultdict
from decimal import Decimal

from algostream.model import (
    BookTop,
    OrderEvent,
    OrderRejected,
    OrderRequest,
    OrderType,
    Position,
    Side,
)
from tests.kafka_kit import decoded, read_until

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


def decisions(msgs_a, msgs_r) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    out: dict[str, set[str]] = defaultdict(set)
    for rec in decoded(msgs_a, OrderRequest):
        out[rec.client_order_id].add(rec.record_id)  # type: ignore[attr-defined]
    for rec in decoded(msgs_r, OrderRejected):
        out[rec.client_order_id].add(rec.record_id)  # type: ignore[attr-defined]
    return out


async def filled_once_and_counted(s, approved_ids: set[str], tail) -> None:  # type: ignore[no-untyped-def]
    """Every approved order filled exactly once (0.01 each), none other filled, and the
    last position reported equals the sum of the fills."""

    def fills_complete(msgs) -> bool:  # type: ignore[no-untyped-def]
        evs = decoded(msgs, OrderEvent)
        return approved_ids <= {e.client_order_id for e in evs if e.fill_qty > 0}  # type: ignore[attr-defined]

    events = decoded(await read_until(s, "orders.events", fills_complete, timeout_s=90), OrderEvent)
    fills: dict[str, list[OrderEvent]] = defaultdict(list)
    for ev in {e.record_id: e for e in events}.values():  # a re-sent record is one event
        if ev.fill_qty > 0:  # type: ignore[attr-defined]
            fills[ev.client_order_id].append(ev)  # type: ignore[attr-defined, arg-type]
    unfilled = approved_ids - set(fills)
    assert not unfilled and set(fills) <= approved_ids, (
        sorted(unfilled),
        [
            (e.client_order_id, e.status.value, e.reason)
            for e in events
            if e.client_order_id in unfilled
        ],  # type: ignore[attr-defined]
        tail(),
    )
    assert all(sum(e.fill_qty for e in f) == Decimal("0.01") for f in fills.values()), (
        "an order was executed twice"
    )
    net = sum(e.side.sign * e.fill_qty for f in fills.values() for e in f)

    def position_matches(msgs) -> bool:  # type: ignore[no-untyped-def]
        positions = decoded(msgs, Position)
        return bool(positions) and positions[-1].quantity == net  # type: ignore[attr-defined]

    positions = decoded(await read_until(s, "positions", position_matches, timeout_s=60), Position)
    assert positions[-1].quantity == net, (positions[-1], net, tail())  # type: ignore[attr-defined]
