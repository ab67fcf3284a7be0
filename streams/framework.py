"""Every patch of faust-streaming's and aiokafka's internals, in one place.

Written for faust-streaming 0.15.3 and aiokafka 0.14.0 (pinned in ``pyproject.toml``:
``faust-streaming>=0.15.3,<0.16``, ``aiokafka>=0.13,<0.15``). Each patch says what it works
around; :data:`RELIED_ON` lists every private name the patches and the stages touch, and
``tests/unit/streams/test_framework_patches.py`` fails when one of them disappears (an
upgrade of either package must go through that test, not be found in production).

Class-level patches are applied once per process by :func:`install` (``create_app`` calls
it). Per-app hooks that wrap an instance's method (``Edge``'s revoke hooks around
``App._consumer_wait_empty``, the account transaction's ``producer.flush`` in
:mod:`streams.fencing`, which also reads aiokafka's transaction manager to tell a fence
from other failures) stay with the code they serve and are listed in :data:`RELIED_ON`.
"""

from __future__ import annotations

from typing import Any

#: how long the broker may hold a worker's fetch when none of its partitions has new data
FETCH_MAX_WAIT_MS = 10
#: the same for Faust's consumer in a worker whose every input is read by its batch readers
#: once its tables are recovered (:func:`idle_faust_fetches`)
IDLE_FETCH_WAIT_MS = 500

#: (module, attribute path) of every private framework name this package relies on
RELIED_ON: list[tuple[str, str]] = [
    # patched here
    ("faust.transport.drivers.aiokafka", "AIOKafkaConsumerThread._create_worker_consumer"),
    ("faust.transport.drivers.aiokafka", "AIOKafkaConsumerThread.verify_event_path"),
    ("faust.transport.consumer", "Consumer.resume_partitions"),
    ("faust.transport.consumer", "Consumer.__init__"),
    # set or read on instances (names checked on the classes or on a fresh instance)
    ("faust.transport.consumer", "Consumer._read_offset"),
    ("aiokafka.consumer.consumer", "AIOKafkaConsumer._fetch_max_wait_ms"),
    ("aiokafka.consumer.consumer", "AIOKafkaConsumer._isolation_level"),
    ("aiokafka.consumer.consumer", "AIOKafkaConsumer._fetcher"),
    ("aiokafka.consumer.fetcher", "Fetcher._fetch_max_wait_ms"),
    ("faust.app.base", "App._consumer_wait_empty"),
    ("faust.tables.manager", "TableManager.recovery"),
    # read by the account transaction (streams.fencing) to tell a fence from other failures
    ("aiokafka.producer.producer", "AIOKafkaProducer._txn_manager"),
    ("aiokafka.producer.transaction_manager", "TransactionManager._transaction_waiter"),
    ("aiokafka.producer.transaction_manager", "TransactionManager.state"),
    ("aiokafka.producer.transaction_manager", "TransactionState.FATAL_ERROR"),
]


def install() -> None:
    """Apply the class-level patches (idempotent: once per process)."""
    _short_fetch_wait()
    _hold_paused()
    _read_offsets()
    _quiet_held_topics()


def _short_fetch_wait() -> None:
    """Faust's aiokafka driver hard-codes ``fetch_max_wait_ms=1500`` (no setting for it).
    aiokafka keeps one fetch in flight per broker and leaves out partitions that still have
    fetched records: once a worker is behind (a start with a backlog), its busy partitions
    are buffered while the in-flight fetch holds only quiet ones (changelogs, the assignor
    topic), which the broker parks for the full 1.5 s, and every cycle repeats it (the
    market worker ran 0.6-1.8 s behind ``md.book`` at 300 updates/s). With a short wait the
    quiet fetch returns at once. Also: Faust has no ``isolation_level`` setting; an app
    whose trading outputs are transactional (:mod:`streams.fencing` sets
    ``_algostream_read_committed``) must not read an aborted (fenced) record."""
    from faust.transport.drivers import aiokafka as driver

    cls = driver.AIOKafkaConsumerThread
    if getattr(cls, "_algostream_fetch_wait", False):
        return
    create = cls._create_worker_consumer

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        self.app._algostream_faust_consumer = consumer  # idle_faust_fetches
        if getattr(self.app, "_algostream_read_committed", False):
            consumer._isolation_level = "read_committed"
        return consumer

    setattr(cls, "_create_worker_consumer", create_worker_consumer)  # noqa: B010
    setattr(cls, "_algostream_fetch_wait", True)  # noqa: B010


def _hold_paused() -> None:
    """Held topics (:meth:`Edge.hold <streams.edge.Edge.hold>`) are assigned by Faust but
    read by a batch reader (:mod:`streams.reader`); Faust's recovery resumes every
    non-changelog partition it assigned once the tables are recovered, which would have
    Faust fetch them too. They stay paused."""
    from faust.transport.consumer import Consumer

    if getattr(Consumer, "_algostream_hold", False):
        return
    resume = Consumer.resume_partitions

    def resume_partitions(self: Any, tps: Any) -> None:
        held = getattr(self.app, "_algostream_held", ())
        resume(self, {tp for tp in tps if tp.topic not in held})

    setattr(Consumer, "resume_partitions", resume_partitions)  # noqa: B010
    setattr(Consumer, "_algostream_hold", True)  # noqa: B010


def _read_offsets() -> None:
    """Faust's fetch loop drops records whose offset is not the partition's next read
    offset (``Consumer._read_offset``) and records a gap: around a rebalance that lost
    records an agent had not seen (faust-streaming issues #216 and #221 report records
    skipped and re-ordered around a rebalance; their fixes did not cover this path).
    Every consumer gets a :class:`~streams.continuity.ReadOffsets` that
    :class:`~streams.continuity.OffsetGuard` can pin while it re-reads a partition."""
    from faust.transport import consumer as base

    from streams.continuity import ReadOffsets

    cls = base.Consumer
    if getattr(cls, "_algostream_read_offsets", False):
        return
    init = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._read_offset = ReadOffsets()

    setattr(cls, "__init__", __init__)  # noqa: B010
    setattr(cls, "_algostream_read_offsets", True)  # noqa: B010


def _quiet_held_topics() -> None:
    """Faust checks every assigned partition for a stream that processes it and, after
    ``stream_processing_timeout`` (5 min), logs "Stream has not started processing" at
    ERROR for one whose records nothing has taken through a Faust stream. Held topics'
    records are taken by this worker's batch readers, so for them that ERROR is always
    false (51 per worker in one run, every 2.5 s, burying real errors). The readers
    report their own lag and stalls (``algostream_consumer_lag``, the stage watchdog);
    Faust still checks every other partition."""
    from faust.transport.drivers import aiokafka as driver

    cls = driver.AIOKafkaConsumerThread
    if getattr(cls, "_algostream_quiet_held", False):
        return
    verify = cls.verify_event_path

    def verify_event_path(self: Any, now: float, tp: Any) -> None:
        if tp.topic in getattr(self.app, "_algostream_held", ()):
            return None
        return verify(self, now, tp)

    setattr(cls, "verify_event_path", verify_event_path)  # noqa: B010
    setattr(cls, "_algostream_quiet_held", True)  # noqa: B010


def faust_fetch_wait(app: Any, wait_ms: int) -> bool:
    """Set the fetch wait of ``app``'s Faust consumer (its aiokafka fetcher, running);
    False if it has none yet."""
    consumer = getattr(app, "_algostream_faust_consumer", None)
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is None:
        return False
    fetcher._fetch_max_wait_ms = wait_ms
    return True


def idle_faust_fetches(app: Any, edge: Any) -> None:
    """Faust's consumer of a worker whose inputs are all held (the market worker: its
    batch reader reads them, :mod:`streams.reader`) fetches nothing it hands to a stage
    once the tables are recovered, yet aiokafka keeps fetching every partition Faust
    assigned (Faust pauses a partition in its own bookkeeping only): the quiet ones, the
    leader topic and changelogs with no new record, were fetched every
    :data:`FETCH_MAX_WAIT_MS`, ~100 round trips a second parsed in Python in Faust's
    consumer thread (~60 ms of CPU a second in an idle market worker). From each
    rebalance's end to the next one's start the broker may hold those fetches for
    :data:`IDLE_FETCH_WAIT_MS`; a standby changelog with new records is still answered
    at once. Recovery (and any worker whose Faust agents read a topic) keeps the short
    wait (:func:`_short_fetch_wait`)."""

    def faust_reads() -> set[str]:
        try:
            assigned = app.consumer.assignment()
        except Exception:  # not started
            return set()
        internal = set(app.tables.changelog_topics) | {f"{app.conf.id}-__assignor-__leader"}
        reads: set[str] = {tp.topic for tp in assigned} - edge.held - internal
        return reads

    async def recovered(*_: Any, **__: Any) -> None:
        if not faust_reads():
            faust_fetch_wait(app, IDLE_FETCH_WAIT_MS)

    async def rebalancing() -> None:
        faust_fetch_wait(app, FETCH_MAX_WAIT_MS)

    app.on_rebalance_complete.connect(recovered)
    edge.before_revoke(rebalancing)
