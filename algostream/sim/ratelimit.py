"""Binance's REQUEST_WEIGHT limit for every ``/api/v3`` (and futures ``/fapi``) answer.

Each request costs its documented weight (:func:`request_weight`); the running total of
the current minute is sent back in ``X-MBX-USED-WEIGHT-1M`` on every answer, errors
included. Over the advertised limit (``exchangeInfo``'s 6,000 by default) the answer is
429 ``-1003`` with ``Retry-After`` (seconds to the next minute). A client that keeps
sending during that back-off gets 429 again; after ``strikes`` ignored 429s it is banned
with 418 for ``ban_s`` seconds, doubling with every further ban (Binance scales bans from
2 minutes to 3 days). The limit is counted for the whole simulator, not per IP.

>>> limiter = WeightLimiter(lambda: 0, max_weight_1m=10)
>>> limiter.charge(5), limiter.charge(5)
(5, 10)
>>> limiter.charge(1)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
algostream.sim.binance_errors.ApiError: HTTP 429 code -1003: Too much request weight used; ...
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from algostream.sim.binance_errors import ApiError, unknown_error

log = logging.getLogger(__name__)
ClockMs = Callable[[], int]
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
DEFAULT_MAX_WEIGHT = 6000
LIMITER_KEY: web.AppKey[WeightLimiter] = web.AppKey("binance_weight_limiter")

_FIXED = {
    ("GET", "/api/v3/ping"): 1,
    ("GET", "/api/v3/time"): 1,
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/trades"): 25,
    ("GET", "/api/v3/historicalTrades"): 25,
    ("GET", "/api/v3/aggTrades"): 4,
    ("GET", "/api/v3/klines"): 2,
    ("GET", "/api/v3/uiKlines"): 2,
    ("GET", "/api/v3/avgPrice"): 2,
    ("POST", "/api/v3/order"): 1,
    ("POST", "/api/v3/order/test"): 1,
    ("DELETE", "/api/v3/order"): 1,
    ("GET", "/api/v3/order"): 4,
    ("DELETE", "/api/v3/openOrders"): 1,
    ("GET", "/api/v3/allOrders"): 20,
    ("GET", "/api/v3/account"): 20,
    ("GET", "/api/v3/myTrades"): 20,
    ("POST", "/api/v3/userDataStream"): 2,
    ("PUT", "/api/v3/userDataStream"): 2,
    ("DELETE", "/api/v3/userDataStream"): 2,
}


def _depth_weight(limit: str) -> int:
    n = int(limit) if limit.isdigit() else 100
    return 5 if n <= 100 else 25 if n <= 500 else 50 if n <= 1000 else 250


def request_weight(method: str, path: str, query: Mapping[str, str]) -> int:
    """The documented weight of one request (1 for paths Binance does not list)."""
    one = "symbol" in query
    if path == "/fapi/v1/depth":  # futures: 2 up to 50 levels, 5, 10, then 20 at 1000
        limit = query.get("limit", "500")
        n = int(limit) if limit.isdigit() else 500
        return 2 if n <= 50 else 5 if n <= 100 else 10 if n <= 500 else 20
    if path == "/api/v3/depth":
        return _depth_weight(query.get("limit", "100"))
    if path == "/api/v3/ticker/24hr":
        return 2 if one else 80
    if path in ("/api/v3/ticker/price", "/api/v3/ticker/bookTicker"):
        return 2 if one else 4
    if path == "/api/v3/openOrders" and method == "GET":
        return 6 if one else 80
    return _FIXED.get((method, path), 1)


class WeightLimiter:
    """The per-minute weight window, the back-off after a 429 and the 418 bans."""

    def __init__(
        self,
        clock_ms: ClockMs,
        *,
        max_weight_1m: int = DEFAULT_MAX_WEIGHT,
        strikes: int = 3,
        ban_s: int = 120,
    ) -> None:
        self.clock_ms = clock_ms
        self.max_weight_1m = max_weight_1m
        self.strikes = strikes
        self.ban_s = ban_s
        self.used = 0
        self._minute = -1
        self._backoff_until = 0
        self._ignored = 0
        self._banned_until = 0
        self._bans = 0

    def used_now(self) -> int:
        """The weight used in the current minute."""
        return self.used if self.clock_ms() // 60_000 == self._minute else 0

    def back_off(self, seconds: int) -> None:
        """Tell the client to wait ``seconds`` (an answered 429); ignoring it is a strike."""
        self._backoff_until = max(self._backoff_until, self.clock_ms() + seconds * 1000)

    def charge(self, weight: int) -> int:
        """Count ``weight`` now; returns the minute's total or raises 429/418."""
        now = self.clock_ms()
        self._check_ban(now)
        minute = now // 60_000
        if minute != self._minute:
            self._minute, self.used = minute, 0
        self.used += weight
        if now < self._backoff_until:
            self._strike(now)
        if self.used > self.max_weight_1m:
            retry = math.ceil(((minute + 1) * 60_000 - now) / 1000)
            self.back_off(retry)
            raise ApiError(
                429,
                -1003,
                "Too much request weight used; current limit is "
                f"{self.max_weight_1m} request weight per 1 MINUTE. Please use WebSocket "
                "Streams for live updates to avoid polling the API.",
                {"Retry-After": str(retry)},
            )
        return self.used

    def _strike(self, now: int) -> None:
        self._ignored += 1
        retry = math.ceil((self._backoff_until - now) / 1000)
        if self._ignored < self.strikes:
            raise ApiError(429, -1003, "Too many requests; back off.", {"Retry-After": str(retry)})
        self._ignored = 0
        self._backoff_until = 0
        self._banned_until = now + self.ban_s * 1000 * 2**self._bans
        self._bans += 1
        self._check_ban(now)

    def _check_ban(self, now: int) -> None:
        if now < self._banned_until:
            wait = math.ceil((self._banned_until - now) / 1000)
            raise ApiError(
                418,
                -1003,
                f"Way too many requests; IP(127.0.0.1) banned until {self._banned_until}. "
                "Please use the websocket for live updates to avoid bans.",
                {"Retry-After": str(wait)},
            )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(err: ApiError, used: int | None) -> web.Response:
    """The JSON answer of ``err`` with its headers (and the weight header)."""
    headers = dict(err.headers)
    if used is not None:
        headers[WEIGHT_HEADER] = str(used)
    return web.json_response({"code": err.code, "msg": err.msg}, status=err.status, headers=headers)


@web.middleware
async def binance_api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Weight accounting and Binance-shaped errors for every ``/api/v3`` request."""
    if not request.path.startswith(("/api/", "/fapi/")):
        return await handler(request)
    limiter = request.app[LIMITER_KEY]
    weight = request_weight(request.method, request.path, request.query)
    try:
        used = limiter.charge(weight)
        response = await handler(request)
    except ApiError as err:
        return error_response(err, limiter.used_now())
    except web.HTTPException:
        raise
    except Exception:
        log.exception("simulator bug answering %s %s", request.method, request.path)
        return error_response(unknown_error(), limiter.used_now())
    if not response.prepared:
        response.headers[WEIGHT_HEADER] = str(max(used, limiter.used_now()))
    return response


def install_limiter(app: web.Application, limiter: WeightLimiter) -> WeightLimiter:
    """Add the middleware and ``limiter`` to ``app`` (once; the first limiter is kept)."""
    if LIMITER_KEY in app:
        return app[LIMITER_KEY]
    app[LIMITER_KEY] = limiter
    app.middlewares.append(binance_api_middleware)
    return limiter
