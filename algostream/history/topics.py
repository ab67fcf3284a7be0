"""History to the catalog topics, with Kafka record timestamps = event time.

A record goes to its catalog topic (a trade to ``md.trades``, a bar to
``bars.<interval>``, ...) keyed by instrument, its Kafka timestamp its ``ts_event`` in
ms, so ``read_range``'s offsets-for-times (``backtest --from/--to``, ``replay``) finds it
by event time. The broker applies ``retention.ms`` to those timestamps: a topic this
import creates keeps its records forever, and an existing topic whose retention would
delete the file's oldest records at once is refused (import under another ``--prefix``).
A rejected row (with keep-going) goes to ``dlq`` with the file, line, column and reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from algostream.config import Settings
from algostream.history.errors import HistoryFormatError, HistoryTopicsError
from algostream.kafka.catalog import Catalog, load_catalog
from algostream.kafka.clients import make_producer
from algostream.kafka.provision import apply_catalog, describe
from algostream.model.ids import derive_id
from algostream.model.records import (
    Bar,
    BookUpdate,
    DeadLetter,
    RawFrame,
    Record,
    TradeTick,
)

_BATCH = 5_000


def topic_of(record: Record) -> str:
    """The catalog topic a history record belongs on."""
    if isinstance(record, TradeTick):
        return "md.trades"
    if isinstance(record, Bar):
        return f"bars.{record.interval}"
    if isinstance(record, BookUpdate):
        return "md.book"
    if isinstance(record, RawFrame):
        return "md.raw"
    raise HistoryTopicsError(f"{type(record).__name__} records are not history")


def dead_letter(error: HistoryFormatError, now_ns: int) -> DeadLetter:
    """The ``dlq`` record of a rejected row: file, line and column in ``source_*``."""
    return DeadLetter(
        instrument="HISTORY:FILE",
        ts_event=now_ns,
        ts_init=now_ns,
        record_id=derive_id("history-dlq", error.path, error.line, error.column),
        lineage_id=f"file:{error.path}:{error.line}"[:128],
        source_topic=f"file:{error.path}",
        partition=0,
        offset=error.line or 0,
        source_key=error.column,
        payload="",
        error_type=type(error).__name__,
        reason=str(error),
        agent="history-import",
    )


class TopicWriter:
    """Writes records to their topics; creates each topic on its first record."""

    def __init__(self, settings: Settings, prefix: str | None = None) -> None:
        self.settings = settings
        self.prefix = settings.kafka.topic_prefix if prefix is None else prefix
        self.catalog = load_catalog()
        self.producer: AIOKafkaProducer = make_producer(settings.kafka, linger_ms=20)
        self.ready: set[str] = set()
        self.pending: list[asyncio.Future[object]] = []
        self.written = 0

    async def __aenter__(self) -> TopicWriter:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                await self.flush()
        finally:
            await self.producer.stop()

    async def write(self, record: Record, topic: str | None = None) -> None:
        name = topic or topic_of(record)
        if name not in self.ready:
            await self._prepare(name, record.ts_event)
        fut = await self.producer.send(
            self.prefix + name,
            record.encode(),
            key=record.key.encode(),
            timestamp_ms=record.ts_event // 1_000_000,
        )
        self.pending.append(fut)
        if len(self.pending) >= _BATCH:
            await self.flush()

    async def flush(self) -> None:
        """Wait until every record sent so far is acknowledged (raises the first failure)."""
        done, self.pending = self.pending, []
        await asyncio.gather(*done)
        self.written += len(done)

    async def _prepare(self, name: str, oldest_ns: int) -> None:
        if name not in self.catalog:
            known = sorted(n for n in self.catalog if n.startswith("bars."))
            raise HistoryTopicsError(
                f"topic {name!r} is not in the catalog (topics/topics.toml; bars topics: "
                f"{', '.join(known)}): add it there, or import another interval"
            )
        full = self.prefix + name
        states = await describe(self.settings.kafka, [full])
        if full not in states:
            spec = dataclasses.replace(self.catalog[name], retention_ms=-1)
            await apply_catalog(Catalog({name: spec}), self.settings.kafka, prefix=self.prefix)
        else:
            check_retention(full, states[full].configs.get("retention.ms"), oldest_ns)
        self.ready.add(name)


def check_retention(topic: str, retention_ms: str | None, oldest_ns: int) -> None:
    """Refuse records the broker would delete at once by their (event-time) timestamps."""
    if retention_ms is None or int(retention_ms) < 0:
        return
    cutoff_ns = time.time_ns() - int(retention_ms) * 1_000_000
    if oldest_ns < cutoff_ns:
        first = datetime.fromtimestamp(oldest_ns / 1e9, UTC).isoformat()
        raise HistoryTopicsError(
            f"{topic} keeps records {int(retention_ms) / 86_400_000:g} days by their "
            f"timestamp (retention.ms={retention_ms}) and this history starts {first}: the "
            "broker would delete it. Import under a new --prefix (its topics keep "
            "everything) and run the backtest with that ALGOSTREAM__KAFKA__TOPIC_PREFIX"
        )


async def write_records(
    settings: Settings,
    records: Iterable[Record],
    prefix: str | None = None,
    errors: Callable[[], list[HistoryFormatError]] | None = None,
) -> int:
    """Write ``records`` (and the rejected rows ``errors()`` returns, to ``dlq``)."""
    async with TopicWriter(settings, prefix) as writer:
        for record in records:
            await writer.write(record)
        for error in errors() if errors is not None else []:
            await writer.write(dead_letter(error, time.time_ns()), "dlq")
        await writer.flush()
        return writer.written
