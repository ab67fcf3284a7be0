"""The worker's watchdog: is each stage making progress? (:mod:`algostream.observability.health`)

Every second, for each batch reader of the worker (:mod:`streams.reader`: the market
worker's ``book`` reader, the trading worker's ``taps`` and ``proposals``): a reader with
records fetched but not processed (:meth:`PartitionReader.behind
<streams.reader.PartitionReader.behind>`) whose processed offsets have not moved for
``workers.stall_after_s`` is stalled. Not while the Kafka clients report a broker outage
(:mod:`algostream.observability.outage`): a stage that cannot write is waiting, not hung;
the outage has its own lines and metrics. The timer's own run is the event loop's
heartbeat: a loop blocked for ``stall_after_s`` is a problem too.
"""

from __future__ import annotations

import time

import faust

from algostream.config import Settings
from algostream.observability.health import HEALTH, SINCE_PROGRESS, STAGE_STALLED
from algostream.observability.outage import outage_filter
from streams.edge import Edge
from streams.reader import PartitionReader, readers

INTERVAL_S = 1.0


class StallWatch:
    """Per stage: the position it last had and since when (pure; the clock is passed in).

    >>> w = StallWatch()
    >>> w.observe("book", 0.0, position=10, pending=True)
    0.0
    >>> w.observe("book", 31.0, position=10, pending=True)
    31.0
    >>> w.observe("book", 32.0, position=11, pending=True)
    0.0
    """

    def __init__(self) -> None:
        self._since: dict[str, tuple[int, float]] = {}

    def observe(self, stage: str, now: float, *, position: int, pending: bool) -> float:
        """Seconds ``stage`` has had records waiting at ``position`` (0: it moved, or
        nothing waits)."""
        last = self._since.get(stage)
        if not pending or last is None or last[0] != position:
            self._since[stage] = (position, now)
            return 0.0
        return now - last[1]


def position(reader: PartitionReader) -> int:
    """A number that changes whenever the reader makes progress (a batch, a hand-over)."""
    return sum(reader.processed.values()) + reader.epoch


def check(edge: Edge, watch: StallWatch, stall_after_s: float, now: float) -> dict[str, float]:
    """Report every reader's progress to the process's health; returns seconds stalled."""
    reachable = outage_filter().down_since is None
    out: dict[str, float] = {}
    for name, reader in readers(edge).items():
        pending = reachable and reader.ready.is_set() and reader.behind()
        stalled_s = watch.observe(name, now, position=position(reader), pending=pending)
        out[name] = stalled_s
        stalled = stalled_s >= stall_after_s
        SINCE_PROGRESS.labels(agent=edge.role, stage=name).set(stalled_s)
        STAGE_STALLED.labels(agent=edge.role, stage=name).set(int(stalled))
        HEALTH.report(
            f"stage {name}",
            f"records waiting, no progress for {stalled_s:.0f}s" if stalled else None,
        )
    return out


def register(app: faust.App, edge: Edge, settings: Settings) -> None:
    """The watchdog timer of ``app`` (every worker role has one)."""
    watch = StallWatch()
    after = settings.workers.stall_after_s

    @app.timer(interval=INTERVAL_S, name="watchdog")  # type: ignore[untyped-decorator]
    async def watchdog() -> None:
        HEALTH.beat(after)
        check(edge, watch, after, time.monotonic())
