"""Playback of the recorded Binance.US capture through the simulator's endpoints."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from conftest import StartSim
from simtest_helpers import LocalBook, decimal_levels, ws_connect

from algostream.sim import CaptureFormatError, PlaybackSource, SimServer, read_ws_capture

DATA = Path(__file__).parents[2] / "data" / "binance-us-capture"
WS_FILE, HTTP_FILE = DATA / "BINANCE_US.ws.1.0", DATA / "BINANCE_US.http.0.0"


def recorded() -> tuple[list[str], list[str]]:
    """(stream names from the header URL, frame bodies), read without the sim's parser."""
    lines = WS_FILE.read_text().splitlines()
    url = lines[0].split(" <-> ")[0]
    streams = parse_qs(urlsplit(url).query)["streams"][0].split("/")
    return streams, [ln.partition(": ")[2] for ln in lines[1:] if ln.strip()]


def recorded_snapshots() -> dict[str, dict[str, object]]:
    out = {}
    for line in filter(None, HTTP_FILE.read_text().splitlines()):
        url, _, rest = line.partition(" -> ")
        out[parse_qs(urlsplit(url).query)["symbol"][0]] = orjson.loads(rest.partition(": ")[2])
    return out


def playback() -> PlaybackSource:
    return PlaybackSource.from_files(WS_FILE, HTTP_FILE)


async def wait_done(server: SimServer) -> None:
    async with asyncio.timeout(20):
        while not server.exchange.playback_done:
            await asyncio.sleep(0.01)


async def test_playback_forwards_the_recorded_frames_verbatim(start_sim: StartSim) -> None:
    streams, bodies = recorded()
    server = await start_sim(source=playback(), speed=0, autostart="manual")
    got: list[str] = []
    async with ws_connect(f"{server.ws_url}/stream?streams={'/'.join(streams)}") as ws:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            await http.post("/sim/playback/start")
        async with asyncio.timeout(10):
            while len(got) < len(bodies):
                got.append(str(await ws.recv()))
    assert got == bodies


async def test_rest_serves_the_captured_snapshot_before_playback(start_sim: StartSim) -> None:
    server = await start_sim(source=playback(), autostart="manual")
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        for symbol, snap in recorded_snapshots().items():
            served = await http.get("/api/v3/depth", params={"symbol": symbol, "limit": 5000})
            assert served.json() == snap
        info = (await http.get("/api/v3/exchangeInfo", params={"symbol": "COMPUSDT"})).json()
    price_filter = info["symbols"][0]["filters"][0]
    assert Decimal(price_filter["tickSize"]) == Decimal("0.01")


async def test_played_book_equals_an_independent_sync_of_the_capture(start_sim: StartSim) -> None:
    server = await start_sim(source=playback(), speed=0, autostart="immediate")
    await wait_done(server)
    books = {s: LocalBook(snap) for s, snap in recorded_snapshots().items()}
    for body in recorded()[1]:
        data = orjson.loads(body)["data"]
        if data.get("e") == "depthUpdate":
            books[data["s"]].apply(data)
    async with httpx.AsyncClient(base_url=server.http_url) as http:
        for symbol, book in books.items():
            truth = (await http.get("/sim/book", params={"symbol": symbol})).json()
            depth = (await http.get("/api/v3/depth", params={"symbol": symbol})).json()
            bids, asks = book.levels()
            assert truth["lastUpdateId"] == depth["lastUpdateId"] == book.last_u
            assert decimal_levels(truth["bids"]) == bids and decimal_levels(truth["asks"]) == asks
    assert server.exchange.market.last_trade_price("OMGBUSD") is not None


async def test_playback_honours_accelerated_timing(start_sim: StartSim) -> None:
    frames = read_ws_capture(WS_FILE)
    span, speed = frames[-1].ts - frames[0].ts, 60.0
    server = await start_sim(source=playback(), speed=speed, autostart="connect")
    loop = asyncio.get_running_loop()
    async with ws_connect(f"{server.ws_url}/stream?streams=omgbusd@depth@100ms") as ws:
        started = loop.time()
        await ws.recv()
        await wait_done(server)
        elapsed = loop.time() - started
    assert elapsed >= 0.9 * span / speed


def test_a_broken_capture_line_is_reported_with_its_place(tmp_path: Path) -> None:
    bad = tmp_path / "x.ws"
    bad.write_text(
        'wss://h/stream?streams=a@trade <-> 1.0\n1.5: {"stream":"a@trade","data":{}}\n'
        "oops no timestamp\n"
    )
    with pytest.raises(CaptureFormatError, match=r"x\.ws:3"):
        read_ws_capture(bad)
