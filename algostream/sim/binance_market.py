"""Binance spot REST market data built from the simulated book and trades:
``ticker/24hr``, ``ticker/price``, ``ticker/bookTicker``, ``trades``, ``historicalTrades``,
``aggTrades``, ``klines``/``uiKlines`` and ``avgPrice``.

Trades come from the exchange's :class:`~algostream.sim.tape.TradeTape` (every simulated
trade, up to 100,000 per symbol); a kline interval without trades is left out (Binance
prints it with zero volume), and the 24 h statistics cover the kept trades of the last
24 hours.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from algostream.sim.binance_errors import ApiError, optional_int
from algostream.sim.binance_rest import EXCHANGE_KEY, json_response, known_symbol, wanted_symbols
from algostream.sim.tape import DAY_MS, INTERVALS_MS, TapeTrade, p8

_ZERO = Decimal(0)
AVG_PRICE_MINS = 5


def _one_or_many(request: web.Request, row: Callable[[str], dict[str, Any]]) -> web.Response:
    ex = request.app[EXCHANGE_KEY]
    symbols = wanted_symbols(request, ex.market.symbols)
    if "symbol" in request.query:
        return json_response(row(symbols[0]))
    return json_response([row(s) for s in symbols])


def _top(request: web.Request, symbol: str) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    bids, asks = request.app[EXCHANGE_KEY].market.book(symbol)
    bid = bids[0] if bids else (_ZERO, _ZERO)
    ask = asks[0] if asks else (_ZERO, _ZERO)
    return bid[0], bid[1], ask[0], ask[1]


def _last_price(request: web.Request, symbol: str) -> Decimal:
    last = request.app[EXCHANGE_KEY].market.last_trade_price(symbol)
    if last is not None:
        return last
    bid, _, ask, _ = _top(request, symbol)
    return (bid + ask) / 2


async def ticker_price(request: web.Request) -> web.Response:
    """``GET /api/v3/ticker/price[?symbol=|?symbols=]``."""
    return _one_or_many(request, lambda s: {"symbol": s, "price": p8(_last_price(request, s))})


async def book_ticker(request: web.Request) -> web.Response:
    """``GET /api/v3/ticker/bookTicker[?symbol=|?symbols=]``."""

    def row(symbol: str) -> dict[str, Any]:
        bp, bq, ap, aq = _top(request, symbol)
        return {
            "symbol": symbol,
            "bidPrice": p8(bp),
            "bidQty": p8(bq),
            "askPrice": p8(ap),
            "askQty": p8(aq),
        }

    return _one_or_many(request, row)


async def ticker_24hr(request: web.Request) -> web.Response:
    """``GET /api/v3/ticker/24hr[?symbol=|?symbols=]`` (FULL type)."""
    ex = request.app[EXCHANGE_KEY]
    now = ex.now_ms()

    def row(symbol: str) -> dict[str, Any]:
        trades = ex.tape.since(symbol, now - DAY_MS)
        last = _last_price(request, symbol)
        bp, bq, ap, aq = _top(request, symbol)
        first = trades[0].price if trades else last
        volume = sum((t.qty for t in trades), _ZERO)
        quote = sum((t.qty * t.price for t in trades), _ZERO)
        change = last - first
        return {
            "symbol": symbol,
            "priceChange": p8(change),
            "priceChangePercent": f"{(change / first * 100) if first else _ZERO:.3f}",
            "weightedAvgPrice": p8(quote / volume if volume else last),
            "prevClosePrice": p8(first),
            "lastPrice": p8(last),
            "lastQty": p8(trades[-1].qty if trades else _ZERO),
            "bidPrice": p8(bp),
            "bidQty": p8(bq),
            "askPrice": p8(ap),
            "askQty": p8(aq),
            "openPrice": p8(first),
            "highPrice": p8(max((t.price for t in trades), default=last)),
            "lowPrice": p8(min((t.price for t in trades), default=last)),
            "volume": p8(volume),
            "quoteVolume": p8(quote),
            "openTime": trades[0].time_ms if trades else now - DAY_MS,
            "closeTime": now,
            "firstId": trades[0].trade_id if trades else -1,
            "lastId": trades[-1].trade_id if trades else -1,
            "count": len(trades),
        }

    return _one_or_many(request, row)


def _limit(request: web.Request, default: int, most: int) -> int:
    limit = optional_int(request.query, "limit", default) or 0
    if limit < 1:
        raise ApiError(400, -1100, f"Illegal value for parameter 'limit': {limit}.")
    return min(limit, most)


def _trades(request: web.Request) -> tuple[list[TapeTrade], int]:
    symbol = known_symbol(request)
    limit = _limit(request, 500, 1000)
    return request.app[EXCHANGE_KEY].tape.trades(symbol), limit


async def recent_trades(request: web.Request) -> web.Response:
    """``GET /api/v3/trades`` and ``historicalTrades`` (``fromId``)."""
    trades, limit = _trades(request)
    from_id = optional_int(request.query, "fromId")
    if from_id is not None:
        chosen = [t for t in trades if t.trade_id >= from_id][:limit]
    else:
        chosen = trades[-limit:]
    return json_response([t.as_trade() for t in chosen])


async def agg_trades(request: web.Request) -> web.Response:
    """``GET /api/v3/aggTrades`` (``fromId`` or ``startTime``/``endTime``)."""
    trades, limit = _trades(request)
    from_id = optional_int(request.query, "fromId")
    start = optional_int(request.query, "startTime")
    end = optional_int(request.query, "endTime")
    if start is not None and end is not None and end - start > 3_600_000:
        raise ApiError(400, -1127, "More than 1 hours between startTime and endTime.")
    chosen = [
        t
        for t in trades
        if (from_id is None or t.trade_id >= from_id)
        and (start is None or t.time_ms >= start)
        and (end is None or t.time_ms <= end)
    ]
    picked = chosen[:limit] if from_id is not None or start is not None else chosen[-limit:]
    return json_response([t.as_agg() for t in picked])


async def klines(request: web.Request) -> web.Response:
    """``GET /api/v3/klines?symbol=&interval=`` (and ``uiKlines``) from the simulated trades."""
    symbol = known_symbol(request)
    interval = request.query.get("interval", "")
    if not interval:
        raise ApiError(
            400, -1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed."
        )
    if interval not in INTERVALS_MS:
        raise ApiError(400, -1120, "Invalid interval.")
    limit = _limit(request, 500, 1000)
    start = optional_int(request.query, "startTime")
    end = optional_int(request.query, "endTime")
    rows = request.app[EXCHANGE_KEY].tape.klines(symbol, INTERVALS_MS[interval], start, end, limit)
    return json_response(rows)


async def avg_price(request: web.Request) -> web.Response:
    """``GET /api/v3/avgPrice``: the volume-weighted price of the last 5 minutes' trades."""
    ex = request.app[EXCHANGE_KEY]
    symbol = known_symbol(request)
    now = ex.now_ms()
    trades = ex.tape.since(symbol, now - AVG_PRICE_MINS * 60_000)
    volume = sum((t.qty for t in trades), _ZERO)
    quote = sum((t.qty * t.price for t in trades), _ZERO)
    price = quote / volume if volume else _last_price(request, symbol)
    return json_response(
        {
            "mins": AVG_PRICE_MINS,
            "price": p8(price),
            "closeTime": trades[-1].time_ms if trades else now,
        }
    )


def add_market_routes(app: web.Application) -> None:
    """Mount the endpoints of this module."""
    app.router.add_get("/api/v3/ticker/24hr", ticker_24hr)
    app.router.add_get("/api/v3/ticker/price", ticker_price)
    app.router.add_get("/api/v3/ticker/bookTicker", book_ticker)
    app.router.add_get("/api/v3/trades", recent_trades)
    app.router.add_get("/api/v3/historicalTrades", recent_trades)
    app.router.add_get("/api/v3/aggTrades", agg_trades)
    app.router.add_get("/api/v3/klines", klines)
    app.router.add_get("/api/v3/uiKlines", klines)
    app.router.add_get("/api/v3/avgPrice", avg_price)
