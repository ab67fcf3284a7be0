"""A deterministic synthetic history: the simulator's market as recorded raw frames.

``synthetic_frames(symbols, seed, events)`` steps :class:`~algostream.sim.SimMarket`
(same seed, same market) and records what the simulator would send: one REST depth
snapshot per symbol, then combined-stream ``trade`` and ``depthUpdate`` frames at a fixed
spacing in time. It is the input of the golden backtest and of offline demos.
"""

from __future__ import annotations

import orjson

from algostream.backtest.capture import REST_DEPTH_STREAM
from algostream.marketdata.frames import raw_frame
from algostream.model.ids import instrument_id
from algostream.model.records import RawFrame
from algostream.sim.binance import encode_depth, encode_trade
from algostream.sim.market import SimMarket

VENUE = "BINANCE"
START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def _snapshot(market: SimMarket, symbol: str, recv_ns: int) -> RawFrame:
    bids, asks = market.book(symbol)
    body = orjson.dumps(
        {
            "lastUpdateId": market.last_update_id(symbol),
            "bids": [[str(p), str(q)] for p, q in bids],
            "asks": [[str(p), str(q)] for p, q in asks],
        }
    ).decode()
    return raw_frame(body, recv_ns, VENUE, REST_DEPTH_STREAM, instrument_id(VENUE, symbol))


def _combined(stream: str, payload: bytes) -> str:
    return '{"stream":"' + stream + '","data":' + payload.decode() + "}"


def synthetic_frames(
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
    seed: int = 7,
    events: int = 20_000,
    spacing_ms: int = 20,
    levels: int = 30,
    start_ns: int = START_NS,
) -> list[RawFrame]:
    """Raw frames of ``events`` market events (plus one snapshot per symbol first)."""
    market = SimMarket.create(symbols, seed, levels=levels)
    frames = [_snapshot(market, s, start_ns + i) for i, s in enumerate(symbols)]
    for n in range(events):
        now_ms = start_ns // 1_000_000 + 1 + n * spacing_ms
        ev = market.step(now_ms)
        spec = market.spec(ev.symbol)
        sym = ev.symbol.lower()
        inst = instrument_id(VENUE, ev.symbol)
        recv = now_ms * 1_000_000 + 500_000  # received 0.5 ms after the event
        for k, fill in enumerate(ev.trades):
            text = _combined(f"{sym}@trade", encode_trade(ev, fill, spec))
            frames.append(raw_frame(text, recv + k, VENUE, f"{sym}@trade", inst))
        text = _combined(f"{sym}@depth@100ms", encode_depth(ev, spec))
        frames.append(raw_frame(text, recv + len(ev.trades), VENUE, f"{sym}@depth@100ms", inst))
    return frames
