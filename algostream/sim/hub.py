"""WebSocket connection plumbing shared by the Binance and Coinbase endpoints.

Each connection gets an outbound queue drained by its own writer task, so a slow client
never stalls the market; a client whose queue overflows is disconnected (as exchanges do).
The server pings every ``ping_interval_s`` and closes a connection that has not answered
with a pong within ``pong_timeout_s``, and closes connections older than ``max_age_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

TEXT = WSMsgType.TEXT
_background: set[asyncio.Task[None]] = set()


def spawn(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` in the background, keeping a reference until it is done."""
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


@dataclass(frozen=True)
class WsSettings:
    """Connection policy (Binance defaults: ping 20 s, pong within 60 s, 24 h lifetime)."""

    ping_interval_s: float = 20.0
    pong_timeout_s: float = 60.0
    max_age_s: float = 24 * 3600.0
    max_queue: int = 200_000
    close_timeout_s: float = 2.0


class WsClient:
    """One connected WebSocket with its outbound queue, writer and pinger."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        settings: WsSettings,
        now: Callable[[], float],
    ) -> None:
        self.ws = ws
        self.request = request
        self.settings = settings
        self._now = now
        self.opened_at = now()
        self.last_pong = self.opened_at
        self.queue: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self.closing = False
        self.frames_sent = 0
        self.pings_sent = 0

    def push(self, frame: bytes) -> bool:
        """Queue one text frame (already UTF-8 JSON); False if the connection is closing."""
        if self.closing:
            return False
        self.queue.append(frame)
        self._wake.set()
        if len(self.queue) > self.settings.max_queue:
            self.closing = True
            self.queue.clear()
            spawn(self.close(WSCloseCode.POLICY_VIOLATION, "slow consumer"))
            return False
        return True

    async def close(self, code: int = WSCloseCode.GOING_AWAY, message: str = "") -> None:
        """Close with a close frame (a graceful disconnect)."""
        self.closing = True
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=message.encode())

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (a network failure)."""
        self.closing = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def run_writer(self) -> None:
        """Send queued frames in order until the connection ends."""
        ws, queue = self.ws, self.queue
        try:
            while not ws.closed:
                if not queue:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await ws.send_frame(queue.popleft(), TEXT)
                self.frames_sent += 1
        except (ConnectionError, RuntimeError):
            self.closing = True

    async def run_pinger(self) -> None:
        """Ping periodically; close on a missing pong or at the maximum connection age."""
        s = self.settings
        while not self.ws.closed:
            await asyncio.sleep(s.ping_interval_s)
            now = self._now()
            if now - self.last_pong > s.pong_timeout_s:
                await self.close(WSCloseCode.POLICY_VIOLATION, "pong timeout")
                return
            if now - self.opened_at > s.max_age_s:
                await self.close(WSCloseCode.GOING_AWAY, "connection age limit")
                return
            try:
                await self.ws.ping(str(int(now * 1000)).encode())
                self.pings_sent += 1
            except (ConnectionError, RuntimeError):
                return


OnText = Callable[[WsClient, str], Awaitable[None]]


async def serve_websocket(
    request: web.Request,
    settings: WsSettings,
    on_open: Callable[[WsClient], None],
    on_text: OnText,
    on_close: Callable[[WsClient], None],
) -> web.WebSocketResponse:
    """Run one WebSocket connection: writer + pinger tasks and the receive loop."""
    ws = web.WebSocketResponse(
        autoping=False, compress=False, max_msg_size=1 << 16, timeout=settings.close_timeout_s
    )
    await ws.prepare(request)
    loop = asyncio.get_running_loop()
    client = WsClient(ws, request, settings, loop.time)
    on_open(client)
    tasks = [loop.create_task(client.run_writer()), loop.create_task(client.run_pinger())]
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await on_text(client, msg.data)
            elif msg.type == WSMsgType.BINARY:
                await on_text(client, msg.data.decode("utf-8", "replace"))
            elif msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                client.last_pong = loop.time()
    except ConnectionError:
        pass
    finally:
        client.closing = True
        on_close(client)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return ws
