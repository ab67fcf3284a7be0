"""Simulated Coinbase Advanced Trade order entry (``/api/v3/brokerage/orders...``).

Endpoints: ``POST /api/v3/brokerage/orders`` (create), ``POST .../orders/batch_cancel``,
``POST .../orders/edit`` (a new ``price`` / ``size`` for an open ``limit_limit_gtc``
order; refusals are ``{"success": false, "errors": [{"edit_failure_reason": ...}]}``:
ORDER_NOT_FOUND, ONLY_OPEN_ORDERS_CAN_BE_EDITED, ONLY_LIMIT_ORDER_EDITS_SUPPORTED,
CANNOT_EDIT_TO_BELOW_FILLED_SIZE, INVALID_EDITED_PRICE / _SIZE,
EDIT_REQUEST_EQUAL_TO_ORIGINAL_REQUEST, COMMANDER_REJECTED_EDIT_ORDER),
``GET .../orders/historical/{order_id}``, ``GET .../orders/historical/batch`` (list, with
``product_ids``, ``order_status``, ``limit`` and ``cursor``), ``GET
/api/v3/brokerage/products/{product_id}`` (``price_increment``, ``base_increment``: the
engine's tick and step; an unknown product is 404 ``NOT_FOUND``).

Every request must carry ``Authorization: Bearer <JWT>`` as Coinbase documents for CDP
keys: ES256 signed by the key's EC private key (verified with its public key), header
``kid`` = the key name and a ``nonce``, claims ``sub`` = key name, ``iss`` = ``cdp``,
``uri`` = ``"METHOD host/path"`` of this very request, ``nbf``/``exp`` around the server
clock and at most 120 s apart. Anything else is answered as Coinbase does: HTTP 401 with
the body ``Unauthorized``.

Orders are matched by the Binance trading simulator's engine
(:class:`~algostream.sim.trading.TradingSimulator`: the same book, account and fault
queue, so ``inject("5xx_after_place")`` and friends work here too). Configurations:
``market_market_ioc`` (``base_size``), ``limit_limit_gtc`` (``post_only`` refused with
``INVALID_LIMIT_PRICE_POST_ONLY`` when it would take), ``sor_limit_ioc``,
``limit_limit_fok`` and ``stop_limit_stop_limit_gtc`` (``STOP_DIRECTION_STOP_UP`` /
``_DOWN``). A repeated ``client_order_id`` creates nothing and answers with the existing
order, as documented. A refusal is HTTP 200 ``{"success": false, "error_response": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import jwt
import orjson
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from algostream.sim.binance_errors import (
    INSUFFICIENT_BALANCE,
    WOULD_TAKE,
    WOULD_TRIGGER,
    ApiError,
)
from algostream.sim.orders import MARKET_TYPES, STOP_TYPES, SimOrder, p8
from algostream.sim.trading import FaultKind, TradingSimulator

BASE = "/api/v3/brokerage/orders"
PRODUCTS = "/api/v3/brokerage/products"
JWT_MAX_LIFETIME_S = 120
CLOCK_LEEWAY_S = 5
COINBASE_TRADING_KEY: web.AppKey[CoinbaseTradingSimulator] = web.AppKey("coinbase_trading")
_ZERO = Decimal(0)
_TIF = {"GTC": "GOOD_UNTIL_CANCELLED", "IOC": "IMMEDIATE_OR_CANCEL", "FOK": "FILL_OR_KILL"}
_STATUS = {
    "NEW": "OPEN",
    "PARTIALLY_FILLED": "OPEN",
    "FILLED": "FILLED",
    "CANCELED": "CANCELLED",
    "EXPIRED": "EXPIRED",
    "EXPIRED_IN_MATCH": "EXPIRED",
    "REJECTED": "FAILED",
}


class BadRequest(Exception):
    """A malformed request: 400 ``INVALID_ARGUMENT`` naming the field and value."""


def _unauthorized() -> web.Response:
    return web.Response(status=401, text="Unauthorized\n")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class CoinbaseTradingSimulator:
    """Coinbase order entry over a :class:`TradingSimulator` engine (see module docs).

    ``products`` maps product ids (``BTC-USD``) to the engine's symbols (``BTCUSD``)."""

    def __init__(
        self,
        engine: TradingSimulator,
        key_name: str,
        public_key_pem: str | bytes,
        products: Mapping[str, str],
    ) -> None:
        self.engine = engine
        self.key_name = key_name
        key = load_pem_public_key(
            public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
        )
        if not isinstance(key, EllipticCurvePublicKey):
            raise ValueError("public_key_pem: expected an EC (P-256) public key")
        self._public_key = key
        self.products = dict(products)
        self._symbols = {s: p for p, s in self.products.items()}
        self._ids: dict[int, str] = {}
        self._engine_ids: dict[str, int] = {}
        self.refused_auth: list[str] = []  # why each refused JWT was refused (tests)
        self.nonces: set[str] = set()

    # ------------------------------------------------------------------ auth

    def verify(self, request: web.Request) -> str | None:
        """``None`` when the bearer JWT is valid for this request, else why not."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return "no bearer token"
        token = header[len("Bearer ") :]
        try:
            head = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=["ES256"],
                options={"verify_exp": False, "verify_nbf": False, "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            return f"bad JWT: {type(exc).__name__}"
        now = self.engine.server_time_ms() // 1000
        uri = f"{request.method} {request.host}{request.path}"
        problems = [
            (head.get("kid") != self.key_name, "kid is not the key name"),
            (not head.get("nonce"), "no nonce"),
            (claims.get("sub") != self.key_name, "sub is not the key name"),
            (claims.get("iss") != "cdp", "iss is not cdp"),
            (claims.get("uri") != uri, f"uri is not {uri!r}"),
            (not isinstance(claims.get("nbf"), int), "nbf missing"),
            (not isinstance(claims.get("exp"), int), "exp missing"),
        ]
        for bad, why in problems:
            if bad:
                return why
        nbf, exp = int(claims["nbf"]), int(claims["exp"])
        if nbf > now + CLOCK_LEEWAY_S:
            return "not valid yet (nbf)"
        if exp <= now - CLOCK_LEEWAY_S:
            return "expired (exp)"
        if exp - nbf > JWT_MAX_LIFETIME_S:
            return f"lifetime {exp - nbf}s > {JWT_MAX_LIFETIME_S}s"
        self.nonces.add(str(head["nonce"]))
        return None

    # ------------------------------------------------------------------ pipeline

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """Faults, JWT, then the endpoint (one request)."""
        engine = self.engine
        engine.requests.append((request.method, request.path))
        fault = engine._next_fault()
        if fault and fault.kind is FaultKind.RATE_LIMIT:
            return _json({"error": "RATE_LIMIT_EXCEEDED", "message": "Too many requests"}, 429)
        if fault and fault.kind is FaultKind.ERROR_BEFORE:
            return web.Response(status=fault.status, text="Internal error; unknown status")
        why = self.verify(request)
        if why is not None:
            self.refused_auth.append(why)
            return _unauthorized()
        engine._match_resting()
        try:
            answer = await self._route(request)
        except BadRequest as exc:
            msg = str(exc)
            return _json({"error": "INVALID_ARGUMENT", "error_details": msg, "message": msg}, 400)
        except LookupError as exc:
            msg = str(exc.args[0]) if exc.args else "not found"
            return _json({"error": "NOT_FOUND", "error_details": msg, "message": msg}, 404)
        if fault and fault.kind is FaultKind.ERROR_AFTER_PLACE:
            return web.Response(status=fault.status, text="Internal error; unknown status")
        if fault and fault.kind is FaultKind.TIMEOUT:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(engine._release.wait(), engine.hang_s)
        return _json(answer)

    async def _route(self, request: web.Request) -> Any:
        path = request.path
        if request.method == "POST" and path == BASE:
            return self.create(await _body(request))
        if request.method == "POST" and path == f"{BASE}/batch_cancel":
            return self.batch_cancel(await _body(request))
        if request.method == "POST" and path == f"{BASE}/edit":
            return self.edit(await _body(request))
        if request.method == "GET" and path == f"{BASE}/historical/batch":
            return self.list(request.query)
        if request.method == "GET" and path.startswith(f"{PRODUCTS}/"):
            return self.product(request.match_info.get("product_id", ""))
        order_id = request.match_info.get("order_id", "")
        return {"order": self.order_json(self._order(order_id))}

    def product(self, product_id: str) -> dict[str, Any]:
        """``GET /products/{product_id}``: the fields order entry uses (the price tick
        ``price_increment``, the size step ``base_increment``)."""
        symbol = self.products.get(product_id)
        if symbol is None:
            raise LookupError(f"product_id={product_id!r} is not traded")
        flt = self.engine.filters.get(symbol)
        tick = getattr(flt, "tick_size", None) or Decimal("0.01")
        step = getattr(flt, "step_size", None) or Decimal("0.00000001")
        return {
            "product_id": product_id,
            "price_increment": format(tick.normalize(), "f"),
            "base_increment": format(step.normalize(), "f"),
            "quote_increment": format(tick.normalize(), "f"),
            "status": "online",
        }

    # ------------------------------------------------------------------ endpoints

    def create(self, body: Any) -> dict[str, Any]:
        """``POST /orders``: success or a ``success: false`` refusal (HTTP 200)."""
        coid = _field(body, "client_order_id")
        product = _field(body, "product_id")
        side = _field(body, "side")
        if side not in ("BUY", "SELL"):
            raise BadRequest(f"side={side!r}: expected BUY or SELL")
        existing = next((o for o in self.engine.orders.values() if o.client_order_id == coid), None)
        if existing is not None:  # documented: nothing new, the existing order returned
            return self._success(existing, body)
        symbol = self.products.get(product)
        if symbol is None:
            return _failure("INVALID_PRODUCT_ID", f"product_id={product!r} is not traded")
        params = {"symbol": symbol, "side": side, "newClientOrderId": coid}
        params |= _binance_params(body.get("order_configuration"), side)
        params["newOrderRespType"] = "FULL"
        try:
            self.engine._new_order(params)
        except ApiError as exc:
            return _failure(*_failure_reason(exc))
        order = next(o for o in self.engine.orders.values() if o.client_order_id == coid)
        return self._success(order, body)

    def batch_cancel(self, body: Any) -> dict[str, Any]:
        """``POST /orders/batch_cancel`` with ``{"order_ids": [...]}`` (1..100)."""
        ids = body.get("order_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            raise BadRequest(f"order_ids={ids!r}: expected a list of 1..100 order ids")
        results = []
        for order_id in ids:
            order_id = str(order_id)
            engine_id = self._engine_ids.get(order_id)
            order = self.engine.orders.get(engine_id) if engine_id is not None else None
            if order is None:
                reason, ok = "UNKNOWN_CANCEL_ORDER", False
            elif not order.is_open:
                reason, ok = "INVALID_CANCEL_REQUEST", False
            else:
                self.engine._cancel({"symbol": order.symbol, "orderId": str(order.order_id)})
                reason, ok = "UNKNOWN_CANCEL_FAILURE_REASON", True
            results.append({"success": ok, "failure_reason": reason, "order_id": order_id})
        return {"results": results}

    def edit(self, body: Any) -> dict[str, Any]:
        """``POST /orders/edit`` with ``{"order_id", "price", "size"}``."""
        order_id = _field(body, "order_id")
        engine_id = self._engine_ids.get(order_id)
        order = self.engine.orders.get(engine_id) if engine_id is not None else None
        if order is None:
            return _edit_failure("ORDER_NOT_FOUND")
        if not order.is_open:
            return _edit_failure("ONLY_OPEN_ORDERS_CAN_BE_EDITED")
        if order.type not in ("LIMIT", "LIMIT_MAKER") or order.time_in_force != "GTC":
            return _edit_failure("ONLY_LIMIT_ORDER_EDITS_SUPPORTED")
        try:
            price = Decimal(str(body.get("price") or order.price))
            size = Decimal(str(body.get("size") or order.orig_qty))
        except InvalidOperation:
            return _edit_failure("INVALID_EDITED_PRICE")
        if not price.is_finite() or price <= 0:
            return _edit_failure("INVALID_EDITED_PRICE")
        if not size.is_finite() or size <= 0:
            return _edit_failure("INVALID_EDITED_SIZE")
        if size <= order.executed_qty:
            return _edit_failure("CANNOT_EDIT_TO_BELOW_FILLED_SIZE")
        if price == order.price and size == order.orig_qty:
            return _edit_failure("EDIT_REQUEST_EQUAL_TO_ORIGINAL_REQUEST")
        try:
            self.engine.edit(order, price, size)
        except ApiError:
            return _edit_failure("COMMANDER_REJECTED_EDIT_ORDER")
        return {"success": True, "errors": []}

    def list(self, query: Mapping[str, str]) -> dict[str, Any]:
        """``GET /orders/historical/batch``: newest first, ``limit`` per page, ``cursor``."""
        products = set(_all(query, "product_ids"))
        statuses = set(_all(query, "order_status"))
        try:
            limit = max(1, min(int(query.get("limit", "100")), 1000))
            start = int(query.get("cursor") or "0")
        except ValueError:
            raise BadRequest(f"limit/cursor: not integers ({dict(query)!r})") from None
        rows = [
            self.order_json(o)
            for o in reversed(self.engine.orders.values())
            if o.symbol in self._symbols
        ]
        rows = [
            r
            for r in rows
            if (not products or r["product_id"] in products)
            and (not statuses or r["status"] in statuses)
        ]
        page, more = rows[start : start + limit], start + limit < len(rows)
        return {
            "orders": page,
            "sequence": "0",
            "has_next": more,
            "cursor": str(start + limit) if more else "",
        }

    # ------------------------------------------------------------------ shapes

    def coinbase_id(self, order: SimOrder) -> str:
        """The order's Coinbase ``order_id`` (a UUID, stable)."""
        known = self._ids.get(order.order_id)
        if known is None:
            known = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sim-coinbase/{order.order_id}"))
            self._ids[order.order_id] = known
            self._engine_ids[known] = order.order_id
        return known

    def _order(self, order_id: str) -> SimOrder:
        engine_id = self._engine_ids.get(order_id)
        if engine_id is None or engine_id not in self.engine.orders:
            raise LookupError("order with this orderID was not found")
        return self.engine.orders[engine_id]

    def _success(self, order: SimOrder, body: Any) -> dict[str, Any]:
        return {
            "success": True,
            "success_response": {
                "order_id": self.coinbase_id(order),
                "product_id": self._symbols.get(order.symbol, order.symbol),
                "side": order.side,
                "client_order_id": order.client_order_id,
            },
            "order_configuration": body.get("order_configuration"),
        }

    def order_json(self, order: SimOrder) -> dict[str, Any]:
        """The Coinbase order object of an engine order."""
        filled, value = order.executed_qty, order.cum_quote
        fees = (value * self.engine.fee_rate).quantize(Decimal("0.00000001"))
        stop = order.type in STOP_TYPES
        return {
            "order_id": self.coinbase_id(order),
            "product_id": self._symbols.get(order.symbol, order.symbol),
            "user_id": "sim-user",
            "order_configuration": _configuration(order),
            "side": order.side,
            "client_order_id": order.client_order_id,
            "status": _STATUS.get(order.status, "UNKNOWN_ORDER_STATUS"),
            "time_in_force": _TIF.get(order.time_in_force, "GOOD_UNTIL_CANCELLED"),
            "created_time": _rfc3339(order.time_ms),
            "completion_percentage": p8(filled / order.orig_qty * 100 if order.orig_qty else _ZERO),
            "filled_size": p8(filled),
            "average_filled_price": p8(value / filled if filled else _ZERO),
            "number_of_fills": str(len(order.fills)),
            "filled_value": p8(value),
            "pending_cancel": False,
            "size_in_quote": False,
            "total_fees": p8(fees),
            "size_inclusive_of_fees": False,
            "total_value_after_fees": p8(value + fees if order.side == "BUY" else value - fees),
            "trigger_status": (
                ("STOP_TRIGGERED" if order.working else "STOP_PENDING")
                if stop
                else "INVALID_ORDER_TYPE"
            ),
            "order_type": "STOP_LIMIT"
            if stop
            else ("MARKET" if order.type == "MARKET" else "LIMIT"),
            "reject_reason": "",
            "settled": not order.is_open,
            "product_type": "SPOT",
            "reject_message": "",
            "cancel_message": "User requested cancel" if order.status == "CANCELED" else "",
            "order_placement_source": "RETAIL_ADVANCED",
            "outstanding_hold_amount": "0",
            "is_liquidation": False,
            "last_fill_time": _rfc3339(order.update_ms) if order.fills else None,
        }


def _field(body: Any, name: str) -> str:
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name}={value!r}: required, a non-empty string")
    return value


def _all(query: Mapping[str, str], name: str) -> list[str]:
    getall: Callable[[str, list[str]], list[str]] | None = getattr(query, "getall", None)
    if getall is not None:
        return list(getall(name, []))
    return [query[name]] if name in query else []


def _decimal(cfg: Mapping[str, Any], name: str, where: str) -> str:
    value = cfg.get(name)
    try:
        if not isinstance(value, str) or Decimal(value) <= 0:
            raise InvalidOperation
    except InvalidOperation:
        raise BadRequest(f"{where}.{name}={value!r}: expected a positive decimal string") from None
    return value


def _binance_params(configuration: Any, side: str) -> dict[str, str]:
    """The engine's parameters for one Coinbase ``order_configuration``."""
    if not isinstance(configuration, dict) or len(configuration) != 1:
        raise BadRequest(f"order_configuration={configuration!r}: expected exactly one type")
    (kind, cfg), where = next(iter(configuration.items())), "order_configuration"
    if not isinstance(cfg, dict):
        raise BadRequest(f"{where}.{kind}={cfg!r}: expected an object")
    where = f"{where}.{kind}"
    if kind == "market_market_ioc":
        if "quote_size" in cfg:
            return {"type": "MARKET", "quoteOrderQty": _decimal(cfg, "quote_size", where)}
        return {"type": "MARKET", "quantity": _decimal(cfg, "base_size", where)}
    size, price = _decimal(cfg, "base_size", where), _decimal(cfg, "limit_price", where)
    if kind == "limit_limit_gtc":
        if cfg.get("post_only") is True:
            return {"type": "LIMIT_MAKER", "quantity": size, "price": price}
        return {"type": "LIMIT", "timeInForce": "GTC", "quantity": size, "price": price}
    if kind in ("sor_limit_ioc", "limit_limit_fok"):
        tif = "IOC" if kind == "sor_limit_ioc" else "FOK"
        return {"type": "LIMIT", "timeInForce": tif, "quantity": size, "price": price}
    if kind == "stop_limit_stop_limit_gtc":
        stop = _decimal(cfg, "stop_price", where)
        direction = cfg.get("stop_direction")
        if direction not in ("STOP_DIRECTION_STOP_UP", "STOP_DIRECTION_STOP_DOWN"):
            raise BadRequest(f"{where}.stop_direction={direction!r}: STOP_DIRECTION_STOP_UP/DOWN")
        rising = direction == "STOP_DIRECTION_STOP_UP"
        # the engine's STOP_LOSS_LIMIT triggers rising for a BUY, falling for a SELL
        kind_ = "STOP_LOSS_LIMIT" if rising == (side == "BUY") else "TAKE_PROFIT_LIMIT"
        return {
            "type": kind_,
            "timeInForce": "GTC",
            "quantity": size,
            "price": price,
            "stopPrice": stop,
        }
    raise BadRequest(f"order_configuration.{kind}: not a configuration this venue supports")


def _configuration(order: SimOrder) -> dict[str, Any]:
    size, price = p8(order.orig_qty), p8(order.price)
    if order.type in MARKET_TYPES:  # (a Binance stop-market: not a Coinbase order)
        return {"market_market_ioc": {"base_size": size}}
    if order.type in STOP_TYPES:
        rising = (order.type == "STOP_LOSS_LIMIT") == (order.side == "BUY")
        return {
            "stop_limit_stop_limit_gtc": {
                "base_size": size,
                "limit_price": price,
                "stop_price": p8(order.stop_price),
                "stop_direction": "STOP_DIRECTION_STOP_UP"
                if rising
                else "STOP_DIRECTION_STOP_DOWN",
            }
        }
    if order.time_in_force == "IOC":
        return {"sor_limit_ioc": {"base_size": size, "limit_price": price}}
    if order.time_in_force == "FOK":
        return {"limit_limit_fok": {"base_size": size, "limit_price": price}}
    post_only = order.type == "LIMIT_MAKER"
    return {"limit_limit_gtc": {"base_size": size, "limit_price": price, "post_only": post_only}}


def _failure(error: str, message: str) -> dict[str, Any]:
    return {
        "success": False,
        "failure_reason": "UNKNOWN_FAILURE_REASON",
        "order_id": "",
        "error_response": {
            "error": error,
            "message": message,
            "error_details": "",
            "preview_failure_reason": f"PREVIEW_{error}",
        },
    }


def _edit_failure(reason: str) -> dict[str, Any]:
    return {
        "success": False,
        "errors": [
            {
                "edit_failure_reason": reason,
                "preview_failure_reason": "UNKNOWN_PREVIEW_FAILURE_REASON",
            }
        ],
    }


def _failure_reason(exc: ApiError) -> tuple[str, str]:
    if exc.msg == WOULD_TAKE:
        return "INVALID_LIMIT_PRICE_POST_ONLY", "post-only order would take liquidity"
    if exc.msg == WOULD_TRIGGER:
        return "INVALID_STOP_PRICE", "stop price would trigger immediately"
    if exc.msg == INSUFFICIENT_BALANCE:
        return "INSUFFICIENT_FUND", "Insufficient balance in source account"
    if exc.code == -1013 and "PRICE_FILTER" in exc.msg:  # a price off the product's tick
        return "INVALID_PRICE_PRECISION", exc.msg
    if exc.code == -1013:
        return "INVALID_SIZE_PRECISION", exc.msg
    return "UNKNOWN_FAILURE_REASON", exc.msg


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise BadRequest(f"body={raw[:80]!r}: not JSON") from None


def add_coinbase_trading_routes(
    app: web.Application,
    engine: TradingSimulator,
    key_name: str,
    public_key_pem: str | bytes,
    products: Mapping[str, str],
) -> CoinbaseTradingSimulator:
    """Mount the order entry endpoints on ``app`` (``app[COINBASE_TRADING_KEY]``)."""
    sim = CoinbaseTradingSimulator(engine, key_name, public_key_pem, products)
    app.router.add_post(BASE, sim.dispatch)
    app.router.add_post(f"{BASE}/batch_cancel", sim.dispatch)
    app.router.add_post(f"{BASE}/edit", sim.dispatch)
    app.router.add_get(f"{BASE}/historical/batch", sim.dispatch)
    app.router.add_get(BASE + "/historical/{order_id}", sim.dispatch)
    app.router.add_get(PRODUCTS + "/{product_id}", sim.dispatch)

    async def _release_on_shutdown(_: web.Application) -> None:
        engine.release()

    app.on_shutdown.append(_release_on_shutdown)
    app[COINBASE_TRADING_KEY] = sim
    return sim


def coinbase_trading_setup(
    key_name: str, public_key_pem: str | bytes, **options: Any
) -> Callable[[web.Application, Any], None]:
    """A ``setup`` hook for the simulator server: Coinbase order entry on the simulated
    market (product ids from each symbol's spec; ``options`` go to the engine)."""

    def hook(app: web.Application, market: Any) -> None:
        from algostream.sim.binance_rest import EXCHANGE_KEY

        filters = {s: market.spec(s) for s in market.symbols}
        products = {market.spec(s).coinbase_product: s for s in market.symbols}
        opts = dict(options)
        exchange = app.get(EXCHANGE_KEY)
        if exchange is not None:
            opts.setdefault("clock_ms", exchange.now_ms)
        opts.setdefault("last_price", getattr(market, "last_trade_price", None))
        engine = TradingSimulator(market.book, "unused", "unused", filters, **opts)
        add_coinbase_trading_routes(app, engine, key_name, public_key_pem, products)
        if exchange is not None:
            exchange.market_listeners.append(engine.on_market_event)

    return hook


def public_key_of(private_key_pem: str) -> str:
    """The PEM public key of an EC private key (the simulator checks JWTs with it)."""
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_private_key,
    )

    key = load_pem_private_key(private_key_pem.replace("\\n", "\n").encode(), password=None)
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
