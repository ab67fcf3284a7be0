"""A local HTTP server that records what it receives: webhooks, or any request a stand-in
venue would get (not a test itself)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    """Requests the server got: (path, JSON body, headers)."""

    requests: list[tuple[str, Any, dict[str, str]]] = field(default_factory=list)
    #: path -> HTTP statuses to answer first, in order (then 200)
    fail_first: dict[str, list[int]] = field(default_factory=dict)
    #: paths that do not answer until the server stops (a hung webhook)
    hang: set[str] = field(default_factory=set)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def on(self, path: str) -> list[Any]:
        return [body for p, body, _ in self.requests if p == path]

    async def wait_for(self, path: str, n: int, timeout_s: float = 20) -> list[Any]:
        deadline = time.monotonic() + timeout_s
        while len(self.on(path)) < n:
            assert time.monotonic() < deadline, f"{path}: {len(self.on(path))} of {n} received"
            await asyncio.sleep(0.02)
        return self.on(path)


@asynccontextmanager
async def webhook_server() -> AsyncIterator[tuple[str, Received]]:
    """``(base_url, received)`` of a server on a free loopback port."""
    got = Received()

    async def handle(request: web.Request) -> web.Response:
        if request.path in got.hang:
            await got.released.wait()
        statuses = got.fail_first.get(request.path)
        body = await request.json() if request.content_type == "application/json" else None
        got.requests.append((request.path, body, dict(request.headers)))
        if statuses:
            return web.json_response({"ok": False}, status=statuses.pop(0))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)  # (any method: a stand-in venue too)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", got
    finally:
        got.released.set()
        await runner.cleanup()
