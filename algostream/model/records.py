"""One frozen record type per topic (see ``topics/topics.toml``).

Every record carries ``instrument`` (the Kafka key), ``ts_event`` (when it happened, ns)
and ``ts_init`` (when we created the record, ns), its own ``record_id`` and the
``lineage_id`` of the record that caused it, so an order can be traced back to its ticks.
Money-like fields are Decimal, decimal strings on the wire.

>>> t = TradeTick(instrument="BINANCE:BTCUSDT", ts_event=1, ts_init=2, record_id="t1",
...               lineage_id="raw1", trade_id="42", price="100.5", size="0.1",
...               aggressor_side=Side.BUY)
>>> TradeTick.decode(t.encode()) == t
True
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any, ClassVar, Literal, TypeVar

import msgspec
import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from algostream.model.enums import (
    BookUpdateKind,
    ControlAction,
    CostMethod,
    IntegrityKind,
    OrderStatus,
    OrderType,
    RiskEventKind,
    Side,
    TimeInForce,
    TradingState,
)
from algostream.model.errors import RecordDecodeError
from algostream.model.fast import FAST_TYPES, Slow, decode_fast
from algostream.model.ids import (
    AccountId,
    ClientOrderId,
    InstrumentId,
    LineageId,
    StrategyId,
    derive_id,
)
from algostream.model.values import Levels, Money, Price, Quantity, SignedQuantity

R = TypeVar("R", bound="Record")


SignalSizing = Literal["strength", "units", "equity", "target_units", "target_equity"]
#: an order list: a BRACKET (an entry and its two exits) or an OCO (two exits)
OrderListKind = Literal["BRACKET", "OCO"]

#: bar intervals the bar stage makes live (each has a ``bars.<interval>`` topic)
LiveBarInterval = Literal["1s", "1m", "5m", "15m", "1h", "4h", "1d"]
#: bar intervals a bar record and the bar backtest take (Binance kline names + seconds)
BarInterval = Literal[
    "1s", "5s", "15s", "30s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"
]


class Record(BaseModel):
    """Base of every record on a topic."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False, allow_inf_nan=False)

    #: registry name used in topics.toml; set on each subclass
    TYPE: ClassVar[str] = "Record"

    instrument: InstrumentId
    ts_event: int = Field(ge=0, description="when it happened, unix ns")
    ts_init: int = Field(ge=0, description="when this record was created, unix ns")
    record_id: str = Field(min_length=1, max_length=128)
    lineage_id: LineageId

    @property
    def key(self) -> str:
        """The Kafka key: the instrument id (account-keyed records override this)."""
        return self.instrument

    def encode(self) -> bytes:
        """Serialise to JSON bytes; decimals as strings, enums as their values.

        The same JSON as ``orjson.dumps(self.model_dump(mode="json"))`` (tested on every
        record type), written by msgspec straight from the validated fields: 2.3x faster on
        a ``book.top`` record (10.2 -> 4.5 µs), which every stage encodes per output.
        """
        return _ENCODER.encode(self.__dict__)

    @classmethod
    def decode(cls: type[R], payload: bytes | str) -> R:
        """Parse JSON bytes; raises :class:`RecordDecodeError` naming the bad field.

        ``md.book`` and ``book.top`` records take a strict msgspec pass first
        (:mod:`algostream.model.fast`); what it does not decide, the model does."""
        if cls.TYPE in FAST_TYPES:
            try:
                return decode_fast(cls, payload)
            except Slow:
                pass
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise RecordDecodeError(
                cls.TYPE, "<payload>", _short(payload), f"not JSON: {exc}"
            ) from None
        return cls.from_obj(data)

    @classmethod
    def from_obj(cls: type[R], data: Any) -> R:
        """Validate an already-parsed object; raises :class:`RecordDecodeError`."""
        if not isinstance(data, dict):
            raise RecordDecodeError(cls.TYPE, "<payload>", _short(data), "expected a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "<payload>"
            value = err.get("input", "<missing>") if err["type"] != "missing" else "<missing>"
            raise RecordDecodeError(cls.TYPE, loc, _short(value), err["msg"]) from None


def _nested(value: Any) -> Any:
    """msgspec's hook for what it cannot write itself: a record inside a record."""
    if isinstance(value, BaseModel):
        return value.__dict__
    raise TypeError(f"cannot encode {type(value).__name__} {value!r}")


_ENCODER = msgspec.json.Encoder(enc_hook=_nested, decimal_format="string")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- market data


#: a frame batched behind another on ``md.raw``: ``(recv_ns, stream, payload)``
RawMore = tuple[int, str, str]


class RawFrame(Record):
    """A raw exchange frame exactly as received, with its receive time (``md.raw``).

    ``more``: the frames of the same instrument (so the same key and partition) received
    after it, in order, each ``(recv_ns, stream, payload)``. The ingestor batches a few
    milliseconds of frames into one record (one record through the Kafka client instead
    of one per frame); :meth:`frames` gives every frame back as its own record, with the
    id it has alone (the ``lineage_id`` of its ``md.book`` / ``md.trades`` records), so
    replays and captures read batched and unbatched records alike.
    """

    TYPE: ClassVar[str] = "RawFrame"
    venue: str
    stream: str = ""
    payload: str
    more: tuple[RawMore, ...] = ()

    def frames(self) -> list[RawFrame]:
        """This frame and every one in ``more``, each as a record of its own."""
        if not self.more:
            return [self]
        out = [self.model_copy(update={"more": ()})]
        for recv_ns, stream, payload in self.more:
            rid = derive_id("raw", self.venue, recv_ns, payload)
            out.append(
                RawFrame.model_construct(
                    instrument=self.instrument,
                    ts_event=recv_ns,
                    ts_init=recv_ns,
                    record_id=rid,
                    lineage_id=rid,
                    venue=self.venue,
                    stream=stream,
                    payload=payload,
                    more=(),
                )
            )
        return out


class TradeTick(Record):
    """A normalised trade (``md.trades``)."""

    TYPE: ClassVar[str] = "TradeTick"
    trade_id: str
    price: Price
    size: Quantity
    aggressor_side: Side


Level = tuple[Price, Quantity]


class BookUpdate(Record):
    """A snapshot or a diff of an order book (``md.book``).

    Quantities are absolute; a zero quantity removes the level. ``first_update_id`` and
    ``final_update_id`` are Binance ``U``/``u`` (for Coinbase both are ``sequence_num``)
    so gaps can be proven from the topic alone.
    """

    TYPE: ClassVar[str] = "BookUpdate"
    kind: BookUpdateKind
    bids: Levels = ()
    asks: Levels = ()
    first_update_id: int = Field(ge=0)
    final_update_id: int = Field(ge=0)


class BookTop(Record):
    """Best levels and derived quantities (``book.top``)."""

    TYPE: ClassVar[str] = "BookTop"
    bids: Levels
    asks: Levels
    best_bid: Price | None = None
    best_ask: Price | None = None
    mid: Price | None = None
    spread: Money | None = None
    imbalance: float | None = None
    microprice: Price | None = None
    update_id: int = Field(ge=0)

    def encode(self) -> bytes:
        """:meth:`Record.encode`, with each side's JSON kept while the book keeps that side
        (the book stage's tops share a side's tuple until an update reaches into it): the
        levels are most of a top's bytes and of its encoding time. Same bytes (tested)."""
        fields = dict(self.__dict__)
        fields["bids"], fields["asks"] = _side_json(self.bids), _side_json(self.asks)
        return _ENCODER.encode(fields)


#: id of a side's tuple -> (the tuple, its JSON); holding the tuple keeps the id unique
_SIDES: dict[int, tuple[Any, msgspec.Raw]] = {}
_SIDES_KEPT = 1024


def _side_json(levels: Any) -> Any:
    """The JSON of one side of a top, kept for a tuple (immutable, of immutable levels);
    any other value is left to the encoder."""
    if type(levels) is not tuple:
        return levels
    kept = _SIDES.get(id(levels))
    if kept is not None and kept[0] is levels:
        return kept[1]
    raw = msgspec.Raw(_ENCODER.encode(levels))
    if len(_SIDES) >= _SIDES_KEPT:
        _SIDES.clear()
    _SIDES[id(levels)] = (levels, raw)
    return raw


class BookIntegrity(Record):
    """A book integrity event: gap, crossed, stale, resynced (``book.integrity``)."""

    TYPE: ClassVar[str] = "BookIntegrity"
    kind: IntegrityKind
    detail: str = ""
    expected_update_id: int | None = None
    received_update_id: int | None = None


class Bar(Record):
    """An OHLCV bar in event time (``bars.1s``, ``bars.1m``). ``ts_event`` is the close."""

    TYPE: ClassVar[str] = "Bar"
    interval: BarInterval
    start_ns: int = Field(ge=0)
    end_ns: int = Field(ge=0)
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Quantity
    quote_volume: Money
    trades: int = Field(ge=0)


class MarkPrice(Record):
    """A perpetual future's mark price, index price and funding (``md.mark_price``).

    From Binance USD-M ``markPriceUpdate``: ``funding_rate`` is the rate to be paid at
    ``next_funding_ns`` (positive: longs pay shorts); ``estimated_settle_price`` is only
    meaningful in the last hour before a funding time.
    """

    TYPE: ClassVar[str] = "MarkPrice"
    mark_price: Price
    index_price: Price
    estimated_settle_price: Price | None = None
    funding_rate: Money
    next_funding_ns: int = Field(ge=0)


class Liquidation(Record):
    """A liquidation order on a perpetual's market (``md.liquidations``).

    From Binance USD-M ``forceOrder`` (``<symbol>@forceOrder``: the latest liquidation in
    each 1000 ms snapshot): ``side`` is the liquidation order's (SELL: a long was
    liquidated), ``price`` its limit, ``avg_price`` what it filled at so far,
    ``filled_qty`` of ``quantity``; ``ts_event`` its trade time.
    """

    TYPE: ClassVar[str] = "Liquidation"
    side: Side
    quantity: Quantity
    price: Price
    avg_price: Price | None = None
    last_filled_qty: Quantity = Decimal(0)
    filled_qty: Quantity = Decimal(0)
    status: str = Field(min_length=1, max_length=32)


# --------------------------------------------------------------------------- signals


class FeatureVector(Record):
    """Named feature values for one bar (``features``). NaN is ``null``; an infinite
    value is refused (JSON cannot carry it, so it would not survive the topic)."""

    TYPE: ClassVar[str] = "FeatureVector"
    # a warming-up indicator is NaN in the processor: taken here, stored as null
    model_config = ConfigDict(allow_inf_nan=True)
    interval: str
    close: Price
    values: dict[str, float | None]

    @field_validator("values")
    @classmethod
    def _finite(cls, values: dict[str, float | None]) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name, v in values.items():
            if v is not None and math.isinf(v):
                raise ValueError(f"feature {name!r} = {v}: expected a finite number or null")
            out[name] = None if v is None or math.isnan(v) else v
        return out


class Signal(Record):
    """A strategy's opinion (``signals``)."""

    TYPE: ClassVar[str] = "Signal"
    strategy: StrategyId
    side: Side
    strength: float = Field(ge=0.0, le=1.0)
    confidence: float = Field(ge=0.0, le=1.0)
    reason: str
    price: Price
    #: how big: ``strength`` (``signal.order_quantity * strength``, the rule strategies),
    #: ``units`` (``size`` units), ``equity`` (``size`` x equity, a fraction in (0, 1]),
    #: ``target_units`` / ``target_equity`` (a signed target position, in units or as a
    #: fraction of equity in [-1, 1]); see :class:`~algostream.signals.context.StrategyContext`
    sizing: SignalSizing = "strength"
    size: SignedQuantity | None = None
    limit_price: Price | None = None
    stop_price: Price | None = None
    #: a bracket (this order + ``take_profit`` / ``stop_loss`` exits) or an OCO (exits
    #: only: a LIMIT at ``take_profit`` and a stop at ``stop_loss``); see OrderRequest
    order_list: OrderListKind | None = None
    take_profit: Price | None = None
    stop_loss: Price | None = None


# --------------------------------------------------------------------------- orders


class OrderRequest(Record):
    """An order proposal (``orders.proposed``) and, once approved, ``orders.approved``."""

    TYPE: ClassVar[str] = "OrderRequest"
    account: AccountId
    client_order_id: ClientOrderId
    strategy: StrategyId
    side: Side
    order_type: OrderType
    quantity: Quantity
    limit_price: Price | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    arrival_mid: Price | None = None
    #: the trigger of a stop / take-profit order (required for those, refused otherwise)
    stop_price: Price | None = None
    #: a LIMIT GTC order that must only add liquidity (Binance LIMIT_MAKER, Coinbase
    #: post_only): refused rather than filled when it would take
    post_only: bool = False
    #: ``BRACKET``: this order is the entry; when it fills, a take-profit LIMIT at
    #: ``take_profit`` and a stop-loss STOP_MARKET at ``stop_loss`` close what it filled,
    #: one cancelling the other. ``OCO``: two exits of a position, a LIMIT at
    #: ``take_profit`` (= ``limit_price``) and a STOP_MARKET at ``stop_loss``,
    #: reduce-only; the first to fill cancels the other. The legs' client order ids are
    #: ``<client_order_id>-tp`` / ``-sl``, their ``list_id`` this order's id.
    order_list: OrderListKind | None = None
    take_profit: Price | None = None
    stop_loss: Price | None = None
    #: set on an order that is a leg of a list: the list's id
    list_id: ClientOrderId | None = None

    @model_validator(mode="after")
    def _order_type_fields(self) -> OrderRequest:
        self._order_list_fields()
        kind = self.order_type
        if kind.is_conditional and self.stop_price is None:
            raise ValueError(f"order_type={kind.value} needs a stop_price")
        if not kind.is_conditional and self.stop_price is not None:
            raise ValueError(f"stop_price={self.stop_price} is only for stop/take-profit orders")
        if self.post_only and (
            kind is not OrderType.LIMIT or self.time_in_force is not TimeInForce.GTC
        ):
            raise ValueError(
                f"post_only with order_type={kind.value} time_in_force="
                f"{self.time_in_force.value}: only a LIMIT GTC order can be post-only"
            )
        return self

    def _order_list_fields(self) -> None:
        if self.order_list is None:
            if self.take_profit is not None or self.stop_loss is not None:
                raise ValueError(
                    f"take_profit={self.take_profit} stop_loss={self.stop_loss}: only for "
                    "an order_list (BRACKET or OCO)"
                )
            return
        if self.take_profit is None or self.stop_loss is None:
            raise ValueError(
                f"order_list={self.order_list} needs take_profit and stop_loss, got "
                f"take_profit={self.take_profit} stop_loss={self.stop_loss}"
            )
        if self.list_id is not None:
            raise ValueError(f"order_list={self.order_list}: a list cannot be a leg of one")
        if len(self.client_order_id) > 33:
            raise ValueError(
                f"client_order_id {self.client_order_id!r} of an order_list: at most 33 "
                "characters (its legs add -tp / -sl)"
            )
        if self.order_list == "OCO" and (
            self.order_type is not OrderType.LIMIT
            or self.limit_price != self.take_profit
            or not self.reduce_only
        ):
            raise ValueError(
                f"order_list=OCO: a reduce-only LIMIT at take_profit, got order_type="
                f"{self.order_type.value} limit_price={self.limit_price} "
                f"take_profit={self.take_profit} reduce_only={self.reduce_only}"
            )


class OrderRejected(Record):
    """A risk decision that says no (``orders.rejected``): reason, limit and value."""

    TYPE: ClassVar[str] = "OrderRejected"
    account: AccountId
    client_order_id: ClientOrderId
    reason: str
    limit: str
    value: str
    message: str
    order: OrderRequest


class OrderEvent(Record):
    """A lifecycle transition of an order (``orders.events``)."""

    TYPE: ClassVar[str] = "OrderEvent"
    account: AccountId
    client_order_id: ClientOrderId
    venue_order_id: str | None = None
    status: OrderStatus
    side: Side
    order_type: OrderType
    quantity: Quantity
    limit_price: Price | None = None
    stop_price: Price | None = None
    fill_price: Price | None = None
    fill_qty: Quantity = Decimal(0)
    cum_qty: Quantity = Decimal(0)
    fee: Money = Decimal(0)
    fee_currency: str = ""
    slippage: Money | None = None
    reason: str = ""
    venue: str = "PAPER"
    #: the strategy of the order (its fills are attributed to it); None: not known here
    strategy: StrategyId | None = None
    #: the OCO / bracket the order belongs to (its entry's or its OCO's client order id)
    list_id: str | None = None


# --------------------------------------------------------------------------- risk


class Position(Record):
    """A position per account and instrument (compacted ``positions``); with ``strategy``
    set, that strategy's own part of it (several strategies: ``signal.strategies``)."""

    TYPE: ClassVar[str] = "Position"
    account: AccountId
    quantity: SignedQuantity
    avg_price: Money
    cost_method: CostMethod
    realized_pnl: Money
    unrealized_pnl: Money
    fees: Money
    mark_price: Money | None = None
    #: None: the account's net position; else one strategy's
    strategy: StrategyId | None = None

    @property
    def key(self) -> str:
        if self.strategy is not None:
            return f"{self.account}|{self.strategy}|{self.instrument}"
        return f"{self.account}|{self.instrument}"


class PnL(Record):
    """Account equity snapshot (``pnl``); ``instrument`` is ``ACCOUNT:<ACCOUNT upper-cased>``."""

    TYPE: ClassVar[str] = "PnL"
    account: AccountId
    realized_pnl: Money
    unrealized_pnl: Money
    fees: Money
    equity: Money
    peak_equity: Money
    drawdown: Money
    exposure: Money
    #: None: the whole account; else one strategy's P&L (its equity starts at the
    #: account's ``starting_equity``)
    strategy: StrategyId | None = None

    @property
    def key(self) -> str:
        if self.strategy is not None:
            return f"{self.account}|{self.strategy}"
        return self.account


class RiskEvent(Record):
    """Stop hit, breaker tripped/reset, trading state change (``risk.events``)."""

    TYPE: ClassVar[str] = "RiskEvent"
    kind: RiskEventKind
    state: TradingState
    previous_state: TradingState | None = None
    actor: str
    reason: str
    detail: dict[str, str] = Field(default_factory=dict)


class ControlCommand(Record):
    """An operator command (``control``); ``instrument`` ``ALL:*`` means every one.

    ``nonce`` and ``signature`` (HMAC-SHA256 with the operator key, hex) are set by
    :func:`algostream.risk.control_auth.sign`; the risk gate refuses a command without
    a valid one (:class:`algostream.risk.control_auth.ControlVerifier`)."""

    TYPE: ClassVar[str] = "ControlCommand"
    action: ControlAction
    actor: str
    reason: str
    nonce: str | None = Field(default=None, max_length=128)
    signature: str | None = Field(default=None, max_length=128)
    #: HALT / RESUME / FLATTEN one strategy only (``signal.strategies``), the others trade
    strategy: StrategyId | None = None


# --------------------------------------------------------------------------- dlq


class DeadLetter(Record):
    """A record that could not be decoded or handled (``dlq``)."""

    TYPE: ClassVar[str] = "DeadLetter"
    source_topic: str
    partition: int
    offset: int
    source_key: str | None = None
    payload: str
    error_type: str
    reason: str
    agent: str


class VolumeSpike(Record):
    """A window whose traded volume is a multiple of its running average
    (``alerts.volume``; written by the example agent ``streams/volume_spikes.py``)."""

    TYPE: ClassVar[str] = "VolumeSpike"
    window_start_ns: int = Field(ge=0)
    window_ns: int = Field(gt=0)
    volume: Quantity
    average: Quantity = Field(description="the average window volume before this one")
    ratio: Decimal = Field(description="volume / average")
    trades: int = Field(ge=0)


RECORD_TYPES: dict[str, type[Record]] = {
    cls.TYPE: cls
    for cls in (
        RawFrame,
        TradeTick,
        BookUpdate,
        BookTop,
        BookIntegrity,
        Bar,
        MarkPrice,
        Liquidation,
        FeatureVector,
        Signal,
        OrderRequest,
        OrderRejected,
        OrderEvent,
        Position,
        PnL,
        RiskEvent,
        ControlCommand,
        DeadLetter,
        VolumeSpike,
    )
}
