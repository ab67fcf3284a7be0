"""Binance client against the real simulated trading server (aiohttp on 127.0.0.1).

Each fault scenario asserts the server's ledger: the order was placed exactly once.
Sleeping is injected (a fake clock shared with the server), so backoffs cost no time.
"""

from __future__ import annotations

from decimal import Decimal as D

import httpx
import pytest
from execution_helpers import API_SECRET, FakeClock, Venue, levels, make_client

from algostream.execution.binance_client import NewOrder, sign
from algostream.execution.errors import (
    AuthError,
    OrderRejectedError,
    OrderStatusUnknownError,
    RateLimitedError,
)
from algostream.model import OrderType, Side, TimeInForce
from algostream.sim.trading import FaultKind

POST = ("POST", "/api/v3/order")
QUERY = ("GET", "/api/v3/order")


def test_signature_matches_binance_published_example() -> None:
    query = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
        "&recvWindow=5000&timestamp=1499827319559"
    )
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    assert sign(secret, query) == (
        "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    )


def _market(coid: str = "ord-1", qty: str = "1.5") -> NewOrder:
    return NewOrder("BTCUSDT", Side.BUY, OrderType.MARKET, D(qty), coid)


def _limit(coid: str, price: str, qty: str = "1", side: Side = Side.BUY) -> NewOrder:
    return NewOrder("BTCUSDT", side, OrderType.LIMIT, D(qty), coid, D(price), TimeInForce.GTC)


async def test_market_order_fills_against_the_book(venue: Venue, http: httpx.AsyncClient) -> None:
    client = make_client(http, venue)
    resp = await client.new_order(_market())
    assert resp["status"] == "FILLED" and resp["clientOrderId"] == "ord-1"
    fills = [(D(f["price"]), D(f["qty"])) for f in resp["fills"]]
    assert fills == [(D("100.01"), D("1")), (D("100.02"), D("0.5"))]
    assert venue.sim.placements("ord-1") == 1
    assert client.used_weight_1m >= 1


async def test_5xx_after_place_is_resolved_by_query_not_resubmit(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    venue.sim.inject(FaultKind.ERROR_AFTER_PLACE, status=503)
    resp = await make_client(http, venue).new_order(_market())
    assert resp["status"] == "FILLED"
    assert venue.sim.placements("ord-1") == 1 and venue.sim.duplicate_attempts == []
    assert venue.sim.requests.count(POST) == 1 and venue.sim.requests.count(QUERY) == 1


async def test_5xx_before_place_resubmits_after_the_venue_says_not_found(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    venue.sim.inject(FaultKind.ERROR_BEFORE)
    resp = await make_client(http, venue).new_order(_market())
    assert resp["status"] == "FILLED"
    assert venue.sim.placements("ord-1") == 1
    assert venue.sim.requests.count(POST) == 2 and venue.sim.requests.count(QUERY) == 1
    assert len(venue.clock.sleeps) == 1  # one backoff between the two submissions


async def test_timeout_after_place_is_resolved_by_query(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    venue.sim.inject(FaultKind.TIMEOUT)
    resp = await make_client(http, venue, timeout_s=0.3).new_order(_market())
    assert resp["status"] == "FILLED"
    assert venue.sim.placements("ord-1") == 1 and venue.sim.requests.count(POST) == 1


async def test_persistent_5xx_gives_up_after_bounded_attempts(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    venue.sim.inject(FaultKind.ERROR_BEFORE, count=50)
    with pytest.raises(OrderStatusUnknownError, match=r"'ord-1'.*reconcile"):
        await make_client(http, venue, attempts=2).new_order(_market())
    assert venue.sim.ledger == []
    # the 5xx after the one submission leaves its fate unknown; the query that would settle
    # it fails too (1 + retry_attempts tries), so the client stops rather than resubmit
    assert venue.sim.requests.count(POST) == 1
    assert venue.sim.requests.count(QUERY) == 3


async def test_persistent_5xx_after_place_never_places_twice(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    venue.sim.inject(FaultKind.ERROR_AFTER_PLACE, count=1)
    venue.sim.inject(FaultKind.ERROR_BEFORE, count=2)  # the first queries fail too
    resp = await make_client(http, venue, attempts=3).new_order(_market())
    assert resp["status"] == "FILLED" and venue.sim.placements("ord-1") == 1


async def test_429_honours_retry_after_then_places_once(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    venue.sim.inject(FaultKind.RATE_LIMIT, retry_after_s=3)
    resp = await make_client(http, venue).new_order(_market())
    assert resp["status"] == "FILLED" and venue.sim.placements("ord-1") == 1
    assert venue.clock.sleeps and venue.clock.sleeps[0] >= 3
    assert venue.sim.requests.count(POST) == 2  # no 418: the wait was honoured


async def test_persistent_429_raises_rate_limited_and_places_nothing(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    venue.sim.inject(FaultKind.RATE_LIMIT, count=20, retry_after_s=1)
    with pytest.raises(RateLimitedError) as info:
        await make_client(http, venue, attempts=2).new_order(_market())
    assert info.value.status == 429 and info.value.retry_after_s == 1
    assert venue.sim.ledger == [] and venue.sim.requests.count(POST) == 3


async def test_clock_skew_resyncs_offset_and_places_once(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    venue.sim.inject(FaultKind.CLOCK_SKEW, skew_ms=20_000)
    client = make_client(http, venue)
    resp = await client.new_order(_market())
    assert resp["status"] == "FILLED" and venue.sim.placements("ord-1") == 1
    assert client.time_offset_ms == 20_000
    assert ("GET", "/api/v3/time") in venue.sim.requests


async def test_filter_failure_is_a_clear_rejection_without_retry(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    client = make_client(http, venue)
    with pytest.raises(OrderRejectedError, match=r"-1013.*PRICE_FILTER"):
        await client.new_order(_limit("bad-tick", "100.005"))
    with pytest.raises(OrderRejectedError, match="LOT_SIZE"):
        await client.new_order(_limit("bad-lot", "100.00", qty="0.0005"))
    with pytest.raises(OrderRejectedError, match="NOTIONAL"):
        await client.new_order(_limit("too-small", "1.00", qty="0.001"))
    assert venue.sim.ledger == [] and venue.sim.requests.count(POST) == 3


async def test_insufficient_balance_is_rejected_with_2010(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    venue.sim.balances = {"USDT": D("50"), "BTC": D("0")}
    with pytest.raises(OrderRejectedError) as info:
        await make_client(http, venue).new_order(_market(qty="1"))
    assert info.value.code == -2010 and "insufficient balance" in info.value.message
    assert venue.sim.ledger == []


async def test_duplicate_client_order_id_returns_the_existing_order(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    client = make_client(http, venue)
    first = await client.new_order(_limit("dup", "90.00"))
    again = await client.new_order(_limit("dup", "90.00"))  # e.g. after a restart
    assert again["orderId"] == first["orderId"] and venue.sim.placements("dup") == 1
    assert venue.sim.duplicate_attempts == ["dup"]


async def test_bad_secret_is_an_auth_error_that_does_not_leak_secrets(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    wrong = "wrong-secret-value-123"
    client = make_client(http, venue, secret=wrong)
    with pytest.raises(AuthError) as info:
        await client.new_order(_market())
    assert info.value.code == -1022
    for text in (str(info.value), repr(info.value), repr(client)):
        assert wrong not in text and API_SECRET not in text
    assert venue.sim.ledger == []


async def test_query_cancel_open_orders_and_account(venue: Venue, http: httpx.AsyncClient) -> None:
    client = make_client(http, venue)
    await client.new_order(_limit("rest-1", "99.00"))
    assert [o["clientOrderId"] for o in await client.open_orders("BTCUSDT")] == ["rest-1"]
    assert (await client.query_order("BTCUSDT", "rest-1"))["status"] == "NEW"  # type: ignore[index]
    assert await client.query_order("BTCUSDT", "missing") is None
    cancelled = await client.cancel_order("BTCUSDT", "rest-1")
    assert cancelled["status"] == "CANCELED" and cancelled["origClientOrderId"] == "rest-1"
    assert await client.open_orders() == []
    assert (await client.account())["accountType"] == "SPOT"


async def test_resting_order_fills_when_the_book_crosses(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    client = make_client(http, venue)
    await client.new_order(_limit("rest-2", "100.00", qty="2"))
    venue.book.asks = levels(("99.90", "1"), ("99.95", "3"))
    order = await client.query_order("BTCUSDT", "rest-2")
    assert order is not None and order["status"] == "FILLED"
    assert D(order["cummulativeQuoteQty"]) == D("99.90") + D("99.95")


async def test_used_weight_limit_waits_for_the_next_minute(
    venue: Venue, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    client = make_client(http, venue, max_weight_1m=5)
    await client.account()  # weight 20 >= 5
    before = clock.now
    await client.server_time()
    assert clock.sleeps and (before + int(clock.sleeps[0] * 1000)) % 60_000 == 0


async def test_post_parameters_travel_signed_in_the_body_and_gets_in_the_query(
    venue: Venue,
) -> None:
    """As Binance's examples (and ccxt): the simulator checks the same signature rules."""
    seen: list[httpx.Request] = []

    async def capture(request: httpx.Request) -> None:
        seen.append(request)

    async with httpx.AsyncClient(event_hooks={"request": [capture]}) as http:
        client = make_client(http, venue)
        await client.new_order(_limit("body-1", "90.00"))
        await client.query_order("BTCUSDT", "body-1")
    post, get = seen
    body = post.content.decode()
    assert post.url.query == b"" and post.headers["Content-Type"].startswith(
        "application/x-www-form-urlencoded"
    )
    assert "newClientOrderId=body-1" in body and "&signature=" in body
    payload, signature = body.rsplit("&signature=", 1)
    assert signature == sign(API_SECRET, payload)
    assert get.content == b"" and b"origClientOrderId=body-1" in get.url.query
