"""``Record.encode`` (msgspec, straight from the fields) writes the JSON that pydantic's
own dump writes (``orjson.dumps(model_dump(mode="json"))``), for every record type (floats
may be spelled differently: ``1e+16`` for ``1e16``, the same number)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from algostream.model import RECORD_TYPES
from algostream.model.records import (
    Bar,
    BookIntegrity,
    BookTop,
    BookUpdate,
    ControlCommand,
    DeadLetter,
    FeatureVector,
    Liquidation,
    MarkPrice,
    OrderEvent,
    OrderRejected,
    OrderRequest,
    PnL,
    Position,
    RawFrame,
    Record,
    RiskEvent,
    Signal,
    TradeTick,
    VolumeSpike,
)

BASE: dict[str, Any] = {
    "instrument": "BINANCE:BTCUSDT",
    "ts_event": 1_700_000_000_123_456_789,
    "ts_init": 1_700_000_000_123_456_999,
    "record_id": "rec-1",
    "lineage_id": "lin-1",
}
ORDER = OrderRequest(
    **BASE,
    account="paper-1",
    client_order_id="c-1",
    strategy="rsi",
    side="SELL",
    order_type="LIMIT",
    quantity="0.00100000",
    limit_price="1E+2",
    arrival_mid=None,
)
ACCOUNT = dict(BASE, instrument="ACCOUNT:PAPER-1")
SAMPLES: list[Record] = [
    RawFrame(**BASE, venue="BINANCE", stream="btcusdt@depth", payload='{"é": "\\u00e9 ✓"}'),
    TradeTick(**BASE, trade_id="42", price="27123.45", size="0E-8", aggressor_side="BUY"),
    BookUpdate(
        **BASE,
        kind="DELTA",
        bids=[("27000.10", "0.5"), ("26999", "0")],
        asks=[],
        first_update_id=5,
        final_update_id=7,
    ),
    BookTop(
        **BASE,
        bids=[("27000.10", "0.5")],
        asks=[("27000.20", "1.25")],
        best_bid="27000.10",
        best_ask="27000.20",
        mid="27000.15",
        spread="0.10",
        imbalance=0.1 + 0.2,
        microprice="27000.1666666666666666666666667",
        update_id=7,
    ),
    BookTop(**BASE, bids=[], asks=[], update_id=0),
    BookIntegrity(**BASE, kind="GAP", detail="expected 8", expected_update_id=8),
    MarkPrice(
        **BASE,
        mark_price="27001.5",
        index_price="27000.9",
        estimated_settle_price="27000.1",
        funding_rate="-0.00012500",
        next_funding_ns=1_700_000_000_000_000_000,
    ),
    Liquidation(
        **BASE,
        side="SELL",
        quantity="0.014",
        price="9910",
        avg_price="9910",
        last_filled_qty="0.014",
        filled_qty="0.014",
        status="FILLED",
    ),
    Bar(
        **BASE,
        interval="1s",
        start_ns=1,
        end_ns=2,
        open="1",
        high="2.5",
        low="0.5",
        close="2",
        volume="3.000",
        quote_volume="-0",
        trades=3,
    ),
    FeatureVector(
        **BASE,
        interval="1s",
        close="2",
        values={"rsi_14": 1e-7, "macd": -123456.789e10, "nan": float("nan"), "none": None},
    ),
    Signal(**BASE, strategy="rsi", side="BUY", strength=1.0, confidence=0.0, reason="x", price="1"),
    ORDER,
    OrderRejected(
        **BASE,
        account="paper-1",
        client_order_id="c-1",
        reason="max_position",
        limit="1",
        value="2",
        message="too long",
        order=ORDER,
    ),
    OrderEvent(
        **BASE,
        account="paper-1",
        client_order_id="c-1",
        status="FILLED",
        side="BUY",
        order_type="MARKET",
        quantity="0.1",
        fill_price="27000.5",
        fill_qty="0.1",
        cum_qty="0.1",
        fee="0.0027",
        fee_currency="USDT",
        slippage="-0.05",
    ),
    Position(
        **BASE,
        account="paper-1",
        quantity="-0.3",
        avg_price="100",
        cost_method="FIFO",
        realized_pnl="1.5",
        unrealized_pnl="-2",
        fees="0.01",
    ),
    PnL(
        **ACCOUNT,
        account="paper-1",
        realized_pnl="1",
        unrealized_pnl="2",
        fees="0.1",
        equity="10000.9",
        peak_equity="10001",
        drawdown="0.1",
        exposure="0",
    ),
    RiskEvent(
        **BASE,
        kind="BREAKER_TRIPPED",
        state="HALTED",
        previous_state="ACTIVE",
        actor="risk",
        reason="drawdown",
        detail={"drawdown": "0.05"},
    ),
    ControlCommand(**dict(BASE, instrument="ALL:*"), action="HALT", actor="ops", reason="test"),
    DeadLetter(
        **BASE,
        source_topic="md.book",
        partition=0,
        offset=12,
        source_key=None,
        payload="{",
        error_type="RecordDecodeError",
        reason="not JSON",
        agent="book",
    ),
    VolumeSpike(
        **BASE,
        window_start_ns=1_700_000_000_000_000_000,
        window_ns=1_000_000_000,
        volume="31.5",
        average="1.25",
        ratio="25.2",
        trades=4,
    ),
]


def pydantic_json(record: Record) -> bytes:
    return orjson.dumps(record.model_dump(mode="json"))


def test_every_record_type_is_sampled() -> None:
    assert {type(r) for r in SAMPLES} == set(RECORD_TYPES.values())


def test_encode_writes_pydantics_json_byte_for_byte() -> None:
    for record in SAMPLES:
        assert record.encode() == pydantic_json(record), type(record).__name__
        assert type(record).decode(record.encode()) == record


levels = st.lists(
    st.tuples(
        st.decimals(min_value="0.00000001", max_value="1e12", allow_nan=False, places=8),
        st.decimals(min_value=0, max_value="1e9", allow_nan=False, places=8),
    ),
    max_size=10,
)


@given(
    bids=levels,
    asks=levels,
    imbalance=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    features=st.dictionaries(
        st.text(max_size=8), st.one_of(st.none(), st.floats(allow_infinity=False)), max_size=5
    ),
)
def test_encode_matches_on_any_levels_and_floats(
    bids: list[tuple[Decimal, Decimal]],
    asks: list[tuple[Decimal, Decimal]],
    imbalance: float | None,
    features: dict[str, float | None],
) -> None:
    # floats may be spelled differently (1e+16 vs 1e16): the same JSON values, and exact
    top = BookTop(**BASE, bids=bids, asks=asks, imbalance=imbalance, update_id=1)
    assert orjson.loads(top.encode()) == orjson.loads(pydantic_json(top))
    assert BookTop.decode(top.encode()) == top
    fv = FeatureVector(**BASE, interval="1m", close="1", values=features)
    assert orjson.loads(fv.encode()) == orjson.loads(pydantic_json(fv))
    assert FeatureVector.decode(fv.encode()) == fv


@given(sides=st.lists(st.tuples(levels, levels), min_size=1, max_size=6))
def test_a_top_built_from_the_books_tuples_encodes_the_same_bytes_as_pydantic(
    sides: list[tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]],
) -> None:
    # the book stage builds tops around the book's own tuples and keeps a side's tuple
    # while the side is unchanged; BookTop.encode keeps each tuple's JSON: a run of tops
    # sharing and replacing sides must give pydantic's bytes every time
    from algostream.marketdata.frames import build

    bids, asks = tuple(sides[0][0]), tuple(sides[0][1])
    for i, (new_bids, new_asks) in enumerate(sides * 2):
        if i % 2:  # every other top replaces its sides; the others share the last ones
            bids, asks = tuple(new_bids), tuple(new_asks)
        fields = {k: v for k, v in BASE.items()} | {"update_id": i}
        top = build(BookTop, **fields, bids=bids, asks=asks)
        assert top.encode() == pydantic_json(top)
