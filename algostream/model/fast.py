"""A strict msgspec pass before pydantic, for the records every book update or trade passes
through.

The pydantic models in :mod:`algostream.model.records` stay the one definition of what a
record may be. ``md.book`` and ``book.top`` are decoded once per update (the book stage,
and twice more in a trading worker), where pydantic took 15 and 33 µs a record, and
``md.trades`` once per trade (the bar stage, a tick backtest from the topics); a msgspec
Struct of the same fields takes a fraction of that. The Struct is *stricter* than the
model: decimals only as JSON strings (the model also takes integers), integers only as
JSON integers, the instrument pattern anchored with ``\\Z`` (``$`` would let a trailing
newline through), prices checked finite and > 0, quantities finite and >= 0. Whatever it
refuses goes on to the model, which accepts it or raises the usual error naming the field;
what it accepts, the model accepts with equal values (``tests/unit/model/test_fast.py``,
hypothesis). So an error message is always the model's, and no payload is decided twice
differently.

>>> from algostream.model.records import BookUpdate
>>> decode_fast(BookUpdate, b'{"instrument":"BINANCE:BTCUSDT","ts_event":1,"ts_init":2,'
...     b'"record_id":"r","lineage_id":"r","kind":"DELTA","bids":[["100.5","2"]],'
...     b'"first_update_id":7,"final_update_id":8}').bids
((Decimal('100.5'), Decimal('2')),)
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import msgspec
from msgspec import Meta

from algostream.model.enums import BookUpdateKind, Side
from algostream.model.ids import INSTRUMENT_PATTERN

if TYPE_CHECKING:
    from algostream.model.records import Record

R = TypeVar("R", bound="Record")

_ZERO = Decimal(0)
_INF = Decimal("Infinity")
_set = object.__setattr__

_Instrument = Annotated[
    str, Meta(pattern=INSTRUMENT_PATTERN.removesuffix("$") + r"\Z", max_length=64)
]
#: orjson (the model's parser) reads integers up to 2**64 - 1 only; msgspec bounds stop at int64
_NonNegative = Annotated[int, Meta(ge=0, le=2**63 - 1)]
_Levels = tuple[tuple[str, str], ...]


class Slow(Exception):
    """The fast pass does not decide this payload: the pydantic model will."""


class _Record(msgspec.Struct, forbid_unknown_fields=True):
    instrument: _Instrument
    ts_event: _NonNegative
    ts_init: _NonNegative
    record_id: Annotated[str, Meta(min_length=1, max_length=128)]
    lineage_id: Annotated[str, Meta(max_length=128)]


class _BookUpdate(_Record):
    kind: BookUpdateKind
    bids: _Levels
    asks: _Levels
    first_update_id: _NonNegative
    final_update_id: _NonNegative


class _TradeTick(_Record):
    trade_id: str
    price: str
    size: str
    aggressor_side: Side


class _BookTop(_Record):
    bids: _Levels
    asks: _Levels
    best_bid: str | None
    best_ask: str | None
    mid: str | None
    spread: str | None
    imbalance: float | None
    microprice: str | None
    update_id: _NonNegative


#: decimal string -> its Decimal, for strings already checked as a price (finite, > 0) and
#: as a quantity (finite, >= 0): a book's prices and sizes recur from update to update, and
#: ``Decimal(text)`` and its checks were most of a decode (issue 27). A Decimal is
#: immutable, so one object for every occurrence of a string gives the same values (and
#: the same text: the cache is keyed by the exact string). Emptied when it reaches
#: :data:`_KEPT` strings (a bound on memory for any input).
_PRICES: dict[str, Decimal] = {}
_QUANTITIES: dict[str, Decimal] = {}
_KEPT = 1 << 16


def levels(raw: _Levels) -> tuple[tuple[Decimal, Decimal], ...]:
    """``(price, quantity)`` Decimals of string pairs; :class:`Slow` unless every price is
    finite and > 0 and every quantity finite and >= 0 (a NaN compares with an error)."""
    prices, quantities = _PRICES, _QUANTITIES
    out = []
    for p, q in raw:
        price = prices.get(p)
        if price is None:
            price = _checked(prices, p, _ZERO, strict=True)
        qty = quantities.get(q)
        if qty is None:
            qty = _checked(quantities, q, _ZERO, strict=False)
        out.append((price, qty))
    return tuple(out)


def _checked(kept: dict[str, Decimal], text: str, low: Decimal, *, strict: bool) -> Decimal:
    """``Decimal(text)``, checked (``> low`` when ``strict``, else ``>= low``; finite) and
    kept for the next time; :class:`Slow` if not valid."""
    value = Decimal(text)
    if not ((low < value) if strict else (low <= value)) or not value < _INF:
        raise Slow
    if len(kept) >= _KEPT:
        kept.clear()
    kept[text] = value
    return value


def _decimal(raw: str | None, *, price: bool) -> Decimal | None:
    """A price (finite, > 0) or an amount of money (finite); :class:`Slow` otherwise."""
    if raw is None:
        return None
    value = Decimal(raw)
    if not (_ZERO < value < _INF if price else value.is_finite()):
        raise Slow
    return value


def _book_update(d: dict[str, Any]) -> None:
    d["bids"] = levels(d["bids"])
    d["asks"] = levels(d["asks"])


def _trade_tick(d: dict[str, Any]) -> None:
    price, size = d["price"], d["size"]
    d["price"] = _PRICES.get(price) or _checked(_PRICES, price, _ZERO, strict=True)
    kept = _QUANTITIES.get(size)
    d["size"] = _checked(_QUANTITIES, size, _ZERO, strict=False) if kept is None else kept


def _book_top(d: dict[str, Any]) -> None:
    d["bids"] = levels(d["bids"])
    d["asks"] = levels(d["asks"])
    for name in ("best_bid", "best_ask", "mid", "microprice"):
        d[name] = _decimal(d[name], price=True)
    d["spread"] = _decimal(d["spread"], price=False)


#: a record type's decoder (every field required, no others; its Struct's fields in the
#: model's order) and what turns the decoded strings into the model's values
_DECODERS: dict[str, tuple[msgspec.json.Decoder[Any], Any]] = {
    name: (msgspec.json.Decoder(typed, strict=True), finish)
    for name, typed, finish in (
        ("BookUpdate", _BookUpdate, _book_update),
        ("BookTop", _BookTop, _book_top),
        ("TradeTick", _TradeTick, _trade_tick),
    )
}


#: the record types (``Record.TYPE``) with a fast pass
FAST_TYPES = frozenset(_DECODERS)


def decode_fast(cls: type[R], payload: bytes | str) -> R:
    """``cls`` from ``payload`` by the strict pass; :class:`Slow` when it does not decide."""
    decoder, finish = _DECODERS[cls.TYPE]
    try:
        values = msgspec.structs.asdict(decoder.decode(payload))  # in declared order
        finish(values)
        return from_fields(cls, values)
    except Slow:
        raise
    except Exception:  # msgspec's ValidationError/DecodeError, Decimal's InvalidOperation
        raise Slow from None


def from_fields(cls: type[R], values: dict[str, Any]) -> R:
    """A record from already-valid ``values`` holding every field in declared order (what
    pydantic's ``model_construct`` makes of them, without its per-field alias and default
    handling: 5 -> 1 µs for a ``book.top``). The order matters: ``Record.encode`` writes
    the fields in ``__dict__`` order."""
    record = cls.__new__(cls)
    _set(record, "__dict__", values)
    _set(record, "__pydantic_fields_set__", set(values))
    _set(record, "__pydantic_extra__", None)
    _set(record, "__pydantic_private__", None)
    return record
