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

The trading state those records change (the risk gate's ledger, decisions, applied fills
and control nonces; the paper broker and the orders sent) is in the same transaction:
it lives in :class:`~streams.account_state.AccountState` instead of Faust tables, its
writes are staged and sent in the open transaction before it commits, and the owner loads
it back ``read_committed`` when it takes the account over (after its producer fenced the
older one). A ``kill -9`` or a fence therefore never leaves state that counts a decision
or fill nobody sees.

When a transaction commits: after every batch of proposals the gate handled (with their
offsets: a proposal is decided exactly once), before Faust commits the other trading
agents' offsets (its producer flush commits the transaction first: commit after
produce), and every ``COMMIT_INTERVAL_S`` for the marks and paper fills the taps make.

A fenced worker steps down: it logs ``fenced`` once, drops its open transaction, its
staged state and its stages' state, handles nothing more (:meth:`AccountTransaction.ready`
is False) and rejoins its group as a standby at the next rebalance. Any other failure of
the transaction stops the worker with exit code :data:`EXIT_TXN_FAILED` (its supervisor
starts it again; the restart continues from what was committed).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import structlog
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import IllegalOperation, InvalidProducerEpoch, KafkaError, ProducerFenced
from aiokafka.producer.transaction_manager import TransactionState

from algostream.config import Settings
from algostream.kafka.clients import make_producer
from algostream.kafka.headers import SENT_NS_HEADER
from algostream.observability import metrics
from streams.account_state import AccountState, state_topic
from streams.edge import Edge

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
#: a start, state load or commit that takes longer than this is a failure, not a hang;
#: longer than a broker outage the pipeline rides through (a restart, a leader election)
TIMEOUT_S = 150.0
#: the producer's request timeout: a record waits this long for its partition's leader
#: before it fails (aiokafka's 30 s default failed records of a transaction while the
#: test's broker was slow, and the producer then failed every later record with
#: OutOfOrderSequenceNumber)
REQUEST_TIMEOUT_MS = 120_000
#: the coordinator aborts a transaction open this long (a commit waits out an outage)
TRANSACTION_TIMEOUT_MS = 300_000
#: a stage waits this long for the take-over of an account this worker was given
READY_WAIT_S = 30.0
#: exit code of a worker whose account transaction failed other than by a fence
#: (sysexits EX_SOFTWARE): its supervisor starts it again
EXIT_TXN_FAILED = 70
#: what the broker says to a producer an owner with the same transactional id fenced
FENCE_ERRORS = (ProducerFenced, InvalidProducerEpoch)
#: what aiokafka's transactional calls raise (IllegalOperation: "Can't send messages while
#: not in transaction", once a fence put the producer in its fatal state meanwhile)
TXN_ERRORS = (KafkaError, IllegalOperation)


class AccountTransaction:
    """The account's transactional producer, its open transaction and the account state
    written in it (module doc)."""

    topics = TRADING_OUTPUTS

    def __init__(self, app: faust.App, edge: Edge, settings: Settings) -> None:
        self.app = app
        self.edge = edge
        self.settings = settings
        k = settings.kafka
        self.transactional_id = f"{k.app_id}-trading-{settings.risk.account}"
        self.state = AccountState(settings.risk.account, state_topic(k))
        self.producer: AIOKafkaProducer | None = None
        self.fenced = False
        self.open = False
        #: set when a completed rebalance gave this worker the account, cleared when the
        #: next one begins: only then may it start the producer (a start fences the owner)
        self.may_start = False
        self.fence_seen = False  # a record's delivery failed with ProducerFenced
        #: a record of the open transaction was not delivered (not fenced): the
        #: transaction must not commit without it
        self.undelivered: BaseException | None = None
        #: delivery futures of the open transaction's records
        self.in_flight: list[asyncio.Future[Any]] = []
        self.lock = asyncio.Lock()
        #: set while this worker owns the account with its producer started and its state
        #: loaded (:meth:`ready`)
        self.started = asyncio.Event()
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
                request_timeout_ms=REQUEST_TIMEOUT_MS,
                transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
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
        (and so fence any older owner) and load the account state it committed, before the
        gate reads its committed offsets."""
        async with self.lock:
            _quiet_fence_futures(asyncio.get_running_loop())
            self.may_start = self.edge.owns(OWNER_TOPIC)
            if await self._producer() is None:
                return
            if not self.state.loaded:
                await asyncio.wait_for(self.state.load(self.settings.kafka), TIMEOUT_S)
                await asyncio.wait_for(_leader_known(self.producer, self.state.topic), TIMEOUT_S)
            self.started.set()

    async def ready(self) -> bool:
        """Whether a trading stage may handle a record now: this worker owns the account,
        its producer is started and its state loaded. The owner waits for that (its
        take-over can still be loading); a standby or a fenced worker does not."""
        deadline = time.monotonic() + READY_WAIT_S
        while not self.started.is_set():
            if self.fenced or not self.edge.owns(OWNER_TOPIC):
                return False
            if time.monotonic() > deadline:
                log.warning("account not taken over in time: record not handled")
                return False
            try:
                await asyncio.wait_for(self.started.wait(), 0.1)
            except TimeoutError:
                continue
        return not self.fenced

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Write one record in the open transaction (begun here if none is)."""
        async with self.lock:
            producer = await self._producer()
            if producer is None:
                metrics.FENCED_DROPS.inc()
                return  # not the owner (or fenced): never visible, so never written
            if _fatal(producer) or self.undelivered is not None:
                await self._lost(self.undelivered or ProducerFenced())
                return
            try:
                if not self.open:
                    await producer.begin_transaction()
                    self.open = True
                headers = [(SENT_NS_HEADER, str(time.time_ns()).encode())]
                fut = await producer.send(topic, value, key=key, headers=headers)
            except TXN_ERRORS as exc:  # fenced, or the transaction failed before
                await self._lost(exc)
                return
            self.in_flight.append(fut)
        fut.add_done_callback(functools.partial(self._delivered, topic))

    async def _send_state(self, producer: AIOKafkaProducer) -> None:
        """The account state's staged writes, in the open transaction (begun if none)."""
        staged = self.state.take_staged()
        if not staged:
            return
        if not self.open:
            await producer.begin_transaction()
            self.open = True
        for key, value in staged:
            fut = await producer.send(self.state.topic, value, key=key, partition=0)
            self.in_flight.append(fut)
            fut.add_done_callback(functools.partial(self._delivered, self.state.topic))

    async def _undelivered(self) -> BaseException | None:
        """Wait for the open transaction's records; the first failure, if one failed."""
        in_flight, self.in_flight = self.in_flight, []
        if in_flight:
            await asyncio.wait_for(asyncio.wait(in_flight), TIMEOUT_S)
        for fut in in_flight:
            if fut.cancelled():
                return asyncio.CancelledError()
            if (exc := fut.exception()) is not None:
                return exc
        return None

    def _delivered(self, topic: str, fut: asyncio.Future[Any]) -> None:
        exc = None if fut.cancelled() else fut.exception()
        if isinstance(exc, FENCE_ERRORS):
            self.fence_seen = True  # the next send or commit fails: that is why
        elif fut.cancelled() or exc is not None:
            metrics.SEND_FAILURES.labels(agent="trading-txn").inc()
            if self.undelivered is None:
                log.error("record not delivered in the transaction", topic=topic, error=repr(exc))
                self.undelivered = exc or asyncio.CancelledError()

    async def commit(
        self,
        offsets: dict[TopicPartition, int] | None = None,
        group: str | None = None,
        *,
        flush_tables: bool = True,
    ) -> bool:
        """Commit the open transaction with the staged account state and ``offsets`` of
        ``group`` (Faust's producer flushed first). False if fenced or not the owner: the
        offsets did not move."""
        if flush_tables and self._flush_tables is not None:
            await self._flush_tables()
        async with self.lock:
            producer = await self._producer()
            if producer is None:
                self.state.take_staged()  # not the owner: nothing of it becomes visible
                return False
            if _fatal(producer) or self.undelivered is not None:
                await self._lost(self.undelivered or ProducerFenced())
                return False
            start = time.perf_counter()
            try:
                await self._send_state(producer)
                if not self.open and not offsets:
                    return True
                if not self.open:
                    await producer.begin_transaction()
                    self.open = True
                if offsets:
                    assert group is not None
                    await asyncio.wait_for(
                        producer.send_offsets_to_transaction(offsets, group), TIMEOUT_S
                    )
                if (failed := await self._undelivered()) is not None:
                    await self._lost(failed)  # never committed without one of its records
                    return False
                await asyncio.wait_for(producer.commit_transaction(), TIMEOUT_S)
                self.open = False
            except (*TXN_ERRORS, TimeoutError) as exc:
                await self._lost(exc)
                return False
            metrics.TXN_COMMIT_SECONDS.observe(time.perf_counter() - start)
            return True

    def _was_fenced(self, exc: BaseException) -> bool:
        """``exc`` comes from a fence: ProducerFenced itself, or what aiokafka raises once
        a fence put the producer in its fatal state ("Can't send messages while not in
        transaction", a failed commit)."""
        if isinstance(exc, FENCE_ERRORS) or self.fenced or self.fence_seen:
            return True
        producer = self.producer
        if producer is None or not _fatal(producer):
            return False
        waiter = producer._txn_manager._transaction_waiter
        cause = waiter.exception() if waiter.done() and not waiter.cancelled() else None
        return isinstance(cause, FENCE_ERRORS)

    async def _lost(self, exc: BaseException) -> None:
        """The open transaction is lost (aborted). Fenced (another worker owns the
        account now): step down (module doc). Any other failure is the worker's end: it
        exits (:data:`EXIT_TXN_FAILED`), and its restart continues from what was committed
        (a gate that decided on after a lost transaction would commit offsets past
        decisions nobody sees)."""
        self.open = False
        self.in_flight = []
        self.started.clear()
        self.state.drop()
        if not self._was_fenced(exc):
            log.critical(
                "account transaction failed: the worker exits to be restarted",
                transactional_id=self.transactional_id,
                error=repr(exc),
                exit_code=EXIT_TXN_FAILED,
            )
            for handler in logging.getLogger().handlers:
                handler.flush()
            sys.stdout.flush()
            os._exit(EXIT_TXN_FAILED)  # not an exception: Faust would log a traceback
        if not self.fenced:
            self.fenced = True
            metrics.FENCED.inc()
            log.error(
                "fenced: a newer trading worker owns the account; this one steps down "
                "(its open transaction and in-flight batch are dropped, nothing it wrote "
                "since becomes visible) and decides nothing until the next rebalance",
                transactional_id=self.transactional_id,
                error=repr(exc),
            )
            for hook in self.on_fenced:
                await hook()

    async def release(self) -> None:
        """A rebalance begins: commit what is open (if still the owner), stop the producer;
        the next owner starts its own (and this one again, if it keeps the account)."""
        if self.producer is not None and not self.fenced and not await self.commit():
            log.warning("transaction not committed at the hand-over (fenced)")
        async with self.lock:
            producer, self.producer = self.producer, None
            self.fenced = self.open = self.may_start = self.fence_seen = False
            self.undelivered = None
            self.in_flight = []
            self.started.clear()
            self.state.drop()
            if producer is not None:
                try:
                    await asyncio.wait_for(producer.stop(), TIMEOUT_S)
                except (KafkaError, TimeoutError) as exc:
                    log.warning("transactional producer did not stop cleanly", error=repr(exc))

    async def tick(self) -> None:
        """Commit the marks, fills and state writes the taps and agents made (timer)."""
        if self.open or (self.started.is_set() and self.state.has_staged()):
            await self.commit()


async def _leader_known(producer: AIOKafkaProducer | None, topic: str) -> None:
    """Wait until the producer knows the leader of ``topic``'s partition. A topic just
    created can be in the producer's metadata without a leader; aiokafka then held the
    first records of the transaction until they expired (``NotLeaderForPartitionError``
    after the request timeout, seen on a fresh test broker) instead of fetching it again."""
    if producer is None:
        return
    tp = TopicPartition(topic, 0)
    while True:
        await producer.partitions_for(topic)
        leader = producer.client.cluster.leader_for_partition(tp)
        if leader is not None and leader >= 0:
            return
        await producer.client.force_metadata_update()
        await asyncio.sleep(0.1)


def _quiet_fence_futures(loop: asyncio.AbstractEventLoop) -> None:
    """On a fence aiokafka fails its own futures (the transaction waiter, the pending
    batches) with ProducerFenced, and nothing awaits them: asyncio would log each one with
    a traceback when it is collected ("Future exception was never retrieved"). The worker
    has said it was fenced, once: those are left out; every other error is logged as
    before."""
    if id(loop) in _QUIET_LOOPS:
        return
    _QUIET_LOOPS.add(id(loop))
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "future" in context and isinstance(context.get("exception"), FENCE_ERRORS):
            return
        if previous is None:
            loop.default_exception_handler(context)
        else:
            previous(loop, context)

    loop.set_exception_handler(handler)


_QUIET_LOOPS: set[int] = set()  # ids of the loops _quiet_fence_futures has set up


def _fatal(producer: AIOKafkaProducer) -> bool:
    """The producer's transaction manager is in its fatal state (aiokafka puts it there
    when the broker says it was fenced, and asserts on any further transition)."""
    manager = producer._txn_manager
    return manager is not None and manager.state is TransactionState.FATAL_ERROR


def install(app: faust.App, edge: Edge, settings: Settings) -> AccountTransaction | None:
    """The account's transaction for this trading worker (None when turned off). The
    worker installs it before it builds its stages (not in the ``single`` layout: one
    worker, no standby to fence); the account's stages find it as ``edge.txn``."""
    if not settings.kafka.trading_transactions:
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


async def may_handle(edge: Edge) -> bool:
    """Whether this worker's trading stages handle a record now: always without fencing;
    with it, only the owner with its account state loaded (:meth:`AccountTransaction.ready`)."""
    txn: AccountTransaction | None = edge.txn
    return txn is None or await txn.ready()


def trading_table(app: faust.App, edge: Edge, name: str) -> Any:
    """A trading stage's table ``name``: the account state's, in the account's transaction
    (fencing on), else a Faust table (changelogged, one partition, JSON)."""
    txn: AccountTransaction | None = edge.txn
    if txn is not None:
        return txn.state.table(name)
    return app.Table(name, default=None, partitions=1, use_partitioner=True)
