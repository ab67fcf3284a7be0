"""Coinbase details a client parses: removed levels as "0", market_trades batched per
250 ms (newest first), the ticker channel, heartbeats in Coinbase's format."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from typing import Any

import orjson
from conftest import StartSim
from simtest_helpers import recv_json, ws_connect


def sub(channel: str, *products: str) -> str:
    return orjson.dumps(
        {"type": "subscribe", "product_ids": list(products), "channel": channel}
    ).decode()


async def until_channel(ws: Any, channel: str, kind: str = "update") -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            msg = await recv_json(ws)
            if msg["channel"] == channel and msg["events"][0].get("type", kind) == kind:
                return dict(msg)


async def test_removed_levels_are_zero_and_trades_are_batched(start_sim: StartSim) -> None:
    server = await start_sim(rate=0, symbols=("BTCUSDT",))
    async with ws_connect(server.ws_url + "/coinbase") as ws:
        await ws.send(sub("level2", "BTC-USDT"))
        await ws.send(sub("market_trades", "BTC-USDT"))
        await until_channel(ws, "market_trades", "snapshot")
        ex = server.exchange
        before = len(ex.tape.trades("BTCUSDT"))
        ex.emit_events(2000)  # many events and trades within one 250 ms batch
        traded = ex.tape.trades("BTCUSDT")[before:]
        removed, batches, trades = 0, 0, []
        async with asyncio.timeout(5):
            while len(trades) < len(traded):
                msg = await recv_json(ws)
                if msg["channel"] == "l2_data":
                    for u in msg["events"][0]["updates"]:
                        if Decimal(u["new_quantity"]) == 0:
                            assert u["new_quantity"] == "0"
                            removed += 1
                elif msg["channel"] == "market_trades":
                    batches += 1
                    trades += msg["events"][0]["trades"]
    assert removed > 0
    assert batches <= 2 < len(traded)  # one message per 250 ms, not one per trade
    ids = [int(t["trade_id"]) for t in trades]
    assert sorted(ids, reverse=True) == ids  # newest first
    assert sorted(ids) == [t.trade_id for t in traded]


async def test_ticker_snapshot_then_an_update_per_trade(start_sim: StartSim) -> None:
    server = await start_sim(rate=0, symbols=("BTCUSDT",))
    async with ws_connect(server.ws_url + "/coinbase") as ws:
        await ws.send(sub("ticker", "BTC-USDT"))
        snap = await until_channel(ws, "ticker", "snapshot")
        server.exchange.emit_events(300)
        update = await until_channel(ws, "ticker", "update")
    ticker = update["events"][0]["tickers"][0]
    assert snap["events"][0]["tickers"][0]["product_id"] == "BTC-USDT"
    assert set(ticker) >= {
        "type",
        "product_id",
        "price",
        "volume_24_h",
        "low_24_h",
        "high_24_h",
        "price_percent_chg_24_h",
        "best_bid",
        "best_bid_quantity",
        "best_ask",
        "best_ask_quantity",
    }
    low, high, price = (Decimal(ticker[k]) for k in ("low_24_h", "high_24_h", "price"))
    assert low <= price <= high and Decimal(ticker["best_bid"]) < Decimal(ticker["best_ask"])


async def test_heartbeats_in_coinbase_format(start_sim: StartSim) -> None:
    server = await start_sim(rate=0, heartbeat_interval_s=0.05)
    async with ws_connect(server.ws_url + "/coinbase") as ws:
        await ws.send(sub("heartbeats"))
        beat = await until_channel(ws, "heartbeats")
    event = beat["events"][0]
    assert isinstance(event["heartbeat_counter"], str) and event["heartbeat_counter"].isdigit()
    pattern = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9} \+0000 UTC m=\+\d+\.\d{9}"
    assert re.fullmatch(pattern, event["current_time"]), event["current_time"]
