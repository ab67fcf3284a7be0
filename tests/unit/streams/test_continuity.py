"""OffsetGuard: records a consumer skipped across a rebalance are read again, in order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.continuity import OffsetGuard


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


@dataclass
class Message:
    tp: TP
    offset: int

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
    def __init__(self) -> None:
        self.seeks: list[tuple[TP, int]] = []

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


class App:
    def __init__(self) -> None:
        self.on_partitions_assigned = Signal()
        self.consumer = Consumer()


P0 = TP("md.book", 0)


async def feed(guard: OffsetGuard, offsets: list[int], agent: str = "book") -> list[int]:
    return [o for o in offsets if await guard.admit(Event(Message(P0, o)), agent)]  # type: ignore[arg-type]


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


async def test_agents_are_tracked_apart_and_moved_partitions_forgotten() -> None:
    app = App()
    guard = OffsetGuard(app)  # type: ignore[arg-type]
    assert await feed(guard, [1, 2], "risk") == [1, 2]
    assert await feed(guard, [1, 2], "execution") == [1, 2]  # same partition, other agent
    await app.on_partitions_assigned.send(app, {TP("md.book", 1)})  # partition 0 moved away
    # it comes back later: the other owner's progress is in the committed offset
    assert await feed(guard, [40, 41], "risk") == [40, 41]
    assert app.consumer.seeks == []
