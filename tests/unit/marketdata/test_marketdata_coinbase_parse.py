"""Coinbase Advanced Trade parsing and sequence tracking, on messages shaped as documented."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
import pytest

from algostream.marketdata.coinbase import parse_message, subscribe_message, subscribe_messages
from algostream.marketdata.errors import FrameError
from algostream.marketdata.frames import FrameKind, rfc3339_to_ns
from algostream.marketdata.sync import CoinbaseSequenceTracker
from algostream.model import (
    BookIntegrity,
    BookUpdate,
    BookUpdateKind,
    IntegrityKind,
    Side,
    TradeTick,
)

TS = "2023-02-09T20:32:50.714964855Z"
TS_NS = 1675974770_714964855  # 2023-02-09T20:32:50Z = 1675974770 (date -u -d ... +%s)


def msg(channel: str, seq: int, events: list[dict[str, Any]], ts: str = TS) -> str:
    return json.dumps(
        {
            "channel": channel,
            "client_id": "",
            "timestamp": ts,
            "sequence_num": seq,
            "events": events,
        }
    )


def l2(seq: int, kind: str, product: str, *updates: tuple[str, str, str]) -> str:
    ups = [
        {"side": s, "event_time": TS, "price_level": p, "new_quantity": q} for s, p, q in updates
    ]
    return msg("l2_data", seq, [{"type": kind, "product_id": product, "updates": ups}])


def trades(seq: int, kind: str = "update", side: str = "BUY") -> str:
    items = [
        {
            "trade_id": "000000000",
            "product_id": "ETH-USD",
            "price": "1260.01",
            "size": "0.3",
            "side": side,
            "time": "2019-08-14T20:42:27.265Z",
        }
    ]
    return msg("market_trades", seq, [{"type": kind, "trades": items}])


def test_rfc3339_nanoseconds_are_exact() -> None:
    assert rfc3339_to_ns(TS, "t") == TS_NS
    assert rfc3339_to_ns("2023-02-09T20:32:50Z", "t") == TS_NS // 10**9 * 10**9
    assert rfc3339_to_ns("2023-02-09T21:32:50.5+01:00", "t") == TS_NS // 10**9 * 10**9 + 5 * 10**8
    with pytest.raises(FrameError, match="RFC 3339"):
        rfc3339_to_ns("yesterday", "timestamp")


def test_level2_snapshot_and_update_become_book_updates() -> None:
    snap = parse_message(
        l2(1, "snapshot", "BTC-USD", ("bid", "21921.73", "0.5"), ("offer", "21921.74", "1.25")), 10
    )
    (s,) = snap.book
    assert (s.kind, s.instrument, s.first_update_id, s.final_update_id) == (
        BookUpdateKind.SNAPSHOT,
        "COINBASE:BTC-USD",
        1,
        1,
    )
    assert s.bids == ((Decimal("21921.73"), Decimal("0.5")),)
    assert s.asks == ((Decimal("21921.74"), Decimal("1.25")),)
    assert (s.ts_event, s.ts_init) == (TS_NS, 10)
    up = parse_message(l2(2, "update", "BTC-USD", ("offer", "21921.74", "0")), 11)
    assert up.book[0].kind is BookUpdateKind.DELTA and up.book[0].asks[0][1] == 0
    assert up.raw.instrument == "COINBASE:BTC-USD" and up.sequence_num == 2
    assert BookUpdate.decode(s.encode()) == s


def test_same_sequence_on_a_new_connection_gets_a_new_record_id() -> None:
    first = parse_message(l2(1, "snapshot", "BTC-USD", ("bid", "1", "1")), 1).book[0]
    again = parse_message(l2(1, "snapshot", "BTC-USD", ("bid", "1", "1")), 2).book[0]
    later = parse_message(
        msg(
            "l2_data",
            1,
            [{"type": "snapshot", "product_id": "BTC-USD", "updates": []}],
            ts="2023-02-09T21:00:00Z",
        ),
        3,
    ).book[0]
    assert first.record_id == again.record_id != later.record_id


def test_market_trades_side_is_aggressor_by_default_and_flippable() -> None:
    f = parse_message(trades(5, side="SELL"), 1)
    (t,) = f.trades
    assert (t.instrument, t.trade_id, t.price, t.size) == (
        "COINBASE:ETH-USD",
        "000000000",
        Decimal("1260.01"),
        Decimal("0.3"),
    )
    assert t.aggressor_side is Side.SELL
    assert t.ts_event == 1565815347_265000000
    assert (
        parse_message(trades(5, side="SELL"), 1, trade_side="maker").trades[0].aggressor_side
        is Side.BUY
    )
    assert TradeTick.decode(t.encode()) == t


def test_market_trades_snapshot_is_skipped_unless_asked_for() -> None:
    assert parse_message(trades(0, kind="snapshot"), 1).trades == []
    assert (
        len(parse_message(trades(0, kind="snapshot"), 1, include_trade_snapshot=True).trades) == 1
    )


def test_heartbeats_subscriptions_and_errors() -> None:
    hb = parse_message(
        msg(
            "heartbeats",
            7,
            [
                {
                    "current_time": "2023-06-23 20:31:56.121 +0000 UTC m=+91717.5",
                    "heartbeat_counter": 3749,
                }
            ],
        ),
        1,
    )
    assert hb.kind is FrameKind.HEARTBEAT and hb.sequence_num == 7
    subs = parse_message(msg("subscriptions", 0, [{"subscriptions": {"level2": ["BTC-USD"]}}]), 1)
    assert subs.kind is FrameKind.ACK and subs.subscriptions == {"level2": ["BTC-USD"]}
    err = parse_message('{"type":"error","message":"failure to subscribe"}', 1)
    assert err.kind is FrameKind.ERROR and err.sequence_num is None


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ("{", "<frame>"),
        (msg("ticker_batch", 1, []), "channel"),
        (json.dumps({"channel": "l2_data", "timestamp": TS, "events": []}), "<frame>.sequence_num"),
        (msg("l2_data", -1, []), "sequence_num"),
        (l2(1, "refresh", "BTC-USD"), "events[0].type"),
        (l2(1, "update", "BTC-USD", ("ask", "1", "1")), "events[0].updates[0].side"),
        (l2(1, "update", "BTC-USD", ("bid", "1", "-2")), "events[0].updates[0].new_quantity"),
        (
            msg(
                "l2_data",
                1,
                [
                    {
                        "type": "update",
                        "product_id": "BTC-USD",
                        "updates": [{"side": "bid", "price_level": 1.5, "new_quantity": "1"}],
                    }
                ],
            ),
            "events[0].updates[0].price_level",
        ),
        (msg("l2_data", 1, [], ts="not a time"), "timestamp"),
        (trades(1, side="buy"), "events[0].trades[0].side"),
    ],
)
def test_malformed_messages_name_the_field(frame: str, field: str) -> None:
    with pytest.raises(FrameError) as info:
        parse_message(frame, 1)
    assert info.value.field == field and field in str(info.value)


def test_subscribe_messages() -> None:
    assert orjson.loads(subscribe_message("level2", ["btc-usd"])) == {
        "type": "subscribe",
        "product_ids": ["BTC-USD"],
        "channel": "level2",
    }
    msgs = [orjson.loads(m) for m in subscribe_messages(["ETH-USD"], jwt="tok")]
    assert [m["channel"] for m in msgs] == ["level2", "market_trades", "heartbeats"]
    assert all(m["jwt"] == "tok" for m in msgs)
    assert orjson.loads(subscribe_message("level2", ["X-Y"], unsubscribe=True))["type"] == (
        "unsubscribe"
    )
    with pytest.raises(ValueError, match="product"):
        subscribe_message("level2", [])
    with pytest.raises(ValueError, match="channel"):
        subscribe_message("level3", ["BTC-USD"])


# --------------------------------------------------------------------------- sequence tracker


def feed(tracker: CoinbaseSequenceTracker, frame: str) -> list:
    return tracker.on_frame(parse_message(frame, 1))


def test_contiguous_sequence_passes_everything_through() -> None:
    tr = CoinbaseSequenceTracker()
    assert feed(tr, msg("subscriptions", 0, [{"subscriptions": {}}])) == []
    out = feed(tr, l2(1, "snapshot", "BTC-USD", ("bid", "10", "1")))
    assert [r.kind for r in out] == [BookUpdateKind.SNAPSHOT]
    assert len(feed(tr, l2(2, "update", "BTC-USD", ("bid", "10", "2")))) == 1
    assert len(feed(tr, trades(3))) == 1
    assert tr.gaps == 0 and tr.take_resubscribe() == []


def test_sequence_gap_marks_products_out_of_sync_until_snapshot() -> None:
    tr = CoinbaseSequenceTracker()
    feed(tr, l2(1, "snapshot", "BTC-USD", ("bid", "10", "1")))
    feed(tr, l2(2, "snapshot", "ETH-USD", ("bid", "1", "1")))
    out = feed(tr, l2(5, "update", "BTC-USD", ("bid", "10", "3")))  # 3 and 4 were lost
    gaps = [r for r in out if isinstance(r, BookIntegrity)]
    assert {(g.instrument, g.kind, g.expected_update_id, g.received_update_id) for g in gaps} == {
        ("COINBASE:BTC-USD", IntegrityKind.GAP, 3, 5),
        ("COINBASE:ETH-USD", IntegrityKind.GAP, 3, 5),
    }
    assert not [r for r in out if isinstance(r, BookUpdate)]  # the delta is withheld
    assert tr.out_of_sync == {"COINBASE:BTC-USD", "COINBASE:ETH-USD"}
    assert tr.take_resubscribe() == ["BTC-USD", "ETH-USD"]
    assert tr.take_resubscribe() == []
    assert len(feed(tr, trades(6))) == 1  # trades still flow
    assert feed(tr, l2(7, "update", "ETH-USD", ("bid", "1", "2"))) == []
    out = feed(tr, l2(8, "snapshot", "ETH-USD", ("bid", "1", "5")))
    assert [type(r).__name__ for r in out] == ["BookUpdate", "BookIntegrity"]
    assert out[1].kind is IntegrityKind.RESYNCED
    assert tr.out_of_sync == {"COINBASE:BTC-USD"}
    assert len(feed(tr, l2(9, "update", "ETH-USD", ("bid", "1", "6")))) == 1
    assert tr.withheld == 2


def test_reset_on_new_connection_restarts_the_counter() -> None:
    tr = CoinbaseSequenceTracker()
    feed(tr, l2(40, "snapshot", "BTC-USD", ("bid", "10", "1")))
    tr.reset()
    out = feed(tr, l2(0, "snapshot", "BTC-USD", ("bid", "10", "1")))
    assert tr.gaps == 0 and len(out) == 1


def test_the_connection_epoch_is_part_of_a_book_update_id() -> None:
    frame = l2(1, "snapshot", "BTC-USD", ("bid", "1", "1"))
    on_a = parse_message(frame, 1, epoch=100).book[0]
    again_on_a = parse_message(frame, 2, epoch=100).book[0]  # the same message re-parsed
    on_b = parse_message(frame, 3, epoch=200).book[0]  # the same numbers on a new connection
    assert on_a.record_id == again_on_a.record_id != on_b.record_id
