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
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from tests.kafka_kit import decoded, produce, read_until

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


def mentions(coid: str):  # type: ignore[no-untyped-def]
    """A ``read_until`` check: some record names ``coid``."""

    def done(msgs) -> bool:  # type: ignore[no-untyped-def]
        return any(coid.encode() in m.value for m in msgs)

    return done


def has_event(coid: str, status: OrderStatus):  # type: ignore[no-untyped-def]
    """A ``read_until`` check: ``orders.events`` holds ``coid`` in ``status``."""

    def done(msgs) -> bool:  # type: ignore[no-untyped-def]
        evs = decoded(msgs, OrderEvent)
        return any(e.client_order_id == coid and e.status is status for e in evs)  # type: ignore[attr-defined]

    return done


async def trading_worker_approving(s, supervisor, make, prefix: str):  # type: ignore[no-untyped-def]
    """Start a trading worker, give it a book (100.00 / 101.00), and propose ``make(n)``
    (client order id ``<prefix>-<n>``) until the gate, which needs the book first,
    approves one: returns (the worker, n, the approved request)."""
    worker = supervisor.start(
        "trading", "worker", "trading", "--web-port", "0", "--metrics-port", "0",
        env={"ALGOSTREAM__RISK__MAX_ORDER_AGE_MS": "120000"},
    )  # fmt: skip
    await produce(s, "book.top", [book_top(1)])
    deadline, n, approved = time.monotonic() + 90, 0, []
    while not approved and time.monotonic() < deadline:
        n += 1
        coid = f"{prefix}-{n}"
        await produce(s, "orders.proposed", [make(n)])
        ok = no = []
        while not (mentions(coid)(ok) or mentions(coid)(no)) and time.monotonic() < deadline:
            ok = await read_until(s, "orders.approved", mentions(coid), timeout_s=1)
            no = await read_until(s, "orders.rejected", mentions(coid), timeout_s=1)
        approved = [r for r in decoded(ok, OrderRequest) if r.client_order_id == coid]  # type: ignore[attr-defined]
        assert worker.alive, supervisor.tail("trading")
    assert approved, supervisor.tail("trading")
    return worker, n, approved[0]
