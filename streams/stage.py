"""The stage contract: what a stage reads, publishes and keeps, and the worker's wiring.

A stage (:class:`Stage`) declares its inputs (catalog topic -> record type and handler),
its outputs (the topics it publishes with :meth:`Edge.publish
<streams.edge.Edge.publish>`) and its state (:class:`~streams.state.StageState`). It does
not know which worker it runs in: the worker's layout decides how each input arrives
(:func:`wire`):

- in-process, when a stage of the same worker publishes the topic (or reads it itself and
  forwards it): the handler takes each record right after it is sent, in the task that
  made it (every record is on its topic first either way);
- otherwise from the topic: one reader per topic and worker decodes each record (a bad one
  goes to ``dlq`` with its reason, as the dead letter of the first stage reading it) and
  hands it to every handler of the topic in turn, ``first`` ones first.

A handler takes the record alone: a stage's state knows each key's partition
(:meth:`StageState.partition <streams.state.StageState.partition>`). A handler that
raises :class:`Rejected` sends the record to ``dlq`` with the reason and the worker goes on.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import faust

from algostream.config import Settings
from algostream.model.records import Record
from streams.edge import Edge, Rejected
from streams.state import StageState

R = TypeVar("R", bound=Record)
__all__ = ["Input", "Read", "Rejected", "Stage", "StageState", "wire"]


class Read(enum.Enum):
    """How an input is read from its topic when no stage of the worker publishes it."""

    #: a Faust agent: the partitions Faust assigns this worker (by instrument: its own)
    AGENT = "agent"
    #: the worker's ``taps`` reader (:func:`streams.reader.tap`): every partition, for a
    #: stage that decides for the whole account (the gate's marks, the paper broker)
    TAP = "tap"


@dataclass(frozen=True)
class Input(Generic[R]):
    """One input topic of a stage."""

    record_type: type[R]
    handler: Callable[[R], Awaitable[None]]
    #: None: only in-process, never read from the topic (a verdict between two stages of
    #: one worker; where no stage of the worker publishes it, the stage goes without)
    read: Read | None = Read.AGENT
    #: False: always from the topic, even where this worker publishes it (a record the
    #: stage must apply at least once from the broker: fills, book integrity)
    local: bool = True
    #: read from the topic also where it is taken in-process (the topic is the record a
    #: restart resumes from; the handler skips what it has had in-process already)
    also_read: bool = False
    #: before the topic's other handlers (a strategy sees a bar before its features)
    first: bool = False
    #: read from the topic: at start, first the newest ``tail`` records of each partition
    #: (the reader resumes from its committed offsets; the state is what the tail says)
    tail: int = 0


@dataclass
class Stage:
    """A stage's declaration (module doc)."""

    name: str
    inputs: dict[str, Input[Any]] = field(default_factory=dict)
    #: topics it publishes (send, then the handlers of this worker's stages); a topic it
    #: only sends to (``Edge.send``) is not an output
    outputs: tuple[str, ...] = ()
    #: topics it reads with a reader of its own (made when it is built): the worker adds
    #: no reader for them
    reads: tuple[str, ...] = ()
    #: topics it reads itself and hands, as read, to this worker's stages
    forwards: tuple[str, ...] = ()
    state: StageState | None = None
    #: at the start of a rebalance, after the readers have handed over (after ``state``
    #: forgets what it restored): drop what the stage holds in memory
    on_revoke: Callable[[], Awaitable[None]] | None = None
    #: once the worker has wired every stage (its readers exist)
    wired: Callable[[], None] | None = None


def wire(
    app: faust.App,
    edge: Edge,
    settings: Settings,
    stages: list[Stage],
    *,
    not_local: frozenset[str] = frozenset(),
) -> None:
    """Wire the inputs of one worker's ``stages`` (module doc); ``not_local``: topics the
    deployment takes through Kafka even between stages of one worker. What was wired is
    in ``edge.wiring``: topic -> way (``in-process``, ``agent``, ``tap``, ``own``) ->
    the stages that take the topic that way."""
    from streams.reader import tap

    here = {t for s in stages for t in (*s.outputs, *s.forwards)} - not_local
    own = {t for s in stages for t in s.reads}
    #: (topic, how) -> its reader: stages reading a topic the same way share one; a tap
    #: (every partition) and an agent (this worker's partitions) on one topic stay apart,
    #: each with its own seeding (a tail one stage wants is not replayed into another)
    readers: dict[tuple[str, Read], _Reader] = {}
    ordered = [(s, t, i) for s in stages for t, i in s.inputs.items()]
    ordered.sort(key=lambda sti: not sti[2].first)  # stable: then in the stages' order
    wiring = edge.wiring

    def route(topic: str, way: str, stage: Stage) -> None:
        wiring.setdefault(topic, {}).setdefault(way, []).append(stage.name)

    for stage in stages:
        for topic in stage.reads:
            route(topic, "own", stage)
    for stage, topic, inp in ordered:
        local = topic in here and inp.local
        if local:
            edge.listen(topic, inp.handler)
            route(topic, "in-process", stage)
        if topic in own or (local and not inp.also_read) or inp.read is None:
            continue
        route(topic, "tap" if inp.read is Read.TAP else "agent", stage)
        label = next(s.name for s in stages if topic in s.inputs)  # the first in the role
        reader = readers.setdefault((topic, inp.read), _Reader(label, inp.record_type))
        reader.handlers.append(inp.handler)
        reader.tap = inp.read is Read.TAP  # every partition
        reader.tail = max(reader.tail, inp.tail)
    for (topic, _), reader in readers.items():
        if reader.tail:
            _seed(app, settings, topic, reader)
        if reader.tap:
            tap(app, edge, settings, topic, reader.record_type, reader.label, reader.handle)
        else:
            _agent(app, edge, topic, reader)
    for stage in stages:  # after the readers' hand-overs (hooks run in order)
        if stage.state is not None:
            edge.before_revoke(stage.state.forget)
        if stage.on_revoke is not None:
            edge.before_revoke(stage.on_revoke)
    for stage in stages:
        if stage.wired is not None:
            stage.wired()


@dataclass
class _Reader:
    """The reader of one input topic of a worker: the handlers of every stage reading it."""

    label: str  #: the first stage's name: its dead letters' ``agent``
    record_type: type[Record]
    handlers: list[Callable[[Any], Awaitable[None]]] = field(default_factory=list)
    tap: bool = False
    tail: int = 0

    async def handle(self, record: Any) -> None:
        for handler in self.handlers:
            await handler(record)


def _agent(app: faust.App, edge: Edge, topic: str, reader: _Reader) -> None:
    """A Faust agent on ``topic`` handing each decoded record to the reader's handlers."""

    async def agent(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            record = await edge.decode_or_dlq(event, reader.record_type, reader.label)
            if record is None:
                continue
            try:
                await reader.handle(record)
            except Rejected as exc:
                await edge.dead_letter(event, exc, reader.label)

    app.agent(edge.topic(topic), name=f"{reader.label}:{topic}")(agent)


def _seed(app: faust.App, settings: Settings, topic: str, reader: _Reader) -> None:
    """At start, the newest ``reader.tail`` records of each partition of ``topic``."""
    from algostream.backtest.source import read_range

    async def seed() -> None:
        for rec in await read_range(settings.kafka, [topic], last=reader.tail):
            try:
                record = reader.record_type.decode(rec.value)
            except Exception:  # its reader dead-letters it
                continue
            await reader.handle(record)

    app.task(seed)
