"""Binance USD-M futures frames written from the documented formats, and the futures
book sync: the spot rule reports a false GAP on them, the futures rule (``pu``) does not."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from algostream.marketdata.binance_usdm import (
    parse_usdm_depth,
    parse_usdm_frame,
    require_pu_absent,
    usdm_depth_url,
    usdm_stream_names,
    usdm_stream_url,
)
from algostream.marketdata.errors import FrameError
from algostream.marketdata.frames import FrameKind
from algostream.marketdata.processor import BookProcessor
from algostream.marketdata.sync import BinanceBookSync
from algostream.marketdata.usdm_sync import UsdmBookSync
from algostream.model import BookIntegrity, BookUpdate, IntegrityKind, MarkPrice, Side

INST = "BINANCE_USDM:BTCUSDT"
# the USD-M "Diff. Book Depth Streams" example, then two more in the same shape
DIFFS = [
    {"e": "depthUpdate", "E": 123456789, "T": 123456788, "s": "BTCUSDT", "U": 157, "u": 160,
     "pu": 149, "b": [["0.0024", "10"]], "a": [["0.0026", "100"]]},
    {"e": "depthUpdate", "E": 123456889, "T": 123456888, "s": "BTCUSDT", "U": 165, "u": 171,
     "pu": 160, "b": [["0.0024", "0"], ["0.0023", "5"]], "a": []},
    {"e": "depthUpdate", "E": 123456989, "T": 123456988, "s": "BTCUSDT", "U": 178, "u": 180,
     "pu": 171, "b": [], "a": [["0.0026", "90"]]},
]  # fmt: skip
SNAPSHOT = {"lastUpdateId": 158, "E": 123456780, "T": 123456779,
            "bids": [["0.0024", "7"]], "asks": [["0.0026", "101"], ["0.0027", "3"]]}  # fmt: skip
MARK = {"e": "markPriceUpdate", "E": 1562305380000, "s": "BTCUSDT", "p": "11794.15000000",
        "i": "11784.62659091", "P": "11784.25641265", "r": "0.00038167",
        "T": 1562306400000}  # fmt: skip
AGG = {"e": "aggTrade", "E": 123456789, "s": "BTCUSDT", "a": 5933014, "p": "0.001",
       "q": "100", "f": 100, "l": 105, "T": 123456785, "m": True}  # fmt: skip


def combined(stream: str, data: dict[str, object]) -> bytes:
    return orjson.dumps({"stream": stream, "data": data})


def diffs() -> list[tuple[BookUpdate, int]]:
    out = []
    for i, d in enumerate(DIFFS):
        f = parse_usdm_frame(combined("btcusdt@depth@100ms", d), recv_ns=1000 + i)
        assert f.frame.book[0].instrument == INST
        out.append((f.frame.book[0], f.prev_final_ids[0]))
    return out


def snapshot() -> BookUpdate:
    return parse_usdm_depth(orjson.dumps(SNAPSHOT), "BTCUSDT", recv_ns=999).book[0]


def test_stream_names_and_urls() -> None:
    assert usdm_stream_names(["ETHUSDT"], mark_price_speed="1s") == [
        "ethusdt@aggTrade",
        "ethusdt@depth@100ms",
        "ethusdt@markPrice@1s",
        "ethusdt@forceOrder",
    ]
    assert usdm_stream_url("ws://h:1/fstream", ["X1"]).startswith("ws://h:1/fstream/stream?")
    assert usdm_depth_url("https://fapi.binance.com", "btcusdt", 500).endswith(
        "/fapi/v1/depth?symbol=BTCUSDT&limit=500"
    )
    with pytest.raises(ValueError, match="limit=5000"):
        usdm_depth_url("x", "BTCUSDT", 5000)


def test_spot_rule_reports_a_false_gap_on_futures_diffs() -> None:
    spot = BinanceBookSync(INST)
    for diff, _ in diffs():
        spot.on_diff(diff)
    out = spot.on_snapshot(snapshot())
    assert any(isinstance(r, BookIntegrity) and r.kind is IntegrityKind.GAP for r in out)


def test_futures_rule_chains_on_pu_without_a_gap() -> None:
    sync = UsdmBookSync(INST)
    for diff, pu in diffs():
        assert sync.on_diff(diff, pu) == []
    out = sync.on_snapshot(snapshot())
    assert [r.kind for r in out] == ["SNAPSHOT", "DELTA", "DELTA", "DELTA"]
    assert sync.gaps == 0 and sync.last_update_id == 180


def test_diffs_older_than_the_snapshot_are_dropped_and_the_first_must_span_it() -> None:
    sync = UsdmBookSync(INST)
    for diff, pu in diffs():
        sync.on_diff(diff, pu)
    newer = dict(SNAPSHOT, lastUpdateId=171)  # u=160 < 171 dropped; 165<=171<=171 spans
    out = sync.on_snapshot(parse_usdm_depth(orjson.dumps(newer), "BTCUSDT", 5).book[0])
    assert [r.final_update_id for r in out if isinstance(r, BookUpdate)] == [171, 171, 180]


def test_a_snapshot_older_than_the_buffer_is_refused() -> None:
    sync = UsdmBookSync(INST)
    diff, pu = diffs()[1]
    sync.on_diff(diff, pu)  # U=165
    assert sync.on_snapshot(snapshot()) == []  # lastUpdateId 158 < U
    assert sync.needs_snapshot and sync.rejected_snapshots == 1


def test_a_broken_pu_chain_is_a_gap_and_a_new_snapshot_resyncs() -> None:
    sync = UsdmBookSync(INST)
    d = diffs()
    sync.on_diff(*d[0])
    sync.on_snapshot(snapshot())
    out = sync.on_diff(d[2][0], d[2][1])  # pu=171, chain is at 160: diff 2 was lost
    assert len(out) == 1 and isinstance(out[0], BookIntegrity)
    gap = out[0]
    assert gap.kind is IntegrityKind.GAP and gap.expected_update_id == 160
    assert gap.received_update_id == 171 and "pu=171" in gap.detail
    assert sync.needs_snapshot
    again = sync.on_snapshot(parse_usdm_depth(orjson.dumps(dict(SNAPSHOT, lastUpdateId=179)),
                                              "BTCUSDT", 7).book[0])  # fmt: skip
    assert [r.kind for r in again] == ["SNAPSHOT", "DELTA", IntegrityKind.RESYNCED]


def test_a_duplicate_diff_is_dropped_not_a_gap() -> None:
    sync = UsdmBookSync(INST)
    d = diffs()
    sync.on_diff(*d[0])
    sync.on_snapshot(snapshot())
    assert sync.on_diff(*d[1]) == [d[1][0]]
    assert sync.on_diff(*d[1]) == [] and sync.on_diff(*d[0]) == []
    assert sync.gaps == 0


def test_the_book_stage_does_not_false_alarm_on_futures_diffs() -> None:
    proc = BookProcessor(5)
    records = [snapshot()] + [d for d, _ in diffs()[1:]]
    out = [r for u in records for r in proc.on_update(u, 1)]
    assert not [r for r in out if isinstance(r, BookIntegrity) and r.kind is IntegrityKind.GAP]


def test_mark_price_frame() -> None:
    f = parse_usdm_frame(combined("btcusdt@markPrice", MARK), recv_ns=9)
    (mark,) = f.marks
    assert isinstance(mark, MarkPrice) and mark.instrument == INST
    assert mark.mark_price == Decimal("11794.15000000")
    assert mark.index_price == Decimal("11784.62659091")
    assert mark.estimated_settle_price == Decimal("11784.25641265")
    assert mark.funding_rate == Decimal("0.00038167")
    assert mark.next_funding_ns == 1562306400000 * 1_000_000
    assert MarkPrice.decode(mark.encode()) == mark
    neg = parse_usdm_frame(orjson.dumps(dict(MARK, r="-0.00010000")), recv_ns=9)
    assert neg.marks[0].funding_rate == Decimal("-0.0001")


def test_agg_trade_frame() -> None:
    (trade,) = parse_usdm_frame(combined("btcusdt@aggTrade", AGG), recv_ns=9).frame.trades
    assert trade.instrument == INST and trade.trade_id == "5933014"
    assert trade.price == Decimal("0.001") and trade.aggressor_side is Side.SELL


@pytest.mark.parametrize(
    ("doc", "field", "value"),
    [
        ({k: v for k, v in DIFFS[0].items() if k != "pu"}, "data.pu", "<missing>"),
        (dict(DIFFS[0], pu=157), "data.pu", "157"),
        (dict(MARK, p=11794.15), "data.p", "11794.15"),
        (dict(MARK, r="--1"), "data.r", "'-1'"),
        (dict(AGG, e="forceOrderX"), "data.e", "'forceOrderX'"),
    ],
)
def test_bad_frames_name_the_field_and_value(
    doc: dict[str, object], field: str, value: str
) -> None:
    with pytest.raises(FrameError) as info:
        parse_usdm_frame(combined("btcusdt@x", doc), recv_ns=1)
    assert info.value.field == field and info.value.value == value


def test_a_spot_frame_on_a_futures_connection_and_the_reverse_are_refused() -> None:
    spot = {k: v for k, v in DIFFS[0].items() if k not in ("pu", "T")}
    with pytest.raises(FrameError, match="spot frame on a futures connection"):
        parse_usdm_frame(combined("btcusdt@depth@100ms", spot), recv_ns=1)
    with pytest.raises(FrameError, match="futures frame on a spot connection"):
        require_pu_absent(combined("btcusdt@depth@100ms", DIFFS[0]).decode())
    require_pu_absent(combined("btcusdt@depth@100ms", spot).decode())


def test_control_frames() -> None:
    assert parse_usdm_frame(b'{"result":null,"id":3}', 1).frame.kind is FrameKind.ACK
    shut = parse_usdm_frame(b'{"e":"serverShutdown","E":5}', 1).frame
    assert shut.kind is FrameKind.SHUTDOWN


def test_a_live_snapshot_at_the_chain_does_not_break_it() -> None:
    sync = UsdmBookSync(INST)
    d = diffs()
    sync.on_diff(*d[0])
    sync.on_snapshot(snapshot())
    sync.on_diff(*d[1])  # chain at u=171
    at_chain = parse_usdm_depth(orjson.dumps(dict(SNAPSHOT, lastUpdateId=171)), "BTCUSDT", 9)
    assert [r.kind for r in sync.on_snapshot(at_chain.book[0])] == ["SNAPSHOT"]
    assert sync.on_diff(*d[2]) == [d[2][0]] and sync.gaps == 0  # pu=171 continues
    ahead = parse_usdm_depth(orjson.dumps(dict(SNAPSHOT, lastUpdateId=185)), "BTCUSDT", 9)
    sync.on_snapshot(ahead.book[0])
    later = d[2][0].model_copy(update={"first_update_id": 183, "final_update_id": 190})
    assert sync.on_diff(later, 180) == [later] and sync.last_update_id == 190


#: Binance's documented ``forceOrder`` example (USD-M "Liquidation Order Streams")
FORCE_ORDER = {
    "e": "forceOrder", "E": 1568014460893,
    "o": {"s": "BTCUSDT", "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "9910",
          "ap": "9910", "X": "FILLED", "l": "0.014", "z": "0.014", "T": 1568014460893},
}  # fmt: skip


def test_force_order_is_a_liquidation_and_a_bad_one_names_its_field() -> None:
    from algostream.model import Liquidation

    f = parse_usdm_frame(orjson.dumps({"stream": "btcusdt@forceOrder", "data": FORCE_ORDER}), 5)
    (liq,) = f.liquidations
    assert isinstance(liq, Liquidation) and liq.instrument == "BINANCE_USDM:BTCUSDT"
    assert (liq.side, liq.quantity, liq.price, liq.avg_price, liq.status) == (
        Side.SELL, Decimal("0.014"), Decimal("9910"), Decimal("9910"), "FILLED",
    )  # fmt: skip
    assert liq.ts_event == 1568014460893 * 1_000_000 and liq.lineage_id == f.frame.raw.record_id
    bad = {**FORCE_ORDER, "o": {**FORCE_ORDER["o"], "q": "-1"}}  # type: ignore[dict-item]
    with pytest.raises(FrameError, match=r"o\.q"):
        parse_usdm_frame(orjson.dumps(bad), 5)
