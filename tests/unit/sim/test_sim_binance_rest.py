"""Binance REST market data and the control API's true-book endpoint."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal

import httpx
import pytest
from conftest import StartSim

from algostream.sim import run_simulator

FIXED_NS = 1_700_000_000_999_000_000


async def test_depth_snapshot_is_the_true_book_with_its_update_id(start_sim: StartSim) -> None:
    server = await start_sim(rate=0)
    server.exchange.emit_events(300)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        snap = (await http.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 5})).json()
        full = (await http.get("/api/v3/depth", params={"symbol": "BTCUSDT"})).json()
    market = server.exchange.market
    bids, asks = market.book("BTCUSDT")
    assert set(snap) == {"lastUpdateId", "bids", "asks"}
    assert snap["lastUpdateId"] == market.last_update_id("BTCUSDT")
    assert len(snap["bids"]) == 5 and len(snap["asks"]) == 5
    assert [(Decimal(p), Decimal(q)) for p, q in full["bids"]] == bids[:100]
    assert [(Decimal(p), Decimal(q)) for p, q in full["asks"]] == asks[:100]
    assert all(len(p.split(".")[1]) == 8 for p, _ in snap["bids"])


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, -1102),
        ({"symbol": "DOGEUSDT"}, -1121),
        ({"symbol": "btcusdt"}, -1100),  # lower case is outside ^[A-Z0-9-_.]{1,20}$
        ({"symbol": "BTCUSDT", "limit": "ten"}, -1100),
        ({"symbol": "BTCUSDT", "limit": "0"}, -1100),
    ],
)
async def test_depth_errors_are_binance_shaped(
    start_sim: StartSim, params: dict[str, str], code: int
) -> None:
    server = await start_sim(rate=0)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        resp = await http.get("/api/v3/depth", params=params)
    assert resp.status_code == 400
    assert resp.json()["code"] == code and resp.json()["msg"]


async def test_exchange_info_filters_match_what_the_book_honours(start_sim: StartSim) -> None:
    server = await start_sim(rate=0)
    server.exchange.emit_events(2000)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        info = (await http.get("/api/v3/exchangeInfo")).json()
        one = (await http.get("/api/v3/exchangeInfo", params={"symbol": "ETHUSDT"})).json()
        many = await http.get("/api/v3/exchangeInfo", params={"symbols": '["BTCUSDT","ETHUSDT"]'})
        bad = await http.get("/api/v3/exchangeInfo", params={"symbol": "XRPUSDT"})
    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHUSDT"]
    assert [s["symbol"] for s in one["symbols"]] == ["ETHUSDT"]
    assert len(many.json()["symbols"]) == 2
    assert bad.status_code == 400 and bad.json() == {"code": -1121, "msg": "Invalid symbol."}
    for entry in info["symbols"]:
        filters = {f["filterType"]: f for f in entry["filters"]}
        assert set(filters) == {"PRICE_FILTER", "LOT_SIZE", "NOTIONAL"}
        tick = Decimal(filters["PRICE_FILTER"]["tickSize"])
        step = Decimal(filters["LOT_SIZE"]["stepSize"])
        assert Decimal(filters["NOTIONAL"]["minNotional"]) > 0
        bids, asks = server.exchange.market.book(entry["symbol"])
        assert all(p % tick == 0 and q % step == 0 for p, q in bids + asks)
        assert entry["baseAsset"] + entry["quoteAsset"] == entry["symbol"]


async def test_time_and_ping(start_sim: StartSim) -> None:
    server = await start_sim(rate=0, clock_ns=lambda: FIXED_NS)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        assert (await http.get("/api/v3/time")).json() == {"serverTime": FIXED_NS // 1_000_000}
        assert (await http.get("/api/v3/ping")).json() == {}


async def test_sim_book_endpoint_and_control_errors(start_sim: StartSim) -> None:
    server = await start_sim(rate=0)
    server.exchange.emit_events(500)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        book = (await http.get("/sim/book", params={"symbol": "ethusdt", "limit": 3})).json()
        missing = await http.get("/sim/book", params={"symbol": "XRPUSDT"})
        bad_kind = await http.post("/sim/fault", json={"kind": "meteor"})
        bad_rate = await http.post("/sim/rate", json={"rate": -5})
        stats = (await http.get("/sim/stats")).json()
        bids, asks = server.exchange.market.book("ETHUSDT")  # before the market moves again
        last_id = server.exchange.market.last_update_id("ETHUSDT")
        ok_rate = await http.post("/sim/rate", json={"rate": 250})
    assert [(Decimal(p), Decimal(q)) for p, q in book["bids"]] == bids[:3]
    assert [(Decimal(p), Decimal(q)) for p, q in book["asks"]] == asks[:3]
    assert book["lastUpdateId"] == last_id
    assert missing.status_code == 404 and "XRPUSDT" in missing.json()["error"]
    assert bad_kind.status_code == 400 and "meteor" in bad_kind.json()["error"]
    assert bad_rate.status_code == 400
    assert stats["rate"] == 0 and stats["events"] == 500
    assert ok_rate.json()["rate"] == 250 and server.exchange.rate == 250


async def test_run_simulator_serves_until_cancelled() -> None:
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_simulator(port=0, symbols=["SOLUSDT"], seed=3, rate=50, ready=bound.set_result)
    )
    try:
        port = await asyncio.wait_for(bound, 5)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            info = (await http.get("/api/v3/exchangeInfo")).json()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [s["symbol"] for s in info["symbols"]] == ["SOLUSDT"]
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"http://127.0.0.1:{port}/api/v3/ping")
