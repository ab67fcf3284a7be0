"""Fixtures for the execution tests: a fake clock, a movable book, a live trading simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from execution_helpers import API_KEY, API_SECRET, FILTERS, FakeClock, StaticBook, Venue, levels

from algostream.sim.trading import add_trading_routes


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def book() -> StaticBook:
    return StaticBook(
        bids=levels(("100.00", "1"), ("99.99", "2"), ("99.98", "5")),
        asks=levels(("100.01", "1"), ("100.02", "2"), ("100.05", "5")),
    )


@pytest.fixture
async def venue(clock: FakeClock, book: StaticBook) -> AsyncIterator[Venue]:
    app = web.Application()
    sim = add_trading_routes(
        app, book, API_KEY, API_SECRET, FILTERS, clock_ms=clock.now_ms, hang_s=10.0
    )
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Venue(sim, f"http://{host}:{port}", book, clock)
    finally:
        sim.release()
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client
