"""Async Binance spot REST client: signed requests, rate limits, safe retries.

* Signing: ``signature`` = hex HMAC-SHA256 (key = API secret) of the exact parameters
  sent, with ``timestamp`` (local ms + the offset learnt from ``GET /api/v3/time``) and
  ``recvWindow``; GET and DELETE send them in the query string, POST and PUT in an
  ``application/x-www-form-urlencoded`` body (as Binance's examples and ccxt do); the API
  key goes in ``X-MBX-APIKEY``. Secrets are :class:`~pydantic.SecretStr` and never
  appear in reprs, logs or exception messages.
* Rate limits: an :class:`aiolimiter.AsyncLimiter` (``rate_limit_per_second``), and the
  ``X-MBX-USED-WEIGHT-1M`` header: when it reaches ``max_weight_1m`` the client waits for
  the next minute. 429/418 honour ``Retry-After``.
* Retries (bounded by ``retry_attempts``, exponential backoff + jitter, sleep injected):
  reads are retried on timeouts/5xx. A new order whose outcome is unknown (timeout, 5xx,
  connection error) is first **queried by client order id**; it is resubmitted only when
  the venue says it does not exist, so an order is never placed twice. -1021 resyncs the
  clock and retries. -1013/-2010 raise :class:`OrderRejectedError` at once.

>>> sign("NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j",
...      "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
...      "&recvWindow=5000&timestamp=1499827319559")
'c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71'
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
from aiolimiter import AsyncLimiter
from pydantic import BaseModel, ConfigDict, SecretStr

from algostream.config import ExecutionConfig
from algostream.execution.errors import (
    AuthError,
    BinanceError,
    ExecutionError,
    OrderRejectedError,
    OrderStatusUnknownError,
    RateLimitedError,
    TimestampError,
    TransientError,
)
from algostream.execution.retry import ClockMs, RetryPolicy, Sleep, wall_clock_ms, with_retries
from algostream.model.enums import OrderType, Side, TimeInForce

_T = TypeVar("_T")

log = logging.getLogger(__name__)

ORDER_PATH = "/api/v3/order"
OCO_PATH = "/api/v3/orderList/oco"
OPEN_ORDERS_PATH = "/api/v3/openOrders"
ACCOUNT_PATH = "/api/v3/account"
TIME_PATH = "/api/v3/time"
USER_STREAM_PATH = "/api/v3/userDataStream"
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
_AUTH_CODES = frozenset({-1022, -2014, -2015})
#: definite refusals of a new order (USD-M futures add -2019 margin, -2022 reduce-only,
#: -2027 leverage bracket, -4116 duplicate client order id, -5022 post-only would take)
_REJECT_CODES = frozenset(
    {-1013, -2010, -1100, -1102, -1111, -1121, -2019, -2022, -2027, -4116, -5022}
)
USDM_ORDER_PATH = "/fapi/v1/order"
DUPLICATE_ORDER_CODE = -4116
ORDER_NOT_FOUND = -2013
DUPLICATE_ORDER_MSG = "Duplicate order sent."


class BinanceCredentials(BaseModel):
    """API key and secret; masked in every repr and dump."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    api_key: SecretStr
    api_secret: SecretStr


def sign(secret: str, total_params: str) -> str:
    """Hex HMAC-SHA256 of ``total_params`` (query string + body) keyed by ``secret``."""
    return hmac.new(secret.encode(), total_params.encode(), hashlib.sha256).hexdigest()


def format_decimal(value: Decimal) -> str:
    """A plain decimal string for the wire (never exponent notation)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


#: the platform's order type -> Binance spot's (a post-only LIMIT is LIMIT_MAKER)
BINANCE_ORDER_TYPE = {
    OrderType.MARKET: "MARKET",
    OrderType.LIMIT: "LIMIT",
    OrderType.STOP_MARKET: "STOP_LOSS",
    OrderType.STOP_LIMIT: "STOP_LOSS_LIMIT",
    OrderType.TAKE_PROFIT_MARKET: "TAKE_PROFIT",
    OrderType.TAKE_PROFIT_LIMIT: "TAKE_PROFIT_LIMIT",
}


@dataclass(frozen=True)
class NewOrder:
    """Parameters of ``POST /api/v3/order``.

    >>> NewOrder("BTCUSDT", Side.BUY, OrderType.LIMIT, Decimal(1), "c1", Decimal(9),
    ...          post_only=True).params()[:3]
    [('symbol', 'BTCUSDT'), ('side', 'BUY'), ('type', 'LIMIT_MAKER')]
    """

    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    client_order_id: str
    price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    stop_price: Decimal | None = None
    post_only: bool = False

    def params(self) -> list[tuple[str, str]]:
        """Query parameters in Binance's documented order."""
        kind = "LIMIT_MAKER" if self.post_only else BINANCE_ORDER_TYPE[self.order_type]
        out = [("symbol", self.symbol), ("side", self.side.value), ("type", kind)]
        if self.order_type.has_limit_price and not self.post_only:
            out.append(("timeInForce", (self.time_in_force or TimeInForce.GTC).value))
        out.append(("quantity", format_decimal(self.quantity)))
        if self.price is not None:
            out.append(("price", format_decimal(self.price)))
        if self.stop_price is not None:
            out.append(("stopPrice", format_decimal(self.stop_price)))
        resp = "FULL" if kind in ("MARKET", "LIMIT") else "RESULT"
        out += [("newClientOrderId", self.client_order_id), ("newOrderRespType", resp)]
        return out


@dataclass(frozen=True)
class NewOco:
    """Parameters of ``POST /api/v3/orderList/oco``: a take-profit LIMIT_MAKER at
    ``price`` and a STOP_LOSS at ``stop_price``, same side and quantity. A SELL OCO
    (exiting a long) has its limit above and its stop below; a BUY the other way round.

    >>> o = NewOco("BTCUSDT", Side.SELL, Decimal(1), "l1", "l1-tp", Decimal(110),
    ...            "l1-sl", Decimal(90))
    >>> [kv for kv in o.params() if kv[0] in ("aboveType", "belowType")]
    [('aboveType', 'LIMIT_MAKER'), ('belowType', 'STOP_LOSS')]
    """

    symbol: str
    side: Side
    quantity: Decimal
    list_client_order_id: str
    limit_client_order_id: str
    price: Decimal
    stop_client_order_id: str
    stop_price: Decimal

    def params(self) -> list[tuple[str, str]]:
        """Query parameters in Binance's documented order."""
        limit = [("Type", "LIMIT_MAKER"), ("ClientOrderId", self.limit_client_order_id),
                 ("Price", format_decimal(self.price))]  # fmt: skip
        stop = [("Type", "STOP_LOSS"), ("ClientOrderId", self.stop_client_order_id),
                ("StopPrice", format_decimal(self.stop_price))]  # fmt: skip
        above, below = (limit, stop) if self.side is Side.SELL else (stop, limit)
        out = [
            ("symbol", self.symbol),
            ("listClientOrderId", self.list_client_order_id),
            ("side", self.side.value),
            ("quantity", format_decimal(self.quantity)),
        ]
        out += [("above" + k, v) for k, v in above] + [("below" + k, v) for k, v in below]
        out.append(("newOrderRespType", "RESULT"))
        return out

    @property
    def client_order_ids(self) -> tuple[str, str]:
        return self.limit_client_order_id, self.stop_client_order_id


class BinanceRestClient:
    """Binance spot REST trading client (see module docs). ``http`` is injected."""

    order_path = ORDER_PATH
    open_orders_path = OPEN_ORDERS_PATH
    account_path = ACCOUNT_PATH
    time_path = TIME_PATH
    #: the listen key endpoint (USD-M: ``/fapi/v1/listenKey``)
    user_stream_path = USER_STREAM_PATH

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: BinanceCredentials,
        *,
        base_url: str,
        recv_window_ms: int = 5000,
        rate_limit_per_second: int = 10,
        retry: RetryPolicy | None = None,
        timeout_s: float = 5.0,
        clock_ms: ClockMs = wall_clock_ms,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        max_weight_1m: int = 6000,
    ) -> None:
        self._http = http
        self._creds = credentials
        self._base = base_url.rstrip("/")
        self._recv_window_ms = recv_window_ms
        self._limiter = AsyncLimiter(rate_limit_per_second, 1)
        self._retry = retry or RetryPolicy()
        self._timeout_s = timeout_s
        self._clock_ms = clock_ms
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._max_weight = max_weight_1m
        self.time_offset_ms = 0
        self.used_weight_1m = 0

    @classmethod
    def from_config(
        cls, http: httpx.AsyncClient, config: ExecutionConfig, **overrides: Any
    ) -> BinanceRestClient:
        """Build from the ``execution`` settings (secrets must be set there)."""
        if config.api_key is None or config.api_secret is None:
            raise ExecutionError(
                "execution.api_key/api_secret: not set; export ALGOSTREAM_API_KEY and "
                "ALGOSTREAM_API_SECRET or use paper_trading"
            )
        creds = BinanceCredentials(api_key=config.api_key, api_secret=config.api_secret)
        kwargs: dict[str, Any] = {
            "base_url": config.exchange_api_url,
            "recv_window_ms": config.recv_window_ms,
            "rate_limit_per_second": config.rate_limit_per_second,
            "retry": RetryPolicy.from_config(config),
            "timeout_s": config.request_timeout_ms / 1000,
        }
        kwargs.update(overrides)
        return cls(http, creds, **kwargs)

    def __repr__(self) -> str:
        return f"BinanceRestClient(base_url={self._base!r}, api_key=SecretStr('**********'))"

    # ------------------------------------------------------------------ endpoints

    async def server_time(self) -> int:
        """``GET /api/v3/time`` -> server time in ms."""
        data = await self._call("GET", self.time_path, [], signed=False)
        return int(data["serverTime"])

    async def sync_clock(self) -> int:
        """Learn ``server - local`` ms from ``GET /api/v3/time``; returns the offset."""
        before = self._clock_ms()
        server = await self.server_time()
        after = self._clock_ms()
        self.time_offset_ms = server - (before + after) // 2
        log.info("binance clock offset resynced: %d ms", self.time_offset_ms)
        return self.time_offset_ms

    async def new_order(self, order: NewOrder) -> dict[str, Any]:
        """Place an order exactly once; returns Binance's order JSON (placed or found).

        Raises :class:`OrderRejectedError` (definite refusal), :class:`RateLimitedError`
        (not placed), or :class:`OrderStatusUnknownError` (reconcile before retrying).
        """

        async def send() -> dict[str, Any]:
            return dict(await self._send("POST", self.order_path, order.params(), signed=True))

        async def find(attempt: int) -> dict[str, Any] | None:
            return await self._find_order(order, attempt)

        return await self._place_once(send, find, order.client_order_id)

    async def new_oco(self, oco: NewOco) -> list[dict[str, Any]]:
        """Place an OCO exactly once; returns its two legs' order JSON (placed or found),
        limit leg first. The same rules as :meth:`new_order`: a duplicate, a timeout or a
        5xx is answered by querying both legs by their client order ids, never by
        sending it again blind."""

        async def send() -> list[dict[str, Any]]:
            data = await self._send("POST", OCO_PATH, oco.params(), signed=True)
            reports = {str(r["clientOrderId"]): dict(r) for r in data["orderReports"]}
            return [reports[c] for c in oco.client_order_ids]

        async def find(attempt: int) -> list[dict[str, Any]] | None:
            return await self._find_legs(oco, attempt)

        return await self._place_once(send, find, oco.list_client_order_id)

    async def _place_once(
        self,
        send: Callable[[], Awaitable[_T]],
        find: Callable[[int], Awaitable[_T | None]],
        ident: str,
    ) -> _T:
        """``send`` a placement at most until it is known placed or refused: a duplicate,
        a timeout or a 5xx is answered by ``find`` (querying by client order id), never
        by sending again blind; rate limits wait and clock errors resync, within the
        retry policy's attempts; else :class:`OrderStatusUnknownError` for ``ident``."""
        last_error = "none"
        for attempt in range(self._retry.attempts + 1):
            wait: float | None = None
            try:
                return await send()
            except OrderRejectedError as exc:
                if exc.message != DUPLICATE_ORDER_MSG and exc.code != DUPLICATE_ORDER_CODE:
                    raise
                found = await find(attempt)
                if found is None:
                    raise
                return found
            except TransientError as exc:
                last_error = str(exc)
                found = await find(attempt)
                if found is not None:
                    return found
            except RateLimitedError as exc:
                if attempt == self._retry.attempts:
                    raise
                last_error, wait = str(exc), exc.retry_after_s
            except TimestampError:
                if attempt == self._retry.attempts:
                    raise
                await self.sync_clock()
                continue
            if attempt < self._retry.attempts:
                await self._backoff(attempt, wait)
        raise OrderStatusUnknownError(ident, self._retry.attempts + 1, last_error)

    async def _find_legs(self, oco: NewOco, attempt: int) -> list[dict[str, Any]] | None:
        legs = []
        for coid in oco.client_order_ids:
            try:
                found = await self.query_order(oco.symbol, coid)
            except (TransientError, RateLimitedError) as exc:
                raise OrderStatusUnknownError(coid, attempt + 1, str(exc)) from None
            if found is None:
                return None
            legs.append(found)
        return legs

    async def query_order(self, symbol: str, client_order_id: str) -> dict[str, Any] | None:
        """``GET /api/v3/order`` by ``origClientOrderId``; ``None`` if the venue has no such order.

        Reads are retried on timeouts and 5xx (see :meth:`_call`).
        """
        params = [("symbol", symbol), ("origClientOrderId", client_order_id)]
        try:
            return dict(await self._call("GET", self.order_path, params, signed=True))
        except BinanceError as exc:
            if exc.code == ORDER_NOT_FOUND:
                return None
            raise

    async def cancel_order(self, symbol: str, client_order_id: str) -> dict[str, Any]:
        """``DELETE /api/v3/order``; on an unknown outcome, returns the order as queried."""
        params = [("symbol", symbol), ("origClientOrderId", client_order_id)]
        try:
            return dict(
                await self._call("DELETE", self.order_path, params, signed=True, repeat=False)
            )
        except TransientError:
            found = await self.query_order(symbol, client_order_id)
            if found is None:
                raise
            return found

    async def open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """``GET /api/v3/openOrders`` (all symbols when ``symbol`` is None)."""
        params = [("symbol", symbol)] if symbol else []
        data = await self._call("GET", self.open_orders_path, params, signed=True)
        return list(data)

    async def account(self) -> dict[str, Any]:
        """``GET /api/v3/account``: balances and permissions."""
        return dict(await self._call("GET", self.account_path, [], signed=True))

    async def new_listen_key(self) -> str:
        """``POST /api/v3/userDataStream`` (API key only): a key for the user data stream."""
        data = await self._call("POST", self.user_stream_path, [], signed=False, keyed=True)
        return str(data["listenKey"])

    async def keepalive_listen_key(self, listen_key: str) -> None:
        """``PUT /api/v3/userDataStream``: keep the key alive another 60 minutes."""
        params = [("listenKey", listen_key)]
        await self._call("PUT", self.user_stream_path, params, signed=False, keyed=True)

    async def close_listen_key(self, listen_key: str) -> None:
        """``DELETE /api/v3/userDataStream``: end the key."""
        params = [("listenKey", listen_key)]
        await self._call("DELETE", self.user_stream_path, params, signed=False, keyed=True)

    # ------------------------------------------------------------------ plumbing

    async def _find_order(self, order: NewOrder, attempt: int) -> dict[str, Any] | None:
        try:
            return await self.query_order(order.symbol, order.client_order_id)
        except (TransientError, RateLimitedError) as exc:
            raise OrderStatusUnknownError(order.client_order_id, attempt + 1, str(exc)) from None

    async def _call(
        self,
        method: str,
        path: str,
        params: list[tuple[str, str]],
        *,
        signed: bool,
        repeat: bool = True,
        keyed: bool = False,
    ) -> Any:
        """One request with bounded retries on 429/418, -1021 and (if ``repeat``) timeouts/5xx."""
        return await with_retries(
            lambda: self._send(method, path, params, signed=signed, keyed=keyed),
            self._retry,
            self._sleep,
            self._rng,
            limited=RateLimitedError,
            repeat=repeat,
            resync=(TimestampError, self.sync_clock),
        )

    async def _backoff(self, attempt: int, retry_after_s: float | None) -> None:
        await self._sleep(self._retry.wait_s(attempt, self._rng, retry_after_s))

    async def _send(
        self,
        method: str,
        path: str,
        params: list[tuple[str, str]],
        *,
        signed: bool,
        keyed: bool = False,
    ) -> Any:
        await self._respect_weight()
        encoded, headers = self._prepare(params, signed)
        if keyed:
            headers["X-MBX-APIKEY"] = self._creds.api_key.get_secret_value()
        in_body = method in ("POST", "PUT") and bool(encoded)
        url = f"{self._base}{path}" + (f"?{encoded}" if encoded and not in_body else "")
        async with self._limiter:
            try:
                resp = await self._http.request(
                    method,
                    url,
                    headers={**headers, **_FORM} if in_body else headers,
                    content=encoded.encode() if in_body else None,
                    timeout=self._timeout_s,
                )
            except httpx.TimeoutException:
                raise TransientError(path, "timeout") from None
            except httpx.TransportError as exc:
                raise TransientError(path, f"transport error {type(exc).__name__}") from None
        self._note_weight(resp)
        return _parse_response(resp, method, path)

    def _prepare(self, params: list[tuple[str, str]], signed: bool) -> tuple[str, dict[str, str]]:
        if not signed:
            return urlencode(params), {}
        stamp = self._clock_ms() + self.time_offset_ms
        query = urlencode(
            [*params, ("recvWindow", str(self._recv_window_ms)), ("timestamp", str(stamp))]
        )
        signature = sign(self._creds.api_secret.get_secret_value(), query)
        headers = {"X-MBX-APIKEY": self._creds.api_key.get_secret_value()}
        return f"{query}&signature={signature}", headers

    def _note_weight(self, resp: httpx.Response) -> None:
        raw = resp.headers.get(WEIGHT_HEADER)
        if raw is not None and raw.isdigit():
            self.used_weight_1m = int(raw)

    async def _respect_weight(self) -> None:
        if self.used_weight_1m < self._max_weight:
            return
        wait_ms = 60_000 - (self._clock_ms() + self.time_offset_ms) % 60_000
        log.warning(
            "binance used weight %d >= %d; waiting %d ms",
            self.used_weight_1m,
            self._max_weight,
            wait_ms,
        )
        await self._sleep(wait_ms / 1000)
        self.used_weight_1m = 0


def _parse_response(resp: httpx.Response, method: str, path: str) -> Any:
    status = resp.status_code
    if status >= 500:
        raise TransientError(path, f"HTTP {status}", status=status)
    try:
        data = resp.json()
    except ValueError:
        data = None
    if status < 400:
        if data is None:
            raise TransientError(path, f"HTTP {status} with a body that is not JSON", status)
        return data
    code = data.get("code") if isinstance(data, dict) else None
    msg = str(data.get("msg", "")) if isinstance(data, dict) else resp.text[:200]
    if status in (418, 429):
        raise RateLimitedError(status, code, msg, _retry_after(resp), path)
    if code == -1021:
        raise TimestampError(status, code, msg, path)
    if code in _AUTH_CODES or status == 401:
        raise AuthError(status, code, msg, path)
    if method == "POST" and path in (ORDER_PATH, USDM_ORDER_PATH) and code in _REJECT_CODES:
        raise OrderRejectedError(status, code, msg, path)
    raise BinanceError(status, code, msg, path)


def _retry_after(resp: httpx.Response) -> float:
    raw = resp.headers.get("Retry-After", "")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return 1.0
