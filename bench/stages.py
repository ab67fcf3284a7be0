"""Per-stage latency of the pure processors against the seed's targets.

Seed targets: book update < 1 ms, feature computation < 10 ms, risk check < 100 µs,
order submission < 50 ms end to end. Each stage runs in-process (no Kafka) on realistic
inputs; the Kafka hops are measured by ``bench/pipeline.py``.
"""

from __future__ import annotations

import time
from decimal import Decimal

from algostream.config import RiskConfig
from algostream.execution.paper import PaperBroker
from algostream.model import BookTop, OrderEvent, OrderRequest, OrderType, Side
from algostream.risk import RiskProcessor
from bench.common import Latency, time_calls

INSTRUMENTS = ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "BINANCE:SOLUSDT"]


def _top(inst: str, mid: int, n: int) -> BookTop:
    bids = tuple((Decimal(mid - 1 - i), Decimal("5")) for i in range(10))
    asks = tuple((Decimal(mid + 1 + i), Decimal("5")) for i in range(10))
    return BookTop(
        instrument=inst,
        ts_event=n,
        ts_init=n,
        record_id=f"t{inst}{n}",
        lineage_id="x",
        bids=bids,
        asks=asks,
        best_bid=bids[0][0],
        best_ask=asks[0][0],
        mid=Decimal(mid),
        update_id=n,
    )


def _order(i: int, inst: str = INSTRUMENTS[0]) -> OrderRequest:
    return OrderRequest(
        instrument=inst,
        ts_event=i * 1_000_000,
        ts_init=i,
        record_id=f"p{i}",
        lineage_id="s",
        account="paper",
        client_order_id=f"c{i}",
        strategy="bench",
        side=Side.BUY if i % 2 else Side.SELL,
        order_type=OrderType.MARKET,
        quantity=Decimal("0.01"),
    )


def risk_check(n: int = 20_000) -> Latency:
    """``RiskProcessor.on_proposal`` with 3 books and open positions (full pre-trade check)."""
    cfg = RiskConfig(max_orders_per_second=1_000_000)
    proc = RiskProcessor(cfg)
    for k, inst in enumerate(INSTRUMENTS):
        proc.on_book_top(_top(inst, 1000 * (k + 1), 1), 1)
        fill = OrderEvent(
            instrument=inst,
            ts_event=2,
            ts_init=2,
            record_id=f"f{k}",
            lineage_id="o",
            account="paper",
            client_order_id=f"seed{k}",
            status="FILLED",
            side=Side.BUY,
            order_type=OrderType.MARKET,
            quantity="0.1",
            fill_price=str(1000 * (k + 1)),
            fill_qty="0.1",
            cum_qty="0.1",
        )
        proc.on_order_event(fill)
    orders = [_order(i) for i in range(n + 200)]
    return time_calls(
        "risk check (RiskProcessor.on_proposal)", lambda i: proc.on_proposal(orders[i], i), n
    )


def paper_submit(n: int = 20_000) -> Latency:
    """``PaperBroker.submit`` of a market order walking a 10-level book."""
    broker = PaperBroker(Decimal("0.001"), max_closed=1000)
    tops = [_top(INSTRUMENTS[0], 1000, i) for i in range(n + 200)]
    orders = [_order(i) for i in range(n + 200)]

    def submit(i: int) -> None:
        broker.on_book_top(tops[i])
        broker.submit(orders[i], i)

    return time_calls("paper order submit (book update + submit + fill)", submit, n)


def book_update() -> Latency:
    """BookProcessor.on_update on the recorded capture's md.book (chain + top record)."""
    from algostream.marketdata.processor import BookProcessor
    from bench.peers import recorded_updates

    updates = recorded_updates()
    state = {"proc": BookProcessor(10)}

    def one(i: int) -> None:
        u = updates[i % len(updates)]
        if i % len(updates) == 0:
            state["proc"] = BookProcessor(10)
        state["proc"].on_update(u, u.ts_init)

    return time_calls("book update (BookProcessor.on_update -> BookTop)", one, 20000)


def depth_parse() -> Latency:
    """parse_frame on the recorded capture's depth frames (WebSocket text -> typed frame)."""
    from algostream.marketdata.binance import parse_frame
    from bench.peers import CAPTURE

    frames = []
    for line in (CAPTURE / "BINANCE_US.ws.1.0").read_text().splitlines()[1:]:
        frame = line.partition(": ")[2]
        if "depthUpdate" in frame:
            frames.append(frame)

    def one(i: int) -> None:
        parse_frame(frames[i % len(frames)], i)

    return time_calls("depth frame parse (parse_frame, recorded capture)", one, 20000)


def feature_update() -> Latency:
    """FeatureProcessor.on_bar (RSI, MACD, Bollinger, ATR, returns, volatility, VWAP)."""
    import random

    from algostream.config import SignalConfig
    from algostream.features.processor import FeatureProcessor
    from algostream.model import Bar

    rng = random.Random(7)
    price = Decimal("100")
    bars = []
    for i in range(25000):
        price = max(Decimal("1"), price + Decimal(rng.randint(-50, 50)) / 100)
        hi, lo = price + Decimal("0.2"), price - Decimal("0.2")
        bars.append(
            Bar(
                instrument="SIM:BTCUSDT",
                ts_event=(i + 1) * 10**9,
                ts_init=(i + 1) * 10**9,
                record_id=f"b{i}",
                lineage_id="t",
                interval="1s",
                start_ns=i * 10**9,
                end_ns=(i + 1) * 10**9,
                open=price,
                high=hi,
                low=lo,
                close=price,
                volume=Decimal("1.5"),
                quote_volume=price * Decimal("1.5"),
                trades=3,
            )
        )
    proc = FeatureProcessor(SignalConfig())
    return time_calls(
        "feature update (FeatureProcessor.on_bar)", lambda i: proc.on_bar(bars[i]), 20000
    )


def main() -> list[tuple[Latency, str]]:
    return [
        (depth_parse(), "-"),
        (book_update(), "< 1 ms"),
        (feature_update(), "< 10 ms"),
        (risk_check(), "< 100 µs"),
        (paper_submit(), "< 50 ms"),
    ]


if __name__ == "__main__":
    from bench.common import HEADER

    start = time.time()
    print(HEADER)
    for lat, target in main():
        print(lat.row(target))
