"""OffsetGuard: records a consumer skipped across a rebalance are read again, in order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from intervaltree import IntervalTree

from streams.continuity import OffsetGuard, ReadOffsets


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


class Consumer:
    """The parts of Faust's consumer the guard touches (same attribute names)."""

    def __init__(self) -> None:
        self.seeks: list[tuple[TP, int]] = []
        self._read_offset = ReadOffsets()
        self._gap: dict[TP, IntervalTree] = {}
        self._unacked_messages: set[Message] = set()

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))
        self._read_offset[tp] = offset


class App:
    def __init__(self) -> None:
        self.on_partitions_assigned = Signal()
        self.consumer = Consumer()


P0 = TP("md.book", 0)


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
    # 12 processed; 13 and 14 were dropped at a rebalance; 15..17 were already queued;
    # after the seek back the consumer delivers 13.. again
    got = await feed(guard, [10, 11, 12, 15, 16, 17, 13, 14, 15, 16, 17, 18])
    assert got == [10, 11, 12, 13, 14, 15, 16, 17, 18]
    assert {offset for _, offset in app.consumer.seeks} == {13}


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
    assert await feed(guard, [40, 41], "risk") == [40, 41]
    assert app.consumer.seeks == []


async def test_a_partition_new_here_starts_at_the_committed_offset() -> None:
    app = App()
    guard = OffsetGuard(app)  # type: ignore[arg-type]
    # Faust sought to the committed offset 172, then its loop dropped 172..175 (fetched
    # while the flow was suspended) and left the read offset after them
    app.consumer._committed_offset = {P0: 172}  # type: ignore[attr-defined]
    assert await feed(guard, [175, 176, 172, 173, 174, 175, 176]) == [172, 173, 174, 175, 176]
    assert app.consumer.seeks == [(P0, 172)]
