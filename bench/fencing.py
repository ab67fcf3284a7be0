"""A/B: what the trading worker's account transaction (``kafka.trading_transactions``,
``streams/fencing.py``) costs tick-to-trade, on the whole ``colocated`` pipeline.

Each run measures the pipeline bench's tick-to-trade (frame received -> paper fill
*sent*) and, with a ``read_committed`` consumer tailing ``orders.events`` meanwhile, how
long after it was sent a fill became visible to such a consumer (with transactions: the
commit of its gate batch; without: the hop alone). Runs alternate off/on.

    python -m bench.fencing --duration 40 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from aiokafka import AIOKafkaConsumer

from algostream.config import Settings
from algostream.kafka.headers import SENT_NS_HEADER
from algostream.model import OrderEvent
from bench.common import Latency, summarize
from bench.pipeline import FILL_STATUSES, run_pipeline


async def tail_fills(settings: Settings, seen: list[int]) -> None:
    """Append (arrival - sent) ns of every fill read, as a read_committed consumer."""
    consumer = AIOKafkaConsumer(
        settings.kafka.topic_prefix + "orders.events",
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.time_ns()
            for records in batch.values():
                for rec in records:
                    sent = dict(rec.headers or ()).get(SENT_NS_HEADER)
                    if sent is None or OrderEvent.decode(rec.value).status not in FILL_STATUSES:
                        continue
                    seen.append(now - int(sent))
    finally:
        await consumer.stop()


async def one(bootstrap: str, transactions: bool, duration_s: float) -> tuple[Latency, Latency]:
    seen: list[int] = []
    mode = "true" if transactions else "false"
    run = await run_pipeline(
        bootstrap,
        duration_s=duration_s,
        layout="colocated",
        extra_env={"ALGOSTREAM__KAFKA__TRADING_TRANSACTIONS": mode},
        watch=lambda settings: tail_fills(settings, seen),
    )
    if run.end_to_end is None or not seen:
        raise RuntimeError(f"no fills measured (transactions={mode})")
    return run.end_to_end, summarize("fill sent -> visible (read_committed)", seen)


def row(name: str, lat: Latency) -> str:
    return f"| {name} | {lat.n} | {lat.p50_us / 1000:.1f} | {lat.p99_us / 1000:.1f} |"


async def main(duration_s: float, rounds: int) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    print("| run | n | p50 ms | p99 ms |\n|---|---|---|---|")
    for _ in range(rounds):
        for transactions in (False, True):
            e2e, visible = await one(bootstrap, transactions, duration_s)
            tag = "transactions on" if transactions else "transactions off"
            print(row(f"{tag}: tick-to-trade (fill sent)", e2e))
            print(row(f"{tag}: fill sent -> visible", visible))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=float, default=40.0)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    asyncio.run(main(args.duration, args.rounds))
