"""python-binance (Client in a thread, and AsyncClient) against the simulator."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from binance.async_client import AsyncClient
from binance.client import Client
from binance.exceptions import BinanceAPIException
from conformance_kit import BALANCES, FEE, KEY, SECRET, Venue, running_venue

D = Decimal


def sync_session(venue: Venue) -> None:
    """The calls a python-binance user makes, with what the simulator must answer."""
    c = Client(KEY, SECRET, ping=False)
    c.API_URL = f"{venue.server.http_url}/api"
    try:
        c.ping()
        assert abs(c.get_server_time()["serverTime"] - venue.sim.server_time_ms()) < 5000
        assert c.get_symbol_info("BTCUSDT")["quoteAsset"] == "USDT"
        bid, ask = venue.best()
        book = c.get_order_book(symbol="BTCUSDT", limit=5)
        assert (D(book["bids"][0][0]), D(book["asks"][0][0])) == (bid, ask)
        assert D(c.get_orderbook_ticker(symbol="BTCUSDT")["askPrice"]) == ask
        last = venue.server.exchange.market.last_trade_price("BTCUSDT")
        assert D(c.get_ticker(symbol="BTCUSDT")["lastPrice"]) == last
        assert {t["symbol"] for t in c.get_all_tickers()} == {"BTCUSDT", "ETHUSDT"}
        assert len(c.get_recent_trades(symbol="BTCUSDT", limit=10)) == 10
        assert len(c.get_aggregate_trades(symbol="BTCUSDT", limit=10)) == 10
        assert c.get_klines(symbol="BTCUSDT", interval="1m")[-1][4] == f"{last:.8f}"
        assert D(c.get_avg_price(symbol="BTCUSDT")["price"]) > 0
        assert D(c.get_asset_balance("BTC")["free"]) == BALANCES["BTC"]
        filled = c.order_market_buy(symbol="BTCUSDT", quantity="0.01")
        assert filled["status"] == "FILLED" and filled["fills"]
        assert D(c.get_asset_balance("BTC")["free"]) == BALANCES["BTC"] + D("0.01") * (1 - FEE)
        resting = c.order_limit_buy(symbol="BTCUSDT", quantity="0.01", price=f"{bid - 100}")
        assert c.get_order(symbol="BTCUSDT", orderId=resting["orderId"])["status"] == "NEW"
        assert [o["orderId"] for o in c.get_open_orders(symbol="BTCUSDT")] == [resting["orderId"]]
        assert c.cancel_order(symbol="BTCUSDT", orderId=resting["orderId"])["status"] == "CANCELED"
        assert len(c.get_all_orders(symbol="BTCUSDT")) == 2
        assert len(c.get_my_trades(symbol="BTCUSDT")) == len(filled["fills"])
        assert (
            c.create_test_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01") == {}
        )
        key = c.stream_get_listen_key()
        c.stream_keepalive(key)
        c.stream_close(key)
        with pytest.raises(BinanceAPIException) as info:
            c.order_market_sell(symbol="BTCUSDT", quantity="50")
        assert info.value.code == -2010
    finally:
        c.close_connection()


async def test_sync_client() -> None:
    async with running_venue() as venue:
        await asyncio.to_thread(sync_session, venue)


async def test_async_client() -> None:
    async with running_venue() as venue:
        c = AsyncClient(KEY, SECRET)
        c.API_URL = f"{venue.server.http_url}/api"
        try:
            assert (await c.get_ticker(symbol="ETHUSDT"))["symbol"] == "ETHUSDT"
            sold = await c.order_market_sell(symbol="ETHUSDT", quantity="0.1")
            assert sold["status"] == "FILLED"
            eth = await c.get_asset_balance("ETH")
            assert D(eth["free"]) == BALANCES["ETH"] - D("0.1")
            bid, _ = venue.best("ETHUSDT")
            maker = await c.create_order(
                symbol="ETHUSDT", side="BUY", type="LIMIT_MAKER", quantity="0.1", price=f"{bid}"
            )
            assert maker["orderId"] and (await c.get_open_orders(symbol="ETHUSDT"))
            # python-binance has no spot cancel-all helper: its own request method does it
            canceled = await c._delete("openOrders", True, data={"symbol": "ETHUSDT"})
            assert [o["status"] for o in canceled] == ["CANCELED"]
        finally:
            await c.close_connection()
