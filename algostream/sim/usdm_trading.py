"""Simulated Binance USDⓈ-M futures trading (one-way mode), signed as spot is.

Endpoints (HMAC-SHA256 signed, ``X-MBX-APIKEY``, ``timestamp``/``recvWindow`` checked by
:mod:`algostream.sim.signing`): ``POST/GET/DELETE /fapi/v1/order``, ``GET
/fapi/v1/openOrders``, ``POST /fapi/v1/leverage``, ``GET /fapi/v2/positionRisk``,
``GET /fapi/v2/account``.

Orders: MARKET (walks the book; a remainder EXPIREs), LIMIT with GTC / IOC / FOK / GTX
(post-only: -5022 when it would take); ``reduceOnly=true``. Conditional orders: STOP /
TAKE_PROFIT (``price`` + ``stopPrice``) and STOP_MARKET / TAKE_PROFIT_MARKET
(``stopPrice``; ``closePosition=true`` instead of a quantity closes the whole position
when triggered, and takes no ``reduceOnly``), triggered by ``workingType`` MARK_PRICE
(the simulated mark) or CONTRACT_PRICE (the last price, the default): a STOP buys on a
rise to / sells on a fall to its stop, a TAKE_PROFIT the other way round; one that would
trigger at once is -2021. Triggered, it works as a MARKET / LIMIT order (``type``
changes, ``origType`` stays). ``PUT /fapi/v1/order`` modifies a LIMIT order's price and
quantity (any other type: refused naming it, with this simulator's code -4145, not a
documented one; a new quantity at or below what has filled
cancels the order; a GTX whose new price would take is cancelled; the same price and
quantity: -5027). Positions, margin and
leverage are a :class:`~algostream.execution.futures.FuturesAccount` (short is a
position; Binance's bracket maintenance rates), so refusals are the venue's: -2022
reduce-only that would increase, -2019 margin insufficient, -2027 notional above the
leverage's bracket, -4028 leverage not valid, -4116 a client order id already used.
Resting GTC orders fill when the book crosses them (:meth:`on_market_event`), and a
position the mid (the mark here) takes through its liquidation is closed by an
``autoclose-*`` order of the venue's own (:meth:`liquidate`).
``inject("5xx_after_place")`` / ``("5xx_before")`` fault the next order requests.

User data stream (as on Binance USDⓈ-M): ``POST/PUT/DELETE /fapi/v1/listenKey`` (API key,
no signature; :class:`~algostream.sim.user_stream.ListenKeys`: 60 minutes, extended by
``PUT``, -1125 when unknown); events go to ``/fstream/ws/<listenKey>``:
``ORDER_TRADE_UPDATE`` on every order change (``x`` NEW / TRADE / CANCELED / EXPIRED, a
trade with its id ``t``, commission ``n``/``N`` and realised profit ``rp``),
``ACCOUNT_UPDATE`` (reason ``m`` ORDER) after every fill with the wallet balance and the
position (amount, entry price, unrealised P&L, margin type, position side BOTH), and
``listenKeyExpired`` when a key lapses (``/sim/fault {"kind": "expire_listen_keys"}``
expires every key now).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from algostream.execution.futures import FuturesAccount, FuturesError
from algostream.model.enums import Side
from algostream.sim.binance_errors import ApiError
from algostream.sim.signing import check_api_key, check_timestamp, verify_signature
from algostream.sim.user_stream import ListenKeys

Level = tuple[Decimal, Decimal]
#: the app key of the futures trading simulator (tests seed positions through it)
USDM_SIMULATOR_KEY: web.AppKey[UsdmTradingSimulator] = web.AppKey("usdm_trading")
BookFn = Callable[[str], tuple[Sequence[Level], Sequence[Level]]]
PriceFn = Callable[[str], Decimal | None]
#: conditional types -> (the type they work as once triggered, trigger on a rise for a BUY)
CONDITIONAL = {
    "STOP": ("LIMIT", True),
    "STOP_MARKET": ("MARKET", True),
    "TAKE_PROFIT": ("LIMIT", False),
    "TAKE_PROFIT_MARKET": ("MARKET", False),
}
ORDER_TYPES = ("MARKET", "LIMIT", *CONDITIONAL)
_ZERO = Decimal(0)
_BRACKET_MSG = "Exceeded the maximum allowable position at current leverage."
_REFUSALS = {
    "REDUCE_ONLY_WOULD_INCREASE": (-2022, "ReduceOnly Order is rejected."),
    "INSUFFICIENT_MARGIN": (-2019, "Margin is insufficient."),
    "LEVERAGE_ABOVE_BRACKET": (-2027, _BRACKET_MSG),
}


@dataclass
class FuturesOrder:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal
    price: Decimal | None
    reduce_only: bool
    time_ms: int
    stop_price: Decimal | None = None
    working_type: str = "CONTRACT_PRICE"
    close_position: bool = False
    #: a conditional order's type once triggered (MARKET / LIMIT); None: not triggered
    working_as: str | None = None
    executed: Decimal = _ZERO
    cum_quote: Decimal = _ZERO
    status: str = "NEW"
    update_ms: int = 0
    fills: list[Level] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    def trade_update(
        self, exec_type: str, now_ms: int, fill: tuple[int, Level, Decimal, Decimal] | None
    ) -> dict[str, Any]:
        """The ``ORDER_TRADE_UPDATE`` of this order now; ``fill`` = (trade id, (price,
        qty), commission, realised profit) for a TRADE."""
        avg = self.cum_quote / self.executed if self.executed else _ZERO
        trade_id, (price, qty), fee, realized = fill or (0, (_ZERO, _ZERO), _ZERO, _ZERO)
        return {
            "e": "ORDER_TRADE_UPDATE",
            "E": now_ms,
            "T": now_ms,
            "o": {
                "s": self.symbol,
                "c": self.client_order_id,
                "S": self.side,
                "o": self.working_as or self.type,
                "f": self.time_in_force,
                "q": f"{self.qty:f}",
                "p": f"{self.price or _ZERO:f}",
                "ap": f"{avg:f}",
                "sp": f"{self.stop_price or _ZERO:f}",
                "x": exec_type,
                "X": self.status,
                "i": self.order_id,
                "l": f"{qty:f}",
                "z": f"{self.executed:f}",
                "L": f"{price:f}",
                "N": "USDT",
                "n": f"{fee:f}",
                "T": now_ms,
                "t": trade_id,
                "b": "0",
                "a": "0",
                "m": False,
                "R": self.reduce_only,
                "wt": self.working_type,
                "ot": self.type,
                "ps": "BOTH",
                "cp": self.close_position,
                "rp": f"{realized:f}",
            },
        }

    def as_json(self) -> dict[str, Any]:
        avg = self.cum_quote / self.executed if self.executed else _ZERO
        return {
            "orderId": self.order_id,
            "symbol": self.symbol,
            "status": self.status,
            "clientOrderId": self.client_order_id,
            "price": f"{self.price or _ZERO:f}",
            "avgPrice": f"{avg:f}",
            "origQty": f"{self.qty:f}",
            "executedQty": f"{self.executed:f}",
            "cumQuote": f"{self.cum_quote:f}",
            "timeInForce": self.time_in_force,
            "type": self.working_as or self.type,
            "reduceOnly": self.reduce_only,
            "closePosition": self.close_position,
            "side": self.side,
            "positionSide": "BOTH",
            "stopPrice": f"{self.stop_price or _ZERO:f}",
            "workingType": self.working_type,
            "priceProtect": False,
            "origType": self.type,
            "updateTime": self.update_ms or self.time_ms,
        }


class UsdmTradingSimulator:
    """State and handlers of the simulated futures trading API (see the module docs)."""

    def __init__(
        self,
        book: BookFn,
        api_key: str,
        api_secret: str,
        *,
        clock_ms: Callable[[], int],
        wallet: Decimal = Decimal("10000"),
        fee_rate: Decimal = Decimal("0.0004"),
        mark_price: PriceFn | None = None,
        last_price: PriceFn | None = None,
    ) -> None:
        self._book = book
        self._mark_price = mark_price
        self._last_price = last_price
        self._api_key = api_key
        self._secret = api_secret
        self._clock = clock_ms
        self.account = FuturesAccount(wallet=Decimal(wallet))
        self.fee_rate = fee_rate
        self.orders: dict[int, FuturesOrder] = {}
        self._ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._faults: list[str] = []
        #: the user data stream's keys; ``publish`` is set to the ``/fstream`` hub's send
        self.listen_keys = ListenKeys(clock_ms)

    def inject(self, kind: str, count: int = 1) -> None:
        """Fault the next ``count`` order requests: ``5xx_after_place`` / ``5xx_before``."""
        if kind not in ("5xx_after_place", "5xx_before"):
            raise ValueError(f"kind={kind!r}: expected 5xx_after_place or 5xx_before")
        self._faults += [kind] * count

    def placements(self, client_order_id: str) -> int:
        return sum(1 for o in self.orders.values() if o.client_order_id == client_order_id)

    def on_market_event(self) -> None:
        """Conditional orders the mark / last price reached trigger; resting GTC orders
        fill where the book now crosses them; positions the mid (the mark here) has taken
        through their liquidation are closed."""
        self.listen_keys.expire_due()
        for order in [o for o in self.orders.values() if o.is_open]:
            if order.type in CONDITIONAL and order.working_as is None:
                if self._reached(order):
                    self._trigger(order)
                continue
            self._match(order)
        self.liquidate()

    def liquidate(self) -> list[FuturesOrder]:
        """Close every position the marks (the books' mids) liquidate, as the venue does:
        an order of its own, client id ``autoclose-<ms>-<n>``, filled at the liquidation
        price (isolated) or the mark (cross), with its ``ORDER_TRADE_UPDATE``s and an
        ``ACCOUNT_UPDATE``; returns the orders."""
        marks: dict[str, Decimal] = {}
        for inst, pos in self.account.positions.items():
            if pos.qty:
                try:
                    bids, asks = self._book(inst.partition(":")[2])
                except Exception:
                    continue
                if bids and asks:
                    marks[inst] = (bids[0][0] + asks[0][0]) / 2
        done = []
        for pos, price in self.account.liquidations(marks):
            symbol, qty = pos.instrument.partition(":")[2], abs(pos.qty)
            side = "SELL" if pos.qty > 0 else "BUY"
            now = self._clock()
            oid = next(self._ids)
            order = FuturesOrder(
                oid, f"autoclose-{now}-{oid}", symbol, side, "LIMIT", "IOC", qty, price, True, now
            )
            self.orders[oid] = order
            self._report(order, "NEW")
            self._fill(order, [(price, qty)])
            done.append(order)
        return done

    # ------------------------------------------------------------------ pipeline

    async def handle_listen_key(self, request: web.Request) -> web.StreamResponse:
        """``POST/PUT/DELETE /fapi/v1/listenKey`` (API key, no signature)."""
        try:
            check_api_key(request.headers, self._api_key)
            body = (await request.read()).decode() if request.can_read_body else ""
            params = {**dict(parse_qsl(body)), **request.query}
            if request.method == "POST":
                return web.json_response({"listenKey": self.listen_keys.create()})
            if request.method == "PUT":
                self.listen_keys.keepalive(params)
                return web.json_response({"listenKey": params["listenKey"]})
            self.listen_keys.close(params)
        except ApiError as err:
            return web.json_response({"code": err.code, "msg": err.msg}, status=err.status)
        return web.json_response({})

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        fault = self._faults.pop(0) if self._faults and request.path.endswith("/order") else None
        if fault == "5xx_before":
            return web.Response(status=503, text="Service Unavailable")
        try:
            check_api_key(request.headers, self._api_key)
            body = (
                (await request.read()).decode("utf-8", "replace") if request.can_read_body else ""
            )
            params = verify_signature(self._secret, request.rel_url.raw_query_string, body)
            check_timestamp(params, self._clock())
            self.on_market_event()
            answer = self._route(request.method, request.path, params)
        except ApiError as err:
            return web.json_response({"code": err.code, "msg": err.msg}, status=err.status)
        if fault == "5xx_after_place":
            return web.Response(status=503, text="Service Unavailable")
        return web.json_response(answer)

    def _route(self, method: str, path: str, params: dict[str, str]) -> Any:
        if path == "/fapi/v1/order":
            if method == "POST":
                return self._new(params).as_json()
            order = self._find(params)
            if method == "GET":
                return order.as_json()
            if method == "PUT":
                return self._modify(order, params).as_json()
            if not order.is_open:
                raise ApiError(400, -2011, "Unknown order sent.")
            order.status, order.update_ms = "CANCELED", self._clock()
            self._report(order, "CANCELED")
            return order.as_json()
        if path == "/fapi/v1/openOrders":
            return [o.as_json() for o in self.orders.values() if o.is_open]
        if path == "/fapi/v1/leverage":
            return self._leverage(params)
        if path == "/fapi/v2/positionRisk":
            return self._positions(params)
        return {"totalWalletBalance": f"{self.account.wallet:f}", "positions": self._positions({})}

    # ------------------------------------------------------------------ orders

    def _new(self, params: Mapping[str, str]) -> FuturesOrder:
        symbol = _required(params, "symbol")
        side = _required(params, "side")
        kind = _required(params, "type")
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        if kind not in ORDER_TYPES:
            raise ApiError(400, -1116, "Invalid orderType.")
        close_position = params.get("closePosition", "false") == "true"
        reduce_only = params.get("reduceOnly", "false") == "true"
        if close_position and kind not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            raise ApiError(400, -1106, "Parameter 'closePosition' sent when not required.")
        if close_position and params.get("quantity"):
            raise ApiError(400, -1106, "Parameter 'quantity' sent when not required.")
        if close_position and "reduceOnly" in params:
            raise ApiError(400, -1106, "Parameter 'reduceOnly' sent when not required.")
        qty = _ZERO if close_position else _decimal(params, "quantity")
        limit = kind == "LIMIT" or CONDITIONAL.get(kind, ("",))[0] == "LIMIT"
        price = _decimal(params, "price") if limit else None
        if not limit and params.get("price"):
            raise ApiError(400, -1106, "Parameter 'price' sent when not required.")
        stop = _decimal(params, "stopPrice") if kind in CONDITIONAL else None
        working_type = params.get("workingType") or "CONTRACT_PRICE"
        if working_type not in ("MARK_PRICE", "CONTRACT_PRICE"):
            raise ApiError(400, -1100, "Illegal characters found in parameter 'workingType'.")
        tif = params.get("timeInForce", "GTC") if limit else "GTC"
        if tif not in ("GTC", "IOC", "FOK", "GTX"):
            raise ApiError(400, -1115, "Invalid timeInForce.")
        coid = params.get("newClientOrderId") or f"sim-f-{len(self.orders) + 1}"
        if any(o.client_order_id == coid for o in self.orders.values()):
            raise ApiError(400, -4116, "ClientOrderId is duplicated.")
        bids, asks = self._levels(symbol)
        inst = f"BINANCE_USDM:{symbol}"
        mark = (bids[0][0] + asks[0][0]) / 2 if bids and asks else None
        try:
            if reduce_only:
                self.account.check_reduce_only(inst, Side(side), qty)
            elif mark is not None and not close_position:
                self.account.check_order(
                    inst, Side(side), qty, mark, {inst: mark}, min_liquidation_distance=_ZERO
                )
        except FuturesError as exc:
            code, msg = _REFUSALS.get(exc.reason, (-2010, str(exc)))
            raise ApiError(400, code, msg) from None
        if (
            tif == "GTX"
            and price is not None
            and kind == "LIMIT"
            and self._crossing(symbol, side, qty, price)
        ):
            raise ApiError(
                400,
                -5022,
                "Due to the order could not be executed as maker, the Post Only order will "
                "be rejected.",
            )
        order = FuturesOrder(
            next(self._ids), coid, symbol, side, kind, tif, qty, price, reduce_only,
            self._clock(), stop_price=stop, working_type=working_type,
            close_position=close_position,
        )  # fmt: skip
        if kind in CONDITIONAL:
            if self._reached(order):
                raise ApiError(400, -2021, "Order would immediately trigger.")
            self.orders[order.order_id] = order
            self._report(order, "NEW")
            return order  # held until the mark / last price reaches its stop
        self.orders[order.order_id] = order
        self._report(order, "NEW")
        self._work(order)
        return order

    def _work(self, order: FuturesOrder) -> None:
        """Execute a (triggered) order against the book: what crosses fills; a MARKET /
        IOC remainder and an unfilled FOK expire."""
        kind = order.working_as or order.type
        left = order.qty - order.executed
        fills = self._crossing(order.symbol, order.side, left, order.price)
        if order.time_in_force == "FOK" and sum((q for _, q in fills), _ZERO) < left:
            order.status = "EXPIRED"
            self._report(order, "EXPIRED")
            return
        self._fill(order, fills)
        if order.is_open and (kind == "MARKET" or order.time_in_force == "IOC"):
            order.status = "EXPIRED"
            self._report(order, "EXPIRED")

    def _trigger_price(self, order: FuturesOrder) -> Decimal | None:
        fn = self._mark_price if order.working_type == "MARK_PRICE" else self._last_price
        found = fn(order.symbol) if fn is not None else None
        if found is not None:
            return found
        bids, asks = self._levels(order.symbol)
        return (bids[0][0] + asks[0][0]) / 2 if bids and asks else None

    def _reached(self, order: FuturesOrder) -> bool:
        price, stop = self._trigger_price(order), order.stop_price
        if price is None or stop is None:
            return False
        rising = CONDITIONAL[order.type][1] == (order.side == "BUY")
        return price >= stop if rising else price <= stop

    def _trigger(self, order: FuturesOrder) -> None:
        """The stop was reached: work as MARKET / LIMIT; a close-position order takes the
        whole position then (nothing to close, or the wrong side: it expires), a
        reduce-only one that would no longer reduce expires."""
        order.working_as, order.update_ms = CONDITIONAL[order.type][0], self._clock()
        inst = f"BINANCE_USDM:{order.symbol}"
        held = self.account.positions.get(inst)
        qty = held.qty if held is not None else _ZERO
        if order.close_position:
            closes = (qty > 0 and order.side == "SELL") or (qty < 0 and order.side == "BUY")
            if not closes:
                order.status = "EXPIRED"
                self._report(order, "EXPIRED")
                return
            order.qty = abs(qty)
        elif order.reduce_only:
            try:
                self.account.check_reduce_only(inst, Side(order.side), order.qty)
            except FuturesError:
                order.status = "EXPIRED"
                self._report(order, "EXPIRED")
                return
        self._work(order)

    def _modify(self, order: FuturesOrder, params: Mapping[str, str]) -> FuturesOrder:
        """``PUT /fapi/v1/order``: a new price and quantity for an open LIMIT order."""
        if not order.is_open:
            raise ApiError(400, -2013, "Order does not exist.")
        if order.type != "LIMIT":
            raise ApiError(400, -4145, f"Modification of a {order.type} order is not "
                           "supported: only LIMIT orders can be modified.")  # fmt: skip
        if _required(params, "side") != order.side:
            raise ApiError(400, -1117, "Invalid side.")
        qty, price = _decimal(params, "quantity"), _decimal(params, "price")
        if qty == order.qty and price == order.price:
            raise ApiError(400, -5027, "No need to modify the order.")
        order.update_ms = self._clock()
        if qty <= order.executed:
            order.status = "CANCELED"
            self._report(order, "CANCELED")
            return order
        if order.time_in_force == "GTX" and self._crossing(order.symbol, order.side, qty, price):
            order.status = "CANCELED"
            self._report(order, "CANCELED")
            return order
        order.qty, order.price = qty, price
        self._work(order)
        return order

    def _match(self, order: FuturesOrder) -> None:
        left = order.qty - order.executed
        self._fill(order, self._crossing(order.symbol, order.side, left, order.price))

    def _fill(self, order: FuturesOrder, fills: list[Level]) -> None:
        inst = f"BINANCE_USDM:{order.symbol}"
        for price, qty in fills:
            fee = price * qty * self.fee_rate
            realized = self.account.fill(inst, Side(order.side), qty, price, fee)
            order.executed += qty
            order.cum_quote += price * qty
            order.fills.append((price, qty))
            order.status = "FILLED" if order.executed == order.qty else "PARTIALLY_FILLED"
            order.update_ms = self._clock()
            self._report(order, "TRADE", (next(self._trade_ids), (price, qty), fee, realized))
            self.listen_keys.emit(self.account_update(order.symbol, "ORDER"))

    def _report(
        self,
        order: FuturesOrder,
        exec_type: str,
        fill: tuple[int, Level, Decimal, Decimal] | None = None,
    ) -> None:
        self.listen_keys.emit(order.trade_update(exec_type, self._clock(), fill))

    def account_update(self, symbol: str, reason: str) -> dict[str, Any]:
        """``ACCOUNT_UPDATE``: the wallet and ``symbol``'s position now."""
        inst = f"BINANCE_USDM:{symbol}"
        pos = self.account.position(inst)
        bids, asks = self._book(symbol)
        mark = (bids[0][0] + asks[0][0]) / 2 if bids and asks else pos.entry_price
        wallet = f"{self.account.wallet:f}"
        now = self._clock()
        return {
            "e": "ACCOUNT_UPDATE",
            "E": now,
            "T": now,
            "a": {
                "m": reason,
                "B": [{"a": "USDT", "wb": wallet, "cw": wallet, "bc": "0"}],
                "P": [
                    {
                        "s": symbol,
                        "pa": f"{pos.qty:f}",
                        "ep": f"{pos.entry_price:f}",
                        "bep": f"{pos.entry_price:f}",
                        "cr": f"{pos.realized_pnl:f}",
                        "up": f"{pos.unrealized_pnl(mark):f}",
                        "mt": pos.margin_mode.value.lower(),
                        "iw": f"{pos.isolated_margin:f}",
                        "ps": "BOTH",
                    }
                ],
            },
        }

    def _crossing(self, symbol: str, side: str, qty: Decimal, limit: Decimal | None) -> list[Level]:
        bids, asks = self._levels(symbol)
        out, left = [], qty
        for price, shown in asks if side == "BUY" else bids:
            if left <= 0 or (
                limit is not None and (price > limit if side == "BUY" else price < limit)
            ):
                break
            take = min(shown, left)
            out.append((price, take))
            left -= take
        return out

    def _find(self, params: Mapping[str, str]) -> FuturesOrder:
        coid = params.get("origClientOrderId")
        oid = params.get("orderId")
        for order in reversed(self.orders.values()):
            if (oid is not None and str(order.order_id) == oid) or (
                oid is None and order.client_order_id == coid
            ):
                return order
        raise ApiError(400, -2013, "Order does not exist.")

    def _levels(self, symbol: str) -> tuple[Sequence[Level], Sequence[Level]]:
        try:
            return self._book(symbol)
        except Exception:
            raise ApiError(400, -1121, "Invalid symbol.") from None

    def _leverage(self, params: Mapping[str, str]) -> dict[str, Any]:
        symbol = _required(params, "symbol")
        raw = params.get("leverage", "")
        if not raw.isdigit():
            raise ApiError(400, -1102, "Mandatory parameter 'leverage' was not sent.")
        try:
            self.account.position(f"BINANCE_USDM:{symbol}", leverage=int(raw))
        except FuturesError:
            raise ApiError(400, -4028, f"Leverage {raw} is not valid") from None
        return {"leverage": int(raw), "maxNotionalValue": "50000", "symbol": symbol}

    def _positions(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        rows = []
        for inst, pos in self.account.positions.items():
            symbol = inst.partition(":")[2]
            if params.get("symbol") and params["symbol"] != symbol:
                continue
            bids, asks = self._levels(symbol)
            mark = (bids[0][0] + asks[0][0]) / 2 if bids and asks else pos.entry_price
            rows.append(
                {
                    "symbol": symbol,
                    "positionAmt": f"{pos.qty:f}",
                    "entryPrice": f"{pos.entry_price:f}",
                    "markPrice": f"{mark:f}",
                    "unRealizedProfit": f"{pos.unrealized_pnl(mark):f}",
                    "leverage": str(pos.leverage),
                    "marginType": pos.margin_mode.value.lower(),
                    "positionSide": "BOTH",
                }
            )
        return rows


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise ApiError(
            400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        )
    return value


def _decimal(params: Mapping[str, str], name: str) -> Decimal:
    raw = _required(params, name)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.") from None
    if not value.is_finite() or value <= 0:
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.")
    return value


def add_usdm_trading_routes(
    app: web.Application, book: BookFn, api_key: str, api_secret: str, **options: Any
) -> UsdmTradingSimulator:
    """Mount the futures trading endpoints; ``options`` go to :class:`UsdmTradingSimulator`."""
    sim = UsdmTradingSimulator(book, api_key, api_secret, **options)
    for method in ("POST", "GET", "DELETE", "PUT"):
        app.router.add_route(method, "/fapi/v1/order", sim.dispatch)
    app.router.add_get("/fapi/v1/openOrders", sim.dispatch)
    app.router.add_post("/fapi/v1/leverage", sim.dispatch)
    app.router.add_get("/fapi/v2/positionRisk", sim.dispatch)
    app.router.add_get("/fapi/v2/account", sim.dispatch)
    for method in ("POST", "PUT", "DELETE"):
        app.router.add_route(method, "/fapi/v1/listenKey", sim.handle_listen_key)
    return sim


def usdm_trading_setup(
    api_key: str, api_secret: str, **options: Any
) -> Callable[[web.Application, Any], None]:
    """A ``setup`` hook for the simulator server: futures trading on the simulated book,
    with the exchange's clock; resting orders fill as the market moves."""

    def hook(app: web.Application, market: Any) -> None:
        from algostream.sim.binance_rest import EXCHANGE_KEY
        from algostream.sim.binance_usdm import mark_and_index

        opts = dict(options)
        exchange = app.get(EXCHANGE_KEY)
        if exchange is not None:
            opts.setdefault("clock_ms", exchange.now_ms)
        opts.setdefault("mark_price", lambda symbol: mark_and_index(market, symbol)[0])
        opts.setdefault("last_price", getattr(market, "last_trade_price", None))
        sim = add_usdm_trading_routes(app, market.book, api_key, api_secret, **opts)
        app[USDM_SIMULATOR_KEY] = sim
        if exchange is not None:
            sim.listen_keys.publish = exchange.usdm.send
            exchange.listen_keys.append(sim.listen_keys)
            exchange.market_listeners.append(sim.on_market_event)

    return hook
