"""ExecutionRouter in paper mode and live against the simulated trading server."""

from __future__ import annotations

import random
from decimal import Decimal as D

import httpx
import pytest
from execution_helpers import API_KEY, API_SECRET, Venue, levels, make_request, make_top
from pydantic import SecretStr

from algostream.config import ExecutionConfig
from algostream.execution.errors import ExecutionError, OrderStatusUnknownError
from algostream.execution.router import ExecutionRouter
from algostream.model import OrderStatus, OrderType
from algostream.sim.trading import FaultKind

S = OrderStatus


def _live(http: httpx.AsyncClient, venue: Venue, attempts: int = 3) -> ExecutionRouter:
    config = ExecutionConfig(
        paper_trading=False,
        exchange_api_url=venue.url,
        api_key=SecretStr(API_KEY),
        api_secret=SecretStr(API_SECRET),
        retry_attempts=attempts,
        retry_delay_ms=10,
        rate_limit_per_second=1000,
        request_timeout_ms=2000,
    )
    return ExecutionRouter.from_config(
        config, http, clock_ms=venue.clock.now_ms, sleep=venue.clock.sleep, rng=random.Random(1)
    )


async def test_paper_mode_from_config_fills_against_fed_books() -> None:
    router = ExecutionRouter.from_config(ExecutionConfig(paper_trading=True, fee_rate=D("0.01")))
    assert router.paper_trading
    router.on_book_top(make_top(levels(("99", "1")), levels(("101", "1")), ts=5))
    events = await router.submit(make_request(qty="1"), now_ns=6)
    assert [(e.status, e.fill_price, e.fee) for e in events] == [
        (S.ACCEPTED, None, D(0)),
        (S.FILLED, D(101), D("1.01")),
    ]


async def test_live_mode_needs_credentials_and_http(http: httpx.AsyncClient) -> None:
    with pytest.raises(ExecutionError, match="http"):
        ExecutionRouter.from_config(ExecutionConfig(paper_trading=False))
    with pytest.raises(ExecutionError, match="api_key"):
        ExecutionRouter.from_config(ExecutionConfig(paper_trading=False), http)


async def test_live_market_order_becomes_lifecycle_events(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    router = _live(http, venue)
    events = await router.submit(make_request(qty="1.5", mid="100.005"), now_ns=42)
    assert [e.status for e in events] == [S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED]
    assert [(e.fill_price, e.fill_qty) for e in events[1:]] == [
        (D("100.01"), D(1)),
        (D("100.02"), D("0.5")),
    ]
    assert events[1].fee == D("0.001") and events[1].fee_currency == "BTC"
    assert events[1].slippage == D("0.005")
    assert all(e.venue == "BINANCE" and e.venue_order_id == "1" for e in events)
    assert all(e.ts_init == 42 and e.lineage_id == "approved-c1" for e in events)
    assert await router.submit(make_request(qty="1.5"), now_ns=43) == []  # replayed approval
    assert venue.sim.placements("c1") == 1


async def test_live_filter_failure_is_a_rejected_event(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    order = make_request(qty="1", order_type=OrderType.LIMIT, limit="100.001")
    (event,) = await _live(http, venue).submit(order, now_ns=1)
    assert event.status is S.REJECTED and "-1013" in event.reason
    assert "PRICE_FILTER" in event.reason


async def test_live_5xx_after_place_yields_events_once(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    venue.sim.inject(FaultKind.ERROR_AFTER_PLACE)
    events = await _live(http, venue).submit(make_request(qty="1"), now_ns=1)
    assert [e.status for e in events] == [S.ACCEPTED, S.FILLED]
    assert venue.sim.placements("c1") == 1


async def test_unknown_outcome_raises_and_refresh_catches_up(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    router = _live(http, venue, attempts=0)
    venue.sim.inject(FaultKind.ERROR_AFTER_PLACE)
    venue.sim.inject(FaultKind.ERROR_BEFORE)  # the follow-up query fails as well
    with pytest.raises(OrderStatusUnknownError):
        await router.submit(make_request(qty="1"), now_ns=1)
    tracked = router.tracked("c1")
    assert tracked is not None and tracked.status is S.NEW
    events = await router.refresh("c1", now_ns=2)
    assert [e.status for e in events] == [S.ACCEPTED, S.FILLED]
    assert venue.sim.placements("c1") == 1


async def test_resting_order_fill_and_cancel_via_refresh(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    router = _live(http, venue)
    rest = make_request(coid="r", qty="2", order_type=OrderType.LIMIT, limit="100.00")
    assert [e.status for e in await router.submit(rest, now_ns=1)] == [S.ACCEPTED]
    venue.book.asks = levels(("99.99", "1"), ("100.50", "9"))
    events = await router.refresh("r", now_ns=2)
    assert [(e.status, e.fill_qty, e.fill_price) for e in events] == [
        (S.PARTIALLY_FILLED, D(1), D("99.99"))
    ]
    events = await router.cancel("r", now_ns=3)
    assert [e.status for e in events] == [S.CANCELLED]
