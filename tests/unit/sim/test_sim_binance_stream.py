"""Binance combined streams from a real simulator, checked with the websockets client."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import StartSim
from simtest_helpers import (
    LocalBook,
    OutOfSync,
    decimal_levels,
    follow,
    recv_json,
    sync_book,
    ws_connect,
)

from algostream.sim import SimServer

CAPTURE = Path(__file__).parents[2] / "data" / "binance-us-capture" / "BINANCE_US.ws.1.0"
DECIMAL8 = re.compile(r"^\d+\.\d{8}$")
FIXED_NS = 1_700_000_000_123_456_789
ALL_BTC = "btcusdt@trade/btcusdt@aggTrade/btcusdt@depth@100ms/btcusdt@bookTicker"


def capture_payloads() -> dict[str, dict[str, Any]]:
    """One real payload of each event kind from the recorded capture."""
    out: dict[str, dict[str, Any]] = {}
    for line in CAPTURE.read_text().splitlines()[1:]:
        data = orjson.loads(line.partition(": ")[2])["data"]
        out.setdefault(data.get("e", "bookTicker"), data)
    return out


async def wait_clients(server: SimServer, n: int) -> None:
    async with asyncio.timeout(5):
        while len(server.exchange.binance.clients) < n:
            await asyncio.sleep(0.005)


async def collect(ws: Any, want: int) -> list[dict[str, Any]]:
    return [await recv_json(ws) for _ in range(want)]


def check_trade(d: dict[str, Any], tick: Decimal) -> None:
    assert isinstance(d["t"], int) and isinstance(d["E"], int) and isinstance(d["T"], int)
    assert isinstance(d["m"], bool) and d["s"] == "BTCUSDT"
    assert DECIMAL8.match(d["p"]) and DECIMAL8.match(d["q"])
    assert Decimal(d["q"]) > 0 and Decimal(d["p"]) % tick == 0


def check_depth(d: dict[str, Any]) -> None:
    assert isinstance(d["U"], int) and isinstance(d["u"], int) and d["U"] <= d["u"]
    assert d["b"] or d["a"]
    for p, q in d["b"] + d["a"]:
        assert DECIMAL8.match(p) and DECIMAL8.match(q)


async def test_frames_match_the_recorded_binance_schema(start_sim: StartSim) -> None:
    server = await start_sim(rate=0, clock_ns=lambda: FIXED_NS)
    real = capture_payloads()
    async with ws_connect(f"{server.ws_url}/stream?streams={ALL_BTC}") as ws:
        await wait_clients(server, 1)
        server.exchange.emit_events(400)
        seen: dict[str, dict[str, Any]] = {}
        async with asyncio.timeout(5):
            while len(seen) < 4:
                frame = await recv_json(ws)
                assert set(frame) == {"stream", "data"}
                kind = frame["data"].get("e", "bookTicker")
                assert (
                    frame["stream"] == f"btcusdt@{ {'depthUpdate': 'depth@100ms'}.get(kind, kind) }"
                )
                seen.setdefault(kind, frame["data"])
    for kind in ("depthUpdate", "aggTrade", "bookTicker"):
        assert set(seen[kind]) == set(real[kind]), kind
        for key, value in real[kind].items():
            assert type(seen[kind][key]) is type(value), (kind, key)
    assert set(seen["trade"]) == {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
    check_trade(seen["trade"], Decimal("0.01"))
    check_depth(seen["depthUpdate"])
    assert seen["depthUpdate"]["E"] == FIXED_NS // 1_000_000


async def test_depth_update_ids_are_consecutive_per_symbol(start_sim: StartSim) -> None:
    server = await start_sim(rate=0)
    url = f"{server.ws_url}/stream?streams=btcusdt@depth/ethusdt@depth@100ms"
    async with ws_connect(url) as ws:
        await wait_clients(server, 1)
        market = server.exchange.market
        last: dict[str, int] = {}
        frames = 0
        for _ in range(3):  # three batches of events, each sent within its stream's interval
            server.exchange.emit_events(1000)
            want = {s: market.last_update_id(s) for s in ("BTCUSDT", "ETHUSDT")}
            async with asyncio.timeout(5):
                while any(last.get(s, 0) < u for s, u in want.items()):
                    d = (await recv_json(ws))["data"]
                    check_depth(d) if d["s"] == "BTCUSDT" else None
                    if d["s"] in last:
                        assert d["U"] == last[d["s"]] + 1
                    last[d["s"]] = d["u"]
                    frames += 1
        assert last == want
        assert frames <= 8, f"{frames} messages for 3 batches: depth is not batched"


async def test_snapshot_plus_diffs_rebuilds_the_true_book(start_sim: StartSim) -> None:
    server = await start_sim(rate=3000)
    url = f"{server.ws_url}/stream?streams=btcusdt@depth@100ms/btcusdt@trade"
    async with ws_connect(url) as ws, httpx.AsyncClient(base_url=server.http_url) as http:
        book = await sync_book(ws, http, "BTCUSDT")
        await follow(ws, book, book.last_u + 500)
        await http.post("/sim/pause")
        truth = (await http.get("/sim/book", params={"symbol": "BTCUSDT"})).json()
        await follow(ws, book, truth["lastUpdateId"])
    assert book.last_u == truth["lastUpdateId"]
    bids, asks = book.levels()
    assert bids == decimal_levels(truth["bids"]) and asks == decimal_levels(truth["asks"])
    assert (bids, asks) == server.exchange.market.book("BTCUSDT")
    assert len(bids) >= 10 and bids[0][0] < asks[0][0]


async def test_live_subscribe_list_and_unsubscribe(start_sim: StartSim) -> None:
    server = await start_sim(rate=0)
    async with ws_connect(f"{server.ws_url}/stream") as ws:
        await wait_clients(server, 1)
        await ws.send(
            orjson.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@depth"], "id": 1}).decode()
        )
        assert await recv_json(ws) == {"result": None, "id": 1}
        server.exchange.emit_events(50)
        frame = await recv_json(ws)
        assert frame["stream"] == "ethusdt@depth" and frame["data"]["s"] == "ETHUSDT"
        await ws.send('{"method":"UNSUBSCRIBE","params":["ethusdt@depth"],"id":2}')
        async with asyncio.timeout(5):
            while (msg := await recv_json(ws)).get("id") != 2:
                assert "stream" in msg
        server.exchange.emit_events(50)
        await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":3}')
        assert await recv_json(ws) == {"result": [], "id": 3}  # no depth frame came first


@pytest.mark.parametrize(
    ("request_text", "code"),
    [
        ("{not json", 3),
        ('{"method":"SUBSCRIBE","params":["BTCUSDT@trade"],"id":4}', 2),
        ('{"method":"FLY","id":5}', 2),
        ('{"method":"GET_PROPERTY","params":["x"],"id":6}', 0),
    ],
)
async def test_bad_method_messages_get_binance_errors(
    start_sim: StartSim, request_text: str, code: int
) -> None:
    server = await start_sim(rate=0)
    async with ws_connect(f"{server.ws_url}/stream") as ws:
        await ws.send(request_text)
        reply = await recv_json(ws)
    assert reply["error"]["code"] == code and reply["error"]["msg"]


async def test_raw_endpoint_sends_bare_payloads_and_combined_property(start_sim: StartSim) -> None:
    server = await start_sim(rate=0)
    async with ws_connect(f"{server.ws_url}/ws/btcusdt@depth") as ws:
        await wait_clients(server, 1)
        server.exchange.emit_events(200)
        first = await recv_json(ws)
        assert first["e"] == "depthUpdate" and "stream" not in first
        await ws.send('{"method":"SET_PROPERTY","params":["combined",true],"id":9}')
        async with asyncio.timeout(5):
            while (msg := await recv_json(ws)).get("id") != 9:
                assert msg["e"] == "depthUpdate"
        server.exchange.emit_events(200)
        assert (await recv_json(ws))["stream"] == "btcusdt@depth"


async def frames_for(start_sim: StartSim, seed: int, n: int) -> list[bytes]:
    server = await start_sim(rate=0, seed=seed, clock_ns=lambda: FIXED_NS)
    url = f"{server.ws_url}/stream?streams={ALL_BTC}/ethusdt@depth"
    async with ws_connect(url) as ws:
        await wait_clients(server, 1)
        server.exchange.emit_events(n)
        server.exchange.binance.flush_all()  # the batched depth goes out before the reply
        await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":"end"}')
        out: list[bytes] = []
        async with asyncio.timeout(10):
            while b'"id":"end"' not in (raw := await ws.recv(decode=False)):
                out.append(raw)
    return out


async def test_same_seed_gives_the_same_frames(start_sim: StartSim) -> None:
    first = await frames_for(start_sim, seed=11, n=1500)
    again = await frames_for(start_sim, seed=11, n=1500)
    other = await frames_for(start_sim, seed=12, n=1500)
    assert len(first) > 100 and first == again
    assert first != other


async def test_a_client_missing_a_diff_is_detected(start_sim: StartSim) -> None:
    server = await start_sim(rate=0)
    async with ws_connect(f"{server.ws_url}/stream?streams=btcusdt@depth") as ws:
        await wait_clients(server, 1)
        server.exchange.emit_events(50)
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            book = await sync_book(ws, http, "BTCUSDT", min_buffered=1)
        server.exchange.drop_depth(1)
        for _ in range(2):  # two messages: the first is dropped, the second shows the gap
            server.exchange.emit_events(200)
            server.exchange.binance.flush_all()
        with pytest.raises(OutOfSync):
            await follow(ws, book, server.exchange.market.last_update_id("BTCUSDT"))
    assert isinstance(book, LocalBook)
