"""Async Coinbase Advanced Trade REST client: JWT (ES256) auth, orders, safe retries.

* Auth (Coinbase's documented CDP key scheme): every request carries
  ``Authorization: Bearer <JWT>``, a JWT signed with the key's EC P-256 private key
  (ES256); header ``kid`` = the key name (``organizations/{org}/apiKeys/{id}``) and a
  random ``nonce``; claims ``sub`` = key name, ``iss`` = ``"cdp"``, ``nbf`` = now,
  ``exp`` = now + 120 s and ``uri`` = ``"METHOD host/path"`` (no query string). A new
  JWT per request. A refused JWT is HTTP 401: :class:`CoinbaseAuthError`.
* Keys come from the environment only (:meth:`CoinbaseCredentials.from_env`:
  ``ALGOSTREAM_COINBASE_KEY_NAME`` and ``ALGOSTREAM_COINBASE_PRIVATE_KEY``, or their
  ``*_FILE`` owner-only files); they are :class:`~pydantic.SecretStr`, masked in every
  repr, and never part of an error message or log line.
* Orders: ``POST /api/v3/brokerage/orders`` (create), ``POST .../orders/batch_cancel``,
  ``POST .../orders/edit`` (a GTC limit order's new price / size),
  ``GET .../orders/historical/{order_id}``, ``GET .../orders/historical/batch`` (list).
* Retries, as the Binance client's (:mod:`.binance_client`): reads are retried on
  timeouts and 5xx, 429 honours ``Retry-After``. A new order whose outcome is unknown
  (timeout, 5xx, connection error) is first **looked up by client order id**; it is sent
  again only when the venue does not have it (and Coinbase itself answers a repeated
  ``client_order_id`` with the existing order, never a second one). A refusal
  (``success: false``) raises :class:`CoinbaseRejectedError` at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import jwt
from aiolimiter import AsyncLimiter
from pydantic import BaseModel, ConfigDict, SecretStr

from algostream.config import _read_secret
from algostream.execution.binance_client import format_decimal
from algostream.execution.errors import (
    CoinbaseAuthError,
    CoinbaseError,
    CoinbaseRateLimitedError,
    CoinbaseRejectedError,
    ExecutionError,
    OrderStatusUnknownError,
    TransientError,
)
from algostream.execution.reconcile import VenueOrder
from algostream.execution.retry import RetryPolicy, Sleep, with_retries
from algostream.model.enums import OrderStatus, Side

log = logging.getLogger(__name__)

ORDERS_PATH = "/api/v3/brokerage/orders"
BATCH_CANCEL_PATH = "/api/v3/brokerage/orders/batch_cancel"
EDIT_PATH = "/api/v3/brokerage/orders/edit"
HISTORICAL_PATH = "/api/v3/brokerage/orders/historical"
LIST_PATH = "/api/v3/brokerage/orders/historical/batch"
PRODUCTS_PATH = "/api/v3/brokerage/products"
JWT_LIFETIME_S = 120
JWT_ISSUER = "cdp"
#: Coinbase order status -> lifecycle status
COINBASE_STATUS: Mapping[str, OrderStatus] = {
    "PENDING": OrderStatus.ACCEPTED,
    "QUEUED": OrderStatus.ACCEPTED,
    "OPEN": OrderStatus.ACCEPTED,
    "CANCEL_QUEUED": OrderStatus.ACCEPTED,
    "FILLED": OrderStatus.FILLED,
    "CANCELLED": OrderStatus.CANCELLED,
    "EXPIRED": OrderStatus.EXPIRED,
    "FAILED": OrderStatus.REJECTED,
}


class CoinbaseCredentials(BaseModel):
    """A CDP API key: its name and EC private key (PEM); masked in every repr and dump."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    key_name: SecretStr
    private_key: SecretStr

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CoinbaseCredentials:
        """``ALGOSTREAM_COINBASE_KEY_NAME`` / ``ALGOSTREAM_COINBASE_PRIVATE_KEY`` (or
        ``*_FILE``, readable by its owner only); :class:`ExecutionError` names what is
        missing, never a value."""
        import os

        source = os.environ if env is None else env
        name = _read_secret(source, "coinbase_key_name")
        key = _read_secret(source, "coinbase_private_key")
        missing = [
            v
            for v, got in (
                ("ALGOSTREAM_COINBASE_KEY_NAME", name),
                ("ALGOSTREAM_COINBASE_PRIVATE_KEY", key),
            )
            if not got
        ]
        if missing or name is None or key is None:
            raise ExecutionError(f"coinbase credentials: {', '.join(missing)} not set")
        return cls(key_name=SecretStr(name), private_key=SecretStr(key.replace("\\n", "\n")))


def build_jwt(
    credentials: CoinbaseCredentials, method: str, host: str, path: str, now_s: int
) -> str:
    """The bearer JWT of one request (``uri`` = ``"METHOD host/path"``, 120 s lifetime)."""
    name = credentials.key_name.get_secret_value()
    claims = {
        "sub": name,
        "iss": JWT_ISSUER,
        "nbf": now_s,
        "exp": now_s + JWT_LIFETIME_S,
        "uri": f"{method.upper()} {host}{path}",
    }
    headers = {"kid": name, "nonce": secrets.token_hex(16)}
    try:
        return jwt.encode(
            claims,
            credentials.private_key.get_secret_value(),
            algorithm="ES256",
            headers=headers,
        )
    except (ValueError, TypeError, jwt.PyJWTError) as exc:  # never echo the key
        raise ExecutionError(
            f"coinbase private key: not a usable EC P-256 PEM key ({type(exc).__name__})"
        ) from None


@dataclass(frozen=True)
class CoinbaseNewOrder:
    """One ``POST /api/v3/brokerage/orders``. ``kind`` is MARKET, LIMIT or STOP_LIMIT;
    ``time_in_force`` GTC, IOC or FOK (LIMIT); ``stop_direction`` STOP_UP / STOP_DOWN."""

    product_id: str
    side: Side
    kind: str
    base_size: Decimal
    client_order_id: str
    limit_price: Decimal | None = None
    time_in_force: str = "GTC"
    post_only: bool = False
    stop_price: Decimal | None = None
    stop_direction: str | None = None

    def configuration(self) -> dict[str, Any]:
        """The ``order_configuration`` object (exactly one documented key)."""
        size = format_decimal(self.base_size)
        if self.kind == "MARKET":
            return {"market_market_ioc": {"base_size": size}}
        if self.limit_price is None:
            raise ExecutionError(f"order {self.client_order_id!r}: {self.kind} needs limit_price")
        price = format_decimal(self.limit_price)
        if self.kind == "LIMIT":
            if self.time_in_force == "GTC":
                cfg = {"base_size": size, "limit_price": price, "post_only": self.post_only}
                return {"limit_limit_gtc": cfg}
            if self.post_only:
                raise ExecutionError(
                    f"order {self.client_order_id!r}: post_only needs time_in_force GTC, "
                    f"not {self.time_in_force}"
                )
            key = {"IOC": "sor_limit_ioc", "FOK": "limit_limit_fok"}.get(self.time_in_force)
            if key is None:
                raise ExecutionError(f"time_in_force={self.time_in_force!r}: GTC, IOC or FOK")
            return {key: {"base_size": size, "limit_price": price}}
        if self.kind == "STOP_LIMIT" and self.stop_price is not None and self.stop_direction:
            return {
                "stop_limit_stop_limit_gtc": {
                    "base_size": size,
                    "limit_price": price,
                    "stop_price": format_decimal(self.stop_price),
                    "stop_direction": f"STOP_DIRECTION_{self.stop_direction}",
                }
            }
        raise ExecutionError(
            f"order {self.client_order_id!r}: kind={self.kind!r} is not a Coinbase order "
            "(MARKET, LIMIT, STOP_LIMIT with stop_price and stop_direction)"
        )

    def body(self) -> dict[str, Any]:
        return {
            "client_order_id": self.client_order_id,
            "product_id": self.product_id,
            "side": self.side.value,
            "order_configuration": self.configuration(),
        }


def venue_order_from_coinbase(order: Mapping[str, Any]) -> VenueOrder:
    """A Coinbase order object (``GET .../historical/{id}``) as the venue's view."""
    raw = str(order.get("status", ""))
    if raw not in COINBASE_STATUS:
        raise ExecutionError(f"coinbase order status {raw!r}: unknown")
    filled = Decimal(str(order.get("filled_size") or "0"))
    value = Decimal(str(order.get("filled_value") or "0"))
    return VenueOrder(
        client_order_id=str(order.get("client_order_id", "")),
        venue_order_id=str(order["order_id"]) if order.get("order_id") else None,
        status=COINBASE_STATUS[raw],
        executed_qty=filled,
        cum_quote=value,
    )


class CoinbaseRestClient:
    """Coinbase Advanced Trade order entry (see module docs). ``http`` is injected."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: CoinbaseCredentials,
        *,
        base_url: str = "https://api.coinbase.com",
        rate_limit_per_second: int = 10,
        retry: RetryPolicy | None = None,
        timeout_s: float = 5.0,
        clock_s: Any = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        import time

        self._http = http
        self._creds = credentials
        self._base = base_url.rstrip("/")
        self._host = urlsplit(self._base).netloc
        self._limiter = AsyncLimiter(rate_limit_per_second, 1)
        self._retry = retry or RetryPolicy()
        self._timeout_s = timeout_s
        self._clock_s = clock_s or (lambda: int(time.time()))
        self._sleep = sleep
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"CoinbaseRestClient(base_url={self._base!r}, key=SecretStr('**********'))"

    # ------------------------------------------------------------------ endpoints

    async def create_order(self, order: CoinbaseNewOrder) -> dict[str, Any]:
        """Place an order exactly once; returns the venue's order object (placed or found).

        Raises :class:`CoinbaseRejectedError` (refused), :class:`CoinbaseRateLimitedError` (not
        placed) or :class:`OrderStatusUnknownError` (reconcile before retrying).
        """
        body = order.body()
        last_error = "none"
        for attempt in range(self._retry.attempts + 1):
            wait: float | None = None
            try:
                answer = await self._send("POST", ORDERS_PATH, json=body)
                return await self._created(order, answer, attempt)
            except TransientError as exc:
                last_error = str(exc)
                found = await self._find(order, attempt)
                if found is not None:
                    return found
            except CoinbaseRateLimitedError as exc:
                if attempt == self._retry.attempts:
                    raise
                last_error, wait = str(exc), exc.retry_after_s
            if attempt < self._retry.attempts:
                await self._backoff(attempt, wait)
        raise OrderStatusUnknownError(order.client_order_id, self._retry.attempts + 1, last_error)

    async def get_order(self, order_id: str) -> dict[str, Any] | None:
        """``GET .../orders/historical/{order_id}``; ``None`` when the venue has none."""
        try:
            data = await self._call("GET", f"{HISTORICAL_PATH}/{order_id}")
        except CoinbaseError as exc:
            if exc.status == 404:
                return None
            raise
        return dict(data["order"])

    async def list_orders(
        self,
        *,
        product_ids: list[str] | None = None,
        statuses: list[str] | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """``GET .../orders/historical/batch``, every page (``cursor``/``has_next``)."""
        params: list[tuple[str, str]] = [("limit", str(limit))]
        params += [("product_ids", p) for p in product_ids or []]
        params += [("order_status", s) for s in statuses or []]
        out: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = await self._call(
                "GET", LIST_PATH, params=params + ([("cursor", cursor)] if cursor else [])
            )
            out += [dict(o) for o in page.get("orders", [])]
            cursor = str(page.get("cursor") or "")
            if not page.get("has_next") or not cursor:
                return out

    async def get_product(self, product_id: str) -> dict[str, Any]:
        """``GET .../products/{product_id}`` (``price_increment``: the price tick)."""
        return dict(await self._call("GET", f"{PRODUCTS_PATH}/{product_id}"))

    async def find_by_client_order_id(
        self, client_order_id: str, product_id: str | None = None
    ) -> dict[str, Any] | None:
        """The order with this client order id (newest first), or ``None``."""
        orders = await self.list_orders(product_ids=[product_id] if product_id else None)
        return next((o for o in orders if o.get("client_order_id") == client_order_id), None)

    async def cancel_orders(self, order_ids: list[str]) -> list[dict[str, Any]]:
        """``POST .../orders/batch_cancel``: one ``{success, failure_reason, order_id}``
        per id (at most 100). Not repeated on an unknown outcome: query instead."""
        if not 1 <= len(order_ids) <= 100:
            raise ExecutionError(f"order_ids: {len(order_ids)} given, 1..100 allowed")
        data = await self._call(
            "POST", BATCH_CANCEL_PATH, json={"order_ids": order_ids}, repeat=False
        )
        return [dict(r) for r in data.get("results", [])]

    async def edit_order(self, order_id: str, price: Decimal, size: Decimal) -> dict[str, Any]:
        """``POST .../orders/edit``: a GTC limit order's new ``price`` and ``size``;
        returns the order as queried after it. An edit sets absolute values, so an
        unknown outcome (timeout, 5xx) is settled by querying the order: already as
        asked, done; else it is sent again (at most ``retry.attempts`` times). A refusal
        raises :class:`CoinbaseRejectedError` with the ``edit_failure_reason``."""
        body = {"order_id": order_id, "price": format_decimal(price), "size": format_decimal(size)}
        last_error = "none"
        for attempt in range(self._retry.attempts + 1):
            try:
                answer = await self._call("POST", EDIT_PATH, json=body, repeat=False)
            except TransientError as exc:
                last_error = str(exc)
                found = await self.get_order(order_id)
                if found is not None and _is_edited(found, price, size):
                    return found
                if attempt < self._retry.attempts:
                    await self._backoff(attempt, None)
                continue
            if not isinstance(answer, dict) or not answer.get("success"):
                errors = answer.get("errors") if isinstance(answer, dict) else None
                first = errors[0] if isinstance(errors, list) and errors else {}
                reason = str(first.get("edit_failure_reason") or "UNKNOWN_EDIT_ORDER_FAILURE")
                found = await self.get_order(order_id)
                if found is not None and _is_edited(found, price, size):  # an earlier try
                    return found
                raise CoinbaseRejectedError(200, reason, f"edit of order {order_id}", EDIT_PATH)
            found = await self.get_order(order_id)
            if found is None:
                raise OrderStatusUnknownError(order_id, attempt + 1, "edited, then not found")
            return found
        raise OrderStatusUnknownError(order_id, self._retry.attempts + 1, last_error)

    # ------------------------------------------------------------------ plumbing

    async def _created(self, order: CoinbaseNewOrder, answer: Any, attempt: int) -> dict[str, Any]:
        if not isinstance(answer, dict) or not answer.get("success"):
            err = answer.get("error_response", {}) if isinstance(answer, dict) else {}
            reason = str(err.get("error") or answer.get("failure_reason") or "UNKNOWN")
            raise CoinbaseRejectedError(200, reason, str(err.get("message", "")), ORDERS_PATH)
        order_id = str(answer["success_response"]["order_id"])
        try:
            found = await self.get_order(order_id)
        except (TransientError, CoinbaseRateLimitedError) as exc:
            raise OrderStatusUnknownError(order.client_order_id, attempt + 1, str(exc)) from None
        if found is None:  # accepted, then not found: the venue's state is unknown
            raise OrderStatusUnknownError(
                order.client_order_id, attempt + 1, f"order_id {order_id} accepted, not found"
            )
        return found

    async def _find(self, order: CoinbaseNewOrder, attempt: int) -> dict[str, Any] | None:
        try:
            return await self.find_by_client_order_id(order.client_order_id, order.product_id)
        except (TransientError, CoinbaseRateLimitedError) as exc:
            raise OrderStatusUnknownError(order.client_order_id, attempt + 1, str(exc)) from None

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        json: Any = None,
        repeat: bool = True,
    ) -> Any:
        """One request with bounded retries on 429 and (if ``repeat``) timeouts/5xx."""
        return await with_retries(
            lambda: self._send(method, path, params=params, json=json),
            self._retry,
            self._sleep,
            self._rng,
            limited=CoinbaseRateLimitedError,
            repeat=repeat,
        )

    async def _backoff(self, attempt: int, retry_after_s: float | None) -> None:
        await self._sleep(self._retry.wait_s(attempt, self._rng, retry_after_s))

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        json: Any = None,
    ) -> Any:
        token = build_jwt(self._creds, method, self._host, path, self._clock_s())
        headers = {"Authorization": f"Bearer {token}"}
        async with self._limiter:
            try:
                resp = await self._http.request(
                    method,
                    f"{self._base}{path}" + (f"?{urlencode(params)}" if params else ""),
                    json=json,
                    headers=headers,
                    timeout=self._timeout_s,
                )
            except httpx.TimeoutException:
                raise TransientError(path, "timeout", venue="coinbase") from None
            except httpx.TransportError as exc:
                detail = f"transport error {type(exc).__name__}"
                raise TransientError(path, detail, venue="coinbase") from None
        return _parse_response(resp, path)


def _is_edited(order: Mapping[str, Any], price: Decimal, size: Decimal) -> bool:
    """Whether a queried order has this limit price and size (an edit went through)."""
    cfg = order.get("order_configuration") or {}
    gtc = cfg.get("limit_limit_gtc") if isinstance(cfg, dict) else None
    if not isinstance(gtc, dict):
        return False
    return (
        Decimal(str(gtc.get("limit_price"))) == price and Decimal(str(gtc.get("base_size"))) == size
    )


def _parse_response(resp: httpx.Response, path: str) -> Any:
    status = resp.status_code
    if status >= 500:
        raise TransientError(path, f"HTTP {status}", status=status, venue="coinbase")
    try:
        data = resp.json()
    except ValueError:
        data = None
    if status < 400:
        if data is None:
            raise TransientError(path, f"HTTP {status}: body is not JSON", status, "coinbase")
        return data
    error = str(data.get("error", "")) if isinstance(data, dict) else ""
    message = str(data.get("message", "")) if isinstance(data, dict) else resp.text[:200]
    if status == 429:
        retry = resp.headers.get("Retry-After", "1")
        seconds = float(retry) if retry.replace(".", "", 1).isdigit() else 1.0
        raise CoinbaseRateLimitedError(status, message or "rate limited", seconds, path)
    if status == 401:
        raise CoinbaseAuthError(status, error or "UNAUTHENTICATED", message.strip(), path)
    raise CoinbaseError(status, error, message, path)
