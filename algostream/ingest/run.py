"""``algostream ingest``: run the configured exchange feed into the md.* topics."""

from __future__ import annotations

import asyncio
import importlib
import signal

import httpx
import structlog

from algostream.config import ConfigError, KafkaConfig, MarketDataConfig, Settings
from algostream.ingest.feed import Ingestor, IngestStats
from algostream.ingest.shard import shard_symbols
from algostream.kafka.publisher import KafkaPublisher
from algostream.kafka.rdpublisher import RdKafkaPublisher
from algostream.model.enums import IntegrityKind
from algostream.model.records import BookIntegrity
from algostream.observability import heap

log = structlog.get_logger("algostream.ingest")


def shard_config(md: MarketDataConfig) -> MarketDataConfig:
    """``md`` with only the symbols of its ``shard`` (README: sharding)."""
    if md.shard is None:
        return md
    mine = shard_symbols(md.symbols, md.shard)
    if not mine:
        raise ConfigError(
            f"market_data.shard = {md.shard!r}: no symbol for this shard "
            f"({len(set(md.symbols))} symbols): use fewer shards"
        )
    return md.model_copy(update={"symbols": mine})


def make_publisher(cfg: KafkaConfig) -> KafkaPublisher | RdKafkaPublisher:
    """The ingestor's publisher (``kafka.ingest_client``)."""
    if cfg.ingest_client == "aiokafka":
        return KafkaPublisher(cfg)
    return RdKafkaPublisher(cfg)


def make_adapter(settings: Settings):  # type: ignore[no-untyped-def]
    """The adapter for ``market_data.exchange`` (this shard's symbols)."""
    md = shard_config(settings.market_data)
    if md.exchange == "binance":
        from algostream.ingest.binance import BinanceAdapter

        return BinanceAdapter(md)
    if md.exchange == "binance_usdm":
        from algostream.ingest.binance_usdm import BinanceUsdmAdapter

        return BinanceUsdmAdapter(md)
    try:
        module = importlib.import_module("algostream.ingest.coinbase")
    except ModuleNotFoundError:
        raise ConfigError(
            f"market_data.exchange = {md.exchange!r}: no ingest adapter for it in this build "
            "(binance is supported)"
        ) from None
    return module.CoinbaseAdapter(md)


#: records of ``book.integrity`` read back per partition at start (:func:`open_problems`)
INTEGRITY_TAIL = 1000


async def open_problems(cfg: KafkaConfig, timeout_s: float = 15.0) -> dict[str, IntegrityKind]:
    """The instruments whose last ``book.integrity`` event (of the last
    :data:`INTEGRITY_TAIL` per partition) is a problem, not RESYNCED: a DISCONNECTED or GAP
    an earlier ingestor announced and never cleared (it was killed first). A new ingestor
    keeps them degraded (:class:`FeedHealth`), so its first snapshot announces RESYNCED
    and the gate does not stay REDUCING. ``{}`` if the broker cannot say in time."""
    from aiokafka import TopicPartition

    from algostream.kafka.catalog import load_catalog
    from algostream.kafka.clients import make_consumer

    spec = load_catalog()["book.integrity"]
    topic = spec.full_name(cfg.topic_prefix)
    consumer = make_consumer(cfg, group_id=None)
    last: dict[str, IntegrityKind] = {}
    try:
        await asyncio.wait_for(consumer.start(), timeout_s)
        tps = [TopicPartition(topic, p) for p in range(spec.partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(starts[tp], ends[tp] - INTEGRITY_TAIL))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if loop.time() > deadline:
                raise TimeoutError(f"{topic} not read to its end in {timeout_s:.0f}s")
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    _note(last, rec.value)
    except Exception as exc:  # start anyway: the market worker's STALE still covers it
        log.warning("open integrity problems not read", topic=topic, error=repr(exc))
        return {}
    finally:
        await consumer.stop()
    return {inst: kind for inst, kind in last.items() if kind is not IntegrityKind.RESYNCED}


def _note(last: dict[str, IntegrityKind], value: bytes | None) -> None:
    try:
        event = BookIntegrity.decode(value or b"")
    except Exception:  # an undecodable record says nothing about an instrument
        return
    last[event.instrument] = event.kind


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
    publisher = make_publisher(settings.kafka)
    await publisher.start()
    if settle_heap:
        heap.settle()
    async with httpx.AsyncClient(base_url=settings.market_data.rest_url, timeout=10) as http:
        adapter = make_adapter(settings)
        problems = await open_problems(settings.kafka)
        held = {i: k.value for i, k in problems.items() if i in adapter.instruments.values()}
        if held:  # announced by an ingestor that did not clear them: RESYNCED when live
            log.info("instruments left degraded by an earlier ingestor", instruments=held)
            adapter.degraded.update(held)
        ingestor = Ingestor(adapter.cfg, adapter, publisher, http)
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
    md = shard_config(settings.market_data)
    if md.shard is not None:
        print(f"ingestor: shard {md.shard}: {len(md.symbols)} symbols", flush=True)
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
