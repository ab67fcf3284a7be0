"""The simulated venue: a market source, the Binance and Coinbase hubs, the event loops
(synthetic generation at a configured rate, or capture playback) and the fault knobs.

>>> ex = SimExchange(SimMarket.create(["BTCUSDT"], seed=1), rate=500)
>>> ex.drop_depth(3); ex.binance.drop_depth_remaining
3
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import orjson
from aiohttp import web

from algostream.sim.binance import BinanceHub, malformed_frames, server_shutdown_frame
from algostream.sim.binance_usdm import UsdmHub
from algostream.sim.capture import CaptureFrame, PlaybackSource
from algostream.sim.coinbase import CoinbaseHub
from algostream.sim.errors import SimConfigError
from algostream.sim.hub import WsClient, WsSettings, spawn
from algostream.sim.market import BookProvider, SimMarket
from algostream.sim.spec import SymbolSpec
from algostream.sim.tape import INTERVALS_MS, TradeTape, kline_event
from algostream.sim.user_stream import ListenKeys

Autostart = Literal["connect", "immediate", "manual"]
MAX_BATCH = 2000


class SimExchange:
    """Everything behind the simulator's endpoints; see :func:`algostream.sim.server.build_app`.

    ``rate`` is market events per second. ``batch_depth`` (default) sends depth streams
    and Coinbase ``market_trades`` batched per interval as the venues do; False sends one
    message per event. ``speed`` scales playback timing (2.0 = twice as fast, 0 = as fast
    as possible). ``clock_ns`` stamps frames (wall clock by default; inject a fake one in
    tests). ``tape`` keeps the simulated trades for the REST market data, and
    ``market_listeners`` are called after every batch of events (the trading API fills
    resting orders there).
    """

    def __init__(
        self,
        source: SimMarket | PlaybackSource,
        *,
        rate: float = 100.0,
        ws: WsSettings | None = None,
        speed: float = 1.0,
        autostart: Autostart = "connect",
        heartbeat_interval_s: float = 1.0,
        clock_ns: Callable[[], int] = time.time_ns,
        tick_s: float = 0.005,
        batch_depth: bool = True,
    ) -> None:
        if rate < 0 or speed < 0:
            raise SimConfigError(f"rate={rate} and speed={speed} must be >= 0")
        self.source = source
        self.rate = float(rate)
        self.ws = ws or WsSettings()
        self.speed = speed
        self.autostart = autostart
        self.heartbeat_interval_s = heartbeat_interval_s
        self.clock_ns = clock_ns
        self.tick_s = tick_s
        self.binance = BinanceHub(batch_depth)
        #: Binance USD-M futures connections (``/fstream``): the same book, futures frames
        self.usdm = UsdmHub(batch_depth)
        market = source if isinstance(source, SimMarket) else None
        self.coinbase = CoinbaseHub(market, batch_trades=batch_depth)
        self._specs: dict[str, SymbolSpec] = {s: source.spec(s) for s in source.symbols}
        self.paused = False
        self._silent_until = 0.0
        self.events_emitted = 0
        self.malformed_sent = 0
        self.playback_done = False
        self._playback_go = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        #: called after every batch of market events (e.g. resting orders fill)
        self.market_listeners: list[Callable[[], None]] = []
        #: the trading APIs' user data stream keys (spot, futures): the key-expiry fault
        self.listen_keys: list[ListenKeys] = []
        self.tape = TradeTape()

    @property
    def market(self) -> BookProvider:
        """The book provider (for ``/sim/book``, REST depth and trading routes)."""
        return self.source

    def spec(self, symbol: str) -> SymbolSpec:
        """The spec of a served symbol (raises UnknownSymbolError)."""
        return self._specs.get(symbol.upper()) or self.source.spec(symbol)

    def now_ms(self) -> int:
        """The injected clock, in ms."""
        return self.clock_ns() // 1_000_000

    # -- lifecycle -----------------------------------------------------------------------
    async def lifespan(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp cleanup context: run the loops while the app runs."""
        loop = asyncio.get_running_loop()
        main = self._generate() if isinstance(self.source, SimMarket) else self._playback()
        self._tasks = [loop.create_task(main), loop.create_task(self._heartbeats())]
        self._tasks.append(loop.create_task(self._flush_depth()))
        if self.autostart == "immediate":
            self.start_playback()
        yield
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close_connections(self, app: web.Application) -> None:
        """aiohttp on_shutdown hook: close every WebSocket so shutdown is prompt."""
        await self.disconnect_all()

    def on_binance_open(self, client: WsClient, combined: bool, streams: list[str]) -> None:
        """Register a Binance connection (and start a 'connect' playback)."""
        self.binance.add(client, combined, streams)
        if self.autostart == "connect":
            self.start_playback()

    def _silent(self, now: float) -> bool:
        return self.paused or now < self._silent_until

    async def _generate(self) -> None:
        loop = asyncio.get_running_loop()
        last, credit = loop.time(), 0.0
        while True:
            await asyncio.sleep(self.tick_s)
            now = loop.time()
            if self._silent(now):
                last, credit = now, 0.0
                continue
            credit = min(credit + (now - last) * self.rate, self.rate * 0.25 + 1.0)
            last = now
            count = min(int(credit), MAX_BATCH)  # bounded work per turn keeps writers fed
            credit -= count
            if count:
                self.emit_events(count)

    def emit_events(self, count: int) -> None:
        """Generate ``count`` market events now and publish them on every feed."""
        market = self.source
        assert isinstance(market, SimMarket)
        now_ns = self.clock_ns()
        now_ms = now_ns // 1_000_000
        specs, binance, coinbase, usdm = self._specs, self.binance, self.coinbase, self.usdm
        with_coinbase = bool(coinbase.clients)
        with_usdm = bool(usdm.clients)
        for _ in range(count):
            ev = market.step(now_ms)
            spec = specs[ev.symbol]
            if ev.trades:
                self.tape.record(ev.symbol, spec, ev.trades)
            binance.publish(ev, spec)
            if with_usdm:
                usdm.publish(ev, spec)
            if with_coinbase:
                coinbase.publish(ev, spec, now_ns)
        self.events_emitted += count
        self._notify_listeners()

    def _notify_listeners(self) -> None:
        for listener in self.market_listeners:
            listener()

    async def _flush_depth(self) -> None:
        """Send the batched messages at their intervals: Binance depth every 100 ms and 1 s,
        Coinbase ``market_trades`` every 250 ms, klines every second (a 50 ms timer)."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + 0.05
        ticks = 0
        while True:
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            next_tick += 0.05
            ticks += 1
            if ticks % 2 == 0:
                self.binance.flush_depth(100)
                self.usdm.flush_depth(100)
            if ticks % 5 == 0:
                self.coinbase.flush_trades(self.clock_ns())
            if ticks % 20 == 0:
                self.binance.flush_depth(1000)
                self.usdm.flush_depth(1000)
                self.publish_klines()
                if not self._silent(loop.time()):
                    self.usdm.publish_marks(self.source, self.now_ms(), 1)
            if ticks % 60 == 0 and not self._silent(loop.time()):
                self.usdm.publish_marks(self.source, self.now_ms(), 3)

    def publish_klines(self) -> None:
        """Send the current kline on every subscribed ``@kline_<interval>`` stream (each
        second, as Binance does), built from the simulated trades."""
        now = self.now_ms()
        for name in self.binance.kline_streams():
            lower, _, kind = name.partition("@")
            symbol, interval = lower.upper(), kind.removeprefix("kline_")
            if symbol not in self._specs or interval not in INTERVALS_MS:
                continue
            start = now - now % INTERVALS_MS[interval]
            event = kline_event(symbol, interval, start, self.tape.since(symbol, start), now)
            self.binance.send(name, orjson.dumps(event))

    async def _heartbeats(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            if not self._silent(loop.time()):
                self.coinbase.heartbeat(self.clock_ns())

    # -- playback ------------------------------------------------------------------------
    def start_playback(self) -> None:
        """Start playing the capture (no-op for a synthetic market or once started)."""
        self._playback_go.set()

    async def _playback(self) -> None:
        source = self.source
        assert isinstance(source, PlaybackSource)
        await self._playback_go.wait()
        loop = asyncio.get_running_loop()
        t0, start = source.frames[0].ts, loop.time()
        for n, frame in enumerate(source.frames[source.position :]):
            if self.speed > 0:
                delay = start + (frame.ts - t0) / self.speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif n % 64 == 0:
                await asyncio.sleep(0)
            while self._silent(loop.time()):
                waited = loop.time()
                await asyncio.sleep(self.tick_s)
                start += loop.time() - waited
            source.apply(frame)
            self._publish_capture_frame(frame)
            self.events_emitted += 1
        self.playback_done = True

    def _publish_capture_frame(self, frame: CaptureFrame) -> None:
        hub = self.binance
        if not hub.wants(frame.stream):
            return
        if "@depth" in frame.stream and hub.drop_depth_remaining > 0:
            hub.drop_depth_remaining -= 1
            hub.depth_dropped += 1
            return
        hub.send(frame.stream, orjson.dumps(frame.data), frame.raw)

    # -- controls and faults -------------------------------------------------------------
    def pause(self) -> None:
        """Stop generating events (connections stay open, pings continue)."""
        self.paused = True

    def resume(self) -> None:
        """Resume generating events."""
        self.paused = False

    def set_rate(self, rate: float) -> None:
        """Change the event rate (events per second)."""
        if rate < 0:
            raise SimConfigError(f"rate={rate} must be >= 0")
        self.rate = float(rate)

    def silence(self, seconds: float) -> None:
        """Fault: send no data (events, heartbeats, playback) for ``seconds``; pings go on."""
        self._silent_until = asyncio.get_running_loop().time() + seconds

    def drop_depth(self, count: int) -> None:
        """Fault: drop the next ``count`` depth messages (a ``U``/``u`` or sequence gap)."""
        self.binance.drop_depth_remaining = count
        self.usdm.drop_depth_remaining = count
        self.coinbase.drop_l2_remaining = count

    async def disconnect_all(self, abrupt: bool = False, wait: bool = True) -> int:
        """Fault: close every WebSocket (``abrupt``: drop TCP without a close frame).

        ``wait=False`` starts the close handshakes and returns at once.
        """
        clients = self.binance.clients + self.usdm.clients + self.coinbase.clients
        if abrupt:
            for client in clients:
                client.abort()
        elif wait:
            await asyncio.gather(*(c.close() for c in clients))
        else:
            for client in clients:
                spawn(client.close())
        return len(clients)

    def send_malformed(self, count: int) -> int:
        """Fault: send ``count`` malformed frames on every connection.

        Returns how many frames were queued in all (``count`` per open connection); the
        running total is ``malformed_sent`` in :meth:`stats`.
        """
        if count < 0:
            raise SimConfigError(f"count={count} must be >= 0")
        symbol = self.source.symbols[0]
        sent = 0
        for frame in malformed_frames(symbol, count):
            sent += self.binance.broadcast(frame) + self.coinbase.broadcast(frame)
            sent += self.usdm.broadcast(frame)
        self.malformed_sent += sent
        return sent

    def send_server_shutdown(self, close_after_s: float | None = None) -> int:
        """Fault: Binance ``serverShutdown`` notice; optionally close those sockets later."""
        clients = self.binance.clients + self.usdm.clients
        self.binance.broadcast(server_shutdown_frame(self.now_ms()))
        self.usdm.broadcast(server_shutdown_frame(self.now_ms()))
        if close_after_s is not None:
            loop = asyncio.get_running_loop()

            def close_them() -> None:
                for c in clients:
                    spawn(c.close(1001, "server shutdown"))

            loop.call_later(close_after_s, close_them)
        return len(clients)

    def send_crossed(self, symbol: str) -> None:
        """Fault: publish a bid above the best ask (healed by the next event)."""
        market = self.source
        if not isinstance(market, SimMarket):
            raise SimConfigError("crossed-book fault needs the synthetic market, not playback")
        ev = market.inject_crossed(symbol, self.now_ms())
        spec = self._specs[ev.symbol]
        self.binance.flush_all()  # the crossed change is its own message, not merged away
        self.binance.publish(ev, spec)
        self.binance.flush_all()
        for hub in (self.usdm,):
            hub.flush_all()
            hub.publish(ev, spec)
            hub.flush_all()
        self.coinbase.publish(ev, spec, self.clock_ns())
        self._notify_listeners()

    def stats(self) -> dict[str, Any]:
        """Counters for ``/sim/stats``."""
        out: dict[str, Any] = {
            "events": self.events_emitted,
            "rate": self.rate,
            "paused": self.paused,
            "binance_clients": len(self.binance.clients),
            "coinbase_clients": len(self.coinbase.clients),
            "usdm_clients": len(self.usdm.clients),
            "depth_dropped": self.binance.depth_dropped + self.usdm.depth_dropped,
            "l2_dropped": self.coinbase.l2_dropped,
            "frames_published": self.binance.frames_published,
            "malformed_sent": self.malformed_sent,
            "listen_keys": sum(len(keys.live()) for keys in self.listen_keys),
        }
        if isinstance(self.source, PlaybackSource):
            out["playback"] = {
                "position": self.source.position,
                "total": len(self.source.frames),
                "done": self.playback_done,
            }
        return out
