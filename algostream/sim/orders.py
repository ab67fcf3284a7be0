"""Orders held by the simulated Binance venue: parsing ``POST /api/v3/order`` parameters,
symbol filters, and the JSON shapes Binance answers with (order, fills, executionReport).

Types accepted (as ``exchangeInfo`` lists them): ``LIMIT`` (GTC/IOC/FOK), ``MARKET``
(``quantity`` or ``quoteOrderQty``), ``LIMIT_MAKER`` (refused with -2010 when it would
take), ``STOP_LOSS_LIMIT`` and ``TAKE_PROFIT_LIMIT`` (rest untriggered until the last
trade price reaches ``stopPrice``, then work as their limit; -2010 when they would
trigger at once), ``STOP_LOSS`` and ``TAKE_PROFIT`` (the same, then work as MARKET).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from algostream.sim.binance_errors import (
    ApiError,
    client_id_param,
    decimal_param,
    enum_param,
    mandatory,
)

_ZERO = Decimal(0)
OPEN = ("NEW", "PARTIALLY_FILLED")
ORDER_TYPES = (
    "LIMIT",
    "MARKET",
    "LIMIT_MAKER",
    "STOP_LOSS",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT",
    "TAKE_PROFIT_LIMIT",
)
#: held until ``stopPrice`` is reached; the first two then work as a MARKET order
MARKET_STOP_TYPES = ("STOP_LOSS", "TAKE_PROFIT")
STOP_TYPES = ("STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT", *MARKET_STOP_TYPES)
#: types that take liquidity at any price once working (no limit price)
MARKET_TYPES = ("MARKET", *MARKET_STOP_TYPES)
RESP_TYPES = ("ACK", "RESULT", "FULL")


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def plain(value: Decimal) -> str:
    """A Decimal as a plain string (no exponent, no trailing zeros)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def p8(value: Decimal | None) -> str:
    """Binance's 8-decimal wire format."""
    return f"{value or _ZERO:.8f}"


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
                "minQty": getattr(raw, "step_size", None),
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

    def check_price(self, price: Decimal | None) -> None:
        """-1013 PRICE_FILTER when ``price`` is off the tick grid."""
        if price is not None and self.tick_size and price % self.tick_size != 0:
            raise ApiError(400, -1013, "Filter failure: PRICE_FILTER")

    def check(self, price: Decimal | None, qty: Decimal, ref_price: Decimal | None) -> None:
        """Raise -1013 naming the filter that fails."""
        self.check_price(price)
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

    def round_qty(self, qty: Decimal) -> Decimal:
        """``qty`` rounded down to the step size."""
        if not self.step_size:
            return qty
        return (qty // self.step_size) * self.step_size


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
    stop_price: Decimal | None = None
    quote_order_qty: Decimal | None = None
    executed_qty: Decimal = _ZERO
    cum_quote: Decimal = _ZERO
    status: str = "NEW"
    update_ms: int = 0
    working: bool = True
    fills: list[dict[str, Any]] = field(default_factory=list)
    #: an OCO leg: its list's id and the other leg's order id (-1 / None: no list)
    order_list_id: int = -1
    partner: int | None = None
    #: an OCO leg whose funds are the other leg's lock (nothing locked of its own)
    shares_lock: bool = False

    @property
    def is_open(self) -> bool:
        """NEW or PARTIALLY_FILLED."""
        return self.status in OPEN

    @property
    def remaining(self) -> Decimal:
        """Quantity not yet executed."""
        return self.orig_qty - self.executed_qty

    def as_json(self) -> dict[str, Any]:
        """The ``GET /api/v3/order`` shape."""
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": self.order_list_id,
            "clientOrderId": self.client_order_id,
            "price": p8(self.price),
            "origQty": p8(self.orig_qty),
            "executedQty": p8(self.executed_qty),
            "cummulativeQuoteQty": p8(self.cum_quote),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
            "stopPrice": p8(self.stop_price),
            "icebergQty": p8(None),
            "time": self.time_ms,
            "updateTime": self.update_ms or self.time_ms,
            "isWorking": self.working,
            "workingTime": self.time_ms if self.working else -1,
            "origQuoteOrderQty": p8(self.quote_order_qty),
            "selfTradePreventionMode": "NONE",
        }

    def answer(self, resp_type: str) -> dict[str, Any]:
        """The ``POST /api/v3/order`` answer for ``newOrderRespType``."""
        ack = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": self.order_list_id,
            "clientOrderId": self.client_order_id,
            "transactTime": self.time_ms,
        }
        if resp_type == "ACK":
            return ack
        full = self.as_json()
        drop = ("time", "updateTime", "isWorking", "stopPrice", "icebergQty")
        result = {**ack, **{k: v for k, v in full.items() if k not in drop}}
        if self.stop_price is not None:
            result["stopPrice"] = p8(self.stop_price)
        if resp_type == "FULL":
            result["fills"] = [
                {k: v for k, v in f.items() if k in ("price", "qty", "commission")}
                | {"commissionAsset": f["commissionAsset"], "tradeId": f["tradeId"]}
                for f in self.fills
            ]
        return result

    def execution_report(
        self, exec_type: str, now_ms: int, fill: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The user data stream's ``executionReport`` for one change of this order."""
        last_qty = Decimal(fill["qty"]) if fill else _ZERO
        last_price = Decimal(fill["price"]) if fill else _ZERO
        return {
            "e": "executionReport",
            "E": now_ms,
            "s": self.symbol,
            "c": self.client_order_id,
            "S": self.side,
            "o": self.type,
            "f": self.time_in_force,
            "q": p8(self.orig_qty),
            "p": p8(self.price),
            "P": p8(self.stop_price),
            "F": p8(None),
            "g": self.order_list_id,
            "C": "",
            "x": exec_type,
            "X": self.status,
            "r": "NONE",
            "i": self.order_id,
            "l": p8(last_qty),
            "z": p8(self.executed_qty),
            "L": p8(last_price),
            "n": fill["commission"] if fill else "0",
            "N": fill["commissionAsset"] if fill else None,
            "T": now_ms,
            "t": fill["id"] if fill else -1,
            "I": 0,
            "w": self.working and self.is_open,
            "m": bool(fill and fill["isMaker"]),
            "M": False,
            "O": self.time_ms,
            "Z": p8(self.cum_quote),
            "Y": p8(last_qty * last_price),
            "Q": p8(self.quote_order_qty),
            "W": self.time_ms,
            "V": "NONE",
        }


@dataclass(frozen=True)
class OrderParams:
    """The validated parameters of one new order."""

    symbol: str
    side: str
    type: str
    time_in_force: str
    quantity: Decimal | None
    quote_order_qty: Decimal | None
    price: Decimal | None
    stop_price: Decimal | None
    client_order_id: str | None
    resp_type: str


def _optional_dec(params: Mapping[str, str], name: str) -> Decimal | None:
    return decimal_param(params, name) if params.get(name) else None


def parse_order_params(params: Mapping[str, str], symbol: str) -> OrderParams:
    """Check ``POST /api/v3/order`` parameters per type (-1102/-1100/-1111/-1106/-111x)."""
    side = enum_param(params, "side", ("BUY", "SELL"), -1117)
    kind = enum_param(params, "type", ORDER_TYPES, -1116)
    qty = _optional_dec(params, "quantity")
    quote_qty = _optional_dec(params, "quoteOrderQty") if kind == "MARKET" else None
    if kind == "MARKET" and qty is None and quote_qty is None:
        raise ApiError(
            400,
            -1102,
            "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
        )
    if kind == "MARKET" and qty is not None and quote_qty is not None:
        raise ApiError(400, -1106, "Parameter 'quoteOrderQty' sent when not required.")
    if kind != "MARKET" and qty is None:
        raise mandatory("quantity")
    price = decimal_param(params, "price") if kind not in MARKET_TYPES else None
    if kind in MARKET_TYPES and params.get("price"):
        raise ApiError(400, -1106, "Parameter 'price' sent when not required.")
    stop = decimal_param(params, "stopPrice") if kind in STOP_TYPES else None
    needs_tif = kind in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
    if needs_tif:
        tif = enum_param(params, "timeInForce", ("GTC", "IOC", "FOK"), -1115)
    elif params.get("timeInForce"):
        raise ApiError(400, -1106, "Parameter 'timeInForce' sent when not required.")
    else:
        tif = "GTC"
    default_resp = "FULL" if kind in ("MARKET", "LIMIT") else "ACK"
    resp = params.get("newOrderRespType") or default_resp
    if resp not in RESP_TYPES:
        raise ApiError(400, -1130, "Invalid data sent for a parameter.")
    return OrderParams(
        symbol,
        side,
        kind,
        tif,
        qty,
        quote_qty,
        price,
        stop,
        client_id_param(params, "newClientOrderId"),
        resp,
    )
