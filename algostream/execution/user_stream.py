"""Binance user data stream for live order and balance updates, with REST as the backstop.

:class:`UserDataStream` keeps one stream open: it takes a listen key (``POST
/api/v3/userDataStream``; USD-M futures: ``/fapi/v1/listenKey``, the client's
``user_stream_path``), connects to ``{ws_url}/ws/<listenKey>`` (futures: ``ws_url`` is the
``fstream`` host), and hands every event to ``on_event`` (spot ``executionReport`` and
``outboundAccountPosition``; futures ``ORDER_TRADE_UPDATE`` and ``ACCOUNT_UPDATE``, read by
:mod:`algostream.execution.usdm_stream`). It sends the
keepalive (``PUT``) every ``keepalive_s`` (Binance: the key lapses after 60 minutes
without one), and reconnects with capped, jittered backoff when the connection drops,
the key expires (``listenKeyExpired``) or the keepalive is refused.

Nothing is lost across a reconnect: right after each connection is up (and before any of
its events is handled) ``on_connected`` runs; the caller queries the venue over REST for
the orders it tracks, so whatever happened while the stream was down is caught up. A
report that arrives after the query already covered it is stale and changes nothing (see
:meth:`ExecutionRouter.on_execution_report`). While the stream cannot be established,
``on_poll`` runs every ``poll_interval_s`` (the polling fallback).

    stream = UserDataStream(client, "wss://stream.binance.com:9443", on_event=handle,
                            on_connected=catch_up, on_poll=catch_up)
    task = asyncio.create_task(stream.run())
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from algostream.execution.binance_client import BinanceRestClient
from algostream.execution.errors import BinanceError, ExecutionError, RateLimitedError
from algostream.execution.retry import RetryPolicy, Sleep

log = logging.getLogger(__name__)
OnEvent = Callable[[dict[str, Any]], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]
KEEPALIVE_S = 30 * 60.0
_DOWN = (OSError, TimeoutError, WebSocketException, ExecutionError, orjson.JSONDecodeError)


def stream_url_for(api_url: str) -> str:
    """The WebSocket base serving ``api_url``'s user data stream when none is configured
    (the simulator serves both on one port): ``http://h:p`` -> ``ws://h:p``."""
    if api_url.startswith("https://"):
        return "wss://" + api_url.removeprefix("https://").rstrip("/")
    return "ws://" + api_url.removeprefix("http://").rstrip("/")


@dataclass
class StreamStats:
    """What the stream did (for logs, metrics and tests)."""

    connects: int = 0
    events: int = 0
    keepalives: int = 0
    polls: int = 0
    drops: int = 0


class UserDataStream:
    """One user data stream connection, kept up (see module docs)."""

    def __init__(
        self,
        client: BinanceRestClient,
        ws_url: str,
        *,
        on_event: OnEvent,
        on_connected: Hook,
        on_poll: Hook,
        keepalive_s: float = KEEPALIVE_S,
        poll_interval_s: float = 5.0,
        backoff: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._ws_url = ws_url.rstrip("/")
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_poll = on_poll
        self._keepalive_s = keepalive_s
        self._poll_s = poll_interval_s
        self._backoff = backoff or RetryPolicy(attempts=10, base_delay_s=0.5, max_delay_s=30.0)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.stats = StreamStats()
        #: set while a stream is connected and caught up
        self.live = asyncio.Event()
        self._ws: ClientConnection | None = None

    async def run(self) -> None:
        """Keep the stream up until cancelled."""
        failures = 0
        while True:
            try:
                await self._session()
                failures = 0
            except asyncio.CancelledError:
                raise
            except (*_DOWN, BinanceError, RateLimitedError) as exc:
                failures += 1
                log.warning("user data stream down (%s); polling until it is back", exc)
            self.stats.drops += 1
            await self._poll_for(self._backoff.delay(min(failures, 10), self._rng))

    async def drop(self) -> None:
        """Close the current connection abruptly (tests, and a refused keepalive)."""
        if self._ws is not None:
            self._ws.transport.abort()

    async def _session(self) -> None:
        key = await self._client.new_listen_key()
        async with connect(f"{self._ws_url}/ws/{key}", open_timeout=10) as ws:
            self._ws = ws
            self.stats.connects += 1
            await self._on_connected()  # REST catch-up before any of this connection's events
            self.live.set()
            keepalive = asyncio.create_task(self._keepalive(key))
            try:
                await self._read(ws)
            finally:
                self.live.clear()
                self._ws = None
                keepalive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keepalive

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            event = orjson.loads(raw)
            if not isinstance(event, dict):
                continue
            if "stream" in event and "data" in event:  # a combined-stream wrapper
                event = event["data"]
            if event.get("e") == "listenKeyExpired":
                log.warning("listen key expired; reconnecting with a new one")
                return
            self.stats.events += 1
            await self._on_event(event)

    async def _keepalive(self, key: str) -> None:
        while True:
            await self._sleep(self._keepalive_s)
            try:
                await self._client.keepalive_listen_key(key)
                self.stats.keepalives += 1
            except (BinanceError, RateLimitedError, ExecutionError) as exc:
                log.warning("listen key keepalive refused (%s); reconnecting", exc)
                await self.drop()
                return

    async def _poll_for(self, seconds: float) -> None:
        """The fallback while the stream is down: poll now and every ``poll_interval_s``."""
        remaining = seconds
        while True:
            self.stats.polls += 1
            try:
                await self._on_poll()
            except (*_DOWN, BinanceError, RateLimitedError) as exc:
                log.warning("order poll failed: %s", exc)
            if remaining <= 0:
                return
            step = min(self._poll_s, remaining)
            await self._sleep(step)
            remaining -= step
