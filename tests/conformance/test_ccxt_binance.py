"""ccxt's binance (sync and async) against the simulator: the calls its users make."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import pytest
from conformance_kit import BALANCES, FEE, KEY, SECRET, Venue, running_venue

D = Decimal
OPTIONS = {"fetchMarkets": {"types": ["spot"]}, "fetchMargins": False, "fetchCurrencies": False}


def configure(ex: Any, venue: Venue) -> Any:
    for name in ("public", "private"):
        ex.urls["api"][name] = venue.api
    return ex


def session(venue: Venue, sync: bool) -> Any:
    cls = ccxt.binance if sync else ccxt_async.binance
    return configure(cls({"apiKey": KEY, "secret": SECRET, "options": OPTIONS}), venue)


class Caller:
    """Calls a ccxt method the same way for the sync (in a thread) and async clients."""

    def __init__(self, ex: Any, sync: bool) -> None:
        self.ex, self.sync = ex, sync

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        fn = getattr(self.ex, method)
        if self.sync:
            return await asyncio.to_thread(fn, *args, **kwargs)
        return await fn(*args, **kwargs)

    async def close(self) -> None:
        if not self.sync:
            await self.ex.close()


@pytest.fixture(params=["sync", "async"])
def sync(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "sync")


async def test_market_data(sync: bool) -> None:
    async with running_venue() as venue:
        call = Caller(session(venue, sync), sync)
        try:
            markets = await call("load_markets")
            assert {"BTC/USDT", "ETH/USDT"} <= set(markets)
            btc = markets["BTC/USDT"]
            assert (btc["precision"]["price"], btc["limits"]["cost"]["min"]) == (0.01, 5.0)
            book = await call("fetch_order_book", "BTC/USDT", 5)
            bid, ask = venue.best()
            assert (D(str(book["bids"][0][0])), D(str(book["asks"][0][0]))) == (bid, ask)
            ticker = await call("fetch_ticker", "BTC/USDT")
            last = venue.server.exchange.market.last_trade_price("BTCUSDT")
            assert D(str(ticker["last"])) == last and ticker["bid"] == float(bid)
            tickers = await call("fetch_tickers", ["BTC/USDT", "ETH/USDT"])
            assert set(tickers) == {"BTC/USDT", "ETH/USDT"}
            trades = await call("fetch_trades", "BTC/USDT", None, 20)
            assert len(trades) == 20 and D(str(trades[-1]["price"])) == last
            bars = await call("fetch_ohlcv", "BTC/USDT", "1m", None, 5)
            tape = venue.server.exchange.tape.trades("BTCUSDT")
            assert sum(b[5] for b in bars) == pytest.approx(float(sum(t.qty for t in tape)))
            assert bars[-1][4] == float(last)
        finally:
            await call.close()


async def test_orders_of_each_type_and_balances(sync: bool) -> None:
    async with running_venue() as venue:
        call = Caller(session(venue, sync), sync)
        try:
            await call("load_markets")
            bal = await call("fetch_balance")
            assert {a: D(str(bal["free"][a])) for a in BALANCES} == BALANCES
            market = await call("create_order", "BTC/USDT", "market", "buy", 0.01)
            assert market["status"] == "closed" and market["filled"] == 0.01
            bal = await call("fetch_balance")
            assert D(str(bal["free"]["BTC"])) == BALANCES["BTC"] + D("0.01") * (1 - FEE)
            cost = await call("create_market_buy_order_with_cost", "BTC/USDT", 100)
            assert cost["status"] == "closed" and 0 < cost["cost"] <= 100
            bid, ask = venue.best()
            limit = await call("create_order", "BTC/USDT", "limit", "buy", 0.01, float(bid - 100))
            assert limit["status"] == "open"
            bal = await call("fetch_balance")
            assert D(str(bal["used"]["USDT"])) == (bid - 100) * D("0.01")
            assert (await call("fetch_order", limit["id"], "BTC/USDT"))["status"] == "open"
            maker = await call(
                "create_order",
                "BTC/USDT",
                "limit",
                "sell",
                0.01,
                float(ask + 50),
                {"postOnly": True},
            )
            assert maker["status"] == "open" and maker["info"]["type"] == "LIMIT_MAKER"
            stop = await call(
                "create_order",
                "BTC/USDT",
                "STOP_LOSS_LIMIT",
                "sell",
                0.01,
                float(bid - 200),
                {"stopPrice": float(bid - 150)},
            )
            take = await call(
                "create_order",
                "BTC/USDT",
                "TAKE_PROFIT_LIMIT",
                "sell",
                0.01,
                float(ask + 200),
                {"stopPrice": float(ask + 150)},
            )
            opened = await call("fetch_open_orders", "BTC/USDT")
            assert {o["id"] for o in opened} == {limit["id"], maker["id"], stop["id"], take["id"]}
            assert (await call("cancel_order", limit["id"], "BTC/USDT"))["status"] == "canceled"
            await call("cancel_all_orders", "BTC/USDT")
            assert await call("fetch_open_orders", "BTC/USDT") == []
            mine = await call("fetch_my_trades", "BTC/USDT")
            assert len(mine) >= 2 and {t["side"] for t in mine} == {"buy"}
            orders = await call("fetch_orders", "BTC/USDT")
            assert len(orders) == 6
            bal = await call("fetch_balance")
            assert D(str(bal["used"]["USDT"])) == 0 and D(str(bal["used"]["BTC"])) == 0
        finally:
            await call.close()


async def test_insufficient_balance_is_ccxt_insufficient_funds(sync: bool) -> None:
    async with running_venue() as venue:
        call = Caller(session(venue, sync), sync)
        try:
            await call("load_markets")
            with pytest.raises(ccxt.InsufficientFunds):
                await call("create_order", "BTC/USDT", "market", "sell", 5)
            with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):  # ccxt's map of -1013
                await call("create_order", "BTC/USDT", "limit", "buy", 0.0001, 20000)  # NOTIONAL
        finally:
            await call.close()
