"""Bad input never crashes anything: it is refused with an error naming the field and value,
or dead-lettered with the reason, and the good input around it still flows.

a. Property tests (hypothesis): the Binance and Coinbase frame parsers and every record
   decoder, fed arbitrary bytes, arbitrary JSON and mutated real frames / records, either
   parse (and then every record they built is a valid, encodable record) or raise the
   module's documented error (``FrameError`` / ``RecordDecodeError``) naming the field and
   value; never any other exception.
b. Thousands of malformed frames from the simulator through a running ingestor: exactly one
   ``dlq`` record per malformed frame the simulator says it sent; the ingestor stays up and
   keeps publishing good ticks.
c. Malformed records written straight to every input topic of every worker role: exactly
   one ``dlq`` record per bad record and consuming agent, naming topic/partition/offset and
   the field; no worker dies; the good records interleaved still produce their outputs.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algostream.marketdata.binance import parse_depth_snapshot, parse_exchange_info, parse_frame
from algostream.marketdata.coinbase import parse_message
from algostream.marketdata.errors import FrameError
from algostream.marketdata.frames import ParsedFrame
from algostream.model.errors import RecordDecodeError
from algostream.model.records import (
    RECORD_TYPES,
    Bar,
    BookTop,
    ControlCommand,
    DeadLetter,
    FeatureVector,
    OrderEvent,
    OrderRejected,
    OrderRequest,
    Record,
    TradeTick,
)
from algostream.risk.control_auth import sign
from algostream.sim.binance import malformed_frames
from tests.kafka_kit import Msg, decoded, free_port, read_until

CAPTURE = Path(__file__).resolve().parents[1] / "data" / "binance-us-capture"
PROPS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

# --------------------------------------------------------------------------- inputs


def capture_frames() -> list[str]:
    lines = (CAPTURE / "BINANCE_US.ws.1.0").read_text().splitlines()[1:]
    return [line.partition(": ")[2] for line in lines if line.strip()]


def capture_snapshots() -> list[tuple[str, str]]:
    """(symbol, body) of the recorded REST depth snapshots."""
    out = []
    for line in (CAPTURE / "BINANCE_US.http.0.0").read_text().splitlines():
        url, _, rest = line.partition(" -> ")
        if "/depth" in url:
            symbol = url.split("symbol=")[1].split("&")[0]
            out.append((symbol, rest.partition(": ")[2]))
    return out


FRAMES = capture_frames()
SNAPSHOTS = capture_snapshots()
# one of each event kind the capture holds, so rare kinds are mutated as often as depth
BY_KIND: dict[str, str] = {}
for _frame in FRAMES:
    _data = orjson.loads(_frame)["data"]
    BY_KIND.setdefault(_data.get("e", "bookTicker"), _frame)

COINBASE_MESSAGES = [
    # shapes of the Coinbase Advanced Trade docs (the simulator sends the same)
    '{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z",'
    '"sequence_num":0,"events":[{"type":"snapshot","product_id":"BTC-USD","updates":['
    '{"side":"bid","event_time":"1970-01-01T00:00:00Z","price_level":"21921.73",'
    '"new_quantity":"0.06317902"},{"side":"offer","event_time":"1970-01-01T00:00:00Z",'
    '"price_level":"21921.74","new_quantity":"0.5"}]}]}',
    '{"channel":"market_trades","client_id":"","timestamp":"2023-02-09T20:19:35.39625135Z",'
    '"sequence_num":3,"events":[{"type":"update","trades":[{"trade_id":"000000000",'
    '"product_id":"ETH-USD","price":"1260.01","size":"0.3","side":"BUY",'
    '"time":"2019-08-14T20:42:27.265Z"}]}]}',
    '{"channel":"heartbeats","client_id":"","timestamp":"2023-06-23T20:31:26.122969572Z",'
    '"sequence_num":0,"events":[{"current_time":"2023-06-23 20:31:56.121961769 +0000 UTC",'
    '"heartbeat_counter":3049}]}',
    '{"channel":"subscriptions","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z",'
    '"sequence_num":2,"events":[{"subscriptions":{"level2":["BTC-USD"]}}]}',
]

EXCHANGE_INFO = orjson.dumps(
    {
        "symbols": [
            {
                "symbol": "BTCUSDT",
                "status": "TRADING",
                "baseAsset": "BTC",
                "quoteAsset": "USDT",
                "filters": [
                    {"filterType": "PRICE_FILTER", "tickSize": "0.01"},
                    {
                        "filterType": "LOT_SIZE",
                        "stepSize": "0.00001",
                        "minQty": "0.00001",
                        "maxQty": "9000",
                    },
                    {"filterType": "NOTIONAL", "minNotional": "5"},
                ],
            }
        ]
    }
).decode()

#: leaves that probe the readers: decimals in every spelling, huge and negative ints,
#: timestamps at and past the edges, empty and odd strings
TRICKY = st.sampled_from(
    [
        "1.5", "0", "-1", "1e999999", "1E-999999", "NaN", "Infinity", "-0", " 1 ", "", "x",
        "BTCUSDT", "btc-usd", "BAD SYMBOL", "bid", "offer", "BUY", "SELL", "trade",
        "depthUpdate", "snapshot", "update", "2023-02-09T20:32:50Z", "9999-12-31T23:59:59Z",
        "1900-01-01T00:00:00Z", "2023-02-09T20:32:50.1234567890Z", "2023-02-09T20:32:50",
        0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 1.5, -0.0, 1e308,
        True, False, None, [], {}, [["1", "1"]], [["1"]],
    ]
)  # fmt: skip
JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | TRICKY
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=25,
)


def paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys / indexes) into a JSON value, the root excluded."""
    out: list[tuple[Any, ...]] = []
    items: Any = []
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = enumerate(obj)
    for k, v in items:
        out.append((*prefix, k))
        out += paths(v, (*prefix, k))
    return out


def mutate(obj: Any, path: tuple[Any, ...], how: str, value: Any) -> Any:
    """A deep copy of ``obj`` with the value at ``path`` replaced by ``value`` or deleted."""
    out = copy.deepcopy(obj)
    parent = out
    for k in path[:-1]:
        parent = parent[k]
    if how == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out


def dotted(path: tuple[Any, ...]) -> str:
    text = ""
    for k in path:
        text += f"[{k}]" if isinstance(k, int) else (f".{k}" if text else str(k))
    return text


@st.composite
def mutations(draw: st.DrawFn, docs: list[str]) -> tuple[str, tuple[Any, ...], str]:
    """(mutated text, mutated path, how): one field of a real document replaced or removed,
    or the raw text truncated / a byte flipped (path ``()``)."""
    doc = draw(st.sampled_from(docs))
    how = draw(st.sampled_from(["replace", "replace", "delete", "truncate", "flip"]))
    if how in ("truncate", "flip"):
        raw = doc.encode()
        i = draw(st.integers(0, len(raw) - 1))
        if how == "truncate":
            return raw[:i].decode(errors="replace"), (), how
        flipped = raw[:i] + bytes([raw[i] ^ draw(st.integers(1, 255))]) + raw[i + 1 :]
        return flipped.decode(errors="replace"), (), how
    obj = orjson.loads(doc)
    path = draw(st.sampled_from(paths(obj)))
    if how == "delete" and isinstance(path[-1], int):
        how = "replace"  # deleting a list item shifts the rest: not one field
    value = draw(JSON) if how == "replace" else None
    return orjson.dumps(mutate(obj, path, how, value)).decode(), path, how


# --------------------------------------------------------------------------- contract


def check_frame(parse: Any, raw: str | bytes) -> FrameError | None:
    """``parse(raw)`` returns a frame of valid records or raises a FrameError naming the
    field and value; returns the error (None on success). Anything else fails the test."""
    try:
        frame = parse(raw)
    except FrameError as exc:
        assert exc.field and isinstance(exc.value, str), exc
        assert f"field '{exc.field}' = {exc.value}" in str(exc), exc
        return exc
    assert isinstance(frame, ParsedFrame)
    # the parser builds records without re-validating them: each must be a valid record
    for record in (frame.raw, *frame.trades, *frame.book):
        assert type(record).decode(record.encode()) == record, record
    return None


def field_matches(exc: FrameError, path: tuple[Any, ...], root: str) -> bool:
    """The error names the mutated field (or a field inside it, or its ``U``/``u`` pair)."""
    name = dotted(path)
    named = exc.field.removeprefix(root)
    if named.startswith(name):
        return True
    return name.endswith(".U") and named == name[:-1] + "u"


# --------------------------------------------------------------------------- a. parsers


def binance(raw: str | bytes) -> Any:
    return parse_frame(raw, recv_ns=1_700_000_000_000_000_000)


def coinbase(raw: str | bytes) -> Any:
    return parse_message(raw, recv_ns=1_700_000_000_000_000_000, include_trade_snapshot=True)


def test_every_real_input_parses() -> None:
    """The seeds of the mutations are good input (else the properties prove little)."""
    assert {"depthUpdate", "aggTrade", "kline", "bookTicker"} <= set(BY_KIND)
    for raw in FRAMES:
        assert check_frame(binance, raw) is None
    for raw in COINBASE_MESSAGES:
        assert check_frame(coinbase, raw) is None
    for symbol, body in SNAPSHOTS:
        assert check_frame(lambda b, s=symbol: parse_depth_snapshot(b, s, 1), body) is None
    assert list(parse_exchange_info(EXCHANGE_INFO)) == ["BINANCE:BTCUSDT"]


@pytest.mark.parametrize("parse", [binance, coinbase], ids=["binance", "coinbase"])
@PROPS
@given(raw=st.binary(max_size=300))
def test_parsers_on_arbitrary_bytes(parse: Any, raw: bytes) -> None:
    check_frame(parse, raw)


@pytest.mark.parametrize("parse", [binance, coinbase], ids=["binance", "coinbase"])
@PROPS
@given(doc=JSON)
def test_parsers_on_arbitrary_json(parse: Any, doc: Any) -> None:
    check_frame(parse, orjson.dumps(doc))
    check_frame(parse, orjson.dumps({"stream": "x@trade", "data": doc}))
    check_frame(parse, orjson.dumps({"channel": "l2_data", "sequence_num": 1, "events": doc,
                                      "timestamp": "2023-02-09T20:32:50Z"}))  # fmt: skip


@PROPS
@given(m=mutations(list(BY_KIND.values())))
def test_binance_parser_on_mutated_real_frames(m: tuple[str, tuple[Any, ...], str]) -> None:
    text, path, _how = m
    exc = check_frame(binance, text)
    if exc is not None and path and path[0] == "data" and len(path) > 1 and path[1] != "e":
        assert field_matches(exc, path, ""), (exc, path)


@PROPS
@given(m=mutations(COINBASE_MESSAGES))
def test_coinbase_parser_on_mutated_messages(m: tuple[str, tuple[Any, ...], str]) -> None:
    text, path, _how = m
    exc = check_frame(coinbase, text)
    if exc is not None and path and path[0] == "events" and len(path) > 2 and path[2] != "type":
        assert field_matches(exc, path, ""), (exc, path)


@PROPS
@given(m=mutations([body for _, body in SNAPSHOTS[:3]]), symbol=st.sampled_from(["BTCUSDT", "x y"]))
def test_rest_bodies_on_mutations(m: tuple[str, tuple[Any, ...], str], symbol: str) -> None:
    check_frame(lambda b: parse_depth_snapshot(b, symbol, 1), m[0])
    try:
        parse_exchange_info(m[0])
    except FrameError as exc:
        assert f"field '{exc.field}'" in str(exc)


@PROPS
@given(m=mutations([EXCHANGE_INFO]))
def test_exchange_info_on_mutations(m: tuple[str, tuple[Any, ...], str]) -> None:
    try:
        specs = parse_exchange_info(m[0])
    except FrameError as exc:
        assert f"field '{exc.field}' = {exc.value}" in str(exc)
        return
    assert all(s.tick_size >= 0 and s.step_size >= 0 for s in specs.values())


# --------------------------------------------------------------------------- a. records

NOW = 1_700_000_000_000_000_000
BASE: dict[str, Any] = {"instrument": "BINANCE:BTCUSDT", "ts_event": NOW, "ts_init": NOW + 1,
                        "record_id": "r-1", "lineage_id": "l-1"}  # fmt: skip
ORDER = {**BASE, "account": "paper", "client_order_id": "c-1", "strategy": "test",
         "side": "BUY", "order_type": "LIMIT", "quantity": "0.5", "limit_price": "100.5",
         "time_in_force": "GTC", "reduce_only": False, "arrival_mid": "100.25"}  # fmt: skip
MONEY = {"realized_pnl": "1.5", "unrealized_pnl": "-0.5", "fees": "0.01"}
#: one valid wire document per record type, every optional field present
SAMPLES: dict[str, dict[str, Any]] = {
    "RawFrame": {**BASE, "venue": "BINANCE", "stream": "btcusdt@trade", "payload": "{}"},
    "TradeTick": {**BASE, "trade_id": "7", "price": "100.5", "size": "0.1",
                  "aggressor_side": "SELL"},
    "BookUpdate": {**BASE, "kind": "DELTA", "bids": [["100", "1"]], "asks": [["101", "0"]],
                   "first_update_id": 5, "final_update_id": 6},
    "BookTop": {**BASE, "bids": [["100", "1"]], "asks": [["101", "2"]], "best_bid": "100",
                "best_ask": "101", "mid": "100.5", "spread": "1", "imbalance": -0.33,
                "microprice": "100.3", "update_id": 9},
    "BookIntegrity": {**BASE, "kind": "GAP", "detail": "d", "expected_update_id": 3,
                      "received_update_id": 5},
    "MarkPrice": {**BASE, "instrument": "BINANCE_USDM:BTCUSDT", "mark_price": "100.5",
                  "index_price": "100.4", "estimated_settle_price": "100.3",
                  "funding_rate": "-0.0001", "next_funding_ns": NOW},
    "Liquidation": {**BASE, "instrument": "BINANCE_USDM:BTCUSDT", "side": "SELL",
                    "quantity": "0.014", "price": "9910", "avg_price": "9910",
                    "last_filled_qty": "0.014", "filled_qty": "0.014", "status": "FILLED"},
    "Bar": {**BASE, "interval": "1s", "start_ns": NOW - 10**9, "end_ns": NOW, "open": "1",
            "high": "2", "low": "0.5", "close": "1.5", "volume": "3", "quote_volume": "4.5",
            "trades": 3},
    "FeatureVector": {**BASE, "interval": "1s", "close": "1.5",
                      "values": {"rsi": 30.5, "macd": None}},
    "Signal": {**BASE, "strategy": "s", "side": "BUY", "strength": 0.5, "confidence": 1.0,
               "reason": "rsi", "price": "100"},
    "OrderRequest": ORDER,
    "OrderRejected": {**BASE, "account": "paper", "client_order_id": "c-1",
                      "reason": "MAX_POSITION", "limit": "10", "value": "11", "message": "m",
                      "order": ORDER},
    "OrderEvent": {**BASE, "account": "paper", "client_order_id": "c-1",
                   "venue_order_id": "v1", "status": "FILLED", "side": "BUY",
                   "order_type": "LIMIT", "quantity": "1", "limit_price": "100",
                   "fill_price": "100", "fill_qty": "1", "cum_qty": "1", "fee": "0.1",
                   "fee_currency": "USDT", "slippage": "0", "reason": "", "venue": "PAPER"},
    "Position": {**BASE, "account": "paper", "quantity": "-1", "avg_price": "100",
                 "cost_method": "FIFO", **MONEY, "mark_price": "101"},
    "PnL": {**BASE, "instrument": "ACCOUNT:PAPER", "account": "paper", **MONEY,
            "equity": "100000", "peak_equity": "100001", "drawdown": "1", "exposure": "50"},
    "RiskEvent": {**BASE, "kind": "CONTROL", "state": "HALTED", "previous_state": "ACTIVE",
                  "actor": "ops", "reason": "r", "detail": {"k": "v"}},
    "ControlCommand": {**BASE, "instrument": "ALL:*", "action": "HALT", "actor": "ops",
                       "reason": "r"},
    "DeadLetter": {**BASE, "source_topic": "md.raw", "partition": 0, "offset": 1,
                   "source_key": None, "payload": "x", "error_type": "E", "reason": "r",
                   "agent": "a"},
    "VolumeSpike": {**BASE, "window_start_ns": NOW - 10**9, "window_ns": 10**9, "volume": "9",
                    "average": "1.5", "ratio": "6", "trades": 4},
}  # fmt: skip
TYPES = sorted(RECORD_TYPES)


def check_record(record_type: type[Record], payload: bytes | str) -> RecordDecodeError | None:
    """Decode returns a record that round-trips, or raises RecordDecodeError naming the
    field and value; returns the error (None on success)."""
    try:
        record = record_type.decode(payload)
    except RecordDecodeError as exc:
        assert exc.record_type == record_type.TYPE and exc.field, exc
        assert f"field '{exc.field}' = {exc.value}" in str(exc), exc
        return exc
    assert isinstance(record, record_type)
    assert record_type.decode(record.encode()) == record
    return None


def test_every_record_type_has_a_valid_sample() -> None:
    assert set(SAMPLES) == set(RECORD_TYPES)
    for name, doc in SAMPLES.items():
        assert check_record(RECORD_TYPES[name], orjson.dumps(doc)) is None, name


@pytest.mark.parametrize("name", TYPES)
@PROPS
@given(raw=st.binary(max_size=200), doc=JSON)
def test_decoders_on_arbitrary_bytes_and_json(name: str, raw: bytes, doc: Any) -> None:
    record_type = RECORD_TYPES[name]
    check_record(record_type, raw)
    check_record(record_type, orjson.dumps(doc))
    check_record(record_type, orjson.dumps(doc).decode())


@pytest.mark.parametrize("name", TYPES)
@PROPS
@given(data=st.data())
def test_decoders_on_mutated_records(name: str, data: st.DataObject) -> None:
    doc = SAMPLES[name]
    text, path, _how = data.draw(mutations([orjson.dumps(doc).decode()]))
    exc = check_record(RECORD_TYPES[name], text)
    if exc is not None and path:
        # the only bad field of an otherwise valid record is the one named
        assert exc.field.split(".")[0] == path[0], (exc, path)


# --------------------------------------------------------------------------- b. ingestor

MALFORMED = 3000  # the simulator cycles three kinds: truncated JSON, not JSON, wrong schema


async def poll_sim(http: Any, done: Any, timeout_s: float = 60.0) -> dict[str, Any]:
    """``GET /sim/stats`` until ``done(stats)`` or the deadline (then the last stats)."""
    deadline = time.monotonic() + timeout_s
    stats: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            stats = (await http.get("/sim/stats")).json()
            if done(stats):
                return stats
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)  # poll interval under the deadline
    return stats


async def test_malformed_frames_go_to_dlq_and_the_feed_goes_on(provisioned, supervisor) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    port = free_port()
    env = {
        "ALGOSTREAM__MARKET_DATA__WEBSOCKET_URL": f"ws://127.0.0.1:{port}/stream",
        "ALGOSTREAM__MARKET_DATA__REST_URL": f"http://127.0.0.1:{port}",
        "ALGOSTREAM__MARKET_DATA__RECONNECT_DELAY_MS": "200",
    }
    supervisor.start("sim", "sim", "--port", str(port), "--rate", "50", env=env)
    supervisor.start("ingest", "ingest", "--metrics-port", "0", env=env)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        up = await poll_sim(http, lambda st: st.get("binance_clients") == 1)
        assert up.get("binance_clients") == 1, supervisor.tail("ingest")
        # good ticks flow before the fault
        assert await read_until(s, "md.trades", lambda m: len(m) > 0, 60), supervisor.tail("ingest")
        fault = {"kind": "malformed", "count": MALFORMED}
        sent = (await http.post("/sim/fault", json=fault)).json()["sent"]
        assert sent == MALFORMED  # one connection: the ingestor's
        after_ns = time.time_ns()
        assert (await http.get("/sim/stats")).json()["malformed_sent"] == sent

    def ingestor_letters(msgs: list[Msg]) -> list[Any]:
        return [d for d in decoded(msgs, DeadLetter) if d.agent == "ingestor"]  # type: ignore[attr-defined]

    dlq = ingestor_letters(await read_until(s, "dlq", lambda m: len(m) >= sent, 120))
    # ticks received after the malformed burst are still published
    later = decoded(
        await read_until(
            s,
            "md.trades",
            lambda m: any(t.ts_init > after_ns for t in decoded(m, TradeTick)),  # type: ignore[attr-defined]
            60,
        ),
        TradeTick,
    )
    assert any(t.ts_init > after_ns for t in later), supervisor.tail("ingest")  # type: ignore[attr-defined]
    # nothing beyond the malformed frames is dead-lettered (poll for an excess, bounded)
    dlq = ingestor_letters(await read_until(s, "dlq", lambda m: len(m) > sent, 3))
    assert len(dlq) == sent, (len(dlq), sent)
    assert len({(d.partition, d.offset) for d in dlq}) == sent  # one letter per frame
    kinds = malformed_frames("BTCUSDT", 3)
    for d in dlq:
        assert d.source_topic == "ws:binance" and d.error_type == "FrameError", d
        assert d.payload.encode() in kinds, d.payload
        assert "malformed frame: field '" in d.reason, d.reason
    by_payload = {k: sum(d.payload.encode() == k for d in dlq) for k in kinds}
    assert by_payload == {k: sent // 3 for k in kinds}
    assert not supervisor.dead(), {n: supervisor.tail(n) for n in supervisor.dead()}


# --------------------------------------------------------------------------- c. workers

#: input topic -> (record type, the agents that decode it: each dead-letters a bad record)
INPUTS: dict[str, tuple[str, set[str]]] = {
    "md.book": ("BookUpdate", {"book"}),  # market
    "md.trades": ("TradeTick", {"bars", "execution"}),  # market, trading
    "bars.1s": ("Bar", {"features"}),  # signals (in the split layout)
    # signals; trading (one tap there feeds both the gate's marks and the paper broker: its
    # dead letters are the first stage's, the gate's)
    "book.top": ("BookTop", {"features", "risk"}),
    "features": ("FeatureVector", {"signals"}),  # signals
    "signals": ("Signal", {"orders"}),  # signals
    "orders.proposed": ("OrderRequest", {"risk"}),  # trading
    # trading; signals (its tap: the strategies' open orders, for ctx.cancel / replace)
    "orders.events": ("OrderEvent", {"risk", "signals"}),
    "book.integrity": ("BookIntegrity", {"risk"}),  # trading
    "control": ("ControlCommand", {"risk"}),  # trading
    "orders.approved": ("OrderRequest", {"execution"}),  # trading
}
BAD_PER_TOPIC = 300
GOOD_EVERY = 10  # one good record after every 10 bad ones
WRONG_TYPED = [{"x": "nope"}, "not-a-number", -5, [["x"]], True, 1.5, "", None]
BAD_INSTRUMENTS = ["nope", "BINANCE:btc usdt", "", ":X", "A" * 70 + ":B"]
#: (instrument, sample overrides) of the good record number n on each topic
SEC = 1_000_000_000
CONTROL_KEY = "bad-input-test-operator-key-0123456789"


def good_doc(topic: str, n: int, t0: int) -> dict[str, Any]:
    """Good record ``n`` of ``topic``: each makes an output (or at least decodes)."""
    name = INPUTS[topic][0]
    doc = copy.deepcopy(SAMPLES[name])
    doc.update(record_id=f"good-{topic}-{n}", lineage_id=f"test-{n}", ts_event=t0 + n * SEC,
               ts_init=t0 + n * SEC)  # fmt: skip
    if topic == "md.book":
        doc.update(kind="SNAPSHOT", first_update_id=n + 1, final_update_id=n + 1,
                   bids=[["100", "1"]], asks=[["101", "1"]])  # fmt: skip
    elif topic == "md.trades":
        doc.update(trade_id=str(n + 1))
    elif topic == "bars.1s":
        doc.update(instrument="BINANCE:ETHUSDT", start_ns=t0 + n * SEC, end_ns=t0 + (n + 1) * SEC)
    elif topic == "features":
        doc.update(instrument="BINANCE:SOLUSDT", values={"rsi": [50.0, 10.0, 50.0, 90.0][n % 4]})
    elif topic == "signals":  # of the deployment's strategy (another one's goes to dlq)
        doc.update(instrument="BINANCE:ETHUSDT", strength=1.0, strategy="rsi_mean_reversion")
    elif topic in ("orders.proposed", "orders.approved"):
        doc.update(client_order_id=f"{topic[7:10]}-{n}", order_type="MARKET", limit_price=None,
                   quantity="0.01")  # fmt: skip
    elif topic == "orders.events":
        doc.update(client_order_id=f"ext-{n}", status="ACCEPTED", fill_qty="0", cum_qty="0",
                   fill_price=None)  # fmt: skip
    elif topic == "control":  # signed with the operator key, fresh (risk.control_window_ms)
        doc.update(instrument="BINANCE:DOGEUSDT", action=["HALT", "RESUME"][n % 2],
                   ts_init=time.time_ns())  # fmt: skip
        doc = sign(ControlCommand.model_validate(doc), CONTROL_KEY.encode()).model_dump(mode="json")
    return doc


def bad_payload(record_type: type[Record], rng: random.Random, i: int) -> bytes:
    """A payload that ``record_type.decode`` refuses, of kind ``i % 6``."""
    doc = copy.deepcopy(SAMPLES[record_type.TYPE])
    required = [k for k, f in record_type.model_fields.items() if f.is_required()]
    kind = i % 6
    if kind == 0:  # not JSON
        return rng.choice([b"\x00\xffgarbage", orjson.dumps(doc)[: rng.randint(0, 40)],
                           b"", b"{'single': 'quotes'}", b"NaN"])  # fmt: skip
    if kind == 1:  # JSON, not an object
        return orjson.dumps(rng.choice([[], [doc], 1, "text", None, True]))
    if kind == 2:  # a required field missing
        del doc[rng.choice(required)]
        return orjson.dumps(doc)
    if kind == 3:  # a field of the wrong type
        key = rng.choice(sorted(doc))
        for value in rng.sample(WRONG_TYPED, len(WRONG_TYPED)):
            bad = orjson.dumps({**doc, key: value})
            if check_record(record_type, bad) is not None:
                return bad
        return orjson.dumps({**doc, "ts_event": "yesterday"})
    if kind == 4:  # an instrument id that is not VENUE:SYMBOL
        return orjson.dumps({**doc, "instrument": rng.choice(BAD_INSTRUMENTS)})
    # a field the record does not have (a record of another type, or a typo)
    other = rng.choice([d for n, d in SAMPLES.items() if n != record_type.TYPE])
    return orjson.dumps({**other, "instrumnet": "x"} if rng.random() < 0.5 else {**doc, "px": 1})


def decodable(msgs: list[Msg], record_type: type[Record]) -> list[Any]:
    """The records of ``msgs`` that decode (the test's own bad records are skipped)."""
    out = []
    for m in msgs:
        with contextlib.suppress(RecordDecodeError):
            out.append(record_type.decode(m.value))
    return out


async def produce_raw(
    settings: Any, topic: str, items: list[tuple[bytes | None, bytes]]
) -> list[tuple[int, int]]:
    """Write raw (key, value) pairs in order; their (partition, offset)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers, enable_idempotence=True
    )
    await producer.start()
    try:
        name = settings.kafka.topic_prefix + topic
        futures = [await producer.send(name, value, key=key) for key, value in items]
        return [(m.partition, m.offset) for m in [await f for f in futures]]
    finally:
        await producer.stop()


async def test_bad_records_on_every_worker_input_go_to_dlq(provisioned, supervisor) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    rng = random.Random(7)
    t0 = (time.time_ns() // SEC - 3600) * SEC  # an hour ago, on a second boundary
    bad: dict[tuple[str, int, int], str] = {}  # (topic, partition, offset) -> expected reason
    good: dict[str, list[tuple[dict[str, Any], int, int]]] = {}
    for topic, (type_name, _) in INPUTS.items():
        record_type = RECORD_TYPES[type_name]
        items: list[tuple[bytes | None, bytes]] = []
        reasons: list[str | None] = []
        docs: list[dict[str, Any]] = []
        for i in range(BAD_PER_TOPIC):
            payload = bad_payload(record_type, rng, i)
            exc = check_record(record_type, payload)
            assert exc is not None, (topic, payload)
            key = rng.choice([None, b"BINANCE:BTCUSDT", b"\xff\xfe", f"k{i}".encode()])
            items.append((key, payload))
            reasons.append(str(exc))
            if i % GOOD_EVERY == GOOD_EVERY - 1:
                doc = good_doc(topic, len(docs), t0)
                assert check_record(record_type, orjson.dumps(doc)) is None, doc
                items.append((doc["instrument"].encode(), orjson.dumps(doc)))
                reasons.append(None)
                docs.append(doc)
        placed = await produce_raw(s, topic, items)
        good[topic] = []
        for (partition, offset), reason in zip(placed, reasons, strict=True):
            if reason is not None:
                bad[(topic, partition, offset)] = reason
        good[topic] = [
            (doc, p, o)
            for doc, (p, o) in zip(
                docs, [po for po, r in zip(placed, reasons, strict=True) if r is None], strict=True
            )
        ]
    expected = sum(len(INPUTS[t][1]) for t, _, _ in bad)

    # the split layout without the in-process hot path, where every topic here has a
    # reader; otherwise the same agents read a subset of them (bars, book tops, features
    # and signals reach their stage in-process)
    split = {
        "ALGOSTREAM__WORKERS__LAYOUT": "split",
        "ALGOSTREAM__SIGNAL__IN_PROCESS": "false",
        "ALGOSTREAM_CONTROL_KEY": CONTROL_KEY,
        # the good commands are signed when written, before the workers start
        "ALGOSTREAM__RISK__CONTROL_WINDOW_MS": "600000",
    }
    for role in ("market", "signals", "trading"):
        supervisor.start(role, "worker", role, "--web-port", "0", "--metrics-port", "0", env=split)
    prefix = s.kafka.topic_prefix
    started = time.monotonic()
    msgs = await read_until(s, "dlq", lambda m: len(m) >= expected, timeout_s=240)
    print(f"{len(msgs)} dead letters after {time.monotonic() - started:.1f}s")
    letters = decoded(msgs, DeadLetter)
    logs = {n: supervisor.tail(n, 20) for n in supervisor.children}
    assert len(letters) >= expected, (len(letters), expected, logs)

    # the good records interleaved produced their outputs
    async def outputs(topic: str, record_type: type[Record], want: set[str]) -> set[str]:
        def done(m: list[Msg]) -> bool:
            return want <= {r.lineage_id for r in decodable(m, record_type)}

        found = decodable(await read_until(s, topic, done, timeout_s=90), record_type)
        return want - {r.lineage_id for r in found}

    def ids(topic: str, start: int = 0, stop: int | None = None) -> set[str]:
        return {doc["record_id"] for doc, _, _ in good[topic][start:stop]}

    missing = {
        "book.top<-md.book": await outputs("book.top", BookTop, ids("md.book")),
        # each trade closes the 1 s bar of the one before; the bars' lineage is their last trade
        "bars.1s<-md.trades": await outputs("bars.1s", Bar, ids("md.trades", 0, -1)),
        "features<-bars.1s": await outputs("features", FeatureVector, ids("bars.1s")),
        "orders.proposed<-signals": await outputs("orders.proposed", OrderRequest, ids("signals")),
        "orders.events<-orders.approved": await outputs(
            "orders.events", OrderEvent, ids("orders.approved")
        ),
    }
    assert not any(missing.values()), ({k: sorted(v)[:3] for k, v in missing.items() if v}, logs)
    decided = decodable(
        await read_until(s, "orders.approved", lambda m: False, timeout_s=1), OrderRequest
    ) + decodable(
        await read_until(s, "orders.rejected", lambda m: False, timeout_s=1), OrderRejected
    )
    coids = {r.client_order_id for r in decided}  # type: ignore[attr-defined]
    assert {d["client_order_id"] for d, _, _ in good["orders.proposed"]} <= coids

    # exactly one dead letter per bad record and consuming agent, none for a good record
    msgs = await read_until(s, "dlq", lambda m: len(m) > expected, timeout_s=3)
    letters = decoded(msgs, DeadLetter)
    seen: dict[tuple[str, str, int, int], DeadLetter] = {}
    for d in letters:
        topic = d.source_topic.removeprefix(prefix)  # type: ignore[attr-defined]
        k = (d.agent, topic, d.partition, d.offset)  # type: ignore[attr-defined]
        assert k not in seen, f"two dead letters for {k}"
        seen[k] = d  # type: ignore[assignment]
        assert (topic, d.partition, d.offset) in bad, f"good record dead-lettered: {d}"  # type: ignore[attr-defined]
        assert d.agent in INPUTS[topic][1], d  # type: ignore[attr-defined]
        assert d.error_type == "RecordDecodeError", d  # type: ignore[attr-defined]
        assert d.reason == bad[(topic, d.partition, d.offset)], d  # type: ignore[attr-defined]
        assert d.lineage_id == f"{d.source_topic}/{d.partition}/{d.offset}"  # type: ignore[attr-defined]
    assert len(letters) == expected, (len(letters), expected)
    assert not supervisor.dead(), {n: supervisor.tail(n) for n in supervisor.dead()}
