"""The simulator's Binance USD-M futures endpoints (``/fstream``, ``/fapi/v1``) over real
sockets: futures frames (``pu``, non-contiguous ids), mark prices, REST, fault knobs."""

from __future__ import annotations

import asyncio
import itertools
from decimal import Decimal
from typing import Any

import httpx
import orjson
from conftest import StartSim
from simtest_helpers import recv_json, ws_connect

from algostream.marketdata.binance import parse_exchange_info
from algostream.marketdata.binance_usdm import parse_usdm_exchange_info
from algostream.sim.binance_usdm import ID_SCALE

STREAMS = "btcusdt@depth@100ms/btcusdt@aggTrade/btcusdt@markPrice@1s"


async def frames(ws: Any, want: int, kind: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(15):
        while len(out) < want:
            msg = await recv_json(ws)
            if msg.get("data", {}).get("e") == kind:
                out.append(msg["data"])
    return out


async def test_depth_chains_on_pu_with_non_contiguous_ids(start_sim: StartSim) -> None:
    server = await start_sim(rate=400)
    async with ws_connect(f"{server.ws_url}/fstream/stream?streams={STREAMS}") as ws:
        depth = await frames(ws, 8, "depthUpdate")
    for prev, cur in itertools.pairwise(depth):
        assert cur["pu"] == prev["u"]
        assert cur["U"] == prev["u"] + ID_SCALE  # the spot rule would call this a gap
        assert cur["U"] <= cur["u"] and cur["T"] <= cur["E"] + 1
        assert cur["s"] == "BTCUSDT" and all(Decimal(q) >= 0 for _, q in cur["b"] + cur["a"])


async def test_mark_price_and_agg_trades(start_sim: StartSim) -> None:
    server = await start_sim(rate=400)
    async with ws_connect(f"{server.ws_url}/fstream/stream?streams={STREAMS}") as ws:
        (mark,) = await frames(ws, 1, "markPriceUpdate")
        (trade,) = await frames(ws, 1, "aggTrade")
    assert mark["s"] == "BTCUSDT" and mark["T"] % (8 * 3600 * 1000) == 0 and mark["T"] > mark["E"]
    assert Decimal(mark["p"]) > Decimal(mark["i"]) > 0
    assert abs(Decimal(mark["r"])) <= Decimal("0.0075")
    assert isinstance(trade["a"], int) and Decimal(trade["p"]) > 0


async def test_rest_depth_exchange_info_and_premium_index(start_sim: StartSim) -> None:
    server = await start_sim(rate=200)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        depth = (await http.get("/fapi/v1/depth", params={"symbol": "BTCUSDT", "limit": 5})).json()
        assert depth["lastUpdateId"] % ID_SCALE == 0 and len(depth["bids"]) == 5
        bad = await http.get("/fapi/v1/depth", params={"symbol": "BTCUSDT", "limit": 7})
        assert bad.status_code == 400 and bad.json()["code"] == -1100
        unknown = await http.get("/fapi/v1/depth", params={"symbol": "NOPE"})
        assert unknown.json()["code"] == -1121
        assert "X-MBX-USED-WEIGHT-1M" in bad.headers
        info = await http.get("/fapi/v1/exchangeInfo")
        specs = parse_usdm_exchange_info(info.content)
        assert set(specs) == {"BINANCE_USDM:BTCUSDT", "BINANCE_USDM:ETHUSDT"}
        assert specs["BINANCE_USDM:BTCUSDT"].min_notional is not None
        spot = parse_exchange_info((await http.get("/api/v3/exchangeInfo")).content)
        assert set(spot) == {"BINANCE:BTCUSDT", "BINANCE:ETHUSDT"}  # a different instrument
        premium = (await http.get("/fapi/v1/premiumIndex", params={"symbol": "ETHUSDT"})).json()
        assert premium["symbol"] == "ETHUSDT" and Decimal(premium["markPrice"]) > 0


async def test_dropped_depth_breaks_the_pu_chain(start_sim: StartSim) -> None:
    server = await start_sim(rate=400)
    async with ws_connect(f"{server.ws_url}/fstream/ws/btcusdt@depth@100ms") as ws:
        first = await recv_json(ws)
        server.exchange.drop_depth(1)
        second = await recv_json(ws)
    assert second["pu"] != first["u"] and second["pu"] > first["u"]
    assert server.exchange.stats()["depth_dropped"] == 1


async def test_faults_reach_futures_connections(start_sim: StartSim) -> None:
    server = await start_sim(rate=100)
    async with ws_connect(f"{server.ws_url}/fstream/ws/btcusdt@aggTrade") as ws:
        async with asyncio.timeout(5):
            while not server.exchange.usdm.clients:
                await asyncio.sleep(0.005)
        assert server.exchange.send_malformed(1) == 1
        assert server.exchange.send_server_shutdown() == 1
        seen: list[bytes] = []
        async with asyncio.timeout(5):
            while not any(b"serverShutdown" in s for s in seen):
                raw = await ws.recv()
                seen.append(raw if isinstance(raw, bytes) else raw.encode())
        assert any(orjson.loads(s).get("e") == "serverShutdown" for s in seen if s[:1] == b"{"
                   and s.endswith(b"}") and b"serverShutdown" in s)  # fmt: skip


async def test_a_liquidation_fault_sends_force_order(start_sim: StartSim) -> None:
    """``forceOrder`` as Binance documents it, on ``<symbol>@forceOrder``; the futures
    adapter turns it into a ``Liquidation`` for ``md.liquidations``."""
    from algostream.config import MarketDataConfig
    from algostream.ingest.binance_usdm import BinanceUsdmAdapter
    from algostream.model import Liquidation, Side

    server = await start_sim(rate=0)
    async with (
        ws_connect(f"{server.ws_url}/fstream/stream?streams=btcusdt@forceOrder") as ws,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        async with asyncio.timeout(10):  # the server has registered the connection
            while server.exchange.stats()["usdm_clients"] != 1:
                await asyncio.sleep(0.01)  # poll interval under the deadline
        body = {"kind": "liquidation", "symbol": "BTCUSDT", "side": "SELL", "qty": "0.5"}
        assert (await http.post("/sim/fault", json=body)).status_code == 200
        async with asyncio.timeout(10):
            msg = await recv_json(ws)
        bad = await http.post("/sim/fault", json=body | {"qty": "abc"})
        assert bad.status_code == 400 and "qty='abc'" in bad.text
        bad = await http.post("/sim/fault", json=body | {"side": "UP"})
        assert bad.status_code == 400 and "side='UP'" in bad.text
    assert msg["stream"] == "btcusdt@forceOrder"
    order = msg["data"]["o"]
    best_bid = server.exchange.market.book("BTCUSDT")[0][0][0]
    assert (order["S"], order["q"], order["X"], Decimal(order["ap"])) == (
        "SELL", "0.5", "FILLED", best_bid,
    )  # fmt: skip
    adapter = BinanceUsdmAdapter(MarketDataConfig(exchange="binance_usdm", symbols=["BTCUSDT"]))
    out = adapter.on_frame(0, orjson.dumps(msg).decode(), 7)
    ((topic, liq),) = [(t, r) for t, r in out.records if t != "md.raw"]
    assert topic == "md.liquidations" and isinstance(liq, Liquidation)
    assert (liq.instrument, liq.side, liq.quantity, liq.avg_price) == (
        "BINANCE_USDM:BTCUSDT", Side.SELL, Decimal("0.5"), best_bid,
    )  # fmt: skip
