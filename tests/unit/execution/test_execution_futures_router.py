"""The execution router on USDⓈ-M perpetuals: the futures paper broker behind it (shorts,
refusals as REJECTED events, funding, state that survives a restart), and live orders on
the simulator's signed ``/fapi/v1/order`` (reduce-only sent, the venue's refusal kept,
positions reconciled on start)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import pytest
from execution_helpers import (
    FakeClock,
    StaticBook,
    levels,
    make_top,
    usdm_sim_client,
)

from algostream.config import load_settings
from algostream.execution.futures_venue import (
    paper_futures,
    positions_from_fills,
    reconcile_positions_on_start,
)
from algostream.execution.paper import PaperBroker
from algostream.execution.router import ExecutionRouter
from algostream.execution.usdm_client import UsdmRestClient
from algostream.model import MarkPrice, OrderRequest, OrderStatus, OrderType, Side

PERP = "BINANCE_USDM:BTCUSDT"
SETTINGS = load_settings(
    env={
        "ALGOSTREAM__MARKET_DATA__EXCHANGE": "binance_usdm",
        "ALGOSTREAM__MARKET_DATA__SYMBOLS": '["BTCUSDT"]',
        "ALGOSTREAM__RISK__STARTING_EQUITY": "10000",
        "ALGOSTREAM__RISK__LEVERAGE": "10",
    }
)


def order(coid: str, side: Side, qty: str, **kw: Any) -> OrderRequest:
    return OrderRequest(
        instrument=PERP, ts_event=1, ts_init=1, record_id=f"a-{coid}", lineage_id="p",
        account="paper", client_order_id=coid, strategy="s", side=side,
        order_type=OrderType.MARKET, quantity=D(qty), **kw,
    )  # fmt: skip


def mark(ts: int, next_funding: int, rate: str) -> MarkPrice:
    return MarkPrice(instrument=PERP, ts_event=ts, ts_init=ts, record_id=f"m{ts}",
                     lineage_id="r", mark_price=D("30000"), index_price=D("30000"),
                     funding_rate=D(rate), next_funding_ns=next_funding)  # fmt: skip


def paper_router(saved: dict[str, Any] | None = None) -> ExecutionRouter:
    futures = paper_futures(PaperBroker(fee_rate=D("0")), SETTINGS, saved)
    router = ExecutionRouter(futures=futures)
    router.on_book_top(make_top(levels(("29999.5", "5")), levels(("30000.5", "5")), 1,
                                instrument=PERP))  # fmt: skip
    return router


async def test_paper_futures_short_funding_and_state_across_a_restart() -> None:
    router = paper_router()
    events = await router.submit(order("s1", Side.SELL, "0.1"), 2)
    assert events[-1].status is OrderStatus.FILLED
    futures = router.futures
    assert futures is not None and futures.account.positions[PERP].qty == D("-0.1")
    assert futures.account.positions[PERP].leverage == 10  # risk.leverage
    router.on_mark_price(mark(10, 100, "0.001"))
    [paid] = router.on_mark_price(mark(100, 200, "0.001"))
    assert paid.amount == D("3.0")  # a short receives 0.1 * 30000 * 0.1 %
    again = paper_router(futures.to_state())
    assert again.futures is not None
    assert again.futures.account.positions[PERP].qty == D("-0.1")
    assert again.futures.funding_paid == D("3.0")
    assert again.on_mark_price(mark(101, 200, "0.001")) == []  # that time is settled
    refused = await again.submit(order("r1", Side.SELL, "0.1", reduce_only=True), 3)
    assert refused[-1].status is OrderStatus.REJECTED
    assert "REDUCE_ONLY_WOULD_INCREASE" in (refused[-1].reason or "")


@pytest.fixture
async def live() -> AsyncIterator[tuple[ExecutionRouter, UsdmRestClient]]:
    clock = FakeClock()
    book = StaticBook(bids=levels(("30000.0", "2")), asks=levels(("30000.5", "2")))
    async with usdm_sim_client(book, clock) as (_, client):
        yield ExecutionRouter(binance=client, venue="BINANCE_USDM"), client


async def test_live_futures_orders_and_positions_reconciled_on_start(
    live: tuple[ExecutionRouter, UsdmRestClient],
) -> None:
    router, client = live
    events = await router.submit(order("s1", Side.SELL, "0.1"), 2)
    assert events[-1].status is OrderStatus.FILLED and events[-1].fill_qty == D("0.1")
    refused = await router.submit(order("r1", Side.SELL, "0.1", reduce_only=True), 3)
    assert refused[-1].status is OrderStatus.REJECTED
    assert "-2022" in (refused[-1].reason or "")  # sent reduceOnly; the venue's refusal
    # on start: the fills on orders.events make the same short as the venue holds
    assert positions_from_fills(SETTINGS, events).positions[PERP].qty == D("-0.1")
    assert await reconcile_positions_on_start(client, SETTINGS, events) == []
    [diff] = await reconcile_positions_on_start(client, SETTINGS, [])  # a lost fill
    assert (diff.instrument, diff.local, diff.venue) == (PERP, D(0), D("-0.1"))
