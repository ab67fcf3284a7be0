from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from algostream.model import (
    RECORD_TYPES,
    BookUpdate,
    BookUpdateKind,
    OrderRequest,
    OrderType,
    RecordDecodeError,
    Side,
    TradeTick,
)
from algostream.model.ids import child_id, derive_id

BASE = {
    "instrument": "BINANCE:BTCUSDT",
    "ts_event": 1,
    "ts_init": 2,
    "record_id": "r",
    "lineage_id": "l",
}

decimals = st.decimals(
    min_value=Decimal("0.00000001"),
    max_value=Decimal("1e9"),
    allow_nan=False,
    allow_infinity=False,
    places=8,
)


@given(price=decimals, size=decimals)
def test_trade_round_trips_exactly(price: Decimal, size: Decimal) -> None:
    tick = TradeTick(**BASE, trade_id="1", price=price, size=size, aggressor_side=Side.SELL)
    back = TradeTick.decode(tick.encode())
    assert back == tick
    assert back.price == price and str(back.size) == str(size)


def test_prices_are_decimal_strings_on_the_wire() -> None:
    upd = BookUpdate(
        **BASE,
        kind=BookUpdateKind.DELTA,
        bids=[("27000.10", "0.5")],
        asks=[("27000.20", "0")],
        first_update_id=5,
        final_update_id=7,
    )
    wire = orjson.loads(upd.encode())
    assert wire["bids"] == [["27000.10", "0.5"]]
    assert wire["asks"] == [["27000.20", "0"]]


def test_binary_float_price_is_refused_naming_the_field() -> None:
    data = BASE | {"trade_id": "1", "price": 1.1, "size": "1", "aggressor_side": "BUY"}
    with pytest.raises(RecordDecodeError) as err:
        TradeTick.decode(orjson.dumps(data))
    assert err.value.field == "price" and err.value.value == "1.1"
    assert "not exact" in str(err.value)


@pytest.mark.parametrize(
    ("patch", "field", "value"),
    [
        ({"price": "abc"}, "price", "'abc'"),
        ({"price": "-1"}, "price", "'-1'"),
        ({"size": "NaN"}, "size", "'NaN'"),
        ({"aggressor_side": "UP"}, "aggressor_side", "'UP'"),
        ({"instrument": "btcusdt"}, "instrument", "'btcusdt'"),
        ({"ts_event": "soon"}, "ts_event", "'soon'"),
        ({"extra": 1}, "extra", "1"),
    ],
)
def test_bad_payload_error_names_field_and_value(
    patch: dict[str, object], field: str, value: str
) -> None:
    data = BASE | {"trade_id": "1", "price": "1", "size": "1", "aggressor_side": "BUY"} | patch
    with pytest.raises(RecordDecodeError) as err:
        TradeTick.decode(orjson.dumps(data))
    assert err.value.field == field
    assert err.value.value == value
    assert field in str(err.value)


def test_missing_field_and_non_json_are_decode_errors() -> None:
    with pytest.raises(RecordDecodeError, match="trade_id"):
        TradeTick.decode(orjson.dumps(BASE | {"price": "1", "size": "1", "aggressor_side": "BUY"}))
    with pytest.raises(RecordDecodeError, match="not JSON"):
        TradeTick.decode(b"\xff{")
    with pytest.raises(RecordDecodeError, match="expected a JSON object"):
        TradeTick.decode(b"[1,2]")


def test_records_are_frozen() -> None:
    order = OrderRequest(
        **BASE,
        account="a",
        client_order_id="c1",
        strategy="s",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity="1",
    )
    with pytest.raises(Exception, match="frozen"):
        order.quantity = Decimal(2)  # type: ignore[misc]


def test_every_record_type_has_a_unique_registry_name() -> None:
    assert len(RECORD_TYPES) == len({cls.__name__ for cls in RECORD_TYPES.values()})
    assert all(name == cls.__name__ for name, cls in RECORD_TYPES.items())


@given(st.text(), st.text())
def test_child_id_is_derive_id_of_its_two_strings(kind: str, parent: str) -> None:
    assert child_id(kind, parent) == derive_id(kind, parent)
