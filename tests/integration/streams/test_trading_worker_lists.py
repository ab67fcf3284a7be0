"""Brackets through the trading worker (risk + paper execution) on the real broker, as a
real process: the gate approves the bracket as one order, the entry fills, its exits
rest with the list id on ``orders.events``, a book through the take-profit fills it and
cancels the stop-loss; a bracket with its stop-loss above the entry is refused naming it.
"""

from __future__ import annotations

import time
from decimal import Decimal

from algostream.model import BookTop, OrderEvent, OrderRejected, OrderRequest, OrderStatus
from tests.kafka_kit import decoded, produce, read_until
from tests.trading_kit import (
    INSTRUMENT,
    has_event,
    mentions,
    proposal,
    trading_worker_approving,
)


def bracket(n: int, tp: str, sl: str) -> OrderRequest:
    return proposal(n, prefix="bk").model_copy(
        update={"order_list": "BRACKET", "take_profit": Decimal(tp), "stop_loss": Decimal(sl)}
    )


async def test_a_bracket_through_the_trading_worker(provisioned, supervisor) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    worker, n, approved = await trading_worker_approving(
        s, supervisor, lambda n: bracket(n, "103", "98"), "bk"
    )
    coid = f"bk-{n}"
    assert approved.order_list == "BRACKET", supervisor.tail("trading")

    await read_until(s, "orders.events", has_event(f"{coid}-tp", OrderStatus.ACCEPTED), 60)
    now = time.time_ns()
    through = BookTop(
        instrument=INSTRUMENT, ts_event=now, ts_init=now, record_id="top-up", lineage_id="md",
        bids=(("104.00", "2"),), asks=(("105.00", "2"),), best_bid="104.00",
        best_ask="105.00", mid="104.50", update_id=2,
    )  # fmt: skip
    await produce(s, "book.top", [through])
    msgs = await read_until(s, "orders.events", has_event(f"{coid}-sl", OrderStatus.CANCELLED), 60)
    mine = [e for e in decoded(msgs, OrderEvent) if e.client_order_id.startswith(coid)]  # type: ignore[attr-defined]
    seen = [(e.client_order_id, e.status) for e in mine]  # type: ignore[attr-defined]
    assert seen == [
        (coid, OrderStatus.ACCEPTED), (coid, OrderStatus.FILLED),
        (f"{coid}-tp", OrderStatus.ACCEPTED), (f"{coid}-sl", OrderStatus.ACCEPTED),
        (f"{coid}-tp", OrderStatus.FILLED), (f"{coid}-sl", OrderStatus.CANCELLED),
    ], seen  # fmt: skip
    assert {e.list_id for e in mine} == {coid}  # type: ignore[attr-defined]
    assert mine[4].side.value == "SELL" and mine[4].fill_qty == Decimal("0.5")  # type: ignore[attr-defined]
    assert f"OCO: {coid}-tp filled" in mine[-1].reason  # type: ignore[attr-defined]

    await produce(s, "orders.proposed", [bracket(999, "110", "106")])  # stop above the entry
    no = await read_until(s, "orders.rejected", mentions("bk-999"), 60)
    [refused] = [r for r in decoded(no, OrderRejected) if r.client_order_id == "bk-999"]  # type: ignore[attr-defined]
    assert refused.reason == "ORDER_LIST" and "stop_loss=106" in refused.message  # type: ignore[attr-defined]
    assert worker.alive, supervisor.tail("trading")
