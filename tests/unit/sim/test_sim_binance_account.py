"""Orders, balances and the REST endpoints built from simulated trades, driven with
hand-signed requests against a running simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from trading_kit import BALANCES, TradingSim, call, signed, start_trading_sim

D = Decimal
NOW = 1_700_000_000_000


@pytest.fixture
async def venue() -> AsyncIterator[TradingSim]:
    ts = await start_trading_sim(now_ms=NOW)
    ts.server.exchange.emit_events(2000)
    yield ts
    await ts.server.stop()


async def api(venue: TradingSim, method: str, path: str, **params: Any) -> Any:
    stamped = [*((k, str(v)) for k, v in params.items()), ("timestamp", str(NOW))]
    async with httpx.AsyncClient(base_url=venue.url) as http:
        resp = await call(http, method, path, *signed(stamped))
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-MBX-USED-WEIGHT-1M"].isdigit()
    return resp.json()


def balances(account: dict[str, Any]) -> dict[str, tuple[D, D]]:
    return {b["asset"]: (D(b["free"]), D(b["locked"])) for b in account["balances"]}


def best(venue: TradingSim) -> tuple[D, D]:
    bids, asks = venue.server.exchange.market.book("BTCUSDT")
    return bids[0][0], asks[0][0]


async def test_resting_order_locks_then_a_fill_moves_free_and_locked(venue: TradingSim) -> None:
    _, ask = best(venue)
    order = await api(
        venue,
        "POST",
        "/api/v3/order",
        symbol="BTCUSDT",
        side="SELL",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.5",
        price=str(ask),
    )
    assert order["status"] == "NEW"
    held = balances(await api(venue, "GET", "/api/v3/account"))
    assert held["BTC"] == (BALANCES["BTC"] - D("0.5"), D("0.5"))
    venue.server.exchange.send_crossed("BTCUSDT")  # a bid above our ask: the order fills
    done = await api(venue, "GET", "/api/v3/order", symbol="BTCUSDT", orderId=order["orderId"])
    after = balances(await api(venue, "GET", "/api/v3/account"))
    filled, quote = D(done["executedQty"]), D(done["cummulativeQuoteQty"])
    assert done["status"] in ("FILLED", "PARTIALLY_FILLED") and filled > 0
    assert after["BTC"] == (BALANCES["BTC"] - D("0.5"), D("0.5") - filled)
    assert after["USDT"] == (BALANCES["USDT"] + quote * (1 - D("0.001")), D(0))
    trades = await api(venue, "GET", "/api/v3/myTrades", symbol="BTCUSDT")
    assert sum(D(t["qty"]) for t in trades) == filled and all(t["isMaker"] for t in trades)
    if done["status"] == "PARTIALLY_FILLED":
        await api(venue, "DELETE", "/api/v3/openOrders", symbol="BTCUSDT")
        assert balances(await api(venue, "GET", "/api/v3/account"))["BTC"][1] == 0


async def test_response_types_and_quote_order_qty(venue: TradingSim) -> None:
    ack = await api(
        venue,
        "POST",
        "/api/v3/order",
        symbol="BTCUSDT",
        side="BUY",
        type="MARKET",
        quantity="0.01",
        newOrderRespType="ACK",
    )
    assert set(ack) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    result = await api(
        venue,
        "POST",
        "/api/v3/order",
        symbol="BTCUSDT",
        side="BUY",
        type="MARKET",
        quantity="0.01",
        newOrderRespType="RESULT",
    )
    assert result["status"] == "FILLED" and "fills" not in result
    spent = await api(
        venue,
        "POST",
        "/api/v3/order",
        symbol="BTCUSDT",
        side="BUY",
        type="MARKET",
        quoteOrderQty="100",
    )
    cost = D(spent["cummulativeQuoteQty"])
    assert D("99") < cost <= D("100") and D(spent["origQuoteOrderQty"]) == 100
    assert D(spent["executedQty"]) == D(spent["origQty"]) > 0
    assert (
        await api(
            venue,
            "POST",
            "/api/v3/order/test",
            symbol="BTCUSDT",
            side="BUY",
            type="MARKET",
            quantity="0.01",
        )
        == {}
    )
    orders = await api(venue, "GET", "/api/v3/allOrders", symbol="BTCUSDT")
    assert [o["orderId"] for o in orders] == [ack["orderId"], result["orderId"], spent["orderId"]]


async def test_stop_orders_wait_for_their_trigger(venue: TradingSim) -> None:
    last = venue.server.exchange.market.last_trade_price("BTCUSDT")
    assert last is not None
    stop = await api(
        venue,
        "POST",
        "/api/v3/order",
        symbol="BTCUSDT",
        side="BUY",
        type="STOP_LOSS_LIMIT",
        timeInForce="GTC",
        quantity="0.01",
        price=str(last + 100),
        stopPrice=str(last + 50),
    )
    assert set(stop) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    held = await api(venue, "GET", "/api/v3/order", symbol="BTCUSDT", orderId=stop["orderId"])
    assert (held["status"], held["isWorking"], D(held["stopPrice"])) == ("NEW", False, last + 50)
    maker = await api(
        venue,
        "POST",
        "/api/v3/order",
        symbol="BTCUSDT",
        side="SELL",
        type="LIMIT_MAKER",
        quantity="0.01",
        price=str(best(venue)[1] + 1),
    )
    assert "status" not in maker  # LIMIT_MAKER answers ACK by default, as on Binance
    q = {"symbol": "BTCUSDT", "orderId": maker["orderId"]}
    assert (await api(venue, "GET", "/api/v3/order", **q))["status"] == "NEW"


async def test_public_market_data_comes_from_the_simulated_trades(venue: TradingSim) -> None:
    tape = venue.server.exchange.tape.trades("BTCUSDT")
    async with httpx.AsyncClient(base_url=venue.url) as http:
        q = {"symbol": "BTCUSDT"}
        trades = (await http.get("/api/v3/trades", params={**q, "limit": 5})).json()
        agg = (await http.get("/api/v3/aggTrades", params={**q, "limit": 5})).json()
        bars = (await http.get("/api/v3/klines", params={**q, "interval": "1d"})).json()
        ticker = (await http.get("/api/v3/ticker/24hr", params=q)).json()
        price = (await http.get("/api/v3/ticker/price")).json()
        book = (await http.get("/api/v3/ticker/bookTicker", params=q)).json()
        avg = (await http.get("/api/v3/avgPrice", params=q)).json()
        weights = [
            int((await http.get(p, params=q)).headers["X-MBX-USED-WEIGHT-1M"])
            for p in ("/api/v3/ping", "/api/v3/depth", "/api/v3/ticker/24hr")
        ]
    assert [t["id"] for t in trades] == [t.trade_id for t in tape[-5:]]
    assert [a["a"] for a in agg] == [t.trade_id for t in tape[-5:]]
    assert len(bars) == 1 and bars[0][8] == len(tape)  # one day: every trade, counted
    assert D(bars[0][5]) == sum(t.qty for t in tape) == D(ticker["volume"])
    assert (D(bars[0][2]), D(bars[0][3])) == (
        max(t.price for t in tape),
        min(t.price for t in tape),
    )
    assert D(ticker["lastPrice"]) == tape[-1].price and ticker["count"] == len(tape)
    assert {p["symbol"] for p in price} == {"BTCUSDT", "ETHUSDT"}
    assert (D(book["bidPrice"]), D(book["askPrice"])) == best(venue)
    assert D(avg["price"]) > 0 and avg["mins"] == 5
    assert weights[1] - weights[0] == 5 and weights[2] - weights[1] == 2  # documented weights
