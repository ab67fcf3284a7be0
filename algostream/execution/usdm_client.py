"""Binance USDⓈ-M futures REST trading: signed ``/fapi/v1/order`` with the spot client's
signing, rate limits and safe retries (:mod:`.binance_client`: an unknown outcome is
queried by client order id before any resend; -4116 "duplicated" is looked up too), plus
``POST /fapi/v1/leverage``, ``GET /fapi/v2/positionRisk`` for reconciling positions and
``/fapi/v1/listenKey`` for the user data stream (:mod:`.usdm_stream`).

Order types: MARKET, LIMIT (GTC/IOC/FOK; post-only is ``timeInForce=GTX``), STOP /
STOP_MARKET, TAKE_PROFIT / TAKE_PROFIT_MARKET (``workingType`` MARK_PRICE or
CONTRACT_PRICE: ``execution.futures_working_type``; ``closePosition=true`` in place of a
quantity); ``reduceOnly=true`` for reduce-only. ``PUT /fapi/v1/order``
(:meth:`UsdmRestClient.modify_order`) changes a LIMIT order's price and quantity.
Definite refusals (-2019 margin, -2022 reduce-only, -2027 leverage bracket, -5022
post-only) raise :class:`~algostream.execution.errors.OrderRejectedError`.

>>> from algostream.model import Side
>>> UsdmNewOrder("BTCUSDT", Side.SELL, OrderType.STOP_MARKET, Decimal(1), "c1",
...              stop_price=Decimal(90), reduce_only=True).params()[2:6]
[('type', 'STOP_MARKET'), ('quantity', '1'), ('stopPrice', '90'), ('reduceOnly', 'true')]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from algostream.config import ExecutionConfig
from algostream.execution.binance_client import (
    USDM_ORDER_PATH,
    BinanceRestClient,
    NewOrder,
    format_decimal,
)
from algostream.execution.errors import BinanceError, ExecutionError
from algostream.execution.reconcile import BINANCE_STATUS, VenueOrder
from algostream.execution.usdm_stream import VenuePosition, position_from_risk
from algostream.model.enums import OrderType, Side, TimeInForce

USDM_TYPE = {
    OrderType.MARKET: "MARKET",
    OrderType.LIMIT: "LIMIT",
    OrderType.STOP_MARKET: "STOP_MARKET",
    OrderType.STOP_LIMIT: "STOP",
    OrderType.TAKE_PROFIT_MARKET: "TAKE_PROFIT_MARKET",
    OrderType.TAKE_PROFIT_LIMIT: "TAKE_PROFIT",
}


_CLOSE_TYPES = (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET)
#: -5027: a modify that changes nothing (the order already is as asked)
NO_NEED_TO_MODIFY = -5027


@dataclass(frozen=True)
class UsdmNewOrder(NewOrder):
    """Parameters of ``POST /fapi/v1/order`` (one-way mode: ``positionSide`` BOTH)."""

    reduce_only: bool = False
    #: a stop / take-profit's trigger: MARK_PRICE or CONTRACT_PRICE (None: the venue's)
    working_type: str | None = None
    #: a STOP_MARKET / TAKE_PROFIT_MARKET closing the whole position (no quantity sent)
    close_position: bool = False

    def params(self) -> list[tuple[str, str]]:
        if self.close_position and self.order_type not in _CLOSE_TYPES:
            raise ExecutionError(
                f"closePosition with order_type={self.order_type.value}: only STOP_MARKET "
                "and TAKE_PROFIT_MARKET can close a position"
            )
        out = [
            ("symbol", self.symbol),
            ("side", self.side.value),
            ("type", USDM_TYPE[self.order_type]),
        ]
        if self.order_type.has_limit_price:
            tif = "GTX" if self.post_only else (self.time_in_force or TimeInForce.GTC).value
            out.append(("timeInForce", tif))
        if not self.close_position:
            out.append(("quantity", format_decimal(self.quantity)))
        if self.price is not None:
            out.append(("price", format_decimal(self.price)))
        if self.stop_price is not None:
            out.append(("stopPrice", format_decimal(self.stop_price)))
            if self.working_type is not None:
                out.append(("workingType", self.working_type))
        if self.close_position:
            out.append(("closePosition", "true"))
        elif self.reduce_only:
            out.append(("reduceOnly", "true"))
        out += [("newClientOrderId", self.client_order_id), ("newOrderRespType", "RESULT")]
        return out


def venue_order_from_usdm(payload: Mapping[str, Any]) -> VenueOrder:
    """A futures order (new-order RESULT, query or cancel answer) as the venue's view."""
    raw = str(payload.get("status", ""))
    if raw not in BINANCE_STATUS:
        raise ExecutionError(f"binance futures order status {raw!r}: unknown")
    ts = payload.get("updateTime")
    orig = payload.get("origType")
    return VenueOrder(
        client_order_id=str(payload.get("clientOrderId", "")),
        venue_order_id=str(payload["orderId"]) if "orderId" in payload else None,
        status=BINANCE_STATUS[raw],
        executed_qty=Decimal(str(payload.get("executedQty", "0"))),
        cum_quote=Decimal(str(payload.get("cumQuote", "0"))),
        ts_ms=int(ts) if ts is not None else None,
        # a triggered stop / take-profit works as MARKET / LIMIT: ``type`` changes
        triggered=orig in USDM_TYPE.values()
        and orig not in ("MARKET", "LIMIT")
        and payload.get("type") != orig,
    )


class UsdmRestClient(BinanceRestClient):
    """The spot client on ``/fapi`` paths, with leverage and positions."""

    order_path = USDM_ORDER_PATH
    open_orders_path = "/fapi/v1/openOrders"
    account_path = "/fapi/v2/account"
    time_path = "/fapi/v1/time"
    #: ``POST/PUT/DELETE /fapi/v1/listenKey``: the futures user data stream's key
    user_stream_path = "/fapi/v1/listenKey"

    #: what triggers stop / take-profit orders (``execution.futures_working_type``)
    working_type: str = "CONTRACT_PRICE"

    @classmethod
    def from_config(
        cls, http: httpx.AsyncClient, config: ExecutionConfig, **overrides: Any
    ) -> UsdmRestClient:
        client = super().from_config(http, config, **overrides)
        assert isinstance(client, UsdmRestClient)
        client.working_type = config.futures_working_type
        return client

    def __repr__(self) -> str:
        return f"UsdmRestClient(base_url={self._base!r}, api_key=SecretStr('**********'))"

    async def modify_order(
        self, symbol: str, client_order_id: str, side: Side, quantity: Decimal, price: Decimal
    ) -> dict[str, Any]:
        """``PUT /fapi/v1/order``: a LIMIT order's new price and quantity (the order keeps
        its ids). Setting absolute values is idempotent, so a timeout or 5xx is retried
        like a read; -5027 (nothing to change: an earlier attempt did it) answers with
        the order as queried. A refusal raises :class:`OrderRejectedError`."""
        params = [
            ("symbol", symbol),
            ("origClientOrderId", client_order_id),
            ("side", side.value),
            ("quantity", format_decimal(quantity)),
            ("price", format_decimal(price)),
        ]
        try:
            return dict(await self._call("PUT", self.order_path, params, signed=True))
        except BinanceError as exc:
            if exc.code != NO_NEED_TO_MODIFY:
                raise
            found = await self.query_order(symbol, client_order_id)
            if found is None:
                raise
            return found

    async def set_leverage(self, symbol: str, leverage: int) -> dict[str, Any]:
        """``POST /fapi/v1/leverage``; -4028 when above the symbol's brackets."""
        params = [("symbol", symbol), ("leverage", str(leverage))]
        return dict(await self._call("POST", "/fapi/v1/leverage", params, signed=True))

    async def positions(self, symbol: str | None = None) -> dict[str, Decimal]:
        """``GET /fapi/v2/positionRisk``: ``{symbol: signed position}`` (short < 0)."""
        return {p.symbol: p.qty for p in await self.position_risk(symbol)}

    async def position_risk(self, symbol: str | None = None) -> list[VenuePosition]:
        """``GET /fapi/v2/positionRisk``: every position with its entry and mark price."""
        params = [("symbol", symbol)] if symbol else []
        rows = await self._call("GET", "/fapi/v2/positionRisk", params, signed=True)
        return [position_from_risk(r) for r in rows]
