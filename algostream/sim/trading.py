"""Simulated Binance spot trading API (aiohttp), with an account, fault injection and an
order ledger.

:func:`add_trading_routes` adds to an :class:`aiohttp.web.Application` (SIGNED unless
noted): ``POST /api/v3/order`` (the types of :mod:`algostream.sim.orders`, with
``newOrderRespType`` ACK/RESULT/FULL), ``POST /api/v3/order/test``, ``GET/DELETE
/api/v3/order``, ``GET/DELETE /api/v3/openOrders``, ``GET /api/v3/allOrders``, ``GET
/api/v3/myTrades``, ``GET /api/v3/account``, ``POST/PUT/DELETE /api/v3/userDataStream``
(API key only; events per :mod:`algostream.sim.user_stream`) and ``GET /api/v3/time``
when the app does not serve it already.

Requests are checked as Binance does (:mod:`algostream.sim.signing`: API key -2014/-2015,
signature over query + body -1022, timestamp -1021), then parameters
(:mod:`algostream.sim.binance_errors`), filters (-1013), and the account (-2010,
:mod:`algostream.sim.account`). A client order id is refused as a duplicate only while
an order with it is open, as on Binance. Request weight and 429/418 are the app-wide
:mod:`algostream.sim.ratelimit`; new orders are also limited to 100 per 10 s (-1015).
``balances=None`` tracks balances without ever refusing (for tests of other things).

Orders match against ``book_provider(symbol) -> (bids, asks)`` at the book's prices
only. A market order's unfilled remainder EXPIREs; GTC remainders rest and fill when the
book crosses them, checked on every trading request and on :meth:`on_market_event`
(the server calls it after each batch of market events). Liquidity taken is remembered
per price level until the book stops showing that price, so the same displayed quantity
is never sold twice.

Faults (:meth:`TradingSimulator.inject`) apply to the next ``count`` trading requests:
``5xx_after_place`` (request executed, answer 500/503), ``5xx_before`` (not executed),
``429`` (not executed), ``timeout`` (executed, then the answer hangs until ``hang_s`` or
:meth:`TradingSimulator.release`), ``clock_skew`` (the server clock moves by ``skew_ms``;
``count`` is ignored). :attr:`TradingSimulator.ledger` lists every placed order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from algostream.sim.account import Account
from algostream.sim.binance_errors import (
    DUPLICATE_ORDER,
    WOULD_TAKE,
    WOULD_TRIGGER,
    ApiError,
    client_id_param,
    invalid_symbol,
    optional_int,
    rejected,
    symbol_param,
)
from algostream.sim.orders import (
    MARKET_TYPES,
    STOP_TYPES,
    OrderParams,
    SimOrder,
    SymbolFilters,
    p8,
    parse_order_params,
)
from algostream.sim.ratelimit import WeightLimiter, install_limiter
from algostream.sim.signing import check_api_key, check_timestamp, verify_signature
from algostream.sim.user_stream import ListenKeys

Level = tuple[Decimal, Decimal]
BookProviderFn = Callable[[str], tuple[Sequence[Level], Sequence[Level]]]
LastPriceFn = Callable[[str], Decimal | None]
ClockMsFn = Callable[[], int]

_ZERO = Decimal(0)
SIMULATOR_KEY: web.AppKey[TradingSimulator] = web.AppKey("trading_simulator")
ORDERS_PER_10S = 100
__all__ = ["SIMULATOR_KEY", "FaultKind", "SymbolFilters", "TradingSimulator", "add_trading_routes"]


class FaultKind(StrEnum):
    """Injectable faults (see module docs)."""

    ERROR_AFTER_PLACE = "5xx_after_place"
    ERROR_BEFORE = "5xx_before"
    RATE_LIMIT = "429"
    TIMEOUT = "timeout"
    CLOCK_SKEW = "clock_skew"


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


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
        balances: Mapping[str, Decimal | str | int] | None = None,
        fee_rate: Decimal = Decimal("0.001"),
        max_weight_1m: int = 6000,
        ban_s: int = 120,
        hang_s: float = 30.0,
        last_price: LastPriceFn | None = None,
    ) -> None:
        self._book = book_provider
        self._api_key = api_key
        self._secret = api_secret
        self.filters = {s.upper(): SymbolFilters.parse(f) for s, f in filters.items()}
        self._clock = clock_ms
        self._last_price = last_price
        self.account = Account(balances, enforce=balances is not None)
        self.fee_rate = Decimal(fee_rate)
        self.limiter = WeightLimiter(self.server_time_ms, max_weight_1m=max_weight_1m, ban_s=ban_s)
        self.hang_s = hang_s
        self.skew_ms = 0
        self.orders: dict[int, SimOrder] = {}
        self._resting: dict[int, SimOrder] = {}  # open orders left on the book
        self.trades: list[dict[str, Any]] = []
        self.ledger: list[LedgerEntry] = []
        self.duplicate_attempts: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.listen_keys = ListenKeys(self.server_time_ms)
        self._faults: list[_Fault] = []
        self._ids = itertools.count(1)
        self._list_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._taken: dict[tuple[str, str], dict[Decimal, Decimal]] = {}
        self._recent_orders: deque[int] = deque()
        self._orders_today = (-1, 0)  # (day, count)
        self._release = asyncio.Event()

    # ------------------------------------------------------------------ test API

    @property
    def balances(self) -> dict[str, Decimal] | None:
        """Free balances per asset (None when balances are not enforced)."""
        return dict(self.account.free) if self.account.enforce else None

    @balances.setter
    def balances(self, value: Mapping[str, Decimal] | None) -> None:
        self.account = Account(value, enforce=value is not None)

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
        """How many times an order with this client order id was placed."""
        return sum(1 for e in self.ledger if e.client_order_id == client_order_id)

    def release(self) -> None:
        """Let requests hung by a ``timeout`` fault answer now."""
        self._release.set()

    def server_time_ms(self) -> int:
        """The server clock (injected clock + skew)."""
        return self._clock() + self.skew_ms

    def on_market_event(self) -> None:
        """The book moved: fill resting orders it crosses, trigger stops, expire keys."""
        self._match_resting()
        self.listen_keys.expire_due()

    # ------------------------------------------------------------------ request pipeline

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Run faults, checks and the endpoint for one signed request."""
        self.requests.append((request.method, request.path))
        fault = self._next_fault()
        if fault and fault.kind is FaultKind.RATE_LIMIT:
            self.limiter.back_off(fault.retry_after_s)
            raise ApiError(
                429,
                -1003,
                "Too many requests; back off.",
                {"Retry-After": str(fault.retry_after_s)},
            )
        if fault and fault.kind is FaultKind.ERROR_BEFORE:
            return web.Response(status=fault.status, text="Internal error; unknown status")
        check_api_key(request.headers, self._api_key)
        body = await _body(request)
        params = verify_signature(self._secret, request.rel_url.raw_query_string, body)
        check_timestamp(params, self.server_time_ms())
        self._match_resting()
        answer = self._route(request.method, request.path, params)
        if fault and fault.kind is FaultKind.ERROR_AFTER_PLACE:
            return web.Response(status=fault.status, text="Internal error; unknown status")
        if fault and fault.kind is FaultKind.TIMEOUT:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), self.hang_s)
        headers = {}
        if request.method == "POST" and request.path in ("/api/v3/order", "/api/v3/orderList/oco"):
            headers = {
                "X-MBX-ORDER-COUNT-10S": str(len(self._recent_orders)),
                "X-MBX-ORDER-COUNT-1D": str(self._orders_today[1]),
            }
        return web.json_response(answer, headers=headers)

    async def handle_user_stream(self, request: web.Request) -> web.StreamResponse:
        """``POST/PUT/DELETE /api/v3/userDataStream`` (API key, no signature)."""
        self.requests.append((request.method, request.path))
        check_api_key(request.headers, self._api_key)
        params = {**dict(parse_qsl(await _body(request))), **request.query}
        if request.method == "POST":
            return web.json_response({"listenKey": self.listen_keys.create()})
        if request.method == "PUT":
            self.listen_keys.keepalive(params)
        else:
            self.listen_keys.close(params)
        return web.json_response({})

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

    def _route(self, method: str, path: str, params: dict[str, str]) -> Any:
        routes: dict[tuple[str, str], Callable[[dict[str, str]], Any]] = {
            ("POST", "/api/v3/order"): self._new_order,
            ("POST", "/api/v3/order/test"): self._test_order,
            ("POST", "/api/v3/orderList/oco"): self._new_oco,
            ("DELETE", "/api/v3/order"): self._cancel,
            ("GET", "/api/v3/order"): lambda p: self._find(p).as_json(),
            ("GET", "/api/v3/openOrders"): self._open_orders,
            ("DELETE", "/api/v3/openOrders"): self._cancel_all,
            ("GET", "/api/v3/allOrders"): self._all_orders,
            ("GET", "/api/v3/myTrades"): self._my_trades,
            ("GET", "/api/v3/account"): self._account,
        }
        return routes[(method, path)](params)

    # ------------------------------------------------------------------ orders

    def _validated(self, params: Mapping[str, str]) -> tuple[OrderParams, SymbolFilters]:
        symbol = symbol_param(params)
        bids, asks = self._levels(symbol)
        op = parse_order_params(params, symbol)
        filters = self.filters.get(symbol, SymbolFilters())
        filters.check_price(op.stop_price)
        best = (asks if op.side == "BUY" else bids)[:1]
        ref = best[0][0] if best else None
        if op.quantity is not None:
            filters.check(op.price, op.quantity, ref)
        elif (
            filters.min_notional is not None
            and op.quote_order_qty is not None
            and op.quote_order_qty < filters.min_notional
        ):
            raise ApiError(400, -1013, "Filter failure: NOTIONAL")
        return op, filters

    def _test_order(self, params: dict[str, str]) -> dict[str, Any]:
        self._validated(params)
        return {}

    def _new_order(self, params: dict[str, str]) -> dict[str, Any]:
        op, filters = self._validated(params)
        if op.client_order_id and any(
            o.is_open and o.client_order_id == op.client_order_id for o in self.orders.values()
        ):
            self.duplicate_attempts.append(op.client_order_id)
            raise rejected(DUPLICATE_ORDER)
        self._count_order()
        order = self._make_order(op, filters)
        self._pre_trade_checks(order)
        self._reserve(order)
        self.orders[order.order_id] = order
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
        self._report(order, "NEW")
        if order.working:
            self._execute(order, maker=False)
        if order.is_open:
            self._resting[order.order_id] = order
        self._emit_position(order.symbol)
        return order.answer(op.resp_type)

    def _new_oco(self, params: dict[str, str]) -> dict[str, Any]:
        """``POST /api/v3/orderList/oco``: an above and a below order, one a LIMIT_MAKER /
        TAKE_PROFIT(_LIMIT), the other a STOP_LOSS(_LIMIT), same side and quantity; a SELL
        OCO's limit above the last price and its stop below, a BUY's the other way round
        (else -2010 "The relationship of the prices for the orders is not correct.")."""
        symbol = symbol_param(params)
        side = params.get("side", "")
        list_coid = client_id_param(params, "listClientOrderId")
        legs: list[tuple[OrderParams, SymbolFilters]] = []
        for pos in ("above", "below"):
            kind = params.get(f"{pos}Type") or ""
            if not kind:
                raise ApiError(400, -1102, f"Mandatory parameter '{pos}Type' was not sent, "
                               "was empty/null, or malformed.")  # fmt: skip
            leg = {"symbol": symbol, "side": side, "type": kind, "newOrderRespType": "RESULT"}
            leg["quantity"] = params.get("quantity", "")
            for name in ("price", "stopPrice", "timeInForce", "clientOrderId"):
                value = params.get(f"{pos}{name[0].upper()}{name[1:]}")
                if value:
                    leg["newClientOrderId" if name == "clientOrderId" else name] = value
            legs.append(self._validated(leg))
        (above, f_above), (below, f_below) = legs
        limits, stops = ("LIMIT_MAKER", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"), (
            "STOP_LOSS", "STOP_LOSS_LIMIT"
        )  # fmt: skip
        pair = (above.type, below.type)
        sell = side == "SELL"
        if not ((sell and pair[0] in limits and pair[1] in stops) or
                (not sell and pair[0] in stops and pair[1] in limits)):  # fmt: skip
            raise rejected(f"Unsupported order combination aboveType={pair[0]} "
                           f"belowType={pair[1]} for a {side} OCO.")  # fmt: skip
        last = self._reference_price(symbol)
        hi = above.price if above.type == "LIMIT_MAKER" else above.stop_price
        lo = below.price if below.type == "LIMIT_MAKER" else below.stop_price
        if last is not None and hi is not None and lo is not None and not lo < last < hi:
            raise rejected("The relationship of the prices for the orders is not correct.")
        coids = [above.client_order_id, below.client_order_id, list_coid]
        if any(o.is_open and o.client_order_id in coids for o in self.orders.values()):
            raise rejected(DUPLICATE_ORDER)
        self._count_order()
        self._count_order()
        list_id = next(self._list_ids)
        made = [self._make_order(above, f_above), self._make_order(below, f_below)]
        for order in made:
            self._pre_trade_checks(order)
        made[0].partner, made[1].partner = made[1].order_id, made[0].order_id
        locking = [o for o in made if self._locks(o)]
        for order in made:
            order.order_list_id = list_id
            order.shares_lock = order in locking[1:]  # one lock for the pair
        for order in made:
            self._reserve(order)
            self.orders[order.order_id] = order
            self.ledger.append(LedgerEntry(order.client_order_id, order.order_id, order.symbol,
                                           order.side, order.orig_qty, order.time_ms))  # fmt: skip
            self._resting[order.order_id] = order
            self._report(order, "NEW")
        now = self.server_time_ms()
        return {
            "orderListId": list_id,
            "contingencyType": "OCO",
            "listStatusType": "EXEC_STARTED",
            "listOrderStatus": "EXECUTING",
            "listClientOrderId": list_coid or f"list-{list_id}",
            "transactionTime": now,
            "symbol": symbol,
            "orders": [
                {"symbol": symbol, "orderId": o.order_id, "clientOrderId": o.client_order_id}
                for o in made
            ],
            "orderReports": [o.answer("RESULT") for o in made],
        }

    def _end_partner(self, order: SimOrder) -> None:
        """An OCO leg was activated (triggered, or filled): the other one expires."""
        other = self.orders.get(order.partner) if order.partner is not None else None
        if other is not None and other.is_open:
            self._finish(other, "EXPIRED")
            if order.shares_lock and not other.shares_lock:  # its funds are now its own
                order.shares_lock = False
                self._reserve(order)

    def edit(self, order: SimOrder, price: Decimal, qty: Decimal) -> None:
        """A new price and quantity for an open GTC limit order (Coinbase's edit): its lock
        is re-taken for the new values; a LIMIT_MAKER the new price would cross is refused
        (-2010 would take) and left as it was; a new price that crosses trades now."""
        old = (order.price, order.orig_qty)
        self._release_rest(order)
        order.price, order.orig_qty = price, qty
        if order.type == "LIMIT_MAKER" and self._crossing(order):
            order.price, order.orig_qty = old
            self._reserve_rest(order)
            raise rejected(WOULD_TAKE)
        try:
            self._reserve_rest(order)
        except ApiError:
            order.price, order.orig_qty = old
            self._reserve_rest(order)
            raise
        order.update_ms = self.server_time_ms()
        self._report(order, "REPLACED")
        if order.type == "LIMIT":
            self._apply_fills(order, self._crossing(order), maker=False)
        self._emit_position(order.symbol)

    def _reserve_rest(self, order: SimOrder) -> None:
        """Lock what the open remainder of a limit order may spend."""
        base, quote = self._assets(order.symbol)
        if order.side == "SELL":
            self.account.lock(base, order.remaining)
        elif order.price is not None:
            self.account.lock(quote, order.price * order.remaining)

    def _count_order(self) -> None:
        now = self.server_time_ms()
        recent = self._recent_orders
        while recent and recent[0] <= now - 10_000:
            recent.popleft()
        if len(recent) >= ORDERS_PER_10S:
            raise ApiError(
                429,
                -1015,
                f"Too many new orders; current limit is {ORDERS_PER_10S} orders per 10 SECOND.",
            )
        recent.append(now)
        day, count = self._orders_today
        self._orders_today = (now // 86_400_000, count + 1 if day == now // 86_400_000 else 1)

    def _make_order(self, op: OrderParams, filters: SymbolFilters) -> SimOrder:
        order_id = next(self._ids)
        order = SimOrder(
            order_id,
            op.client_order_id or f"sim-{order_id}",
            op.symbol,
            op.side,
            op.type,
            op.time_in_force,
            op.price,
            op.quantity or _ZERO,
            self.server_time_ms(),
            stop_price=op.stop_price,
            quote_order_qty=op.quote_order_qty,
            working=op.type not in STOP_TYPES,
        )
        if op.quote_order_qty is not None:
            order.orig_qty = self._qty_for_quote(order, filters)
        return order

    def _pre_trade_checks(self, order: SimOrder) -> None:
        if order.type == "LIMIT_MAKER" and self._crossing(order):
            raise rejected(WOULD_TAKE)
        if order.type in STOP_TYPES and self._triggered(order):
            raise rejected(WOULD_TRIGGER)

    def _triggered(self, order: SimOrder) -> bool:
        ref = self._reference_price(order.symbol)
        stop = order.stop_price
        if ref is None or stop is None:
            return False
        rising = (order.type in ("STOP_LOSS_LIMIT", "STOP_LOSS")) == (order.side == "BUY")
        return ref >= stop if rising else ref <= stop

    def _reference_price(self, symbol: str) -> Decimal | None:
        last = self._last_price(symbol) if self._last_price is not None else None
        if last is not None:
            return last
        bids, asks = self._levels(symbol)
        if bids and asks:
            return (bids[0][0] + asks[0][0]) / 2
        return None

    def _levels(self, symbol: str) -> tuple[Sequence[Level], Sequence[Level]]:
        if self.filters and symbol not in self.filters:
            raise invalid_symbol()
        try:
            return self._book(symbol)
        except ApiError:
            raise
        except Exception:  # the provider's own "unknown symbol" error, whatever its type
            raise invalid_symbol() from None

    # ------------------------------------------------------------------ account moves

    def _assets(self, symbol: str) -> tuple[str, str]:
        f = self.filters.get(symbol, SymbolFilters())
        if f.base_asset and f.quote_asset:
            return f.base_asset, f.quote_asset
        for quote in ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB", "USD", "EUR"):
            if symbol.endswith(quote) and len(symbol) > len(quote):
                return symbol[: -len(quote)], quote
        return symbol, ""

    @staticmethod
    def _locks(order: SimOrder) -> bool:
        return order.type not in MARKET_TYPES and not order.shares_lock

    def _reserve(self, order: SimOrder) -> None:
        """Lock what a limit order may spend; check a market order can pay (-2010)."""
        base, quote = self._assets(order.symbol)
        if order.side == "SELL":
            need, asset = order.orig_qty, base
        elif order.price is not None:
            need, asset = order.price * order.orig_qty, quote
        else:
            need, asset = sum((p * q for p, q in self._crossing(order)), _ZERO), quote
        if self._locks(order):
            self.account.lock(asset, need)
        else:
            self.account.require(asset, need)

    def _release_rest(self, order: SimOrder) -> None:
        if not self._locks(order):
            return
        base, quote = self._assets(order.symbol)
        if order.side == "SELL":
            self.account.unlock(base, order.remaining)
        elif order.price is not None:
            self.account.unlock(quote, order.price * order.remaining)

    def _settle(self, order: SimOrder, price: Decimal, qty: Decimal) -> tuple[Decimal, str]:
        """Move balances for one fill; the commission is taken from the asset received."""
        base, quote = self._assets(order.symbol)
        locked = self._locks(order)
        if order.side == "BUY":
            fee, asset = qty * self.fee_rate, base
            if locked and order.price is not None:
                self.account.spend(quote, order.price * qty, locked=True)
                self.account.credit(quote, (order.price - price) * qty)
            else:
                self.account.spend(quote, price * qty, locked=False)
            self.account.credit(base, qty - fee)
        else:
            fee, asset = price * qty * self.fee_rate, quote
            self.account.spend(base, qty, locked=locked)
            self.account.credit(quote, price * qty - fee)
        return fee, asset

    def _emit_position(self, symbol: str) -> None:
        event = self.account.position_event(list(self._assets(symbol)), self.server_time_ms())
        self.listen_keys.emit(event)

    def _report(
        self, order: SimOrder, exec_type: str, fill: dict[str, Any] | None = None, cancel: str = ""
    ) -> None:
        """An executionReport; for a cancel ``c`` is the cancel's id, ``C`` the order's."""
        report = order.execution_report(exec_type, self.server_time_ms(), fill)
        if cancel:
            report["c"], report["C"] = cancel, order.client_order_id
        self.listen_keys.emit(report)

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
        out, left = [], order.remaining
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

    def _qty_for_quote(self, order: SimOrder, filters: SymbolFilters) -> Decimal:
        """The base quantity a ``quoteOrderQty`` market order buys/sells now (step-rounded)."""
        budget, qty = order.quote_order_qty or _ZERO, _ZERO
        for price, shown in self._available(order.symbol, order.side):
            take = filters.round_qty(min(shown, budget / price))
            if take <= 0:
                break
            qty += take
            budget -= take * price
        return qty

    def _execute(self, order: SimOrder, *, maker: bool) -> None:
        fills = self._crossing(order)
        if order.time_in_force == "FOK" and sum(q for _, q in fills) < order.remaining:
            self._finish(order, "EXPIRED")
            return
        self._apply_fills(order, fills, maker=maker)
        if order.is_open and (order.type in MARKET_TYPES or order.time_in_force != "GTC"):
            self._finish(order, "EXPIRED")

    def _finish(self, order: SimOrder, status: str, cancel_id: str = "") -> None:
        self._release_rest(order)
        order.status = status
        order.update_ms = self.server_time_ms()
        self._report(order, status, cancel=cancel_id)

    def _apply_fills(self, order: SimOrder, fills: list[Level], *, maker: bool) -> None:
        book_side = "asks" if order.side == "BUY" else "bids"
        taken = self._taken.setdefault((order.symbol, book_side), {})
        for price, qty in fills:
            taken[price] = taken.get(price, _ZERO) + qty
            order.executed_qty += qty
            order.cum_quote += price * qty
            fee, asset = self._settle(order, price, qty)
            order.status = "FILLED" if order.remaining == 0 else "PARTIALLY_FILLED"
            order.update_ms = self.server_time_ms()
            fill = self._record_trade(order, price, qty, fee, asset, maker)
            order.fills.append(fill)
            self._report(order, "TRADE", fill)

    def _record_trade(
        self, order: SimOrder, price: Decimal, qty: Decimal, fee: Decimal, asset: str, maker: bool
    ) -> dict[str, Any]:
        trade_id = next(self._trade_ids)
        trade = {
            "symbol": order.symbol,
            "id": trade_id,
            "orderId": order.order_id,
            "orderListId": -1,
            "price": p8(price),
            "qty": p8(qty),
            "quoteQty": p8(price * qty),
            "commission": p8(fee),
            "commissionAsset": asset,
            "time": self.server_time_ms(),
            "isBuyer": order.side == "BUY",
            "isMaker": maker,
            "isBestMatch": True,
        }
        self.trades.append(trade)
        return {**trade, "tradeId": trade_id}

    def _match_resting(self) -> None:
        for order in list(self._resting.values()):
            if not order.is_open:
                del self._resting[order.order_id]  # filled, cancelled or expired since
                continue
            moved = False
            if not order.working and self._triggered(order):
                order.working, moved = True, True
                self._end_partner(order)
                self._execute(order, maker=False)
            elif order.working:
                fills = self._crossing(order)
                if fills:
                    self._end_partner(order)
                self._apply_fills(order, fills, maker=True)
                moved = bool(fills)
            if moved:
                self._emit_position(order.symbol)

    # ------------------------------------------------------------------ queries

    def _cancel(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            order = self._find(params)
        except ApiError:
            raise ApiError(400, -2011, "Unknown order sent.") from None
        if not order.is_open:
            raise ApiError(400, -2011, "Unknown order sent.")
        new_id = client_id_param(params, "newClientOrderId") or f"cancel-{order.order_id}"
        self._finish(order, "CANCELED", cancel_id=new_id)
        other = self.orders.get(order.partner) if order.partner is not None else None
        if other is not None and other.is_open:  # cancelling an OCO leg cancels the list
            self._finish(other, "CANCELED", cancel_id=new_id)
        self._emit_position(order.symbol)
        return {
            **order.as_json(),
            "origClientOrderId": order.client_order_id,
            "clientOrderId": new_id,
            "transactTime": order.update_ms,
        }

    def _cancel_all(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = symbol_param(params)
        self._levels(symbol)
        open_ids = [o.order_id for o in self.orders.values() if o.is_open and o.symbol == symbol]
        if not open_ids:
            raise ApiError(400, -2011, "Unknown order sent.")
        return [self._cancel({"symbol": symbol, "orderId": str(i)}) for i in open_ids]

    def _find(self, params: Mapping[str, str]) -> SimOrder:
        symbol = symbol_param(params)
        self._levels(symbol)
        coid = params.get("origClientOrderId")
        order_id = optional_int(params, "orderId")
        if coid is None and order_id is None:
            raise ApiError(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        for order in reversed(self.orders.values()):
            if order.symbol == symbol and (
                order.order_id == order_id or (order_id is None and order.client_order_id == coid)
            ):
                return order
        raise ApiError(400, -2013, "Order does not exist.")

    def _open_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = symbol_param(params) if "symbol" in params else ""
        if symbol:
            self._levels(symbol)
        return [
            o.as_json()
            for o in self.orders.values()
            if o.is_open and (not symbol or o.symbol == symbol)
        ]

    @staticmethod
    def _window(params: Mapping[str, str], rows: list[dict[str, Any]], key: str) -> list[Any]:
        start = optional_int(params, "startTime")
        end = optional_int(params, "endTime")
        limit = min(optional_int(params, "limit", 500) or 500, 1000)
        out = [
            r for r in rows if (start is None or r[key] >= start) and (end is None or r[key] <= end)
        ]
        return out[:limit] if start is not None else out[-limit:]

    def _all_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = symbol_param(params)
        self._levels(symbol)
        first = optional_int(params, "orderId", 0) or 0
        rows = [
            o.as_json() for o in self.orders.values() if o.symbol == symbol and o.order_id >= first
        ]
        return self._window(params, rows, "time")

    def _my_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = symbol_param(params)
        self._levels(symbol)
        order_id = optional_int(params, "orderId")
        from_id = optional_int(params, "fromId", 0) or 0
        rows = [
            t
            for t in self.trades
            if t["symbol"] == symbol
            and t["id"] >= from_id
            and (order_id is None or t["orderId"] == order_id)
        ]
        return self._window(params, rows, "time")

    def _account(self, params: dict[str, str]) -> dict[str, Any]:
        rows = self.account.rows()
        if params.get("omitZeroBalances") == "true":
            rows = [r for r in rows if Decimal(r["free"]) or Decimal(r["locked"])]
        bps = int(self.fee_rate * 10_000)
        rate = str(self.fee_rate)
        return {
            "makerCommission": bps,
            "takerCommission": bps,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": rate, "taker": rate, "buyer": "0", "seller": "0"},
            "canTrade": True,
            "canWithdraw": False,
            "canDeposit": False,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.server_time_ms(),
            "accountType": "SPOT",
            "balances": rows,
            "permissions": ["SPOT"],
            "uid": 1,
        }


async def _body(request: web.Request) -> str:
    """The raw body as text (bytes that are not UTF-8 cannot match a signature anyway)."""
    if not request.can_read_body:
        return ""
    return (await request.read()).decode("utf-8", errors="replace")


def _has_route(app: web.Application, method: str, path: str) -> bool:
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        if route.method == method and (info.get("path") == path or info.get("formatter") == path):
            return True
    return False


SIGNED_ROUTES = (
    ("POST", "/api/v3/order"),
    ("DELETE", "/api/v3/order"),
    ("GET", "/api/v3/order"),
    ("POST", "/api/v3/order/test"),
    ("POST", "/api/v3/orderList/oco"),
    ("GET", "/api/v3/openOrders"),
    ("DELETE", "/api/v3/openOrders"),
    ("GET", "/api/v3/allOrders"),
    ("GET", "/api/v3/myTrades"),
    ("GET", "/api/v3/account"),
)


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
    ``max_weight_1m``, ``ban_s``, ``hang_s``, ``last_price``). The app's weight limiter is
    the simulator's unless the app has one already (then ``max_weight_1m`` updates it).
    """
    sim = TradingSimulator(book_provider, api_key, api_secret, filters, **options)
    limiter: WeightLimiter = install_limiter(app, sim.limiter)
    if limiter is not sim.limiter and "max_weight_1m" in options:
        limiter.max_weight_1m = int(options["max_weight_1m"])
    sim.limiter = limiter
    for method, path in SIGNED_ROUTES:
        app.router.add_route(method, path, sim.dispatch)
    for method in ("POST", "PUT", "DELETE"):
        app.router.add_route(method, "/api/v3/userDataStream", sim.handle_user_stream)
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
    ``market.spec(symbol)`` for every ``market.symbols``. Inside :func:`build_app` the
    simulator also gets the exchange's clock, its last trade prices, a call after every
    market event (resting orders fill as the market moves) and the WebSocket hub for the
    user data stream. Note: when the app already serves ``/api/v3/time`` that route is
    kept, so ``clock_skew`` faults are not visible there.
    """

    def hook(app: web.Application, market: Any) -> None:
        from algostream.sim.binance_rest import EXCHANGE_KEY

        found = filters
        if found is None:
            found = {s: market.spec(s) for s in market.symbols}
        opts = dict(options)
        exchange = app.get(EXCHANGE_KEY)
        if exchange is not None:
            opts.setdefault("clock_ms", exchange.now_ms)
        opts.setdefault("last_price", getattr(market, "last_trade_price", None))
        sim = add_trading_routes(app, market.book, api_key, api_secret, found, **opts)
        if exchange is not None:
            sim.listen_keys.publish = exchange.binance.send
            exchange.listen_keys.append(sim.listen_keys)
            exchange.market_listeners.append(sim.on_market_event)

    return hook
