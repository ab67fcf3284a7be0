"""CPU per depth frame of the ingestor, WebSocket bytes in to records acknowledged.

A child process serves recorded simulator frames (``backtest.synthetic``: 3 symbols,
trades and ``depthUpdate`` frames) over a WebSocket as fast as it can; this process reads
them with the ingestor's own read loop (``Ingestor._read_one``: socket read, parse, book
sync, publish) after applying each symbol's REST snapshot, and publishes every record to
the real broker, then waits until all are acknowledged (``flush``). CPU = this process's
user + system time (every thread: the Kafka client's included) from the first frame to
the last acknowledgement, divided by the depth frames. The garbage collector is settled
as ``algostream ingest`` settles it.

``python -m bench.ingest_cpu [--events N] [--publisher rdkafka|aiokafka] [--profile F]``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import websockets

from algostream.backtest.capture import REST_DEPTH_STREAM
from algostream.backtest.synthetic import synthetic_frames
from algostream.config import load_settings
from algostream.ingest import wsclient
from algostream.ingest.binance import BinanceAdapter
from algostream.ingest.feed import Ingestor
from algostream.kafka.catalog import load_catalog
from algostream.kafka.provision import apply_catalog, delete_run_topics
from algostream.observability import heap

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


class _Discard:
    """A publisher that drops every record (what the ingestor costs without a client)."""

    hands_over_inline = True

    def __init__(self) -> None:
        from algostream.kafka.publisher import DeliveryStats

        self.stats = DeliveryStats()

    async def start(self) -> None:
        pass

    async def publish(self, topic: str, record: Any) -> None:
        self.stats.sent += 1
        self.stats.delivered += 1

    async def flush(self) -> Any:
        return self.stats

    async def close(self) -> None:
        pass


def frames(events: int) -> tuple[list[tuple[str, str]], list[str]]:
    """(symbol, snapshot body) per symbol, then every later frame's text."""
    raws = synthetic_frames(SYMBOLS, seed=11, events=events, spacing_ms=1)
    snaps = [
        (r.instrument.partition(":")[2], r.payload) for r in raws if r.stream == REST_DEPTH_STREAM
    ]
    return snaps, [r.payload for r in raws if r.stream != REST_DEPTH_STREAM]


async def blast(events: int) -> None:
    """The child: serve the frames to the first client, as fast as the socket takes them."""
    _, texts = frames(events)
    done = asyncio.Event()

    async def handler(ws: Any) -> None:
        for text in texts:
            await ws.send(text)
        await ws.wait_closed()
        done.set()

    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await done.wait()


async def run(
    events: int,
    publisher: str,
    profile: str | None = None,
    raw_batch_ms: int | None = None,
    ws_client: str | None = None,
    **overrides: Any,
) -> dict[str, float]:
    prefix = f"ingcpu{int(time.time() * 1000) % 10**10}."
    env = {
        "ALGOSTREAM__KAFKA__BOOTSTRAP_SERVERS": os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        "ALGOSTREAM__KAFKA__TOPIC_PREFIX": prefix,
        "ALGOSTREAM__KAFKA__APP_ID": f"bench-{prefix.rstrip('.')}",  # what the clean-up owns
        "ALGOSTREAM__MARKET_DATA__SYMBOLS": '["' + '","'.join(SYMBOLS) + '"]',
    }
    if ws_client is not None:
        env["ALGOSTREAM__MARKET_DATA__WS_CLIENT"] = ws_client
    if raw_batch_ms is not None:  # md.raw: 0 = one record per frame
        env["ALGOSTREAM__MARKET_DATA__RAW_BATCH_MS"] = str(raw_batch_ms)
    settings = load_settings(env=env)
    report = await apply_catalog(load_catalog(), settings.kafka)
    assert report.ok, report.drift
    snaps, texts = frames(events)
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.ingest_cpu", "--blast", "--events", str(events)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(child.stdout.readline())  # type: ignore[union-attr]
        pub: Any
        if publisher == "none":  # the ingestor's own share: records dropped, not sent
            pub = _Discard()
        elif publisher == "aiokafka":
            from algostream.kafka.publisher import KafkaPublisher

            pub = KafkaPublisher(settings.kafka)
        else:
            from algostream.kafka.rdpublisher import RdKafkaPublisher

            pub = RdKafkaPublisher(settings.kafka, **overrides)
        await pub.start()
        adapter = BinanceAdapter(settings.market_data)
        async with httpx.AsyncClient() as http:
            ing = Ingestor(settings.market_data, adapter, pub, http)
            await ing._emit(adapter.on_connected(1, time.time_ns()))
            for sym, body in snaps:
                await ing._emit(adapter.on_snapshot_body(sym, body, time.time_ns()))
            await pub.flush()
            depth = sum(1 for t in texts if "depthUpdate" in t)
            stop = asyncio.Event()
            ws: Any
            if settings.market_data.ws_client == "picows":
                ws = await wsclient.connect(f"ws://127.0.0.1:{port}", max_size=2**24)
            else:
                ws = await websockets.connect(
                    f"ws://127.0.0.1:{port}", max_size=2**24, ping_interval=None
                )
            heap.settle()  # as `algostream ingest` does once started
            first = await ws.recv()
            prof = cProfile.Profile() if profile else None
            c0, w0 = time.process_time(), time.perf_counter()
            main0 = time.thread_time()
            if prof:
                prof.enable()
            await ing._on_text(first, 1)
            while ing.stats.frames < len(texts):
                await ing._read_one(ws, 1, 5.0, stop)
            await ing.flush_raw()
            stats = await pub.flush()
            c1, w1 = time.process_time(), time.perf_counter()
            main_cpu = time.thread_time()
            if prof and profile:
                prof.disable()
                prof.dump_stats(profile)
            await ws.close()
        await pub.close()
    finally:
        child.wait(10)
        await delete_run_topics(settings.kafka)  # a shared broker: leave no topics behind
    assert stats.failed == 0 and stats.delivered == stats.sent, stats
    assert ing.stats.malformed == 0
    return {
        "frames": len(texts),
        "depth_frames": depth,
        "records": stats.sent,
        "cpu_us_per_depth_frame": (c1 - c0) / depth * 1e6,
        "main_thread_us_per_depth_frame": (main_cpu - main0) / depth * 1e6,
        "frames_per_s": len(texts) / (w1 - w0),
        "wall_s": w1 - w0,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--profile")
    ap.add_argument("--publisher", default="rdkafka")
    ap.add_argument("--linger", type=float, default=None, help="librdkafka linger.ms")
    ap.add_argument("--raw-batch-ms", type=int, default=None, help="0: md.raw per frame")
    ap.add_argument("--ws-client", choices=["picows", "websockets"], default=None)
    ap.add_argument("--set", action="append", default=[], help="librdkafka KEY=VALUE")
    ap.add_argument("--blast", action="store_true", help="(the child that serves frames)")
    a = ap.parse_args()
    if a.blast:
        asyncio.run(blast(a.events))
        return
    over: dict[str, Any] = {} if a.linger is None else {"linger.ms": a.linger}
    over |= dict(kv.split("=", 1) for kv in a.set)
    out = asyncio.run(run(a.events, a.publisher, a.profile, a.raw_batch_ms, a.ws_client, **over))
    print(" ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
