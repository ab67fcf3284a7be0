"""Binance frame parsing, checked against the recorded Binance.US capture."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import orjson
import pytest
from marketdata_testkit import http_lines, ws_lines, ws_url

from algostream.marketdata.binance import (
    combined_stream_url,
    depth_snapshot_url,
    parse_depth_snapshot,
    parse_exchange_info,
    parse_frame,
    stream_names,
    subscribe_message,
)
from algostream.marketdata.errors import FrameError, MarketDataError
from algostream.marketdata.frames import FrameKind
from algostream.model import BookUpdate, BookUpdateKind, RawFrame, Side, TradeTick


def _stdlib(frame: str) -> dict:
    return json.loads(frame, parse_float=Decimal)


def test_every_captured_frame_parses_into_the_records_its_stream_names() -> None:
    lines = ws_lines()
    expected = Counter(_stdlib(line.frame)["stream"].split("@")[1] for line in lines)
    got: Counter[str] = Counter()
    for line in lines:
        f = parse_frame(line.frame, line.recv_ns)
        assert f.kind is FrameKind.MARKET
        got["depth"] += len(f.book)
        got["aggTrade"] += len(f.trades)
        got["bookTicker"] += len(f.tickers)
        got["kline_1m"] += len(f.klines)
    assert got == expected
    assert expected == {"depth": 336, "bookTicker": 128, "aggTrade": 11, "kline_1m": 5}


def test_captured_depth_updates_keep_exchange_ids_levels_and_times() -> None:
    for line in ws_lines():
        data = _stdlib(line.frame)["data"]
        if data.get("e") != "depthUpdate":
            continue
        (update,) = parse_frame(line.frame.encode(), line.recv_ns).book
        assert update.kind is BookUpdateKind.DELTA
        assert update.instrument == f"BINANCE:{data['s']}"
        assert (update.first_update_id, update.final_update_id) == (data["U"], data["u"])
        assert update.bids == tuple((Decimal(p), Decimal(q)) for p, q in data["b"])
        assert update.asks == tuple((Decimal(p), Decimal(q)) for p, q in data["a"])
        assert update.ts_event == data["E"] * 1_000_000
        assert update.ts_init == line.recv_ns


def test_captured_agg_trades_take_aggressor_from_buyer_is_maker() -> None:
    trades = []
    for line in ws_lines():
        data = _stdlib(line.frame)["data"]
        if data.get("e") != "aggTrade":
            continue
        (tick,) = parse_frame(line.frame, line.recv_ns).trades
        assert tick.trade_id == str(data["a"])
        assert (tick.price, tick.size) == (Decimal(data["p"]), Decimal(data["q"]))
        assert tick.ts_event == data["T"] * 1_000_000
        assert tick.aggressor_side is (Side.SELL if data["m"] else Side.BUY)
        trades.append(tick)
    assert {t.aggressor_side for t in trades} == {Side.BUY, Side.SELL}


def test_records_built_from_the_capture_are_valid_wire_records() -> None:
    seen = set()
    for line in ws_lines():
        f = parse_frame(line.frame, line.recv_ns)
        assert RawFrame.decode(f.raw.encode()) == f.raw
        assert f.raw.payload == line.frame
        for rec in (*f.trades, *f.book):
            assert type(rec).decode(rec.encode()) == rec
            assert rec.lineage_id == f.raw.record_id
            assert rec.record_id not in seen
            seen.add(rec.record_id)


def test_parsing_is_deterministic() -> None:
    line = ws_lines()[3]
    assert parse_frame(line.frame, line.recv_ns) == parse_frame(line.frame, line.recv_ns)


def test_captured_snapshots_parse_with_last_update_id() -> None:
    for h in http_lines():
        body = orjson.loads(h.body)
        f = parse_depth_snapshot(h.body, h.symbol, h.recv_ns)
        (snap,) = f.book
        assert f.kind is FrameKind.SNAPSHOT
        assert snap.kind is BookUpdateKind.SNAPSHOT
        assert snap.first_update_id == snap.final_update_id == body["lastUpdateId"]
        assert len(snap.bids) == len(body["bids"]) and len(snap.asks) == len(body["asks"])
        assert snap.bids[0] == (Decimal(body["bids"][0][0]), Decimal(body["bids"][0][1]))
        assert BookUpdate.decode(snap.encode()) == snap


def test_capture_url_matches_the_stream_name_builder() -> None:
    url = ws_url().split(" <-> ")[0]
    recorded = set(url.split("streams=")[1].split("/"))
    symbols = ["CRVUSDT", "COMPUSDT", "OMGBUSD", "ZRXUSDT"]
    built = set(stream_names(symbols, trades="aggTrade", book_ticker=True))
    assert built == {s for s in recorded if "kline" not in s}


def test_stream_names_and_urls() -> None:
    assert stream_names(["BTCUSDT"]) == [
        "btcusdt@trade",
        "btcusdt@depth@100ms",
        "btcusdt@bookTicker",
    ]
    assert combined_stream_url("ws://127.0.0.1:8765/stream", ["ethusdt"], book_ticker=False) == (
        "ws://127.0.0.1:8765/stream?streams=ethusdt@trade/ethusdt@depth@100ms"
    )
    assert combined_stream_url("wss://stream.binance.com:9443/", ["BTCUSDT"]).startswith(
        "wss://stream.binance.com:9443/stream?streams=btcusdt@trade/"
    )
    assert depth_snapshot_url("http://h/", "btcusdt", 5000) == (
        "http://h/api/v3/depth?symbol=BTCUSDT&limit=5000"
    )
    assert orjson.loads(subscribe_message(["btcusdt@trade"], 3)) == {
        "method": "SUBSCRIBE",
        "params": ["btcusdt@trade"],
        "id": 3,
    }
    with pytest.raises(ValueError, match="BTC-USDT"):
        stream_names(["BTC-USDT"])
    with pytest.raises(ValueError, match="1024"):
        combined_stream_url("ws://h", [f"s{i}" for i in range(400)])


def test_trade_stream_frame_uses_t_as_trade_id() -> None:
    frame = (
        '{"stream":"btcusdt@trade","data":{"e":"trade","E":1700000000001,"s":"BTCUSDT",'
        '"t":12345,"p":"27000.10","q":"0.5","T":1700000000000,"m":false,"M":true}}'
    )
    (tick,) = parse_frame(frame, 9).trades
    assert (tick.trade_id, tick.aggressor_side, tick.ts_event) == (
        "12345",
        Side.BUY,
        1_700_000_000_000_000_000,
    )
    assert TradeTick.decode(tick.encode()) == tick


def test_control_frames_acks_errors_and_server_shutdown() -> None:
    ack = parse_frame('{"result":null,"id":1}', 5)
    assert (ack.kind, ack.ack_id, ack.raw.instrument) == (FrameKind.ACK, 1, "BINANCE:*")
    assert RawFrame.decode(ack.raw.encode()) == ack.raw
    err = parse_frame('{"error":{"code":2,"msg":"Invalid request"},"id":4}', 5)
    assert err.kind is FrameKind.ERROR and "Invalid request" in err.message
    for frame in (
        '{"e":"serverShutdown","E":1700000000000}',
        '{"event":{"e":"serverShutdown","E":1700000000000}}',
        '{"stream":"x","data":{"e":"serverShutdown","E":1700000000000}}',
    ):
        f = parse_frame(frame, 5)
        assert f.kind is FrameKind.SHUTDOWN and not f.book and not f.trades


def test_raw_stream_payloads_without_the_combined_wrapper_parse() -> None:
    f = parse_frame(
        '{"u":400900217,"s":"BNBUSDT","b":"25.35","B":"31.2","a":"25.36","A":"40.66"}', 1
    )
    assert f.tickers[0].bid_price == Decimal("25.35") and f.tickers[0].update_id == 400900217
    g = parse_frame(
        '{"e":"depthUpdate","E":1,"s":"BNBBTC","U":157,"u":160,'
        '"b":[["0.0024","10"]],"a":[["0.0026","100"]]}',
        1,
    )
    assert g.book[0].first_update_id == 157


DEPTH = {
    "e": "depthUpdate",
    "E": 1,
    "s": "BTCUSDT",
    "U": 5,
    "u": 6,
    "b": [["100.0", "1"]],
    "a": [["101.0", "0"]],
}
TRADE = {
    "e": "aggTrade",
    "E": 1,
    "s": "BTCUSDT",
    "a": 1,
    "p": "100",
    "q": "1",
    "f": 1,
    "l": 1,
    "T": 1,
    "m": True,
}


def _wrap(data: dict, **changes: object) -> str:
    body = {**data, **changes}
    body = {k: v for k, v in body.items() if v is not ...}
    return json.dumps({"stream": "btcusdt@x", "data": body})


@pytest.mark.parametrize(
    ("frame", "field", "value"),
    [
        ("not json at all", "<frame>", "'not json at all'"),
        ("[1,2]", "<frame>", "[1, 2]"),
        ('{"stream":"a"}', "<frame>.data", "<missing>"),
        ('{"stream":"a","data":[]}', "data", "[]"),
        ('{"stream":5,"data":{}}', "stream", "5"),
        (_wrap(DEPTH, e="depthSomething"), "data.e", "'depthSomething'"),
        (_wrap(DEPTH, U=...), "data.U", "<missing>"),
        (_wrap(DEPTH, U="5"), "data.U", "'5'"),
        (_wrap(DEPTH, u=4), "data.u", "4"),
        (_wrap(DEPTH, b=[["100.0"]]), "data.b[0]", "['100.0']"),
        (_wrap(DEPTH, b=[[100.0, "1"]]), "data.b[0][0]", "100.0"),
        (_wrap(DEPTH, a=[["101", "-1"]]), "data.a[0][1]", "'-1'"),
        (_wrap(DEPTH, a=[["0", "1"]]), "data.a[0][0]", "'0'"),
        (_wrap(DEPTH, a=[["NaN", "1"]]), "data.a[0][0]", "'NaN'"),
        (_wrap(DEPTH, b=[["100", "1"], ["99", "abc"]]), "data.b[1][1]", "'abc'"),
        (_wrap(DEPTH, b=[["100", "Infinity"]]), "data.b[0][1]", "'Infinity'"),
        (_wrap(DEPTH, b=[["100", 1]]), "data.b[0][1]", "1"),
        (_wrap(DEPTH, b="x"), "data.b", "'x'"),
        (_wrap(DEPTH, s="BTC USDT"), "data.s", "'BTC USDT'"),
        (_wrap(DEPTH, s="BTCUSDT\n"), "data.s", "'BTCUSDT\\n'"),
        (_wrap(DEPTH, E=True), "data.E", "True"),
        (_wrap(TRADE, p=27000.1), "data.p", "27000.1"),
        (_wrap(TRADE, q="abc"), "data.q", "'abc'"),
        (_wrap(TRADE, m="true"), "data.m", "'true'"),
        (_wrap(TRADE, a=...), "data.a", "<missing>"),
        ('{"result":null,"id":[1]}', "id", "[1]"),
    ],
)
def test_malformed_frames_raise_frame_error_naming_field_and_value(
    frame: str, field: str, value: str
) -> None:
    with pytest.raises(FrameError) as info:
        parse_frame(frame, 1)
    assert (info.value.field, info.value.value) == (field, value)
    assert field in str(info.value) and value in str(info.value)
    assert isinstance(info.value, MarketDataError)


def test_float_price_error_says_why() -> None:
    with pytest.raises(FrameError, match="binary float is not exact"):
        parse_frame(_wrap(TRADE, p=1.5), 1)


def test_non_utf8_bytes_are_a_frame_error() -> None:
    with pytest.raises(FrameError, match="not UTF-8"):
        parse_frame(b"\xff\xfe{}", 1)


def test_snapshot_body_errors_name_the_field() -> None:
    with pytest.raises(FrameError) as info:
        parse_depth_snapshot('{"bids":[],"asks":[]}', "BTCUSDT", 1)
    assert info.value.field == "<body>.lastUpdateId"
    with pytest.raises(FrameError) as info:
        parse_depth_snapshot('{"lastUpdateId":1,"bids":[["1",2]],"asks":[]}', "BTCUSDT", 1)
    assert info.value.field == "bids[0][1]"


# Shape as documented for GET /api/v3/exchangeInfo (the capture holds no exchangeInfo body).
EXCHANGE_INFO = {
    "timezone": "UTC",
    "serverTime": 1565246363776,
    "rateLimits": [],
    "exchangeFilters": [],
    "symbols": [
        {
            "symbol": "ETHBTC",
            "status": "TRADING",
            "baseAsset": "ETH",
            "quoteAsset": "BTC",
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.00000100",
                    "maxPrice": "100000.00000000",
                    "tickSize": "0.00000100",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.00100000",
                    "maxQty": "100000.00000000",
                    "stepSize": "0.00100000",
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": "0.00010000",
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                },
            ],
        },
        {
            "symbol": "OMGBUSD",
            "status": "TRADING",
            "baseAsset": "OMG",
            "quoteAsset": "BUSD",
            "filters": [
                {"filterType": "PRICE_FILTER", "tickSize": "0.00010000"},
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.01000000",
                    "maxQty": "9000.0",
                    "stepSize": "0.01000000",
                },
                {"filterType": "MIN_NOTIONAL", "minNotional": "10.00000000"},
            ],
        },
        {
            "symbol": "XYZUSDT",
            "status": "BREAK",
            "baseAsset": "XYZ",
            "quoteAsset": "USDT",
            "filters": [
                {"filterType": "PRICE_FILTER", "tickSize": "0.01"},
                {"filterType": "LOT_SIZE", "minQty": "1", "maxQty": "10", "stepSize": "1"},
            ],
        },
    ],
}


def test_exchange_info_filters_become_exact_frozen_specs() -> None:
    specs = parse_exchange_info(orjson.dumps(EXCHANGE_INFO))
    eth = specs["BINANCE:ETHBTC"]
    assert (eth.tick_size, eth.step_size, eth.min_qty, eth.min_notional) == (
        Decimal("0.000001"),
        Decimal("0.001"),
        Decimal("0.001"),
        Decimal("0.0001"),
    )
    assert specs["BINANCE:OMGBUSD"].min_notional == Decimal("10")
    assert specs["BINANCE:XYZUSDT"].min_notional is None
    assert specs["BINANCE:XYZUSDT"].status == "BREAK"
    assert eth.is_valid_price(Decimal("0.062345")) and not eth.is_valid_price(Decimal("0.0623455"))
    assert eth.is_valid_quantity(Decimal("1.234")) and not eth.is_valid_quantity(Decimal("0.0005"))
    with pytest.raises(AttributeError):
        eth.tick_size = Decimal(1)  # type: ignore[misc]


def test_exchange_info_without_lot_size_names_the_symbol() -> None:
    info = {
        "symbols": [
            {"symbol": "ABCUSDT", "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.01"}]}
        ]
    }
    with pytest.raises(FrameError, match="ABCUSDT: LOT_SIZE filter is required"):
        parse_exchange_info(json.dumps(info))
    bad = {
        "symbols": [
            {
                "symbol": "ABCUSDT",
                "filters": [
                    {"filterType": "PRICE_FILTER", "tickSize": 0.01},
                    {"filterType": "LOT_SIZE", "minQty": "1", "stepSize": "1"},
                ],
            }
        ]
    }
    with pytest.raises(FrameError) as exc:
        parse_exchange_info(json.dumps(bad))
    assert exc.value.field == "symbols[0].PRICE_FILTER.tickSize"
