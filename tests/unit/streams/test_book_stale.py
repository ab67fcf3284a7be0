"""BookStage.mark_stale: a STALE is detected and logged while a batch stuck on the broker
holds the reader (issue 28: during a broker outage the batch in flight waits for producer
room for the whole outage); the flag goes to the table after that batch, then the event.

A pure-logic test: the stage's edge and table are stand-ins that record what is sent."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from structlog.testing import capture_logs

from algostream.config import load_settings
from algostream.marketdata.persist import LevelStore
from algostream.marketdata.processor import BookProcessor
from algostream.model import BookIntegrity, IntegrityKind
from streams.book import BookStage
from streams.state import StageState
from tests.unit.marketdata.marketdata_testkit import delta, snapshot

INST = "BINANCE:BTCUSDT"
STALE_AFTER_MS = 2_000
T0 = 1_000_000_000


@dataclass
class Sent:
    """What the stage sent, in order: ``("table", value)`` and ``("integrity", event)``."""

    records: list[tuple[str, Any]] = field(default_factory=list)


class FakeEdge:
    def __init__(self, sent: Sent) -> None:
        self.sent = sent

    def topic(self, name: str) -> Any:
        return SimpleNamespace(get_topic_name=lambda: name)

    async def send_raw(self, topic: str, key: Any, value: Any, partition: int = 0) -> Any:
        if topic == "book.integrity":
            self.sent.records.append((topic, BookIntegrity.decode(value)))
        else:
            self.sent.records.append(("table", value))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def count_out(self, topic: str, n: int = 1) -> None:
        pass


class FakeTable:
    def stage(self, key: str, value: Any) -> tuple[str, bytes, Any]:
        return "book-state-changelog", key.encode(), value


@dataclass
class FakeReader:
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    busy: asyncio.Lock = field(default_factory=asyncio.Lock)
    epoch: int = 0


def stage_with_a_book(sent: Sent) -> BookStage:
    stage = object.__new__(BookStage)
    settings = load_settings(env={"ALGOSTREAM__MARKET_DATA__STALE_AFTER_MS": str(STALE_AFTER_MS)})
    stage.edge, stage.md = FakeEdge(sent), settings.market_data  # type: ignore[assignment]
    stage.state = StageState(FakeTable(), stage.edge, 1)
    stage.table = stage.state.table
    stage.store = LevelStore(BookProcessor())
    stage.store.proc.on_update(snapshot(INST, 1, bids=(("99", "1"),), asks=(("101", "1"),)), T0)
    return stage


async def until(check: Any, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 5.0
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


async def test_a_stale_is_detected_while_a_stuck_batch_holds_the_reader() -> None:
    sent = Sent()
    stage, reader = stage_with_a_book(sent), FakeReader()
    reader.ready.set()
    await reader.busy.acquire()  # a batch waiting for the broker
    later = T0 + STALE_AFTER_MS * 1_000_000
    with capture_logs() as logged:
        task = asyncio.create_task(stage.mark_stale(reader, later))  # type: ignore[arg-type]
        await until(lambda: stage.store.proc.is_stale(INST), "the STALE detected")
    stale = [e for e in logged if e["event"] == "books stale"]
    assert [(e["instruments"], e["batch_in_flight"]) for e in stale] == [([INST], True)]
    await asyncio.sleep(0.01)
    assert sent.records == [] and not task.done()  # storing and publishing wait for it
    reader.busy.release()  # the broker is back: the batch is done
    published = await asyncio.wait_for(task, 5.0)
    assert [(e.kind, e.instrument) for e in published] == [(IntegrityKind.STALE, INST)]
    (table, value), (topic, event) = sent.records
    assert (table, value["stale"]) == ("table", True)  # the flag first, then the event
    assert topic == "book.integrity" and isinstance(event, BookIntegrity)
    assert event.kind is IntegrityKind.STALE


async def test_an_update_handled_before_the_write_clears_it_and_nothing_is_stored() -> None:
    sent = Sent()
    stage, reader = stage_with_a_book(sent), FakeReader()
    reader.ready.set()
    await reader.busy.acquire()
    later = T0 + STALE_AFTER_MS * 1_000_000
    task = asyncio.create_task(stage.mark_stale(reader, later))  # type: ignore[arg-type]
    await until(lambda: stage.store.proc.is_stale(INST), "the STALE detected")
    out = stage.store.proc.on_update(delta(INST, 2, 2), later + 1)  # the batch's update
    assert [r.kind for r in out if isinstance(r, BookIntegrity)] == [IntegrityKind.RESYNCED]
    reader.busy.release()
    assert await asyncio.wait_for(task, 5.0) == []
    assert sent.records == []


async def test_no_stale_while_handing_over() -> None:
    sent = Sent()
    stage, reader = stage_with_a_book(sent), FakeReader()  # ready not set: handing over
    assert await stage.mark_stale(reader, T0 + STALE_AFTER_MS * 10_000_000) == []  # type: ignore[arg-type]
    assert not stage.store.proc.is_stale(INST) and sent.records == []


async def test_a_hand_over_waiting_behind_it_comes_after_the_stale_is_published() -> None:
    """The rebalance that follows an outage: the hand-over queues for the reader while the
    STALE waits for the stuck batch; it runs only once the flag and the event are out, so
    the next owner (restoring the flag) says RESYNCED after the STALE, not before."""
    sent = Sent()
    stage, reader = stage_with_a_book(sent), FakeReader()
    reader.ready.set()
    await reader.busy.acquire()
    task = asyncio.create_task(
        stage.mark_stale(reader, T0 + STALE_AFTER_MS * 1_000_000)  # type: ignore[arg-type]
    )
    await until(lambda: stage.store.proc.is_stale(INST), "the STALE detected")

    async def hand_over() -> None:  # as PartitionReader.hand_over
        reader.ready.clear()
        async with reader.busy:
            reader.epoch += 1
            sent.records.append(("hand-over", None))

    handing = asyncio.create_task(hand_over())
    await asyncio.sleep(0.01)
    reader.busy.release()
    await asyncio.wait_for(handing, 5.0)
    assert [(e.kind, e.instrument) for e in await task] == [(IntegrityKind.STALE, INST)]
    assert [topic for topic, _ in sent.records] == ["table", "book.integrity", "hand-over"]
