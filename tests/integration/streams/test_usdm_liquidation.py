"""The paper futures account liquidates in the trading worker, on the real broker: an
isolated 10x short of 1 BTCUSDT perpetual filled at 29999, then ``md.mark_price`` records
move the mark through its liquidation price. The worker's paper broker closes it at that
price with a ``LIQUIDATED`` fill on ``orders.events``, and the risk gate's ledger follows
(a flat ``Position`` and a ``PnL`` whose realised loss is the distance to it).

Liquidation price (Binance's first BTCUSDT bracket: maintenance 0.4 %, amount 0):
margin = 29999 / 10 = 2999.9; P = (-29999 - 2999.9) / (-1 - 0.004) = 32998.9 / 1.004."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from algostream.model import (
    BookTop,
    MarkPrice,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    PnL,
    Position,
    Side,
)
from algostream.supervisor import Supervisor
from tests.kafka_kit import decoded, produce, read_until

PERP = "BINANCE_USDM:BTCUSDT"
LIQ = Decimal("32998.9") / Decimal("1.004")


def mark(price: str) -> MarkPrice:
    now = time.time_ns()
    return MarkPrice(
        instrument=PERP, ts_event=now, ts_init=now, record_id=f"m-{price}", lineage_id="md",
        mark_price=Decimal(price), index_price=Decimal(price), funding_rate=Decimal(0),
        next_funding_ns=now + 8 * 3600 * 10**9,
    )  # fmt: skip


async def test_the_paper_futures_account_liquidates_a_short(
    provisioned: Any, supervisor: Supervisor
) -> None:
    s = provisioned
    supervisor.start(
        "trading", "worker", "trading", "--web-port", "0", "--metrics-port", "0",
        env={
            "ALGOSTREAM__MARKET_DATA__EXCHANGE": "binance_usdm",
            "ALGOSTREAM__MARKET_DATA__SYMBOLS": '["BTCUSDT"]',
            "ALGOSTREAM__RISK__LEVERAGE": "10",
            "ALGOSTREAM__RISK__MARGIN_MODE": "ISOLATED",
            "ALGOSTREAM__RISK__STOP_LOSS_PERCENT": "50",
            "ALGOSTREAM__RISK__TRAILING_STOP_PERCENT": "50",
            "ALGOSTREAM__EXECUTION__FEE_RATE": "0",
        },
    )  # fmt: skip
    now = time.time_ns()
    bids, asks = ((Decimal(29999), Decimal(5)),), ((Decimal(30001), Decimal(5)),)
    top = BookTop(
        instrument=PERP, ts_event=now, ts_init=now, record_id="liq-top", lineage_id="md",
        bids=bids, asks=asks, best_bid=Decimal(29999), best_ask=Decimal(30001),
        mid=Decimal(30000), update_id=1,
    )  # fmt: skip
    await produce(s, "book.top", [top])

    def filled(msgs: list[Any]) -> bool:
        return any(
            e.client_order_id.startswith("liq-short") and e.status is OrderStatus.FILLED  # type: ignore[attr-defined]
            for e in decoded(msgs, OrderEvent)
        )

    deadline = time.monotonic() + 90
    for attempt in range(100):  # until the worker is up with the top: earlier is refused
        now = time.time_ns()
        proposal = OrderRequest(
            instrument=PERP, ts_event=now, ts_init=now, record_id=f"liq-p-{attempt}",
            lineage_id="sig", account="paper", client_order_id=f"liq-short-{attempt}",
            strategy="test", side=Side.SELL, order_type=OrderType.MARKET, quantity=Decimal(1),
        )  # fmt: skip
        await produce(s, "orders.proposed", [proposal])
        if filled(await read_until(s, "orders.events", filled, 10)):
            break
        assert time.monotonic() < deadline, supervisor.tail("trading")

    def liquidated(msgs: list[Any]) -> bool:
        return any(e.reason.startswith("LIQUIDATED") for e in decoded(msgs, OrderEvent))  # type: ignore[attr-defined]

    await produce(s, "md.mark_price", [mark("31000")])  # 5.8 % above entry: kept
    deadline = time.monotonic() + 90
    while True:  # the tap may start reading after the first marks: send until it acts
        await produce(s, "md.mark_price", [mark("33000")])
        msgs = await read_until(s, "orders.events", liquidated, 10)
        if liquidated(msgs):
            break
        assert time.monotonic() < deadline, supervisor.tail("trading")
    (closed,) = [e for e in decoded(msgs, OrderEvent) if e.reason.startswith("LIQUIDATED")]  # type: ignore[attr-defined]
    assert (closed.side, closed.fill_qty, closed.fill_price) == (Side.BUY, 1, LIQ)  # type: ignore[attr-defined]
    assert closed.status is OrderStatus.FILLED and "mark 33000" in closed.reason  # type: ignore[attr-defined]

    def flat(msgs: list[Any]) -> bool:
        return any(
            p.instrument == PERP and p.quantity == 0 and p.lineage_id == closed.record_id  # type: ignore[attr-defined]
            for p in decoded(msgs, Position)
        )

    await read_until(s, "positions", flat, 60)
    pnls = decoded(await read_until(s, "pnl", lambda m: bool(m), 30), PnL)
    after = [p for p in pnls if p.lineage_id == closed.record_id]  # type: ignore[attr-defined]
    assert after and after[-1].realized_pnl == Decimal(29999) - LIQ  # type: ignore[attr-defined]
