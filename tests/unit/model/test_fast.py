"""The strict msgspec pass (``algostream.model.fast``) before the pydantic models: whatever it
accepts, the model accepts with the same values; whatever it refuses, the model decides
(with its own error naming the field); and the records the pipeline writes do take it."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_model_encode import BASE  # the same record header

from algostream.marketdata.frames import build
from algostream.model import BookTop, BookUpdate, RecordDecodeError, TradeTick
from algostream.model.fast import _DECODERS, FAST_TYPES, Slow, decode_fast
from algostream.model.records import Record

UPDATE = dict(
    BASE,
    kind="DELTA",
    bids=[["27000.10", "0.5"], ["26999", "0E-8"]],
    asks=[["27001", "1.25"]],
    first_update_id=100,
    final_update_id=102,
)
TOP = dict(
    BASE,
    bids=[["27000.10", "0.5"], ["26999", "2"]],
    asks=[["27001", "1.25"]],
    best_bid="27000.10",
    best_ask="27001",
    mid="27000.55",
    spread="0.90",
    imbalance=0.4,
    microprice="27000.4",
    update_id=102,
)
TRADE = dict(BASE, trade_id="8812", price="27000.10", size="0.00150000", aggressor_side="SELL")
SAMPLES: list[tuple[type[Record], dict[str, Any]]] = [
    (BookUpdate, UPDATE),
    (BookTop, TOP),
    (TradeTick, TRADE),
]


_SAMPLE: dict[type[Record], dict[str, Any]] = dict(SAMPLES)


def slow(cls: type[Record], payload: bytes) -> Record | None:
    """The model's own verdict (``None``: refused)."""
    try:
        return cls.model_validate(orjson.loads(payload))
    except Exception:
        return None


def fast(cls: type[Record], payload: bytes) -> Record | None:
    try:
        return decode_fast(cls, payload)
    except Slow:
        return None


def test_every_fast_type_lists_the_models_fields_in_order() -> None:
    assert {"BookUpdate", "BookTop", "TradeTick"} == FAST_TYPES
    for cls in (BookUpdate, BookTop, TradeTick):
        assert _DECODERS[cls.TYPE][0].type.__struct_fields__ == tuple(cls.model_fields)


@pytest.mark.parametrize(("cls", "fields"), SAMPLES)
def test_what_the_pipeline_writes_takes_the_fast_pass(
    cls: type[Record], fields: dict[str, Any]
) -> None:
    payload = cls.model_validate(fields).encode()
    got = fast(cls, payload)
    assert got is not None
    assert got == slow(cls, payload) == cls.decode(payload)
    assert got.encode() == payload
    price = got.price if cls is TradeTick else got.bids[0][0]  # type: ignore[attr-defined]
    assert type(price) is Decimal


def test_built_records_match_validated_ones() -> None:
    """``build`` with every field in order skips pydantic's construct; the record is the
    same (and encodes the same) as a validated one."""
    top = BookTop.model_validate(TOP)
    built = build(BookTop, **top.__dict__)
    assert built == top and built.encode() == top.encode()
    assert built.model_fields_set == top.model_fields_set
    partial = build(
        BookUpdate,
        **{k: v for k, v in BookUpdate.model_validate(UPDATE).__dict__.items() if k != "asks"},
    )
    assert partial.asks == ()  # out of the fast path: pydantic's construct fills defaults


@pytest.mark.parametrize(
    ("cls", "change", "field"),
    [
        (BookUpdate, {"instrument": "BINANCE:BTCUSDT\n"}, "instrument"),
        (BookUpdate, {"bids": [[27000.1, "1"]]}, "bids"),  # a binary float price
        (BookUpdate, {"bids": [["NaN", "1"]]}, "bids"),
        (BookUpdate, {"asks": [["1", "-1"]]}, "asks"),
        (BookUpdate, {"asks": [["0", "1"]]}, "asks"),
        (BookUpdate, {"kind": "PARTIAL"}, "kind"),
        (BookUpdate, {"final_update_id": -1}, "final_update_id"),
        (BookUpdate, {"surprise": 1}, "surprise"),
        (BookTop, {"best_bid": "Infinity"}, "best_bid"),
        (BookTop, {"spread": "sNaN"}, "spread"),
        (BookTop, {"record_id": ""}, "record_id"),
        (BookTop, {"imbalance": "x"}, "imbalance"),
        (BookTop, {"imbalance": "NaN"}, "imbalance"),  # a float field: finite only
        (BookTop, {"imbalance": "-inf"}, "imbalance"),
        (TradeTick, {"price": "0"}, "price"),
        (TradeTick, {"price": 27000.1}, "price"),  # a binary float price
        (TradeTick, {"size": "-1"}, "size"),
        (TradeTick, {"size": "NaN"}, "size"),
        (TradeTick, {"aggressor_side": "HOLD"}, "aggressor_side"),
        (TradeTick, {"trade_id": 42}, "trade_id"),
    ],
)
def test_what_both_refuse_gets_the_models_error(
    cls: type[Record], change: dict[str, Any], field: str
) -> None:
    fields = dict(_SAMPLE[cls]) | change
    payload = orjson.dumps(fields)
    assert fast(cls, payload) is None
    with pytest.raises(RecordDecodeError) as info:
        cls.decode(payload)
    assert info.value.field.split(".")[0] == field


@pytest.mark.parametrize(
    ("cls", "change"),
    [
        (BookUpdate, {"bids": [[27000, 1]]}),  # integers are exact: the model takes them
        (BookUpdate, {"ts_event": "17"}),  # the model is lax about int strings
        (BookUpdate, {"asks": []} | {"bids": []}),
        (BookTop, {"imbalance": 1}),
        (TradeTick, {"price": 27000}),
    ],
)
def test_what_only_the_model_takes_is_still_taken(
    cls: type[Record], change: dict[str, Any]
) -> None:
    fields = dict(_SAMPLE[cls]) | change
    payload = orjson.dumps(fields)
    assert cls.decode(payload) == slow(cls, payload)


def test_field_order_does_not_matter_and_missing_fields_go_to_the_model() -> None:
    payload = orjson.dumps(dict(reversed(list(UPDATE.items()))))
    got = fast(BookUpdate, payload)
    assert got is not None and got == slow(BookUpdate, payload)
    assert list(got.__dict__) == list(BookUpdate.model_fields)  # encodes in declared order
    no_asks = {k: v for k, v in UPDATE.items() if k != "asks"}
    assert fast(BookUpdate, orjson.dumps(no_asks)) is None
    assert BookUpdate.decode(orjson.dumps(no_asks)).asks == ()


ODD: list[Any] = [
    None,
    True,
    0,
    -1,
    1,
    2**64,
    1.5,
    1e300,
    "",
    " 1 ",
    "1_000",
    "0",
    "-0",
    "0E-8",
    "1e3",
    "-1",
    "NaN",
    "-Infinity",
    "Infinity",
    "abc",
    "DELTA",
    "SNAPSHOT",
    "BINANCE:X\n",
    "binance:btcusdt",
    "é" * 129,
    "x" * 128,
    [],
    [["1", "2"]],
    [["1", "2", "3"]],
    [[1, "2"]],
    [["1", None]],
    {},
]


@settings(max_examples=400, deadline=None)
@given(
    sample=st.sampled_from(SAMPLES),
    changes=st.dictionaries(
        st.sampled_from([*UPDATE, *TOP, *TRADE, "extra"]),
        st.one_of(
            st.sampled_from(ODD),
            st.lists(st.tuples(st.sampled_from(ODD), st.sampled_from(ODD)).map(list), max_size=3),
        ),
        max_size=3,
    ),
    drop=st.sets(st.sampled_from([*UPDATE, *TOP, *TRADE]), max_size=1),
)
def test_the_fast_pass_never_accepts_what_the_model_refuses_nor_changes_a_value(
    sample: tuple[type[Record], dict[str, Any]], changes: dict[str, Any], drop: set[str]
) -> None:
    cls, fields = sample
    data = {k: v for k, v in (fields | changes).items() if k not in drop}
    payload = json.dumps(data).encode()  # orjson refuses integers past 64 bits
    got, want = fast(cls, payload), slow(cls, payload)
    if got is not None:
        assert want is not None, f"fast pass took what the model refuses: {data}"
        assert got == want
        assert got.encode() == want.encode()
    decoded: Record | None
    try:
        decoded = cls.decode(payload)
    except RecordDecodeError:
        decoded = None
    # compared as JSON: the model takes "NaN" for a float (NaN != NaN)
    assert (decoded is None) == (want is None)
    assert decoded is None or want is None or decoded.encode() == want.encode()
