"""OffsetGuard: records a consumer skipped across a rebalance are read again, in order."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from intervaltree import IntervalTree

from algostream.observability import metrics
from streams.continuity import OffsetGuard, ReadOffsets, RecoveryWatchdog


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


@dataclass(eq=False)
class Message:
    tp: TP
    offset: int
    acked: bool = False

    @property
    def topic(self) -> str:
        return self.tp.topic

    @property
    def partition(self) -> int:
        return self.tp.partition


@dataclass
class Event:
    message: Message


class Signal:
    def __init__(self) -> None:
        self.receivers: list[Any] = []

    def connect(self, fun: Any) -> Any:
        self.receivers.append(fun)
        return fun

    async def send(self, app: Any, assigned: Any) -> None:
        for fun in self.receivers:
            await fun(app, assigned)


class Broker:
    """The group's committed offsets and the log starts, as the consumer thread reads them."""

    def __init__(self) -> None:
        self.committed_offsets: dict[TP, int] = {}
        self.log_start: dict[TP, int] = {}

    async def committed(self, tp: TP) -> int | None:
        return self.committed_offsets.get(tp)

    def _ensure_consumer(self) -> Broker:  # Faust's thread -> its aiokafka consumer
        return self

    async def call_thread(self, fun: Any, *args: Any) -> Any:
        return await fun(*args)


class Consumer:
    """The parts of Faust's consumer the guard touches (same attribute names)."""

    def __init__(self) -> None:
        self.seeks: list[tuple[TP, int]] = []
        self._thread = Broker()
        self._committed_offset: dict[TP, int] = {}
        self._read_offset = ReadOffsets()
        self._gap: dict[TP, IntervalTree] = {}
        self._unacked_messages: set[Message] = set()

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: self._thread.log_start[tp] for tp in tps if tp in self._thread.log_start}

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        """Faust's thread-side seek (what the guard must use: ``seek`` is not thread-safe)."""
        for tp, offset in partitions.items():
            self.seeks.append((tp, offset))
            self._read_offset[tp] = offset


class App:
    def __init__(self) -> None:
        self.on_partitions_assigned = Signal()
        self.consumer = Consumer()


P0 = TP("md.book", 0)


def seek_backs(agent: str) -> float:
    value = metrics.REGISTRY.get_sample_value("algostream_seek_backs_total", {"agent": agent})
    return value or 0.0


async def feed(guard: OffsetGuard, offsets: list[int], agent: str = "book") -> list[int]:
    return [o for o in offsets if await guard.admit(Event(Message(P0, o)), agent)]  # type: ignore[arg-type]


async def test_stale_records_pin_the_read_offset_and_are_not_acked() -> None:
    app = App()
    guard = OffsetGuard(app)  # type: ignore[arg-type]
    consumer = app.consumer
    assert await feed(guard, [305, 306]) == [305, 306]
    # Faust's loop saw 432 with its read offset at 307: it recorded 308..432 as a gap
    consumer._gap[P0] = IntervalTree.from_tuples([(308, 433)])
    stale = [Message(P0, o) for o in range(432, 440)]
    for msg in stale:
        consumer._unacked_messages.add(msg)
        consumer._read_offset[P0] = msg.offset  # what Faust's loop does after each record
        assert not await guard.admit(Event(msg), "book")  # type: ignore[arg-type]
    assert consumer.seeks == [(P0, 307)]  # one seek, not one per stale record
    assert not consumer._gap[P0]  # no commit may cover 307..432 before they are processed
    assert consumer._read_offset[P0] is None  # pinned: Faust passes the new fetch on
    assert all(m.acked for m in stale) and not consumer._unacked_messages
    assert await feed(guard, list(range(307, 441))) == list(range(307, 441))
    assert consumer._read_offset[P0] == 439  # unpinned at 307: Faust's own value again


async def test_a_skip_seeks_back_and_the_records_come_in_order() -> None:
    app = App()
    guard = OffsetGuard(app)  # type: ignore[arg-type]
    before = seek_backs("book")
    # 12 processed; 13 and 14 were dropped at a rebalance; 15..17 were already queued;
    # after the seek back the consumer delivers 13.. again
    got = await feed(guard, [10, 11, 12, 15, 16, 17, 13, 14, 15, 16, 17, 18])
    assert got == [10, 11, 12, 13, 14, 15, 16, 17, 18]
    assert {offset for _, offset in app.consumer.seeks} == {13}
    assert seek_backs("book") == before + 1  # counted for operators


async def test_offsets_really_missing_are_accepted_after_one_look() -> None:
    app = App()
    guard = OffsetGuard(app)  # type: ignore[arg-type]
    # a compacted topic: 3 and 4 are gone; after the seek back 5 comes first again
    assert await feed(guard, [1, 2, 5, 5, 6]) == [1, 2, 5, 6]
    assert app.consumer.seeks == [(P0, 3)]
    # ... or the new fetch's first record is before the stale one: 3 is gone, 4 is there
    guard = OffsetGuard(app)  # type: ignore[arg-type]
    assert await feed(guard, [1, 2, 7, 8, 4, 5, 6, 7, 8, 9]) == [1, 2, 4, 5, 6, 7, 8, 9]


async def test_agents_are_tracked_apart_and_moved_partitions_forgotten() -> None:
    app = App()
    guard = OffsetGuard(app)  # type: ignore[arg-type]
    assert await feed(guard, [1, 2], "risk") == [1, 2]
    assert await feed(guard, [1, 2], "execution") == [1, 2]  # same partition, other agent
    await app.on_partitions_assigned.send(app, {TP("md.book", 1)})  # partition 0 moved away
    # it comes back later: the other owner's progress is in the committed offset
    app.consumer._thread.committed_offsets[P0] = 40
    assert await feed(guard, [40, 41], "risk") == [40, 41]
    assert app.consumer.seeks == []


async def test_a_partition_new_here_starts_at_the_committed_offset() -> None:
    app = App()
    guard = OffsetGuard(app)  # type: ignore[arg-type]
    # Faust sought to the committed offset 172, then its loop dropped 172..175 (fetched
    # while the flow was suspended) and left the read offset after them
    app.consumer._committed_offset = {P0: 172}
    assert await feed(guard, [175, 176, 172, 173, 174, 175, 176]) == [172, 173, 174, 175, 176]
    assert app.consumer.seeks == [(P0, 172)]


async def test_records_before_fausts_seek_are_checked_against_the_broker() -> None:
    # the scale-out test's failure: a worker given partition 0 got its first record (157)
    # before Faust's seek to the committed offset had run (nothing in _committed_offset),
    # 150..156 having been dropped; the book then saw a chain gap and never recovered
    app = App()
    guard = OffsetGuard(app)  # type: ignore[arg-type]
    app.consumer._thread.committed_offsets[P0] = 150
    got = await feed(guard, [157, 158, *range(150, 160)])
    assert got == list(range(150, 160))
    assert app.consumer.seeks == [(P0, 150)]


async def test_a_group_without_commits_starts_at_the_log_start() -> None:
    app = App()
    guard = OffsetGuard(app)  # type: ignore[arg-type]
    app.consumer._thread.log_start[P0] = 0
    assert await feed(guard, [3, 0, 1, 2, 3, 4]) == [0, 1, 2, 3, 4]
    assert app.consumer.seeks == [(P0, 0)]
    # no commit and no log start known (the broker did not answer): nothing to check against
    guard = OffsetGuard(App())  # type: ignore[arg-type]
    assert await feed(guard, [7, 8]) == [7, 8]


async def test_a_seek_back_that_brings_nothing_is_made_again() -> None:
    # CI: the restarted trading worker sought orders.approved back to 1 after seeing 21;
    # nothing of that partition came again, and no newer record could end the pin
    app = App()
    guard = OffsetGuard(app)  # type: ignore[arg-type]
    app.consumer._thread.committed_offsets[P0] = 1
    assert await feed(guard, [21], "execution") == []
    assert app.consumer.seeks == [(P0, 1)]
    before = seek_backs("execution")
    assert await guard.check(reseek_s=60) == {}  # not silent for long enough yet
    assert await guard.check(reseek_s=0) == {P0: 1}
    assert app.consumer.seeks == [(P0, 1), (P0, 1)]
    assert seek_backs("execution") == before + 1
    assert app.consumer._read_offset[P0] is None  # still pinned: 21's copy is not taken
    # the re-fetch comes: in order, and nothing more to seek
    assert await feed(guard, list(range(1, 23)), "execution") == list(range(1, 23))
    assert await guard.check(reseek_s=0) == {}
    assert not guard.pending and P0 not in app.consumer._read_offset.pinned


async def test_the_installed_timer_checks_with_the_defaults() -> None:
    # Faust passes the app to a timer function that takes any parameter
    import inspect

    app = App()
    timers: list[Any] = []
    app.timer = lambda interval, name: timers.append  # type: ignore[attr-defined]
    guard = OffsetGuard(app)  # type: ignore[arg-type]
    guard.install()
    [fun] = timers
    assert not inspect.signature(fun).parameters
    app.consumer._thread.committed_offsets[P0] = 1
    assert await feed(guard, [21], "execution") == []
    guard.pending[("execution", P0)] = (1, 21, time.monotonic() - 10)
    guard.arrived[P0] -= 10  # sought 10 s ago, nothing since
    await fun()
    assert app.consumer.seeks == [(P0, 1), (P0, 1)]


async def test_records_of_the_stale_fetch_count_as_heard() -> None:
    app = App()
    guard = OffsetGuard(app)  # type: ignore[arg-type]
    assert await feed(guard, [1, 2, 9]) == [1, 2]
    guard.pending[("book", P0)] = (3, 9, time.monotonic() - 10)  # sought 10 s ago ...
    assert await feed(guard, [10]) == []  # ... but the partition is still delivering
    assert await guard.check(reseek_s=5) == {}
    assert app.consumer.seeks == [(P0, 3)]


def quiet(guard: OffsetGuard, seconds: float) -> None:
    """Make every partition look silent for ``seconds``."""
    guard.assigned_at -= seconds
    for tp in guard.arrived:
        guard.arrived[tp] -= seconds


async def test_records_fetched_and_never_delivered_are_read_again(monkeypatch: Any) -> None:
    # CI: the restarted trading worker's Faust dropped the whole orders.proposed backlog
    # (fetched while its flow was suspended); nothing came after it, so no record ever
    # showed the guard the hole, and no proposal was decided again
    app = App()
    guard = OffsetGuard(app)  # type: ignore[arg-type]
    guard.watched.add(P0.topic)
    app.consumer.assignment = lambda: {P0, TP("other", 0)}  # type: ignore[attr-defined]
    positions = {P0: 120}
    monkeypatch.setattr("streams.continuity._position_now", lambda _c, tp: positions.get(tp))
    app.consumer._committed_offset = {P0: 43}
    assert await guard.check(reseek_s=5) == {}  # not quiet long enough yet
    quiet(guard, 6)
    assert await guard.check(reseek_s=5) == {P0: 43}
    assert app.consumer.seeks == [(P0, 43)]
    assert app.consumer._read_offset[P0] is None  # pinned: Faust passes the re-fetch on
    # every agent of the partition gets the re-fetch, in order
    assert await feed(guard, list(range(43, 121)), "risk") == list(range(43, 121))
    assert await feed(guard, list(range(43, 121)), "marks") == list(range(43, 121))
    assert not guard.pending
    positions[P0] = 121
    quiet(guard, 6)
    assert await guard.check(reseek_s=5) == {}  # caught up: position = last + 1


async def test_a_hole_with_nothing_to_deliver_is_left_alone_after_a_few_tries(
    monkeypatch: Any,
) -> None:
    app = App()
    guard = OffsetGuard(app)  # type: ignore[arg-type]
    guard.watched.add(P0.topic)
    app.consumer.assignment = lambda: {P0}  # type: ignore[attr-defined]
    monkeypatch.setattr("streams.continuity._position_now", lambda _c, tp: 50)
    assert await feed(guard, [40]) == [40]  # then 41..49 compacted away: nothing comes
    for _ in range(10):
        quiet(guard, 6)
        for key in list(guard.pending):  # the seek back brought nothing for 6 s
            target, stale, since = guard.pending[key]
            guard.pending[key] = (target, stale, since - 6)
        await guard.check(reseek_s=5)
    assert app.consumer.seeks == [(P0, 41)] * 3
    assert not guard.pending and P0 not in app.consumer._read_offset.pinned  # not for good


class Recovery:
    """The parts of Faust's table recovery the watchdog reads (same attribute names)."""

    def __init__(self, started: float) -> None:
        self.in_recovery = True
        self._recovery_started_at = started
        self._active_events_received_at: dict[TP, float] = {}
        self.active_tps: set[TP] = set()
        self.active_highwaters: dict[TP, int] = {}
        self.active_offsets: dict[TP, int] = {}


class RecoveringApp:
    def __init__(self, started: float) -> None:
        self.tables = type("Tables", (), {})()
        self.tables.recovery = Recovery(started)
        self.consumer = Consumer()
        self.positions: dict[TP, int] = {}


def recovering(monkeypatch: Any, started: float) -> RecoveringApp:
    app = RecoveringApp(started)
    monkeypatch.setattr("streams.continuity._position_now", lambda _c, tp: app.positions.get(tp))
    return app


C0, C1, C2 = (TP("book-state-changelog", p) for p in range(3))


async def test_watchdog_seeks_back_a_changelog_fetched_but_never_received(
    monkeypatch: Any,
) -> None:
    now = time.monotonic()
    app = recovering(monkeypatch, started=now - 30)
    rec = app.tables.recovery
    rec.active_tps = {C0, C1, C2}
    # C0: the scale-out test's hang: highwater 374, nothing received, position 375
    rec.active_highwaters[C0], rec.active_offsets[C0], app.positions[C0] = 374, -1, 375
    # C1: records came 1 s ago: still flowing, left alone
    rec.active_highwaters[C1], rec.active_offsets[C1], app.positions[C1] = 90, 40, 91
    rec._active_events_received_at[C1] = now - 1
    # C2: stalled at 20 but the consumer has not fetched past it (a slow broker): left alone
    rec.active_highwaters[C2], rec.active_offsets[C2], app.positions[C2] = 50, 20, 21
    watchdog = RecoveryWatchdog(app)  # type: ignore[arg-type]
    before = metrics.REGISTRY.get_sample_value("algostream_recovery_reseeks_total") or 0
    assert await watchdog.check() == {C0: 0}
    assert metrics.REGISTRY.get_sample_value("algostream_recovery_reseeks_total") == before + 1
    assert app.consumer.seeks == [(C0, 0)]
    # received up to 200 of 374 and then stalled with the position at the end: from 201
    rec.active_offsets[C0] = 200
    rec._active_events_received_at[C0] = now - 10
    assert await watchdog.check() == {C0: 201}


async def test_watchdog_does_nothing_outside_recovery_or_when_caught_up(
    monkeypatch: Any,
) -> None:
    app = recovering(monkeypatch, started=time.monotonic() - 30)
    rec = app.tables.recovery
    rec.active_tps = {C0}
    rec.active_highwaters[C0], rec.active_offsets[C0], app.positions[C0] = 374, 374, 375
    watchdog = RecoveryWatchdog(app)  # type: ignore[arg-type]
    assert await watchdog.check() == {}  # caught up
    rec.active_offsets[C0] = 10
    rec.in_recovery = False
    assert await watchdog.check() == {}  # not recovering
    rec.in_recovery = True
    rec._recovery_started_at = time.monotonic()  # just started: give it time
    assert await watchdog.check() == {}
    assert app.consumer.seeks == []
