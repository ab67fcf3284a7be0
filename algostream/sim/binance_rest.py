"""Binance spot REST market-data endpoints: ``/api/v3/depth``, ``exchangeInfo``, ``time``,
``ping``. Errors are Binance-shaped: ``{"code": -1121, "msg": "Invalid symbol."}``."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from algostream.sim.binance_errors import ApiError, invalid_symbol, optional_int, symbol_param
from algostream.sim.errors import UnknownSymbolError
from algostream.sim.exchange import SimExchange
from algostream.sim.market import Level
from algostream.sim.spec import SymbolSpec

EXCHANGE_KEY: web.AppKey[SimExchange] = web.AppKey("sim_exchange", SimExchange)
DEPTH_LIMITS = (1, 5000)
DEFAULT_DEPTH_LIMIT = 100


def binance_error(code: int, msg: str, status: int = 400) -> web.Response:
    """A Binance-style error response."""
    return web.Response(
        status=status,
        body=orjson.dumps({"code": code, "msg": msg}),
        content_type="application/json",
    )


def json_response(data: Any) -> web.Response:
    """A compact JSON response (orjson)."""
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def _p8(value: Decimal) -> str:
    return f"{value:.8f}"


def _levels(levels: list[Level], limit: int) -> list[list[str]]:
    return [[_p8(p), _p8(q)] for p, q in levels[:limit]]


def known_symbol(request: web.Request, params: Mapping[str, str] | None = None) -> str:
    """The ``symbol`` parameter: -1102 missing, -1100 illegal, -1121 not simulated."""
    symbol = symbol_param(params if params is not None else request.query)
    if symbol not in request.app[EXCHANGE_KEY].market.symbols:
        raise invalid_symbol()
    return symbol


async def depth(request: web.Request) -> web.Response:
    """``GET /api/v3/depth?symbol=&limit=``: the current book with ``lastUpdateId``."""
    ex = request.app[EXCHANGE_KEY]
    symbol = known_symbol(request)
    limit = min(optional_int(request.query, "limit", DEFAULT_DEPTH_LIMIT) or 0, DEPTH_LIMITS[1])
    if limit < DEPTH_LIMITS[0]:
        raise ApiError(400, -1100, f"Illegal value for parameter 'limit': {limit}.")
    bids, asks = ex.market.book(symbol)
    return json_response(
        {
            "lastUpdateId": ex.market.last_update_id(symbol),
            "bids": _levels(bids, limit),
            "asks": _levels(asks, limit),
        }
    )


def symbol_info(spec: SymbolSpec) -> dict[str, Any]:
    """One ``exchangeInfo`` symbol entry with PRICE_FILTER, LOT_SIZE and NOTIONAL."""
    return {
        "symbol": spec.symbol,
        "status": "TRADING",
        "baseAsset": spec.base_asset,
        "baseAssetPrecision": 8,
        "quoteAsset": spec.quote_asset,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "permissions": ["SPOT"],
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": _p8(spec.tick_size),
                "maxPrice": _p8(Decimal(1_000_000)),
                "tickSize": _p8(spec.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": _p8(spec.step_size),
                "maxQty": _p8(Decimal(9000)),
                "stepSize": _p8(spec.step_size),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": _p8(spec.min_notional),
                "applyMinToMarket": True,
                "maxNotional": _p8(Decimal(9_000_000)),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
    }


def wanted_symbols(request: web.Request, known: tuple[str, ...]) -> list[str]:
    """``symbol=`` or ``symbols=["A","B"]`` (all symbols when neither); -1100/-1121."""
    if "symbol" in request.query:
        wanted = [symbol_param(request.query)]
    elif "symbols" in request.query:
        try:
            parsed = orjson.loads(request.query["symbols"])
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, list) or not all(isinstance(s, str) for s in parsed):
            raise ApiError(400, -1100, "Illegal characters found in parameter 'symbols'.")
        wanted = parsed
    else:
        return list(known)
    if any(s not in known for s in wanted):
        raise invalid_symbol()
    return wanted


async def exchange_info(request: web.Request) -> web.Response:
    """``GET /api/v3/exchangeInfo[?symbol=|?symbols=[...]]``."""
    ex = request.app[EXCHANGE_KEY]
    wanted = wanted_symbols(request, ex.market.symbols)
    try:
        symbols = [symbol_info(ex.spec(s)) for s in wanted]
    except UnknownSymbolError:
        raise invalid_symbol() from None
    return json_response(
        {
            "timezone": "UTC",
            "serverTime": ex.now_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                },
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }
    )


async def server_time(request: web.Request) -> web.Response:
    """``GET /api/v3/time``."""
    return json_response({"serverTime": request.app[EXCHANGE_KEY].now_ms()})


async def ping(request: web.Request) -> web.Response:
    """``GET /api/v3/ping``."""
    return json_response({})


def add_binance_rest_routes(app: web.Application) -> None:
    """Mount the market-data REST endpoints (and those of :mod:`.binance_market`)."""
    from algostream.sim.binance_market import add_market_routes

    add_market_routes(app)
    app.router.add_get("/api/v3/depth", depth)
    app.router.add_get("/api/v3/exchangeInfo", exchange_info)
    app.router.add_get("/api/v3/time", server_time)
    app.router.add_get("/api/v3/ping", ping)
