"""Simulated Binance spot trading API (aiohttp), with fault injection and an order ledger.

:func:`add_trading_routes` adds to an :class:`aiohttp.web.Application`:

* ``POST /api/v3/order`` (MARKET, LIMIT with GTC/IOC/FOK; ``newClientOrderId``),
  ``DELETE /api/v3/order``, ``GET /api/v3/order`` (``orderId`` or ``origClientOrderId``),
  ``GET /api/v3/openOrders``, ``GET /api/v3/account``, and ``GET /api/v3/time`` when the
  app does not serve it already.

Every trading request is checked like Binance does: ``X-MBX-APIKEY`` (-2015), the
HMAC-SHA256 ``signature`` over the exact query string + body (-1022), ``timestamp``
within ``recvWindow`` of the server clock (-1021), symbol (-1121), filters (-1013
PRICE_FILTER / LOT_SIZE / NOTIONAL), duplicate ``newClientOrderId`` (-2010 "Duplicate
order sent."; ids are unique for the account's lifetime here, stricter than Binance),
balances (-2010) when balances are given. Request weight is counted per minute
(``X-MBX-USED-WEIGHT-1M``); over the limit the answer is 429 with ``Retry-After``, and a
client that keeps sending before that time is banned with 418.

Orders match against ``book_provider(symbol) -> (bids, asks)`` (Decimal levels, best
first) at the book's prices only. A market order's unfilled remainder EXPIREs; GTC limit
remainders rest and fill on later requests when the book crosses them. Liquidity taken
is remembered per price level until the book stops showing that price, so the same
displayed quantity is never sold twice.

Faults (:meth:`TradingSimulator.inject`) apply to the next ``count`` trading requests:
``5xx_after_place`` (request executed, answer 500/503), ``5xx_before`` (not executed),
``429`` (not executed), ``timeout`` (executed, then the answer hangs until
``hang_s`` or :meth:`TradingSimulator.release`), ``clock_skew`` (the server clock moves by
``skew_ms``; ``count`` is ignored). :attr:`TradingSimulator.ledger` lists every placed
order, so a test can prove no order was placed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

Level = tuple[Decimal, Decimal]
BookProviderFn = Callable[[str], tuple[Sequence[Level], Sequence[Level]]]
ClockMsFn = Callable[[], int]

_ZERO = Decimal(0)
_WEIGHTS = {
    ("POST", "/api/v3/order"): 1,
    ("DELETE", "/api/v3/order"): 1,
    ("GET", "/api/v3/order"): 4,
    ("GET", "/api/v3/openOrders"): 6,
    ("GET", "/api/v3/account"): 20,
    ("GET", "/api/v3/time"): 1,
}
_OPEN = ("NEW", "PARTIALLY_FILLED")
SIMULATOR_KEY: web.AppKey[TradingSimulator] = web.AppKey("trading_simulator")


class FaultKind(StrEnum):
    """Injectable faults (see module docs)."""

    ERROR_AFTER_PLACE = "5xx_after_place"
    ERROR_BEFORE = "5xx_before"
    RATE_LIMIT = "429"
    TIMEOUT = "timeout"
    CLOCK_SKEW = "clock_skew"


class ApiError(Exception):
    """A Binance error answer: HTTP status, code and message."""

    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None):
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = headers or {}
        super().__init__(f"HTTP {status} code {code}: {msg}")


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


@dataclass(frozen=True)
class SymbolFilters:
    """PRICE_FILTER / LOT_SIZE / NOTIONAL values of one symbol (None = not enforced)."""

    tick_size: Decimal | None = None
    step_size: Decimal | None = None
    min_qty: Decimal | None = None
    max_qty: Decimal | None = None
    min_notional: Decimal | None = None
    base_asset: str = ""
    quote_asset: str = ""

    @classmethod
    def parse(cls, raw: Any) -> SymbolFilters:
        """From a flat dict (``tickSize``...), a Binance ``filters`` list, or a spec object."""
        if isinstance(raw, SymbolFilters):
            return raw
        if isinstance(raw, Sequence) and not isinstance(raw, str):
            flat: dict[str, Any] = {}
            for item in raw:
                flat.update({k: v for k, v in item.items() if k != "filterType"})
            raw = flat
        if not isinstance(raw, Mapping):  # duck-typed spec (tick_size, step_size, ...)
            raw = {
                "tickSize": getattr(raw, "tick_size", None),
                "stepSize": getattr(raw, "step_size", None),
                "minNotional": getattr(raw, "min_notional", None),
                "baseAsset": getattr(raw, "base_asset", ""),
                "quoteAsset": getattr(raw, "quote_asset", ""),
            }
        return cls(
            tick_size=_dec(raw.get("tickSize")),
            step_size=_dec(raw.get("stepSize")),
            min_qty=_dec(raw.get("minQty")),
            max_qty=_dec(raw.get("maxQty")),
            min_notional=_dec(raw.get("minNotional")),
            base_asset=str(raw.get("baseAsset") or ""),
            quote_asset=str(raw.get("quoteAsset") or ""),
        )

    def check(self, price: Decimal | None, qty: Decimal, ref_price: Decimal | None) -> None:
        """Raise -1013 naming the filter that fails."""
        if price is not None and self.tick_size and price % self.tick_size != 0:
            raise ApiError(400, -1013, "Filter failure: PRICE_FILTER")
        low = self.min_qty or _ZERO
        if (
            (self.min_qty is not None and qty < self.min_qty)
            or (self.max_qty is not None and qty > self.max_qty)
            or (self.step_size and (qty - low) % self.step_size != 0)
        ):
            raise ApiError(400, -1013, "Filter failure: LOT_SIZE")
        ref = price if price is not None else ref_price
        if self.min_notional is not None and ref is not None and ref * qty < self.min_notional:
            raise ApiError(400, -1013, "Filter failure: NOTIONAL")


@dataclass
class SimOrder:
    """An order held by the simulator."""

    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    price: Decimal | None
    orig_qty: Decimal
    time_ms: int
    executed_qty: Decimal = _ZERO
    cum_quote: Decimal = _ZERO
    status: str = "NEW"
    update_ms: int = 0
    fills: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The ``GET /api/v3/order`` shape."""
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": str(self.price or "0"),
            "origQty": str(self.orig_qty),
            "executedQty": str(self.executed_qty),
            "cummulativeQuoteQty": str(self.cum_quote),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
            "stopPrice": "0",
            "icebergQty": "0",
            "time": self.time_ms,
            "updateTime": self.update_ms or self.time_ms,
            "isWorking": self.status in _OPEN,
            "workingTime": self.time_ms,
            "origQuoteOrderQty": "0",
            "selfTradePreventionMode": "NONE",
        }


@dataclass(frozen=True)
class LedgerEntry:
    """One order the simulator placed."""

    client_order_id: str
    order_id: int
    symbol: str
    side: str
    quantity: Decimal
    time_ms: int


@dataclass
class _Fault:
    kind: FaultKind
    remaining: int
    status: int
    retry_after_s: int


class TradingSimulator:
    """State and handlers of the simulated trading API (see module docs)."""

    def __init__(
        self,
        book_provider: BookProviderFn,
        api_key: str,
        api_secret: str,
        filters: Mapping[str, Any],
        *,
        clock_ms: ClockMsFn = _wall_ms,
        balances: Mapping[str, Decimal] | None = None,
        fee_rate: Decimal = Decimal("0.001"),
        max_weight_1m: int = 1200,
        ban_s: int = 120,
        hang_s: float = 30.0,
    ) -> None:
        self._book = book_provider
        self._api_key = api_key
        self._secret = api_secret.encode()
        self.filters = {s.upper(): SymbolFilters.parse(f) for s, f in filters.items()}
        self._clock = clock_ms
        self.balances: dict[str, Decimal] | None = dict(balances) if balances is not None else None
        self.fee_rate = fee_rate
        self.max_weight_1m = max_weight_1m
        self.ban_s = ban_s
        self.hang_s = hang_s
        self.skew_ms = 0
        self.orders: dict[str, SimOrder] = {}
        self.ledger: list[LedgerEntry] = []
        self.duplicate_attempts: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self._faults: list[_Fault] = []
        self._ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._taken: dict[tuple[str, str], dict[Decimal, Decimal]] = {}
        self._window = (-1, 0)
        self._backoff_until = 0
        self._banned_until = 0
        self._release = asyncio.Event()

    # ------------------------------------------------------------------ test API

    def inject(
        self,
        kind: FaultKind | str,
        count: int = 1,
        *,
        status: int = 500,
        retry_after_s: int = 1,
        skew_ms: int = 0,
    ) -> None:
        """Queue ``count`` faults of ``kind`` for the next trading requests."""
        kind = FaultKind(kind)
        if kind is FaultKind.CLOCK_SKEW:
            self.skew_ms += skew_ms
            return
        if count < 1:
            raise ValueError(f"count {count}: must be >= 1")
        self._faults.append(_Fault(kind, count, status, retry_after_s))

    def placements(self, client_order_id: str) -> int:
        """How many times an order with this client order id was placed (must be <= 1)."""
        return sum(1 for e in self.ledger if e.client_order_id == client_order_id)

    def release(self) -> None:
        """Let requests hung by a ``timeout`` fault answer now."""
        self._release.set()

    def server_time_ms(self) -> int:
        """The server clock (injected clock + skew)."""
        return self._clock() + self.skew_ms

    # ------------------------------------------------------------------ request pipeline

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Run checks, faults and the endpoint for one trading request."""
        self.requests.append((request.method, request.path))
        weight_used = 0
        try:
            self._check_ban()
            fault = self._next_fault()
            if fault and fault.kind is FaultKind.RATE_LIMIT:
                self._backoff_until = self._clock() + fault.retry_after_s * 1000
                raise ApiError(
                    429,
                    -1003,
                    "Too many requests; back off.",
                    {"Retry-After": str(fault.retry_after_s)},
                )
            weight_used = self._count_weight(request)
            if fault and fault.kind is FaultKind.ERROR_BEFORE:
                return web.Response(status=fault.status, text="Internal error; unknown status")
            params = await self._authenticate(request)
            self._match_resting()
            body = self._route(request, params)
            if fault and fault.kind is FaultKind.ERROR_AFTER_PLACE:
                return web.Response(status=fault.status, text="Internal error; unknown status")
            if fault and fault.kind is FaultKind.TIMEOUT:
                await self._hang()
            return web.json_response(body, headers=self._weight_header(weight_used))
        except ApiError as err:
            headers = {**err.headers, **self._weight_header(weight_used)}
            return web.json_response(
                {"code": err.code, "msg": err.msg}, status=err.status, headers=headers
            )

    async def handle_time(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/v3/time`` (no faults: it is the client's way to recover)."""
        self.requests.append((request.method, request.path))
        return web.json_response({"serverTime": self.server_time_ms()})

    def _next_fault(self) -> _Fault | None:
        if not self._faults:
            return None
        fault = self._faults[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            self._faults.pop(0)
        return fault

    def _check_ban(self) -> None:
        now = self._clock()
        if now < self._banned_until:
            wait = math.ceil((self._banned_until - now) / 1000)
            raise ApiError(
                418,
                -1003,
                f"Way too many requests; IP banned until {self._banned_until}.",
                {"Retry-After": str(wait)},
            )
        if now < self._backoff_until:
            self._banned_until = now + self.ban_s * 1000
            raise ApiError(
                418,
                -1003,
                f"Way too many requests; IP banned until {self._banned_until}.",
                {"Retry-After": str(self.ban_s)},
            )

    def _count_weight(self, request: web.Request) -> int:
        now = self._clock()
        minute = now // 60_000
        used = self._window[1] if self._window[0] == minute else 0
        weight = _WEIGHTS.get((request.method, request.path), 1)
        if request.path == "/api/v3/openOrders" and "symbol" not in request.query:
            weight = 80
        if used + weight > self.max_weight_1m:
            retry = math.ceil(((minute + 1) * 60_000 - now) / 1000)
            self._backoff_until = (minute + 1) * 60_000
            raise ApiError(
                429,
                -1003,
                "Too much request weight used; current limit is "
                f"{self.max_weight_1m} request weight per 1 MINUTE.",
                {"Retry-After": str(retry)},
            )
        self._window = (minute, used + weight)
        return used + weight

    @staticmethod
    def _weight_header(used: int) -> dict[str, str]:
        return {"X-MBX-USED-WEIGHT-1M": str(used)} if used else {}

    async def _authenticate(self, request: web.Request) -> dict[str, str]:
        if request.headers.get("X-MBX-APIKEY") != self._api_key:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        raw_query = request.rel_url.raw_query_string
        body = await request.text()
        parts = [p for p in raw_query.split("&") if p and not p.startswith("signature=")]
        given = dict(parse_qsl(raw_query)).get("signature") or dict(parse_qsl(body)).get(
            "signature", ""
        )
        expected = hmac.new(
            self._secret, ("&".join(parts) + body).encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(given, expected):
            raise ApiError(400, -1022, "Signature for this request is not valid.")
        params = {**dict(parse_qsl(raw_query)), **dict(parse_qsl(body))}
        self._check_timestamp(params)
        return params

    def _check_timestamp(self, params: Mapping[str, str]) -> None:
        stamp = _int_param(params, "timestamp")
        raw_window = params.get("recvWindow", "5000")
        window = int(raw_window) if raw_window.isdigit() else -1
        if not 0 < window <= 60_000:
            raise ApiError(400, -1131, "recvWindow must be less than 60000")
        server = self.server_time_ms()
        if not (stamp < server + 1000 and server - stamp <= window):
            raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    async def _hang(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), self.hang_s)

    def _route(self, request: web.Request, params: dict[str, str]) -> Any:
        key = (request.method, request.path)
        if key == ("POST", "/api/v3/order"):
            return self._new_order(params)
        if key == ("DELETE", "/api/v3/order"):
            return self._cancel(params)
        if key == ("GET", "/api/v3/order"):
            return self._find(params).as_json()
        if key == ("GET", "/api/v3/openOrders"):
            symbol = params.get("symbol", "").upper()
            return [
                o.as_json()
                for o in self.orders.values()
                if o.status in _OPEN and (not symbol or o.symbol == symbol)
            ]
        return self._account()

    # ------------------------------------------------------------------ endpoints

    def _new_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        order = self._parse_order(params)
        if order.client_order_id in self.orders:
            self.duplicate_attempts.append(order.client_order_id)
            raise ApiError(400, -2010, "Duplicate order sent.")
        self._check_balance(order)
        self.orders[order.client_order_id] = order
        self.ledger.append(
            LedgerEntry(
                order.client_order_id,
                order.order_id,
                order.symbol,
                order.side,
                order.orig_qty,
                order.time_ms,
            )
        )
        self._execute(order)
        return {**order.as_json(), "transactTime": order.time_ms, "fills": list(order.fills)}

    def _parse_order(self, params: Mapping[str, str]) -> SimOrder:
        symbol = _param(params, "symbol").upper()
        bids, asks = self._levels(symbol)
        side = _param(params, "side")
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        kind = _param(params, "type")
        if kind not in ("MARKET", "LIMIT"):
            raise ApiError(400, -1116, "Invalid orderType.")
        qty = _dec_param(params, "quantity")
        price = _dec_param(params, "price") if kind == "LIMIT" else None
        tif = _param(params, "timeInForce") if kind == "LIMIT" else "GTC"
        if tif not in ("GTC", "IOC", "FOK"):
            raise ApiError(400, -1115, "Invalid timeInForce.")
        best = (asks if side == "BUY" else bids)[:1]
        filters = self.filters.get(symbol, SymbolFilters())
        filters.check(price, qty, best[0][0] if best else None)
        order_id = next(self._ids)
        coid = params.get("newClientOrderId") or f"sim-{order_id}"
        return SimOrder(
            order_id, coid, symbol, side, kind, tif, price, qty, time_ms=self.server_time_ms()
        )

    def _levels(self, symbol: str) -> tuple[Sequence[Level], Sequence[Level]]:
        if self.filters and symbol not in self.filters:
            raise ApiError(400, -1121, "Invalid symbol.")
        try:
            return self._book(symbol)
        except ApiError:
            raise
        except Exception:  # the provider's own "unknown symbol" error, whatever its type
            raise ApiError(400, -1121, "Invalid symbol.") from None

    def _cancel(self, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            order = self._find(params)
        except ApiError:
            raise ApiError(400, -2011, "Unknown order sent.") from None
        if order.status not in _OPEN:
            raise ApiError(400, -2011, "Unknown order sent.")
        order.status = "CANCELED"
        order.update_ms = self.server_time_ms()
        return {
            **order.as_json(),
            "origClientOrderId": order.client_order_id,
            "clientOrderId": f"cancel-{order.order_id}",
            "transactTime": order.update_ms,
        }

    def _find(self, params: Mapping[str, str]) -> SimOrder:
        symbol = _param(params, "symbol").upper()
        coid = params.get("origClientOrderId")
        order_id = params.get("orderId")
        if coid is None and order_id is None:
            raise ApiError(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        for order in self.orders.values():
            if order.symbol == symbol and (
                order.client_order_id == coid or str(order.order_id) == order_id
            ):
                return order
        raise ApiError(400, -2013, "Order does not exist.")

    def _account(self) -> dict[str, Any]:
        balances = [
            {"asset": a, "free": str(v), "locked": "0"}
            for a, v in sorted((self.balances or {}).items())
        ]
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "canTrade": True,
            "canWithdraw": False,
            "canDeposit": False,
            "accountType": "SPOT",
            "updateTime": self.server_time_ms(),
            "balances": balances,
            "permissions": ["SPOT"],
        }

    # ------------------------------------------------------------------ matching

    def _available(self, symbol: str, side: str) -> list[Level]:
        bids, asks = self._levels(symbol)
        book_side = "asks" if side == "BUY" else "bids"
        levels = asks if side == "BUY" else bids
        taken = self._taken.setdefault((symbol, book_side), {})
        shown = dict(levels)
        for price in [p for p in taken if p not in shown]:
            del taken[price]
        out = [(p, q - min(taken.get(p, _ZERO), q)) for p, q in levels]
        return [(p, q) for p, q in out if q > 0]

    def _crossing(self, order: SimOrder) -> list[Level]:
        """(price, qty) this order could take now, best first, within its limit."""
        out, left = [], order.orig_qty - order.executed_qty
        for price, qty in self._available(order.symbol, order.side):
            if left <= 0 or (
                order.price is not None
                and (price > order.price if order.side == "BUY" else price < order.price)
            ):
                break
            take = min(qty, left)
            out.append((price, take))
            left -= take
        return out

    def _execute(self, order: SimOrder) -> None:
        fills = self._crossing(order)
        if order.time_in_force == "FOK" and sum(q for _, q in fills) < order.orig_qty:
            order.status = "EXPIRED"
            return
        self._apply_fills(order, fills)
        if order.status in _OPEN and (order.type == "MARKET" or order.time_in_force != "GTC"):
            order.status = "EXPIRED"

    def _apply_fills(self, order: SimOrder, fills: list[Level]) -> None:
        book_side = "asks" if order.side == "BUY" else "bids"
        taken = self._taken.setdefault((order.symbol, book_side), {})
        for price, qty in fills:
            taken[price] = taken.get(price, _ZERO) + qty
            order.executed_qty += qty
            order.cum_quote += price * qty
            fee, asset = self._settle(order, price, qty)
            order.fills.append(
                {
                    "price": str(price),
                    "qty": str(qty),
                    "commission": str(fee),
                    "commissionAsset": asset,
                    "tradeId": next(self._trade_ids),
                }
            )
        if fills:
            order.update_ms = self.server_time_ms()
            full = order.executed_qty == order.orig_qty
            order.status = "FILLED" if full else "PARTIALLY_FILLED"

    def _match_resting(self) -> None:
        for order in list(self.orders.values()):
            if order.status in _OPEN and order.type == "LIMIT":
                self._apply_fills(order, self._crossing(order))

    def _assets(self, symbol: str) -> tuple[str, str]:
        f = self.filters.get(symbol, SymbolFilters())
        if f.base_asset and f.quote_asset:
            return f.base_asset, f.quote_asset
        for quote in ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB", "USD", "EUR"):
            if symbol.endswith(quote) and len(symbol) > len(quote):
                return symbol[: -len(quote)], quote
        return symbol, ""

    def _settle(self, order: SimOrder, price: Decimal, qty: Decimal) -> tuple[Decimal, str]:
        """Move balances for one fill; the commission is taken from the asset received."""
        base, quote = self._assets(order.symbol)
        if order.side == "BUY":
            fee, asset, deltas = qty * self.fee_rate, base, {quote: -price * qty, base: qty}
        else:
            fee = price * qty * self.fee_rate
            asset, deltas = quote, {base: -qty, quote: price * qty}
        if self.balances is not None:
            deltas[asset] -= fee
            for name, delta in deltas.items():
                self.balances[name] = self.balances.get(name, _ZERO) + delta
        return fee, asset

    def _check_balance(self, order: SimOrder) -> None:
        if self.balances is None:
            return
        base, quote = self._assets(order.symbol)
        if order.side == "SELL":
            need, asset = order.orig_qty, base
        elif order.price is not None:
            need, asset = order.price * order.orig_qty, quote
        else:
            need, asset = sum((p * q for p, q in self._crossing(order)), _ZERO), quote
        if self.balances.get(asset, _ZERO) < need:
            raise ApiError(400, -2010, "Account has insufficient balance for requested action.")


def _param(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise ApiError(
            400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        )
    return value


def _dec_param(params: Mapping[str, str], name: str) -> Decimal:
    raw = _param(params, name)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value <= 0 or "e" in raw.lower():
        raise ApiError(
            400,
            -1100,
            f"Illegal characters found in parameter '{name}'; legal "
            "range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        )
    return value


def _int_param(params: Mapping[str, str], name: str) -> int:
    raw = _param(params, name)
    if not raw.isdigit():
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.")
    return int(raw)


def _has_route(app: web.Application, method: str, path: str) -> bool:
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        if route.method == method and (info.get("path") == path or info.get("formatter") == path):
            return True
    return False


def add_trading_routes(
    app: web.Application,
    book_provider: BookProviderFn,
    api_key: str,
    api_secret: str,
    filters: Mapping[str, Any],
    **options: Any,
) -> TradingSimulator:
    """Add the trading endpoints to ``app``; returns the simulator (also ``app[SIMULATOR_KEY]``).

    ``options`` go to :class:`TradingSimulator` (``clock_ms``, ``balances``, ``fee_rate``,
    ``max_weight_1m``, ``ban_s``, ``hang_s``).
    """
    sim = TradingSimulator(book_provider, api_key, api_secret, filters, **options)
    for method in ("POST", "DELETE", "GET"):
        app.router.add_route(method, "/api/v3/order", sim.dispatch)
    app.router.add_get("/api/v3/openOrders", sim.dispatch)
    app.router.add_get("/api/v3/account", sim.dispatch)
    if not _has_route(app, "GET", "/api/v3/time"):
        app.router.add_get("/api/v3/time", sim.handle_time)

    async def _release_on_shutdown(_: web.Application) -> None:
        sim.release()

    app.on_shutdown.append(_release_on_shutdown)
    app[SIMULATOR_KEY] = sim
    return sim


def trading_setup(
    api_key: str, api_secret: str, filters: Mapping[str, Any] | None = None, **options: Any
) -> Callable[[web.Application, Any], None]:
    """A ``setup`` hook for the simulator server: ``hook(app, market)`` adds trading routes.

    ``market`` needs ``book(symbol)``; when ``filters`` is None they come from
    ``market.spec(symbol)`` for every ``market.symbols``. Note: when the app already serves
    ``/api/v3/time`` that route is kept, so ``clock_skew`` faults are not visible there.
    """

    def hook(app: web.Application, market: Any) -> None:
        found = filters
        if found is None:
            found = {s: market.spec(s) for s in market.symbols}
        add_trading_routes(app, market.book, api_key, api_secret, found, **options)

    return hook
