"""What a parsed exchange frame turns into, and the strict field readers both venues share.

Parsers validate every field themselves (types, finite decimals, positive prices) and then
build records with :func:`build` (no second validation): validating twice costs
more than the whole parse on the hot path. The tests decode every record the parsers
build from the recorded capture, proving they are valid records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, TypeVar, cast

import orjson

from algostream.marketdata.errors import FrameError, short_repr
from algostream.model.fast import from_fields
from algostream.model.ids import INSTRUMENT_PATTERN, derive_id
from algostream.model.records import BookUpdate, RawFrame, Record, TradeTick

R = TypeVar("R", bound=Record)

_MISSING = "<missing>"
_INSTRUMENT_RE = re.compile(INSTRUMENT_PATTERN)
_instrument_cache: dict[tuple[str, str], str] = {}


class FrameKind(StrEnum):
    """What a frame was: market data, or a connection-level message."""

    MARKET = "MARKET"  # trades / book / ticker / kline data
    SNAPSHOT = "SNAPSHOT"  # a REST depth snapshot
    ACK = "ACK"  # subscription acknowledgement / subscriptions list
    HEARTBEAT = "HEARTBEAT"
    SHUTDOWN = "SHUTDOWN"  # the server announces it will close: reconnect now
    ERROR = "ERROR"  # an error reply from the server (well-formed, not market data)


@dataclass(frozen=True, slots=True)
class BookTicker:
    """Best bid / ask as the exchange reports it (Binance ``bookTicker``); not a topic record."""

    instrument: str
    update_id: int
    bid_price: Decimal
    bid_qty: Decimal
    ask_price: Decimal
    ask_qty: Decimal
    ts_init: int


@dataclass(frozen=True, slots=True)
class Kline:
    """An exchange-computed candle (Binance ``kline``), for cross-checks; not a topic record."""

    instrument: str
    interval: str
    start_ms: int
    end_ms: int
    first_trade_id: int
    last_trade_id: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int
    closed: bool
    ts_event: int


@dataclass(slots=True)
class ParsedFrame:
    """Everything one frame produced: the raw frame (for ``md.raw``) and normalised records.

    ``trades`` go to ``md.trades``; ``book`` holds *unsynchronised* book updates: Binance
    diffs must pass :class:`~algostream.marketdata.sync.BinanceBookSync` before they go to
    ``md.book``. ``sequence_num`` is Coinbase's per-connection counter (``None`` elsewhere).
    """

    raw: RawFrame
    kind: FrameKind = FrameKind.MARKET
    trades: list[TradeTick] = field(default_factory=list)
    book: list[BookUpdate] = field(default_factory=list)
    tickers: list[BookTicker] = field(default_factory=list)
    klines: list[Kline] = field(default_factory=list)
    channel: str = ""
    sequence_num: int | None = None
    ack_id: int | str | None = None
    message: str = ""
    subscriptions: dict[str, list[str]] = field(default_factory=dict)


def build(cls: type[R], **fields: Any) -> R:
    """Build a record from fields the caller has already validated (no second validation).
    Given every field in declared order (the hot paths do), without pydantic's per-field
    alias and default handling (:func:`~algostream.model.fast.from_fields`)."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(cls.model_fields)
    if len(fields) == len(names) and tuple(fields) == names:
        return from_fields(cls, fields)
    return cast(R, cls.model_construct(**fields))


_FIELDS: dict[type[Record], tuple[str, ...]] = {}


def raw_frame(text: str, recv_ns: int, venue: str, stream: str, instrument: str) -> RawFrame:
    """The ``md.raw`` record of a frame; a raw frame is the root of lineage (its own id)."""
    rid = derive_id("raw", venue, recv_ns, text)
    return build(
        RawFrame,
        instrument=instrument,
        ts_event=recv_ns,
        ts_init=recv_ns,
        record_id=rid,
        lineage_id=rid,
        venue=venue,
        stream=stream,
        payload=text,
        more=(),
    )


def decode_frame(raw: str | bytes) -> tuple[str, Any]:
    """``(text, parsed JSON)`` of a frame; :class:`FrameError` if not UTF-8 JSON."""
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            text = bytes(raw).decode()
        except UnicodeDecodeError as exc:
            raise FrameError("<frame>", short_repr(bytes(raw)), f"not UTF-8: {exc}") from None
    elif isinstance(raw, str):
        text = raw
    else:
        raise FrameError("<frame>", short_repr(raw), "expected str or bytes")
    try:
        return text, orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FrameError("<frame>", short_repr(text), f"not JSON: {exc}") from None


# --------------------------------------------------------------------------- field readers


def missing(path: str, key: str) -> FrameError:
    """The error for a required field that is absent."""
    return FrameError(f"{path}.{key}", _MISSING, "required field is missing")


def req(obj: dict[str, Any], key: str, path: str) -> Any:
    """``obj[key]`` or a :class:`FrameError` naming ``path.key``."""
    try:
        return obj[key]
    except KeyError:
        raise missing(path, key) from None


def as_obj(value: Any, path: str) -> dict[str, Any]:
    """``value`` if it is a JSON object."""
    if type(value) is not dict:
        raise FrameError(path, short_repr(value), "expected a JSON object")
    return value


def as_list(value: Any, path: str) -> list[Any]:
    """``value`` if it is a JSON array."""
    if type(value) is not list:
        raise FrameError(path, short_repr(value), "expected a JSON array")
    return value


def as_str(value: Any, path: str) -> str:
    """``value`` if it is a non-empty string."""
    if type(value) is not str or not value:
        raise FrameError(path, short_repr(value), "expected a non-empty string")
    return value


def as_int(value: Any, path: str) -> int:
    """``value`` if it is a non-negative JSON integer (booleans refused)."""
    if type(value) is not int or value < 0:
        raise FrameError(path, short_repr(value), "expected a non-negative integer")
    return value


def as_bool(value: Any, path: str) -> bool:
    """``value`` if it is a JSON boolean."""
    if type(value) is not bool:
        raise FrameError(path, short_repr(value), "expected true or false")
    return value


def as_decimal(value: Any, path: str, *, positive: bool) -> Decimal:
    """A finite decimal from a decimal *string*; > 0 if ``positive`` else >= 0."""
    if type(value) is not str:
        if type(value) is float:
            reason = "binary float is not exact; prices and quantities must be decimal strings"
        else:
            reason = "expected a decimal string"
        raise FrameError(path, short_repr(value), reason)
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise FrameError(path, short_repr(value), "not a decimal number") from None
    if not result.is_finite():
        raise FrameError(path, short_repr(value), "not a finite number")
    if result <= 0 if positive else result < 0:
        raise FrameError(path, short_repr(value), "must be > 0" if positive else "must be >= 0")
    return result


def levels(value: Any, path: str) -> tuple[tuple[Decimal, Decimal], ...]:
    """``[[price, qty], ...]`` as exact (price > 0, qty >= 0) pairs."""
    if type(value) is not list:
        raise FrameError(path, short_repr(value), "expected a JSON array of [price, qty]")
    out = []
    for i, item in enumerate(value):
        if type(item) is not list or len(item) < 2:
            raise FrameError(f"{path}[{i}]", short_repr(item), "expected [price, qty]")
        price, qty = item[0], item[1]
        try:  # the usual case without building a path per value; anything odd: the checks
            if type(price) is str and type(qty) is str:
                p, q = Decimal(price), Decimal(qty)
                if p.is_finite() and q.is_finite() and p > 0 and q >= 0:
                    out.append((p, q))
                    continue
        except InvalidOperation:
            pass
        as_decimal(price, f"{path}[{i}][0]", positive=True)
        as_decimal(qty, f"{path}[{i}][1]", positive=False)
        raise AssertionError(f"{path}[{i}]: {item!r} passed the checks it failed")  # unreachable
    return tuple(out)


def instrument_for(venue: str, symbol: Any, path: str) -> str:
    """``VENUE:SYMBOL`` (upper case), checked against the model's instrument pattern."""
    if type(symbol) is str:
        cached = _instrument_cache.get((venue, symbol))
        if cached is not None:
            return cached
    text = as_str(symbol, path)
    result = f"{venue.upper()}:{text.upper()}"
    if not _INSTRUMENT_RE.fullmatch(result) or len(result) > 64:
        raise FrameError(path, short_repr(symbol), "not a valid exchange symbol")
    if len(_instrument_cache) < 100_000:
        _instrument_cache[(venue, text)] = result
    return result


#: the latest time a record can carry: ns since the epoch fit a signed 64-bit integer
#: (Kafka, numpy and pandas timestamps) - year 2262
MAX_NS = 2**63 - 1


def ms_to_ns(value: Any, path: str) -> int:
    """Exchange milliseconds (a non-negative integer) as nanoseconds (at most ``MAX_NS``)."""
    ns = as_int(value, path) * 1_000_000
    if ns > MAX_NS:
        raise FrameError(path, short_repr(value), "timestamp (ms) is beyond the year 2262")
    return ns


_second_cache: dict[str, int] = {}


def rfc3339_to_ns(value: Any, path: str) -> int:
    """``2023-02-09T20:32:50.714964855Z`` (any fraction length, ``Z`` or offset) → unix ns."""
    text = as_str(value, path)
    head, dot, rest = text.partition(".")
    frac_digits = ""
    tz = ""
    if dot:
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        frac_digits, tz = rest[:i], rest[i:]
        if not frac_digits or len(frac_digits) > 9:
            raise FrameError(path, short_repr(value), "bad fractional seconds")
    else:
        head, tz = (text[:-1], "Z") if text.endswith("Z") else (text[:19], text[19:])
    key = head + (tz or "Z")
    seconds = _second_cache.get(key)
    if seconds is None:
        try:
            parsed = datetime.fromisoformat(head + (tz or "Z"))
        except ValueError:
            raise FrameError(path, short_repr(value), "not an RFC 3339 timestamp") from None
        if parsed.tzinfo is None:
            raise FrameError(path, short_repr(value), "timestamp has no time zone")
        seconds = int(parsed.timestamp())
        if len(_second_cache) > 10_000:
            _second_cache.clear()
        _second_cache[key] = seconds
    ns = seconds * 1_000_000_000 + (int(frac_digits.ljust(9, "0")) if frac_digits else 0)
    if not 0 <= ns <= MAX_NS:
        raise FrameError(path, short_repr(value), "timestamp is outside 1970..2262")
    return ns
