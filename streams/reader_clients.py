"""The Kafka clients under :class:`~streams.reader.PartitionReader` (``kafka.reader_client``).

The reader needs little of a consumer: start at given offsets of its partitions (manual
assignment, no group membership), take batches, commit offsets in its own group, and say
each partition's end offset and when it was last fetched. :class:`AiokafkaClient` does it
with aiokafka on the event loop (every fetch response parsed in Python on the worker's
loop, ~20 µs of CPU per ``md.book`` record in a draining market worker);
:class:`RdkafkaClient` with librdkafka (``confluent-kafka``), whose own threads fetch and
parse in C while the loop takes ready batches (``consume``) from its queue.

Both keep the reader's rules: a batch is handed out in offset order per partition; offsets
are committed only when the reader asks (after its producer flush); an assignment is
replaced at every hand-over and take-over, and nothing fetched for an earlier one is
handed out after it (the reader also drops a batch fetched across a hand-over).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as RdPartition

from algostream.config import KafkaConfig
from algostream.kafka.clients import make_consumer
from algostream.kafka.rdpublisher import CLIENT_LOG, rdkafka_config

log = structlog.get_logger("algostream.streams")

#: librdkafka's statistics (each broker's time since it last answered) this often: how
#: fresh :meth:`RdkafkaClient.fetched_at_ns` is
STATS_INTERVAL_MS = 100
#: blocking calls (committed offsets, watermarks, commits) give up after this long
CALL_TIMEOUT_S = 15.0


class ReaderClient(Protocol):
    """What :class:`~streams.reader.PartitionReader` asks of its consumer."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def committed(self, tps: list[TopicPartition]) -> dict[TopicPartition, int | None]:
        """The group's committed offset of each partition (None: none)."""
        ...

    async def begin(self, start: dict[TopicPartition, int | None]) -> dict[TopicPartition, int]:
        """Read exactly these partitions, each from its offset (None: the log start);
        returns the offsets reading starts from."""
        ...

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    async def unassign(self) -> None: ...

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        """Up to ``max_records`` records, by partition in offset order; ``{}`` after
        ``timeout_ms`` with none. A record has ``topic``, ``partition``, ``offset``,
        ``key``, ``value`` and ``timestamp`` (ms)."""
        ...

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...

    def highwater(self, tp: TopicPartition) -> int | None:
        """The partition's end offset as of its last fetch (None: unknown, not assigned)."""
        ...

    def fetched_at_ns(self, tp: TopicPartition) -> int | None:
        """Wall time (ns) up to which the partition's records have been fetched (None:
        not fetched since assigned here, or not assigned)."""
        ...


class AiokafkaClient:
    """aiokafka's consumer on the event loop (the reader's client before librdkafka)."""

    def __init__(self, cfg: KafkaConfig, **kwargs: Any) -> None:
        self.consumer: AIOKafkaConsumer = make_consumer(cfg, **kwargs)

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()

    async def committed(self, tps: list[TopicPartition]) -> dict[TopicPartition, int | None]:
        return {tp: await self.consumer.committed(tp) for tp in tps}

    async def begin(self, start: dict[TopicPartition, int | None]) -> dict[TopicPartition, int]:
        consumer = self.consumer
        consumer.assign(list(start))
        out = {}
        for tp, offset in start.items():
            if offset is None:
                await consumer.seek_to_beginning(tp)
                offset = await consumer.position(tp)
            else:
                consumer.seek(tp, offset)
            out[tp] = offset
        return out

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict(await self.consumer.end_offsets(tps)) if tps else {}

    async def unassign(self) -> None:
        self.consumer.assign([])

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        batch: dict[TopicPartition, list[Any]] = await self.consumer.getmany(
            timeout_ms=timeout_ms, max_records=max_records
        )
        return batch

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self.consumer.commit(offsets)

    def highwater(self, tp: TopicPartition) -> int | None:
        try:
            high: int | None = self.consumer.highwater(tp)
        except Exception:  # not assigned (any more)
            return None
        return high

    def fetched_at_ns(self, tp: TopicPartition) -> int | None:
        try:
            ms = self.consumer.last_poll_timestamp(tp)
        except Exception:  # not assigned (any more)
            return None
        return None if ms is None else int(ms) * 1_000_000


class RdRecord:
    """One librdkafka message as the stages read records: ``value`` and ``offset`` taken
    at once (every record's), the rest when asked (a dead letter's)."""

    __slots__ = ("_msg", "offset", "value")

    def __init__(self, msg: Message) -> None:
        self._msg = msg
        self.value: bytes | None = msg.value()
        self.offset: int = msg.offset()  # type: ignore[assignment]

    @property
    def topic(self) -> str | None:
        return self._msg.topic()

    @property
    def partition(self) -> int | None:
        return self._msg.partition()

    @property
    def key(self) -> bytes | None:
        return self._msg.key()

    @property
    def timestamp(self) -> int:
        """Kafka timestamp (ms), as aiokafka's records have it."""
        return self._msg.timestamp()[1]


class RdkafkaClient:
    """librdkafka's consumer (module doc): manual assignment at given offsets, no group
    membership; librdkafka's threads keep each assigned partition's next records queued,
    and :meth:`getmany` takes what is queued without leaving the event loop (waiting for
    more in a thread of its own only when nothing is)."""

    def __init__(
        self,
        cfg: KafkaConfig,
        *,
        group_id: str,
        client_id: str,
        fetch_max_wait_ms: int,
        fetch_min_bytes: int = 1,
        isolation_level: str = "read_uncommitted",
        **overrides: Any,
    ) -> None:
        base = rdkafka_config(cfg)
        conf: dict[str, Any] = {  # connection and security only, from the producer's
            k: v
            for k, v in base.items()
            if k.startswith(("bootstrap.", "security.", "ssl.", "sasl.", "socket."))
        }
        self.conf = (
            conf
            | {
                "client.id": client_id,
                "group.id": group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "isolation.level": isolation_level,
                "fetch.wait.max.ms": fetch_max_wait_ms,
                "fetch.min.bytes": fetch_min_bytes,
                # prefetch per partition: enough for many batches, bounded in memory
                "queued.min.messages": 20_000,
                "queued.max.messages.kbytes": 16_384,
                "enable.partition.eof": False,
                "statistics.interval.ms": STATS_INTERVAL_MS,
                "log_level": 4,
            }
            | overrides
        )
        self.consumer: Consumer | None = None
        self._consume: Callable[..., list[Message]] | None = None
        self._waiter = ThreadPoolExecutor(1, thread_name_prefix="rdkafka-consume")
        self._tps: dict[tuple[str, int], TopicPartition] = {}  # assigned, as the reader's
        #: broker node id -> wall time (ns) it last answered, from librdkafka's statistics
        self._rx_ns: dict[int, int] = {}
        #: (topic, partition) -> its leader's node id, from the same statistics
        self._leader: dict[tuple[str, int], int] = {}
        #: (topic, partition) -> its end offset at the last fetch (:meth:`_watch_ends`)
        self._high: dict[tuple[str, int], int] = {}
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        #: synchronous commits in flight (in threads): while one is, librdkafka's consume
        #: can wait for it (seen: 45 s on the event loop's thread in a broker outage,
        #: every timer of the worker stopped, no STALE), so getmany consumes off the loop
        self._committing = 0

    async def start(self) -> None:
        self.consumer = Consumer(
            self.conf | {"error_cb": _on_error, "stats_cb": self._on_stats, "logger": CLIENT_LOG}
        )
        self._consume = self.consumer.consume
        self._watcher = threading.Thread(target=self._watch_ends, name="rdkafka-ends", daemon=True)
        self._watcher.start()

    def _client(self) -> Consumer:
        if self.consumer is None:
            raise RuntimeError("the reader's librdkafka consumer is not started")
        return self.consumer

    async def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            await asyncio.to_thread(self._watcher.join)
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            await asyncio.to_thread(consumer.close)
        self._waiter.shutdown(wait=False)

    async def committed(self, tps: list[TopicPartition]) -> dict[TopicPartition, int | None]:
        if not tps:
            return {}
        found = await _retrying(
            self._client().committed, [RdPartition(tp.topic, tp.partition) for tp in tps]
        )
        offsets = {(p.topic, p.partition): p.offset for p in found}
        return {
            tp: (o if (o := offsets.get((tp.topic, tp.partition), -1)) >= 0 else None) for tp in tps
        }

    async def begin(self, start: dict[TopicPartition, int | None]) -> dict[TopicPartition, int]:
        consumer = self._client()
        out = {}
        for tp, offset in start.items():
            if offset is None:  # the log start, as a number (the reader's processed offset)
                low, _ = await _retrying(
                    consumer.get_watermark_offsets, RdPartition(tp.topic, tp.partition)
                )
                offset = max(low, 0)
            out[tp] = offset
        self._tps = {(tp.topic, tp.partition): tp for tp in out}
        self._high = {}
        await asyncio.to_thread(
            consumer.assign, [RdPartition(tp.topic, tp.partition, o) for tp, o in out.items()]
        )
        return out

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        consumer, out = self._client(), {}
        for tp in tps:
            _, high = await _retrying(
                consumer.get_watermark_offsets, RdPartition(tp.topic, tp.partition)
            )
            out[tp] = high
        return out

    async def unassign(self) -> None:
        self._tps = {}
        await asyncio.to_thread(self._client().unassign)

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        consume = self._consume
        if consume is None:
            raise RuntimeError("the reader's librdkafka consumer is not started")
        if self._committing:  # consume may wait for the commit: not on the loop's thread
            msgs = await asyncio.get_running_loop().run_in_executor(
                self._waiter, consume, max_records, 0
            )
        else:
            msgs = consume(max_records, 0)  # what is queued (no wait: the loop's thread)
        if not msgs:  # nothing yet: wait off the loop for the first record only
            # (``consume`` with a timeout waits for a whole batch or the timeout: a quiet
            # instrument's update was handed out ~100 ms late on average)
            first = await asyncio.get_running_loop().run_in_executor(
                self._waiter, self._client().poll, timeout_ms / 1000
            )
            if first is None:
                return {}
            msgs = [first, *consume(max_records - 1, 0)]
        out: dict[TopicPartition, list[Any]] = {}
        tps = self._tps
        last_key: tuple[str, int] | None = None
        part: list[Any] = []
        for msg in msgs:
            err = msg.error()
            if err is not None:
                _on_error(err)
                continue
            key = (msg.topic(), msg.partition())
            if key != last_key:
                tp = tps.get(key)  # type: ignore[arg-type]
                if tp is None:  # not assigned (any more): fetched for an earlier one
                    last_key, part = None, []
                    continue
                part = out.setdefault(tp, [])
                last_key = key  # type: ignore[assignment]
            part.append(RdRecord(msg))
        return out

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Synchronous commit in a thread. A failure that is not for good (the coordinator
        moving, loading or away: a broker outage) is tried again until it succeeds, as
        aiokafka's commit does; one for good (not authorised, a fatal client error)
        raises."""
        consumer = self._client()
        parts = [RdPartition(tp.topic, tp.partition, o) for tp, o in offsets.items()]
        delay = 0.1
        self._committing += 1
        try:
            while True:
                err: KafkaError | None = None
                try:
                    done = await asyncio.to_thread(
                        consumer.commit, offsets=parts, asynchronous=False
                    )
                    failed = [p.error for p in done or () if p.error is not None]
                    err = failed[0] if failed else None
                except KafkaException as exc:
                    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                    if err is None:
                        raise
                if err is None:
                    return
                if err.fatal() or err.code() in _FOR_GOOD:
                    raise KafkaException(err)
                log.warning("reader commit failed, retrying", error=str(err))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        finally:
            self._committing -= 1

    def highwater(self, tp: TopicPartition) -> int | None:
        """As the watcher thread last read it (:meth:`_watch_ends`), never a call into
        the client on the loop's thread: ``get_watermark_offsets``, even cached, takes the
        client's locks, and with the broker away the loop was seen waiting there (a
        broker-outage run: the worker blocked for 90 s and restarted)."""
        key = (tp.topic, tp.partition)
        return self._high.get(key) if key in self._tps else None

    def fetched_at_ns(self, tp: TopicPartition) -> int | None:
        """When the partition's leader last answered this consumer (librdkafka's
        statistics, every :data:`STATS_INTERVAL_MS`), less one fetch wait: librdkafka keeps
        a fetch in flight to it, answered at the latest after ``fetch.wait.max.ms``, so the
        records it had by then are fetched. A broker away answers nothing: the time stays."""
        key = (tp.topic, tp.partition)
        if key not in self._tps:
            return None
        leader = self._leader.get(key)
        rx = None if leader is None else self._rx_ns.get(leader)
        if rx is None:
            return None
        return rx - int(self.conf["fetch.wait.max.ms"]) * 1_000_000

    def _on_stats(self, raw: str) -> None:
        """librdkafka's statistics (served by ``consume``): each broker's last answer and
        each assigned partition's leader."""
        now = time.time_ns()
        stats = orjson.loads(raw)
        for broker in stats.get("brokers", {}).values():
            node, idle = broker.get("nodeid", -1), broker.get("rxidle", -1)
            if node >= 0 and idle >= 0 and broker.get("state") == "UP":
                self._rx_ns[node] = now - idle * 1000
        for name, topic in stats.get("topics", {}).items():
            for pid, partition in topic.get("partitions", {}).items():
                leader = partition.get("leader", -1)
                if int(pid) >= 0 and leader >= 0:
                    self._leader[(name, int(pid))] = leader

    def _watch_ends(self) -> None:
        """A thread: every :data:`STATS_INTERVAL_MS`, each assigned partition's end offset
        as librdkafka's fetcher last saw it (its cached watermark). Not from the statistics:
        those are served by ``consume``/``poll``, so a reader that hangs (the stage
        watchdog's case) would stop seeing its partitions grow and never look behind."""
        while not self._stopping.wait(STATS_INTERVAL_MS / 1000):
            consumer = self.consumer
            if consumer is None:
                continue
            for key in list(self._tps):
                try:
                    _, high = consumer.get_watermark_offsets(RdPartition(*key), cached=True)
                except (KafkaException, RuntimeError):  # not known yet, or closed
                    continue
                if high >= 0 and key in self._tps:
                    self._high[key] = high


async def _retrying(call: Callable[..., Any], arg: Any) -> Any:
    """``call(arg, timeout)`` in a thread; a failure (no leader or coordinator yet, a
    broker away) is tried again until :data:`CALL_TIMEOUT_S` has passed, as aiokafka's
    own calls wait for metadata."""
    deadline = time.monotonic() + CALL_TIMEOUT_S
    delay = 0.05
    while True:
        left = deadline - time.monotonic()
        try:
            return await asyncio.to_thread(call, arg, max(left, 0.1))
        except KafkaException as exc:
            if time.monotonic() + delay >= deadline:
                raise
            log.info("reader call failed, retrying", call=call.__name__, error=str(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


#: commit failures that retrying does not cure
_FOR_GOOD = {
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.OFFSET_METADATA_TOO_LARGE,
    KafkaError.INVALID_COMMIT_OFFSET_SIZE,
    KafkaError._INVALID_ARG,
}


def _on_error(err: KafkaError) -> None:
    """librdkafka's client-level errors (a broker away: it retries by itself), logged under
    ``kafka.`` where the outage filter counts them (:mod:`algostream.observability.outage`)."""
    if err.fatal():
        log.error("kafka reader fatal error", error=str(err))
    CLIENT_LOG.warning("reader error: %s", err.str())


def reader_client(cfg: KafkaConfig, *, rdkafka: bool, **kwargs: Any) -> ReaderClient:
    """The reader's client: librdkafka's (``rdkafka``) or aiokafka's, with ``kwargs``
    (``group_id``, ``client_id``, ``fetch_max_wait_ms``, ...) in aiokafka's names."""
    if not rdkafka:
        return AiokafkaClient(cfg, **kwargs)
    known = {"group_id", "client_id", "fetch_max_wait_ms", "fetch_min_bytes", "isolation_level"}
    rest = {k: v for k, v in kwargs.items() if k not in known}
    if set(rest) - {"max_poll_records"}:
        raise ValueError(f"no librdkafka setting for {sorted(set(rest) - {'max_poll_records'})}")
    return RdkafkaClient(cfg, **{k: v for k, v in kwargs.items() if k in known})
