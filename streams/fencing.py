"""Fencing on the trading path: one Kafka transaction per account.

The trading worker that owns an account (Faust gave it ``orders.proposed``) writes what
it decides and executes (``orders.approved``, ``orders.rejected``, ``orders.events``,
``orders.proposed`` from stops and flatten, ``risk.events``, ``positions``, ``pnl``)
through a transactional producer whose id is the account's
(``<app_id>-trading-<account>``), and commits the gate's consumed ``orders.proposed``
offsets in the same transaction (:meth:`AccountTransaction.commit`, the gate reader's
committer). Starting that producer (``init_transactions``) fences every older producer
with the same id: a worker that was paused past its session timeout and resumes after a
standby took the account over gets ``ProducerFenced`` on its next send or commit; its open
transaction is aborted, so nothing it wrote after the take-over is visible to the
``read_committed`` consumers of the trading topics (the trading worker's own, the gate's
reader, reconciliation, the tests). A fenced worker drops its risk and broker state and
decides nothing more until the next rebalance gives it the account again.

When a transaction commits: after every batch of proposals the gate handled (with their
offsets: a proposal is decided exactly once), before Faust commits the other trading
agents' offsets (its producer flush commits the transaction first: commit after
produce), and every ``COMMIT_INTERVAL_S`` for the marks and paper fills the taps make.

What is not in the transaction: Faust's table changelogs (written through Faust's own
producer): a fenced worker can still write its last table keys before it learns it is
fenced (README: known limits).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.producer.transaction_manager import TransactionState

from algostream.config import Settings
from algostream.kafka.clients import make_producer
from algostream.kafka.headers import SENT_NS_HEADER
from algostream.observability import metrics
from streams.app import Edge

log = structlog.get_logger("algostream.fencing")

#: what the trading worker writes in the account's transaction
TRADING_OUTPUTS = frozenset(
    {
        "orders.approved",
        "orders.rejected",
        "orders.events",
        "orders.proposed",
        "risk.events",
        "positions",
        "pnl",
    }
)
#: outputs not made by the gate (marks, paper fills from the taps) wait at most this long
COMMIT_INTERVAL_S = 0.05
#: the topic whose ownership is the account's (one partition: one owner)
OWNER_TOPIC = "orders.proposed"
#: a commit or start that takes longer than this is a failure, not a hang
TIMEOUT_S = 30.0


class AccountTransaction:
    """The account's transactional producer and its open transaction (module doc)."""

    topics = TRADING_OUTPUTS

    def __init__(self, app: faust.App, edge: Edge, settings: Settings) -> None:
        self.app = app
        self.edge = edge
        self.settings = settings
        k = settings.kafka
        self.transactional_id = f"{k.app_id}-trading-{settings.risk.account}"
        self.producer: AIOKafkaProducer | None = None
        self.fenced = False
        self.open = False
        #: set when a completed rebalance gave this worker the account, cleared when the
        #: next one begins: only then may it start the producer (a start fences the owner)
        self.may_start = False
        self.fence_seen = False  # a record's delivery failed with ProducerFenced
        self.lock = asyncio.Lock()
        #: called once when this worker learns it was fenced (drop risk/broker state)
        self.on_fenced: list[Callable[[], Awaitable[None]]] = []
        self._flush_tables: Callable[[], Awaitable[None]] | None = None

    async def _producer(self) -> AIOKafkaProducer | None:
        """The started producer while this worker owns the account (None otherwise, or
        once fenced: until the next rebalance it writes nothing)."""
        if self.fenced:
            return None
        if self.producer is None:
            if not self.may_start:
                return None
            producer = make_producer(
                self.settings.kafka,
                transactional_id=self.transactional_id,
                enable_idempotence=True,
                acks="all",
                client_id=f"{self.settings.kafka.client_id}-trading-txn",
            )
            start = time.perf_counter()
            await asyncio.wait_for(producer.start(), TIMEOUT_S)  # fences older producers
            self.producer = producer
            log.info(
                "transactional producer started: older ones with this id are fenced",
                transactional_id=self.transactional_id,
                seconds=round(time.perf_counter() - start, 3),
            )
        return self.producer

    async def ensure_started(self) -> None:
        """A rebalance is complete: if it gave this worker the account, start the producer
        (and so fence any older owner) before the gate reads its committed offsets."""
        async with self.lock:
            self.may_start = self.edge.owns(OWNER_TOPIC)
            await self._producer()

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Write one record in the open transaction (begun here if none is)."""
        async with self.lock:
            producer = await self._producer()
            if producer is None:
                metrics.FENCED_DROPS.inc()
                return  # not the owner (or fenced): never visible, so never written
            if _fatal(producer):
                await self._lost(ProducerFenced())
                return
            try:
                if not self.open:
                    await producer.begin_transaction()
                    self.open = True
                headers = [(SENT_NS_HEADER, str(time.time_ns()).encode())]
                fut = await producer.send(topic, value, key=key, headers=headers)
            except KafkaError as exc:  # fenced, or the transaction failed before
                await self._lost(exc)
                return
        fut.add_done_callback(self._delivered)

    def _delivered(self, fut: asyncio.Future[Any]) -> None:
        exc = None if fut.cancelled() else fut.exception()
        if isinstance(exc, ProducerFenced):
            self.fence_seen = True  # the next send or commit fails: that is why
        elif fut.cancelled() or exc is not None:
            metrics.SEND_FAILURES.labels(agent="trading-txn").inc()
            log.error("record not delivered in the transaction", error=repr(exc))

    async def commit(
        self,
        offsets: dict[TopicPartition, int] | None = None,
        group: str | None = None,
        *,
        flush_tables: bool = True,
    ) -> bool:
        """Commit the open transaction with ``offsets`` of ``group`` (Faust's table writes
        flushed first). False if fenced or not the owner: the offsets did not move."""
        if flush_tables and self._flush_tables is not None:
            await self._flush_tables()
        async with self.lock:
            producer = await self._producer()
            if producer is None:
                return False
            if not self.open and not offsets:
                return True
            if _fatal(producer):
                await self._lost(ProducerFenced())
                return False
            start = time.perf_counter()
            try:
                if not self.open:
                    await producer.begin_transaction()
                    self.open = True
                if offsets:
                    assert group is not None
                    await asyncio.wait_for(
                        producer.send_offsets_to_transaction(offsets, group), TIMEOUT_S
                    )
                await asyncio.wait_for(producer.commit_transaction(), TIMEOUT_S)
                self.open = False
            except (KafkaError, TimeoutError) as exc:
                await self._lost(exc)
                return False
            metrics.TXN_COMMIT_SECONDS.observe(time.perf_counter() - start)
            return True

    async def _lost(self, exc: BaseException) -> None:
        """The open transaction is lost (aborted). Fenced (another worker owns the
        account now): write nothing more until the next rebalance, and the stages forget
        what they hold (it counts records that never became visible). Any other failure
        is the worker's end: it exits, and its restart continues from what was committed
        (a gate that decided on after a lost transaction would commit offsets past
        decisions nobody sees)."""
        self.open = False
        if not isinstance(exc, ProducerFenced) and not (self.fenced or self.fence_seen):
            log.critical("account transaction failed: the worker stops", error=repr(exc))
            raise exc
        if not self.fenced:
            self.fenced = True
            metrics.FENCED.inc()
            log.error(
                "fenced: a newer trading worker owns the account; nothing this one wrote "
                "since becomes visible, and it decides nothing until the next rebalance",
                transactional_id=self.transactional_id,
                error=repr(exc),
            )
            for hook in self.on_fenced:
                await hook()

    async def release(self) -> None:
        """A rebalance begins: commit what is open (if still the owner), stop the producer;
        the next owner starts its own (and this one again, if it keeps the account)."""
        if self.producer is not None and not await self.commit():
            log.warning("transaction not committed at the hand-over (fenced)")
        async with self.lock:
            producer, self.producer = self.producer, None
            self.fenced = self.open = self.may_start = self.fence_seen = False
            if producer is not None:
                try:
                    await asyncio.wait_for(producer.stop(), TIMEOUT_S)
                except (KafkaError, TimeoutError) as exc:
                    log.warning("transactional producer did not stop cleanly", error=repr(exc))

    async def tick(self) -> None:
        """Commit the marks and fills the taps wrote (timer)."""
        if self.open:
            await self.commit()


def _fatal(producer: AIOKafkaProducer) -> bool:
    """The producer's transaction manager is in its fatal state (aiokafka puts it there
    when the broker says it was fenced, and asserts on any further transition)."""
    manager = producer._txn_manager
    return manager is not None and manager.state is TransactionState.FATAL_ERROR


def install(app: faust.App, edge: Edge, settings: Settings) -> AccountTransaction | None:
    """The account's transaction for this trading worker (None when turned off, or in the
    ``single`` layout: one worker, no standby to fence)."""
    if not settings.kafka.trading_transactions or settings.workers.layout == "single":
        return None
    existing: AccountTransaction | None = getattr(edge, "txn", None)
    if existing is not None:
        return existing
    txn = AccountTransaction(app, edge, settings)
    edge.txn = txn
    # commit markers take offsets: the offset guard must not take them for dropped records
    edge.guard.transactional.update(edge.prefix + topic for topic in TRADING_OUTPUTS)
    flush = app.producer.flush

    async def flush_then_commit() -> None:
        """Faust flushes before it commits offsets: the open transaction commits too."""
        await flush()
        await txn.commit(flush_tables=False)

    txn._flush_tables = flush
    app.producer.flush = flush_then_commit  # type: ignore[method-assign]
    app._algostream_read_committed = True  # type: ignore[attr-defined]
    app.timer(interval=COMMIT_INTERVAL_S, name="trading-txn-commit")(txn.tick)
    return txn
