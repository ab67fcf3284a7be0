"""The ingestor's connection loop, independent of the exchange.

An :class:`ExchangeAdapter` knows one exchange's URL, subscription messages and frame
parsing (pure); :class:`Ingestor` owns the sockets: it connects with ``picows``
(:mod:`algostream.ingest.wsclient`; ``market_data.ws_client: websockets`` for the
previous client; both answer server pings), reconnects with capped jittered backoff,
notices a silent feed (no frame for ``stale_after_ms``), rotates a connection before
the exchange's 24 h limit or on ``serverShutdown`` by opening the new one *before*
closing the old (the adapter drops what both deliver), fetches REST snapshots when the
adapter asks, and publishes every output. A malformed frame goes to ``dlq`` and the feed
keeps going.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import structlog
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from algostream.config import MarketDataConfig
from algostream.ingest import wsclient
from algostream.ingest.backoff import Backoff
from algostream.kafka.dlq import dead_letter
from algostream.kafka.publisher import Publisher
from algostream.marketdata.sync import integrity_event
from algostream.model.enums import IntegrityKind
from algostream.model.fast import from_fields
from algostream.model.ids import derive_id
from algostream.model.records import BookIntegrity, BookUpdate, RawFrame, Record
from algostream.observability import metrics

log = structlog.get_logger("algostream.ingest")


@dataclass
class FrameResult:
    """What an adapter made of one frame or snapshot."""

    records: list[tuple[str, Record]] = field(default_factory=list)
    snapshot_requests: list[str] = field(default_factory=list)  # symbols to (re)fetch
    rotate: bool = False  # e.g. Binance serverShutdown
    error: Exception | None = None  # malformed frame: goes to dlq


def route_book(records: list[Record], result: FrameResult) -> None:
    """Synced book updates go to ``md.book``, integrity events to ``book.integrity``."""
    for rec in records:
        if isinstance(rec, BookUpdate):
            result.records.append(("md.book", rec))
        else:
            result.records.append(("book.integrity", rec))
            if isinstance(rec, BookIntegrity):
                if rec.kind is IntegrityKind.GAP:
                    metrics.SEQUENCE_GAPS.labels(instrument=rec.instrument).inc()
                elif rec.kind is IntegrityKind.RESYNCED:
                    metrics.BOOK_RESYNCS.labels(instrument=rec.instrument).inc()


def feed_event(
    kind: IntegrityKind, instruments: list[str], now_ns: int, detail: str
) -> list[tuple[str, Record]]:
    """A connection-level integrity event (disconnect, silence) for every instrument."""
    return [
        (
            "book.integrity",
            BookIntegrity(
                instrument=inst,
                ts_event=now_ns,
                ts_init=now_ns,
                record_id=derive_id("feed", kind.value, inst, now_ns),
                lineage_id=f"feed:{now_ns}",
                kind=kind,
                detail=detail,
            ),
        )
        for inst in instruments
    ]


class FeedHealth:
    """What every adapter does when its feed goes down or silent: each instrument is told
    (``DISCONNECTED`` / ``STALE`` on ``book.integrity``) and kept as degraded, to be
    announced ``RESYNCED`` once its book is live again (by the adapter)."""

    exchange: str  # the metric label: "binance", "coinbase"
    instruments: dict[str, str]  # exchange symbol -> instrument id
    degraded: set[str]

    def __init__(self) -> None:
        #: instruments whose staleness gauge reads 0 already: :meth:`mark_fresh` sets it
        #: once, not on every update (a gauge takes a lock); emptied by :meth:`on_stale`
        self._gauge_fresh: set[str] = set()

    def mark_fresh(self, instrument: str) -> None:
        """An update of ``instrument`` arrived: its staleness gauge reads 0."""
        if instrument not in self._gauge_fresh:
            self._gauge_fresh.add(instrument)
            metrics.child(
                metrics.FEED_STALENESS_SECONDS, exchange=self.exchange, instrument=instrument
            ).set(0)

    def feed_down(self, kind: IntegrityKind, now_ns: int, detail: str) -> FrameResult:
        self.degraded.update(self.instruments.values())
        return FrameResult(
            records=feed_event(kind, list(self.instruments.values()), now_ns, detail)
        )

    def on_stale(self, now_ns: int, silent_s: float) -> FrameResult:
        self._gauge_fresh.clear()
        for inst in self.instruments.values():
            metrics.child(
                metrics.FEED_STALENESS_SECONDS, exchange=self.exchange, instrument=inst
            ).set(silent_s)
        return self.feed_down(IntegrityKind.STALE, now_ns, f"no frame for {silent_s:.1f}s")

    def live_again(
        self, snapshot: BookUpdate, update_id: int, detail: str, result: FrameResult
    ) -> None:
        """``snapshot`` (published in ``result``) made its instrument's book live: RESYNCED
        if the feed had gone down or silent for it, unless ``result`` says so already."""
        inst = snapshot.instrument
        if inst not in self.degraded:
            return
        self.degraded.discard(inst)
        if not any(
            isinstance(r, BookIntegrity)
            and r.kind is IntegrityKind.RESYNCED
            and r.instrument == inst
            for _, r in result.records
        ):
            event = integrity_event(IntegrityKind.RESYNCED, snapshot, detail, received=update_id)
            route_book([event], result)


class ExchangeAdapter(Protocol):
    venue: str

    def url(self) -> str: ...
    def subscribe_messages(self) -> list[str]: ...
    def on_connected(
        self,
        conn_id: int,
        now_ns: int,
        *,
        rotating: bool = False,
    ) -> FrameResult: ...
    def on_frame(self, conn_id: int, text: str, recv_ns: int) -> FrameResult: ...
    async def fetch_snapshot(
        self,
        http: httpx.AsyncClient,
        symbol: str,
        now_ns: int,
    ) -> FrameResult: ...
    def on_disconnected(self, now_ns: int, reason: str) -> FrameResult: ...
    def on_stale(self, now_ns: int, silent_s: float) -> FrameResult: ...


@dataclass
class IngestStats:
    frames: int = 0
    malformed: int = 0
    reconnects: int = 0
    rotations: int = 0
    stale: int = 0
    snapshots: int = 0
    published: int = 0


def _buffered(ws: Any) -> bool:
    """Whether a whole message already waits in ``ws``'s buffer (websockets' assembler
    queue), so ``recv`` returns it without waiting. A busy feed reads most frames so; for
    them no timeout is armed (``asyncio.timeout`` and its reschedule were ~12% of the read
    loop under py-spy). False whenever the library does not say (another version)."""
    buffered = getattr(ws, "buffered", None)  # PicowsConnection says it
    if buffered is not None:
        return bool(buffered())
    frames = getattr(getattr(ws, "recv_messages", None), "frames", None)
    try:
        queue = frames.queue  # type: ignore[union-attr]
        return bool(queue) and bool(queue[0].fin)
    except (AttributeError, IndexError):
        return False


class RawBatches:
    """``md.raw`` frames of each instrument gathered into one record (:attr:`RawFrame.more`)
    for up to ``window_ms``, ``max_frames`` frames or ``max_bytes`` of payload: one record
    through the Kafka client instead of one per frame. Same key (the instrument), frames in
    the order received: a batch is closed before the next one of its instrument opens."""

    def __init__(self, window_ms: int, max_frames: int, max_bytes: int = 256 * 1024) -> None:
        self.window_ns = window_ms * 1_000_000
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._open: dict[str, list[RawFrame]] = {}  # instrument -> its frames, in order
        self._bytes: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self._open)

    def add(self, raw: RawFrame) -> RawFrame | None:
        """Take ``raw``; the batch record of its instrument when that batch is complete."""
        inst = raw.instrument
        frames = self._open.get(inst)
        if frames is None:
            if self.max_frames <= 1:
                return raw
            self._open[inst] = [raw]
            self._bytes[inst] = len(raw.payload)
            return None
        if raw.ts_init - frames[0].ts_init >= self.window_ns:  # past the window: a new one
            closed = self._close(inst)
            self._open[inst] = [raw]
            self._bytes[inst] = len(raw.payload)
            return closed
        frames.append(raw)
        size = self._bytes[inst] = self._bytes[inst] + len(raw.payload)
        if len(frames) >= self.max_frames or size >= self.max_bytes:
            return self._close(inst)
        return None

    def due(self, now_ns: int) -> list[RawFrame]:
        """Close every batch whose first frame is ``window_ms`` old at ``now_ns``."""
        late = [i for i, f in self._open.items() if now_ns - f[0].ts_init >= self.window_ns]
        return [self._close(inst) for inst in late]

    def drain(self) -> list[RawFrame]:
        """Close every open batch."""
        return [self._close(inst) for inst in list(self._open)]

    def _close(self, inst: str) -> RawFrame:
        frames = self._open.pop(inst)
        del self._bytes[inst]
        first = frames[0]
        if len(frames) == 1:
            return first
        fields = dict(first.__dict__)  # every field in declared order, ``more`` last
        fields["more"] = tuple([(f.ts_init, f.stream, f.payload) for f in frames[1:]])
        return from_fields(RawFrame, fields)


class Ingestor:
    """Run one exchange feed until ``stop`` is set."""

    def __init__(
        self,
        cfg: MarketDataConfig,
        adapter: ExchangeAdapter,
        publisher: Publisher,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg = cfg
        self.adapter = adapter
        self.publisher = publisher
        self.http = http
        self.clock = clock
        self.backoff = Backoff(
            cfg.reconnect_delay_ms, cfg.max_reconnect_delay_ms, rng or random.Random()
        )
        self.stats = IngestStats()
        self._conn_seq = 0
        self._active: int | None = None
        self._rotate_now = asyncio.Event()
        self._snapshot_tasks: dict[str, asyncio.Task[None]] = {}
        self.connected = asyncio.Event()
        # a publisher that hands each record to its client inside ``publish`` (librdkafka)
        # needs no turn of the loop per frame; one that sends from a task does (below)
        self._yield_every = 32 if getattr(publisher, "hands_over_inline", False) else 1
        self._out: dict[str, Any] = {}  # topic -> its messages-out counter
        self._out_n: dict[str, int] = {}  # topic -> published, not yet on the counter
        # a publisher that can take a record without a coroutine (False: await publish)
        self._try_publish: Callable[[str, Record], bool] | None = getattr(
            publisher, "try_publish", None
        )
        # md.raw batched per instrument (RawBatches) when the publisher takes a record
        # without awaiting (the batch timer publishes from a loop callback)
        batch_ms = cfg.raw_batch_ms if self._try_publish is not None else 0
        self._raw = RawBatches(batch_ms, cfg.raw_batch_frames if batch_ms > 0 else 1)
        self._raw_timer: asyncio.TimerHandle | None = None
        self._raw_late: list[RawFrame] = []  # closed batches the publisher could not take
        metrics.DLQ_RECORDS.labels(
            agent="ingestor", topic=f"ws:{adapter.venue.lower()}", error_type="FrameError"
        )

    # ------------------------------------------------------------------ outputs
    def count_out(self) -> None:
        """Add what was published since the last call to ``algostream_messages_out_total``:
        a counter takes a lock, so it is told every few frames (and every 0.2 s), not per
        record."""
        for topic, n in self._out_n.items():
            counter = self._out.get(topic)
            if counter is None:
                counter = self._out[topic] = metrics.child(
                    metrics.MESSAGES_OUT, agent="ingestor", topic=topic
                )
            counter.inc(n)
        self._out_n.clear()

    async def _count_out_every(self, interval_s: float = 0.2) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.count_out()

    async def _emit(self, result: FrameResult) -> None:
        publish, out = self.publisher.publish, self._out_n
        fast = self._try_publish
        if self._raw_late:
            await self._publish_late()
        published = 0
        for topic, record in result.records:
            if topic == "md.raw" and type(record) is RawFrame:
                opened = bool(self._raw)
                batch = self._raw.add(record)
                if batch is None:
                    if not opened:
                        self._arm_raw_timer()
                    continue
                record = batch
            if fast is None or not fast(topic, record):
                await publish(topic, record)
            out[topic] = out.get(topic, 0) + 1  # on the counter at the next count_out()
            published += 1
        self.stats.published += published
        for symbol in result.snapshot_requests:
            task = self._snapshot_tasks.get(symbol)
            if task is None or task.done():
                self._snapshot_tasks[symbol] = asyncio.create_task(self._snapshot(symbol))
        if result.rotate:
            self._rotate_now.set()

    def _arm_raw_timer(self) -> None:
        """Close the open ``md.raw`` batches once their window has passed (a quiet feed)."""
        if self._raw_timer is None:
            loop = asyncio.get_running_loop()
            self._raw_timer = loop.call_later(self._raw.window_ns / 1e9, self._raw_due)

    def _raw_due(self) -> None:
        self._raw_timer = None
        self._publish_raw(self._raw.due(self.clock()))
        if self._raw:
            self._arm_raw_timer()

    def _publish_raw(self, batches: list[RawFrame]) -> None:
        """Hand closed batches to the publisher from a callback; what it cannot take now
        waits in order for the next :meth:`_emit` (or the end of :meth:`run`)."""
        fast, out = self._try_publish, self._out_n
        for batch in batches:
            if self._raw_late or fast is None or not fast("md.raw", batch):
                self._raw_late.append(batch)
                continue
            out["md.raw"] = out.get("md.raw", 0) + 1
            self.stats.published += 1

    async def _publish_late(self) -> None:
        while self._raw_late:
            batch = self._raw_late.pop(0)
            await self.publisher.publish("md.raw", batch)
            self._out_n["md.raw"] = self._out_n.get("md.raw", 0) + 1
            self.stats.published += 1

    async def flush_raw(self) -> None:
        """Publish every open ``md.raw`` batch now (the feed stops)."""
        if self._raw_timer is not None:
            self._raw_timer.cancel()
            self._raw_timer = None
        self._raw_late.extend(self._raw.drain())
        await self._publish_late()

    async def _snapshot(self, symbol: str) -> None:
        backoff = Backoff(200, 5000, random.Random())
        while True:
            try:
                result = await self.adapter.fetch_snapshot(self.http, symbol, self.clock())
                self.stats.snapshots += 1
                await self._emit(result)
                return
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("snapshot fetch failed", symbol=symbol, error=str(exc))
                await asyncio.sleep(backoff.next_delay_s())

    async def _malformed(self, text: str, exc: Exception, conn_id: int) -> None:
        self.stats.malformed += 1
        now = self.clock()
        letter = dead_letter(
            agent="ingestor",
            topic=f"ws:{self.adapter.venue.lower()}",
            partition=conn_id,
            offset=self.stats.frames,
            key=None,
            payload=text,
            error=exc,
            ts_event=now,
            now_ns=now,
        )
        await self.publisher.publish("dlq", letter)
        metrics.DLQ_RECORDS.labels(
            agent="ingestor", topic=letter.source_topic, error_type=letter.error_type
        ).inc()

    # ------------------------------------------------------------------ sockets
    async def run(self, stop: asyncio.Event) -> IngestStats:
        """Connect, read, reconnect and rotate until ``stop`` is set."""
        counting = asyncio.create_task(self._count_out_every(), name="ingest-count-out")
        try:
            return await self._run(stop)
        finally:
            counting.cancel()
            await self.flush_raw()
            self.count_out()

    async def _run(self, stop: asyncio.Event) -> IngestStats:
        while not stop.is_set():
            conn_id = self._next_conn()
            try:
                await self._session(conn_id, stop)
                self.backoff.reset()
            except (TimeoutError, OSError, ConnectionClosed, InvalidHandshake, InvalidURI) as exc:
                await self._emit(self.adapter.on_disconnected(self.clock(), repr(exc)))
                log.warning("feed disconnected", venue=self.adapter.venue, error=repr(exc))
            if stop.is_set():
                break
            self.stats.reconnects += 1
            metrics.WS_RECONNECTS.labels(exchange=self.adapter.venue.lower()).inc()
            delay = self.backoff.next_delay_s()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        for task in self._snapshot_tasks.values():
            task.cancel()
        return self.stats

    def _next_conn(self) -> int:
        self._conn_seq += 1
        return self._conn_seq

    async def _session(self, conn_id: int, stop: asyncio.Event) -> None:
        """One connection; hands over to a fresh one when a rotation is due."""
        ws = await self._open(conn_id)
        opened = time.monotonic()
        try:
            while not stop.is_set():
                rotate_in = self.cfg.rotate_after_s - (time.monotonic() - opened)
                if self._rotate_now.is_set() or rotate_in <= 0:
                    ws = await self._rotate(ws, conn_id := self._next_conn())
                    opened = time.monotonic()
                    continue
                await self._read_one(
                    ws, conn_id, min(rotate_in, self.cfg.stale_after_ms / 1000), stop
                )
        finally:
            await ws.close()

    async def _open(self, conn_id: int, *, rotating: bool = False) -> Any:
        ws: Any
        if self.cfg.ws_client == "picows":  # C frame parser (wsclient.py)
            ws = await wsclient.connect(self.adapter.url(), max_size=2**24, open_timeout=10)
        else:
            ws = await websockets.connect(
                self.adapter.url(),
                max_size=2**24,
                ping_interval=None,
                open_timeout=10,
                close_timeout=2,
            )
        for message in self.adapter.subscribe_messages():
            await ws.send(message)
        self._active = conn_id
        self.connected.set()
        await self._emit(self.adapter.on_connected(conn_id, self.clock(), rotating=rotating))
        log.info("feed connected", venue=self.adapter.venue, conn=conn_id)
        return ws

    async def _read_one(self, ws: Any, conn_id: int, timeout_s: float, stop: asyncio.Event) -> None:
        if _buffered(ws):  # recv returns it at once: no deadline to arm
            await self._on_text(await ws.recv(), conn_id)
            if self.stats.frames % self._yield_every == 0:
                self.count_out()
                await asyncio.sleep(0)
            return
        try:  # asyncio.timeout, not wait_for: no task per frame
            async with asyncio.timeout(max(timeout_s, 0.001)):
                text = await ws.recv()
        except TimeoutError:
            silent = self.cfg.stale_after_ms / 1000
            if timeout_s >= silent:  # a genuine silence, not a rotation deadline
                self.stats.stale += 1
                await self._emit(self.adapter.on_stale(self.clock(), silent))
                raise
            return
        await self._on_text(text, conn_id)
        # let the publisher's sender hand this frame's records to the producer before the
        # next frame is parsed (recv returns without yielding when frames are buffered:
        # `make bench`: md.trades sent 0.47 ms after its frame at p50 without this, 0.16 with);
        # a publisher that hands them over inline only needs other tasks to get a turn
        if self.stats.frames % self._yield_every == 0:
            self.count_out()
            await asyncio.sleep(0)

    async def _on_text(self, text: str | bytes, conn_id: int) -> None:
        recv_ns = self.clock()
        self.stats.frames += 1
        raw = text.decode() if isinstance(text, bytes) else text
        result = self.adapter.on_frame(conn_id, raw, recv_ns)
        if result.error is not None:
            await self._malformed(raw, result.error, conn_id)
        await self._emit(result)

    async def _rotate(self, old: Any, conn_id: int) -> Any:
        """Open the new connection, drain the old briefly, then close it (no gap)."""
        self._rotate_now.clear()
        self.stats.rotations += 1
        new = await self._open(conn_id, rotating=True)
        first = asyncio.ensure_future(new.recv())
        # keep reading the old socket until the new one delivers its first frame
        while not first.done():
            recv_old = asyncio.ensure_future(old.recv())
            done, _ = await asyncio.wait(
                {first, recv_old}, timeout=5, return_when=asyncio.FIRST_COMPLETED
            )
            if recv_old in done and recv_old.exception() is None:
                await self._on_text(recv_old.result(), conn_id - 1)
            else:
                recv_old.cancel()
                if not done:
                    break
                if recv_old in done:
                    break
        await old.close()
        if first.done() and first.exception() is None:
            await self._on_text(first.result(), conn_id)
        else:
            first.cancel()
        return new
