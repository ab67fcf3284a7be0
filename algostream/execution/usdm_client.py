"""Binance USDⓈ-M futures REST trading: signed ``/fapi/v1/order`` with the spot client's
signing, rate limits and safe retries (:mod:`.binance_client`: an unknown outcome is
queried by client order id before any resend; -4116 "duplicated" is looked up too), plus
``POST /fapi/v1/leverage``, ``GET /fapi/v2/positionRisk`` for reconciling positions and
``/fapi/v1/listenKey`` for the user data stream (:mod:`.usdm_stream`).

Order types: MARKET, LIMIT (GTC/IOC/FOK; post-only is ``timeInForce=GTX``), STOP /
STOP_MARKET, TAKE_PROFIT / TAKE_PROFIT_MARKET; ``reduceOnly=true`` for reduce-only.
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

from algostream.execution.binance_client import (
    USDM_ORDER_PATH,
    BinanceRestClient,
    NewOrder,
    format_decimal,
)
from algostream.execution.errors import ExecutionError
from algostream.execution.reconcile import BINANCE_STATUS, VenueOrder
from algostream.execution.usdm_stream import VenuePosition, position_from_risk
from algostream.model.enums import OrderType, TimeInForce

USDM_TYPE = {
    OrderType.MARKET: "MARKET",
    OrderType.LIMIT: "LIMIT",
    OrderType.STOP_MARKET: "STOP_MARKET",
    OrderType.STOP_LIMIT: "STOP",
    OrderType.TAKE_PROFIT_MARKET: "TAKE_PROFIT_MARKET",
    OrderType.TAKE_PROFIT_LIMIT: "TAKE_PROFIT",
}


@dataclass(frozen=True)
class UsdmNewOrder(NewOrder):
    """Parameters of ``POST /fapi/v1/order`` (one-way mode: ``positionSide`` BOTH)."""

    reduce_only: bool = False

    def params(self) -> list[tuple[str, str]]:
        out = [
            ("symbol", self.symbol),
            ("side", self.side.value),
            ("type", USDM_TYPE[self.order_type]),
        ]
        if self.order_type.has_limit_price:
            tif = "GTX" if self.post_only else (self.time_in_force or TimeInForce.GTC).value
            out.append(("timeInForce", tif))
        out.append(("quantity", format_decimal(self.quantity)))
        if self.price is not None:
            out.append(("price", format_decimal(self.price)))
        if self.stop_price is not None:
            out.append(("stopPrice", format_decimal(self.stop_price)))
        if self.reduce_only:
            out.append(("reduceOnly", "true"))
        out += [("newClientOrderId", self.client_order_id), ("newOrderRespType", "RESULT")]
        return out


def venue_order_from_usdm(payload: Mapping[str, Any]) -> VenueOrder:
    """A futures order (new-order RESULT, query or cancel answer) as the venue's view."""
    raw = str(payload.get("status", ""))
    if raw not in BINANCE_STATUS:
        raise ExecutionError(f"binance futures order status {raw!r}: unknown")
    ts = payload.get("updateTime")
    return VenueOrder(
        client_order_id=str(payload.get("clientOrderId", "")),
        venue_order_id=str(payload["orderId"]) if "orderId" in payload else None,
        status=BINANCE_STATUS[raw],
        executed_qty=Decimal(str(payload.get("executedQty", "0"))),
        cum_quote=Decimal(str(payload.get("cumQuote", "0"))),
        ts_ms=int(ts) if ts is not None else None,
    )


class UsdmRestClient(BinanceRestClient):
    """The spot client on ``/fapi`` paths, with leverage and positions."""

    order_path = USDM_ORDER_PATH
    open_orders_path = "/fapi/v1/openOrders"
    account_path = "/fapi/v2/account"
    time_path = "/fapi/v1/time"
    #: ``POST/PUT/DELETE /fapi/v1/listenKey``: the futures user data stream's key
    user_stream_path = "/fapi/v1/listenKey"

    def __repr__(self) -> str:
        return f"UsdmRestClient(base_url={self._base!r}, api_key=SecretStr('**********'))"

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
