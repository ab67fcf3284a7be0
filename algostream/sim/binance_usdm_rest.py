"""The simulator's Binance USD-M futures endpoints: ``/fstream`` WebSocket streams and
``/fapi/v1`` REST market data (see :mod:`.binance_usdm` for what they carry)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from algostream.sim.binance_errors import ApiError, optional_int
from algostream.sim.binance_rest import EXCHANGE_KEY, json_response, known_symbol, wanted_symbols
from algostream.sim.binance_usdm import INTEREST_RATE, mark_price_event, usdm_id
from algostream.sim.errors import UnknownSymbolError
from algostream.sim.hub import WsClient, serve_websocket
from algostream.sim.spec import SymbolSpec

# --------------------------------------------------------------------------- WebSocket


async def usdm_ws(request: web.Request) -> web.WebSocketResponse:
    """``/fstream/stream?streams=a/b`` (combined) and ``/fstream/ws[/a/b]`` (raw)."""
    ex = request.app[EXCHANGE_KEY]
    combined = request.path.startswith("/fstream/stream")
    spec = request.query.get("streams", "") if combined else request.match_info.get("streams", "")
    streams = [s for s in spec.split("/") if s]

    async def on_text(client: WsClient, text: str) -> None:
        await ex.usdm.handle_text(client, text)

    return await serve_websocket(
        request, ex.ws, lambda c: ex.usdm.add(c, combined, streams), on_text, ex.usdm.remove
    )


# --------------------------------------------------------------------------- REST

DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


async def usdm_depth(request: web.Request) -> web.Response:
    """``GET /fapi/v1/depth?symbol=&limit=`` (limit 5..1000, default 500)."""
    ex = request.app[EXCHANGE_KEY]
    symbol = known_symbol(request)
    limit = optional_int(request.query, "limit", 500) or 0
    if limit not in DEPTH_LIMITS:
        raise ApiError(400, -1100, f"Illegal value for parameter 'limit': {limit}.")
    bids, asks = ex.market.book(symbol)
    now = ex.now_ms()
    return json_response(
        {
            "lastUpdateId": usdm_id(ex.market.last_update_id(symbol)),
            "E": now,
            "T": now,
            "bids": [[f"{p:.8f}", f"{q:.8f}"] for p, q in bids[:limit]],
            "asks": [[f"{p:.8f}", f"{q:.8f}"] for p, q in asks[:limit]],
        }
    )


def usdm_symbol_info(spec: SymbolSpec) -> dict[str, Any]:
    """One ``/fapi/v1/exchangeInfo`` perpetual entry."""
    return {
        "symbol": spec.symbol,
        "pair": spec.symbol,
        "contractType": "PERPETUAL",
        "status": "TRADING",
        "baseAsset": spec.base_asset,
        "quoteAsset": spec.quote_asset,
        "marginAsset": spec.quote_asset,
        "pricePrecision": 8,
        "quantityPrecision": 8,
        "requiredMarginPercent": "5.0000",
        "maintMarginPercent": "2.5000",
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": f"{spec.tick_size:.8f}",
                "maxPrice": "1000000",
                "tickSize": f"{spec.tick_size:.8f}",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": f"{spec.step_size:.8f}",
                "maxQty": "9000",
                "stepSize": f"{spec.step_size:.8f}",
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": f"{spec.step_size:.8f}",
                "maxQty": "1000",
                "stepSize": f"{spec.step_size:.8f}",
            },
            {"filterType": "MIN_NOTIONAL", "notional": f"{spec.min_notional:.8f}"},
        ],
    }


async def usdm_exchange_info(request: web.Request) -> web.Response:
    """``GET /fapi/v1/exchangeInfo``."""
    ex = request.app[EXCHANGE_KEY]
    try:
        symbols = [usdm_symbol_info(ex.spec(s)) for s in wanted_symbols(request, ex.market.symbols)]
    except UnknownSymbolError:
        raise ApiError(400, -1121, "Invalid symbol.") from None
    return json_response(
        {
            "timezone": "UTC",
            "serverTime": ex.now_ms(),
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 2400,
                },
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            ],
            "assets": [],
            "symbols": symbols,
        }
    )


async def premium_index(request: web.Request) -> web.Response:
    """``GET /fapi/v1/premiumIndex[?symbol=]``: mark, index and funding now."""
    ex = request.app[EXCHANGE_KEY]
    now = ex.now_ms()

    def row(symbol: str) -> dict[str, Any]:
        ev = mark_price_event(ex.market, symbol, now, ex.usdm.funding_interval_ms)
        return {
            "symbol": symbol,
            "markPrice": ev["p"],
            "indexPrice": ev["i"],
            "estimatedSettlePrice": ev["P"],
            "lastFundingRate": ev["r"],
            "interestRate": f"{INTEREST_RATE:.8f}",
            "nextFundingTime": ev["T"],
            "time": now,
        }

    if "symbol" in request.query:
        return json_response(row(known_symbol(request)))
    return json_response([row(s) for s in ex.market.symbols])


async def usdm_time(request: web.Request) -> web.Response:
    """``GET /fapi/v1/time``."""
    return json_response({"serverTime": request.app[EXCHANGE_KEY].now_ms()})


async def usdm_ping(request: web.Request) -> web.Response:
    """``GET /fapi/v1/ping``."""
    return json_response({})


def add_usdm_routes(app: web.Application) -> None:
    """Mount the futures WebSocket and REST endpoints."""
    app.router.add_get("/fstream/stream", usdm_ws)
    app.router.add_get("/fstream/ws", usdm_ws)
    app.router.add_get("/fstream/ws/{streams:.+}", usdm_ws)
    app.router.add_get("/fapi/v1/depth", usdm_depth)
    app.router.add_get("/fapi/v1/exchangeInfo", usdm_exchange_info)
    app.router.add_get("/fapi/v1/premiumIndex", premium_index)
    app.router.add_get("/fapi/v1/time", usdm_time)
    app.router.add_get("/fapi/v1/ping", usdm_ping)
