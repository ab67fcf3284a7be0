"""Re-read records Faust skipped across a rebalance (offset continuity per partition).

When a worker keeps a partition through a rebalance, Faust (faust-streaming 0.15) can hand
the agent records of a fetch made before the rebalance after it has sought the partition
back to the committed offset. Its fetch loop then moves its read offset past them, adds
the offsets in between to its "gap" list (offsets it treats as acked when it commits), and
drops the records the new fetch brings again (below the read offset): they are lost, and
a commit can cover them. Seen in ``tests/integration/streams/test_scale_out.py`` as a book
GAP (``expected update N, got N+1``) right after a rebalance, and, when the guard below
only sought back, as a loop of seeks (each stale record moved the read offset on again).

The same happens to a worker that has just been given a partition: records fetched while
its flow was still suspended are dropped, and the read offset is left after them.

:class:`OffsetGuard` remembers the last offset each agent processed per partition (on a
partition new to it: the committed offset Faust sought to). At a record further on than
the next one it

* takes the skipped offsets off Faust's gap list (so no commit covers them),
* pins the partition's read offset (Faust's loop accepts every record while it is
  pinned, and this guard does the ordering),
* seeks back to the next offset, and drops the record and the rest of the stale fetch
  without acking them (they come again after the skipped ones and are acked then).

The pin ends at the first record of the new fetch. If that is further on than the next
offset, the offsets in between really are missing (a compacted topic, transaction
markers) and it is taken. A seek back whose partition then sends nothing for
``PIN_RESEEK_S`` is made again (:meth:`OffsetGuard.check`, on a timer): the re-fetch it
asked for did not come, and the pin would otherwise wait for a record that may never come.
Partitions that move to another worker are forgotten at the next assignment: the other
worker's progress is in the committed offsets.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

import faust
import structlog
from aiokafka.errors import KafkaError

from algostream.observability import metrics

log = structlog.get_logger("algostream.streams")

#: a pin left this long (the new fetch never reached the stale record) gives up waiting
PIN_TIMEOUT_S = 30.0
#: a seek back waits this long for the consumer thread
SEEK_TIMEOUT_S = 10.0
#: a seek back whose partition has sent no record for this long is made again, and a
#: watched partition this quiet with its position past what the agents got is sought back
PIN_RESEEK_S = 5.0
#: the agent name of a seek back made for every agent reading the partition
ANY_AGENT = "*"
#: seeks made for one undelivered hole before it is left alone (nothing to deliver there)
STALL_TRIES = 3


class ReadOffsets(defaultdict[Any, Any]):
    """Faust's per-partition read offset (``Consumer._read_offset``) with pins.

    While a partition is pinned its read offset reads as ``None``: Faust's fetch loop
    passes every record on and records no gap for it.
    """

    def __init__(self) -> None:
        super().__init__(lambda: None)
        self.pinned: set[Any] = set()

    def __getitem__(self, tp: Any) -> Any:
        return None if tp in self.pinned else super().__getitem__(tp)


class OffsetGuard:
    def __init__(self, app: faust.App) -> None:
        self.app = app
        #: (agent, partition) -> offset of the last record it processed here
        self.last: dict[tuple[str, Any], int] = {}
        #: (agent, partition) -> (offset sought to, the stale record that made us seek,
        #: monotonic time); the stale fetch's later records are all after that one
        self.pending: dict[tuple[str, Any], tuple[int, int, float]] = {}
        #: topics read through the guard; partition -> when its last record arrived
        self.watched: set[str] = set()
        self.arrived: dict[Any, float] = {}
        #: partition -> (expected, position, seeks made for that same hole)
        self.stalls: dict[Any, tuple[int, int, int]] = {}
        #: topics written in transactions (streams.fencing): their offsets skip the
        #: commit markers and aborted records, so a hole there is not a dropped record
        self.transactional: set[str] = set()
        self.assigned_at = time.monotonic()
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    def install(self) -> None:
        async def offset_guard() -> None:  # no parameters: Faust passes the app to those
            await self.check()

        self.app.timer(interval=PIN_RESEEK_S / 2, name="offset-guard")(offset_guard)

    async def check(self, reseek_s: float = PIN_RESEEK_S) -> dict[Any, int]:
        """Seek again the pending seek backs whose partition has sent nothing for
        ``reseek_s`` (the re-fetch never came); returns what was sought (partition -> offset).

        Seen once in CI: the trading worker, restarted after ``kill -9``, sought
        ``orders.approved`` back to its committed offset; no record of that partition came
        again, and with no newer record to end the pin, it waited for good.
        """
        now = time.monotonic()
        due: dict[Any, int] = {}
        for (agent, tp), (target, stale, since) in list(self.pending.items()):
            if now - max(since, self.arrived.get(tp, since)) < reseek_s:
                continue
            if agent == ANY_AGENT:  # found again below if still short (a try counted)
                del self.pending[(agent, tp)]
                self._unpin(tp)
                continue
            due[tp] = min(target, due.get(tp, target))
            self.pending[(agent, tp)] = (target, stale, now)
            metrics.SEEK_BACKS.labels(agent=agent).inc()
        for tp, target in due.items():
            log.warning(
                "seek back brought no records: seeking again",
                topic=tp.topic,
                partition=tp.partition,
                offset=target,
            )
            await self._seek(tp, target)
        for tp, (expected, position) in (await self._stalled(now, reseek_s)).items():
            tries = self.stalls.get(tp, (expected, position, 0))
            tries = (expected, position, tries[2] + 1 if tries[:2] == (expected, position) else 1)
            self.stalls[tp] = tries
            if tries[2] > STALL_TRIES:  # nothing there to deliver (compacted away?): leave it
                continue
            log.warning(
                "records fetched but never delivered: seeking back",
                topic=tp.topic,
                partition=tp.partition,
                expected=expected,
                position=position,
            )
            metrics.SEEK_BACKS.labels(agent=ANY_AGENT).inc()
            self._pin(ANY_AGENT, tp, expected, position - 1)
            await self._seek(tp, expected)
            due[tp] = expected
        return due

    async def _stalled(self, now: float, quiet_s: float) -> dict[Any, tuple[int, int]]:
        """Watched partitions silent for ``quiet_s`` whose consumer position is past the
        next record the agents expect: Faust fetched records there and dropped them, with
        nothing after them to show the guard the hole (seen in CI: a trading worker
        restarted after ``kill -9`` lost the whole backlog of ``orders.proposed`` fetched
        while its flow was still suspended, and decided nothing more). Partition ->
        (expected offset, position)."""
        consumer = self.app.consumer
        try:
            assigned = consumer.assignment()
        except Exception:  # consumer not started
            return {}
        out: dict[Any, tuple[int, int]] = {}
        for tp in assigned:
            if tp.topic not in self.watched or tp.topic in self.transactional:
                continue
            if any(key[1] == tp for key in self.pending):
                continue
            if now - self.arrived.get(tp, self.assigned_at) < quiet_s:
                continue
            position = _position_now(consumer, tp)
            if position is None:
                continue
            lasts = [o for (_, t), o in self.last.items() if t == tp]
            expected = min(lasts) + 1 if lasts else await self._expected(None, tp)
            if expected is not None and position > expected:
                out[tp] = (expected, position)
        return out

    def _pin(self, agent: str, tp: Any, target: int, stale: int) -> None:
        """Pin ``tp`` until ``agent`` (or, for ``ANY_AGENT``, any agent) gets ``target``
        again; records after ``stale`` meanwhile are dropped unacked (read again later)."""
        gaps = getattr(self.app.consumer, "_gap", {}).get(tp)
        if gaps:
            gaps.chop(target, stale + 1)  # not processed: no commit may cover them
        self.pending[(agent, tp)] = (target, stale, time.monotonic())
        if (reads := self._reads()) is not None:
            reads.pinned.add(tp)

    def _reads(self) -> ReadOffsets | None:
        reads = getattr(self.app.consumer, "_read_offset", None)
        return reads if isinstance(reads, ReadOffsets) else None

    def _unpin(self, tp: Any) -> None:
        if not any(key[1] == tp for key in self.pending) and (reads := self._reads()) is not None:
            reads.pinned.discard(tp)

    async def _on_assigned(self, _app: Any, *args: Any, signal: Any = None, **_: Any) -> None:
        kept = set(args[0]) if args else set()  # the newly assigned partitions
        self.assigned_at = time.monotonic()
        self.arrived.clear()
        for key in [key for key in self.last if key[1] not in kept]:
            del self.last[key]
        for key in [key for key in self.pending if key[1] not in kept]:
            del self.pending[key]
            self._unpin(key[1])

    def _drop(self, msg: Any) -> None:
        """Skip a stale record without acking it: its copy from the new fetch is acked."""
        msg.acked = True  # Faust's ack of this copy is now a no-op
        unacked = getattr(self.app.consumer, "_unacked_messages", None)
        if unacked is not None:
            unacked.discard(msg)

    async def _expected(self, last: int | None, tp: Any) -> int | None:
        """The offset an agent's next record on ``tp`` should have: after the ``last`` one
        it processed here or, on a partition new to it, where the group's reading starts."""
        if last is not None:
            return last + 1
        committed = getattr(self.app.consumer, "_committed_offset", {}).get(tp)
        if isinstance(committed, int) and committed > 0:
            return committed  # Faust's seek to the committed offset has run
        # Records can come before that seek has run (they were fetched from the position
        # aiokafka took at the assignment, and Faust may have dropped the first of them):
        # ask the broker, as Faust's seek will
        try:
            return await asyncio.wait_for(_group_start(self.app.consumer, tp), SEEK_TIMEOUT_S)
        except (TimeoutError, KafkaError) as exc:
            log.warning(
                "start offset unknown", topic=tp.topic, partition=tp.partition, error=repr(exc)
            )
            return None

    async def admit(self, event: faust.EventT[bytes], agent: str) -> bool:
        """True if ``agent`` should process ``event`` now; False to skip it (see module)."""
        msg = event.message
        tp, offset = msg.tp, msg.offset
        key = (agent, tp)
        self.arrived[tp] = time.monotonic()
        last = self.last.get(key)
        if last is not None and offset <= last:
            return False  # processed here already (delivered again after a seek back)
        if tp.topic in self.transactional:
            self.last[key] = offset
            return True
        pend = self.pending.get(key)
        if pend is None and (pend := self.pending.get((ANY_AGENT, tp))) is not None:
            key = (ANY_AGENT, tp)  # a seek back for every agent of the partition
        if pend is not None:
            target, stale, since = pend
            if offset > stale and time.monotonic() - since < PIN_TIMEOUT_S:
                self._drop(msg)  # the rest of the stale fetch
                return False
            del self.pending[key]  # the new fetch has begun
            self._unpin(tp)
            if offset != target:
                _warn("offsets missing from the topic", agent, msg, target)
        elif (expected := await self._expected(last, tp)) is not None and offset > expected:
            _warn("records skipped by the consumer: seeking back", agent, msg, expected)
            metrics.SEEK_BACKS.labels(agent=agent).inc()
            self._pin(agent, tp, expected, offset)
            await self._seek(tp, expected)
            self._drop(msg)
            return False
        self.last[(agent, tp)] = offset
        return True

    async def _seek(self, tp: Any, offset: int) -> None:
        """Seek in the consumer's own thread. Faust's ``Consumer.seek`` calls aiokafka's
        ``seek`` from the agents' thread while the consumer thread may be handing out that
        partition's fetched records, which then move the position on past the seek: the
        records sought back for never came (seen: a book stuck one update short after a
        takeover, every later record dropped as part of the stale fetch)."""
        try:
            await asyncio.wait_for(self.app.consumer.seek_wait({tp: offset}), SEEK_TIMEOUT_S)
        except TimeoutError:  # a rebalance holds the consumer thread; it seeks again after
            log.warning("seek back timed out", topic=tp.topic, partition=tp.partition)


def _position_now(consumer: Any, tp: Any) -> int | None:
    """The consumer's fetch position on ``tp`` without waiting (None if it has none yet).
    aiokafka's ``position`` waits for a valid one, in the consumer thread's method queue:
    a wait that never ends would take one of its two workers for good."""
    try:
        aio = consumer._thread._ensure_consumer()
        state = aio._subscription.subscription.assignment.state_value(tp)
    except Exception:
        return None
    if state is None or not state.has_valid_position:
        return None
    return int(state.position)


async def _group_start(consumer: Any, tp: Any) -> int | None:
    """Where the consumer group reads ``tp`` from: its committed offset, or without one the
    log start (``auto_offset_reset=earliest``). Asked in the consumer's own thread."""
    thread = consumer._thread
    committed = await thread.call_thread(thread._ensure_consumer().committed, tp)
    if committed is not None:
        return int(committed)
    earliest = await consumer.earliest_offsets(tp)
    start = earliest.get(tp)
    return int(start) if start is not None else None


def _warn(what: str, agent: str, msg: Any, expected: int) -> None:
    log.warning(
        what,
        agent=agent,
        topic=msg.topic,
        partition=msg.partition,
        expected=expected,
        got=msg.offset,
    )


#: an active changelog partition with no record for this long while the consumer has
#: fetched past what recovery received is sought back
RECOVERY_STALL_S = 5.0


class RecoveryWatchdog:
    """Unsticks Faust's table recovery when the records it waits for were fetched but lost.

    faust-streaming 0.15 can drop records of an active changelog partition between the
    consumer thread and the recovery's queue (its fetch loop drops a batch when the flow
    or the generation changes under it, and a seek to committed offsets does not cover
    changelogs, which have none). The consumer's position is then past the highwater while
    recovery has received nothing, and it waits forever, logging "No event received for
    active tp ... since recovery start" (faust-streaming #74 describes the same state).
    Seen in the scale-out test on a worker that kept one partition when two others
    joined: position 375, highwater 374, nothing received after 60 s.

    Every check, for each active changelog partition still short of its highwater, with no
    record for ``stall_s`` and the consumer's position past the next offset recovery
    wants, the watchdog seeks it back to that offset (in the consumer's thread). Recovery
    skips offsets it has already applied, so a record read twice is harmless.
    """

    def __init__(self, app: faust.App, stall_s: float = RECOVERY_STALL_S) -> None:
        self.app = app
        self.stall_s = stall_s

    def install(self) -> None:
        self.app.timer(interval=self.stall_s / 2, name="recovery-watchdog")(self.check)

    async def check(self) -> dict[Any, int]:
        """Seek back the stalled partitions; returns what was sought (partition -> offset)."""
        recovery = self.app.tables.recovery  # type: ignore[attr-defined]
        started = recovery._recovery_started_at
        if not recovery.in_recovery or started is None:
            return {}
        now = time.monotonic()
        received = recovery._active_events_received_at
        wanted: dict[Any, int] = {}
        for tp in recovery.active_tps:
            highwater, offset = recovery.active_highwaters.get(tp), recovery.active_offsets.get(tp)
            if highwater is None or offset is None or offset >= highwater:
                continue  # caught up (or nothing to read)
            if now - received.get(tp, started) >= self.stall_s:
                wanted[tp] = max(offset, -1) + 1
        stuck: dict[Any, int] = {}
        for tp, offset in wanted.items():
            position = _position_now(self.app.consumer, tp)  # None: still fetching it
            if position is not None and position > offset:
                stuck[tp] = offset
        if stuck:
            metrics.RECOVERY_RESEEKS.inc(len(stuck))
            log.warning(
                "table recovery stalled: seeking changelogs back",
                partitions={f"{tp.topic}:{tp.partition}": o for tp, o in stuck.items()},
            )
            await asyncio.wait_for(self.app.consumer.seek_wait(stuck), SEEK_TIMEOUT_S)
        return stuck
