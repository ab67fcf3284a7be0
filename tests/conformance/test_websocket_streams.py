"""Plain ``websockets`` clients on the simulator's streams: depth batched at the stream's
interval, and the user data stream (executionReport, outboundAccountPosition, expiry)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from conformance_kit import KEY, SECRET, running_venue
from websockets.asyncio.client import connect

from algostream.sim import SimExchange, SimMarket, SimServer
from algostream.sim.trading import SIMULATOR_KEY, trading_setup


async def recv(ws: Any, timeout: float = 5.0) -> Any:
    async with asyncio.timeout(timeout):
        return orjson.loads(await ws.recv())


async def test_depth_100ms_is_at_most_ten_messages_a_second_spanning_many_ids() -> None:
    market = SimMarket.create(["BTCUSDT"], seed=4, levels=30)
    server = SimServer(SimExchange(market, rate=1000))
    await server.start()
    try:
        url = f"{server.ws_url}/ws/btcusdt@depth@100ms"
        async with connect(url, max_queue=None) as ws:
            frames, started = [], time.monotonic()
            while len(frames) < 12:
                frames.append(await recv(ws))
            elapsed = time.monotonic() - started
    finally:
        await server.stop()
    rate = (len(frames) - 1) / elapsed
    assert rate <= 11, f"{rate:.1f} depth messages/s"
    spans = [f["u"] - f["U"] + 1 for f in frames]
    assert min(spans[1:]) > 10, spans  # ~100 events per 100 ms, each one update id or more
    assert all(b["U"] == a["u"] + 1 for a, b in itertools.pairwise(frames))


async def test_user_data_stream_reports_orders_and_balances() -> None:
    async with running_venue() as venue:
        headers = {"X-MBX-APIKEY": KEY}
        async with httpx.AsyncClient(base_url=venue.server.http_url, headers=headers) as http:
            key = (await http.post("/api/v3/userDataStream")).json()["listenKey"]
            async with connect(f"{venue.server.ws_url}/ws/{key}") as ws:
                async with asyncio.timeout(5):
                    while not venue.server.exchange.binance.clients:
                        await asyncio.sleep(0.01)
                order = await _signed_post(http, "BTCUSDT", "BUY", "MARKET", quantity="0.01")
                events = [await recv(ws) for _ in range(2 + len(order["fills"]))]
    kinds = [(e["e"], e.get("x")) for e in events]
    assert kinds[0] == ("executionReport", "NEW")
    assert kinds[1:-1] == [("executionReport", "TRADE")] * len(order["fills"])
    assert kinds[-1] == ("outboundAccountPosition", None)
    last = events[-2]
    assert (last["X"], last["i"], Decimal(last["z"])) == (
        "FILLED",
        order["orderId"],
        Decimal("0.01"),
    )
    assets = {b["a"]: Decimal(b["f"]) for b in events[-1]["B"]}
    assert assets["BTC"] == Decimal("2") + Decimal("0.01") * Decimal("0.999")


async def test_listen_key_expires_after_an_hour_without_keepalive() -> None:
    clock = [1_700_000_000_000]
    market = SimMarket.create(["BTCUSDT"], seed=4, levels=30)
    exchange = SimExchange(market, rate=0, clock_ns=lambda: clock[0] * 1_000_000)
    server = SimServer(exchange, setup=[trading_setup(KEY, "s3cret", balances={})])
    await server.start()
    try:
        headers = {"X-MBX-APIKEY": KEY}
        async with httpx.AsyncClient(base_url=server.http_url, headers=headers) as http:
            key = (await http.post("/api/v3/userDataStream")).json()["listenKey"]
            async with connect(f"{server.ws_url}/stream?streams={key}") as ws:
                async with asyncio.timeout(5):
                    while not exchange.binance.clients:
                        await asyncio.sleep(0.01)
                clock[0] += 59 * 60_000
                kept = await http.put("/api/v3/userDataStream", params={"listenKey": key})
                clock[0] += 61 * 60_000  # an hour and a minute since the keepalive
                exchange.emit_events(1)  # any activity notices the lapse
                expired = await recv(ws)
                late = await http.put("/api/v3/userDataStream", params={"listenKey": key})
    finally:
        await server.stop()
    assert kept.status_code == 200 and kept.json() == {}
    assert expired["stream"] == key and expired["data"]["e"] == "listenKeyExpired"
    assert (late.status_code, late.json()["code"]) == (400, -1125)
    assert server.app[SIMULATOR_KEY].listen_keys.live() == []


async def _signed_post(http: httpx.AsyncClient, symbol: str, side: str, kind: str, **p: str) -> Any:
    """A signed order with every parameter in the body (as ccxt sends it)."""
    body = urlencode(
        {"symbol": symbol, "side": side, "type": kind, **p, "timestamp": int(time.time() * 1000)}
    )
    sig = hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
    resp = await http.post(
        "/api/v3/order",
        content=f"{body}&signature={sig}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_kline_stream_sends_the_open_candle_every_second() -> None:
    now_ms = 1_700_000_030_000  # mid-minute, fixed: every trade lands in one candle
    market = SimMarket.create(["BTCUSDT"], seed=4, levels=30)
    exchange = SimExchange(market, rate=0, clock_ns=lambda: now_ms * 1_000_000)
    server = SimServer(exchange)
    await server.start()
    try:
        async with connect(f"{server.ws_url}/ws/btcusdt@kline_1m") as ws:
            async with asyncio.timeout(5):
                while not exchange.binance.clients:
                    await asyncio.sleep(0.01)
            exchange.emit_events(500)
            event = await recv(ws)
    finally:
        await server.stop()
    trades = exchange.tape.trades("BTCUSDT")
    k = event["k"]
    minute = now_ms - now_ms % 60_000
    assert (event["e"], k["i"], k["t"], k["T"], k["x"]) == (
        "kline",
        "1m",
        minute,
        minute + 59_999,
        False,
    )
    assert k["n"] == len(trades) > 0 and (k["f"], k["L"]) == (
        trades[0].trade_id,
        trades[-1].trade_id,
    )
    assert Decimal(k["v"]) == sum(t.qty for t in trades)
    assert Decimal(k["c"]) == trades[-1].price and Decimal(k["h"]) == max(t.price for t in trades)
