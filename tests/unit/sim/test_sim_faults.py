"""Each fault knob, driven through the control API, observed by a real client."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import httpx
import orjson
import pytest
from conftest import StartSim
from simtest_helpers import OutOfSync, follow, recv_json, sync_book, ws_connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from algostream.sim import SimServer, WsSettings

DEPTH = "/stream?streams=btcusdt@depth@100ms"


async def fault(server: SimServer, **body: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        resp = await http.post("/sim/fault", json=body)
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


async def wait_clients(server: SimServer, n: int) -> None:
    async with asyncio.timeout(5):
        while len(server.exchange.binance.clients + server.exchange.coinbase.clients) < n:
            await asyncio.sleep(0.005)


async def test_drop_depth_opens_a_gap_in_update_ids(start_sim: StartSim) -> None:
    server = await start_sim(rate=0, symbols=("BTCUSDT",))
    async with ws_connect(server.ws_url + DEPTH) as ws:
        await wait_clients(server, 1)
        hub = server.exchange.binance
        for _ in range(20):  # one event per 100 ms message, cut here rather than by the timer
            server.exchange.emit_events(1)
            hub.flush_depth(100)
        await fault(server, kind="drop_depth", count=3)
        for _ in range(20):
            server.exchange.emit_events(1)
            hub.flush_depth(100)
        ids = [(f["data"]["U"], f["data"]["u"]) for f in [await recv_json(ws) for _ in range(37)]]
    gaps = [(a, b) for a, b in itertools.pairwise(ids) if b[0] != a[1] + 1]
    assert len(gaps) == 1
    (_, before_u), (after_u_first, _) = gaps[0]
    assert after_u_first > before_u + 3  # three events (>= 1 change each) went missing
    assert server.exchange.stats()["depth_dropped"] == 3


async def test_a_synced_book_detects_the_dropped_diff(start_sim: StartSim) -> None:
    server = await start_sim(rate=2000)
    async with (
        ws_connect(server.ws_url + DEPTH) as ws,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        book = await sync_book(ws, http, "BTCUSDT")
        await follow(ws, book, book.last_u + 1)  # in sync on the live chain first
        await fault(server, kind="drop_depth", count=1)
        with pytest.raises(OutOfSync, match="gap"):
            await follow(ws, book, book.last_u + 10_000)


@pytest.mark.parametrize("abrupt", [False, True])
async def test_disconnect_closes_every_socket(start_sim: StartSim, abrupt: bool) -> None:
    server = await start_sim(rate=200)
    async with (
        ws_connect(server.ws_url + DEPTH) as one,
        ws_connect(server.ws_url + "/coinbase") as two,
    ):
        await wait_clients(server, 2)
        result = await fault(server, kind="disconnect", abrupt=abrupt)
        assert result["closed"] == 2
        for ws in (one, two):
            with pytest.raises(ConnectionClosed) as info:
                async with asyncio.timeout(5):
                    while True:
                        await ws.recv()
            assert isinstance(info.value, ConnectionClosedError) == abrupt


async def test_malformed_frames_arrive(start_sim: StartSim) -> None:
    server = await start_sim(rate=0)
    async with ws_connect(server.ws_url + DEPTH) as ws:
        await wait_clients(server, 1)
        await fault(server, kind="malformed", count=3)
        frames = [await ws.recv(decode=False) for _ in range(3)]
    broken = 0
    for raw in frames:
        try:
            data = orjson.loads(raw)["data"]
            assert not isinstance(data.get("p"), str)  # parses, but violates the schema
        except orjson.JSONDecodeError:
            broken += 1
    assert broken == 2


async def test_server_shutdown_notice_then_close(start_sim: StartSim) -> None:
    server = await start_sim(rate=0, clock_ns=lambda: 1_700_000_000_000_000_000)
    async with ws_connect(server.ws_url + DEPTH) as ws:
        await wait_clients(server, 1)
        assert (await fault(server, kind="server_shutdown", close_after_s=0.05))["notified"] == 1
        assert await recv_json(ws) == {"e": "serverShutdown", "E": 1_700_000_000_000}
        with pytest.raises(ConnectionClosed):
            await recv_json(ws)
    assert ws.close_code == 1001


async def test_crossed_update_reaches_the_client_and_heals(start_sim: StartSim) -> None:
    server = await start_sim(rate=0, symbols=("BTCUSDT",))
    async with (
        ws_connect(server.ws_url + DEPTH) as ws,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        await wait_clients(server, 1)
        for _ in range(10):
            server.exchange.emit_events(1)
            server.exchange.binance.flush_all()
        book = await sync_book(ws, http, "BTCUSDT", min_buffered=10)
        await fault(server, kind="crossed", symbol="BTCUSDT")
        crossed_id = server.exchange.market.last_update_id("BTCUSDT")
        await follow(ws, book, crossed_id)
        assert book.crossed_seen
        server.exchange.emit_events(5)
        await follow(ws, book, server.exchange.market.last_update_id("BTCUSDT"))
    bids, asks = book.levels()
    assert bids[0][0] < asks[0][0]
    assert (bids, asks) == server.exchange.market.book("BTCUSDT")


async def test_silence_pauses_data_without_losing_any(start_sim: StartSim) -> None:
    server = await start_sim(rate=1000)
    loop = asyncio.get_running_loop()
    async with ws_connect(server.ws_url + DEPTH) as ws:
        await recv_json(ws)
        await fault(server, kind="silence", seconds=0.4)
        last_arrival, last_u, longest, after = loop.time(), None, 0.0, 0
        async with asyncio.timeout(5):
            while after < 20:  # through the silence and 20 frames past it
                data = (await recv_json(ws))["data"]
                longest = max(longest, loop.time() - last_arrival)
                last_arrival = loop.time()
                assert last_u is None or data["U"] == last_u + 1  # nothing skipped
                last_u = data["u"]
                after += longest >= 0.3
    # the last frame before the silence came before it began, the first after it after it
    # ended: the gap is the whole 0.4 s asked for (less a millisecond of clock granularity)
    assert longest >= 0.399


async def test_pings_are_sent_and_a_silent_client_is_dropped(start_sim: StartSim) -> None:
    settings = WsSettings(ping_interval_s=0.03, pong_timeout_s=0.25)
    server = await start_sim(rate=0, ws=settings)
    async with aiohttp.ClientSession() as session:
        polite = await session.ws_connect(server.ws_url + DEPTH, autoping=False)
        rude = await session.ws_connect(server.ws_url + DEPTH, autoping=False)
        pings = 0
        async with asyncio.timeout(5):
            while pings < 15:  # 15 x 30 ms > the 250 ms pong timeout
                msg = await polite.receive()
                assert msg.type == aiohttp.WSMsgType.PING
                await polite.pong(msg.data)
                pings += 1
            while (msg := await rude.receive()).type == aiohttp.WSMsgType.PING:
                pass
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1008
        assert not polite.closed
        await polite.close()
        await rude.close()
