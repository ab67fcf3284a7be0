"""Coinbase Advanced Trade ``POST /api/v3/brokerage/orders/edit`` end to end on the
simulator (real HTTP, JWT-verified): a GTC limit order's new price and size through the
client and the router, an unknown outcome settled by a query (never a blind resend), and
edits Coinbase does not make refused naming why."""

from __future__ import annotations

from decimal import Decimal as D

import httpx
import pytest
from execution_helpers import make_request
from test_execution_coinbase import INSTRUMENT, Coinbase, client, http, venue

from algostream.execution.coinbase_orders import CoinbaseExecution
from algostream.execution.errors import AmendRejectedError, CoinbaseRejectedError
from algostream.execution.router import ExecutionRouter
from algostream.model import OrderRequest, OrderStatus, OrderType, Side, TimeInForce
from algostream.sim.trading import FaultKind

__all__ = ["http", "venue"]  # the fixtures, from the Coinbase order entry tests

S = OrderStatus


def router(h: httpx.AsyncClient, v: Coinbase) -> ExecutionRouter:
    return ExecutionRouter(coinbase=CoinbaseExecution(client(h, v)), venue="COINBASE")


def limit(
    coid: str = "e1", price: str = "99.00", tif: TimeInForce = TimeInForce.GTC
) -> OrderRequest:
    return make_request(coid, Side.BUY, "0.5", OrderType.LIMIT, limit=price, tif=tif,
                        instrument=INSTRUMENT)  # fmt: skip


async def test_an_edit_moves_price_and_size_and_a_crossing_price_fills(
    venue: Coinbase, http: httpx.AsyncClient
) -> None:
    r = router(http, venue)
    assert [e.status for e in await r.submit(limit(), 1)] == [S.ACCEPTED]
    events = await r.amend("e1", 2, price=D("99.50"), quantity=D("0.8"))
    assert [(e.status, e.limit_price, e.quantity) for e in events] == [
        (S.ACCEPTED, D("99.50"), D("0.8"))
    ]
    (engine_order,) = venue.engine.orders.values()
    assert (engine_order.price, engine_order.orig_qty) == (D("99.50"), D("0.8"))
    assert venue.engine.requests.count(("POST", "/api/v3/brokerage/orders/edit")) == 1
    events = await r.amend("e1", 3, price=D("100.02"))  # through the asks: it trades now
    assert [e.status for e in events] == [S.ACCEPTED, S.FILLED]
    assert sum(e.fill_qty for e in events) == D("0.8")


async def test_an_unknown_outcome_is_settled_by_a_query(
    venue: Coinbase, http: httpx.AsyncClient
) -> None:
    r = router(http, venue)
    await r.submit(limit(), 1)
    venue.engine.inject(FaultKind.ERROR_AFTER_PLACE)  # edited, then a 5xx
    events = await r.amend("e1", 2, price=D("98.00"))
    assert [(e.status, e.limit_price) for e in events] == [(S.ACCEPTED, D("98.00"))]
    assert venue.engine.requests.count(("POST", "/api/v3/brokerage/orders/edit")) == 1


async def test_edits_coinbase_does_not_make_are_refused_naming_why(
    venue: Coinbase, http: httpx.AsyncClient
) -> None:
    r = router(http, venue)
    await r.submit(limit("ioc", tif=TimeInForce.IOC), 1)  # IOC: gone at once anyway
    with pytest.raises(AmendRejectedError, match="is EXPIRED"):
        await r.amend("ioc", 2, price=D(98))
    market = make_request("m", Side.BUY, "0.1", instrument=INSTRUMENT)
    await r.submit(market, 3)
    with pytest.raises(AmendRejectedError, match="is FILLED"):
        await r.amend("m", 4, price=D(98))
    await r.submit(limit("below"), 5)
    venue.engine.orders[3].executed_qty = D("0.4")  # part of it has filled at the venue
    with pytest.raises(AmendRejectedError, match="CANNOT_EDIT_TO_BELOW_FILLED_SIZE"):
        await r.amend("below", 6, quantity=D("0.3"))
    tracked = r.tracked("below")
    assert tracked is not None and tracked.request.quantity == D("0.5")  # unchanged
    c = client(http, venue)
    with pytest.raises(CoinbaseRejectedError, match="ORDER_NOT_FOUND"):
        await c.edit_order("no-such-order", D(1), D(1))
    oid = tracked.venue_order_id
    assert oid is not None
    # refused as EDIT_REQUEST_EQUAL_TO_ORIGINAL_REQUEST, and the order is as asked: an
    # earlier attempt whose answer was lost did it, so that is a success
    same = await c.edit_order(oid, D("99.00"), D("0.5"))
    assert same["order_configuration"]["limit_limit_gtc"]["limit_price"] == "99.00000000"
