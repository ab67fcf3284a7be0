"""``algostream ingest``: run the configured exchange feed into the md.* topics."""

from __future__ import annotations

import asyncio
import importlib
import signal

import httpx
import structlog

from algostream.config import ConfigError, Settings
from algostream.ingest.feed import Ingestor, IngestStats
from algostream.kafka.publisher import KafkaPublisher
from algostream.observability import heap

log = structlog.get_logger("algostream.ingest")


def make_adapter(settings: Settings):  # type: ignore[no-untyped-def]
    """The adapter for ``market_data.exchange``."""
    md = settings.market_data
    if md.exchange == "binance":
        from algostream.ingest.binance import BinanceAdapter

        return BinanceAdapter(md)
    try:
        module = importlib.import_module("algostream.ingest.coinbase")
    except ModuleNotFoundError:
        raise ConfigError(
            f"market_data.exchange = {md.exchange!r}: no ingest adapter for it in this build "
            "(binance is supported)"
        ) from None
    return module.CoinbaseAdapter(md)


async def ingest(
    settings: Settings, stop: asyncio.Event | None = None, *, settle_heap: bool = False
) -> IngestStats:
    """Run until ``stop`` (or SIGTERM/SIGINT); flush every record before returning.
    ``settle_heap``: the process's start-up heap is frozen once the producer has started
    (:func:`algostream.observability.heap.settle`; the ``ingest`` command)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    publisher = KafkaPublisher(settings.kafka)
    await publisher.start()
    if settle_heap:
        heap.settle()
    async with httpx.AsyncClient(base_url=settings.market_data.rest_url, timeout=10) as http:
        ingestor = Ingestor(settings.market_data, make_adapter(settings), publisher, http)
        try:
            stats = await ingestor.run(stop)
        finally:
            delivery = await publisher.flush()
            await publisher.close()
    log.info(
        "ingestor stopped",
        frames=stats.frames,
        published=stats.published,
        delivered=delivery.delivered,
        failed=delivery.failed,
        stalls=delivery.stalls,
        malformed=stats.malformed,
        reconnects=stats.reconnects,
        snapshots=stats.snapshots,
    )
    return stats


def run_ingest(settings: Settings, metrics_port: int | None = None) -> None:
    from algostream.kafka.reachability import wait_for_kafka
    from algostream.model.ids import instrument_id
    from algostream.observability.logging import configure_logging, register_secrets_from
    from algostream.observability.metrics import WORKER_UP, preregister, start_metrics_server

    configure_logging(settings.observability)
    register_secrets_from(settings)
    md = settings.market_data
    preregister(
        instruments=[instrument_id(md.exchange, s) for s in md.symbols],
        exchanges=[md.exchange],
        agents=["ingestor"],
    )
    port = settings.observability.metrics_port if metrics_port is None else metrics_port
    bound = start_metrics_server(port, addr=settings.observability.metrics_host)
    print(f"ingestor: metrics on port {bound} (/metrics)", flush=True)
    wait_for_kafka(settings.kafka.bootstrap_servers)
    WORKER_UP.labels(agent="ingestor").set(1)
    heap.watch()
    asyncio.run(ingest(settings, settle_heap=True))
