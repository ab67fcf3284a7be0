"""The simulator's HTTP + WebSocket server (aiohttp, one port) and its control API.

Typical use (tests, the CLI)::

    server = SimServer(SimExchange(SimMarket.create(["BTCUSDT"], seed=1), rate=1000))
    port = await server.start()      # port 0 in, the bound port out
    ...                              # ws://127.0.0.1:{port}/stream?streams=btcusdt@depth
    await server.stop()

Routes: Binance ``/stream``, ``/ws``, ``/ws/{streams}`` (a listen key is a stream name),
``/api/v3/...`` (market data here and in :mod:`.binance_market`, weight-limited by
:mod:`.ratelimit`; trading by :mod:`.trading` when set up); Coinbase
``/coinbase``; Binance USD-M futures ``/fstream/...`` and ``/fapi/v1/...``
(:mod:`.binance_usdm`); control ``GET /sim/book?symbol=&limit=``, ``GET /sim/stats``,
``POST /sim/fault`` (JSON ``{"kind": ..., ...}``), ``POST /sim/pause``,
``POST /sim/resume``, ``POST /sim/rate`` (``{"rate": n}``), ``POST /sim/playback/start``.
Extra routes (e.g. trading) are mounted with ``setup=[fn(app, market)]`` before start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from algostream.sim.binance_rest import EXCHANGE_KEY, add_binance_rest_routes, json_response
from algostream.sim.binance_usdm_rest import add_usdm_routes
from algostream.sim.capture import PlaybackSource
from algostream.sim.errors import SimConfigError, SimError, UnknownSymbolError
from algostream.sim.exchange import Autostart, SimExchange
from algostream.sim.hub import WsClient, WsSettings, serve_websocket
from algostream.sim.market import BookProvider, SimMarket
from algostream.sim.ratelimit import WeightLimiter, install_limiter

Setup = Callable[[web.Application, BookProvider], None]


async def binance_ws(request: web.Request) -> web.WebSocketResponse:
    """Binance ``/stream?streams=a/b`` (combined) and ``/ws[/a/b]`` (raw) endpoints."""
    ex = request.app[EXCHANGE_KEY]
    combined = request.path.startswith("/stream")
    spec = request.query.get("streams", "") if combined else request.match_info.get("streams", "")
    streams = [s for s in spec.split("/") if s]

    async def on_text(client: WsClient, text: str) -> None:
        await ex.binance.handle_text(client, text)

    return await serve_websocket(
        request,
        ex.ws,
        lambda c: ex.on_binance_open(c, combined, streams),
        on_text,
        ex.binance.remove,
    )


async def coinbase_ws(request: web.Request) -> web.WebSocketResponse:
    """Coinbase Advanced Trade market data (``/coinbase``)."""
    ex = request.app[EXCHANGE_KEY]

    async def on_text(client: WsClient, text: str) -> None:
        await ex.coinbase.handle_text(client, text, ex.clock_ns())

    return await serve_websocket(request, ex.ws, ex.coinbase.add, on_text, ex.coinbase.remove)


def _bad(message: str, status: int = 400) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps({"error": message}), content_type="application/json"
    )


def _dec(value: Decimal) -> str:
    return str(value)


async def sim_book(request: web.Request) -> web.Response:
    """``GET /sim/book?symbol=&limit=``: the simulator's true book (all levels by default)."""
    ex = request.app[EXCHANGE_KEY]
    symbol = request.query.get("symbol", "").upper()
    try:
        bids, asks = ex.market.book(symbol)
        limit = int(request.query.get("limit", "0")) or None
    except UnknownSymbolError as exc:
        return _bad(str(exc), 404)
    except ValueError:
        return _bad(f"limit={request.query.get('limit')!r} is not an integer")
    last = ex.market.last_trade_price(symbol)
    return json_response(
        {
            "symbol": symbol,
            "lastUpdateId": ex.market.last_update_id(symbol),
            "bids": [[_dec(p), _dec(q)] for p, q in bids[:limit]],
            "asks": [[_dec(p), _dec(q)] for p, q in asks[:limit]],
            "lastTradePrice": None if last is None else _dec(last),
        }
    )


async def sim_stats(request: web.Request) -> web.Response:
    """``GET /sim/stats``: event and connection counters."""
    return json_response(request.app[EXCHANGE_KEY].stats())


async def apply_fault(ex: SimExchange, body: dict[str, Any]) -> dict[str, Any]:
    """Run one fault described by ``body`` (see :func:`sim_fault`); returns a summary."""
    kind = body.get("kind")
    if kind == "drop_depth":
        ex.drop_depth(int(body.get("count", 1)))
    elif kind == "disconnect":
        abrupt = bool(body.get("abrupt", False))
        return {"kind": kind, "closed": await ex.disconnect_all(abrupt, wait=False)}
    elif kind == "silence":
        ex.silence(float(body.get("seconds", 5)))
    elif kind == "malformed":
        return {"kind": kind, "sent": ex.send_malformed(int(body.get("count", 1)))}
    elif kind == "server_shutdown":
        after = body.get("close_after_s")
        return {
            "kind": kind,
            "notified": ex.send_server_shutdown(None if after is None else float(after)),
        }
    elif kind == "crossed":
        ex.send_crossed(str(body.get("symbol") or ex.market.symbols[0]))
    elif kind == "liquidation":
        symbol = str(body.get("symbol") or ex.market.symbols[0]).upper()
        ex.spec(symbol)  # unknown symbols are refused by name
        try:
            qty = Decimal(str(body.get("qty", "1")))
        except ArithmeticError:
            raise SimConfigError(f"qty={body.get('qty')!r}: not a number") from None
        side = str(body.get("side", "SELL"))
        event = ex.usdm.publish_force_order(ex.market, symbol, side, qty, ex.now_ms())
        return {"kind": kind, "event": event}
    elif kind == "user_event":  # any payload on every user data stream (bad input)
        payload = body.get("event")
        if not isinstance(payload, dict):
            raise SimConfigError(f"event={payload!r}: expected a JSON object")
        for keys in ex.listen_keys:
            keys.emit(payload)
        return {"kind": kind, "keys": sum(len(keys.live()) for keys in ex.listen_keys)}
    elif kind == "expire_listen_keys":
        return {"kind": kind, "expired": sum(keys.expire_all() for keys in ex.listen_keys)}
    else:
        raise SimConfigError(
            f"kind={kind!r}: expected drop_depth, disconnect, silence, malformed, "
            "server_shutdown, crossed, liquidation, user_event or expire_listen_keys"
        )
    return {"kind": kind}


async def sim_fault(request: web.Request) -> web.Response:
    """``POST /sim/fault`` with ``{"kind": "drop_depth", "count": 3}`` and the like."""
    try:
        body = orjson.loads(await request.read())
        if not isinstance(body, dict):
            raise SimConfigError(f"body={body!r}: expected a JSON object")
        return json_response({"ok": True, **await apply_fault(request.app[EXCHANGE_KEY], body)})
    except orjson.JSONDecodeError as exc:
        return _bad(f"body is not JSON: {exc}")
    except (SimError, ValueError, TypeError) as exc:
        return _bad(str(exc))


async def sim_pause(request: web.Request) -> web.Response:
    """``POST /sim/pause``: stop generating events."""
    request.app[EXCHANGE_KEY].pause()
    return json_response({"ok": True, "paused": True})


async def sim_resume(request: web.Request) -> web.Response:
    """``POST /sim/resume``."""
    request.app[EXCHANGE_KEY].resume()
    return json_response({"ok": True, "paused": False})


async def sim_rate(request: web.Request) -> web.Response:
    """``POST /sim/rate`` with ``{"rate": events_per_second}``."""
    try:
        body = orjson.loads(await request.read())
        request.app[EXCHANGE_KEY].set_rate(float(body["rate"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, SimError) as exc:
        return _bad(f'expected {{"rate": number >= 0}}: {exc}')
    return json_response({"ok": True, "rate": request.app[EXCHANGE_KEY].rate})


async def sim_playback_start(request: web.Request) -> web.Response:
    """``POST /sim/playback/start``."""
    request.app[EXCHANGE_KEY].start_playback()
    return json_response({"ok": True})


def build_app(exchange: SimExchange, setup: Iterable[Setup] = ()) -> web.Application:
    """The aiohttp application serving ``exchange``; ``setup`` hooks add more routes."""
    app = web.Application()
    app[EXCHANGE_KEY] = exchange
    install_limiter(app, WeightLimiter(exchange.now_ms))
    add_binance_rest_routes(app)
    add_usdm_routes(app)
    app.router.add_get("/stream", binance_ws)
    app.router.add_get("/ws", binance_ws)
    app.router.add_get("/ws/{streams:.+}", binance_ws)
    app.router.add_get("/coinbase", coinbase_ws)
    app.router.add_get("/sim/book", sim_book)
    app.router.add_get("/sim/stats", sim_stats)
    app.router.add_post("/sim/fault", sim_fault)
    app.router.add_post("/sim/pause", sim_pause)
    app.router.add_post("/sim/resume", sim_resume)
    app.router.add_post("/sim/rate", sim_rate)
    app.router.add_post("/sim/playback/start", sim_playback_start)
    app.cleanup_ctx.append(exchange.lifespan)
    app.on_shutdown.append(exchange.close_connections)
    for hook in setup:
        hook(app, exchange.market)
    return app


class SimServer:
    """Runs :func:`build_app` on ``host:port`` (port 0 = ephemeral); see the module doc."""

    def __init__(
        self,
        exchange: SimExchange,
        host: str = "127.0.0.1",
        port: int = 0,
        setup: Iterable[Setup] = (),
    ) -> None:
        self.exchange = exchange
        self.host = host
        self.port = port
        self.app = build_app(exchange, setup)
        self._runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Bind and serve; returns the bound port."""
        runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        """Close every connection and the listening socket."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def http_url(self) -> str:
        """``http://host:port`` (the REST base)."""
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://host:port`` (append ``/stream?streams=...`` or ``/coinbase``)."""
        return f"ws://{self.host}:{self.port}"


async def run_simulator(
    host: str = "127.0.0.1",
    port: int = 8765,
    symbols: Sequence[str] = ("BTCUSDT", "ETHUSDT"),
    seed: int = 42,
    rate: float = 100.0,
    *,
    start_prices: dict[str, Decimal | str] | None = None,
    levels: int = 50,
    capture: str | None = None,
    capture_http: str | None = None,
    speed: float = 1.0,
    autostart: Autostart = "connect",
    ws: WsSettings | None = None,
    setup: Iterable[Setup] = (),
    ready: Callable[[int], None] | None = None,
    batch_depth: bool = True,
    funding_interval_ms: int | None = None,
) -> None:
    """Serve a synthetic market (or a capture playback) until cancelled."""
    source: SimMarket | PlaybackSource
    if capture:
        source = PlaybackSource.from_files(capture, capture_http)
    else:
        source = SimMarket.create(symbols, seed, start_prices=start_prices, levels=levels)
    exchange = SimExchange(
        source, rate=rate, speed=speed, autostart=autostart, ws=ws, batch_depth=batch_depth
    )
    if funding_interval_ms is not None:
        exchange.usdm.funding_interval_ms = funding_interval_ms
    server = SimServer(exchange, host, port, setup)
    bound = await server.start()
    if ready is not None:
        ready(bound)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
